"""The naive relay's server: just enough of golive's protocol for the bench's own creator
(bench.creator) and viewers (bench.viewers) to run the same fan-out sweep against it.

    python -m bench.naive_server --port 8090 [--codec vp8] [--bitrate 800000]

`golive bench fanout --baseline naive` starts it (pinned like golive serve) and stops it
with SIGTERM. HTTP: GET /healthz. Socket.IO with the msgpack serializer, as golive:
connect with auth {token}; any non-empty token is the user's id (the baseline has no
accounts: sign-in is not what the fan-out bench measures). Events, with the payloads and
acks of docs/protocol.md:
- live:start {offer, title?} -> {ok, live, answer, viewers, ice_servers}
- live:end {} -> {ok}
- room:join {user_id, media?} -> {ok, live, offer, viewers, ice_servers}
- rtc:answer {live_id, sdp} -> {ok}
and the push live:ended {live_id, creator_id, reason} to the live's viewers. Errors are
{ok: false, error: {code, message}}. The media is bench.naive_relay: MediaRelay, one
stock encoder per viewer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import logging
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import socketio
from aiohttp import web
from aiortc.codecs import h264, vpx
from socketio.exceptions import ConnectionRefusedError as Refused

from bench.naive_relay import NaiveRoom
from bench.options import MAX_VIEWERS
from media.encoder import DEFAULT_VIDEO_BITRATE
from media.errors import MediaError
from media.ice import restrict_host_addresses

log = logging.getLogger("golive.bench.naive_server")

MAX_TITLE = 100
CLOSE_TIMEOUT_S = 10.0

Ack = dict[str, Any]


def error(code: str, message: str) -> Ack:
    return {"ok": False, "error": {"code": code, "message": message}}


def field(data: Any, name: str, *, optional: bool = False) -> str | None:
    """A string field of an event payload; ValueError with a precise message otherwise."""
    if not isinstance(data, dict):
        raise ValueError(f"payload must be a map, got {type(data).__name__}")
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def set_encoder_bitrate(bitrate: int) -> None:
    """Start every viewer's stock encoder at `bitrate` (aiortc: 500 kbit/s VP8, 1 Mbit/s
    H.264) so the baseline sends the stream golive's room encoder sends (800 kbit/s by
    default). A module default of aiortc, in this process only: it is the baseline's own."""
    vpx.DEFAULT_BITRATE = h264.DEFAULT_BITRATE = bitrate


@dataclass
class Live:
    info: dict[str, Any]  # {live_id, creator_id, title, started_at}
    creator_sid: str
    room: NaiveRoom


