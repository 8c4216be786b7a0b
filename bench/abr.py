"""`golive bench abr`: viewers on real shaped links, and how the rendition ladder follows.

    golive bench abr --rounds 3                     # python -m bench.abr works too
    golive bench abr --creator 720 --shaped 2 --schedule "0:300kbit/2%,20:off" --seconds 40

Starts `golive serve` (free loopback port, temp data dir, the ladder of --creator or
--ladder: never bench/session.py's one-rendition pin), a synthetic creator live
(bench.creator), and per round one unlimited viewer over loopback and --shaped viewers,
each in its own network namespace golive-210, -211... (bench/netns.py: a veth pair, the
downlink limited by tbf and losing packets by iptables; this kernel has no netem). Every
viewer is an aiortc child process that decodes what it gets (bench/netns_viewer.py),
on "auto": the server's ABR rule (media/abr.py) picks its rendition from its receiver
reports. The signaling runs over loopback from this process; only media is shaped.

A round: the viewers join and decode the top rendition, then --schedule plays from t=0
for --seconds (every shaped link changes at each step), then the viewers leave; the
server and creator stay for the next round. Recorded per viewer: the server's decisions
(its "viewer X moves to R" log lines, GOLIVE_LOG_LEVEL=info), each decoded frame's time
and height, the video bytes received. The figures (bench/abr_figures.py has the
definitions): settle times after each step (server and decoded, p50/p95 over rounds),
freezes per viewer-minute and the longest (a freeze: no decoded frame for > 500 ms),
fps and kbit/s per rendition. Written to OUT/abr-<date>-<time>/result.json (after every
round too), with abr.png; a table on stdout.

Bounded: --seconds <= 600, --rounds <= 50, --shaped <= 8, each warm-up <= 30 s. Every
process is stopped and every namespace deleted on every exit path (Ctrl-C: the run
stops cleanly, a second one kills at once); a namespace a killed run left is deleted
by the next run (same names). The server's CPU of each extra rendition is measured by
`python -m bench.renditions`, not here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench import abr_figures, netns
from bench.shaping_schedule import Step, kinds, needs_netem, parse_schedule

# --creator: the synthetic creator's size and the ladder it gets by default. 360 is the
# default: a 1280x720 creator and three encoders did not keep up on 2 cores beside the
# test suite (docs/notes, issue 18); 360:600 into a 300 kbit/s link still must step down.
# The 180 rungs: the default ladder's 120 (media/renditions.py); 100 for the 360 creator
# (its test pattern at 320x180 comes out at ~160 kbit/s whatever the target under it).
CREATORS = {"360": ((640, 360), "360:600,180:100"),
            "720": ((1280, 720), "720:1800,360:600,180:120")}
DEFAULT_SCHEDULE = "0:300kbit/2%,20:off"
FIRST_INDEX = 210  # namespaces golive-210...: tests/media/test_abr_netem.py uses 201
MAX_SHAPED = 8
MAX_ROUNDS = 50
MAX_SECONDS = 600.0
WARMUP_TIMEOUT_S = 30.0
WARMUP_FRAMES = 30  # a second of the top rendition decoded before the schedule starts
JOIN_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 60.0
# what media/room.py logs when the ABR rule moves a viewer
_MOVE = re.compile(r"viewer (\S+) moves to (\S+) \(")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.options import add_out

    parser.add_argument("--creator", choices=sorted(CREATORS), default="360",
                        help="the synthetic creator: 360 (640x360, ladder 360:600,180:100) "
                             "or 720 (1280x720, ladder 720:1800,360:600,180:120); 360")
    parser.add_argument("--ladder", help="the server's GOLIVE_RENDITIONS instead of the "
                                         "creator's default, e.g. 360:600,180:200")
    parser.add_argument("--shaped", type=int, default=1,
                        help=f"shaped viewers, each in its own namespace (1; <= {MAX_SHAPED})")
    parser.add_argument("--schedule", type=_schedule, default=parse_schedule(DEFAULT_SCHEDULE),
                        help="the shaped links over a round: AT:SPEC,... with SPEC `off` or "
                             "RATE/LOSS%%/DELAYms, e.g. 0:300kbit/2%%,20:off (the default: "
                             "shaped from the start, lifted at 20 s); delay needs netem")
    parser.add_argument("--seconds", type=float, default=40.0,
                        help="length of a round from the first step (40)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds, fresh viewers each (3)")
    parser.add_argument("--fps", type=float, default=30.0, help="creator frame rate (30)")
    parser.add_argument("--codec", choices=("vp8", "h264"), default="vp8",
                        help="the room's codec (vp8)")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="more environment for the server, e.g. GOLIVE_VIEWER_REMB=true")
    add_out(parser)


def _schedule(text: str) -> list[Step]:
    try:
        return parse_schedule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_mode(modes: Any) -> argparse.ArgumentParser:
    """Add the `abr` mode to an argparse subparsers object."""
    parser = modes.add_parser(
        "abr", help="viewers on shaped links (network namespaces): rendition switches, "
                    "settle times, freezes",
        description="One unlimited and N shaped viewers of one live, a shaping schedule; "
                    "settle times, freezes, fps and bitrate per rendition.")
    _add_arguments(parser)
    parser.set_defaults(run=run, bench_mode="abr")
    return parser


def run(args: argparse.Namespace) -> int:
    """Check the flags and the host, then run; the exit status."""
    from bench.options import flags_ok

    if not flags_ok("golive bench abr", (
            (not 1 <= args.shaped <= MAX_SHAPED, f"--shaped must be 1..{MAX_SHAPED}"),
            (not 1 <= args.rounds <= MAX_ROUNDS, f"--rounds must be 1..{MAX_ROUNDS}"),
            (not 0 < args.seconds <= MAX_SECONDS, f"--seconds must be in (0, {MAX_SECONDS:g}]"),
            (args.schedule[-1].at_s >= args.seconds,
             f"every step of --schedule must come before --seconds ({args.seconds:g})"),
            (not 0 < args.fps <= 60, "--fps must be in (0, 60]"),
            (any("=" not in kv for kv in args.server_env), "--server-env takes KEY=VALUE"))):
        return 2
    if args.ladder:
        from media.renditions import parse_ladder

        try:
            parse_ladder(args.ladder)
        except Exception as exc:
            print(f"golive bench abr: --ladder: {exc}", file=sys.stderr)
            return 2
    reason = netns.unavailable_reason()
    if reason is None and needs_netem(args.schedule):
        reason = netns.netem_reason()
        reason = None if reason is None else f"--schedule has a delay, and {reason}"
    if reason is not None:
        print(f"golive bench abr: cannot shape links here: {reason}", file=sys.stderr)
        return 2
    return asyncio.run(_execute(args))


def main(argv: list[str] | None = None) -> int:
    from bench.options import module_main

    return module_main("bench.abr", __doc__, _add_arguments, run, argv)


# --- one viewer ----------------------------------------------------------------------


class AbrViewer:
    """One viewer: its socket here (signaling over loopback) and its decoding child
    process (in `namespace`, or unshaped over loopback when None). `close()` stops both
    and is safe to call twice."""

    def __init__(self, role: str, token: str, namespace: netns.Namespace | None,
                 log_path: Path) -> None:
        from bench.netns_viewer import NamespacedViewer

        self.role = role
        self.token = token
        self.log_path = log_path
        self.namespace = namespace
        cwd = str(Path(__file__).resolve().parent.parent)
        self.child = NamespacedViewer(
            namespace.exec_args() if namespace else [], cwd,
            addresses=None if namespace else ["127.0.0.1"], log_path=log_path)
        self.sio: Any = None
        self.sid = ""
        self.live_id = ""
        self.initial: str | None = None

    async def join(self, url: str, creator_id: str) -> None:
        import socketio

        # handle_sigint=False: python-socketio would take SIGINT from the run's handler
        # (bench/runner.py) and the clean stop would never start
        self.sio = socketio.AsyncClient(serializer="msgpack", reconnection=False,
                                        handle_sigint=False)
        await self.sio.connect(url, auth={"token": self.token}, transports=["websocket"],
                               wait_timeout=10)
        self.sid = str(self.sio.get_sid("/"))
        ack = await self.sio.call("room:join", {"user_id": creator_id}, timeout=JOIN_TIMEOUT_S)
        if not ack.get("ok") or not ack.get("offer"):
            raise RuntimeError(f"{self.role}: room:join refused: {ack.get('error') or ack}")
        self.live_id = ack["live"]["live_id"]
        self.initial = ack.get("rendition")
        try:
            answer = await self.child.answer(ack["offer"])
        except (OSError, RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{self.role}: the viewer process failed at its start "
                               f"({type(exc).__name__}: {exc}); see {self.log_path}") from None
        done = await self.sio.call("rtc:answer", {"live_id": self.live_id, "sdp": answer},
                                   timeout=JOIN_TIMEOUT_S)
        if not done.get("ok"):
            raise RuntimeError(f"{self.role}: rtc:answer refused: {done.get('error')}")

    def frames_at(self, height: int) -> int:
        return sum(1 for _, h in self.child.timeline if h == height)

    async def close(self) -> None:
        try:
            await self.child.close()
        finally:
            if self.sio is not None:
                from golive.client import close_socket
                await close_socket(self.sio, self.live_id)

    def kill_now(self) -> None:
        pid = self.child.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --- the run -------------------------------------------------------------------------


class AbrRun:
    """Owns the server, the creator, the namespaces and the current round's viewers."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, progress: Any) -> None:
        size, ladder = CREATORS[args.creator]
        self.args = args
        self.size = size
        self.ladder = args.ladder or ladder
        self.run_dir = run_dir
        self.progress = progress
        self.namespaces: list[netns.Namespace] = []
        self.server: Any = None
        self.creator: Any = None
        self.creator_id = ""
        self.tokens: list[str] = []
        self.viewers: list[AbrViewer] = []
        self.started: dict[str, int] = {}  # every process started, by name (result.json)
        self._closing: asyncio.Future[None] | None = None

    @property
    def top_height(self) -> int:
        from media.renditions import parse_ladder, scaled_size

        rung = parse_ladder(self.ladder)[0]
        return scaled_size(self.size[0], self.size[1], rung.height)[1]

    async def open(self) -> None:
        from bench.processes import Child, ChildError
        from bench.target import LocalServer, register_accounts

        indexes = range(FIRST_INDEX, FIRST_INDEX + self.args.shaped)
        netns.clean_stale(indexes)  # what a killed run left under these names
        for index in indexes:
            self.namespaces.append(netns.Namespace(index).open())
        addresses = ",".join(["127.0.0.1", *(ns.root_addr for ns in self.namespaces)])
        env = dict(kv.split("=", 1) for kv in self.args.server_env)
        env.update(GOLIVE_RENDITIONS=self.ladder, GOLIVE_VIDEO_CODEC=self.args.codec,
                   GOLIVE_ICE_ADDRESSES=addresses,
                   GOLIVE_LOG_LEVEL="info")  # the ABR rule's moves are info lines
        self.progress.update("starting golive serve")
        self.server = LocalServer(self.run_dir, env)
        await self.server.start()
        self.started["server"] = self.server.pid
        if (redis := self.server.redis_pid()) is not None:
            self.started["redis"] = redis
        accounts = await register_accounts(self.server.url, 2 + self.args.shaped)
        self.tokens = [a.token for a in accounts[1:]]
        size = f"{self.size[0]}x{self.size[1]}"
        self.progress.update(f"creator going live ({size}@{self.args.fps:g})")
        self.creator = Child(
            "creator", [sys.executable, "-m", "bench.creator", "--url", self.server.url,
                        "--size", size, "--fps", str(self.args.fps), "--title", "bench abr"],
            self.run_dir / "creator.log", rpc=True,
            env={**os.environ, "GOLIVE_BENCH_TOKEN": accounts[0].token})
        await self.creator.start()
        ready = await self.creator.next_event(READY_TIMEOUT_S)
        if ready.get("event") != "ready":
            raise ChildError(f"creator: {ready.get('error') or ready}")
        self.creator_id = ready["creator_id"]
        self.started["creator"] = self.creator.pid

    def pids(self) -> dict[str, int]:
        pids = {"bench": os.getpid()}
        if self.server is not None:
            pids["server"] = self.server.pid
        if self.creator is not None and self.creator.proc is not None:
            pids["creator"] = self.creator.pid
        for viewer in self.viewers:
            if viewer.child.pid is not None:
                pids[viewer.role] = viewer.child.pid
        return pids

    async def round(self, number: int) -> dict[str, Any]:
        """One round: join, warm up, play the schedule, leave; its figures."""
        from bench.processes import CpuMeter

        roles = ["unlimited", *(f"shaped{i + 1}" for i in range(self.args.shaped))]
        self.viewers = [
            AbrViewer(role, token, None if i == 0 else self.namespaces[i - 1],
                      self.run_dir / f"round{number}-{role}.log")
            for i, (role, token) in enumerate(zip(roles, self.tokens, strict=True))]
        try:
            for viewer in self.viewers:
                self.progress.update(f"round {number}: {viewer.role} joining")
                try:
                    await viewer.join(self.server.url, self.creator_id)
                finally:
                    if viewer.child.pid is not None:
                        self.started[f"round{number}-{viewer.role}"] = viewer.child.pid
            await self._warm_up(number)
            meter = CpuMeter(self.pids())
            meter.start()
            t0, wall0 = time.monotonic(), time.time()
            load_before = os.getloadavg()[0]
            applied = await self._play(number, t0)
            cpu = meter.read()
            end = time.monotonic() - t0
        finally:
            for ns in self.namespaces:
                with contextlib.suppress(RuntimeError):  # reported by the work's own error
                    ns.unshape()
            viewers, self.viewers = self.viewers, []
            await asyncio.gather(*(v.close() for v in viewers), return_exceptions=True)
        log = (self.run_dir / "server.log").read_text(errors="replace")
        moves = moves_from_log(log, {v.sid for v in viewers})
        figures = {role_figure.role: viewer_figures(
            role_figure, self.args.schedule, t0, wall0, end, moves.get(role_figure.sid, []),
            self.top_height) for role_figure in viewers}
        return {"round": number, "seconds": round(end, 3), "steps_applied": applied,
                "load_average_before": round(load_before, 2),
                "cpu_cores": cpu["cores"], "others_cores": cpu["others"],
                "viewers": figures}

    async def _warm_up(self, number: int) -> None:
        top = self.top_height
        deadline = time.monotonic() + WARMUP_TIMEOUT_S
        while not all(v.frames_at(top) >= WARMUP_FRAMES for v in self.viewers):
            if time.monotonic() > deadline:
                state = ", ".join(f"{v.role} {v.frames_at(top)} frames at {top}p"
                                  for v in self.viewers)
                raise TimeoutError(f"round {number}: the viewers did not decode "
                                   f"{WARMUP_FRAMES} frames of {top}p within "
                                   f"{WARMUP_TIMEOUT_S:g} s ({state})")
            self.progress.update(f"round {number}: warming up ({top}p)")
            await asyncio.sleep(0.2)

    async def _play(self, number: int, t0: float) -> list[dict[str, Any]]:
        """Apply each step at its time (every shaped link), show progress, until the
        round's end; the steps as applied (their actual time)."""
        applied = []
        pending = list(self.args.schedule)
        current = "off"
        while (now := time.monotonic() - t0) < self.args.seconds:
            while pending and pending[0].at_s <= now:
                step = pending.pop(0)
                for ns in self.namespaces:
                    ns.shape(step.shaping)
                current = step.text
                applied.append({"at_s": round(time.monotonic() - t0, 3), "spec": step.text})
            states = " | ".join(
                f"{v.role} {(v.child.size or ('-', '-'))[1]}p {v.child.frames}f"
                for v in self.viewers)
            self.progress.update(f"round {number}/{self.args.rounds} t={now:4.1f}s "
                                 f"[{current}] {states}")
            wake = min(1.0, self.args.seconds - now,
                       pending[0].at_s - now if pending else 1.0)
            await asyncio.sleep(max(0.0, wake))
        return applied

    async def close(self) -> None:
        """Viewers, creator (ends the live), server, namespaces; safe to call twice, and
        it runs to its end even when the caller is cancelled."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        try:
            viewers, self.viewers = self.viewers, []
            await asyncio.gather(*(v.close() for v in viewers), return_exceptions=True)
            if self.creator is not None:
                await self.creator.stop()
            if self.server is not None:
                await self.server.stop()
        finally:
            for ns in self.namespaces:
                ns.close()

    def kill_now(self) -> None:
        """A second Ctrl-C: SIGKILL everything, delete the namespaces."""
        for viewer in self.viewers:
            viewer.kill_now()
        if self.creator is not None:
            self.creator.signal_group(signal.SIGKILL)
        if self.server is not None:
            self.server.kill_now()
        for ns in self.namespaces:
            ns.close()


# --- figures ---------------------------------------------------------------------------


def moves_from_log(text: str, sids: set[str]) -> dict[str, list[tuple[float, int]]]:
    """Per viewer sid, the server's moves (wall time, rendition height) from its JSON log
    lines ("room R: viewer SID moves to 180 (loss ..., rtt ...)", media/room.py)."""
    out: dict[str, list[tuple[float, int]]] = {}
    for line in text.splitlines():
        if "moves to" not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        match = _MOVE.search(str(record.get("msg", "")))
        if match and match[1] in sids:
            out.setdefault(match[1], []).append((float(record["ts"]), int(match[2])))
    return out


def viewer_figures(viewer: AbrViewer, steps: list[Step], t0: float, wall0: float,
                   end: float, moves: list[tuple[float, int]], top: int) -> dict[str, Any]:
    """One viewer's figures for one round (times from the round's start)."""
    frames = [(t - t0, h) for t, h in viewer.child.timeline]
    times = [t for t, _ in frames]
    decisions = [(round(ts - wall0, 3), h) for ts, h in moves]
    decoded = abr_figures.transitions(frames)
    initial = int(viewer.initial) if viewer.initial and viewer.initial.isdigit() else top
    settles = []
    step_kinds = kinds(steps)
    for i, step in enumerate(steps):
        until = steps[i + 1].at_s if i + 1 < len(steps) else end
        settles.append({
            "at_s": step.at_s, "spec": step.text, "kind": step_kinds[i],
            "server": abr_figures.settle(decisions, step.at_s, until, initial),
            "decoded": abr_figures.settle([c for c in decoded if c[0] >= 0], step.at_s,
                                          until, abr_figures.value_at(decoded, 0, top))})
    samples = [(t - t0, f, b) for t, f, b in viewer.child.samples]
    windows = abr_figures.rendition_windows(samples, frames)
    # after each drop the viewer moved at: fps and freezes once settled (abr_figures)
    settled_spans = []
    for i, entry in enumerate(settles):
        first = entry["decoded"]["first_s"]
        if entry["kind"] == "drop":
            settled_spans.append(abr_figures.settled(
                times, None if first is None else entry["at_s"] + first,
                steps[i + 1].at_s if i + 1 < len(steps) else end))
    last = viewer.child.last or {}
    in_round = [t for t in times if 0 <= t <= end]
    return {"shaped": viewer.namespace is not None, "sid": viewer.sid,
            "namespace": viewer.namespace.name if viewer.namespace else None,
            "frames": len(in_round),
            "decisions": [[t, h] for t, h in decisions],
            "decoded": [[0.0, abr_figures.value_at(decoded, 0, top)],
                        *([round(t, 3), h] for t, h in decoded if 0 < t <= end)],
            "settle": settles,
            "freezes": abr_figures.freeze_figures(times, 0.0, end),
            "windows": [w for w in windows if w["t"] >= 0],
            "per_rendition": abr_figures.per_rendition([w for w in windows if w["t"] >= 0]),
            "settled": [span for span in settled_spans if span is not None],
            # the viewer's keyframe-aware buffer (bench/dependency_buffer.py), whole round
            "buffer": {key: last[key] for key in ("skips", "dropped", "plis") if key in last}}


def summarize(rounds: list[dict[str, Any]], steps: list[Step]) -> dict[str, Any]:
    """Per viewer over the rounds: settle times per step (p50/p95), freezes per
    viewer-minute, the longest freeze, fps and kbit/s per rendition."""
    from bench.figures import distribution

    out: dict[str, Any] = {}
    roles = [r for r in rounds[0]["viewers"]] if rounds else []
    step_kinds = kinds(steps)
    for role in roles:
        mine = [r["viewers"][role] for r in rounds if role in r["viewers"]]
        settle = []
        for i, step in enumerate(steps):
            entry: dict[str, Any] = {"at_s": step.at_s, "spec": step.text,
                                     "kind": step_kinds[i]}
            for side in ("server", "decoded"):
                values = [v["settle"][i][side]["settle_s"] for v in mine]
                entry[side] = distribution(values, 3)
                entry[side]["no_move"] = sum(1 for v in values if v is None)
                entry[side]["first_s"] = distribution(
                    [v["settle"][i][side]["first_s"] for v in mine], 3)
                entry[side]["to"] = [v["settle"][i][side]["to"] for v in mine]
            settle.append(entry)
        pooled: dict[str, list[dict[str, Any]]] = {}
        for v in mine:  # every round's 1 s windows together
            for window in v["windows"]:
                if window["height"] is not None:
                    pooled.setdefault(str(window["height"]), []).append(window)
        spans = [span for v in mine for span in v.get("settled", [])]
        out[role] = {
            "settle": settle,
            "settled_fps": distribution([span["fps"] for span in spans], 2),
            "settled_longest_freeze_ms": distribution(
                [span["longest_ms"] for span in spans], 0),
            "settled_freezes": distribution([span["count"] for span in spans], 0),
            "freezes_per_viewer_minute": distribution(
                [v["freezes"]["per_viewer_minute"] for v in mine], 3),
            "longest_freeze_ms": distribution([v["freezes"]["longest_ms"] for v in mine], 0),
            "per_rendition": {h: _window_figures(ws) for h, ws in
                              sorted(pooled.items(), key=lambda kv: -int(kv[0]))}}
    return out


def _window_figures(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """fps and kbit/s of one rendition's 1 s windows: p5 (the bad tail of fps), p50,
    p95 and the count."""
    import numpy as np

    out: dict[str, Any] = {"windows": len(windows)}
    for key in ("fps", "kbps"):
        values = np.array([w[key] for w in windows], dtype=np.float64)
        p5, p50, p95 = np.percentile(values, [5, 50, 95])
        out[key] = {"p5": round(float(p5), 1), "p50": round(float(p50), 1),
                    "p95": round(float(p95), 1)}
    return out


def _p(d: dict[str, Any], digits: int = 1) -> str:
    """'p50 (p95)' of a distribution, or '-'."""
    if not d.get("n"):
        return "-"
    return f"{d['p50']:.{digits}f} ({d['p95']:.{digits}f})"


def render(result: dict[str, Any]) -> str:
    """The tables: per viewer and step, settle s p50 (p95) on the server's decisions and
    on the decoded frames, where it settled, freezes; then fps and kbit/s per rendition."""
    from bench.report import table

    summary = result.get("summary") or {}
    rounds = len(result.get("rounds", []))
    lines = [f"golive bench abr: {rounds} round(s) of {result['config']['seconds']:g} s, "
             f"creator {result['creator']}, ladder {result['ladder']}, "
             f"schedule {result['config']['schedule']}"]
    rows = []
    for role, figures in summary.items():
        for step in figures["settle"]:
            server, decoded = step["server"], step["decoded"]
            rows.append([role, f"{step['at_s']:g}s {step['spec']} ({step['kind']})",
                         _p(server["first_s"], 2), _p(server, 2), server["no_move"],
                         _p(decoded, 2), decoded["no_move"],
                         "/".join(str(t) for t in server["to"]),
                         "/".join(str(t) for t in decoded["to"])])
    lines.append(table(["viewer", "step", "first move s", "settle s p50 (p95), server",
                        "no move", "decoded", "no move", "server's rung after",
                        "decoded after"], rows))
    rows = []
    for role, figures in summary.items():
        freezes, longest = figures["freezes_per_viewer_minute"], figures["longest_freeze_ms"]
        fps = figures.get("settled_fps") or {}
        s_longest = figures.get("settled_longest_freeze_ms") or {}
        rows.append([role, _p(freezes, 2), f"{longest.get('max', 0):.0f}" if longest.get("n")
                     else "-",
                     f"{fps['p50']:.1f} ({fps['min']:.1f}-{fps['max']:.1f})" if fps.get("n")
                     else "-",
                     f"{s_longest['p50']:.0f} ({s_longest['max']:.0f})" if s_longest.get("n")
                     else "-"])
    lines.append("")
    lines.append(table(["viewer", "freezes/viewer-min p50 (p95)", "longest freeze ms",
                        "settled fps p50 (min-max)", "settled longest freeze ms p50 (max)"],
                       rows))
    rows = []
    for role, figures in summary.items():
        for height, f in figures["per_rendition"].items():
            fps, kbps = f["fps"], f["kbps"]
            rows.append([role, f"{height}p", f"{fps['p50']:.1f} ({fps['p5']:.1f})",
                         f"{kbps['p50']:.0f} ({kbps['p5']:.0f}-{kbps['p95']:.0f})",
                         f["windows"]])
    lines.append("")
    lines.append(table(["viewer", "rendition", "fps p50 (p5)", "kbit/s p50 (p5-p95)",
                        "1 s windows, all rounds"], rows))
    return "\n".join(lines)


def plot(result: dict[str, Any], run_dir: Path) -> list[str]:
    """abr.png: per viewer, the decoded height (solid) and the server's decision
    (dashed) over each round's time, freezes in red, shaped spans shaded."""
    from bench.report import pyplot, save_png

    plt = pyplot()
    rounds = result.get("rounds") or []
    if plt is None or not rounds:
        return []
    roles = list(rounds[0]["viewers"])
    fig, axes = plt.subplots(len(roles), 1, figsize=(9, 2.6 * len(roles)), sharex=True,
                             squeeze=False)
    seconds = result["config"]["seconds"]
    steps = result["schedule"]
    for ax, role in zip(axes[:, 0], roles, strict=True):
        for k, (start, stop, spec) in enumerate(_shaped_spans(steps, seconds)):
            ax.axvspan(start, stop, color="0.85", label="shaped" if k == 0 else None)
            ax.text(start + 0.3, 0.02, spec, transform=ax.get_xaxis_transform(), fontsize=8)
        for n, rnd in enumerate(rounds):
            v = rnd["viewers"].get(role)
            if v is None:
                continue
            colour = f"C{n % 10}"
            xs, ys = _decoded_line(v["decoded"], v["freezes"]["freezes"], rnd["seconds"])
            ax.plot(xs, ys, color=colour, lw=1.6, label=f"round {rnd['round']} decoded")
            start_h = v["settle"][0]["server"]["from"] if v["settle"] else None
            xs, ys = _steps_line([[0.0, start_h], *v["decisions"]] if start_h else
                                 v["decisions"], rnd["seconds"])
            ax.plot(xs, ys, color=colour, lw=1, ls="--",
                    label=f"round {rnd['round']} server's choice")
            for at, ms in v["freezes"]["freezes"]:  # one band per round, under the top
                ax.axvspan(at, at + ms / 1000, ymin=0.95 - 0.05 * (n + 1), ymax=0.95 - 0.05 * n,
                           color=colour, alpha=0.8, hatch="///", fill=False)
        ax.set_ylabel(f"{role}\nheight (px)")
        ax.set_ylim(0, max(360, _top(rounds)) * 1.3)
        ax.legend(fontsize=7, loc="lower right", ncol=2, framealpha=0.9)
    axes[-1, 0].set_xlabel("seconds into the round (hatched: freezes, no frame decoded for "
                           "> 500 ms, a row per round)")
    fig.suptitle(f"golive bench abr: creator {result['creator']}, ladder {result['ladder']}",
                 fontsize=10)
    return [save_png(plt, fig, run_dir / "abr.png")]


