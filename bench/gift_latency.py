"""Time from `gift:send` to the gift's badge in a viewer's decoded video (p50, p95).

    .venv/bin/python -m bench.gift_latency [--samples 30] [--size 640x360] [--codec vp8]
                                           [--url http://127.0.0.1:8080 --user U --password P]

Without --url it starts its own `golive serve` (free port, temporary data dir, embedded
Redis) and stops it at the end. A headless creator goes live with the test pattern; one
viewer (a real aiortc peer that decodes every frame) joins, buys coins with the test
provider (POST /api/coins/checkout) and sends Roses. For each send the clock runs from
just before the emit to the arrival of the first decoded frame that shows it:

- the first gift of a streak: its badge's own colour where the layout puts it;
- each further gift of the streak (a combo, x2, x3...): the badge now matches the
  rendering of xN better than that of x(N-1) (mean luma difference over the badge).

Rounds of `--combo` sends, a new streak each round (the previous badge must be gone and
the combo window passed). Bounded: ~1 s per sample plus ~8 s per round and the start;
every send waits at most 2 s (a miss is reported, not retried).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from av.video.frame import VideoFrame

from bench.creator import start_live
from bench.decoding_viewer import DecodingViewer
from bench.target import LocalServer, register_accounts
from engine.catalog import load_catalog
from engine.gift_room import COMBO_WINDOW_S, GiftMoment
from golive.client import bare_socket, close_socket
from media.ice import restrict_host_addresses
from media.overlay import Overlay, Rect, draw_overlays, overlay_layout
from media.synthetic import HeadlessCreator, parse_size
from signaling.gifts import gift_overlay

GIFT = "rose"
WAIT_VISIBLE_S = 2.0
CREATOR_CONNECT_S = 20.0  # live:start answered -> the creator's peer connection is up
COLOUR_TOLERANCE = 30  # per channel, on the badge's padding (VP8 keeps colours; H.264 shifts)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class Probe:
    """What the next frames are checked for, and when the gift was sent."""

    sent_at: float
    kind: str                      # first or combo
    overlay: Overlay
    previous: Overlay | None = None
    seen_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _rect(overlay: Overlay, width: int, height: int) -> Rect | None:
    placed = overlay_layout([overlay], width, height)
    return placed[0][1] if placed else None


def _badge_luma(overlay: Overlay, width: int, height: int) -> tuple[Rect, np.ndarray] | None:
    rect = _rect(overlay, width, height)
    if rect is None:
        return None
    blank = VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
    y = draw_overlays(blank, [overlay]).to_ndarray(format="gray").astype(np.int16)
    return rect, y[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]


def shows_colour(frame: VideoFrame, overlay: Overlay) -> bool:
    rect = _rect(overlay, frame.width, frame.height)
    if rect is None:
        return False
    rgb = frame.to_ndarray(format="rgb24")
    pad = 3 * rect.scale
    patch = rgb[rect.y + 2 : rect.y + rect.height - 2, rect.x + 2 : rect.x + pad - 1]
    mean = patch.reshape(-1, 3).astype(float).mean(axis=0)
    return bool(np.all(np.abs(mean - overlay.color) < COLOUR_TOLERANCE))


def shows_text(frame: VideoFrame, overlay: Overlay, previous: Overlay) -> bool:
    """The badge looks more like `overlay` than like `previous` (its luma, over the
    wider of the two badges)."""
    now = _badge_luma(overlay, frame.width, frame.height)
    before = _badge_luma(previous, frame.width, frame.height)
    if now is None or before is None:
        return False
    (rect, want), (_, old) = now, before
    w = min(want.shape[1], old.shape[1])
    h = min(want.shape[0], old.shape[0])
    got = frame.to_ndarray(format="gray").astype(np.int16)[rect.y : rect.y + h,
                                                           rect.x : rect.x + w]
    mad_now = float(np.abs(got - want[:h, :w]).mean())
    mad_before = float(np.abs(got - old[:h, :w]).mean())
    return mad_now < mad_before and shows_colour(frame, overlay)


class Viewer:
    """A viewer (and gift sender) as a browser would be: Socket.IO + a decoding aiortc pc."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.sio = bare_socket()
        self.peer = DecodingViewer(on_video=self._on_frame)
        self.probe: Probe | None = None
        self.flowing = asyncio.Event()  # 10 frames decoded
        self.live_id: str | None = None

    @property
    def last(self) -> VideoFrame | None:
        """The last decoded video frame."""
        return self.peer.last_video

    async def join(self, creator_id: str) -> None:
        await self.sio.connect(self.url, auth={"token": self.token}, transports=["websocket"],
                               wait_timeout=10)
        ack = await self.sio.call("room:join", {"user_id": creator_id}, timeout=30)
        if not ack.get("ok"):
            raise RuntimeError(f"room:join refused: {ack['error']}")
        self.live_id = ack["live"]["live_id"]
        answer = await self.peer.answer(ack["offer"])
        answered = await self.sio.call("rtc:answer", {"live_id": self.live_id,
                                                      "sdp": answer}, timeout=30)
        if not answered.get("ok"):
            raise RuntimeError(f"rtc:answer refused: {answered['error']}")
        async with asyncio.timeout(15):
            await self.flowing.wait()

    def _on_frame(self, frame: VideoFrame) -> None:
        arrived = time.perf_counter()
        if self.peer.video_frames >= 10:
            self.flowing.set()
        probe = self.probe
        if probe is not None and probe.seen_at is None and self._shows(frame, probe):
            probe.seen_at = arrived
            probe.done.set()

    @staticmethod
    def _shows(frame: VideoFrame, probe: Probe) -> bool:
        if probe.kind == "first" or probe.previous is None:
            return shows_colour(frame, probe.overlay)
        return shows_text(frame, probe.overlay, probe.previous)

    async def close(self) -> None:
        await self.peer.close()
        await close_socket(self.sio, self.live_id)


