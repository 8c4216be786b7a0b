"""The gift icons, drawn by us from a few shapes, in two forms from one drawing:
SVG for the pages and a 128x128 RGBA PNG for the video compositor.

`python -m engine.gift_icons` (re)writes web/static/gifts/<id>.svg and .png;
tests/test_ledger_catalog.py checks the committed files match this drawing, so the two
forms cannot drift apart. Shapes live on a 64x64 canvas; the rasterizer
supersamples 4x4 per pixel for smooth edges. Pure Python and numpy: no image
library, no SVG renderer.
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.catalog import ICON_DIR, load_catalog

CANVAS = 64
PNG_SIZE = 128
SUPERSAMPLE = 4

Point = tuple[float, float]


@dataclass(frozen=True)
class Shape:
    """circle (cx, cy, r), ellipse (cx, cy, rx, ry, angle), polygon (points), ring
    (cx, cy, rx, ry, width, angle): filled with `color` (#rrggbb) at `opacity`."""

    kind: str
    color: str
    args: tuple = ()
    points: tuple[Point, ...] = ()
    opacity: float = 1.0


def circle(cx: float, cy: float, r: float, color: str, opacity: float = 1.0) -> Shape:
    return Shape("circle", color, (cx, cy, r), opacity=opacity)


def ellipse(cx: float, cy: float, rx: float, ry: float, color: str,
            angle: float = 0.0) -> Shape:
    return Shape("ellipse", color, (cx, cy, rx, ry, angle))


def ring(cx: float, cy: float, rx: float, ry: float, width: float, color: str,
         angle: float = 0.0) -> Shape:
    return Shape("ring", color, (cx, cy, rx, ry, width, angle))


def polygon(points: list[Point], color: str, opacity: float = 1.0) -> Shape:
    return Shape("polygon", color, points=tuple(points), opacity=opacity)


def star(cx: float, cy: float, outer: float, inner: float, tips: int, color: str,
         turn: float = -90.0) -> Shape:
    points = []
    for i in range(tips * 2):
        r = outer if i % 2 == 0 else inner
        a = math.radians(turn + i * 180 / tips)
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return polygon(points, color)


def heart(cx: float, cy: float, size: float, color: str) -> list[Shape]:
    """Two lobes and a point: `size` is the heart's width."""
    r = size / 4
    lobe = r * 1.05
    return [circle(cx - r, cy - r / 2, lobe, color), circle(cx + r, cy - r / 2, lobe, color),
            polygon([(cx - 2 * r, cy - r / 4), (cx + 2 * r, cy - r / 4), (cx, cy + 2.1 * r)],
                    color)]


# --- the drawings ------------------------------------------------------------------

def drawing(gift_id: str, color: str) -> list[Shape]:
    """The icon of one gift; its main shape is in the gift's own catalog colour."""
    green, white, dark = "#2e9e44", "#ffffff", "#222222"
    if gift_id == "rose":
        return [polygon([(31, 30), (34, 30), (34, 60), (31, 60)], green),
                ellipse(40, 46, 8, 3.5, green, -30),
                circle(32, 20, 15, color), circle(24, 24, 9, "#d0103c"),
                circle(40, 24, 9, "#d0103c"), circle(32, 17, 8, "#ff6482"),
                ring(32, 19, 5, 5, 2, "#b00a30")]
    if gift_id == "finger_heart":
        return [*heart(32, 30, 44, color), circle(26, 22, 5, white, 0.5)]
    if gift_id == "ice_cream":
        return [polygon([(18, 30), (46, 30), (32, 61)], "#d9a05b"),
                polygon([(22, 36), (42, 36), (40, 40), (24, 40)], "#b8823f"),
                circle(32, 24, 15, color), circle(24, 30, 7, color), circle(40, 30, 7, color),
                circle(32, 8, 5, "#e0102c")]
    if gift_id == "doughnut":
        sprinkles = [polygon([(x, y), (x + 4, y - 1), (x + 4.5, y + 1), (x + 0.5, y + 2)], c)
                     for x, y, c in ((18, 22, "#ffffff"), (38, 16, "#2ec4ff"),
                                     (44, 34, "#ffffff"), (22, 40, "#2ec4ff"),
                                     (30, 46, "#ffe14d"))]
        return [ring(32, 32, 22, 22, 20, "#c98a4b"), ring(32, 31, 21, 21, 15, color),
                *sprinkles]
    if gift_id == "hand_hearts":
        return [*heart(22, 26, 30, color), *heart(42, 38, 30, "#ff7aa8")]
    if gift_id == "sunglasses":
        return [polygon([(6, 22), (58, 22), (58, 26), (6, 26)], dark),
                ellipse(19, 32, 13, 10, color), ellipse(45, 32, 13, 10, color),
                ellipse(16, 29, 4, 2.5, white), ellipse(42, 29, 4, 2.5, white),
                polygon([(30, 28), (34, 28), (34, 31), (30, 31)], dark)]
    if gift_id == "galaxy":
        return [circle(32, 32, 28, "#1b0b3a"), ellipse(32, 32, 24, 10, color, -25),
                ellipse(32, 32, 14, 6, "#c39bff", -25), circle(32, 32, 5, white),
                star(12, 14, 4, 1.5, 4, white), star(52, 50, 3, 1.2, 4, white),
                star(50, 12, 2.5, 1, 4, "#ffe14d")]
    if gift_id == "drama_queen":
        return [polygon([(8, 48), (8, 20), (20, 34), (32, 12), (44, 34), (56, 20), (56, 48)],
                        color),
                polygon([(8, 48), (56, 48), (56, 55), (8, 55)], "#a00ca0"),
                circle(32, 12, 4, "#ffe14d"), circle(8, 20, 3.5, "#ffe14d"),
                circle(56, 20, 3.5, "#ffe14d"), circle(20, 51, 2.5, "#2ec4ff"),
                circle(32, 51, 2.5, "#ffffff"), circle(44, 51, 2.5, "#2ec4ff")]
    if gift_id == "lion":
        return [star(32, 32, 30, 22, 14, color), circle(32, 34, 17, "#ffd27a"),
                circle(26, 30, 2.5, dark), circle(38, 30, 2.5, dark),
                polygon([(28, 37), (36, 37), (32, 42)], "#7a3b10"),
                ellipse(32, 45, 5, 2, "#7a3b10")]
    if gift_id == "universe":
        return [star(10, 10, 4, 1.5, 4, white), star(54, 54, 4, 1.5, 4, white),
                star(54, 12, 3, 1.2, 4, "#ffe14d"), circle(32, 32, 17, color),
                circle(26, 26, 6, "#6f8dff"), ring(32, 32, 27, 8, 3.5, "#ffd23c", -20),
                circle(40, 38, 3, "#1a33b0")]
    # a gift added to the catalog without a drawing yet: a disc with its colour
    return [circle(32, 32, 26, color), ring(32, 32, 26, 26, 3, white)]


# --- SVG -----------------------------------------------------------------------------

def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def to_svg(shapes: list[Shape], title: str) -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CANVAS} {CANVAS}" '
             f'width="{CANVAS}" height="{CANVAS}" role="img">', f"<title>{title}</title>"]
    for s in shapes:
        alpha = f' opacity="{_n(s.opacity)}"' if s.opacity < 1 else ""
        if s.kind == "circle":
            cx, cy, r = s.args
            parts.append(f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(r)}" '
                         f'fill="{s.color}"{alpha}/>')
        elif s.kind in ("ellipse", "ring"):
            cx, cy, rx, ry, *rest = s.args
            angle = rest[-1]
            turn = f' transform="rotate({_n(angle)} {_n(cx)} {_n(cy)})"' if angle else ""
            paint = (f'fill="none" stroke="{s.color}" stroke-width="{_n(rest[0])}"'
                     if s.kind == "ring" else f'fill="{s.color}"')
            parts.append(f'<ellipse cx="{_n(cx)}" cy="{_n(cy)}" rx="{_n(rx)}" ry="{_n(ry)}" '
                         f"{paint}{turn}{alpha}/>")
        else:
            points = " ".join(f"{_n(x)},{_n(y)}" for x, y in s.points)
            parts.append(f'<polygon points="{points}" fill="{s.color}"{alpha}/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# --- raster -----------------------------------------------------------------------------

def _coverage(shape: Shape, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Boolean mask of the supersampled points inside the shape."""
    if shape.kind == "circle":
        cx, cy, r = shape.args
        return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
    if shape.kind in ("ellipse", "ring"):
        cx, cy, rx, ry, *rest = shape.args
        a = math.radians(rest[-1])
        dx, dy = xs - cx, ys - cy
        u = dx * math.cos(a) + dy * math.sin(a)
        v = -dx * math.sin(a) + dy * math.cos(a)
        if shape.kind == "ellipse":
            return (u / rx) ** 2 + (v / ry) ** 2 <= 1
        half = rest[0] / 2
        outer = (u / (rx + half)) ** 2 + (v / (ry + half)) ** 2 <= 1
        inner = (u / max(rx - half, 1e-6)) ** 2 + (v / max(ry - half, 1e-6)) ** 2 < 1
        return outer & ~inner
    inside = np.zeros(xs.shape, dtype=bool)       # even-odd rule
    pts = shape.points
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True):
        if y1 == y2:
            continue
        crosses = (ys >= min(y1, y2)) & (ys < max(y1, y2))
        x_at = x1 + (ys - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (xs < x_at)
    return inside


def to_rgba(shapes: list[Shape], size: int = PNG_SIZE) -> np.ndarray:
    """The drawing as a (size, size, 4) uint8 RGBA array, straight (not premultiplied) alpha."""
    n = size * SUPERSAMPLE
    step = CANVAS / n
    grid = (np.arange(n) + 0.5) * step
    xs, ys = np.meshgrid(grid, grid)
    color = np.zeros((n, n, 3))
    alpha = np.zeros((n, n))
    for shape in shapes:
        mask = _coverage(shape, xs, ys).astype(float) * shape.opacity
        rgb = np.array([int(shape.color[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
        # "over" compositing in premultiplied form
        color = color * (1 - mask[..., None]) + rgb * mask[..., None]
        alpha = alpha * (1 - mask) + mask
    color = color.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    alpha = alpha.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    straight = np.where(alpha[..., None] > 0, color / np.maximum(alpha[..., None], 1e-9), 0)
    out = np.dstack([straight, alpha * 255])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def png_bytes(rgba: np.ndarray) -> bytes:
    """A minimal PNG (8-bit RGBA, no filter) of an RGBA array."""
    height, width, _ = rgba.shape
    raw = b"".join(b"\x00" + rgba[row].tobytes() for row in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def render_all(folder: Path = ICON_DIR, catalog_path: Path | None = None) -> list[Path]:
    """Write <id>.svg and <id>.png for every gift of the catalog; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for gift in load_catalog(catalog_path).gifts():
        shapes = drawing(gift.id, gift.color)
        svg, png = folder / f"{gift.id}.svg", folder / f"{gift.id}.png"
        svg.write_text(to_svg(shapes, gift.name))
        png.write_bytes(png_bytes(to_rgba(shapes)))
        written += [svg, png]
    return written


if __name__ == "__main__":
    for path in render_all(Path(sys.argv[1]) if len(sys.argv) > 1 else ICON_DIR):
        print(path)
