"""`chat` mode: one live's chat fanned out to many chat-only members.

    python -m bench.chat --clients 1000 --rates 20,100,300 --duration 10

Starts `golive serve` (or uses --url), registers a creator and N client accounts over the
HTTP API, goes live in this process (a small synthetic stream: a chat room exists only
while its creator is live), starts --workers load processes (bench.chat_clients) whose
light Socket.IO/Engine.IO clients (msgpack) join the live with `room:join {media:
false}`. Then, per rate step, --senders of them send `chat:send` at the step's total rate
for --warmup + --duration seconds; during the last --duration seconds it measures:
deliveries per second (lines received by the sampled clients, scaled to every member),
send-to-receipt latency p50/p99 (the text carries its send time; every process shares
the machine's clock), the server's CPU and RSS (/proc), server memory per connected
client (RSS after the joins minus before, per client) and the load processes' own CPU
(a warning when they, not the server, may be the bottleneck).

With --baseline node the same clients, senders and rates then run against node's
socket.io server (bench/node, from npm, with the same msgpack parser) doing a plain
room broadcast, started here and pinned like golive serve: both sides in one table,
one JSON (the baseline under "baseline") and the plots.

Senders: the server allows 5 lines per user per live in 5 s (engine/chat_rules.py
ChatLimits.rate), so by default each sender sends at most 0.5 lines/s: senders =
2 x the highest rate (at most --clients).

Progress goes to stderr, the table to stdout, every figure to OUT/chat-<date>-<time>/
result.json along with the server's and workers' logs (the baseline's under node/) and,
with matplotlib, PNG plots (deliveries/s, latency and server CPU against the send rate).
Ctrl-C (or SIGTERM) stops the run cleanly (a second Ctrl-C kills what is left); the JSON
is written either way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

PER_SENDER_RATE_MAX = 0.5  # lines/s: half the server's per-user chat limit (5 per 5 s)
CHAT_SERVER_ENV = {"GOLIVE_AUTH_RATE": "1000/s", "GOLIVE_AUTH_BURST": "5000",
                   "GOLIVE_EVENT_RATE": "1000/s", "GOLIVE_EVENT_BURST": "2000"}
READY_TIMEOUT_S = 60.0
CREATOR_TIMEOUT_S = 30.0
STEP_MARGIN_S = 60.0
LOAD_BUSY = 0.85  # a load process above this share of a core may be the bottleneck
MAX_CLIENTS = 20_000


# --- command line ----------------------------------------------------------------------


def _parse_rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"rates are N,N,... lines/s: {text!r}") from None
    if not rates or any(not 0 < r <= 100_000 for r in rates):
        raise argparse.ArgumentTypeError(f"rates must be > 0: {text!r}")
    return rates


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.options import add_out

    parser.add_argument("--clients", type=int, default=1000,
                        help="chat-only members of the live (1000)")
    parser.add_argument("--rates", type=_parse_rates, default=[20.0, 100.0, 300.0],
                        help="total lines/s sent into the room, one step each (20,100,300)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds measured per step (10)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of sending before each step's measurement (2)")
    parser.add_argument("--senders", type=int, default=0,
                        help="clients that send (default: 2 x the highest rate, at most "
                             "--clients, so no sender nears the per-user chat limit)")
    parser.add_argument("--workers", type=int, default=1, help="load processes (1)")
    parser.add_argument("--sample", type=int, default=100,
                        help="clients that decode every push and time every line (100); "
                             "the others only count frames")
    parser.add_argument("--url", help="a running golive server (default: start one here)")
    parser.add_argument("--server-pid", type=int,
                        help="with --url: the server's pid, to report its CPU and RSS")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for the server started here (repeatable)")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                        help="with a server started here and 2+ CPUs: the server on one "
                             "CPU, its Redis and the load on the others (default on)")
    parser.add_argument("--baseline", choices=("node",),
                        help="then run the same load against node's socket.io server "
                             "(npm; plain broadcast), side by side")
    add_out(parser)


def add_mode(modes: Any) -> argparse.ArgumentParser:
    """Add the `chat` mode to an argparse subparsers object (run=run, bench_mode=chat)."""
    parser = modes.add_parser(
        "chat", help="chat fan-out: N chat-only members, rising message rates",
        description="One live's chat: N chat-only members, senders at rising rates; "
                    "deliveries/s, latency, server CPU and memory per client.")
    _add_arguments(parser)
    parser.set_defaults(run=run, bench_mode="chat")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the chat bench `args` describes; the exit status (130 when interrupted)."""
    from bench.options import flags_ok

    if not flags_ok("bench chat", (
            (not 1 <= args.clients <= MAX_CLIENTS, f"--clients must be 1..{MAX_CLIENTS}"),
            (args.senders < 0, "--senders must be >= 0"),
            (args.workers < 1, "--workers must be >= 1"),
            (args.sample < 0, "--sample must be >= 0"),
            (args.duration <= 0, "--duration must be > 0"),
            (args.warmup < 0, "--warmup must be >= 0"),
            (args.url is None and args.server_pid, "--server-pid goes with --url"))):
        return 2
    return asyncio.run(_execute(args))


