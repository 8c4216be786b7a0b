"""`golive broadcast`: a headless creator that signs in and goes live over the same
Socket.IO + WebRTC path as the studio page (for demos, people without a webcam,
and the benchmark)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

import aiohttp
import socketio

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


async def sign_in(http: aiohttp.ClientSession, url: str, user: str, password: str) -> str:
    async with http.post(f"{url}/api/signin", json={"username": user, "password": password}) as r:
        body = await r.json()
    if not body.get("ok"):
        raise BroadcastError(f"sign-in failed: {body['error']['message']}")
    return str(body["token"])


def make_creator(source: str, size: tuple[int, int], fps: float,
                 ice: list[IceServer]) -> HeadlessCreator:
    if source == "testsrc":
        return HeadlessCreator.synthetic(size[0], size[1], fps, ice_servers=ice)
    return HeadlessCreator.from_file(source, ice_servers=ice)


class Broadcaster:
    """Owns the socket and the creator pc; `run()` stays live until stopped."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url = args.url.rstrip("/")
        self.sio = socketio.AsyncClient(serializer="msgpack", reconnection=True,
                                        reconnection_delay=0.5, reconnection_delay_max=2)
        self.creator: HeadlessCreator | None = None
        self.live: dict[str, Any] | None = None
        self.ended = asyncio.Event()
        self.end_reason = ""
        self._reconnected = asyncio.Event()
        self.sio.on("live:ended", self._on_ended)
        self.sio.on("room:state", self._on_state)
        self.sio.on("connect", self._on_connect)

    async def _on_ended(self, data: dict[str, Any]) -> None:
        self.end_reason = str(data.get("reason"))
        self.ended.set()

    async def _on_state(self, data: dict[str, Any]) -> None:
        log.info("viewers", extra={"fields": {"viewers": data.get("viewers")}})

    async def _on_connect(self) -> None:
        if self.live is not None:  # a reconnect while live: resume within the grace period
            self._reconnected.set()

    async def go_live(self, ice: list[IceServer]) -> None:
        if self.creator is not None:
            await self.creator.close()
        self.creator = make_creator(self.args.source, self.args.size, self.args.fps, ice)
        ack = await self.sio.call("live:start", {"title": self.args.title,
                                                 "offer": await self.creator.offer()}, timeout=30)
        if not ack.get("ok"):
            raise BroadcastError(f"live:start refused: {ack['error']['message']}")
        await self.creator.accept_answer(ack["answer"])
        self.live = ack["live"]

    async def run(self) -> int:
        if is_loopback_url(self.url):
            # aioice skips 127.0.0.1 when gathering; a loopback server needs it.
            restriction = restrict_host_addresses(["127.0.0.1"])
        else:
            restriction = None
        try:
            async with aiohttp.ClientSession() as http:
                token = await sign_in(http, self.url, self.args.user, self.args.password)
            await self.sio.connect(self.url, auth={"token": token}, transports=["websocket"],
                                   wait_timeout=10)
            await self.go_live([])
            assert self.live is not None
            print(f"LIVE: {self.url}/@{self.args.user}  (live {self.live['live_id']}); "
                  "Ctrl-C ends it", flush=True)
            return await self._stay_live()
        finally:
            await self.stop()
            if restriction is not None:
                restriction.restore()

    async def _stay_live(self) -> int:
        duration = self.args.duration
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration if duration > 0 else None):
                while not self.ended.is_set():
                    await self._next_event()
                    if self._reconnected.is_set() and not self.ended.is_set():
                        self._reconnected.clear()
                        log.info("reconnected; resuming the live")
                        await self.go_live([])
        if self.ended.is_set():
            print(f"the live ended: {self.end_reason}", flush=True)
        return 0

    async def _next_event(self) -> None:
        """Wait for a reconnect or the end of the live; the waiters are always cleaned up."""
        waiters = {asyncio.ensure_future(self._reconnected.wait()),
                   asyncio.ensure_future(self.ended.wait())}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def stop(self) -> None:
        """End the live (if still on), close the pc and the socket. Idempotent."""
        if self.sio.connected and self.live is not None and not self.ended.is_set():
            with contextlib.suppress(Exception):
                await self.sio.call("live:end", {}, timeout=5)
        if self.creator is not None:
            await self.creator.close()
        with contextlib.suppress(Exception):
            await self.sio.disconnect()


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
        except (BroadcastError, aiohttp.ClientError, socketio.exceptions.SocketIOError) as exc:
            print(f"golive broadcast: {exc}", flush=True)
            return 1

    return asyncio.run(main())
