"""`ledger` mode: gifts per second through the full gift script on one Redis, beside raw
pipelined INCRBY on the same Redis in the same run.

    golive bench ledger --duration 5 --batch 50 --concurrency 4 --rounds 2

Starts its own redis-server (append-only, fsync every second, like `golive serve`'s
embedded one; its AOF rewritten between phases, never during one, unless --aof-rewrite
auto) in the run folder, pinned to one CPU while this process takes the others (--no-pin
to let them float), or uses --redis-url (an EMPTY database: the run writes a ledger
there). It registers --senders accounts and --creators creators through engine.accounts
(real accounts, cheapest argon2), starts their lives, funds the senders, then per round
measures, each for --duration seconds (or exactly --ops operations):

- incrby:   --concurrency tasks, each sending pipelines of --batch INCRBY;
- pipelined: --concurrency tasks, each sending Ledger.send_gifts batches of --batch gifts
            (the full gift script, up to 100 gifts a call: every check, the debit, the
            credit, the journal entry, the idempotency record, per gift), unique
            transfer ids, senders in turn, all to the creators' lives;
- single:   --concurrency x --batch tasks, each awaiting Ledger.send_gift one at a time,
            as gift:send does (the gifts of one loop turn share script calls: its
            group commit); latency p50/p99 of each call.

The ratio is gifts/s (pipelined) over INCRBY/s, both at the same batch and concurrency
on the same Redis and client.

Durability's cost: `--fsync everysec,always` runs each round once per appendfsync policy,
interleaved on the same Redis (CONFIG SET between them; every other round in the reverse
order), and reports gifts/s per policy:
median and spread (min-max) over the rounds, and always's share of everysec's.

Each phase reports the CPU of Redis and of this process, so you can tell which one was
the limit. At the end `golive ledger audit`'s check runs over everything the run wrote
(it must pass). Progress on stderr, the table on stdout, every figure in
OUT/ledger-<date>-<time>/result.json with throughput.png and latency.png (matplotlib).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

READY_TIMEOUT_S = 10.0
FUND_COINS = 1_000_000_000
PHASES = ("incrby", "pipelined", "single")


# --- command line ------------------------------------------------------------------------


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.options import add_out

    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds per phase and round (5)")
    parser.add_argument("--ops", type=int, default=0,
                        help="exactly this many operations per phase instead of --duration "
                             "(0: use --duration)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of the three phases; figures are the median (2)")
    parser.add_argument("--batch", type=int, default=50,
                        help="operations per pipeline (50)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="tasks sending pipelines at once (4)")
    parser.add_argument("--senders", type=int, default=100, help="gift senders (100)")
    parser.add_argument("--creators", type=int, default=1,
                        help="creators live and receiving (1: one hot room)")
    parser.add_argument("--gift", default="rose", help="gift sent (rose, 1 coin)")
    parser.add_argument("--redis-url", help="an empty Redis to use (default: start one here)")
    parser.add_argument("--audit", action=argparse.BooleanOptionalAction, default=True,
                        help="audit the ledger after the run (default on)")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                        help="with 2+ CPUs: Redis on one CPU, this process on the others")
    parser.add_argument("--fsync", type=_policies, default=["everysec"],
                        help="appendfsync policies to measure, each round once per policy, "
                             "interleaved (CONFIG SET): e.g. everysec,always for the cost of "
                             "fsync before every reply (default everysec, as golive serve)")
    parser.add_argument("--aof-rewrite", choices=("between", "auto"), default="between",
                        help="with a Redis started here: rewrite its AOF before every phase "
                             "so none runs during one (between), or leave it to Redis, "
                             "which rewrites whenever the file doubled (auto)")
    add_out(parser)


FSYNC = ("everysec", "always")


def _policies(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names or any(p not in FSYNC for p in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"--fsync is a list of {' and '.join(FSYNC)}: {text!r}")
    return names


def add_mode(modes: Any) -> argparse.ArgumentParser:
    """Add the `ledger` mode to an argparse subparsers object."""
    parser = modes.add_parser(
        "ledger", help="gifts/s through the full ledger script vs raw pipelined INCRBY",
        description="Gifts per second through the gift script on one Redis, beside raw "
                    "pipelined INCRBY on the same Redis (the ratio).")
    _add_arguments(parser)
    parser.set_defaults(run=run, bench_mode="ledger")
    return parser


def run(args: argparse.Namespace) -> int:
    from bench.options import flags_ok

    if not flags_ok("bench ledger", (
            (args.duration <= 0, "--duration must be > 0"),
            (args.ops < 0, "--ops must be >= 0"),
            (not 1 <= args.rounds <= 20, "--rounds must be 1..20"),
            (not 1 <= args.batch <= 10_000, "--batch must be 1..10000"),
            (not 1 <= args.concurrency <= 256, "--concurrency must be 1..256"),
            (not 2 <= args.senders <= 100_000, "--senders must be 2..100000"),
            (not 1 <= args.creators <= 1000, "--creators must be 1..1000"))):
        return 2
    from engine.catalog import load_catalog

    if args.gift not in {g.id for g in load_catalog().gifts()}:
        print(f"bench ledger: no gift {args.gift!r} in the catalog", file=sys.stderr)
        return 2
    return asyncio.run(_execute(args))


def main(argv: list[str] | None = None) -> int:
    from bench.options import module_main

    return module_main("bench.ledger", __doc__, _add_arguments, run, argv)


# --- figures -------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min and max of a figure over the rounds."""
    if not values:
        return {"median": None, "min": None, "max": None, "rounds": 0}
    return {"median": _round(_median(values)), "min": _round(min(values)),
            "max": _round(max(values)), "rounds": len(values)}