def main(argv: list[str] | None = None) -> int:
    from bench.options import module_main

    return module_main("bench.chat", __doc__, _add_arguments, run, argv)


# --- figures ---------------------------------------------------------------------------


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _senders_for(args: argparse.Namespace) -> int:
    wanted = args.senders or math.ceil(max(args.rates) / PER_SENDER_RATE_MAX)
    return max(1, min(args.clients, wanted))


def render(result: dict[str, Any]) -> str:
    """The golive table; with a baseline, its table and the two side by side."""
    text = _side_table(result, "golive")
    baseline = result.get("baseline")
    if baseline:
        text += (f"\n\nbaseline {baseline['name']}: {baseline['what']}\n"
                 + _side_table(baseline, baseline["name"]) + "\n\n" + _compare(result, baseline))
    notes = ["us/deliv: server CPU per delivered line (one line reaching one client); "
             "load cpu: the busiest load process"]
    for name, side in (("golive", result), (baseline and baseline["name"], baseline or {})):
        notes += [f"warning ({name}, {s['rate']:g} lines/s): a load process used "
                  f"{_pct(s['load_cpu_max'])} of a core: the clients, not the server, may be "
                  "the bottleneck" for s in side.get("steps", []) if s["load_bound"]]
    return text + "\n" + "\n".join(notes)


def _side_table(side: dict[str, Any], name: str) -> str:
    from bench.report import table

    rows = []
    for s in side.get("steps", []):
        rows.append([s["rate"], s["sent_per_s"], s["deliveries_per_s"],
                     s["latency_ms"]["p50"], s["latency_ms"]["p99"],
                     s["latency_ms"]["max"], _pct(s["cpu"]["server"]), s["server_rss_mb"],
                     s["server_us_per_delivery"], _pct(s["load_cpu_max"]), s["errors"]])
    head = (f"chat ({name}): {side.get('clients_joined', 0)} members of one live, "
            f"{side.get('senders', 0)} senders; "
            f"server memory per client: {_fmt(side.get('kb_per_client'))} kB")
    return head + "\n" + table(
        ["lines/s", "sent/s", "deliv/s", "p50 ms", "p99 ms", "max ms", "srv cpu",
         "srv MB", "us/deliv", "load cpu", "errors"], rows)


def _compare(result: dict[str, Any], baseline: dict[str, Any]) -> str:
    from bench.report import table

    name = baseline["name"]
    theirs = {s["rate"]: s for s in baseline.get("steps", [])}
    rows = []
    for ours in result.get("steps", []):
        other = theirs.get(ours["rate"])
        if other is None:
            continue
        rows.append([ours["rate"], ours["deliveries_per_s"], other["deliveries_per_s"],
                     ours["latency_ms"]["p99"], other["latency_ms"]["p99"],
                     _pct(ours["cpu"]["server"]), _pct(other["cpu"]["server"]),
                     ours["server_us_per_delivery"], other["server_us_per_delivery"]])
    return f"side by side (golive | {name}):\n" + table(
        ["lines/s", "deliv/s", f"{name} deliv/s", "p99 ms", f"{name} p99", "srv cpu",
         f"{name} cpu", "us/deliv", f"{name} us/deliv"], rows)


def _pct(cores: float | None) -> str:
    return "-" if cores is None else f"{cores * 100:.0f}%"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


# --- the run ---------------------------------------------------------------------------


