"""`soak` mode: a long steady load on one server, then proof that it let go of everything.

    golive bench soak --minutes 10 --viewers 30 --chat-rate 2/s --dm-rate 0.5/s --gift-rate 0.5/s

Starts a redis-server and `golive serve` on it (here, never --url: the verdict reads the
server's Redis), registers a creator and --viewers accounts, funds each with the test
payment provider and goes live in this process (a small synthetic stream, through
bench.creator's start_live). Then:

1. set-up: every account sends one gift, opens a DM conversation with its ring neighbour
   (i -> i+1, answered by i+1), joins once chat-only (one chat line), once with media
   and once abandoned (below);
2. warm-up: --warmup seconds of the load below, then it stops and the server settles;
3. baseline: the server idle (only the creator connected), sampled;
4. load: --minutes of churn: each account's slot joins (with media - a light aiortc
   viewer as bench.viewers has - with probability --media-share; taking the media offer
   and never answering it, a tab closed mid-join, with --abandon-share; else
   socket-only), stays about --dwell seconds, leaves (room:leave then disconnect, or
   just disconnect) and comes back; chat lines, DMs (along the ring) and gifts (retried
   by transfer id when unanswered) at their steady rates from whoever is in the room;
5. settle: the load stops; the bench polls (at most --settle seconds) until the server
   is back to the baseline and has held still for --quiet seconds (the baseline is
   taken the same way);
6. end: sampled like the baseline and compared (bench/soak_checks.py).

Every --every seconds it samples the server: RSS and open fds (process_* in /metrics),
asyncio tasks (golive_asyncio_tasks), peer connections (golive_peer_connections), sockets
(golive_sockets_connected); and its Redis: DBSIZE, used memory, clients. Sockets, peer
connections, tasks and fds must come back (bench/soak_checks.py DEFAULT_SLACK; fds may
also keep the Redis connections the pool opened under load); persistent Redis keys, family
by family, must equal the baseline's plus what the load's acknowledged operations persist
(a ledger_op record per gift, a stream and a state hash per new DM conversation); the
ledger journal and the DM streams must have grown by the acknowledged gifts and DMs.
Keys with a TTL are reported, not judged: they expire by themselves. Memory is reported:
growth baseline -> end in MiB, and the slope of RSS over the steady (second) half of the
load, where a leak shows as a slope; --max-rss-slope makes it a check.

Writes OUT/soak-<date>-<time>/result.json, soak.png (memory, fds, tasks and peers, Redis
keys over time, the phases shaded) and the server's and Redis's logs; prints a table.
Exit status 1 on a leak (or an error), 130 when interrupted; every process it started
is stopped either way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import soak_checks as checks

MAX_VIEWERS = 500
JOIN_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 10.0
GIFT_ATTEMPTS = 3  # a gift unanswered is sent again with the same transfer id
LEAVE_PAUSE_S = (0.5, 2.0)  # between a leave and the slot's next join
SETUP_CONCURRENCY = 4  # media joins at once in the set-up
QUIET_SAMPLES = 3  # an idle figure is the least of this many samples 0.5 s apart
ERROR_SAMPLES = 20
GIFT = "rose"  # 1 coin
SAMPLER_NAME = "golive-soak"  # the bench's own Redis connection, left out of the clients
SOAK_SERVER_ENV = {"GOLIVE_EVENT_RATE": "1000/s", "GOLIVE_EVENT_BURST": "2000",
                   "GOLIVE_AUTH_RATE": "1000/s", "GOLIVE_AUTH_BURST": "5000"}
RETURN_METRICS = {"sockets": "golive_sockets_connected", "peers": "golive_peer_connections",
                  "tasks": "golive_asyncio_tasks", "fds": "process_open_fds",
                  "held": "golive_viewers_held"}


# --- command line ----------------------------------------------------------------------


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.options import add_out, parse_rate

    parser.add_argument("--minutes", type=float, default=10.0,
                        help="minutes of steady load after the warm-up (10)")
    parser.add_argument("--viewers", type=int, default=30,
                        help="accounts churning in and out of the live, one slot each (30)")
    parser.add_argument("--media-share", type=float, default=0.3,
                        help="share of joins with media (a light aiortc viewer); the others "
                             "join socket-only (0.3)")
    parser.add_argument("--abandon-share", type=float, default=0.1,
                        help="share of joins that take the media offer and never answer it, "
                             "then leave (0.1)")
    parser.add_argument("--dwell", type=float, default=20.0,
                        help="mean seconds a viewer stays before leaving (20)")
    parser.add_argument("--chat-rate", type=parse_rate, default=parse_rate("2/s"),
                        help="chat lines per second into the live, in all (2/s)")
    parser.add_argument("--dm-rate", type=parse_rate, default=parse_rate("0.5/s"),
                        help="direct messages per second, in all (0.5/s)")
    parser.add_argument("--gift-rate", type=parse_rate, default=parse_rate("0.5/s"),
                        help="gifts (a Rose, 1 coin) per second, in all (0.5/s)")
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="seconds of the same load before the baseline (60)")
    parser.add_argument("--settle", type=float, default=90.0,
                        help="at most this many seconds for the server to come back and "
                             "hold still, before the baseline and after the load (90)")
    parser.add_argument("--quiet", type=float, default=30.0,
                        help="seconds the idle figures must hold still before the baseline "
                             "and the end are taken (30: a closed socket's engine.io ping "
                             "task lives out its 25 s interval)")
    parser.add_argument("--every", type=float, default=5.0,
                        help="seconds between samples of the server (5)")
    parser.add_argument("--slack-tasks", type=int, default=checks.DEFAULT_SLACK["tasks"],
                        help="asyncio tasks the end may have above the baseline "
                             f"({checks.DEFAULT_SLACK['tasks']})")
    parser.add_argument("--slack-fds", type=int, default=checks.DEFAULT_SLACK["fds"],
                        help="open fds the end may have above the baseline, besides idle "
                             f"Redis connections ({checks.DEFAULT_SLACK['fds']})")
    parser.add_argument("--max-rss-slope", type=float,
                        help="fail when RSS grows faster than this many MiB/min over the "
                             "load's steady half (default: report only)")
    parser.add_argument("--size", default="160x96", help="the creator's video (160x96)")
    parser.add_argument("--fps", type=float, default=5.0, help="the creator's frame rate (5)")
    parser.add_argument("--seed", type=int, default=1, help="the load's random seed (1)")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for the server (repeatable)")
    add_out(parser)


def add_mode(modes: Any) -> argparse.ArgumentParser:
    """Add the `soak` mode to an argparse subparsers object (run=run, bench_mode=soak)."""
    parser = modes.add_parser(
        "soak", help="minutes of churn, chat, DMs and gifts; then fds, tasks, peers, "
                     "sockets and Redis keys must be back to the baseline",
        description="A long steady load on one server; then everything it held must be "
                    "let go. Exits 1 on a leak.")
    _add_arguments(parser)
    parser.set_defaults(run=run, bench_mode="soak")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the soak `args` describes; the exit status (1 on a leak, 130 when interrupted)."""
    from bench.options import flags_ok
    from media.synthetic import parse_size

    try:
        args.size = parse_size(args.size) if isinstance(args.size, str) else args.size
    except ValueError as exc:
        print(f"bench soak: --size: {exc}", file=sys.stderr)
        return 2
    if not flags_ok("bench soak", (
            (not args.minutes > 0, "--minutes must be > 0"),
            (not 3 <= args.viewers <= MAX_VIEWERS, f"--viewers must be 3..{MAX_VIEWERS}"),
            (not 0 <= args.media_share <= 1, "--media-share must be in [0, 1]"),
            (not 0 <= args.abandon_share <= 1 - args.media_share,
             "--abandon-share must be in [0, 1 - --media-share]"),
            (not args.dwell > 0, "--dwell must be > 0"),
            (args.warmup < 0, "--warmup must be >= 0"),
            (not args.settle > 0, "--settle must be > 0"),
            (args.quiet < 0, "--quiet must be >= 0"),
            (not args.every > 0, "--every must be > 0"),
            (args.slack_tasks < 0 or args.slack_fds < 0, "slacks must be >= 0"),
            (any("=" not in kv for kv in args.server_env), "--server-env takes KEY=VALUE"))):
        return 2
    return asyncio.run(_execute(args))


