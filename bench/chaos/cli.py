"""`golive chaos`: real servers, real clients, real faults; then the invariants.

    golive chaos --seconds 120
    python -m bench.chaos --seconds 30 --senders 4

Starts its own redis-server (append-only, appendfsync always unless --redis-fsync says
otherwise) and --nodes `golive serve` processes on it (REDIS_URL), on loopback ports,
everything under OUT/chaos-<date>-<time>/ (the processes' logs, the AOF, result.json).
Then the phases (bench/chaos/phases.py), in order:

1. gifts and coin purchases (each with its own id, sent again with the same id until a
   definite answer), chat lines in the live and DMs between friends, for --seconds,
   while faults are injected one after another every --fault-gap seconds: a node
   SIGKILLed and restarted, Redis restarted (SIGTERM, AOF reload), Redis SIGKILLed and
   restarted from its AOF, Redis paused (SIGSTOP --pause seconds, SIGCONT);
2. a creator with --followers alert followers goes live; the node running the
   notification job is SIGKILLed after its first batch and restarted.

Then it checks, from Redis, the server's history and the clients' records: every
acknowledged gift and purchase in the journal once, every retried id applied once,
`golive ledger audit`, no acknowledged chat line or DM lost or duplicated, every member's
catch-up by id exact, every follower told once, no traceback in the servers' logs. It
prints the table, writes result.json, and exits 0 only when every invariant held and
every fault was survived (1 otherwise, 130 when interrupted). Every process it started is
stopped on every exit path (a second Ctrl-C kills them at once).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.chaos.faults import KINDS

SETUP_BUDGET_S = 300.0   # starting, accounts, checks and the fan-out phase, past --seconds


def _kinds(text: str) -> tuple[str, ...]:
    names = tuple(k.strip() for k in text.split(",") if k.strip())
    if not names or any(k not in KINDS for k in names):
        raise argparse.ArgumentTypeError(f"faults are a list of {', '.join(KINDS)}: {text!r}")
    return names


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="seconds of load and faults in phase 1 (120); the run stops by "
                             f"itself within this plus {SETUP_BUDGET_S:g} s")
    parser.add_argument("--faults", type=_kinds, default=KINDS,
                        help=f"fault kinds, injected in this order, in turn "
                             f"({','.join(KINDS)})")
    parser.add_argument("--fault-gap", type=float, default=3.0,
                        help="seconds of normal running before each fault (3)")
    parser.add_argument("--pause", type=float, default=3.0,
                        help="seconds Redis stays SIGSTOPped in a redis_pause (3)")
    parser.add_argument("--max-faults", type=int, default=0,
                        help="stop injecting after this many faults (0: no limit)")
    parser.add_argument("--nodes", type=int, default=2, help="golive serve processes (2)")
    parser.add_argument("--senders", type=int, default=8,
                        help="clients sending gifts and buying coins (8)")
    parser.add_argument("--gift-interval", type=float, default=0.2,
                        help="seconds between one sender's operations (0.2)")
    parser.add_argument("--members", type=int, default=4,
                        help="chat members sending lines in the live (4)")
    parser.add_argument("--dm-pairs", type=int, default=2, help="pairs of friends DMing (2)")
    parser.add_argument("--followers", type=int, default=20_000,
                        help="alert followers of the phase 2 creator (20000)")
    parser.add_argument("--redis-fsync", choices=("always", "everysec"), default="always",
                        help="the Redis's appendfsync (always: an acknowledged gift is on "
                             "disk before its answer)")
    parser.add_argument("--fuzz-cases", type=int, default=3000,
                        help="generated cases of the fuzzing phase, after the faults (3000, "
                             "about 60 s; 0 skips it)")
    parser.add_argument("--fuzz-seed", type=int, default=None,
                        help="the fuzzer's hypothesis seed, to replay a run")
    parser.add_argument("--out", type=Path, default=Path("chaos-out"),
                        help="folder for the run's folder (chaos-out)")


def add_arguments(subparsers: Any) -> argparse.ArgumentParser:
    """Add `chaos` to golive's subcommands (the `golive.commands` entry point)."""
    parser = subparsers.add_parser(
        "chaos", help="fault campaign: kills, Redis restarts and pauses under load; "
                      "then nothing acknowledged may be lost or duplicated",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(parser)
    parser.set_defaults(run=run, command="chaos")
    return parser


def run(args: argparse.Namespace) -> int:
    from bench.options import flags_ok

    if not flags_ok("golive chaos", (
            (args.seconds <= 0, "--seconds must be > 0"),
            (args.fault_gap < 0, "--fault-gap must be >= 0"),
            (not 0 < args.pause <= 30, "--pause must be in (0, 30]"),
            (args.max_faults < 0, "--max-faults must be >= 0"),
            (not 1 <= args.nodes <= 4, "--nodes must be 1..4"),
            (not 1 <= args.senders <= 200, "--senders must be 1..200"),
            (args.gift_interval < 0, "--gift-interval must be >= 0"),
            (not 1 <= args.members <= 50, "--members must be 1..50"),
            (not 0 <= args.dm_pairs <= 50, "--dm-pairs must be 0..50"),
            (not 1 <= args.followers <= 1_000_000, "--followers must be 1..1000000"),
            (not 0 <= args.fuzz_cases <= 1_000_000, "--fuzz-cases must be 0..1000000"))):
        return 2
    return asyncio.run(execute(args))


async def execute(args: argparse.Namespace, phases: list[Any] | None = None) -> int:
    """One run: the cluster, `phases` (default PHASES), the report; the exit status."""
    from bench.chaos.campaign import Campaign, run_phases
    from bench.chaos.cluster import Cluster
    from bench.chaos.phases import PHASES
    from bench.chaos.report import passed, render
    from bench.report import Progress, publish
    from bench.runner import guarded
    from bench.runner import run_dir as make_run_dir

    run_dir = make_run_dir(args.out, "chaos")
    progress = Progress()
    config = {k: v for k, v in vars(args).items() if k not in ("run", "out")}
    result: dict[str, Any] = {
        "mode": "chaos", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv, "config": config, "host": {"cpus": os.cpu_count()},
        "rows": [], "faults": [], "errors": [], "interrupted": False}
    cluster = Cluster(run_dir, nodes=args.nodes, fsync=args.redis_fsync)
    campaign = Campaign(args, run_dir, cluster, progress, result=result)

    async def work() -> None:
        # the fuzzer takes ~20 ms a case (12,664 cases in 254 s), its start ~15 s; 50 ms a case
        fuzz_s = getattr(args, "fuzz_cases", 0) * 0.05
        async with asyncio.timeout(args.seconds + SETUP_BUDGET_S + fuzz_s):
            rows = await run_phases(campaign, phases or PHASES)
        result["rows"] = [r.as_dict() for r in rows]

    async def close() -> None:
        try:
            await campaign.close_all()
        finally:
            await cluster.close()
        result["faults"] = [f.as_dict() for f in campaign.faults.faults]
        result["fault_summary"] = campaign.faults.summary()

    def finish() -> None:
        result["faults"] = [f.as_dict() for f in campaign.faults.faults]
        result["fault_summary"] = campaign.faults.summary()
        result["passed"] = passed(result)
        publish(result, run_dir, progress, render=render, plots=None)

    status = await guarded(result, progress, work=work, close=close,
                           kill_now=cluster.kill_now, finish=finish,
                           what="the clients, the golive nodes and redis-server",
                           expected=lambda exc: isinstance(exc, RuntimeError | TimeoutError))
    if status == 0 and not result["passed"]:
        status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.chaos ...` (the same as `golive chaos ...`)."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(parser)
    return int(run(parser.parse_args(argv)))