def fsync_cost(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per appendfsync policy, ops/s of each phase (gifts pipelined and one at a time, and
    INCRBY: the plain-write ceiling) over the rounds; and each policy's median as a share
    of the first policy's."""
    policies = list(dict.fromkeys(r.get("fsync", "everysec") for r in rounds))
    out: dict[str, Any] = {}
    for policy in policies:
        mine = [r for r in rounds if r.get("fsync", "everysec") == policy]
        out[policy] = {phase: spread([r["ops_per_s"] for r in mine if r["phase"] == phase])
                       for phase in PHASES}
    base = out[policies[0]] if policies else {}
    for policy in policies[1:]:
        for phase in PHASES:
            a, b = out[policy][phase]["median"], base[phase]["median"]
            out[policy][phase]["of_" + policies[0]] = round(a / b, 3) if a and b else None
    return out


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Median ops/s per phase over the rounds (of the first --fsync policy), the ratios,
    and with several policies each one's gifts/s."""
    first = result["rounds"][0].get("fsync", "everysec") if result["rounds"] else "everysec"
    rounds = [r for r in result["rounds"] if r.get("fsync", "everysec") == first]
    per_phase = {p: [r["ops_per_s"] for r in rounds if r["phase"] == p]
                 for p in PHASES}
    rates = {p: _median(v) for p, v in per_phase.items()}
    incr = rates["incrby"]
    ratio = (rates["pipelined"] / incr) if incr and rates["pipelined"] else None
    ratio_single = (rates["single"] / incr) if incr and rates["single"] else None
    latencies = [ms for r in rounds if r["phase"] == "single"
                 for ms in r.get("_latencies", [])]
    for r in result["rounds"]:
        r.pop("_latencies", None)
    from bench.figures import cdf_points, distribution

    return {"incrby_per_s": _round(incr), "gifts_pipelined_per_s": _round(rates["pipelined"]),
            "gifts_single_per_s": _round(rates["single"]),
            "ratio": None if ratio is None else round(ratio, 3),
            "ratio_single": None if ratio_single is None else round(ratio_single, 3),
            "single_latency_ms": distribution(latencies, 3),
            "single_latency_cdf": cdf_points(latencies), "fsync": first,
            "fsync_cost": fsync_cost(result["rounds"])}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def render(result: dict[str, Any]) -> str:
    from bench.report import pct, table

    rows = [[r["round"], r.get("fsync", "everysec"), r["phase"], r["ops"], r["seconds"],
             r["ops_per_s"], r["errors"],
             pct(r["cpu"].get("redis")), pct(r["cpu"].get("bench")),
             r.get("redis_us_per_op"), r.get("client_us_per_op"),
             r.get("latency_ms", {}).get("p50", "-"), r.get("latency_ms", {}).get("p99", "-")]
            for r in result.get("rounds", [])]
    out = [table(["round", "fsync", "phase", "ops", "s", "ops/s", "errors", "redis cpu",
                  "bench cpu",
                  "redis us/op", "client us/op", "p50 ms", "p99 ms"], rows)]
    s = result.get("summary") or {}
    if s:
        out.append(f"\ngifts/s (full script, pipelined): {s['gifts_pipelined_per_s']}   "
                   f"INCRBY/s (pipelined): {s['incrby_per_s']}   "
                   f"ratio: {s['ratio']} (target >= 0.5)")
        out.append(f"gifts/s one at a time (as gift:send): {s['gifts_single_per_s']}   "
                   f"ratio {s['ratio_single']}; latency p50 "
                   f"{s['single_latency_ms'].get('p50')} ms, p99 "
                   f"{s['single_latency_ms'].get('p99')} ms")
        cost = s.get("fsync_cost") or {}
        if len(cost) > 1:
            out.append("\ndurability (appendfsync), ops/s median [min-max] over "
                       f"{next(iter(cost.values()))['pipelined']['rounds']} interleaved rounds:")
            for policy, figures in cost.items():
                parts = []
                for phase, label in (("pipelined", "gifts pipelined"),
                                     ("single", "gifts one at a time"), ("incrby", "INCRBY")):
                    f = figures[phase]
                    share = next((v for k, v in f.items() if k.startswith("of_")), None)
                    parts.append(f"{label} {f['median']} [{f['min']}-{f['max']}]"
                                 + (f" ({share:.0%} of {s['fsync']})" if share else ""))
                out.append(f"  {policy:<9} " + "; ".join(parts))
    audit = result.get("audit")
    if audit:
        out.append(f"audit: {'OK' if audit['ok'] else 'FAILED'} over {audit['entries']:,} "
                   f"journal entries in {audit['seconds']} s"
                   + ("" if audit["ok"] else f"; {audit['mismatches'][:5]}"))
    return "\n".join(out)


def plots(result: dict[str, Any], run_dir: Path) -> list[str]:
    from bench.report import pyplot, save_png

    plt = pyplot()
    rounds = result.get("rounds") or []
    if plt is None or not rounds:
        return []
    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = {"incrby": "raw INCRBY (pipelined)", "pipelined": "gift script (pipelined)",
              "single": "gift script (one at a time)"}
    width = 0.8 / len(PHASES)
    numbers = sorted({r["round"] for r in rounds})
    for i, phase in enumerate(PHASES):
        values = [next((r["ops_per_s"] for r in rounds
                        if r["round"] == n and r["phase"] == phase), 0) for n in numbers]
        ax.bar([n + (i - 1) * width for n in numbers], values, width, label=labels[phase])
    ratio = (result.get("summary") or {}).get("ratio")
    ax.set(xlabel="round", ylabel="operations/s", xticks=numbers,
           title=f"Ledger on one Redis: gifts vs INCRBY (ratio {ratio})")
    ax.legend()
    written.append(save_png(plt, fig, run_dir / "throughput.png"))
    points = (result.get("summary") or {}).get("single_latency_cdf") or []
    in_flight = result["config"]["concurrency"] * result["config"]["batch"]
    if points:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([p[0] for p in points], [p[1] for p in points])
        ax.set(xlabel="send_gift latency (ms)", ylabel="fraction of gifts",
               title=f"One gift at a time, {in_flight} in flight")
        written.append(save_png(plt, fig, run_dir / "latency.png"))
    return written


# --- the run ----------------------------------------------------------------------------------


class LedgerRun:
    """Owns the redis-server (when started here) and the client; close() stops both, once."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, progress: Any) -> None:
        from bench.session import placement

        self.args = args
        self.run_dir = run_dir
        self.progress = progress
        self.redis_cpus, self.bench_cpus = placement(args.pin and not args.redis_url)
        self.child: Any = None
        self.redis: Any = None
        self.url = args.redis_url or ""
        self._closed = False

    def pids(self) -> dict[str, int]:
        pids = {"bench": os.getpid()}
        if self.child is not None and self.child.proc is not None:
            pids["redis"] = self.child.pid
        return pids

    async def start(self) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis

        from bench.processes import Child
        from signaling.embedded_redis import redis_server_binary, server_args, socket_path

        if not self.url:
            data = self.run_dir / "redis"
            data.mkdir()
            sock = socket_path(data)
            # golive serve's embedded Redis; with --aof-rewrite between, no automatic AOF
            # rewrite mid-phase: compact() runs it between phases
            between = ["--auto-aof-rewrite-percentage", "0"]
            self.child = Child("redis", [
                redis_server_binary(), *server_args(data, sock),
                *(between if self.args.aof_rewrite == "between" else [])],
                self.run_dir / "redis.log", rpc=False, cpus=self.redis_cpus)
            await self.child.start()
            self.url = f"unix://{sock}"
        if self.bench_cpus:
            os.sched_setaffinity(0, self.bench_cpus)
        pool = BlockingConnectionPool.from_url(self.url, max_connections=300, timeout=30,
                                               decode_responses=True)
        self.redis = Redis(connection_pool=pool)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                await self.redis.ping()
                break
            except Exception:
                if time.monotonic() > deadline or (self.child and not self.child.running):
                    raise RuntimeError(f"redis at {self.url} did not answer; see "
                                       f"{self.run_dir / 'redis.log'}") from None
                await asyncio.sleep(0.05)
        if self.args.redis_url and await self.redis.dbsize():
            raise RuntimeError("--redis-url must name an empty database: the bench writes a "
                               "ledger into it")

    async def compact(self) -> None:
        """Rewrite the AOF now and wait for it (a Redis started here only).

        Redis rewrites its AOF each time it doubles, in a forked child on Redis's own CPU
        that also takes the parent's diffs: whichever phase was running when the file
        crossed the line paid for it (round 2's gifts ran at 29k/s instead of 43k/s, 26
        instead of 18 us per gift in Redis). Both phases run with AOF and an fsync every
        second, and neither with a rewrite in flight."""
        if self.child is None or self.args.aof_rewrite != "between":
            return
        await self.redis.bgrewriteaof()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            info = await self.redis.info("persistence")
            if not info.get("aof_rewrite_in_progress") and not info.get(
                    "aof_rewrite_scheduled"):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the AOF rewrite between phases took over 120 s")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.redis is not None:
            await self.redis.aclose()
            await self.redis.connection_pool.disconnect()
        if self.child is not None:
            await self.child.stop(grace=10.0)

    def kill_now(self) -> None:
        import signal

        if self.child is not None:
            self.child.signal_group(signal.SIGKILL)


async def _setup(bench: LedgerRun, result: dict[str, Any]) -> Any:
    """Accounts, lives and coins; the Ledger and the people."""
    from argon2 import PasswordHasher

    from engine.accounts import Accounts
    from engine.catalog import load_catalog
    from engine.ledger import Ledger
    from engine.ledger_rules import LedgerRules
    from engine.lives import Lives
    from engine.passwords import Passwords

    args, redis = bench.args, bench.redis
    accounts = Accounts(redis, Passwords(hasher=PasswordHasher(time_cost=1, memory_cost=8,
                                                               parallelism=1)))
    ledger = Ledger(redis, load_catalog(), LedgerRules())
    ledger.catalog.gift(args.gift)  # an unknown gift fails here, with its name
    lives = Lives(redis, "bench-ledger")

    async def register(name: str) -> str:
        account = await accounts.register(username=name, display_name=name,
                                          password="bench-password", birthdate="1990-01-01")
        return str(account.id)

    creators = [await register(f"creator{i}") for i in range(args.creators)]
    live_ids = [(await lives.start(c, "ledger bench")).live_id for c in creators]
    senders = []
    for i in range(args.senders):
        senders.append(await register(f"sender{i}"))
        bench.progress.update(f"setting up: {i + 1}/{args.senders} senders")
    for i, sender in enumerate(senders):
        await ledger.credit_purchase(payment_id=f"bench-fund-{i:08d}", provider="bench",
                                     user_id=sender, coins=FUND_COINS)
    result["setup"] = {"senders": len(senders), "creators": len(creators)}
    return ledger, senders, list(zip(creators, live_ids, strict=True))


async def _phase(bench: LedgerRun, name: str, round_no: int, ledger: Any, senders: list[str],
                 rooms: list[tuple[str, str]]) -> dict[str, Any]:
    from bench.figures import distribution
    from bench.processes import CpuMeter
    from engine.errors import DomainError
    from engine.ledger import GiftRequest

    args, redis = bench.args, bench.redis
    batch, tasks = args.batch, args.concurrency
    budget = args.ops or None
    counts = {"ops": 0, "errors": 0, "issued": 0}
    latencies: list[float] = []
    serial = iter(range(10**12))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.duration

    def take(n: int) -> int:
        """How many operations this task may start now (0: the phase is over)."""
        if budget is None:
            return n if loop.time() < deadline else 0
        n = min(n, budget - counts["issued"])
        counts["issued"] += max(0, n)
        return max(0, n)

    def request(i: int) -> GiftRequest:
        creator, live_id = rooms[i % len(rooms)]
        sender = senders[i % len(senders)]
        if sender == creator:  # never: creators are not senders
            raise AssertionError
        return GiftRequest(f"b{round_no}{name[0]}{i:012d}", sender, creator, live_id,
                           args.gift, 1)

    async def incrby(worker: int) -> None:
        key = f"bench:incr:{worker}"
        while n := take(batch):
            async with redis.pipeline(transaction=False) as pipe:
                for _ in range(n):
                    pipe.incrby(key, 1)
                await pipe.execute()
            counts["ops"] += n

    async def pipelined(worker: int) -> None:
        while n := take(batch):
            results = await ledger.send_gifts([request(next(serial)) for _ in range(n)])
            bad = sum(1 for r in results if isinstance(r, DomainError))
            counts["ops"] += n - bad
            counts["errors"] += bad

    async def single(worker: int) -> None:
        while take(1):
            r = request(next(serial))
            started = time.perf_counter()
            try:
                await ledger.send_gift(transfer_id=r.transfer_id, sender_id=r.sender_id,
                                       creator_id=r.creator_id, live_id=r.live_id,
                                       gift_id=r.gift_id, count=1)
            except DomainError:
                counts["errors"] += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            counts["ops"] += 1

    work = {"incrby": (incrby, tasks), "pipelined": (pipelined, tasks),
            "single": (single, tasks * batch)}[name]
    await redis.config_resetstat()
    meter = CpuMeter(bench.pids())
    meter.start()
    started = time.perf_counter()
    await asyncio.gather(*(work[0](w) for w in range(work[1])))
    seconds = time.perf_counter() - started
    cpu = meter.read()
    stats = await redis.info("commandstats")
    command = stats.get("cmdstat_incrby" if name == "incrby" else "cmdstat_evalsha", {})
    ops = max(1, counts["ops"] + counts["errors"])
    bench_cpu = cpu["cores"].get("bench")
    row = {"round": round_no, "phase": name, "ops": counts["ops"], "errors": counts["errors"],
           "seconds": round(seconds, 3), "ops_per_s": round(counts["ops"] / seconds, 1),
           "cpu": {**cpu["cores"], "others": cpu["others"]},
           # where the time goes: Redis's own time per operation (INFO commandstats: its
           # time in the command over the operations; a script call holds up to 100
           # gifts) and this process's CPU per operation
           "redis_us_per_op": None if "usec" not in command else round(
               command["usec"] / ops, 2),
           "client_us_per_op": None if bench_cpu is None else round(
               bench_cpu * seconds / ops * 1e6, 1)}
    if name == "single":
        row["latency_ms"] = {k: v for k, v in distribution(latencies, 3).items()
                             if k in ("p50", "p95", "p99", "max")}
        row["_latencies"] = latencies
    return row


async def _one_round(bench: LedgerRun, result: dict[str, Any], round_no: int, policy: str,
                 ledger: Any, senders: list[str], rooms: list[tuple[str, str]]) -> None:
    """The three phases of one round under one appendfsync policy."""
    for phase in PHASES:
        bench.progress.update(f"round {round_no}: before {phase}")
        await bench.compact()
        await bench.redis.config_set("appendfsync", policy)
        bench.progress.update(f"round {round_no}: {phase} (appendfsync {policy})")
        row = await _phase(bench, phase, round_no, ledger, senders, rooms)
        row["fsync"] = (await bench.redis.config_get("appendfsync"))["appendfsync"]
        result["rounds"].append(row)
        bench.progress.note(f"round {round_no} {policy:<8} {phase:<9} "
                            f"{row['ops_per_s']:>10,.0f} ops/s"
                            f"  (redis {row['cpu'].get('redis') or 0:.0%} of a core, "
                            f"bench {row['cpu'].get('bench') or 0:.0%})")


async def _measure(bench: LedgerRun, result: dict[str, Any]) -> None:
    from engine.audit import run_audit

    await bench.start()
    result["processes"] = bench.pids()
    result["redis"] = {"url": bench.url if bench.args.redis_url else "started here",
                       "version": (await bench.redis.info("server")).get("redis_version"),
                       "pinned_cpus": sorted(bench.redis_cpus or []),
                       "bench_cpus": sorted(bench.bench_cpus or [])}
    ledger, senders, rooms = await _setup(bench, result)
    for round_no in range(1, bench.args.rounds + 1):
        # interleaved, in turn first and last (ABBA): a drift of the machine, or whatever
        # the phase before leaves behind (the AOF, the page cache), hits each policy alike
        policies = bench.args.fsync if round_no % 2 else bench.args.fsync[::-1]
        for policy in policies:
            await _one_round(bench, result, round_no, policy, ledger, senders, rooms)
    result["summary"] = summarize(result)
    if bench.args.audit:
        bench.progress.update("auditing the ledger")
        started = time.perf_counter()
        report = await run_audit(bench.redis, ledger)
        result["audit"] = {"ok": report.ok, "entries": report.entries,
                           "seconds": round(time.perf_counter() - started, 2),
                           "mismatches": [str(m) for m in report.mismatches[:20]]}
        if not report.ok:
            raise RuntimeError(f"the audit failed: {report.mismatches[:3]}")


async def _execute(args: argparse.Namespace) -> int:
    from bench.report import Progress, publish
    from bench.runner import guarded
    from bench.runner import run_dir as make_run_dir

    run_dir = make_run_dir(args.out, "ledger")
    progress = Progress()
    config = {k: v for k, v in vars(args).items() if k not in ("run", "out")}
    result: dict[str, Any] = {
        "mode": "ledger", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv, "config": config, "host": {"cpus": os.cpu_count()},
        "measured_where": __doc__, "rounds": [], "errors": [], "interrupted": False}
    bench = LedgerRun(args, run_dir, progress)

    async def close() -> None:
        result.setdefault("processes", bench.pids())
        await bench.close()

    def report() -> None:
        for row in result["rounds"]:
            row.pop("_latencies", None)
        publish(result, run_dir, progress, render=render, plots=plots)

    status = await guarded(result, progress, work=lambda: _measure(bench, result), close=close,
                           kill_now=bench.kill_now, finish=report,
                           what="the bench's redis-server",
                           expected=lambda exc: isinstance(exc, RuntimeError | OSError))
    if status == 0 and any(r["errors"] for r in result["rounds"]):
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