def main(argv: list[str] | None = None) -> int:
    from bench.options import module_main

    return module_main("bench.soak", __doc__, _add_arguments, run, argv)


# --- the load ----------------------------------------------------------------------------


@dataclass
class Tally:
    """One kind of operation: sent, acknowledged, refused (by code), unanswered."""

    sent: int = 0
    ok: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    unknown: int = 0

    def refuse(self, code: str) -> None:
        self.refused[code] = self.refused.get(code, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "ok": self.ok, "refused": dict(self.refused),
                "unknown": self.unknown}


class ChatOnlyViewer:
    """A socket-only member of the live (`room:join {media: false}`); with `abandon`, a
    media join that takes the server's offer and never answers it (a tab closed mid-join:
    the server made a peer connection for it, which must not outlive the socket)."""

    def __init__(self, url: str, token: str, creator_id: str, abandon: bool = False) -> None:
        from golive.client import bare_socket

        self.url, self.token, self.creator_id = url, token, creator_id
        self.abandon = abandon
        self.sio = bare_socket()
        self.live_id: str | None = None

    async def join(self) -> None:
        await self.sio.connect(self.url, auth={"token": self.token}, transports=["websocket"],
                               wait_timeout=10)
        ack = await self.sio.call("room:join", {"user_id": self.creator_id,
                                                "media": self.abandon},
                                  timeout=CALL_TIMEOUT_S)
        if not ack.get("ok"):
            raise RuntimeError(f"room:join refused: {ack['error']['code']}")
        self.live_id = ack["live"]["live_id"]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()


