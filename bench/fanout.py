"""`golive bench fanout`: one creator, a sweep of viewer counts, the server's cost per step.

Each step ADDS viewers to the ones already watching (1, then 9 more for 10, then 40 more
for 50, ...): the room grows as a real one does, and nobody re-joins between steps. After
the step's joins and a short settle, one window of --duration seconds is measured. The
sweep stops at the first step where the server saturates (CPU >= 95% of a core, or the
median viewer gets < 80% of the source frame rate).

With --baseline naive the same sweep then runs against the naive aiortc relay
(bench.naive_server; its figures under result["baseline"]), and the table ends with the
two side by side: server CPU, CPU per added viewer, fps and latency per viewer count.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
from pathlib import Path
from typing import Any

from bench.baselines import DESCRIPTIONS
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


async def run_paths(args: argparse.Namespace, paths: list[str], run_dir: Path,
                    result: dict[str, Any], progress: Progress,
                    sessions: list[BenchSession]) -> None:
    """`--paths native,python[,naive] --rounds N`: the sweep once per path per round, a
    fresh server each (GOLIVE_FANOUT=path; "naive": the naive aiortc relay baseline),
    paths interleaved so drift on the machine hits all; result["paths"][path] is the
    list of rounds' sweeps."""
    result["paths"] = {path: [] for path in paths}
    for round_no in range(args.rounds):
        for path in paths:
            side_args = copy.copy(args)
            baseline = path if path in DESCRIPTIONS else None
            if baseline is None:
                side_args.server_env = [*args.server_env, f"GOLIVE_FANOUT={path}"]
            session = BenchSession(side_args, run_dir / f"{path}-{round_no + 1}", progress,
                                   baseline)
            sessions.append(session)
            progress.note(f"round {round_no + 1}/{args.rounds}: GOLIVE_FANOUT={path}")
            side: dict[str, Any] = {}
            try:
                await run(session, side_args, side, progress)
            finally:
                await session.close()  # one server at a time: each path gets the CPUs
            result["paths"][path].append(side)


def paths_table(result: dict[str, Any]) -> str:
    """Per path and viewer count over the rounds: server CPU per viewer-packet (median,
    min-max), server CPU and median fps (medians)."""
    rows = []
    per_path = result.get("paths", {})
    counts = sorted({s["viewers"] for rounds in per_path.values() for side in rounds
                     for s in side.get("steps", [])})
    medians: dict[tuple[str, int], float] = {}
    for n in counts:
        for path, rounds in per_path.items():
            steps = [s for side in rounds for s in side.get("steps", []) if s["viewers"] == n]
            us = [s["server_us_per_viewer_packet"] for s in steps
                  if s.get("server_us_per_viewer_packet") is not None]
            cpu = [s["cpu"]["server"] for s in steps if s["cpu"].get("server") is not None]
            fps = [s["fps"]["p50"] for s in steps if s["fps"].get("p50") is not None]
            if us:
                medians[(path, n)] = statistics.median(us)
            rows.append([n, path, len(steps),
                         None if not us else round(statistics.median(us), 1),
                         None if not us else f"{min(us):.1f}-{max(us):.1f}",
                         None if not cpu else pct(statistics.median(cpu)),
                         None if not fps else statistics.median(fps)])
    text = "fan-out send paths, rounds interleaved:\n" + table(
        ["viewers", "path", "rounds", "us/pkt med", "us/pkt min-max", "srv cpu med",
         "fps med"], rows)
    ratios = [f"{n} viewers: native/python {medians[('native', n)] / medians[('python', n)]:.2f}"
              for n in counts if ("native", n) in medians and ("python", n) in medians]
    return text + ("\n" + "; ".join(ratios) if ratios else "")


def summary_line(step: dict[str, Any]) -> str:
    latency = step["latency_ms"]["arrival"]
    return (f"{step['viewers']:>5} viewers: server {pct(step['cpu'].get('server')) or '?'} "
            f"CPU, fps min/median {step['fps'].get('min')}/{step['fps'].get('p50')}, "
            f"p95 latency {latency.get('p95')} ms, "
            f"{step['delivered']['packets_per_s']:.0f} packets/s")


LEGEND = [
    "srv cpu: server process, % of one core (all threads); us/pkt: server CPU per "
    "delivered viewer-packet (video+audio)",
    "lat: capture -> arrival of the frame's last packet, ms, measured by the probe "
    "viewers (decoding, 1 per worker); jit p95: per-frame arrival spread, all viewers, ms",
    "key / join: s from room:join to the first complete keyframe / to connected "
    "(ICE+DTLS), viewers added in that step; workers: busiest viewer worker's CPU; "
    "others: CPU of processes the bench did not start (other work on the machine)",
]

QUALITY_FPS = 29.0  # the bar for "viewers per core": median fps >= 29 of 30 ...
QUALITY_P95_MS = 50.0  # ... and p95 added latency < 50 ms


def render(result: dict[str, Any]) -> str:
    """The golive table; with a baseline, its table and the two side by side."""
    if result.get("paths"):
        return paths_table(result) + "\n\n" + "\n".join(LEGEND)
    text = _side_table(result)
    baseline = result.get("baseline")
    if baseline:
        text += (f"\n\nbaseline {baseline['name']}: {baseline['what']}\n"
                 + _side_table(baseline) + "\n\n" + _compare(result, baseline))
    return text + "\n\n" + "\n".join(LEGEND)


