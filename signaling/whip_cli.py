"""`golive whip` and `golive whep`: publish to a WHIP endpoint, or play a WHEP one, from the
command line with golive/whip.py's clients (any RFC 9725 server, golive's included).

    golive whip --url https://golive.example/whip --key gls_... --source testsrc
    golive whep --url https://golive.example/whep/ann --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp

from media.ice import is_loopback_url, restrict_host_addresses
from signaling.broadcast import size_argument

if TYPE_CHECKING:  # golive.whip imports aiortc: only the commands that run load it
    from golive.whip import WhepClient, WhipClient

STATE_CHECK_S = 0.5  # how often the commands look at their peer connection


def add_arguments(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    whip = commands.add_parser(
        "whip", help="publish over WHIP (RFC 9725): a test pattern or a file, as OBS would")
    whip.add_argument("--url", required=True, help="the WHIP endpoint (the studio shows it)")
    whip.add_argument("--key", required=True, help="the stream key (the Bearer token)")
    whip.add_argument("--source", default="testsrc",
                      help="testsrc (a moving test pattern and a tone) or a media FILE")
    whip.add_argument("--size", type=size_argument, default=(640, 360), help="WIDTHxHEIGHT")
    whip.add_argument("--fps", type=float, default=30.0)
    whip.add_argument("--codec", choices=("vp8", "h264"), default=None,
                      help="offer only this video codec (default: both)")
    whip.add_argument("--duration", type=float, default=0,
                      help="seconds to publish (0: until Ctrl-C); then DELETE ends it")
    whip.set_defaults(run=run_whip)
    whep = commands.add_parser("whep", help="play a WHEP endpoint; prints frames decoded")
    whep.add_argument("--url", required=True, help="the WHEP endpoint (golive: /whep/USERNAME)")
    whep.add_argument("--token", default=None,
                      help="a session token (signed-in viewing; bans and blocks apply)")
    whep.add_argument("--duration", type=float, default=0,
                      help="seconds to play (0: until Ctrl-C)")
    whep.set_defaults(run=run_whep)


async def _until_done(pc_state: Callable[[], str], duration: float,
                      report: Callable[[], str] | None = None) -> str:
    """Wait for the duration (0: forever), or until the pc failed or closed."""
    deadline = time.monotonic() + duration if duration > 0 else None
    last_report = time.monotonic()
    while deadline is None or time.monotonic() < deadline:
        state = pc_state()
        if state in ("failed", "closed"):
            return f"the connection {state}"
        if report is not None and time.monotonic() - last_report >= 5:
            last_report = time.monotonic()
            print(report(), flush=True)
        await asyncio.sleep(STATE_CHECK_S)
    return "done"


def _main(coro_factory: Callable[[], Awaitable[int]]) -> int:
    async def main() -> int:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
        try:
            return await coro_factory()
        except asyncio.CancelledError:
            return 0

    return asyncio.run(main())


async def _hold(name: str, client: WhipClient | WhepClient,
                start: Callable[[], Awaitable[None]], started: str, duration: float,
                progress: Callable[[], str] | None = None) -> int:
    """Run one `golive whip`/`golive whep` session: start the client (`client.publish` or
    `client.play`), print `started` (its {location} filled in), hold it for the duration
    (0: until Ctrl-C) or until its connection fails, then close it (its DELETE).

    `progress`, when given, is printed every 5 s and after "stopping: why". Returns the exit
    status: 0, or 1 when the server refused (printed as "golive NAME: why"). The client is
    closed and the loopback restriction undone on every way out, Ctrl-C included.
    """
    from golive.whip import WhipError

    # aioice skips 127.0.0.1 when gathering; a loopback server needs it.
    restriction = restrict_host_addresses(["127.0.0.1"]) if is_loopback_url(client.url) \
        else None
    try:
        await start()
        print(started.format(location=client.location), flush=True)
        why = await _until_done(lambda: client.pc.connectionState if client.pc else "closed",
                                duration, progress)
        print(f"stopping: {why}" + (f"; {progress()}" if progress is not None else ""),
              flush=True)
        return 0
    except (WhipError, aiohttp.ClientError) as exc:
        print(f"golive {name}: {exc}", flush=True)
        return 1
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(client.close())
        if restriction is not None:
            restriction.restore()


def run_whip(args: argparse.Namespace) -> int:
    from golive.whip import WhipClient, file_source, pattern_source

    async def publish() -> int:
        try:
            width, height = args.size
            tracks = (pattern_source(width, height, args.fps) if args.source == "testsrc"
                      else file_source(args.source))
        except (ValueError, OSError) as exc:
            print(f"golive whip: {exc}", flush=True)
            return 2
        client = WhipClient(args.url, args.key, *tracks, video_codec=args.codec)
        return await _hold("whip", client, client.publish,
                           "LIVE over WHIP: session {location}; Ctrl-C ends it", args.duration)

    return _main(publish)


def run_whep(args: argparse.Namespace) -> int:
    from golive.whip import WhepClient

    async def play() -> int:
        player = WhepClient(args.url, args.token)
        return await _hold(
            "whep", player, player.play, "playing over WHEP: session {location}; Ctrl-C stops",
            args.duration,
            lambda: f"video frames {player.video_frames}, audio {player.audio_frames}")

    return _main(play)