class SoakLoad:
    """The churn and the steady senders. Owns every task and client it starts: stop()
    cancels nothing mid-call; it asks every loop to end and awaits them (each closes its
    client), so the server sees ordinary leaves."""

    def __init__(self, url: str, creator_id: str, accounts: list[Any],
                 args: argparse.Namespace, rng: random.Random) -> None:
        self.url, self.creator_id, self.accounts = url, creator_id, accounts
        self.args, self.rng = args, rng
        self.active: dict[int, Any] = {}  # slot -> a joined viewer
        # Held around a send on a slot's socket, and by the slot before it leaves: a leave
        # under a call would leave its outcome unknown (applied or not), and the keys the
        # run persisted could no longer be computed exactly.
        self.busy: dict[int, asyncio.Lock] = {}
        self.joins = {"media": Tally(), "socket": Tally(), "abandoned": Tally()}
        self.leaves = 0
        self.chat, self.dm, self.gift = Tally(), Tally(), Tally()
        self.gifts_acked: set[str] = set()
        self.dm_pairs: set[tuple[int, int]] = set()  # conversations a DM was acknowledged in
        self.errors: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._counter = 0

    def _note(self, text: str) -> None:
        if len(self.errors) < ERROR_SAMPLES:
            self.errors.append(text)

    def start(self) -> None:
        self._stop.clear()
        self._tasks = [asyncio.create_task(self._slot(i), name=f"soak-slot-{i}")
                       for i in range(len(self.accounts))]
        for rate, send, name in ((self.args.chat_rate, self._send_chat, "chat"),
                                 (self.args.dm_rate, self._send_dm, "dm"),
                                 (self.args.gift_rate, self._send_gift, "gift")):
            self._tasks.append(asyncio.create_task(self._paced(rate, send), name=f"soak-{name}"))

    async def stop(self) -> None:
        """End every loop; each viewer leaves. Idempotent."""
        self._stop.set()
        tasks, self._tasks = self._tasks, []
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                self._note(f"load task failed: {type(result).__name__}: {result}")

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def viewer(self, slot: int, kind: str) -> Any:
        from bench.viewers import BenchViewer

        account = self.accounts[slot]
        if kind == "media":
            return BenchViewer({"id": str(slot), "token": account.token}, self.url,
                               self.creator_id, False, "vp8")
        return ChatOnlyViewer(self.url, account.token, self.creator_id,
                              abandon=kind == "abandoned")

    def pick_kind(self) -> str:
        """media, abandoned (a media join never answered) or socket (chat-only)."""
        draw = self.rng.random()
        if draw < self.args.media_share:
            return "media"
        if draw < self.args.media_share + self.args.abandon_share:
            return "abandoned"
        return "socket"

    async def join(self, slot: int, kind: str) -> Any | None:
        """One join of `slot`'s account; the viewer, or None (closed) when it failed."""
        client = self.viewer(slot, kind)
        tally = self.joins[kind]
        tally.sent += 1
        try:
            async with asyncio.timeout(JOIN_TIMEOUT_S):
                await client.join()
        except Exception as exc:
            tally.refuse(type(exc).__name__)
            self._note(f"join ({kind}): {type(exc).__name__}: {exc}")
            await client.close()
            return None
        tally.ok += 1
        return client

    async def leave(self, client: Any) -> None:
        # Half leave the room first; the other half only disconnect, which the server
        # reads as a lost network and holds for a resume (the settle waits for the holds).
        if self.rng.random() < 0.5:
            from golive.client import leave_lives
            await leave_lives(client.sio, [client.live_id], timeout=CALL_TIMEOUT_S)
        await client.close()
        self.leaves += 1

    async def _slot(self, slot: int) -> None:
        rng = self.rng
        await self._pause(rng.uniform(0, self.args.dwell / 2))  # spread the first joins
        while not self._stop.is_set():
            kind = self.pick_kind()
            client = await self.join(slot, kind)
            if client is not None:
                busy = self.busy.setdefault(slot, asyncio.Lock())
                self.active[slot] = client
                try:  # an abandoned join's tab closes within a few seconds
                    await self._pause(rng.uniform(0.5, 1.5) * (
                        min(2.0, self.args.dwell) if kind == "abandoned" else self.args.dwell))
                finally:
                    self.active.pop(slot, None)
                    async with busy:
                        await self.leave(client)
            await self._pause(rng.uniform(*LEAVE_PAUSE_S))

    async def _paced(self, rate: float, send: Any) -> None:
        interval = 1.0 / rate
        due = time.monotonic() + self.rng.uniform(0, interval)
        while not self._stop.is_set():
            await self._pause(max(0.0, due - time.monotonic()))
            if self._stop.is_set():
                return
            due += interval
            if self.active:
                slot = self.rng.choice(list(self.active))
                async with self.busy[slot]:
                    if slot in self.active:  # it may have begun leaving meanwhile
                        await send(slot, self.active[slot])

    async def _call(self, tally: Tally, sio: Any, event: str, payload: dict[str, Any]
                    ) -> dict[str, Any] | None:
        """One acknowledged call: the answer when ok, else None (refused or unanswered)."""
        try:
            ack = await sio.call(event, payload, timeout=CALL_TIMEOUT_S)
        except Exception as exc:  # TimeoutError, or the socket closed under the call
            tally.unknown += 1
            self._note(f"{event}: {type(exc).__name__}")
            return None
        if not ack.get("ok"):
            tally.refuse(ack["error"]["code"])
            return None
        tally.ok += 1
        return dict(ack)

    async def _send_chat(self, slot: int, client: Any) -> None:
        self.chat.sent += 1
        await self._call(self.chat, client.sio, "chat:send",
                         {"live_id": client.live_id, "text": f"soak line {self.chat.sent}"})

    async def send_dm(self, sio: Any, sender: int, recipient: int) -> None:
        self.dm.sent += 1
        to = self.accounts[recipient].id
        if await self._call(self.dm, sio, "dm:send",
                            {"to": to, "text": f"soak dm {self.dm.sent} {uuid.uuid4().hex[:8]}"}):
            self.dm_pairs.add((min(sender, recipient), max(sender, recipient)))

    async def _send_dm(self, slot: int, client: Any) -> None:
        step = self.rng.choice((1, -1))  # along the ring: conversations the set-up opened
        await self.send_dm(client.sio, slot, (slot + step) % len(self.accounts))

    async def send_gift(self, sio: Any) -> None:
        """One Rose to the creator; unanswered, sent again with the same transfer id (the
        ledger applies it once)."""
        self.gift.sent += 1
        transfer = uuid.uuid4().hex
        payload = {"transfer_id": transfer, "creator": self.creator_id, "gift_id": GIFT,
                   "count": 1}
        for _ in range(GIFT_ATTEMPTS):
            try:
                ack = await sio.call("gift:send", payload, timeout=CALL_TIMEOUT_S)
            except Exception as exc:
                self._note(f"gift:send: {type(exc).__name__}")
                if not sio.connected:
                    break
                continue
            if ack.get("ok"):
                self.gift.ok += 1
                self.gifts_acked.add(transfer)
            else:
                self.gift.refuse(ack["error"]["code"])
            return
        self.gift.unknown += 1

    async def _send_gift(self, slot: int, client: Any) -> None:
        await self.send_gift(client.sio)

    def figures(self) -> dict[str, Any]:
        return {"joins": {k: t.as_dict() for k, t in self.joins.items()},
                "leaves": self.leaves, "chat": self.chat.as_dict(), "dm": self.dm.as_dict(),
                "gift": self.gift.as_dict(), "dm_conversations": len(self.dm_pairs),
                "error_samples": list(self.errors)}


