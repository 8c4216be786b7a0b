"""`golive bench join`: a join storm. N viewers join one live at a given rate (spread over
the workers so the total rate is even); each is timed from its room:join request to the
server's offer, to connected (ICE+DTLS), to its first complete frame and keyframe (and,
for the probes, to its first decoded frame). Then the full room is watched for --duration
seconds to check that everyone keeps receiving.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.measure import join_summary, measure, step_figures
from bench.report import Progress, pct, table
from bench.session import BenchSession


async def run(session: BenchSession, args: argparse.Namespace, result: dict[str, Any],
              progress: Progress) -> None:
    await session.open(args.viewers)
    result.update(session.describe())
    meter = session.meter()
    meter.start()
    started = time.monotonic()
    joins = await session.add_viewers(args.viewers, args.rate, "join storm")
    storm_s = time.monotonic() - started
    cpu = meter.read()
    result["joins"] = joins
    result["storm"] = {"seconds": round(storm_s, 3),
                       "requested_over_s": round(args.viewers / args.rate, 3),
                       "cpu": {**cpu["cores"], "host_busy": cpu["host_busy"],
                               "others": cpu["others"]},
                       **join_summary(joins)}
    progress.note(f"join storm: {result['storm']['ok']}/{args.viewers} watching after "
                  f"{storm_s:.1f} s, server {pct(cpu['cores'].get('server')) or '?'} CPU")
    if args.duration > 0:
        window = await measure(session, args.duration, "after the storm", progress)
        result["steady"] = step_figures(args.viewers, window, joins, args)


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
    steady = result.get("steady")
    if steady:
        lines.append(
            f"then {steady['seconds']:.0f} s steady: fps min/median {steady['fps'].get('min')}"
            f"/{steady['fps'].get('p50')}, latency p95 "
            f"{steady['latency_ms']['arrival'].get('p95')} ms, server "
            f"{pct(steady['cpu'].get('server')) or '?'} CPU")
        lines += [f"warning: {w}" for w in steady["warnings"]]
    return "\n".join(lines)