def _top(rounds: list[dict[str, Any]]) -> int:
    return max((h for r in rounds for v in r["viewers"].values() for _, h in v["decoded"]),
               default=360)


def _shaped_spans(steps: list[dict[str, Any]], seconds: float) -> list[tuple[float, float, str]]:
    spans = []
    for i, step in enumerate(steps):
        stop = steps[i + 1]["at_s"] if i + 1 < len(steps) else seconds
        if step["spec"] != "off":
            spans.append((step["at_s"], stop, step["spec"]))
    return spans


def _decoded_line(changes: list[list[Any]], frozen: list[list[float]],
                  end: float) -> tuple[list[float], list[float]]:
    """The decoded height every 50 ms, NaN while frozen (the line is cut)."""
    xs, ys = [], []
    for i in range(int(end / 0.05) + 1):
        t = i * 0.05
        inside = any(at < t < at + ms / 1000 for at, ms in frozen)
        value = abr_figures.value_at([(c[0], c[1]) for c in changes], t, None)
        xs.append(t)
        ys.append(float("nan") if inside or value is None else float(value))
    return xs, ys


def _steps_line(points: list[list[Any]], end: float) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for i, (t, h) in enumerate(points):
        stop = points[i + 1][0] if i + 1 < len(points) else end
        xs += [max(t, 0.0), stop]
        ys += [h, h]
    return xs, ys


