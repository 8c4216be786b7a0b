"""`golive bench fanout|join|...`: the command line, and one run from start to clean exit.

Wiring into `golive`: pyproject.toml declares `add_arguments` as the `bench` entry point of
the `golive.commands` group; signaling/cli.py loads it to add `golive bench` (the server
never imports the bench). `python -m bench fanout ...` works without it.

Every run writes OUT/<mode>-<date>-<time>/: result.json (every figure), the logs of every
process it started (server.log, creator.log, workerN.log; a baseline's under naive/) and,
with matplotlib, PNG plots. `fanout --baseline naive` runs the same sweep against the
naive aiortc relay (bench.naive_server) after golive's, one server at a time.
Ctrl-C (or SIGTERM) stops the run: viewers leave, the creator ends its live, the server
stops; a second Ctrl-C kills whatever is left at once. The JSON is written either way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from typing import Any

from bench.options import add_out, flags_ok, parse_counts, parse_rate, parse_size
from bench.runner import guarded
from bench.runner import run_dir as make_run_dir


def add_arguments(subparsers: Any) -> argparse.ArgumentParser:
    """Add `bench` (with `fanout` and `join`) to an argparse subparsers object."""
    bench = subparsers.add_parser(
        "bench", help="load benchmarks: room fan-out and join storms",
        description="Load benchmarks against a golive server (started here, or --url).")
    _add_modes(bench.add_subparsers(dest="bench_mode", required=True))
    return bench


def _add_modes(modes: Any) -> None:
    fanout = modes.add_parser(
        "fanout", help="one creator, a sweep of viewer counts: server CPU, fps, latency",
        description="Sweep viewer counts on one live room; stop when the server saturates.")
    fanout.add_argument("--viewers", type=parse_counts, default=parse_counts("1,10,50,100,200"),
                        help="increasing viewer counts; each step adds viewers "
                             "(default 1,10,50,100,200)")
    fanout.add_argument("--duration", type=float, default=10.0,
                        help="seconds measured per step, after every viewer joined (10)")
    fanout.add_argument("--join-rate", type=parse_rate, default=parse_rate("50/s"),
                        help="how fast a step's viewers join, in all (50/s)")
    fanout.add_argument("--baseline", choices=("naive",),
                        help="then run the same sweep against a naive aiortc relay "
                             "(MediaRelay, one encoder per viewer), side by side")
    fanout.add_argument("--paths", default="",
                        help="golive's fan-out send paths to compare in one run, e.g. "
                             "native,python (GOLIVE_FANOUT), and `naive` for the naive relay "
                             "baseline: each round runs the sweep once per path, a fresh "
                             "server each, paths interleaved")
    fanout.add_argument("--rounds", type=int, default=1,
                        help="rounds of --paths (median and spread over them; 1)")
    _common(fanout)
    fanout.set_defaults(run=run, bench_mode="fanout")

    join = modes.add_parser(
        "join", help="a join storm: distribution of join time and time to first frame",
        description="N viewers join one live at a given rate; then the room is watched.")
    join.add_argument("--viewers", type=int, default=200, help="viewers joining (200)")
    join.add_argument("--rate", type=parse_rate, default=parse_rate("50/s"),
                      help="joins per second, in all (50/s)")
    join.add_argument("--duration", type=float, default=5.0,
                      help="seconds to watch the full room after the storm (5; 0: skip)")
    join.add_argument("--running", type=int, default=0,
                      help="viewers watching before the storm, whose fps is measured during "
                           "it and --after seconds after it (0)")
    join.add_argument("--after", type=float, default=2.0,
                      help="seconds of the window right after the storm (2)")
    join.add_argument("--rounds", type=int, default=1,
                      help="storms in a row on one server, each round's joiners leaving "
                           "before the next; figures pooled and per round (1). "
                           "--viewers 1 --rounds 20: one viewer into a quiet room, 20 times")
    _common(join)
    join.set_defaults(run=run, bench_mode="join")

    from bench.chat import add_mode as add_chat_mode
    from bench.notify import add_mode as add_notify_mode

    add_chat_mode(modes)
    add_notify_mode(modes)

    from bench.ledger import add_mode as add_ledger_mode
    from bench.search import add_mode as add_search_mode

    add_ledger_mode(modes)
    add_search_mode(modes)

    from bench.soak import add_mode as add_soak_mode

    add_soak_mode(modes)

    from bench.abr import add_mode as add_abr_mode

    add_abr_mode(modes)


def _common(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("server")
    target.add_argument("--url", help="a running golive server (default: start one here: "
                                      "`golive serve` on a free port, temp data dir)")
    target.add_argument("--creator-user", help="with --url: sign in as this creator "
                                               "(default: register a new one)")
    target.add_argument("--creator-password")
    target.add_argument("--server-pid", type=int,
                        help="with --url: the server's pid, to report its CPU and RSS")
    target.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for the server started here, e.g. "
                             "GOLIVE_VIDEO_BITRATE=600000 (repeatable)")
    source = parser.add_argument_group("stream and load")
    source.add_argument("--size", type=parse_size, default=(640, 360),
                        help="creator video WIDTHxHEIGHT (640x360)")
    source.add_argument("--fps", type=float, default=30.0, help="creator frame rate (30)")
    source.add_argument("--codec", choices=("vp8", "h264"), default="vp8",
                        help="the room's codec (sets the local server's; vp8)")
    source.add_argument("--bitrate", type=int,
                        help="the room's video bitrate, bit/s (sets the local server's "
                             "GOLIVE_VIDEO_BITRATE and the baseline's encoders'; default "
                             "GOLIVE_VIDEO_BITRATE from --server-env, else 800000)")
    source.add_argument("--workers", type=int, default=0,
                        help="viewer worker processes (default: cores - 1, at least 1)")
    source.add_argument("--probes", type=int, default=1,
                        help="decoding probe viewers per worker, for latency (1)")
    source.add_argument("--decode", action="store_true",
                        help="every viewer decodes (costs ~3-6%% of a core per viewer)")
    source.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                        help="with a server started here and 2+ CPUs: pin the server to "
                             "one CPU and the creator and viewers to the others (default on)")
    source.add_argument("--settle", type=float, default=1.0,
                        help="seconds between the last join and the measurement (1)")
    add_out(parser)


def run(args: argparse.Namespace) -> int:
    """Run the mode `args` describes; the exit status (130 when interrupted)."""
    from media.encoder import DEFAULT_VIDEO_BITRATE

    args.baseline = getattr(args, "baseline", None)  # fanout only
    if any("=" not in kv for kv in args.server_env):
        print("golive bench: --server-env takes KEY=VALUE", file=sys.stderr)
        return 2
    if args.bitrate is None:
        env = dict(kv.split("=", 1) for kv in args.server_env)
        try:
            args.bitrate = int(env.get("GOLIVE_VIDEO_BITRATE", DEFAULT_VIDEO_BITRATE))
        except ValueError:
            args.bitrate = -1
    if not flags_ok("golive bench", (
            (args.bitrate <= 0, "--bitrate must be > 0"),
            (args.workers < 0, "--workers must be >= 0"),
            (args.probes < 0, "--probes must be >= 0"),
            (args.duration < 0, "--duration must be >= 0"),
            (not 0 < args.fps <= 120, "--fps must be in (0, 120]"),
            (args.bench_mode == "join" and args.viewers < 1, "--viewers must be >= 1"),
            (args.bench_mode == "join" and args.running < 0, "--running must be >= 0"),
            (args.bench_mode == "join" and args.after <= 0, "--after must be > 0"),
            (args.bench_mode == "join" and args.rounds < 1, "--rounds must be >= 1"),
            (args.url is None and (args.creator_user or args.server_pid),
             "--creator-user and --server-pid go with --url"))):
        return 2
    return asyncio.run(_execute(args))


def _config(args: argparse.Namespace) -> dict[str, Any]:
    config = {k: v for k, v in vars(args).items() if k not in ("run", "out")}
    if config.get("creator_password"):
        config["creator_password"] = "(hidden)"
    config["size"] = f"{args.size[0]}x{args.size[1]}"
    return config


def _host() -> dict[str, Any]:
    from importlib.metadata import version

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "machine": platform.machine(),
            **{name: version(name) for name in ("aiortc", "av", "aioice")}}


async def _execute(args: argparse.Namespace) -> int:
    from bench import fanout, joinstorm, measure
    from bench.baselines import DESCRIPTIONS
    from bench.report import Progress, fanout_plots, join_plots, publish
    from bench.session import BenchSession

    mode = fanout if args.bench_mode == "fanout" else joinstorm
    run_dir = make_run_dir(args.out, args.bench_mode)
    progress = Progress()
    result: dict[str, Any] = {
        "mode": args.bench_mode, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv, "config": _config(args), "host": _host(),
        "measured_where": measure.__doc__, "errors": [], "interrupted": False}
    sessions = [BenchSession(args, run_dir, progress)]
    if args.baseline:
        result["baseline"] = {"name": args.baseline, "what": DESCRIPTIONS[args.baseline]}
        sessions.append(BenchSession(args, run_dir / args.baseline, progress, args.baseline))

    paths = [p for p in getattr(args, "paths", "").split(",") if p]

    async def work() -> None:
        await _check_host(result, progress)
        if paths:
            await fanout.run_paths(args, paths, run_dir, result, progress, sessions)
            return
        await mode.run(sessions[0], args, result, progress)
        if args.baseline:
            await sessions[0].close()  # one server at a time: the baseline gets the CPUs
            progress.note(f"baseline {args.baseline}: {result['baseline']['what']}")
            await mode.run(sessions[1], args, result["baseline"], progress)

    async def close() -> None:
        for session in sessions:
            await session.close()

    def kill_now() -> None:
        for session in sessions:
            session.kill_now()

    def report() -> None:
        plotted = result.get("steps") or result.get("joins") or result.get("baseline")
        publish(result, run_dir, progress, render=mode.render,
                plots=(fanout_plots if mode is fanout else join_plots) if plotted else None,
                no_plots="plots: none (pip install matplotlib to get PNG plots)"
                if not _has_matplotlib() else "plots: none (nothing to plot)")

    return await guarded(result, progress, work=work, close=close,
                         kill_now=kill_now, finish=report, expected=_expected,
                         what="the viewers, the creator and the server")


async def _check_host(result: dict[str, Any], progress: Any) -> None:
    """One second of the machine before we load it: other work skews every figure."""
    from bench.measure import OTHERS_BUSY
    from bench.processes import CpuMeter

    meter = CpuMeter({})
    meter.start()
    await asyncio.sleep(1.0)
    others = meter.read()["others"]
    result["host"]["others_before"] = others
    if others > OTHERS_BUSY:
        progress.note(f"warning: before the run, other processes used {others:.0%} of a core; "
                      "the figures will include their interference (see the 'others' column)")


def _expected(exc: Exception) -> bool:
    """Failures a user can act on (shown as one line), as opposed to bench bugs."""
    from bench.processes import ChildError
    from bench.target import TargetError

    return isinstance(exc, ChildError | TargetError | OSError | TimeoutError)


def _has_matplotlib() -> bool:
    from importlib.util import find_spec

    return find_spec("matplotlib") is not None


def main(argv: list[str] | None = None) -> int:
    """`python -m bench fanout|join ...` (the same as `golive bench ...`)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_modes(parser.add_subparsers(dest="bench_mode", required=True))
    args = parser.parse_args(argv)
    return int(args.run(args))