# --- the server and its samples ----------------------------------------------------------


class SoakRun:
    """Owns Redis, the server, the creator and the load; close() stops them all, once."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, progress: Any) -> None:
        self.args, self.run_dir, self.progress = args, run_dir, progress
        self.redis_child: Any = None
        self.redis: Any = None
        self.server: Any = None
        self.http: Any = None
        self.creator: Any = None
        self.creator_sio: Any = None
        self.restriction: Any = None
        self.load: SoakLoad | None = None
        self.creator_id = ""
        self.ended = ""  # why the server ended the live, once it did
        self.accounts: list[Any] = []
        self.t0 = time.monotonic()
        self.samples: list[dict[str, Any]] = []
        self.phases: list[dict[str, Any]] = []
        self.phase = "start"
        self._sampler: asyncio.Task[None] | None = None
        self._closing: asyncio.Future[None] | None = None

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    def enter(self, phase: str) -> None:
        if self.phases:
            self.phases[-1]["end"] = self.now()
        self.phases.append({"phase": phase, "start": self.now(), "end": None})
        self.phase = phase
        self.progress.update(f"soak: {phase}")

    async def start(self) -> None:
        from redis.asyncio import Redis

        from bench.processes import Child
        from bench.target import LocalServer, free_port
        from signaling.embedded_redis import redis_server_binary

        self.progress.update("starting redis-server")
        port = free_port()
        redis_url = f"redis://127.0.0.1:{port}"
        self.redis_child = Child("redis", [
            redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.run_dir)],
            self.run_dir / "redis.log", rpc=False)
        await self.redis_child.start()
        self.redis = Redis.from_url(redis_url, client_name=SAMPLER_NAME,
                                    decode_responses=True)
        for _ in range(200):  # 10 s
            with contextlib.suppress(Exception):
                if await self.redis.ping():
                    break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"redis-server did not answer; see {self.run_dir}/redis.log")
        self.progress.update("starting golive serve")
        env = dict(SOAK_SERVER_ENV, REDIS_URL=redis_url)
        env.update(kv.split("=", 1) for kv in self.args.server_env)
        self.server = LocalServer(self.run_dir, env)
        await self.server.start()

    async def go_live(self) -> None:
        import aiohttp

        from bench.creator import start_live
        from bench.gift_latency import buy_coins
        from bench.target import register_accounts
        from golive.client import bare_socket
        from media.ice import restrict_host_addresses
        from media.synthetic import HeadlessCreator

        url = self.server.url
        self.http = aiohttp.ClientSession()
        count = self.args.viewers + 1
        creator, *self.accounts = await register_accounts(
            url, count, on_progress=lambda d, n: self.progress.update(
                f"registering accounts {d}/{n}"))
        self.creator_id = creator.id
        self.progress.update("buying coins for every viewer (test provider)")
        for account in self.accounts:
            await buy_coins(url, account.token)
        self.restriction = restrict_host_addresses(["127.0.0.1"])
        width, height = self.args.size
        self.creator = HeadlessCreator.synthetic(width, height, self.args.fps)
        self.creator_sio = bare_socket()

        async def on_ended(data: dict[str, Any]) -> None:
            self.ended = f"the server ended the live: {data.get('reason')}"

        self.creator_sio.on("live:ended", on_ended)
        await self.creator_sio.connect(url, auth={"token": creator.token},
                                       transports=["websocket"], wait_timeout=10)
        await start_live(self.creator_sio, self.creator, "soak", JOIN_TIMEOUT_S)
        self.load = SoakLoad(url, self.creator_id, self.accounts, self.args,
                             random.Random(self.args.seed))
        self._sampler = asyncio.create_task(self._sample_every(), name="soak-sampler")

    def check_live(self) -> None:
        """RuntimeError once the creator's live is gone (every later figure is moot)."""
        state = self.creator.pc.connectionState if self.creator is not None else "none"
        if self.ended or state in ("failed", "closed") or not self.creator_sio.connected:
            raise RuntimeError(self.ended or f"the creator is no longer live (pc {state})")

    async def set_up(self) -> None:
        """Every account once through every path the load takes (bench/soak.py, step 1)."""
        from golive.client import bare_socket

        assert self.load is not None
        load, url, n = self.load, self.server.url, len(self.accounts)
        socks = [bare_socket() for _ in range(n)]
        try:
            for sio, account in zip(socks, self.accounts, strict=True):
                await sio.connect(url, auth={"token": account.token}, transports=["websocket"],
                                  wait_timeout=10)
            for i in range(n):  # a request i -> i+1, answered by i+1: accepted both ways
                await load.send_dm(socks[i], i, (i + 1) % n)
            for i in range(n):
                await load.send_dm(socks[(i + 1) % n], (i + 1) % n, i)
            for sio in socks:
                await load.send_gift(sio)
        finally:
            await asyncio.gather(*(s.disconnect() for s in socks), return_exceptions=True)
        for kind in ("socket", "media", "abandoned"):
            gate = asyncio.Semaphore(SETUP_CONCURRENCY)

            async def once(slot: int, kind: str = kind, gate: asyncio.Semaphore = gate
                           ) -> None:
                async with gate:
                    client = await load.join(slot, kind)
                    if client is not None:
                        if kind == "socket":
                            load.chat.sent += 1
                            await load._call(load.chat, client.sio, "chat:send",
                                             {"live_id": client.live_id, "text": "hello"})
                        await load.leave(client)

            await asyncio.gather(*(once(i) for i in range(n)))

    # --- samples

    async def sample(self, phase: str | None = None) -> dict[str, Any]:
        from prometheus_client.parser import text_string_to_metric_families

        async with self.http.get(f"{self.server.url}/metrics") as resp:
            text = await resp.text()
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if not s.labels:
                    values[s.name] = s.value
        pipe = self.redis.pipeline(transaction=False)
        pipe.dbsize()
        pipe.info("memory")
        pipe.client_list()
        dbsize, memory, clients = await pipe.execute()
        sample = {
            "t": self.now(), "phase": phase or self.phase,
            "rss_mib": round(values.get("process_resident_memory_bytes", 0) / 2**20, 2),
            **{name: int(values.get(metric, -1)) for name, metric in RETURN_METRICS.items()},
            "peers_alive": int(values.get("golive_peer_connections_alive", -1)),
            "redis_keys": int(dbsize),
            "redis_mib": round(int(memory["used_memory"]) / 2**20, 2),
            "redis_clients": sum(1 for c in clients if c.get("name") != SAMPLER_NAME),
            "viewers": len(self.load.active) if self.load else 0}
        self.samples.append(sample)
        return sample

    async def _sample_every(self) -> None:
        while True:
            await asyncio.sleep(self.args.every)
            try:
                await self.sample()
            except Exception as exc:  # a missed sample is a gap in the plot, not a failure
                self.progress.note(f"sample failed: {type(exc).__name__}: {exc}")

    async def idle(self, phase: str) -> dict[str, Any]:
        """The idle figure: each measure the least of QUIET_SAMPLES samples 0.5 s apart (a
        sample can catch a short-lived task or fd; the floor is what stays)."""
        taken = []
        for i in range(QUIET_SAMPLES):
            if i:
                await asyncio.sleep(0.5)
            taken.append(await self.sample(phase))
        return {k: (min(s[k] for s in taken) if isinstance(taken[0][k], int | float)
                    and k != "t" else taken[-1][k]) for k in taken[0]}

    async def settle(self, phase: str, ready: Any, timeout: float) -> dict[str, Any]:
        """Poll the idle figure until `ready(figure)` holds and the returning measures have
        not changed for --quiet seconds (connections closed a moment ago still wind down:
        engine.io's ping task of a closed socket sleeps out its 25 s interval), or
        `timeout` s; the last figure."""
        deadline = time.monotonic() + timeout
        previous: tuple[int, ...] | None = None
        since = time.monotonic()
        while True:
            figure = await self.idle(phase)
            now = time.monotonic()
            current = tuple(figure[k] for k in checks.RETURNING)
            if current != previous:
                previous, since = current, now
            if (ready(figure) and now - since >= self.args.quiet) or now > deadline:
                return figure
            await asyncio.sleep(max(0.5, min(2.0, self.args.every / 2)))

    async def keys(self) -> dict[str, Any]:
        """Every key with its TTL, by family; the ledger journal's and DM streams' length."""
        pairs: list[tuple[str, int]] = []
        batch: list[str] = []

        async def flush() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for key in batch:
                pipe.ttl(key)
            pairs.extend(zip(batch, await pipe.execute(), strict=True))
            batch.clear()

        async for key in self.redis.scan_iter(count=1000):
            batch.append(key)
            if len(batch) >= 500:
                await flush()
        if batch:
            await flush()
        persistent, volatile = checks.family_counts(pairs)
        dm_streams = [k for k, _ in pairs if checks.key_family(k) == "dm"]
        pipe = self.redis.pipeline(transaction=False)
        pipe.xlen("{core}ledger:journal")
        for key in dm_streams:
            pipe.xlen(key)
        lengths = await pipe.execute()
        return {"total": len(pairs), "persistent": dict(persistent), "volatile": dict(volatile),
                "journal_entries": int(lengths[0]), "dm_entries": int(sum(lengths[1:]))}

    # --- closing

    async def close(self) -> None:
        """The load, the live, the server, Redis. Idempotent; runs to its end even when the
        caller is cancelled."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        from bench.creator import end_live
        from signaling.tasks import cancel_and_wait

        if self.load is not None:
            await self.load.stop()
        if self._sampler is not None:
            await cancel_and_wait(self._sampler)
        await end_live(self.creator_sio, self.creator)
        if self.restriction is not None:
            self.restriction.restore()
            self.restriction = None
        if self.http is not None:
            await self.http.close()
        if self.server is not None:
            await self.server.stop()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        if self.redis_child is not None:
            await self.redis_child.stop()

    def kill_now(self) -> None:
        import signal

        if self.server is not None:
            self.server.kill_now()
        if self.redis_child is not None:
            self.redis_child.signal_group(signal.SIGKILL)


# --- the run -------------------------------------------------------------------------------


def _creator_only(figure: dict[str, Any]) -> bool:
    return figure["sockets"] <= 1 and figure["peers"] <= 1


def verdicts(args: argparse.Namespace, base: dict[str, Any], end: dict[str, Any],
             keys_base: dict[str, Any], keys_end: dict[str, Any], load: dict[str, Any],
             new_conversations: int) -> list[checks.Verdict]:
    """Every comparison of the run (bench/soak_checks.py has the rules)."""
    slack = dict(checks.DEFAULT_SLACK, tasks=args.slack_tasks, fds=args.slack_fds)
    out = [checks.returned(m, base[m], end[m], slack[m])
           for m in ("sockets", "peers", "tasks")]
    pool = checks.fd_allowance(base["redis_clients"], end["redis_clients"])
    out.append(checks.returned("fds", base["fds"], end["fds"], slack["fds"] + pool,
                               f"{pool} more idle Redis connections" if pool else ""))
    gifts = load["gift"]
    expected = checks.expected_key_growth(gifts["ok"], new_conversations)
    out += checks.key_verdicts(keys_base["persistent"], keys_end["persistent"], expected)
    out.append(checks.entries_verdict("journal entries", keys_base["journal_entries"],
                                      keys_end["journal_entries"], gifts["ok"],
                                      gifts["unknown"]))
    out.append(checks.entries_verdict("dm entries", keys_base["dm_entries"],
                                      keys_end["dm_entries"], load["dm"]["ok"],
                                      load["dm"]["unknown"]))
    return out


def memory_figures(samples: list[dict[str, Any]], load_phase: dict[str, Any],
                   base: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    steady = checks.steady_half(samples, load_phase["start"], load_phase["end"])
    return {
        "rss_baseline_mib": base["rss_mib"], "rss_end_mib": end["rss_mib"],
        "rss_growth_mib": round(end["rss_mib"] - base["rss_mib"], 2),
        "rss_peak_mib": max((s["rss_mib"] for s in samples), default=None),
        "rss_slope_mib_per_min": _round(checks.slope_per_minute(
            [s["t"] for s in steady], [s["rss_mib"] for s in steady])),
        "steady_samples": len(steady),
        "redis_baseline_mib": base["redis_mib"], "redis_end_mib": end["redis_mib"],
        "redis_slope_mib_per_min": _round(checks.slope_per_minute(
            [s["t"] for s in steady], [s["redis_mib"] for s in steady]))}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def _measure(soak: SoakRun, result: dict[str, Any]) -> None:
    args, progress = soak.args, soak.progress
    await soak.start()
    result["processes"] = {"server": soak.server.pid, "redis": soak.redis_child.pid}
    await soak.go_live()
    load = soak.load
    assert load is not None
    soak.enter("set-up")
    await soak.set_up()
    setup_pairs = set(load.dm_pairs)
    result["set_up"] = load.figures()
    soak.check_live()

    soak.enter("warm-up")
    load.start()
    await asyncio.sleep(args.warmup)
    await load.stop()
    soak.check_live()
    soak.enter("baseline")
    base = await soak.settle("baseline", _creator_only, args.settle)
    keys_base = await soak.keys()
    progress.note(f"baseline: {_line(base)}; {keys_base['total']} Redis keys")

    # Counted from here: the load phase's own operations.
    load_before = load.figures()
    load.gifts_acked.clear()
    for tally in (load.chat, load.dm, load.gift, *load.joins.values()):
        tally.sent = tally.ok = tally.unknown = 0
        tally.refused.clear()
    load.leaves = 0
    soak.enter("load")
    load.start()
    seconds = args.minutes * 60
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 5.0))
        soak.check_live()
        progress.update(f"soak: load, {seconds - max(0, left):.0f}/{seconds:.0f} s, "
                        f"{len(load.active)} in the room, {load.gift.ok} gifts, "
                        f"{load.dm.ok} DMs, {load.chat.ok} lines")
    await load.stop()
    figures = load.figures()
    result["load"] = figures
    result["warmup_load"] = load_before

    soak.enter("settle")
    slack = {"tasks": args.slack_tasks, "fds": args.slack_fds}

    def back(figure: dict[str, Any]) -> bool:
        pool = checks.fd_allowance(base["redis_clients"], figure["redis_clients"])
        # a viewer that just disconnected is held for its resume (GOLIVE_VIEWER_RESUME_GRACE,
        # 10 s), still counted in Redis: the server is back once those holds ran out
        return (figure["sockets"] <= base["sockets"] and figure["peers"] <= base["peers"]
                and figure["held"] <= base["held"]
                and figure["tasks"] <= base["tasks"] + slack["tasks"]
                and figure["fds"] <= base["fds"] + slack["fds"] + pool)

    end = await soak.settle("settle", back, args.settle)
    keys_end = await soak.keys()
    soak.enter("end")
    soak.phases[-1]["end"] = soak.now()
    progress.note(f"end:      {_line(end)}; {keys_end['total']} Redis keys")

    new_conversations = len(load.dm_pairs - setup_pairs)
    result.update(baseline=base, end=end, keys_baseline=keys_base, keys_end=keys_end,
                  new_conversations=new_conversations)
    load_phase = next(p for p in soak.phases if p["phase"] == "load")
    result["memory"] = memory_figures(soak.samples, load_phase, base, end)
    found = verdicts(args, base, end, keys_base, keys_end, figures, new_conversations)
    slope = result["memory"]["rss_slope_mib_per_min"]
    if args.max_rss_slope is not None and slope is not None:
        found.append(checks.Verdict("rss slope MiB/min", 0.0, slope, args.max_rss_slope,
                                    slope <= args.max_rss_slope, "over the load's steady half"))
    result["verdicts"] = [v.as_dict() for v in found]
    result["leaks"] = checks.leaked(found)
    if figures["gift"]["ok"] == 0 or sum(j["ok"] for j in figures["joins"].values()) == 0:
        raise RuntimeError("the load did nothing (no gift or no join acknowledged); "
                           "see the error samples")


def _line(figure: dict[str, Any]) -> str:
    return (f"RSS {figure['rss_mib']:.1f} MiB, {figure['fds']} fds, {figure['tasks']} tasks, "
            f"{figure['peers']} peers, {figure['sockets']} sockets, "
            f"{figure['redis_clients']} Redis clients")


def render(result: dict[str, Any]) -> str:
    """The table of verdicts, the memory figures and the load's counts."""
    from bench.report import table

    rows = [[v["measure"], _num(v["baseline"]), _num(v["end"]), _num(v["allowed"]),
             "ok" if v["ok"] else "LEAK", v["note"]] for v in result.get("verdicts", [])]
    out = [f"soak: {result['config']['minutes']:g} min of load, "
           f"{result['config']['viewers']} viewers churning"]
    if rows:
        out.append(table(["measure", "baseline", "end", "allowed +", "verdict", "note"], rows))
    memory = result.get("memory")
    if memory:
        out.append(f"memory: RSS {memory['rss_baseline_mib']} -> {memory['rss_end_mib']} MiB "
                   f"({memory['rss_growth_mib']:+} MiB, peak {memory['rss_peak_mib']}), slope "
                   f"over the load's steady half {_num(memory['rss_slope_mib_per_min'])} "
                   f"MiB/min ({memory['steady_samples']} samples); Redis "
                   f"{memory['redis_baseline_mib']} -> {memory['redis_end_mib']} MiB")
    load = result.get("load")
    if load:
        joins = load["joins"]
        out.append(
            f"load: joins {joins['media']['ok']} media + {joins['socket']['ok']} socket-only + "
            f"{joins['abandoned']['ok']} abandoned mid-handshake "
            f"({sum(j['sent'] - j['ok'] for j in joins.values())} failed), "
            f"{load['leaves']} leaves; chat {load['chat']['ok']}/{load['chat']['sent']}, "
            f"DMs {load['dm']['ok']}/{load['dm']['sent']}, gifts "
            f"{load['gift']['ok']}/{load['gift']['sent']} acknowledged")
        for kind in ("chat", "dm", "gift"):
            if load[kind]["refused"] or load[kind]["unknown"]:
                out.append(f"  {kind}: refused {load[kind]['refused']}, unanswered "
                           f"{load[kind]['unknown']}")
    if result.get("leaks"):
        out.append("LEAK: " + ", ".join(result["leaks"]))
    elif rows:
        out.append("no leak: every measure back to its baseline")
    return "\n".join(out)


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}"
    return str(int(value)) if isinstance(value, float) else str(value)


