"""The cascade's cost: server CPU per viewer-packet at the origin and at an edge, the
origin's added cost for an edge, and the relay hop's latency.

    python -m bench.cascade --viewers 20 --seconds 10

Starts a redis-server and two `golive serve --workers 1` nodes on it (node-a, the origin;
node-b, an edge), a headless creator live on A (640x360, --fps, VP8), then measures
six steps of --seconds each (after a settling second), adding light viewers (RTP
counted, not decoded, bench.viewers): none; 1 on A; --viewers on A; + 1 on B; +
--viewers on B; then B's viewers pinned to 180 (`room:quality`: B's relay then
carries the 180 rendition alone, once its top one lingered out, and A encodes 180 for
it besides the top one its own viewers take). Per node, the marginal CPU per
viewer-packet is the CPU's growth over the packets' growth between its 1-viewer and
its N-viewer steps (A: the origin's fan-out; B: the edge's fan-out of the relayed
stream); the origin's added cost for an edge is A's CPU with the edge's first viewer
minus without; the edge's fixed cost is B's CPU with one viewer (relay receive and one
fan-out); the origin's added cost for the edge's 180 is A's CPU in the last step minus
the one before (an encode of 180 and its relay, less the top rendition's relay). Then
the hop latency at B (its /metrics golive_relay_hop_seconds, p50/p95: origin queue ->
edge receive, one machine's clock).
CPU is utime + stime from /proc of each server process; viewers run in this process
(not counted). Everything it started is
stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
from typing import Any

import aiohttp
import socketio

from bench.creator import start_live
from bench.processes import cpu_seconds
from bench.target import nodes_on_one_redis, register_accounts
from bench.viewers import BenchViewer
from media.synthetic import HeadlessCreator

NODES = ("node-a", "node-b")


async def _join(url: str, accounts: list[Any], creator_id: str) -> list[BenchViewer]:
    viewers = [BenchViewer({"id": a.id, "token": a.token}, url, creator_id, False, "vp8")
               for a in accounts]
    async def one(viewer: BenchViewer) -> None:
        async with asyncio.timeout(30):
            await viewer.join()
    await asyncio.gather(*(one(v) for v in viewers))
    return viewers


async def _window(pids: dict[str, int], viewers: dict[str, list[BenchViewer]],
                  seconds: float) -> dict[str, Any]:
    """CPU seconds of each server and packets its viewers got, over `seconds`."""
    await asyncio.sleep(1.0)  # settle
    for group in viewers.values():
        for viewer in group:
            viewer.mark()
    before = {name: cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
    started = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    out: dict[str, Any] = {"seconds": round(elapsed, 2)}
    for name, pid in pids.items():
        out[f"{name}_cpu_per_s"] = round(((cpu_seconds(pid) or 0.0) - before[name]) / elapsed, 4)
    for side, group in viewers.items():
        windows = [v.counters.window() for v in group]
        out[f"{side}_viewer_packets"] = sum(w["video_packets"] + w["audio_packets"]
                                            for w in windows)
        out[f"{side}_lost"] = sum(w["lost"] for w in windows)
    return out


def _slope(few: dict[str, Any], many: dict[str, Any], node: str, side: str) -> float | None:
    """Marginal server CPU per viewer-packet (us) between two steps of one node."""
    cpu = many[f"{node}_cpu_per_s"] - few[f"{node}_cpu_per_s"]
    packets = (many[f"{side}_viewer_packets"] / many["seconds"]
               - few[f"{side}_viewer_packets"] / few["seconds"])
    return round(cpu / packets * 1e6, 2) if packets > 0 else None


async def _hop(url: str) -> dict[str, float | None]:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
        text = await resp.text()
    out: dict[str, float | None] = {}
    for q, name in (("0.5", "p50_ms"), ("0.95", "p95_ms")):
        sample = 'golive_relay_hop_seconds{quantile="' + q + '"} '
        found = re.search(re.escape(sample) + r"([0-9.e+-]+)", text)
        out[name] = round(float(found.group(1)) * 1000, 2) if found else None
    return out


async def _metric(url: str, sample: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
        text = await resp.text()
    found = re.search(re.escape(sample + " ") + r"([0-9.e+-]+)", text)
    return float(found.group(1)) if found else 0.0


async def _pin(viewers: list[BenchViewer], quality: str, origin_url: str) -> dict[str, Any]:
    """Pin each viewer to `quality` and wait (30 s at most) until the origin relays the
    top rendition to no edge (an edge lets go of it 3 s after its last viewer moved)."""
    for viewer in viewers:
        ack = await viewer.sio.call("room:quality", {"live_id": viewer.live_id,
                                                     "quality": quality}, timeout=10)
        if not ack.get("ok"):
            raise RuntimeError(f"room:quality refused: {ack.get('error')}")
    top = 'golive_relay_renditions{rendition="720",side="origin"}'
    for _ in range(150):  # polls /metrics: no event to wait on across processes
        if await _metric(origin_url, top) == 0:
            break
        await asyncio.sleep(0.2)
    low = 'golive_relay_renditions{rendition="' + quality + '",side="origin"}'
    return {"top_relayed": await _metric(origin_url, top),
            "pinned_relayed": await _metric(origin_url, low)}


async def measure(urls: list[str], pids: dict[str, int], viewers_per_node: int,
                  seconds: float, fps: float) -> dict[str, Any]:
    creator_acct, *accounts = await register_accounts(urls[0], 1 + 2 * viewers_per_node)
    owner = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    await owner.connect(urls[0], auth={"token": creator_acct.token}, transports=["websocket"])
    creator = HeadlessCreator.synthetic(640, 360, fps)
    on_a: list[BenchViewer] = []
    on_b: list[BenchViewer] = []
    result: dict[str, Any] = {"viewers_per_node": viewers_per_node, "fps": fps,
                              "cpus": os.cpu_count()}
    try:
        await start_live(owner, creator, "cascade bench", timeout=20)
        steps: dict[str, Any] = {"idle": await _window(pids, {}, seconds)}
        on_a = await _join(urls[0], accounts[:1], creator_acct.id)
        steps["a1"] = await _window(pids, {"a": on_a}, seconds)
        on_a += await _join(urls[0], accounts[1:viewers_per_node], creator_acct.id)
        steps["aN"] = await _window(pids, {"a": on_a}, seconds)
        on_b = await _join(urls[1], accounts[viewers_per_node:viewers_per_node + 1],
                           creator_acct.id)
        steps["aN_b1"] = await _window(pids, {"a": on_a, "b": on_b}, seconds)
        on_b += await _join(urls[1], accounts[viewers_per_node + 1:], creator_acct.id)
        steps["aN_bN"] = await _window(pids, {"a": on_a, "b": on_b}, seconds)
        result["edge_pinned_180_relays"] = await _pin(on_b, "180", urls[0])
        steps["aN_bN180"] = await _window(pids, {"a": on_a, "b": on_b}, seconds)
        result["steps"] = steps
        result["origin_us_per_viewer_packet"] = _slope(steps["a1"], steps["aN"], "node-a", "a")
        result["edge_us_per_viewer_packet"] = _slope(steps["aN_b1"], steps["aN_bN"],
                                                     "node-b", "b")
        result["origin_added_cpu_per_s_for_the_edge"] = round(
            steps["aN_b1"]["node-a_cpu_per_s"] - steps["aN"]["node-a_cpu_per_s"], 4)
        result["edge_cpu_per_s_with_one_viewer"] = steps["aN_b1"]["node-b_cpu_per_s"]
        result["origin_added_cpu_per_s_for_the_edges_180"] = round(
            steps["aN_bN180"]["node-a_cpu_per_s"] - steps["aN_bN"]["node-a_cpu_per_s"], 4)
        result["edge_packets_per_s_top_and_180"] = [
            round(steps[step]["b_viewer_packets"] / steps[step]["seconds"] / viewers_per_node, 1)
            for step in ("aN_bN", "aN_bN180")]
        result["lost_packets"] = sum(step.get(f"{side}_lost", 0) for step in steps.values()
                                     for side in "ab")
        result["hop_latency"] = await _hop(urls[1])
    finally:
        for viewer in on_a + on_b:
            await viewer.close()
        with contextlib.suppress(Exception):
            await owner.disconnect()
        await creator.close()
    return result


async def run(viewers: int, seconds: float, fps: float) -> dict[str, Any]:
    async with nodes_on_one_redis("golive-cascade-", NODES,
                                  {"GOLIVE_MAX_VIEWERS": "5000"}) as nodes:
        urls = [url for url, _ in nodes]
        pids = {child.name: child.pid for _, child in nodes}
        return await measure(urls, pids, viewers, seconds, fps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=20, help="light viewers on each node")
    parser.add_argument("--seconds", type=float, default=10.0, help="each step's window")
    parser.add_argument("--fps", type=float, default=30.0, help="the creator's frame rate")
    args = parser.parse_args(argv)
    json.dump(asyncio.run(run(args.viewers, args.seconds, args.fps)), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