def _side_table(side: dict[str, Any]) -> str:
    rows = []
    for s in side.get("steps", []):
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
    notes = []
    if side.get("stopped"):
        notes.append(side["stopped"])
    for s in side.get("steps", []):
        notes += [f"{s['viewers']} viewers: {w}" for w in s["warnings"]]
    return "\n".join([text, *notes])


def marginal_cpu(steps: list[dict[str, Any]]) -> list[float | None]:
    """Server CPU (cores) each step's added viewers cost, per viewer: the slope between a
    step and the one before (the first step: its CPU over its viewers, fixed costs and
    all). None where the CPU is unknown."""
    out: list[float | None] = []
    before_viewers, before_cpu = 0, 0.0
    for s in steps:
        cpu = s["cpu"].get("server")
        added = s["viewers"] - before_viewers
        out.append(None if cpu is None or added <= 0 else (cpu - before_cpu) / added)
        before_viewers, before_cpu = s["viewers"], cpu or 0.0
    return out


def best_quality_step(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The largest unsaturated step with median fps >= QUALITY_FPS and p95 latency below
    QUALITY_P95_MS."""
    good = [s for s in steps if not s["saturated"]
            and (s["fps"].get("p50") or 0) >= QUALITY_FPS
            and (s["latency_ms"]["arrival"].get("p95") or 1e9) < QUALITY_P95_MS]
    return max(good, key=lambda s: s["viewers"], default=None)


def cpu_slope(steps: list[dict[str, Any]]) -> float | None:
    """Server CPU (cores) per viewer: the least-squares slope over the unsaturated steps
    whose CPU is known; None with fewer than two."""
    points = [(s["viewers"], s["cpu"]["server"]) for s in steps
              if not s["saturated"] and s["cpu"].get("server") is not None]
    if len({v for v, _ in points}) < 2:
        return None
    mean_v = sum(v for v, _ in points) / len(points)
    mean_c = sum(c for _, c in points) / len(points)
    return (sum((v - mean_v) * (c - mean_c) for v, c in points)
            / sum((v - mean_v) ** 2 for v, _ in points))


def pct_fine(cores: float | None) -> str:
    """A share of a core with one decimal: per-viewer costs are often below 1%."""
    return "?" if cores is None else f"{cores * 100:.1f}%"


def _compare(result: dict[str, Any], baseline: dict[str, Any]) -> str:
    name = baseline["name"]
    ours, theirs = result.get("steps", []), baseline.get("steps", [])
    ours_m, theirs_m = marginal_cpu(ours), marginal_cpu(theirs)
    by_count = {s["viewers"]: (s, m) for s, m in zip(theirs, theirs_m, strict=True)}
    counts = sorted({s["viewers"] for s in ours} | set(by_count))
    mine = {s["viewers"]: (s, m) for s, m in zip(ours, ours_m, strict=True)}
    rows = []
    for n in counts:
        a, am = mine.get(n, (None, None))
        b, bm = by_count.get(n, (None, None))
        rows.append([n, _cpu(a), _cpu(b), _fine(am), _fine(bm), _fps(a),
                     _fps(b), _p95(a), _p95(b),
                     _state(a), _state(b)])
    text = f"side by side (golive | {name}):\n" + table(
        ["viewers", "srv cpu", f"{name} cpu", "cpu/viewer", f"{name} cpu/v", "fps med",
         f"{name} fps", "lat p95", f"{name} p95", "golive", name], rows)
    lines = ["cpu/viewer: server CPU added per viewer from the step before, % of a core "
             "(the first step includes the fixed cost of ingesting the creator)"]
    slopes = {label: cpu_slope(steps) for label, steps in (("golive", ours), (name, theirs))}
    if all(v is not None for v in slopes.values()):
        ratio = (f": {slopes[name] / slopes['golive']:.0f}x"  # type: ignore[operator]
                 if slopes["golive"] and slopes["golive"] > 0 else "")
        lines.append(f"a viewer costs (slope of server CPU over the unsaturated steps): golive "
                     f"{pct_fine(slopes['golive'])}, {name} {pct_fine(slopes[name])} of a core"
                     + ratio)
    for label, steps in (("golive", ours), (name, theirs)):
        best = best_quality_step(steps)
        bar = f"median fps >= {QUALITY_FPS:g} and p95 < {QUALITY_P95_MS:g} ms"
        if best is None:
            lines.append(f"{label}: no step with {bar}")
        else:
            n = best["viewers"]
            lines.append(f"{label}: largest step with {bar}: {n} viewer{'s' * (n != 1)}, "
                         f"server {pct(best['cpu'].get('server')) or '?'} of a core")
    return text + "\n" + "\n".join(lines)


def _cpu(step: dict[str, Any] | None) -> str | None:
    return None if step is None else pct(step["cpu"].get("server"))


def _fps(step: dict[str, Any] | None) -> float | None:
    return None if step is None else step["fps"].get("p50")


def _p95(step: dict[str, Any] | None) -> float | None:
    return None if step is None else step["latency_ms"]["arrival"].get("p95")


def _state(step: dict[str, Any] | None) -> str:
    if step is None:
        return "-"
    return "SATURATED" if step["saturated"] else "ok"


def _fine(cores: float | None) -> str | None:
    return None if cores is None else pct_fine(cores)
