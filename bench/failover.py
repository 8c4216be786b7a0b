"""Node death, measured: how long a dead node's viewers take to be watching again, and how
long a dead origin's live takes to be ended everywhere.

    python -m bench.failover --kills 5 --viewers 4

Runs a redis-server and three `golive serve` nodes (A, B, C) on loopback. Each round:

- **viewers**: a creator live on A; `--viewers` viewers on B (chat-only: B has no media
  for A's live until the cascade), half of them moving to A on a disconnect, half to C.
  kill -9 B; each viewer (ReconnectingViewer, as the watch page does) connects to its
  next node, joins again (media offered on A) and catches chat up by its last id. The
  time is from the kill to the join's ack (and to the first decoded frame, on A). B is
  started again for the next round.
- **origin**: a creator live on B with a member on A and one on C; kill -9 B; the time
  until both have `live:ended` (GOLIVE_LIVE_GRACE=1 here: the NODE_TTL_S of 6 s, a
  look every 2 s, then the grace).

Prints p50/p95 and writes nothing; every process is stopped on every exit path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.decoding_viewer import DecodingViewer
from golive.chat import ChatCatchUp
from golive.client import RECONNECT_DELAY_S, GoliveClient


class ReconnectingViewer:
    """A viewer's tab as the watch page behaves, on golive.client: on a disconnect it
    connects again (to the next of `urls`, as the kernel or a load balancer would send it to
    a living node), joins the live again (with media where the node serves it,
    `media_nodes`; chat-only elsewhere) and asks chat:history after the last id it showed
    (golive.chat.ChatCatchUp). `items` are the lines shown, each once; `back_at` when the
    join after the last disconnect was answered.

    It owns its client (socket and reconnect task) and its media peer; close() ends them."""

    def __init__(self, token: str, creator_id: str, urls: list[str], *,
                 media_nodes: set[str] | frozenset[str] = frozenset(), name: str = "",
                 reconnect_delay: float = RECONNECT_DELAY_S) -> None:
        self.creator_id = creator_id
        self.media_nodes = frozenset(u.rstrip("/") for u in media_nodes)
        self.name = name or creator_id
        self.client = GoliveClient(urls, token=token, reconnect_delay=reconnect_delay,
                                   call_timeout=20.0, name=self.name)
        self.client.on("chat:messages", self._on_batch)
        self.client.on("disconnect", self._on_disconnect)
        self.client.on_connected(self._join)
        self.chat = ChatCatchUp()
        self.node_url: str | None = None
        self.offered = False
        self.lost_at: float | None = None
        self.back_at: float | None = None
        self.first_frame_after: float | None = None
        self.media: DecodingViewer | None = None

    @property
    def live_id(self) -> str | None:
        return self.chat.live_id

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.chat.items

    @property
    def last(self) -> str | None:
        return self.chat.last

    @property
    def duplicates(self) -> int:
        """Lines sent to us again (dropped, as the page does)."""
        return self.chat.duplicates

    @property
    def caught_up(self) -> int:
        """Lines that came through chat:history after a gap."""
        return self.chat.caught_up

    def texts(self) -> list[str]:
        return self.chat.texts()

    async def start(self) -> None:
        """Connect to the first node and join."""
        await self.client.connect(timeout=30)

    async def _join(self, client: GoliveClient) -> None:
        url = client.url
        media = url in self.media_nodes
        ack = await client.ack("room:join", {"user_id": self.creator_id, "media": media})
        if not ack["ok"] and media and ack["error"]["code"] == "unavailable":
            ack = await client.ack("room:join", {"user_id": self.creator_id, "media": False})
        if not ack["ok"]:
            raise RuntimeError(f"room:join: {ack['error']}")
        self.node_url = url
        self.chat.live_id = ack["live"]["live_id"]
        self.offered = bool(ack.get("offer"))
        if self.media is not None:
            await self.media.close()
            self.media = None
        if ack.get("offer"):
            self.media = DecodingViewer(self.name, on_video=self._on_frame)
            answer = await self.media.answer(ack["offer"])
            await client.call("rtc:answer", {"live_id": self.chat.live_id, "sdp": answer})
        if self.lost_at is not None:
            self.back_at = time.monotonic()
        await self.chat.catch_up(self._fetch)

    async def _fetch(self, after: str | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"live_id": self.chat.live_id}
        if after is not None:
            payload["after"] = after
        return await self.client.call("chat:history", payload)

    async def _on_batch(self, batch: dict[str, Any]) -> None:
        await self.chat.on_batch(batch, self._fetch)

    async def _on_disconnect(self, _: Any) -> None:
        self.lost_at = time.monotonic()
        self.back_at = None

    def _on_frame(self, _frame: Any) -> None:
        if self.lost_at is not None and self.first_frame_after is None:
            self.first_frame_after = time.monotonic() - self.lost_at

    async def close(self) -> None:
        """Stop reconnecting, disconnect, close the media peer; safe twice."""
        await self.client.close()
        if self.media is not None:
            await self.media.close()
            self.media = None


# --- the bench ----------------------------------------------------------------------------

SECRET = "bench-failover-" + "x" * 40
NODE_ENV = {"GOLIVE_SECRET": SECRET, "GOLIVE_AUTH_RATE": "1000/s", "GOLIVE_AUTH_BURST": "2000",
            "GOLIVE_LIVE_GRACE": "1", "GOLIVE_WORKERS": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """A redis-server and `golive serve` nodes, all stopped by close()."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.redis_port = _free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: dict[str, str] = {}
        self.redis: subprocess.Popen[bytes] | None = None

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}"

    def start_redis(self) -> None:
        from signaling.embedded_redis import redis_server_binary

        self.redis = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._wait(lambda: socket.create_connection(("127.0.0.1", self.redis_port), 0.2).close(),
                   self.redis)

    def start_node(self, name: str) -> str:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = (self.folder / f"{name}.log").open("ab")
        env = {**os.environ, **NODE_ENV, "GOLIVE_PORT": str(port), "GOLIVE_NODE_ID": name,
               "REDIS_URL": self.redis_url, "GOLIVE_DATA_DIR": str(self.folder / name)}
        proc = subprocess.Popen([sys.executable, "-m", "signaling.cli", "serve"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs[name], self.urls[name] = proc, url

        def healthy() -> None:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                assert resp.status == 200
        self._wait(healthy, proc)
        return url

    def kill(self, name: str) -> float:
        proc = self.procs[name]
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return sent

    @staticmethod
    def _wait(probe: Any, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                probe()
                return
            except (OSError, AssertionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("a process did not start") from None
                time.sleep(0.05)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(timeout=10)


async def _register(url: str, name: str) -> dict[str, str]:
    async with GoliveClient(url) as client:
        session = await client.sign_up(name, "correct-horse-1", connect=False)
    return {"id": session.user.id, "token": session.token}


async def _tab(url: str, token: str, closers: list[Any]) -> GoliveClient:
    """A tab that stays down when its node dies (the rounds time what the others see)."""
    client = GoliveClient(url, token=token, reconnect=False)
    closers.append(client)
    await client.connect(timeout=5)
    return client


async def _go_live(sio: GoliveClient, closers: list[Any]) -> str:
    from bench.creator import start_live
    from media.synthetic import HeadlessCreator

    creator = HeadlessCreator.synthetic(160, 96, 15)
    closers.append(creator)
    return str((await start_live(sio, creator, "bench", timeout=20))["live_id"])


async def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def viewers_round(procs: Processes, round_no: int,
                        viewers: int) -> list[tuple[float, float | None]]:
    """One kill of B with viewers on it; (back after, first frame after) per viewer."""
    closers: list[Any] = []
    a, b, c = procs.urls["A"], procs.urls["B"], procs.urls["C"]
    try:
        creator = await _register(a, f"cr{round_no}")
        await _go_live(await _tab(a, creator["token"], closers), closers)
        crowd = []
        for i in range(viewers):
            user = await _register(b, f"v{round_no}x{i}")
            then = [a, c] if i % 2 == 0 else [c, a]
            viewer = ReconnectingViewer(user["token"], creator["id"], [b, *then],
                                        media_nodes={a}, name=f"v{i}")
            closers.append(viewer)
            await viewer.start()
            crowd.append(viewer)
        killed = procs.kill("B")
        await _until(lambda: all(v.back_at is not None for v in crowd), 30, "viewers back")
        await _until(lambda: all(v.media is None or v.first_frame_after is not None
                                 for v in crowd), 20, "first frames")
        return [(v.back_at - killed, v.first_frame_after)  # type: ignore[operator]
                for v in crowd]
    finally:
        for item in reversed(closers):
            with contextlib.suppress(Exception):
                await item.close()
        await asyncio.to_thread(procs.start_node, "B")


async def origin_round(procs: Processes, round_no: int) -> float:
    """kill -9 of a live's origin B; seconds until members on A and C have live:ended."""
    closers: list[Any] = []
    a, b, c = procs.urls["A"], procs.urls["B"], procs.urls["C"]
    try:
        creator = await _register(b, f"og{round_no}")
        await _go_live(await _tab(b, creator["token"], closers), closers)
        ended: dict[str, float] = {}
        for name, url in (("A", a), ("C", c)):
            member = await _register(url, f"m{round_no}{name}")
            sio = await _tab(url, member["token"], closers)

            def on_end(_data: Any, name: str = name) -> None:
                ended.setdefault(name, time.monotonic())
            sio.on("live:ended", on_end)
            await sio.call("room:join", {"user_id": creator["id"], "media": False}, timeout=20)
        killed = procs.kill("B")
        await _until(lambda: len(ended) == 2, 40, "live:ended on A and C")
        return max(ended.values()) - killed
    finally:
        for item in reversed(closers):
            with contextlib.suppress(Exception):
                await item.close()
        await asyncio.to_thread(procs.start_node, "B")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def run(kills: int, viewers: int) -> dict[str, Any]:
    from media.ice import restrict_host_addresses

    with tempfile.TemporaryDirectory(prefix="golive-failover-") as folder, \
            restrict_host_addresses(["127.0.0.1"]):
        procs = Processes(Path(folder))
        try:
            procs.start_redis()
            for name in ("A", "B", "C"):
                await asyncio.to_thread(procs.start_node, name)
            back: list[float] = []
            frames: list[float] = []
            ends: list[float] = []
            for round_no in range(kills):
                for after, frame in await viewers_round(procs, round_no, viewers):
                    back.append(after)
                    if frame is not None:
                        frames.append(frame)
                ends.append(await origin_round(procs, round_no))
                print(f"round {round_no + 1}/{kills}: back max {max(back[-viewers:]):.2f} s,"
                      f" live ended {ends[-1]:.2f} s", flush=True)
        finally:
            procs.close()
    result = {
        "kills": kills, "viewers_per_kill": viewers,
        "back_s": {"p50": percentile(back, 0.5), "p95": percentile(back, 0.95),
                   "n": len(back)},
        "first_frame_s": ({"p50": percentile(frames, 0.5), "p95": percentile(frames, 0.95),
                           "n": len(frames)} if frames else None),
        "origin_ended_s": {"p50": percentile(ends, 0.5), "p95": percentile(ends, 0.95),
                           "n": len(ends)},
        "spread_s": statistics.pstdev(back) if len(back) > 1 else 0.0,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=5, help="rounds (kills of B each)")
    parser.add_argument("--viewers", type=int, default=4, help="viewers on B per round")
    args = parser.parse_args(argv)
    if not 1 <= args.kills <= 50 or not 1 <= args.viewers <= 200:
        parser.error("--kills 1..50, --viewers 1..200")
    result = asyncio.run(run(args.kills, args.viewers))
    import json
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