async def buy_coins(url: str, token: str) -> int:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.get(f"{url}/api/coins/packages") as resp:
            packages = (await resp.json())["packages"]
        package = min(packages, key=lambda p: p["coins"] if p["coins"] >= 100 else 10**12)
        async with http.post(f"{url}/api/coins/checkout",
                             json={"package_id": package["id"]}) as resp:
            answer = await resp.json()
        if not answer.get("ok"):
            raise RuntimeError(f"checkout refused: {answer.get('error')}")
        return int(package["coins"])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    width, height = args.size
    server = None
    if args.url is None:
        log_dir = Path(tempfile.mkdtemp(prefix="golive-gift-bench-"))
        server = LocalServer(log_dir, extra_env={"GOLIVE_VIDEO_CODEC": args.codec})
        await server.start()
        url = server.url
    else:
        url = args.url.rstrip("/")
    creator_pc: HeadlessCreator | None = None
    creator_sio = bare_socket()
    viewer: Viewer | None = None
    try:
        creator, sender = await register_accounts(url, 2, prefix="g" + uuid.uuid4().hex[:6])
        creator_pc = HeadlessCreator.synthetic(width, height, 30)
        await creator_sio.connect(url, auth={"token": creator.token}, transports=["websocket"],
                                  wait_timeout=10)
        await start_live(creator_sio, creator_pc, "gift latency", CREATOR_CONNECT_S)
        await buy_coins(url, sender.token)
        viewer = Viewer(url, sender.token)
        await viewer.join(creator.id)

        gift = load_catalog().gift(GIFT)
        icon = gift.icon_png.read_bytes() if gift.icon_png.exists() else None
        samples: dict[str, list[float]] = {"first": [], "combo": []}
        missed = 0
        rounds = math.ceil(args.samples / args.combo)
        taken = 0
        for round_no in range(rounds):
            if round_no:
                # A new streak: the badge gone (3 s after its last step) and the combo
                # window passed since the last send.
                await asyncio.sleep(max(COMBO_WINDOW_S, 3.0) + 0.5)
            streak = ""
            previous: Overlay | None = None
            for step in range(1, args.combo + 1):
                if taken >= args.samples:
                    break
                transfer = uuid.uuid4().hex
                streak = streak or transfer
                overlay = gift_overlay(gift, sender.username,
                                       GiftMoment(transfer, streak, step, 0, True), icon)
                probe = Probe(time.perf_counter(), "first" if step == 1 else "combo",
                              overlay, previous)
                viewer.probe = probe
                probe.sent_at = time.perf_counter()
                answer = await viewer.sio.call("gift:send", {
                    "transfer_id": transfer, "creator": creator.id, "gift_id": GIFT,
                    "count": 1}, timeout=10)
                if not answer.get("ok"):
                    raise RuntimeError(f"gift:send refused: {answer['error']}")
                streak = answer["receipt"]["streak"]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(WAIT_VISIBLE_S):
                        await probe.done.wait()
                taken += 1
                if probe.seen_at is None:
                    missed += 1
                else:
                    samples[probe.kind].append((probe.seen_at - probe.sent_at) * 1000)
                previous = overlay
                await asyncio.sleep(random.uniform(0.1, 0.3))
            viewer.probe = None
        all_ms = samples["first"] + samples["combo"]
        if not all_ms:
            raise RuntimeError("no gift was seen in the video")

        def summary(values: list[float]) -> dict[str, Any]:
            if not values:
                return {"n": 0}
            return {"n": len(values), "p50_ms": round(statistics.median(values), 1),
                    "p95_ms": round(percentile(values, 0.95), 1),
                    "max_ms": round(max(values), 1)}

        return {"size": f"{width}x{height}", "codec": args.codec, "samples": taken,
                "missed": missed, "all": summary(all_ms), "first": summary(samples["first"]),
                "combo": summary(samples["combo"]),
                "raw_ms": {k: [round(v, 1) for v in vs] for k, vs in samples.items()}}
    finally:
        if viewer is not None:
            await viewer.close()
        if creator_sio.connected:
            with contextlib.suppress(Exception):
                await creator_sio.call("live:end", {}, timeout=5)
            with contextlib.suppress(Exception):
                await creator_sio.disconnect()
        if creator_pc is not None:
            await creator_pc.close()
        if server is not None:
            await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=30, choices=range(1, 201),
                        metavar="1-200")
    parser.add_argument("--combo", type=int, default=10, choices=range(1, 31), metavar="1-30",
                        help="sends per streak (the first is a new badge, the rest combos)")
    parser.add_argument("--size", type=parse_size, default=(640, 360))
    parser.add_argument("--codec", choices=("vp8", "h264"), default="vp8")
    parser.add_argument("--url", default=None,
                        help="a running server (it must allow the test checkout)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    with restrict_host_addresses(["127.0.0.1"]):  # this host is loopback-only
        result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text if args.out is None else f"wrote {args.out}")
    a = result["all"]
    print(f"gift:send -> badge in the viewer's decoded video, {result['samples']} sends "
          f"({result['missed']} missed): p50 {a['p50_ms']} ms, p95 {a['p95_ms']} ms",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
