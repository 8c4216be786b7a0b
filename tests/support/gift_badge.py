"""Finding a gift's badge in a video Chromium decodes: where to look, and the canvas probe.

The server burns a badge into the composed frames (media/overlay.py), laid out for the
frame's size. A page draws a decoded frame into a canvas and averages a patch of the
badge's left padding, which is the gift's colour and nothing else; the patch depends on
the frame's size, so the probe gets one rect per size the camera may be sent at.
"""

from __future__ import annotations

from engine.catalog import load_catalog
from engine.gift_room import GiftMoment
from media.overlay import overlay_layout
from signaling.gifts import gift_overlay, hex_color

# Sizes Chromium may send the fake 1280x720 camera at: it steps down under load, and with
# transport-cc on the ingest it may start low (its first estimate is 300 kbit/s), so the
# small sizes are common on a loaded 2-core CI host.
SIZES = [(1280, 720), (960, 540), (640, 360), (480, 270), (320, 180)]
TOLERANCE = 40  # per channel: VP8 keeps colours; the canvas may round a little

# `mean(video, canvas, ctx, rect)`: the mean [r, g, b] of a rect of the video's current
# frame. The probes of tests/test_browser_gifts.py and test_browser_replays.py use it.
CANVAS_MEAN = """(video, canvas, ctx, rect) => {
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  ctx.drawImage(video, 0, 0);
  const data = ctx.getImageData(rect[0], rect[1], rect[2], rect[3]).data;
  const mean = [0, 0, 0];
  for (let i = 0; i < data.length; i += 4) for (let c = 0; c < 3; c++) mean[c] += data[i + c];
  for (let c = 0; c < 3; c++) mean[c] /= data.length / 4;
  return mean;
}"""


def gift_colour(gift_id: str) -> list[int]:
    """The gift's badge colour, [r, g, b]."""
    return list(hex_color(load_catalog().gift(gift_id).color))


def badge_patches(username: str, gift_id: str, combo: int = 1) -> dict[str, list[int]]:
    """For each of SIZES, "WxH": the patch (x, y, w, h) of the badge's left padding.

    The padding is 3 * scale pixels wide. The patch keeps one pixel off the badge's left
    edge and stays inside the padding, at least 2 pixels wide: at scale 1 (below 360
    lines) `pad - 3` was 0 pixels, an empty patch that never matched, so a viewer sent
    480x270 could not see any badge (how test_browser_gifts and test_browser_replays
    failed once the ingest answered transport-cc and Chromium started lower).
    """
    gift = load_catalog().gift(gift_id)
    icon = gift.icon_png.read_bytes() if gift.icon_png.exists() else None
    overlay = gift_overlay(gift, username, GiftMoment("", "", combo, 0, True), icon)
    patches = {}
    for width, height in SIZES:
        [(_, rect)] = overlay_layout([overlay], width, height)
        pad = 3 * rect.scale
        patches[f"{width}x{height}"] = [rect.x + 1, rect.y + 3, max(2, pad - 2), rect.height - 6]
    return patches
