"""How long drawing gift overlays takes per frame (media.overlay.draw_overlays), on the
thread that encodes the room's video. Bounded: a few hundred frames per case, ~2 s.

    .venv/bin/python -m bench.overlay_draw [--size 640x360] [--frames 300]

Prints ms per frame for 0, 1 and 4 gift badges (icon + text, mixed sizes) on the test
pattern, the copy of the frame included.
"""

from __future__ import annotations

import argparse
import statistics
import time

import av
import numpy as np

from media.overlay import Overlay, draw_overlays
from media.synthetic import SyntheticVideoTrack, parse_size


def icon_png(rgba: tuple[int, int, int, int], side: int = 128) -> bytes:
    """A round icon of our own, like the catalog's 128x128 RGBA PNGs."""
    ys, xs = np.mgrid[0:side, 0:side]
    inside = (xs - side / 2) ** 2 + (ys - side / 2) ** 2 < (side / 2 - 2) ** 2
    pixels = np.zeros((side, side, 4), np.uint8)
    pixels[inside] = rgba
    ctx = av.CodecContext.create("png", "w")
    ctx.width = ctx.height = side
    ctx.pix_fmt = "rgba"
    frame = av.VideoFrame.from_ndarray(pixels, format="rgba")
    return b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))


def gift_badges(n: int) -> list[Overlay]:
    icon = icon_png((255, 255, 255, 255))
    return [Overlay(text=f"viewer{i} sent Rose x{i + 1}", color=(255, 30, 80), image=icon,
                    position="left", size=1 + i % 3, key=f"streak-{i}") for i in range(n)]


def measure(width: int, height: int, frames: int, badges: int) -> list[float]:
    track = SyntheticVideoTrack(width, height)
    source = [track.make_frame(i) for i in range(30)]
    overlays = gift_badges(badges)
    draw_overlays(source[0], overlays)  # rendered badges are cached, as in a room
    times = []
    for i in range(frames):
        started = time.perf_counter()
        draw_overlays(source[i % len(source)], overlays)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="640x360", type=parse_size)
    parser.add_argument("--frames", default=300, type=int, choices=range(10, 5001),
                        metavar="10-5000")
    args = parser.parse_args(argv)
    width, height = args.size
    for badges in (0, 1, 4):
        times = measure(width, height, args.frames, badges)
        print(f"{width}x{height} {badges} badges: median {statistics.median(times):.3f} ms, "
              f"p95 {sorted(times)[int(len(times) * 0.95)]:.3f} ms per frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
