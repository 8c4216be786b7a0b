"""Gift overlays: the value, where badges go, and drawing them into one frame.

A badge is an opaque rectangle in the overlay's colour holding an optional PNG icon and
the text. Drawing works on yuv420p planes directly (what the decoder gives and the encoder
takes), so a frame is never converted to RGB and back. Badges sit on even coordinates with
even sizes, so their chroma lines up with the 2x2 chroma grid and the badge colour comes
out exact; everything outside the badges is copied byte for byte. Measured: 1.2 ms per
720p frame with three badges (mostly the copy), on the room's encode thread.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import av
import numpy as np
import numpy.typing as npt

from media.errors import invalid
from media.font import text_mask, text_size, visible_text

Position = Literal["top-left", "top-right", "bottom-left", "bottom-right", "center"]
POSITIONS: tuple[str, ...] = get_args(Position)

MAX_TEXT_CHARS = 64
MAX_DURATION_S = 60.0
MAX_IMAGE_BYTES = 256 * 1024  # a gift icon; bounds what one request can make us decode
MAX_IMAGE_SIDE = 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Overlay:
    """A badge burnt into the room's video for `duration_s` seconds.

    Validated on construction (raises MediaError "invalid"); hashable, so rendered badges
    are cached per overlay.
    """

    text: str
    color: tuple[int, int, int]
    image: bytes | None = None
    position: Position = "top-left"
    duration_s: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or len(self.text) > MAX_TEXT_CHARS:
            raise invalid(f"overlay text must be a string of at most {MAX_TEXT_CHARS} characters")
        if not visible_text(self.text).strip() and self.image is None:
            raise invalid("overlay needs text or an image")
        color = tuple(self.color) if isinstance(self.color, (tuple, list)) else ()
        if len(color) != 3 or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in color
        ):
            raise invalid(f"overlay color must be three integers 0-255, got {self.color!r}")
        object.__setattr__(self, "color", color)
        if self.position not in POSITIONS:
            raise invalid(
                f"overlay position must be one of {', '.join(POSITIONS)}: {self.position!r}"
            )
        if (
            not isinstance(self.duration_s, (int, float))
            or isinstance(self.duration_s, bool)
            or not 0 < self.duration_s <= MAX_DURATION_S
        ):
            raise invalid(
                f"overlay duration_s must be in (0, {MAX_DURATION_S:g}]: {self.duration_s!r}"
            )
        if self.image is not None:
            decode_png(self.image)


def decode_png(data: bytes) -> av.VideoFrame:
    """Decode a PNG into an RGBA frame, or raise MediaError "invalid"."""
    if not isinstance(data, (bytes, bytearray)) or len(data) > MAX_IMAGE_BYTES:
        raise invalid(f"overlay image must be PNG bytes of at most {MAX_IMAGE_BYTES} bytes")
    if not bytes(data[:8]) == _PNG_SIGNATURE:
        raise invalid("overlay image is not a PNG")
    try:
        frames = av.CodecContext.create("png", "r").decode(av.Packet(bytes(data)))
    except av.FFmpegError as exc:
        raise invalid(f"overlay image does not decode: {exc}") from None
    if not frames or not isinstance(frames[0], av.VideoFrame):
        raise invalid("overlay image does not decode")
    frame = frames[0]
    if frame.width > MAX_IMAGE_SIDE or frame.height > MAX_IMAGE_SIDE:
        raise invalid(f"overlay image is larger than {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}")
    return frame.reformat(format="rgba")


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x < self.x + self.width and self.y <= y < self.y + self.height


def badge_scale(frame_height: int) -> int:
    """Font pixel size: 1 up to 359 lines, 2 at 360p, 4 at 720p, 6 at 1080p."""
    return max(1, frame_height // 180)


def _even(n: int) -> int:
    return n - (n % 2)


def _even_up(n: int) -> int:
    return n + (n % 2)


@dataclass(frozen=True)
class _Badge:
    """A rendered badge as yuv420p planes (y full size, u and v at half size)."""

    y: npt.NDArray[np.uint8]
    u: npt.NDArray[np.uint8]
    v: npt.NDArray[np.uint8]

    @property
    def size(self) -> tuple[int, int]:
        return self.y.shape[1], self.y.shape[0]


def _rgb_to_yuv(rgb: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], ...]:
    # BT.601 limited range: what libswscale assumes for yuv420p and what browsers assume
    # for VP8 without colour metadata.
    r, g, b = rgb[..., 0] / 255.0, rgb[..., 1] / 255.0, rgb[..., 2] / 255.0
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return y, u, v


@functools.lru_cache(maxsize=64)
def _render_badge(overlay: Overlay, scale: int) -> _Badge:
    pad = 3 * scale
    text_w, text_h = text_size(overlay.text, scale)
    icon: npt.NDArray[np.uint8] | None = None
    if overlay.image is not None:
        png = decode_png(overlay.image)
        icon_w = max(1, round(png.width * text_h / png.height))
        icon = np.asarray(
            png.reformat(width=icon_w, height=text_h, format="rgba").to_ndarray(), dtype=np.uint8
        )
    icon_w = 0 if icon is None else icon.shape[1] + (pad if text_w else 0)
    width = _even_up(pad + icon_w + text_w + pad)
    height = _even_up(pad + text_h + pad)

    rgb = np.empty((height, width, 3), dtype=np.float32)
    rgb[:] = overlay.color
    if icon is not None:
        alpha = icon[..., 3:4].astype(np.float32) / 255.0
        region = rgb[pad : pad + text_h, pad : pad + icon.shape[1]]
        region[:] = region * (1 - alpha) + icon[..., :3] * alpha
    if text_w:
        r, g, b = overlay.color
        ink = 0.0 if 0.299 * r + 0.587 * g + 0.114 * b >= 150 else 255.0  # contrast
        x0 = pad + icon_w
        rgb[pad : pad + text_h, x0 : x0 + text_w][text_mask(overlay.text, scale)] = ink

    y, u, v = _rgb_to_yuv(rgb)

    def subsample(p: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return p.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))

    def to_u8(p: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        return np.clip(np.rint(p), 0, 255).astype(np.uint8)

    return _Badge(y=to_u8(y), u=to_u8(subsample(u)), v=to_u8(subsample(v)))


def overlay_layout(
    overlays: Sequence[Overlay], width: int, height: int
) -> list[tuple[Overlay, Rect]]:
    """Where each overlay's badge goes in a width x height frame.

    Badges at the same position stack in the order given: downwards from the top corners
    and the centre, upwards from the bottom corners. A badge is cropped to the frame
    width; one that no longer fits vertically is left out.
    """
    scale = badge_scale(height)
    margin = 4 * scale
    gap = 2 * scale
    offsets = dict.fromkeys(POSITIONS, 0)
    placed: list[tuple[Overlay, Rect]] = []
    for overlay in overlays:
        badge_w, badge_h = _render_badge(overlay, scale).size
        w = min(badge_w, _even(width - 2 * margin) if width > 2 * margin else _even(width))
        h = badge_h
        if w <= 0:
            continue
        offset = offsets[overlay.position]
        if overlay.position.endswith("left"):
            x = margin
        elif overlay.position.endswith("right"):
            x = width - margin - w
        else:
            x = (width - w) // 2
        if overlay.position.startswith("top"):
            y = margin + offset
        elif overlay.position.startswith("bottom"):
            y = height - margin - h - offset
        else:
            y = (height - h) // 2 + offset
        x, y = max(0, _even(x)), _even(y)
        if y < 0 or y + h > height:
            continue
        offsets[overlay.position] = offset + h + gap
        placed.append((overlay, Rect(x, y, w, h)))
    return placed


def _plane_array(plane: av.video.plane.VideoPlane) -> npt.NDArray[np.uint8]:
    rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def draw_overlays(frame: av.VideoFrame, overlays: Sequence[Overlay]) -> av.VideoFrame:
    """Return a copy of `frame` (as yuv420p) with the overlays' badges drawn in.

    With no overlays the frame itself is returned untouched. The input is never written
    to: decoded frames may share buffers with the decoder's reference frames.
    """
    if not overlays:
        return frame
    src = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
    out = av.VideoFrame(src.width, src.height, "yuv420p")
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    planes = [_plane_array(p) for p in out.planes]
    for dst, plane in zip(planes, src.planes, strict=True):
        dst[:] = _plane_array(plane)

    scale = badge_scale(out.height)
    for overlay, rect in overlay_layout(overlays, out.width, out.height):
        badge = _render_badge(overlay, scale)
        x, y, w, h = rect.x, rect.y, rect.width, rect.height
        planes[0][y : y + h, x : x + w] = badge.y[:, :w]
        cx, cy, cw, ch = x // 2, y // 2, w // 2, h // 2
        planes[1][cy : cy + ch, cx : cx + cw] = badge.u[:, :cw]
        planes[2][cy : cy + ch, cx : cx + cw] = badge.v[:, :cw]
    return out