class ChatRun:
    """Owns every process and connection of one run; close() stops them all, once."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, progress: Any,
                 baseline: str | None = None) -> None:
        from bench.session import placement

        self.args = args
        self.run_dir = run_dir
        self.progress = progress
        self.baseline = baseline  # None: golive; "node": the baseline, always started here
        self.url = "" if baseline else (args.url or "").rstrip("/")
        self.server: Any = None
        self.server_pid: int | None = None if baseline else args.server_pid
        self.workers: list[Any] = []
        self.client: Any = None  # the creator's golive client
        self.creator: Any = None
        self.restriction: Any = None
        self.live: dict[str, Any] = {}
        self.ended = ""  # why the live is no longer on, once it is not
        self.server_cpus, self.load_cpus = placement(args.pin and not self.url)
        self._closing: asyncio.Future[None] | None = None

    def pids(self) -> dict[str, int]:
        pids = {"bench": os.getpid()}
        if self.server_pid:
            pids["server"] = self.server_pid
        if self.server is not None and (redis := self.server.redis_pid()):
            pids["redis"] = redis
        for i, w in enumerate(self.workers):
            if w.proc is not None:
                pids[f"worker{i}"] = w.pid
        return pids

    async def start_server(self) -> None:
        from bench.target import LocalServer

        if self.baseline:
            from bench.baselines import node_chat_server

            self.progress.update("starting the node socket.io baseline")
            self.server = await node_chat_server(self.run_dir, self.server_cpus)
            await self.server.start()
            self.url, self.server_pid = self.server.url, self.server.pid
            return
        self.progress.update("starting golive serve")
        extra = dict(CHAT_SERVER_ENV)
        extra.update(kv.split("=", 1) for kv in self.args.server_env)
        self.server = LocalServer(self.run_dir, extra, self.server_cpus)
        await self.server.start()
        self.url, self.server_pid = self.server.url, self.server.pid
        # The embedded Redis inherits the server's CPU: move it to the load's, so the
        # server's core measures golive alone (the way the first measurements were made).
        redis = self.server.redis_pid()
        if redis and self.load_cpus:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(redis, self.load_cpus)

    async def go_live(self, token: str) -> None:
        from bench.creator import start_live
        from golive.client import GoliveClient
        from media.ice import is_loopback_url, restrict_host_addresses
        from media.synthetic import HeadlessCreator

        self.progress.update("creator going live (160x96 @ 5 fps)")
        if is_loopback_url(self.url):
            self.restriction = restrict_host_addresses(["127.0.0.1"])
        self.creator = HeadlessCreator.synthetic(160, 96, 5.0)  # height: a multiple of 4
        # no reconnect: a creator whose socket drops ends the run (check_live)
        self.client = GoliveClient(self.url, token=token, reconnect=False, name="creator")

        async def on_ended(data: dict[str, Any]) -> None:
            self.ended = f"the server ended the live: {data.get('reason')}"

        async def on_disconnect(_: Any) -> None:
            self.ended = self.ended or "the creator's socket was disconnected"

        self.client.on("live:ended", on_ended)
        self.client.on("disconnect", on_disconnect)
        await self.client.connect(timeout=10)
        self.live = await start_live(self.client, self.creator, "chat bench", CREATOR_TIMEOUT_S)

    def check_live(self) -> None:
        """RuntimeError once the live is off: every later figure would be meaningless."""
        state = self.creator.pc.connectionState if self.creator is not None else "none"
        if not self.ended and state in ("failed", "closed"):
            self.ended = f"the creator's peer connection is {state}"
        if self.ended:
            raise RuntimeError(self.ended)

    async def accounts(self, count: int) -> list[Any]:
        """`count` accounts on the server (the baseline takes any token: made here)."""
        from bench.baselines import local_accounts
        from bench.target import register_accounts

        if self.baseline:
            return local_accounts(count)
        self.progress.update(f"registering {count} accounts")
        return await register_accounts(
            self.url, count,
            on_progress=lambda done, n: self.progress.update(f"registered {done}/{n} accounts"))

    async def start_workers(self) -> None:
        from bench.processes import Child

        self.progress.update(f"starting {self.args.workers} load worker(s)")
        self.workers = [
            Child(f"worker{i}", [sys.executable, "-m", "bench.chat_clients", "--url", self.url,
                                 "--creator-id", self.live["creator_id"]],
                  self.run_dir / f"worker{i}.log", rpc=True, cpus=self.load_cpus)
            for i in range(self.args.workers)]
        for w in self.workers:
            await w.start()
        await asyncio.gather(*(w.call("status", READY_TIMEOUT_S) for w in self.workers))

    async def close(self) -> None:
        """Workers (their clients disconnect), the live, the server. Idempotent; the
        closing runs to the end even when a caller is cancelled (a Ctrl-C during it): a
        later call waits for the same one."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        from bench.creator import end_live

        await asyncio.gather(*(w.stop(grace=20.0) for w in self.workers),
                             return_exceptions=True)
        await end_live(self.client, self.creator)
        if self.restriction is not None:
            self.restriction.restore()
            self.restriction = None
        if self.server is not None:
            await self.server.stop()

    def kill_now(self) -> None:
        for w in self.workers:
            w.signal_group(signal.SIGKILL)
        if self.server is not None:
            self.server.kill_now()


