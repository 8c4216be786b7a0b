"""`golive broadcast`: a headless creator that signs in and goes live over the same
Socket.IO + WebRTC path as the studio page (for demos, people without a webcam,
and the benchmark), through golive.client: its reconnects resume the live."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

from golive.client import GoliveClient
from golive.errors import GoliveError
from golive.pushes import Live
from media.ice import IceServer, is_loopback_url, restrict_host_addresses
from media.synthetic import HeadlessCreator, parse_size

log = logging.getLogger("golive.broadcast")


class BroadcastError(RuntimeError):
    pass


def size_argument(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def make_creator(source: str, size: tuple[int, int], fps: float,
                 ice: list[IceServer]) -> HeadlessCreator:
    if source == "testsrc":
        return HeadlessCreator.synthetic(size[0], size[1], fps, ice_servers=ice)
    return HeadlessCreator.from_file(source, ice_servers=ice)


class Broadcaster:
    """Owns its golive client (socket, reconnects) and the creator pc; `run()` stays live
    until stopped."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url = args.url.rstrip("/")
        self.client = GoliveClient(self.url, name="broadcast")
        self.creator: HeadlessCreator | None = None
        self.live: Live | None = None
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.client.on("live:ended", self._on_ended)
        self.client.on("room:state", self._on_state)
        self.client.on_connected(self._on_connected)

    async def _on_ended(self, data: dict[str, Any]) -> None:
        self.end_reason = str(data.get("reason"))
        self.ended.set()

    async def _on_state(self, data: dict[str, Any]) -> None:
        log.info("viewers", extra={"fields": {"viewers": data.get("viewers")}})

    async def _on_connected(self, _: GoliveClient) -> None:
        if self.live is not None and not self.ended.is_set():
            # a reconnect while live: live:start again resumes it within the grace
            log.info("reconnected; resuming the live")
            await self.go_live([])

    async def go_live(self, ice: list[IceServer]) -> None:
        if self.creator is not None:
            await self.creator.close()
        self.creator = make_creator(self.args.source, self.args.size, self.args.fps, ice)
        self.live = await self.client.go_live(self.creator, self.args.title,
                                              record=self.args.record)

    async def run(self) -> int:
        if is_loopback_url(self.url):
            # aioice skips 127.0.0.1 when gathering; a loopback server needs it.
            restriction = restrict_host_addresses(["127.0.0.1"])
        else:
            restriction = None
        try:
            try:
                await self.client.sign_in(self.args.user, self.args.password)
            except GoliveError as exc:
                raise BroadcastError(f"sign-in failed: {exc.message or exc.code}") from None
            await self.go_live([])
            assert self.live is not None
            print(f"LIVE: {self.url}/@{self.args.user}  (live {self.live.live_id}); "
                  "Ctrl-C ends it", flush=True)
            return await self._stay_live()
        finally:
            await self.stop()
            if restriction is not None:
                restriction.restore()

    async def _stay_live(self) -> int:
        duration = self.args.duration
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), duration if duration > 0 else None)
        if self.ended.is_set():
            print(f"the live ended: {self.end_reason}", flush=True)
        return 0

    async def stop(self) -> None:
        """End the live (if still on), close the pc and the client. Idempotent."""
        if self.client.connected and self.live is not None and not self.ended.is_set():
            with contextlib.suppress(GoliveError):
                await self.client.end_live()
        if self.creator is not None:
            await self.creator.close()
        await self.client.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the golive server")
    parser.add_argument("--user", required=True, help="the creator's username")
    parser.add_argument("--password", required=True, help="the creator's password")
    parser.add_argument("--source", default="testsrc",
                        help="testsrc (a moving test pattern and a tone) or a media FILE")
    parser.add_argument("--size", type=size_argument, default=(640, 360), help="WIDTHxHEIGHT")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--title", default="Headless LIVE")
    parser.add_argument("--duration", type=float, default=0,
                        help="seconds to stay live (0: until Ctrl-C)")
    parser.add_argument("--record", action="store_true",
                        help="keep a replay of the LIVE (README \"Replays\")")


def run(args: argparse.Namespace) -> int:
    async def main() -> int:
        broadcaster = Broadcaster(args)
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
        try:
            return await broadcaster.run()
        except asyncio.CancelledError:
            return 0
        except (BroadcastError, GoliveError) as exc:
            print(f"golive broadcast: {exc}", flush=True)
            return 1

    return asyncio.run(main())
