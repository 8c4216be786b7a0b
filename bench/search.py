"""`search` mode: people search (GET /api/users?q= and user:search) at a million users.

    golive bench search --users 1000000 --queries 20000

Starts its own redis-server (golive serve's embedded settings) in the run folder, or uses
--redis-url (an EMPTY database: the run writes accounts there). It writes --users
accounts straight into Redis (a user hash each, as engine.accounts writes it, without the
argon2 hash sign-up pays) and indexes each through engine.search's own code
(UserSearch.add: the username, the display name and its later words, folded), pipelined.
Names are made from syllables, a fifth of them with accents, so prefixes of 1-6
characters match from millions of members down to one.

Then it times --queries searches one at a time, each Accounts.find_people (the engine
path of both routes: one ZRANGE BYLEX on the prefix's shard, one pipelined HGETALL of the
accounts found), with prefixes drawn from the generated names (a quarter typed without
their accents or in capitals). It reports p50, p90, p99 and the maximum in ms, per prefix
length too, with Redis's memory. Progress on stderr, the table on stdout, every figure in
OUT/search-<date>-<time>/result.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from typing import Any

READY_TIMEOUT_S = 10.0
SYLLABLES = ["an", "be", "ka", "li", "mo", "ra", "si", "to", "vu", "ze", "el", "jo", "na",
             "pe", "qu", "da", "fi", "go", "hu", "xa", "yo", "wi", "ce", "mi"]
ACCENTED = {"a": "á", "e": "é", "o": "ö", "u": "ü", "i": "í"}


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.options import add_out

    parser.add_argument("--users", type=int, default=1_000_000, help="accounts (1000000)")
    parser.add_argument("--queries", type=int, default=20_000,
                        help="searches timed, one at a time (20000)")
    parser.add_argument("--limit", type=int, default=20, help="results per search (20)")
    parser.add_argument("--batch", type=int, default=2_000,
                        help="accounts per pipeline while writing (2000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--redis-url", help="an EMPTY Redis database to use instead of "
                                            "starting one here")
    add_out(parser)


def add_mode(modes: Any) -> argparse.ArgumentParser:
    """Add the `search` mode to an argparse subparsers object."""
    parser = modes.add_parser(
        "search", help="people search latency at N users (prefix, any case or accent)",
        description="Prefix search over usernames and display names at N users.")
    _add_arguments(parser)
    parser.set_defaults(run=run, bench_mode="search")
    return parser


def run(args: argparse.Namespace) -> int:
    from bench.options import flags_ok

    if not flags_ok("bench search", (
            (not 1 <= args.users <= 20_000_000, "--users must be 1..20000000"),
            (not 1 <= args.queries <= 10_000_000, "--queries must be 1..10000000"),
            (not 1 <= args.limit <= 50, "--limit must be 1..50"),
            (not 1 <= args.batch <= 100_000, "--batch must be 1..100000"))):
        return 2
    return asyncio.run(_execute(args))


def main(argv: list[str] | None = None) -> int:
    from bench.options import module_main

    return module_main("bench.search", __doc__, _add_arguments, run, argv)


# --- names and figures ------------------------------------------------------------------


def make_name(rng: random.Random, n: int) -> tuple[str, str]:
    """(username, display name) for account number n: unique usernames."""
    first = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))
    last = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))
    username = f"{first}{last}{n}"[:24]
    display = f"{first.title()} {last.title()}"
    if rng.random() < 0.2:
        display = "".join(ACCENTED.get(c, c) if rng.random() < 0.5 else c for c in display)
    return username, display


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def summarize(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"count": len(ordered), "p50_ms": round(percentile(ordered, 50) * 1000, 3),
            "p90_ms": round(percentile(ordered, 90) * 1000, 3),
            "p99_ms": round(percentile(ordered, 99) * 1000, 3),
            "max_ms": round(ordered[-1] * 1000, 3) if ordered else 0.0}


def render(result: dict[str, Any]) -> str:
    lines = [f"people search at {result.get('users_written', 0):,} users "
             f"(redis used_memory {result.get('redis_memory_mb', '?')} MB, "
             f"{result.get('index_members', 0):,} index members)",
             f"{'prefix':>8} {'searches':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
             f"{'max ms':>8} {'found':>6}"]
    rows = result.get("by_length", {})
    for length, row in [*sorted(rows.items(), key=lambda kv: int(kv[0])),
                        ("all", result.get("overall"))]:
        if not row:
            continue
        lines.append(f"{length:>8} {row['count']:>9,} {row['p50_ms']:>8.3f} {row['p90_ms']:>8.3f} "
                     f"{row['p99_ms']:>8.3f} {row['max_ms']:>8.3f} "
                     f"{row.get('found_avg', 0):>6.1f}")
    usec = result.get("redis_usec_per_call") or {}
    if usec:
        lines.append("inside Redis, per call: " + ", ".join(
            f"{name} {value:.1f} us" for name, value in usec.items()))
    return "\n".join(lines)


# --- the run ----------------------------------------------------------------------------------


async def _start_redis(args: argparse.Namespace, run_dir: Any, result: dict[str, Any]) -> Any:
    from bench.processes import Child
    from signaling.embedded_redis import redis_server_binary, server_args, socket_path

    data = run_dir / "redis"
    data.mkdir()
    sock = socket_path(data)
    child = Child("redis", [redis_server_binary(), *server_args(data, sock)],
                  run_dir / "redis.log", rpc=False)
    await child.start()
    result["redis_url"] = f"unix://{sock}"
    result["processes"] = {"bench": os.getpid(), "redis": child.pid}
    return child


async def _populate(redis: Any, args: argparse.Namespace, progress: Any,
                    result: dict[str, Any]) -> list[tuple[str, str]]:
    """Write the accounts and their index entries; a sample of names for the queries."""
    from engine import keys
    from engine.search import UserSearch

    rng = random.Random(args.seed)
    index = UserSearch
    sample: list[tuple[str, str]] = []
    started = time.monotonic()
    n = 0
    while n < args.users:
        todo = min(args.batch, args.users - n)
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(n, n + todo):
                username, display = make_name(rng, i)
                user_id = f"{i:016x}"
                pipe.hset(keys.user(user_id), mapping={
                    "id": user_id, "username": username, "display_name": display,
                    "birthdate": "1990-01-01", "bio": "", "created_at": "1800000000.0"})
                index.queue_add(pipe, user_id, username, display)
                if rng.random() < 0.01:
                    sample.append((username, display))
            await pipe.execute()
        n += todo
        result["users_written"] = n
        rate = n / max(time.monotonic() - started, 1e-9)
        progress.update(f"writing accounts: {n:,}/{args.users:,} ({rate:,.0f}/s)")
    result["populate_s"] = round(time.monotonic() - started, 1)
    return sample


def _prefixes(sample: list[tuple[str, str]], count: int, rng: random.Random) -> list[str]:
    from engine.search import fold

    out = []
    for _ in range(count):
        username, display = rng.choice(sample)
        source = rng.choice([username, display, display.split(" ")[-1]])
        length = rng.randint(1, 6)
        prefix = source[:length]
        roll = rng.random()
        if roll < 0.125:
            prefix = fold(prefix)          # typed without its accents
        elif roll < 0.25:
            prefix = prefix.upper()
        out.append(prefix)
    return out


async def _measure(args: argparse.Namespace, run_dir: Any, progress: Any,
                   result: dict[str, Any], holder: dict[str, Any]) -> None:
    from redis.asyncio import Redis

    from engine.accounts import Accounts
    from engine.passwords import Passwords
    from engine.search import fold

    if not args.redis_url:
        holder["child"] = await _start_redis(args, run_dir, result)
    url = args.redis_url or result["redis_url"]
    redis = Redis.from_url(url, decode_responses=True)
    holder["redis"] = redis
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            await redis.ping()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis at {url} did not answer") from None
            await asyncio.sleep(0.05)
    if args.redis_url and await redis.dbsize():
        raise RuntimeError("--redis-url must name an empty database: the bench writes "
                           "accounts into it")
    sample = await _populate(redis, args, progress, result)
    info = await redis.info("memory")
    result["redis_memory_mb"] = round(info["used_memory"] / 2**20, 1)
    members = 0
    async for key in redis.scan_iter(match="user_search:*", count=1000):
        members += await redis.zcard(key)
    result["index_members"] = members

    accounts = Accounts(redis, Passwords())
    await redis.config_resetstat()
    rng = random.Random(args.seed + 1)
    queries = _prefixes(sample, args.queries, rng)
    for prefix in queries[:200]:  # warm the connection and Redis's caches, untimed
        await accounts.find_people(prefix, args.limit)
    latencies: list[float] = []
    by_length: dict[int, list[float]] = {}
    found: dict[int, list[int]] = {}
    for i, prefix in enumerate(queries):
        t0 = time.perf_counter()
        people = await accounts.find_people(prefix, args.limit)
        took = time.perf_counter() - t0
        folded = fold(prefix)
        assert all(folded in fold(a.username) or folded in fold(a.display_name)
                   for a in people), (prefix, people)
        latencies.append(took)
        by_length.setdefault(len(folded), []).append(took)
        found.setdefault(len(folded), []).append(len(people))
        if i % 1000 == 0:
            progress.update(f"searching: {i:,}/{len(queries):,}")
    # Redis's own time per command (INFO commandstats): what the search costs the server,
    # apart from this client's Python and the host's load.
    stats = await redis.info("commandstats")
    result["redis_usec_per_call"] = {
        name: stats[f"cmdstat_{name}"]["usec_per_call"]
        for name in ("zrange", "hgetall") if f"cmdstat_{name}" in stats}
    result["overall"] = {**summarize(latencies), "found_avg": round(
        sum(sum(v) for v in found.values()) / len(latencies), 1)}
    result["by_length"] = {str(k): {**summarize(v),
                                    "found_avg": round(sum(found[k]) / len(found[k]), 1)}
                           for k, v in sorted(by_length.items())}


async def _execute(args: argparse.Namespace) -> int:
    from bench.report import Progress, publish
    from bench.runner import guarded
    from bench.runner import run_dir as make_run_dir

    run_dir = make_run_dir(args.out, "search")
    progress = Progress()
    config = {k: v for k, v in vars(args).items() if k not in ("run", "out")}
    result: dict[str, Any] = {
        "mode": "search", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv, "config": config, "host": {"cpus": os.cpu_count()},
        "measured_where": __doc__, "errors": [], "interrupted": False}
    holder: dict[str, Any] = {}

    async def close() -> None:
        redis = holder.get("redis")
        if redis is not None:
            await redis.aclose()
        child = holder.get("child")
        if child is not None:
            await child.stop(grace=10.0)

    def kill_now() -> None:
        import signal

        child = holder.get("child")
        if child is not None:
            child.signal_group(signal.SIGKILL)

    return await guarded(result, progress,
                         work=lambda: _measure(args, run_dir, progress, result, holder),
                         close=close, kill_now=kill_now,
                         finish=lambda: publish(result, run_dir, progress, render=render,
                                                plots=None),
                         what="the bench's redis-server",
                         expected=lambda exc: isinstance(exc, RuntimeError | OSError))


if __name__ == "__main__":
    sys.exit(main())
