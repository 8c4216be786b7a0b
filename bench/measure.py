"""One measurement window over a steady room, and the figures made from it.

What is measured where (the JSON and the table say the same):
- server CPU and RSS: /proc/<pid> of the server process (all its threads, including the
  room's encode thread); its embedded redis-server separately. Unknown with --url unless
  --server-pid is given.
- packets, bytes, frames, keyframes, loss: counted by every viewer, light or probe, from
  the RTP it received (bytes = payload + 12-byte RTP header; loss = sequence gaps, which
  on loopback means a UDP receive buffer overflowed: some process fell behind. Packets the
  server's fan-out drops for a slow viewer are never numbered, so they show as missing
  frames, not loss).
- added latency: probe viewers only (they decode): stamp capture time -> arrival of the
  frame's last packet; also -> decoded. Creator and viewers share the machine's clock.
- arrival jitter ("spread"): every viewer: each frame's (arrival - RTP media time) above
  the viewer's quickest frame in the window. It includes the creator's pacing jitter.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Any

from bench.figures import cdf_points, distribution, ratio
from bench.report import Progress, pct
from bench.session import BenchSession

SATURATED_CPU = 0.95  # of one core: the server's event loop is single-threaded
SATURATED_FPS = 0.8  # of the source frame rate, at the median viewer
LOAD_BUSY = 0.9  # a load process above this may be the bottleneck, not the server
HOST_BUSY = 0.95  # the whole machine
OTHERS_BUSY = 0.2  # of a core, used by processes the bench did not start
LOSS_NOTED = 0.001  # loopback loses nothing unless a socket buffer overflows


async def measure(session: BenchSession, seconds: float, label: str,
                  progress: Progress) -> dict[str, Any]:
    """Run one window of `seconds`; returns the raw window plus CPU, RSS, source frames."""
    loop = asyncio.get_running_loop()
    meter = session.meter()
    tick = session.meter()
    frames_before = await session.mark()
    meter.start()
    tick.start()
    rss: list[int] = []
    end = loop.time() + seconds
    while (remaining := end - loop.time()) > 0:
        await asyncio.sleep(min(1.0, remaining))
        now = tick.read()["cores"]
        tick.start()
        if (server_rss := session.server_rss()) is not None:
            rss.append(server_rss)
        workers = [v for k, v in now.items() if k.startswith("worker") and v is not None]
        progress.update(f"{label}: measuring {seconds - max(0.0, end - loop.time()):.0f}/"
                        f"{seconds:g} s | server {pct(now.get('server')) or '?'} CPU | "
                        f"busiest worker {pct(max(workers, default=None)) or '?'}")
    cpu = meter.read()
    window = await session.collect()
    frames_after = await session.creator_frames()
    window["cpu"] = cpu
    window["server_rss_mb"] = round(max(rss) / 2**20, 1) if rss else None
    window["source_fps"] = round((frames_after - frames_before) / cpu["seconds"], 2)
    return window


def step_figures(viewers: int, window: dict[str, Any], joins: Sequence[dict[str, Any]],
                 args: argparse.Namespace) -> dict[str, Any]:
    """The figures of one step from its window and the joins that led to it."""
    seconds = window["seconds"]
    rows = window["viewers"]
    watching = [v for v in rows if v["state"] == "watching"]
    video = sum(v["video_packets"] for v in rows)
    audio = sum(v["audio_packets"] for v in rows)
    packets_per_s = (video + audio) / seconds
    cores = window["cpu"]["cores"]
    server = cores.get("server")
    workers = {k: v for k, v in cores.items() if k.startswith("worker")}
    lost = sum(v["lost"] for v in rows)
    expected = sum(v["video_expected"] for v in rows)
    probes = [v for v in rows if v["probe"]]
    step: dict[str, Any] = {
        "viewers": viewers,
        "watching": len(watching),
        "seconds": round(seconds, 3),
        "cpu": {**cores, "host_busy": window["cpu"]["host_busy"],
                "others": window["cpu"]["others"]},
        "server_rss_mb": window["server_rss_mb"],
        "source_fps": window["source_fps"],
        "delivered": {
            "packets_per_s": round(packets_per_s, 1),
            "video_packets_per_s": round(video / seconds, 1),
            "audio_packets_per_s": round(audio / seconds, 1),
            "mbit_per_s": round(sum(v["bytes"] for v in rows) * 8 / seconds / 1e6, 3),
            "rtx_packets": sum(v["rtx_packets"] for v in rows),
        },
        "server_us_per_viewer_packet": (round(server * 1e6 / packets_per_s, 1)
                                        if server is not None and packets_per_s else None),
        "fps": distribution(v["fps"] for v in watching),
        "keyframes_per_viewer": distribution((v["keyframes"] for v in watching), 2),
        "loss": {"lost": lost, "expected": expected, "fraction": ratio(lost, expected)},
        "latency_ms": {"arrival": distribution(window["latency_arrival_ms"], 2),
                       "decoded": distribution(window["latency_decoded_ms"], 2)},
        "latency_cdf": cdf_points(window["latency_arrival_ms"], 100),
        "spread_ms": {"all": distribution(window["spread_ms"], 2),
                      "probes": distribution(window["probe_spread_ms"], 2)},
        "probes": {"count": len(probes),
                   "decoded": sum(v.get("decoded", 0) for v in probes),
                   "stamp_errors": sum(v.get("stamp_errors", 0) for v in probes),
                   "source_gaps": sum(v.get("source_gaps", 0) for v in probes)},
        "load": {"workers": workers, "workers_max": max(
                     (v for v in workers.values() if v is not None), default=0.0),
                 "creator": cores.get("creator")},
        "joins": join_summary(joins),
        "not_watching": {v["id"]: v["error"] or v["state"] for v in rows
                         if v["state"] != "watching"},
    }
    step["warnings"] = warnings(step, args.fps)
    step["saturated"] = saturation(step, args.fps)
    return step


def join_summary(joins: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ok = [j for j in joins if j["ok"]]
    errors: dict[str, int] = {}
    for j in joins:
        if not j["ok"]:
            errors[str(j["error"])] = errors.get(str(j["error"]), 0) + 1
    return {"n": len(joins), "ok": len(ok), "failed": len(joins) - len(ok), "errors": errors,
            "refusals": {"joins": sum(1 for j in joins if j.get("refusals")),
                         "total": sum(j.get("refusals", 0) for j in joins)},
            **{key: distribution(j[key] for j in ok)
               for key in ("socket_s", "offer_s", "answered_s", "connected_s", "first_frame_s",
                           "first_keyframe_s", "first_decoded_s")}}


def warnings(step: dict[str, Any], fps: float) -> list[str]:
    """What makes this step's figures doubtful, in words."""
    out = []
    for name, cores in step["load"]["workers"].items():
        if cores is not None and cores > LOAD_BUSY:
            out.append(f"{name} used {cores:.0%} of a core: the viewers, not the server, "
                       "may be the bottleneck")
    creator = step["load"]["creator"]
    if creator is not None and creator > LOAD_BUSY:
        out.append(f"the creator used {creator:.0%} of a core")
    if step["cpu"]["others"] > OTHERS_BUSY:
        out.append(f"other processes on this machine used {step['cpu']['others']:.0%} of a "
                   "core during the window: the figures include their interference")
    if step["cpu"]["host_busy"] > HOST_BUSY:
        out.append(f"the machine was {step['cpu']['host_busy']:.0%} busy: every process "
                   "competed for CPU")
    if step["source_fps"] < SATURATED_FPS * fps:
        out.append(f"the creator sent only {step['source_fps']:g} fps of {fps:g}")
    loss = step["loss"]["fraction"]
    if loss is not None and loss > LOSS_NOTED:
        out.append(f"{loss:.1%} of video packets lost on loopback: a UDP receive buffer "
                   "overflowed (a viewer worker or the server fell behind)")
    if step["joins"]["failed"]:
        out.append(f"{step['joins']['failed']} viewer(s) failed to join: "
                   f"{step['joins']['errors']}")
    if step["not_watching"]:
        out.append(f"{len(step['not_watching'])} viewer(s) not watching at the end")
    if step["probes"]["count"] and not step["latency_ms"]["arrival"]["n"]:
        out.append("no latency samples: the probe viewers read no stamp")
    if step["cpu"].get("server") is None:
        out.append("server CPU unknown (--url without --server-pid)")
    return out


def saturation(step: dict[str, Any], fps: float) -> str | None:
    """Why the server counts as saturated at this step, or None."""
    server = step["cpu"].get("server")
    if server is not None and server >= SATURATED_CPU:
        return f"server CPU {server:.0%} >= {SATURATED_CPU:.0%} of a core"
    median = step["fps"].get("p50")
    if median is None or median < SATURATED_FPS * fps:
        return f"median delivered fps {median} < {SATURATED_FPS:.0%} of {fps:g}"
    return None
