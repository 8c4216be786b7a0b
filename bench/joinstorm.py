"""`golive bench join`: a join storm. N viewers join one live at a given rate (spread over
the workers so the total rate is even); each is timed from its room:join request to the
server's offer, to connected (ICE+DTLS), to its first complete frame and keyframe (and,
for the probes, to its first decoded frame). Then the full room is watched for --duration
seconds to check that everyone keeps receiving.

With --rounds N the storm is repeated N times on the same server and live: after each
round its joiners leave (the --running viewers stay) and the room settles. The figures
pool every round's joins (the table) and give each round's own p50/p95 too.
`--viewers 1 --rounds 20` is one viewer into a quiet room, 20 times: join to first
decoded frame (the one viewer is a decoding probe).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.figures import distribution
from bench.measure import join_summary, measure, step_figures
from bench.report import Progress, pct, table
from bench.session import BenchSession


async def run(session: BenchSession, args: argparse.Namespace, result: dict[str, Any],
              progress: Progress) -> None:
    rounds = getattr(args, "rounds", 1)
    await session.open(args.viewers * rounds + args.running)
    result.update(session.describe())
    running: set[str] = set()
    if args.running:
        before = await session.add_viewers(args.running, args.rate, "running viewers")
        running = {j["id"] for j in before if j["ok"]}
        result["running"] = {"n": args.running, "ok": len(running)}
        await asyncio.sleep(args.settle)
    result["rounds"] = []
    all_joins: list[dict[str, Any]] = []
    joins: list[dict[str, Any]] = []
    for round_no in range(rounds):
        if round_no:
            left = await session.leave([j["id"] for j in joins])
            progress.note(f"round {round_no}/{rounds}: {left} joiners left")
            await asyncio.sleep(args.settle)
        joins, storm = await _storm(session, args, running, progress)
        all_joins += joins
        result["rounds"].append(storm)
    result["joins"] = all_joins
    result["storm"] = {**storm, **join_summary(all_joins)} if rounds > 1 else storm
    progress.note(f"join storm: {storm['ok']}/{args.viewers} watching after "
                  f"{storm['seconds']:.1f} s, server {pct(storm['cpu'].get('server')) or '?'} CPU")
    window = await measure(session, args.after, "right after the storm", progress)
    result["after"] = {"seconds": round(window["seconds"], 3),
                       "running_fps": running_fps(window, running),
                       "all_fps": distribution(v["fps"] for v in window["viewers"]
                                               if v["state"] == "watching"),
                       "source_fps": window["source_fps"],
                       "cpu": window["cpu"]["cores"], "host_busy": window["cpu"]["host_busy"],
                       "others": window["cpu"]["others"]}
    if args.duration > 0:
        window = await measure(session, args.duration, "after the storm", progress)
        result["steady"] = step_figures(args.viewers + args.running, window, joins, args)


async def _storm(session: BenchSession, args: argparse.Namespace, running: set[str],
                 progress: Progress) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One storm: --viewers joining at --rate; their figures and the storm's."""
    source_before = await session.mark()  # the running viewers' window: the storm
    meter = session.meter()
    meter.start()
    started = time.monotonic()
    # The probes (decoding, for first-decoded time) are among the storm's joiners.
    joins = await session.add_viewers(args.viewers, args.rate, "join storm",
                                      probes_from=session.viewers_started)
    storm_s = time.monotonic() - started
    cpu = meter.read()
    during = await session.collect()
    source_after = await session.creator_frames()
    return joins, {"seconds": round(storm_s, 3),
                   "requested_over_s": round(args.viewers / args.rate, 3),
                   "cpu": {**cpu["cores"], "host_busy": cpu["host_busy"],
                           "others": cpu["others"]},
                   "running_fps": running_fps(during, running),
                   "source_fps": round((source_after - source_before) / storm_s, 2),
                   **join_summary(joins)}


def running_fps(window: dict[str, Any], running: set[str]) -> dict[str, Any]:
    """The fps of the viewers watching before the storm, over one window."""
    return distribution(v["fps"] for v in window["viewers"]
                        if v["id"] in running and v["state"] == "watching")


def render(result: dict[str, Any]) -> str:
    storm = result.get("storm")
    if not storm:
        return "no join storm completed"
    rows = []
    for key, label in (("socket_s", "socket connect (before join)"),
                       ("offer_s", "room:join -> offer"),
                       ("answered_s", "room:join -> answer acked"),
                       ("connected_s", "room:join -> connected"),
                       ("first_frame_s", "room:join -> first frame"),
                       ("first_keyframe_s", "room:join -> first keyframe"),
                       ("first_decoded_s", "room:join -> first decoded (probes)")):
        d = storm[key]
        rows.append([label, d.get("n"), d.get("p50"), d.get("p95"), d.get("p99"),
                     d.get("max")])
    text = table(["seconds", "n", "p50", "p95", "p99", "max"], rows)
    lines = [text,
             f"{storm['ok']}/{storm['n']} viewers watching; {storm['failed']} failed "
             f"{storm['errors'] or ''}".rstrip(),
             f"storm: {storm['n']} joins requested over {storm['requested_over_s']:g} s, "
             f"all done after {storm['seconds']:g} s; server CPU during it "
             f"{pct(storm['cpu'].get('server')) or '?'}"]
    lines.append(f"refused (unavailable + retry_after) {storm['refusals']['total']} times, "
                 f"{storm['refusals']['joins']} joins")
    run_fps, after = storm.get("running_fps") or {}, result.get("after") or {}
    if run_fps:
        lines.append(f"running viewers' fps during the storm min/median {run_fps.get('min')}"
                     f"/{run_fps.get('p50')}; {after.get('seconds', 0):.0f} s after it "
                     f"{(after.get('running_fps') or {}).get('min')}/"
                     f"{(after.get('running_fps') or {}).get('p50')} (all viewers "
                     f"{(after.get('all_fps') or {}).get('min')}/"
                     f"{(after.get('all_fps') or {}).get('p50')}); the creator sent "
                     f"{storm.get('source_fps')} fps during, {after.get('source_fps')} after")
    if len(result.get("rounds") or []) > 1:
        for key, label in (("first_frame_s", "first frame"),
                           ("first_decoded_s", "first decoded")):
            per = [r[key] for r in result["rounds"] if r[key].get("n")]
            if per:
                p50s = ", ".join(f"{d['p50']:g}" for d in per)
                p95s = ", ".join(f"{d['p95']:g}" for d in per)
                lines.append(f"{label} per round, p50: {p50s}; p95: {p95s}")
    steady = result.get("steady")
    if steady:
        lines.append(
            f"then {steady['seconds']:.0f} s steady: fps min/median {steady['fps'].get('min')}"
            f"/{steady['fps'].get('p50')}, latency p95 "
            f"{steady['latency_ms']['arrival'].get('p95')} ms, server "
            f"{pct(steady['cpu'].get('server')) or '?'} CPU")
        lines += [f"warning: {w}" for w in steady["warnings"]]
    return "\n".join(lines)
