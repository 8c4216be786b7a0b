"""The bench's creator: a synthetic test pattern whose every frame carries its capture time,
sent live through the real signaling path as a real user, in its own process.

    GOLIVE_BENCH_TOKEN=... python -m bench.creator --url http://127.0.0.1:8080 \
        --size 640x360 --fps 30

It connects with the token (golive.client), goes live (`live:start` with an aiortc
offer), waits until its peer connection is up and prints {"event": "ready", "live_id":
..., "creator_id": ...}.
Then it answers "stats" requests on stdin (bench.rpc) until stdin closes, "stop" arrives,
or SIGTERM/SIGINT; it ends the live on the way out. If the server ends the live it prints
{"event": "ended", "reason": ...} and exits with status 3.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import logging
import os
import sys
import time
from typing import Any

import numpy as np
import socketio
from aiortc.mediastreams import MediaStreamError
from av.video.frame import VideoFrame

from bench import stamp
from bench.options import parse_size
from bench.rpc import emit, serve_stdin, stop_on_signals
from golive.client import GoliveClient, socket_ack
from golive.client import start_live as golive_start_live
from golive.errors import LiveRefused as LiveRefused  # re-exported: the bench catches it
from media.ice import is_loopback_url, restrict_host_addresses
from media.synthetic import HeadlessCreator, SyntheticVideoTrack, ToneAudioTrack
from signaling.tasks import cancel_and_wait

log = logging.getLogger("golive.bench.creator")

TOKEN_ENV = "GOLIVE_BENCH_TOKEN"  # not a flag: argv is visible to every user of the machine
CONNECT_TIMEOUT_S = 20.0
EXIT_LIVE_ENDED = 3


async def start_live(sio: socketio.AsyncClient | GoliveClient, creator: HeadlessCreator,
                     title: str, timeout: float, *, resume_of: str | None = None
                     ) -> dict[str, Any]:
    """Go live over a connected socket (a bench tab or a GoliveClient): golive.client's
    start_live, `live:start` with the creator's offer (resuming the live `resume_of`, as the
    studio does after a reconnect), its answer applied, then wait (at most `timeout` s)
    until the creator's peer connection is up. The live; LiveRefused when refused,
    RuntimeError when the connection fails."""
    ack = sio.ack if isinstance(sio, GoliveClient) else socket_ack(sio)
    return await golive_start_live(ack, creator, title, timeout, resume_of=resume_of)


async def end_live(sio: socketio.AsyncClient | GoliveClient | None,
                   creator: HeadlessCreator | None) -> None:
    """A bench creator's teardown, whatever state it is in: `live:end` while its socket
    is up, the socket closed, its peer connection closed (10 s at most). Never raises:
    the processes it ran on are stopped next."""
    if sio is not None:
        ack = sio.ack if isinstance(sio, GoliveClient) else socket_ack(sio)
        with contextlib.suppress(Exception):
            await ack("live:end", {}, 5.0)
        with contextlib.suppress(Exception):
            await (sio.close() if isinstance(sio, GoliveClient) else sio.disconnect())
    if creator is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(creator.close(), 10)


class StampedVideoTrack(SyntheticVideoTrack):
    """The moving test pattern with a stamp (capture time, frame number) in a top strip.

    The capture time is read right after the pacer releases the frame, i.e. when a camera
    would have delivered it; everything after (drawing, the creator's encode, the network,
    the server's decode, encode and fan-out) counts as latency.
    """

    def __init__(self, width: int = 640, height: int = 360, fps: float = 30.0) -> None:
        stamp.check_size(width, height)
        super().__init__(width, height, fps)
        self.frames_sent = 0
        self._strip = stamp.strip_height(width)

    def make_stamped_frame(self, n: int, capture_s: float) -> VideoFrame:
        frame = self.make_frame(n)
        luma = np.frombuffer(memoryview(frame.planes[0]), np.uint8).reshape(
            self.height, frame.planes[0].line_size)
        stamp.draw(luma[:, : self.width], stamp.Stamp(int(capture_s * 1000), n))
        for plane in frame.planes[1:]:  # neutral chroma under the strip: grey cells
            chroma = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
            chroma[: self._strip // 2] = 128
        return frame

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = await self._pacer.next()
        frame = self.make_stamped_frame(n, time.time())
        self.frames_sent += 1
        return frame


class StampedCreator:
    """Owns its client (socket) and the creator pc; `run()` goes live and stays until told
    to stop."""

    def __init__(self, url: str, token: str, size: tuple[int, int], fps: float,
                 title: str) -> None:
        self.title = title
        self.video = StampedVideoTrack(size[0], size[1], fps)
        self.creator = HeadlessCreator(self.video, ToneAudioTrack())
        # no reconnect: a creator whose socket drops has ended its part of the bench
        self.client = GoliveClient(url, token=token, reconnect=False, name="creator")
        self.live: dict[str, Any] | None = None
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.client.on("live:ended", self._on_ended)
        self.client.on("disconnect", self._on_disconnect)

    async def _on_ended(self, data: dict[str, Any]) -> None:
        self.end_reason = str(data.get("reason"))
        self.ended.set()

    async def _on_disconnect(self, _: Any) -> None:
        if not self.ended.is_set():
            self.end_reason = "socket_disconnected"
            self.ended.set()

    async def go_live(self) -> dict[str, Any]:
        await self.client.connect(timeout=10)
        self.live = await start_live(self.client, self.creator, self.title, CONNECT_TIMEOUT_S)
        return self.live

    async def stats(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"frames_sent": self.video.frames_sent,
                "connection": self.creator.pc.connectionState,
                "live": not self.ended.is_set()}

    async def stop(self) -> None:
        """End the live (if still on), close the pc and the socket. Idempotent."""
        if self.client.connected and self.live is not None and not self.ended.is_set():
            with contextlib.suppress(Exception):
                await self.client.end_live()
        await self.creator.close()
        await self.client.close()


async def _main(args: argparse.Namespace) -> int:
    token = os.environ.get(TOKEN_ENV)
    if not token:
        print(f"bench.creator: set {TOKEN_ENV}", file=sys.stderr)
        return 2
    restriction = restrict_host_addresses(["127.0.0.1"]) if is_loopback_url(args.url) else None
    stop = asyncio.Event()
    stop_on_signals(stop)
    creator = StampedCreator(args.url, token, args.size, args.fps, args.title)
    try:
        live = await creator.go_live()
        emit({"event": "ready", "live_id": live["live_id"], "creator_id": live["creator_id"],
              "pid": os.getpid()})

        async def watch_end() -> None:
            await creator.ended.wait()
            stop.set()

        watcher = asyncio.create_task(watch_end())
        try:
            await serve_stdin({"stats": creator.stats}, stop)
        finally:
            await cancel_and_wait(watcher)
        if creator.ended.is_set():
            emit({"event": "ended", "reason": creator.end_reason})
            return EXIT_LIVE_ENDED
        return 0
    finally:
        await creator.stop()
        if restriction is not None:
            restriction.restore()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.creator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--size", type=parse_size, default=(640, 360))
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--title", default="bench")
    args = parser.parse_args(argv)
    faulthandler.enable()  # a crash in libvpx/libsrtp leaves a trace in the log
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s creator %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_main(args))
    except Exception as exc:
        emit({"event": "error", "error": f"{type(exc).__name__}: {exc}"})
        log.exception("creator failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