async def _execute(args: argparse.Namespace) -> int:
    from importlib.metadata import version

    from bench.cli import _expected
    from bench.report import Progress, publish
    from bench.runner import guarded
    from bench.runner import run_dir as make_run_dir

    run_dir = make_run_dir(args.out, "abr")
    progress = Progress()
    bench = AbrRun(args, run_dir, progress)
    steps = args.schedule
    result: dict[str, Any] = {
        "mode": "abr", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv,
        "config": {"creator": args.creator, "shaped": args.shaped, "rounds": args.rounds,
                   "seconds": args.seconds, "fps": args.fps, "codec": args.codec,
                   "schedule": ",".join(f"{s.at_s:g}:{s.text}" for s in steps),
                   "server_env": args.server_env},
        "creator": f"{bench.size[0]}x{bench.size[1]}@{args.fps:g}", "ladder": bench.ladder,
        "schedule": [{"at_s": s.at_s, "spec": s.text, "kind": k}
                     for s, k in zip(steps, kinds(steps), strict=True)],
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "kernel": platform.release(), "netem": netns.netem_reason() or "available",
                 **{name: version(name) for name in ("aiortc", "av")}},
        "definitions": abr_figures.__doc__, "rounds": [], "summary": {},
        "namespaces": [f"{netns.PREFIX}{FIRST_INDEX + i}" for i in range(args.shaped)],
        "errors": [], "interrupted": False}

    async def work() -> None:
        await bench.open()
        for number in range(1, args.rounds + 1):
            result["rounds"].append(await bench.round(number))
            result["summary"] = summarize(result["rounds"], steps)
            from bench.report import write_json

            write_json(run_dir / "result.json", result)  # a later failure keeps these
            progress.note(f"round {number}: " + "; ".join(
                f"{role} {_round_line(v)}" for role, v in result["rounds"][-1]["viewers"]
                .items()))

    def finish() -> None:
        result["summary"] = summarize(result["rounds"], steps)
        result["pids"] = bench.started
        result["left_running"] = {"namespaces": [n for n in netns.listed()
                                                 if n in result["namespaces"]]}
        publish(result, run_dir, progress, render=render, plots=plot,
                no_plots="plots: none (matplotlib missing, or no round finished)")

    return await guarded(result, progress, work=work, close=bench.close,
                         kill_now=bench.kill_now, finish=finish, expected=_expected,
                         what="the viewers, the creator, the server and the namespaces")


def _round_line(v: dict[str, Any]) -> str:
    parts = []
    for s in v["settle"]:
        took = s["server"]["settle_s"]
        parts.append(f"{s['kind']} " + ("no move" if took is None else
                                        f"{s['server']['from']}->{s['server']['to']} "
                                        f"in {took:.1f}s"))
    return (", ".join(parts) + f", {v['freezes']['count']} freezes "
            f"(longest {v['freezes']['longest_ms']} ms)")


if __name__ == "__main__":
    sys.exit(main())