async def _measure(bench: ChatRun, result: dict[str, Any]) -> None:
    """One side of the run (golive, or the baseline) into `result`."""
    from bench.processes import CpuMeter, rss_bytes

    args, progress = bench.args, bench.progress
    if not bench.url:
        await bench.start_server()
    result["url"] = bench.url
    accounts = await bench.accounts(args.clients + 1)
    if bench.baseline:  # no media there: the room is the creator's id
        bench.live = {"creator_id": accounts[0].id}
    else:
        await bench.go_live(accounts[0].token)
    result["live_id"] = bench.live.get("live_id")
    await bench.start_workers()
    result["processes"] = bench.pids()
    result["cpus"] = {"server": sorted(bench.server_cpus or []) or "any",
                      "load": sorted(bench.load_cpus or []) or "any"}

    # --- connect and join: server RSS before and after, per client
    await asyncio.sleep(1.0)
    rss0 = rss_bytes(bench.server_pid) if bench.server_pid else None
    tokens = [a.token for a in accounts[1:]]
    n = len(bench.workers)
    shares = [tokens[i::n] for i in range(n)]
    samples = [args.sample // n + (i < args.sample % n) for i in range(n)]
    progress.update(f"connecting {args.clients} clients (chat-only room:join)")
    t0 = time.monotonic()
    budget = READY_TIMEOUT_S + args.clients * 0.2
    answers = await asyncio.gather(*(
        w.call("connect", budget, tokens=share, sample=k)
        for w, share, k in zip(bench.workers, shares, samples, strict=True) if share))
    joined = sum(a["joined"] for a in answers)
    failed = sum(a["failed"] for a in answers)
    result["connect_s"] = round(time.monotonic() - t0, 2)
    result["clients_joined"], result["clients_failed"] = joined, failed
    for a in answers:
        result["errors"].extend(f"join: {e}" for e in a["errors"])
    if joined == 0:
        raise RuntimeError("no client joined the live")
    await asyncio.sleep(2.0)  # the joins' "X joined" lines are pushed; RSS settles
    rss1 = rss_bytes(bench.server_pid) if bench.server_pid else None
    if rss0 is not None and rss1 is not None:
        result["server_rss_before_mb"] = round(rss0 / 2**20, 1)
        result["server_rss_joined_mb"] = round(rss1 / 2**20, 1)
        result["kb_per_client"] = round((rss1 - rss0) / 1024 / joined, 1)
    progress.note(f"{joined} clients joined in {result['connect_s']} s ({failed} failed); "
                  f"server memory per client: {_fmt(result.get('kb_per_client'))} kB")

    senders = min(_senders_for(args), joined)
    result["senders"] = senders
    top = max(args.rates)
    if top / senders > PER_SENDER_RATE_MAX * 2:
        progress.note(f"warning: {senders} senders at {top:g} lines/s is "
                      f"{top / senders:.2f} lines/s each: past the server's per-user limit "
                      "(5 per 5 s); expect rate_limited errors")
    per_worker = [senders // n + (i < senders % n) for i in range(n)]

    for rate in args.rates:
        label = f"{rate:g} lines/s"
        progress.update(f"{label}: {args.warmup:g} s warm-up, {args.duration:g} s measured")
        start_at = time.time() + 0.3
        calls = [asyncio.ensure_future(w.call(
            "step", args.warmup + args.duration + STEP_MARGIN_S,
            rate=rate * k / senders, senders=k, start_at=start_at, warmup=args.warmup,
            duration=args.duration)) for w, k in zip(bench.workers, per_worker, strict=True)]
        try:
            await asyncio.sleep(max(0.0, start_at - time.time()) + args.warmup)
            meter = CpuMeter(bench.pids())
            meter.start()
            await asyncio.sleep(args.duration)
            cpu = meter.read()
            rss = rss_bytes(bench.server_pid) if bench.server_pid else None
            parts = await asyncio.gather(*calls)
        finally:
            for call in calls:
                call.cancel()
        step = _step_figures(rate, parts, cpu, rss)
        step["live_on"] = not bench.ended
        result["steps"].append(step)
        for i, part in enumerate(parts):
            result["errors"].extend(f"{label} worker{i}: {e}" for e in part["error_samples"])
        progress.note(f"{label}: {step['deliveries_per_s']:.0f} deliveries/s, p50 "
                      f"{_fmt(step['latency_ms']['p50'])} ms, p99 "
                      f"{_fmt(step['latency_ms']['p99'])} ms, server "
                      f"{_pct(step['cpu']['server'])} CPU, errors {step['errors']}")
        if step["load_bound"]:
            progress.note(f"warning: a load process used {_pct(step['load_cpu_max'])} of a "
                          "core: the latency may be the clients', not the server's; "
                          "try --workers 2+ (on more cores) or a smaller --sample")
        bench.check_live()


def _step_figures(rate: float, parts: list[dict[str, Any]], cpu: dict[str, Any],
                  rss: int | None) -> dict[str, Any]:
    seconds = max(p["seconds"] for p in parts) or 1e-6
    latency = [x for p in parts for x in p["latency_ms"]]
    sampled = sum(p["sampled"] for p in parts)
    joined = sum(p["joined"] for p in parts)
    lines = sum(p["sampled_lines"] for p in parts)
    sent_in_window = sum(p["sent_in_window"] for p in parts)
    # every member gets the same pushes: the sampled clients' lines, scaled to all
    deliveries = lines / sampled * joined if sampled else None
    cores = cpu["cores"]
    load = {name: c for name, c in cores.items()
            if (name.startswith("worker") or name == "bench") and c is not None}
    load_max = max(load.values(), default=None)
    return {
        "rate": rate, "seconds": round(seconds, 3),
        "senders": sum(p["senders"] for p in parts),
        "sent": sum(p["sent"] for p in parts),
        "sent_per_s": round(sent_in_window / seconds, 1),
        "errors": sum(p["errors"] for p in parts),
        "members": joined, "sampled": sampled,
        "deliveries_per_s": round(deliveries / seconds, 1) if deliveries is not None else 0,
        "expected_deliveries_per_s": round(sent_in_window / seconds * joined, 1),
        "frames_per_s": round(sum(p["frames"] for p in parts) / seconds, 1),
        "latency_ms": {"n": len(latency), "p50": _round(_quantile(latency, 0.5)),
                       "p90": _round(_quantile(latency, 0.9)),
                       "p99": _round(_quantile(latency, 0.99)),
                       "max": _round(max(latency, default=None))},
        "cpu": {"server": cores.get("server"), "redis": cores.get("redis"),
                "host_busy": cpu["host_busy"], "others": cpu["others"], "cores": cores},
        "server_rss_mb": round(rss / 2**20, 1) if rss is not None else None,
        "server_us_per_delivery": (round(cores["server"] * seconds / deliveries * 1e6, 2)
                                   if cores.get("server") and deliveries else None),
        "load_cpu": load, "load_cpu_max": load_max,
        "load_bound": bool(load_max is not None and load_max > LOAD_BUSY),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def _execute(args: argparse.Namespace) -> int:
    from bench.baselines import DESCRIPTIONS
    from bench.report import Progress, chat_plots, publish
    from bench.runner import guarded
    from bench.runner import run_dir as make_run_dir

    run_dir = make_run_dir(args.out, "chat")
    progress = Progress()
    config = {k: v for k, v in vars(args).items() if k not in ("run", "out")}
    result: dict[str, Any] = {
        "mode": "chat", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv, "config": config, "host": {"cpus": os.cpu_count()},
        "measured_where": __doc__, "steps": [], "errors": [], "interrupted": False}
    sides = [(ChatRun(args, run_dir, progress), result)]
    if args.baseline:
        result["baseline"] = {"name": args.baseline, "what": DESCRIPTIONS[args.baseline],
                              "steps": [], "errors": []}
        sides.append((ChatRun(args, run_dir / args.baseline, progress, args.baseline),
                      result["baseline"]))

    async def work() -> None:
        for bench, side in sides:
            if side is not result:
                progress.note(f"baseline {args.baseline}: {side['what']}")
            await _measure(bench, side)
            await bench.close()  # one server at a time: the next side gets the CPUs

    async def close() -> None:
        for bench, side in sides:
            if bench.server is not None or bench.workers:
                side.setdefault("processes", bench.pids())
            await bench.close()

    def kill_now() -> None:
        for bench, _ in sides:
            bench.kill_now()

    def report() -> None:
        publish(result, run_dir, progress, render=render, plots=chat_plots, errors=_all_errors)

    status = await guarded(result, progress, work=work, close=close, kill_now=kill_now,
                           finish=report, what="the clients, the live and the server")
    steps = result["steps"] + result.get("baseline", {}).get("steps", [])
    if status == 0 and any(s["errors"] for s in steps):
        status = 1
    return status


def _all_errors(result: dict[str, Any]) -> list[str]:
    baseline = result.get("baseline") or {}
    return result["errors"] + [f"{baseline['name']}: {e}" for e in baseline.get("errors", [])]


if __name__ == "__main__":
    sys.exit(main())