class NaiveServer:
    """The Socket.IO events over NaiveRooms, one per live creator. Owns every room and
    the tasks that end a live when its publisher's pc fails; close() ends them all."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self.sio = socketio.AsyncServer(serializer="msgpack", async_mode="aiohttp",
                                        cors_allowed_origins=[])
        self.lives: dict[str, Live] = {}  # creator id -> live
        self.starting: set[str] = set()  # creator ids whose live:start is in flight
        self.users: dict[str, str] = {}  # sid -> user id
        self.watching: dict[str, str] = {}  # viewer sid -> creator id
        self._tasks: set[asyncio.Task[None]] = set()
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        for name, handler in (("live:start", self.live_start), ("live:end", self.live_end),
                              ("room:join", self.room_join), ("rtc:answer", self.rtc_answer)):
            self.sio.on(name, self._acked(name, handler))

    def _acked(self, name: str, handler: Callable[[str, Any], Awaitable[Ack]]
               ) -> Callable[[str, Any], Awaitable[Ack]]:
        """Every request gets an ack: bad input an `invalid` one, media errors their code."""
        async def run(sid: str, data: Any = None) -> Ack:
            if sid not in self.users:
                return error("unauthorized", "connect with auth {token} first")
            try:
                return await handler(sid, data)
            except ValueError as exc:
                return error("invalid", str(exc))
            except MediaError as exc:
                return error(str(exc.code), exc.message)
            except Exception as exc:
                log.exception("%s failed", name)
                return error("unavailable", f"{type(exc).__name__}: {exc}")

        return run

    async def _connect(self, sid: str, environ: Any, auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token or len(token) > 200:
            raise Refused(
                {"code": "unauthorized", "message": "auth {token} is required"})
        self.users[sid] = token

    async def _disconnect(self, sid: str, *_: Any) -> None:
        user = self.users.pop(sid, None)
        await self._leave(sid)
        live = self.lives.get(user or "")
        if live is not None and live.creator_sid == sid:
            await self.end_live(live.info["creator_id"], "creator_left")

    async def _leave(self, sid: str) -> None:
        creator = self.watching.pop(sid, None)
        live = self.lives.get(creator or "")
        if live is not None:
            await self.sio.leave_room(sid, live.info["live_id"])
            await live.room.remove_viewer(sid)

    # --- events ------------------------------------------------------------------

    async def live_start(self, sid: str, data: Any) -> Ack:
        offer = field(data, "offer")
        title = field(data, "title", optional=True) or ""
        if len(title) > MAX_TITLE:
            raise ValueError(f"title must be at most {MAX_TITLE} characters")
        creator = self.users[sid]
        if creator in self.lives or creator in self.starting:
            return error("conflict", "you are live already")
        self.starting.add(creator)
        room = NaiveRoom(self.codec, on_publisher_gone=lambda state: self._own(
            self.end_live(creator, "creator_left")))
        try:
            answer = await room.publish(offer)  # type: ignore[arg-type]
        except BaseException:
            await room.close()
            raise
        finally:
            self.starting.discard(creator)
        info = {"live_id": "naive-" + secrets.token_hex(6), "creator_id": creator,
                "title": title, "started_at": time.time()}
        self.lives[creator] = Live(info, sid, room)
        return {"ok": True, "live": info, "answer": answer, "viewers": 0, "ice_servers": []}

    async def live_end(self, sid: str, data: Any) -> Ack:
        live = self.lives.get(self.users[sid])
        if live is None:
            return error("not_found", "you are not live")
        await self.end_live(live.info["creator_id"], "ended_by_creator")
        return {"ok": True}

    async def room_join(self, sid: str, data: Any) -> Ack:
        creator = field(data, "user_id")
        media = data.get("media", True)
        if not isinstance(media, bool):
            raise ValueError("media must be true or false")
        live = self.lives.get(creator)  # type: ignore[arg-type]
        if live is None:
            return error("not_found", "that user is not live")
        if creator == self.users[sid]:
            return error("invalid", "you cannot join your own live")
        if sid not in live.room.viewers and len(live.room.viewers) >= MAX_VIEWERS:
            return error("unavailable", f"the room is full ({MAX_VIEWERS} viewers)")
        self.watching[sid] = creator  # type: ignore[assignment]
        await self.sio.enter_room(sid, live.info["live_id"])
        offer = await live.room.add_viewer(sid) if media else None
        return {"ok": True, "live": live.info, "offer": offer,
                "viewers": len(live.room.viewers), "ice_servers": []}

    async def rtc_answer(self, sid: str, data: Any) -> Ack:
        live_id, sdp = field(data, "live_id"), field(data, "sdp")
        live = self.lives.get(self.watching.get(sid, ""))
        if live is None or live.info["live_id"] != live_id:
            return error("not_found", "join that live first")
        await live.room.accept_answer(sid, sdp)  # type: ignore[arg-type]
        return {"ok": True}

    # --- lives -------------------------------------------------------------------

    async def end_live(self, creator: str, reason: str) -> None:
        """Tell the viewers, close the room. Idempotent."""
        live = self.lives.pop(creator, None)
        if live is None:
            return
        info = live.info
        await self.sio.emit("live:ended", {"live_id": info["live_id"], "creator_id": creator,
                                           "reason": reason}, room=info["live_id"])
        for sid, watched in list(self.watching.items()):
            if watched == creator:
                del self.watching[sid]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await live.room.close()

    def _own(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for creator in list(self.lives):
            await self.end_live(creator, "server_shutdown")
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve(port: int, codec: str) -> None:
    """Serve on 127.0.0.1:port until SIGTERM/SIGINT; then end every live and stop."""
    server = NaiveServer(codec)
    app = web.Application()
    server.sio.attach(app)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with restrict_host_addresses(["127.0.0.1"]):  # loopback only: the bench's load is local
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            await stop.wait()
        finally:
            await server.close()
            await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.naive_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--codec", choices=("vp8", "h264"), default="vp8")
    parser.add_argument("--bitrate", type=int, default=DEFAULT_VIDEO_BITRATE,
                        help="each viewer encoder's starting bitrate, bit/s (golive's room "
                             f"default: {DEFAULT_VIDEO_BITRATE})")
    args = parser.parse_args(argv)
    if args.bitrate <= 0:
        parser.error("--bitrate must be > 0")
    faulthandler.enable()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s naive-server %(levelname)s %(name)s: %(message)s")
    set_encoder_bitrate(args.bitrate)
    asyncio.run(serve(args.port, args.codec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
