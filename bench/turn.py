"""TURN, measured: a viewer that may only use a TURN relay next to a direct one.

    python -m bench.turn --rounds 7 [--transport udp|tcp]

Runs a coturn (Debian's `turnserver`, bench/coturn.py) and a `golive serve --turn-url`
on loopback, and a synthetic creator live (640x360, 30 fps). Each round one direct
viewer and then one relay-only viewer (aiortc with iceTransportPolicy relay and the
credential its `room:join` ack carries; `--transport tcp` reaches coturn over TCP) join;
the time is from sending `room:join` to the first decoded frame. Prints the median and
every round, and coturn's count of allocations; writes nothing; every process is
stopped on every exit path.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import socketio

from bench.coturn import TURNSERVER, start_coturn, stop_coturn
from bench.creator import start_live
from bench.decoding_viewer import DecodingViewer
from bench.target import LocalServer, register_accounts
from golive.client import bare_socket, close_socket
from media.ice import IceServer, restrict_host_addresses
from media.synthetic import HeadlessCreator

FIRST_FRAME_TIMEOUT_S = 20.0


async def _tab(url: str, token: str) -> socketio.AsyncClient:
    sio = bare_socket()
    await sio.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    return sio


async def first_frame(url: str, token: str, creator_id: str, relay: bool) -> float:
    """One viewer joins, waits for its first decoded frame and leaves; the seconds from
    room:join to that frame."""
    sio = await _tab(url, token)
    viewer: DecodingViewer | None = None
    live_id: str | None = None
    try:
        started = time.monotonic()
        ack = await sio.call("room:join", {"user_id": creator_id}, timeout=20)
        if not ack.get("ok"):
            raise RuntimeError(f"room:join refused: {ack}")
        live_id = ack["live"]["live_id"]
        servers = [IceServer(s["urls"], s.get("username"), s.get("credential"))
                   for s in ack["ice_servers"]] if relay else []
        viewer = DecodingViewer("relay" if relay else "direct", ice_servers=servers,
                                relay_only=relay)
        answer = await viewer.answer(ack["offer"])
        await sio.call("rtc:answer", {"live_id": live_id, "sdp": answer}, timeout=20)
        deadline = started + FIRST_FRAME_TIMEOUT_S
        while viewer.first_video_at is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no frame within {FIRST_FRAME_TIMEOUT_S} s")
            await asyncio.sleep(0.005)
        return viewer.first_video_at - started
    finally:
        if viewer is not None:
            await viewer.close()
        await close_socket(sio, live_id)


async def run(rounds: int, transport: str) -> dict[str, Any]:
    """The figures: {"direct": [s...], "relay": [s...], "allocations": n}."""
    tmp = Path(tempfile.mkdtemp(prefix="golive-turn-bench-"))
    turn = start_coturn(tmp / "coturn")
    url = turn.url if transport == "udp" else turn.tcp_url
    server = LocalServer(tmp, {"GOLIVE_TURN_URLS": url, "GOLIVE_TURN_SECRET": turn.secret})
    restriction = restrict_host_addresses(["127.0.0.1"])  # the server binds to loopback
    creator: HeadlessCreator | None = None
    sio: socketio.AsyncClient | None = None
    try:
        await server.start()
        accounts = await register_accounts(server.url, 1 + 2 * rounds)
        sio = await _tab(server.url, accounts[0].token)
        creator = HeadlessCreator.synthetic(640, 360, 30)
        await start_live(sio, creator, "turn bench", timeout=20)
        figures: dict[str, Any] = {"direct": [], "relay": [], "transport": transport}
        for n in range(rounds):
            for mode, account in (("direct", accounts[1 + 2 * n]),
                                  ("relay", accounts[2 + 2 * n])):
                seconds = await first_frame(server.url, account.token, accounts[0].id,
                                            relay=mode == "relay")
                figures[mode].append(seconds)
                print(f"round {n + 1} {mode}: {seconds * 1000:.0f} ms", flush=True)
        figures["allocations"] = len(turn.allocated_users())
        return figures
    finally:
        if creator is not None:
            await creator.close()
        if sio is not None:
            await sio.disconnect()
        await server.stop()
        stop_coturn(turn)
        restriction.restore()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.turn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="viewers of each kind (7)")
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp",
                        help="the relay-only viewer's leg to coturn (udp)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    if shutil.which(TURNSERVER) is None:
        print(f"{TURNSERVER} is missing: apt-get install coturn", file=sys.stderr)
        return 1
    figures = asyncio.run(run(args.rounds, args.transport))
    for mode in ("direct", "relay"):
        values = figures[mode]
        print(f"{mode:>6}: median {statistics.median(values) * 1000:.0f} ms, "
              f"min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f} "
              f"({len(values)} viewers)")
    print(f"coturn allocations: {figures['allocations']} (transport {figures['transport']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
