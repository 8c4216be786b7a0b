"""`golive bench fanout`: one creator, a sweep of viewer counts, the server's cost per step.

Each step ADDS viewers to the ones already watching (1, then 9 more for 10, then 40 more
for 50, ...): the room grows as a real one does, and nobody re-joins between steps. After
the step's joins and a short settle, one window of --duration seconds is measured. The
sweep stops at the first step where the server saturates (CPU >= 95% of a core, or the
median viewer gets < 80% of the source frame rate).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bench.measure import measure, step_figures
from bench.report import Progress, pct, table
from bench.session import BenchSession


async def run(session: BenchSession, args: argparse.Namespace, result: dict[str, Any],
              progress: Progress) -> None:
    counts: list[int] = args.viewers
    await session.open(counts[-1])
    result.update(session.describe())
    result["steps"] = []
    current = 0
    for index, target in enumerate(counts):
        label = f"step {index + 1}/{len(counts)} ({target} viewers)"
        joins = await session.add_viewers(target - current, args.join_rate, label)
        current = target
        await asyncio.sleep(args.settle)
        window = await measure(session, args.duration, label, progress)
        step = step_figures(target, window, joins, args)
        result["steps"].append(step)
        progress.note(summary_line(step))
        for warning in step["warnings"]:
            progress.note(f"  warning: {warning}")
        if step["saturated"]:
            result["stopped"] = f"saturated at {target} viewers: {step['saturated']}"
            progress.note(result["stopped"])
            break


def summary_line(step: dict[str, Any]) -> str:
    latency = step["latency_ms"]["arrival"]
    return (f"{step['viewers']:>5} viewers: server {pct(step['cpu'].get('server')) or '?'} "
            f"CPU, fps min/median {step['fps'].get('min')}/{step['fps'].get('p50')}, "
            f"p95 latency {latency.get('p95')} ms, "
            f"{step['delivered']['packets_per_s']:.0f} packets/s")


def render(result: dict[str, Any]) -> str:
    rows = []
    for s in result.get("steps", []):
        joins = s["joins"]
        rows.append([
            s["viewers"], s["watching"], pct(s["cpu"].get("server")), s["server_rss_mb"],
            s["server_us_per_viewer_packet"], s["delivered"]["packets_per_s"],
            s["delivered"]["mbit_per_s"], s["fps"].get("min"), s["fps"].get("p50"),
            None if s["loss"]["fraction"] is None else f"{s['loss']['fraction']:.2%}",
            s["latency_ms"]["arrival"].get("p50"), s["latency_ms"]["arrival"].get("p95"),
            s["latency_ms"]["arrival"].get("p99"), s["spread_ms"]["all"].get("p95"),
            joins["first_keyframe_s"].get("p50"), joins["first_keyframe_s"].get("p95"),
            joins["connected_s"].get("p50"), joins["connected_s"].get("p95"),
            pct(s["load"]["workers_max"]), pct(s["load"]["creator"]), pct(s["cpu"]["others"]),
            "SATURATED" if s["saturated"] else ("!" if s["warnings"] else "")])
    text = table(["viewers", "watching", "srv cpu", "srv MB", "us/pkt", "pkt/s", "Mbit/s",
                  "fps min", "fps med", "loss", "lat p50", "lat p95", "lat p99", "jit p95",
                  "key p50", "key p95", "join p50", "join p95", "workers", "creator", "others",
                  ""],
                 rows)
    notes = [
        "srv cpu: server process, % of one core (all threads); us/pkt: server CPU per "
        "delivered viewer-packet (video+audio)",
        "lat: capture -> arrival of the frame's last packet, ms, measured by the probe "
        "viewers (decoding, 1 per worker); jit p95: per-frame arrival spread, all viewers, ms",
        "key / join: s from room:join to the first complete keyframe / to connected "
        "(ICE+DTLS), viewers added in that step; workers: busiest viewer worker's CPU; "
        "others: CPU of processes the bench did not start (other work on the machine)",
    ]
    if result.get("stopped"):
        notes.append(result["stopped"])
    for s in result.get("steps", []):
        notes += [f"{s['viewers']} viewers: {w}" for w in s["warnings"]]
    return text + "\n" + "\n".join(notes)