def soak_plots(result: dict[str, Any], run_dir: Path) -> list[str]:
    """soak.png: RSS, fds, tasks and peers, Redis keys over time, the phases shaded."""
    from bench.report import pyplot, save_png

    plt = pyplot()
    samples = result.get("samples") or []
    if plt is None or not samples:
        return []
    t = [s["t"] / 60 for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(8, 8), sharex=True)
    series = [
        (axes[0], [("rss_mib", "server RSS"), ("redis_mib", "Redis used (MiB)")], "MiB"),
        (axes[1], [("fds", "server open fds"), ("redis_clients", "Redis clients")], "count"),
        (axes[2], [("tasks", "asyncio tasks"), ("peers", "peer connections"),
                   ("sockets", "sockets")], "count"),
        (axes[3], [("redis_keys", "Redis keys (DBSIZE)")], "keys")]
    shades = {"set-up": "#eeeeee", "warm-up": "#fff2cc", "baseline": "#d9ead3",
              "load": "#fce5cd", "settle": "#cfe2f3", "end": "#d9ead3"}
    for ax, lines, unit in series:
        for phase in result.get("phases", []):
            if phase["end"] is not None and phase["phase"] in shades:
                ax.axvspan(phase["start"] / 60, phase["end"] / 60,
                           color=shades[phase["phase"]], lw=0)
        for key, label in lines:
            if key == "redis_mib":  # ~1 MiB next to the server's ~100: its own scale
                twin = ax.twinx()
                twin.plot(t, [s[key] for s in samples], lw=1.0, color="tab:orange")
                twin.set_ylabel(label, fontsize="x-small", color="tab:orange")
                continue
            ax.plot(t, [s[key] for s in samples], lw=1.2, label=label)
        ax.set_ylabel(unit)
        ax.legend(fontsize="x-small", loc="upper left")
    for phase in result.get("phases", []):
        if phase["phase"] in ("warm-up", "load", "settle"):
            axes[0].text(phase["start"] / 60, 1.02, phase["phase"], fontsize="x-small",
                         transform=axes[0].get_xaxis_transform())
    axes[-1].set_xlabel("minutes")
    memory = result.get("memory") or {}
    fig.suptitle(f"Soak: {result['config']['minutes']:g} min, "
                 f"{result['config']['viewers']} viewers churning; RSS slope "
                 f"{_num(memory.get('rss_slope_mib_per_min'))} MiB/min over the steady half",
                 fontsize="medium")
    return [save_png(plt, fig, run_dir / "soak.png")]


async def _execute(args: argparse.Namespace) -> int:
    from bench.report import Progress, publish
    from bench.runner import guarded
    from bench.runner import run_dir as make_run_dir

    run_dir = make_run_dir(args.out, "soak")
    progress = Progress()
    config = {k: v for k, v in vars(args).items() if k not in ("run", "out")}
    config["size"] = f"{args.size[0]}x{args.size[1]}"
    result: dict[str, Any] = {
        "mode": "soak", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv, "config": config, "host": {"cpus": os.cpu_count()},
        "errors": [], "interrupted": False, "leaks": []}
    soak = SoakRun(args, run_dir, progress)

    async def close() -> None:
        await soak.close()
        if soak.load is not None:
            result.setdefault("load_errors", soak.load.errors)

    def report() -> None:
        result["samples"] = soak.samples
        result["phases"] = soak.phases
        publish(result, run_dir, progress, render=render, plots=soak_plots)

    status = await guarded(result, progress, work=lambda: _measure(soak, result),
                           close=close, kill_now=soak.kill_now, finish=report,
                           what="the viewers, the live, the server and Redis")
    if status == 0 and result["leaks"]:
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
