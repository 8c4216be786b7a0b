"""Bench viewers: a worker process running many viewers of one live, over the real
signaling path (Socket.IO room:join / rtc:answer) and real aiortc peer connections.

    python -m bench.viewers --url http://127.0.0.1:8080 --creator-id U [--decode]

Requests arrive on stdin (bench.rpc): join, status, mark, collect, leave. Viewer tokens
come inside join requests, never on the command line.

Two kinds of viewer:
- light (the default): counts RTP packets, bytes, frames (marker bit), keyframes and loss
  (sequence gaps) without decoding (bench.rtp_counting explains the aiortc patch). It also
  records each frame's arrival time against its RTP timestamp: the spread of that delay
  is the frame's arrival jitter (no absolute latency: a light viewer cannot read pixels).
- probe (the first viewer of each worker, or every viewer with --decode): decodes like a
  browser would, reads the stamp the creator drew into each frame (bench.stamp) and
  records capture -> arrival of the frame's last packet (the "added latency") and
  capture -> decoded.
Times to connected and to the first keyframe are measured from the room:join request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import logging
import os
import random
import sys
import time
from typing import Any

import numpy as np
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from av.video.frame import VideoFrame

from bench import stamp
from bench.decoding_viewer import DecodingViewer
from bench.rpc import serve_stdin, stop_on_signals
from bench.rtp_counting import (
    DELAYS_KEPT,
    RtpCounters,
    count_and_decode,
    count_only,
    rtp_timestamp_of,
)
from golive.client import bare_socket, close_socket
from media import aiortc_private
from media.ice import is_loopback_url, restrict_host_addresses, rtc_configuration

log = logging.getLogger("golive.bench.viewers")

POOLED_SAMPLES_MAX = 20_000  # per reply: bounds a collect answer to ~200 kB
CLOSE_TIMEOUT_S = 10.0
LEAVE_CONCURRENCY = 50
SEQ_GAP_MAX = 1000  # a larger jump in the stamp's frame number is a restart, not a gap


def _since(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else round(later - earlier, 4)


class BenchViewer:
    """One viewer: a Socket.IO connection, a peer connection and what it received."""

    def __init__(self, spec: dict[str, Any], url: str, creator_id: str, decode: bool,
                 codec: str) -> None:
        self.id = str(spec["id"])
        self.token = str(spec["token"])
        self.probe = bool(spec.get("probe")) or decode
        self.url = url
        self.creator_id = creator_id
        self._keyframe = asyncio.Event()
        self._connected = asyncio.Event()
        self._decoded = asyncio.Event()
        self.counters = RtpCounters(codec, on_first_keyframe=self._keyframe.set)
        self.sio = bare_socket()
        self.sio.on("room:left", self._on_removed)
        self.sio.on("live:ended", self._on_removed)
        self.pc: RTCPeerConnection | None = None
        self.decoder: DecodingViewer | None = None  # probes decode; light viewers count RTP
        self.video_receiver: RTCRtpReceiver | None = None
        self.live_id: str | None = None
        self.state = "new"  # joining, watching, failed, removed, left
        self.error: str | None = None
        self.t: dict[str, float] = {}  # time.monotonic() of each join milestone
        self.refusals = 0  # room:join answered `unavailable` with retry_after
        # probes: per window
        self.latency_arrival_ms: list[float] = []
        self.latency_decoded_ms: list[float] = []
        self.decoded = 0
        self.stamp_errors = 0
        self.source_gaps = 0  # source frames never decoded (stamp frame numbers skipped)
        self._last_seq: int | None = None

    async def _on_removed(self, data: Any) -> None:
        if self.state == "watching":
            self.state = "removed"
            self.error = f"removed by the server: {data.get('reason') if data else '?'}"

    # --- joining -----------------------------------------------------------

    async def join(self) -> None:
        """Join and wait until connected and the first keyframe is in (and, for a probe,
        decoded). Raises on failure; the caller bounds the time and closes the viewer."""
        self.state = "joining"
        self.t["start"] = time.monotonic()
        await self.sio.connect(self.url, auth={"token": self.token}, transports=["websocket"],
                               wait_timeout=10)
        self.t["join"] = time.monotonic()
        while True:
            ack = await self.sio.call("room:join", {"user_id": self.creator_id}, timeout=60)
            error = ack.get("error") or {}
            if ack.get("ok") or "retry_after" not in error:
                break
            # The server's join admission is full (a storm): come back when it says. The
            # join time still counts from the first request.
            self.refusals += 1
            await asyncio.sleep(float(error["retry_after"]))
        if not ack.get("ok"):
            raise RuntimeError(f"room:join refused: {error.get('code')}: {error.get('message')}")
        self.t["offer"] = time.monotonic()
        self.live_id = ack["live"]["live_id"]
        if self.probe:
            self.decoder = DecodingViewer(
                self.id, on_video=lambda frame: self._on_decoded(frame, time.time()))
            pc = self.pc = self.decoder.pc
        else:
            pc = self.pc = RTCPeerConnection(rtc_configuration())
        pc.on("connectionstatechange", self._on_connection_state)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=ack["offer"], type="offer"))
        for transceiver in pc.getTransceivers():
            receiver = transceiver.receiver
            if transceiver.kind == "video":
                self.video_receiver = receiver
            (count_and_decode if self.probe else count_only)(receiver, self.counters)
        await pc.setLocalDescription(await pc.createAnswer())
        ack = await self.sio.call("rtc:answer", {"live_id": self.live_id,
                                                 "sdp": pc.localDescription.sdp}, timeout=60)
        if not ack.get("ok"):
            raise RuntimeError(f"rtc:answer refused: {ack['error']['code']}: "
                               f"{ack['error']['message']}")
        self.t["answered"] = time.monotonic()
        await self._connected.wait()
        await self._keyframe.wait()
        if self.probe:
            await self._decoded.wait()
        self.state = "watching"

    def _on_connection_state(self) -> None:
        assert self.pc is not None
        state = self.pc.connectionState
        if state == "connected" and "connected" not in self.t:
            self.t["connected"] = time.monotonic()
            self._connected.set()
        elif state in ("failed", "closed") and self.state in ("joining", "watching"):
            self.state = "failed"
            self.error = f"peer connection {state}"

    def _on_decoded(self, frame: VideoFrame, wall: float) -> None:
        self.decoded += 1
        if "first_decoded" not in self.t:
            self.t["first_decoded"] = time.monotonic()
            self._decoded.set()
        plane = frame.planes[0]
        luma = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        read = stamp.read(luma, frame.width)
        if read is None:
            self.stamp_errors += 1
            return
        if self._last_seq is not None:
            gap = (read.seq - self._last_seq - 1) % stamp.SEQ_MODULO
            self.source_gaps += gap if gap < SEQ_GAP_MAX else 0
        self._last_seq = read.seq
        capture = stamp.unwrap_ms(read.capture_ms, int(wall * 1000)) / 1000
        if len(self.latency_decoded_ms) < DELAYS_KEPT:
            self.latency_decoded_ms.append((wall - capture) * 1000)
        assert self.video_receiver is not None and frame.pts is not None
        ts = rtp_timestamp_of(self.video_receiver, frame.pts)
        arrival = self.counters.arrivals.get(ts) if ts is not None else None
        if arrival is not None and len(self.latency_arrival_ms) < DELAYS_KEPT:
            self.latency_arrival_ms.append((arrival - capture) * 1000)

    # --- figures -----------------------------------------------------------

    def join_figures(self) -> dict[str, Any]:
        t, c = self.t, self.counters
        return {"id": self.id, "probe": self.probe, "ok": self.state == "watching",
                "error": self.error, "refusals": self.refusals,
                "socket_s": _since(t.get("join"), t.get("start")),
                "offer_s": _since(t.get("offer"), t.get("join")),
                "answered_s": _since(t.get("answered"), t.get("join")),
                "connected_s": _since(t.get("connected"), t.get("join")),
                "first_frame_s": _since(c.first_frame_at, t.get("join")),
                "first_keyframe_s": _since(c.first_keyframe_at, t.get("join")),
                "first_decoded_s": _since(t.get("first_decoded"), t.get("join"))}

    def mark(self) -> None:
        self.counters.mark()
        self.latency_arrival_ms, self.latency_decoded_ms = [], []
        self.decoded = self.stamp_errors = self.source_gaps = 0

    def window(self, seconds: float) -> dict[str, Any]:
        figures = self.counters.window()
        figures.update(id=self.id, probe=self.probe, state=self.state, error=self.error,
                       fps=round(figures["frames"] / seconds, 3) if seconds > 0 else None)
        if self.probe:
            figures.update(decoded=self.decoded, stamp_errors=self.stamp_errors,
                           source_gaps=self.source_gaps)
        return figures

    def delay_spread_ms(self) -> list[float]:
        """Each frame's arrival delay above this viewer's quickest frame in the window."""
        delays = self.counters.delays
        if not delays:
            return []
        fastest = min(delays)
        return [(d - fastest) * 1000 for d in delays]

    async def close(self) -> None:
        """Leave: room:leave, then disconnect the socket (the server drops our pc and our
        place in the count at once, golive.client.close_socket), close ours. Idempotent."""
        if self.state in ("joining", "watching"):
            self.state = "left"
        await close_socket(self.sio, self.live_id)
        if self.pc is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    # a probe's decoder also cancels and awaits its readers
                    await (self.decoder or self.pc).close()


def _pool(samples: list[float]) -> list[float]:
    if len(samples) > POOLED_SAMPLES_MAX:
        samples = random.sample(samples, POOLED_SAMPLES_MAX)
    return [round(s, 2) for s in samples]


class ViewerWorker:
    """The viewers of one worker process, and the requests that drive them."""

    def __init__(self, url: str, creator_id: str, decode: bool, codec: str) -> None:
        self.url = url
        self.creator_id = creator_id
        self.decode = decode
        self.codec = codec
        self.viewers: dict[str, BenchViewer] = {}
        self._window_started: float | None = None

    async def join(self, request: dict[str, Any]) -> dict[str, Any]:
        """Join the given viewers, each at start_at + at (wall clock); answer when every one
        is watching or has failed (each bounded by `timeout`)."""
        start_at = float(request["start_at"])
        timeout = float(request["join_timeout"])

        async def one(spec: dict[str, Any]) -> dict[str, Any]:
            delay = start_at + float(spec.get("at", 0)) - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            viewer = BenchViewer(spec, self.url, self.creator_id, self.decode, self.codec)
            self.viewers[viewer.id] = viewer
            try:
                async with asyncio.timeout(timeout):
                    await viewer.join()
            except Exception as exc:  # TimeoutError, socket and SDP errors alike
                viewer.state = "failed"
                viewer.error = viewer.error or f"{type(exc).__name__}: {exc}"
                await viewer.close()
            return viewer.join_figures()

        return {"joined": await asyncio.gather(*(one(s) for s in request["viewers"]))}

    async def status(self, _: dict[str, Any]) -> dict[str, Any]:
        states: dict[str, int] = {}
        for viewer in self.viewers.values():
            states[viewer.state] = states.get(viewer.state, 0) + 1
        return {"states": states,
                "frames": sum(v.counters.frames for v in self.viewers.values())}

    async def mark(self, _: dict[str, Any]) -> dict[str, Any]:
        for viewer in self.viewers.values():
            viewer.mark()
        self._window_started = time.monotonic()
        return {}

    async def collect(self, _: dict[str, Any]) -> dict[str, Any]:
        """Everything since mark(): per viewer counts, pooled latency and spread samples."""
        if self._window_started is None:
            raise RuntimeError("collect before mark")
        seconds = time.monotonic() - self._window_started
        current = [v for v in self.viewers.values() if v.state != "left"]
        probes = [v for v in current if v.probe]
        spread = [s for v in current for s in v.delay_spread_ms()]
        probe_spread = [s for v in probes for s in v.delay_spread_ms()]
        return {"seconds": seconds,
                "viewers": [v.window(seconds) for v in current],
                "latency_arrival_ms": _pool([x for v in probes for x in v.latency_arrival_ms]),
                "latency_decoded_ms": _pool([x for v in probes for x in v.latency_decoded_ms]),
                "spread_ms": _pool(spread), "probe_spread_ms": _pool(probe_spread)}

    async def leave(self, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """Every viewer leaves, or those of request["ids"] (the others stay)."""
        gate = asyncio.Semaphore(LEAVE_CONCURRENCY)

        async def close(viewer: BenchViewer) -> None:
            async with gate:
                await viewer.close()

        ids = (request or {}).get("ids")
        if ids is None:
            viewers = list(self.viewers.values())
            self.viewers.clear()
        else:
            viewers = [self.viewers.pop(i) for i in ids if i in self.viewers]
        await asyncio.gather(*(close(v) for v in viewers))
        return {"left": len(viewers)}


async def _main(args: argparse.Namespace) -> int:
    restriction = restrict_host_addresses(["127.0.0.1"]) if is_loopback_url(args.url) else None
    stop = asyncio.Event()
    stop_on_signals(stop)
    worker = ViewerWorker(args.url, args.creator_id, args.decode, args.codec)
    try:
        await serve_stdin({"join": worker.join, "status": worker.status, "mark": worker.mark,
                           "collect": worker.collect, "leave": worker.leave}, stop)
    finally:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3 * CLOSE_TIMEOUT_S):
                await worker.leave()
        if restriction is not None:
            restriction.restore()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.viewers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--creator-id", required=True)
    parser.add_argument("--decode", action="store_true", help="every viewer decodes")
    parser.add_argument("--codec", choices=("vp8", "h264"), default="vp8",
                        help="the room's video codec (for keyframe detection)")
    args = parser.parse_args(argv)
    faulthandler.enable()  # a crash in libvpx/libsrtp leaves a trace in the log
    # One certificate and SSL context for all of this worker's viewers (a browser makes
    # its own; here it would be ~1.2 ms of the load generator per join, not the server's).
    aiortc_private.share_certificate()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"%(asctime)s viewers[{os.getpid()}] %(levelname)s "
                               "%(name)s: %(message)s")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
