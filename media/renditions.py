"""A room's rendition ladder: the sizes and bitrates its composed video is encoded at.

The compositor runs once per frame on the creator's picture (gifts burned in); each
rendition then scales that composed frame down (from the next taller rendition's
picture) and encodes it with its own encoder (media/ladder_encoder.py), so every
rendition shows the same badges. A rendition is encoded only while a viewer takes
it (the top one also while nobody watches or a relay taps the room: the next viewer and
the cascade's edges start from it).

A ladder is written "720:1800,360:600,180:200": heights in lines, bitrates in kbit/s,
best first. The top rung's height caps the creator's own resolution (a 360p creator's
"720" rendition is 360p); a rung at or above the creator's height is encoded at the
creator's size. Widths keep the creator's aspect ratio, rounded to even numbers (4:2:0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from media.errors import invalid

# The bottom rung is for links of ~300 kbit/s: at 120 kbit/s its video is ~150 on the
# wire (VP8 overshoots ~15%, ~30 packets a second of headers) beside ~60 of 32 kbit/s
# Opus, leaving room for resends and keyframe bursts. At 200 it was 220 + 100 of the then
# 64 kbit/s Opus (measured, bench abr): more than the link, whose 400 ms queue then
# stayed full.
DEFAULT_LADDER_TEXT = "720:1800,360:600,180:120"
MAX_RUNGS = 4  # each extra rendition is another encode (media/ladder_encoder.py)
MIN_HEIGHT = 90
MAX_HEIGHT = 2160
# What a viewer may ask for: "auto" (the link decides, media/abr.py) or a rung's height.
AUTO = "auto"


@dataclass(frozen=True)
class Rendition:
    """One rung: frames at most `height` lines tall, encoded at `bitrate` bit/s."""

    height: int
    bitrate: int

    @property
    def name(self) -> str:
        """What viewers and the protocol call it: "720", "360"..."""
        return str(self.height)


def parse_ladder(text: str, default_bitrate: int | None = None) -> tuple[Rendition, ...]:
    """A ladder from "720:1800,360:600,180:200" (kbit/s), best first. A rung without
    ":kbps" takes `default_bitrate` (bit/s). Raises MediaError invalid."""
    if not isinstance(text, str) or not text.strip():
        raise invalid("a rendition ladder is a list like 720:1800,360:600,180:200")
    rungs = []
    for item in text.split(","):
        height_text, _, kbps_text = item.strip().partition(":")
        try:
            height = int(height_text)
            bitrate = int(kbps_text) * 1000 if kbps_text else default_bitrate
        except ValueError:
            raise invalid(f"not a rendition (height:kbps): {item.strip()!r}") from None
        if bitrate is None:
            raise invalid(f"rendition {item.strip()!r} has no bitrate (height:kbps)")
        rungs.append(Rendition(height, bitrate))
    return check_ladder(rungs)


def check_ladder(rungs: Sequence[Rendition]) -> tuple[Rendition, ...]:
    """The rungs, validated and best first. Raises MediaError invalid."""
    if not 1 <= len(rungs) <= MAX_RUNGS:
        raise invalid(f"a ladder has 1-{MAX_RUNGS} renditions, got {len(rungs)}")
    for rung in rungs:
        if not isinstance(rung, Rendition):
            raise invalid(f"expected a Rendition, got {type(rung).__name__}")
        if not MIN_HEIGHT <= rung.height <= MAX_HEIGHT:
            raise invalid(f"a rendition's height is {MIN_HEIGHT}-{MAX_HEIGHT}, got {rung.height}")
        if not 50_000 <= rung.bitrate <= 20_000_000:
            raise invalid(f"a rendition's bitrate is 50-20000 kbit/s, got {rung.bitrate // 1000}")
    ordered = tuple(sorted(rungs, key=lambda r: -r.height))
    if len({r.height for r in ordered}) != len(ordered):
        raise invalid("two renditions have the same height")
    return ordered


def scaled_size(width: int, height: int, rung_height: int) -> tuple[int, int]:
    """The size a `width` x `height` frame is encoded at for a rung `rung_height` tall:
    the frame's own when it is no taller, else scaled down keeping its aspect, even."""
    if height <= rung_height:
        return width, height
    scaled_w = max(2, round(width * rung_height / height / 2) * 2)
    return scaled_w, max(2, rung_height // 2 * 2)


def rung_for(ladder: Sequence[Rendition], quality: str) -> int | None:
    """The index of the rung a viewer pinning `quality` gets: the tallest rung no taller
    than it (the lowest rung when all are taller); None for "auto". Raises MediaError
    invalid for anything but "auto" or a height like "360"."""
    if quality == AUTO:
        return None
    if not isinstance(quality, str) or not quality.isdigit() or len(quality) > 5:
        raise invalid(f"quality must be 'auto' or a height like '360', got {quality!r}")
    height = int(quality)
    for index, rung in enumerate(ladder):
        if rung.height <= height:
            return index
    return len(ladder) - 1
