"""`notify` mode: the go-live fan-out to a creator's followers, and the server's event loop
meanwhile.

    python -m bench.notify --followers 100000
    golive bench notify --followers 100000 --batch 500

Runs the real server (create_app, in this process on a free loopback port, over an
embedded redis-server with AOF on like `golive serve`, or --redis-url) and seeds a
creator with --followers followers who all turned live alerts on (pipelined writes,
not measured); --online of them are real accounts with a Socket.IO connection. Then
the creator goes live through the server's own hook (LiveRooms.started_listeners:
the nudge waiting list is handed over and the fan-out job queued) and the server's
fan-out worker writes one "NAME is LIVE: TITLE" notification into every inbox.

Measured: the time from the hook to the job's end (every inbox written), writes per
second, the longest event-loop stall meanwhile (a probe task asks for a 1 ms sleep in
a loop and records how late it wakes; the same probe runs for --baseline seconds
before, for comparison), p99 of those wake-ups, when each online client got its
push, Redis memory per notification, and a check that every follower holds the
notification exactly once.

Bounded: --timeout seconds for the fan-out (120); the run stops the server, its
clients and the embedded Redis on every exit. Figures go to stdout and to
OUT/notify-<date>-<time>/result.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from signaling.tasks import cancel_and_wait

SEED_CHUNK = 10_000
PROBE_S = 0.001


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.options import add_out

    parser.add_argument("--followers", type=int, default=100_000,
                        help="followers with live alerts on (100000)")
    parser.add_argument("--batch", type=int, default=0,
                        help="inboxes written per step (default: the server's, "
                             "engine.live_alerts.BATCH)")
    parser.add_argument("--online", type=int, default=10,
                        help="of them, real accounts connected over Socket.IO (10)")
    parser.add_argument("--baseline", type=float, default=1.0,
                        help="seconds of event-loop probing before going live (1)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds the fan-out may take before the run gives up (120)")
    parser.add_argument("--redis-url", help="a scratch Redis to use; the run leaves its keys "
                                            "there (default: an embedded redis-server in a "
                                            "temp folder, removed at the end)")
    add_out(parser)


def add_mode(modes: Any) -> argparse.ArgumentParser:
    """Add the `notify` mode to an argparse subparsers object."""
    parser = modes.add_parser(
        "notify", help="go-live fan-out: N followers notified, event-loop stall meanwhile",
        description="Write N go-live notifications through the server's fan-out worker; "
                    "time it and measure the longest event-loop stall.")
    _add_arguments(parser)
    parser.set_defaults(run=run, bench_mode="notify")
    return parser


def run(args: argparse.Namespace) -> int:
    from bench.options import flags_ok

    if not flags_ok("bench notify", (
            (not 1 <= args.followers <= 2_000_000, "--followers must be 1..2000000"),
            (args.batch < 0, "--batch must be >= 0"),
            (not 0 <= args.online <= min(200, args.followers),
             "--online must be 0..min(200, followers)"),
            (args.timeout <= 0, "--timeout must be > 0"))):
        return 2
    try:
        return asyncio.run(_execute(args))
    except KeyboardInterrupt:
        print("bench notify: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    from bench.options import module_main

    return module_main("bench.notify", __doc__, _add_arguments, run, argv)


def _note(text: str) -> None:
    print(f"[notify] {text}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StallProbe:
    """Asks the loop for a PROBE_S sleep again and again; records how late each wake is,
    and how much CPU this process used meanwhile: a late wake with little CPU used is
    the process waiting for a core (other work on the machine), not the loop busy."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.busy: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(PROBE_S)
            lag = max(0.0, loop.time() - start - PROBE_S)
            self.lags.append(lag)
            self.busy.append(min(lag, max(0.0, time.thread_time() - cpu - PROBE_S)))

    def start(self) -> None:
        self.lags, self.busy = [], []
        self._task = asyncio.create_task(self._run(), name="stall-probe")

    async def stop(self) -> dict[str, float]:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        lags = sorted(self.lags) or [0.0]
        busy = sorted(self.busy) or [0.0]
        return {"max_ms": round(lags[-1] * 1000, 2),
                "max_busy_ms": round(busy[-1] * 1000, 2),
                "p99_busy_ms": round(busy[min(len(busy) - 1, int(len(busy) * 0.99))] * 1000, 2),
                "p99_ms": round(lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000, 2),
                "median_ms": round(statistics.median(lags) * 1000, 3),
                "samples": len(self.lags)}


async def _execute(args: argparse.Namespace) -> int:
    # Imported here: `golive --help` should not pay for the server's imports.
    import socketio
    from aiohttp import ClientSession, web
    from redis.asyncio import Redis

    from bench.runner import run_dir
    from engine import keys
    from golive.client import bare_socket
    from signaling.app import create_app
    from signaling.appkeys import LIVES, SERVICES
    from signaling.config import Settings
    from signaling.embedded_redis import EmbeddedRedis
    from signaling.notifications import ALERT_FANOUT

    out = run_dir(args.out, "notify")
    temp = Path(tempfile.mkdtemp(prefix="golive-bench-notify-"))
    tag = secrets.token_hex(4)  # this run's names and seeded user ids start with it
    result: dict[str, Any] = {"mode": "notify", "config": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
        if k not in ("run",)}, "errors": []}
    embedded = None if args.redis_url else EmbeddedRedis(temp / "redis")
    runner: web.AppRunner | None = None
    clients: list[socketio.AsyncClient] = []
    redis: Redis | None = None
    status = 1
    try:
        if embedded is not None:
            await embedded.start()
        url = args.redis_url or embedded.url  # type: ignore[union-attr]
        redis = Redis.from_url(url, decode_responses=True)
        port = _free_port()
        settings = Settings(redis_url=url, secret="bench-" + "x" * 40, port=port,
                            data_dir=temp / "data", auth_rate=1000.0, auth_burst=5000,
                            event_rate=1000.0, event_burst=2000)
        app = create_app(settings)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        services = app[SERVICES]
        if args.batch:
            services.live_alerts.batch = args.batch
        batch = services.live_alerts.batch
        base = f"http://127.0.0.1:{port}"

        # --- seed: the creator, N followers with alerts on, --online real accounts ---
        _note(f"seeding {args.followers:,} followers with live alerts on")
        async with ClientSession() as http:
            async def account(name: str) -> dict[str, Any]:
                resp = await http.post(f"{base}/api/register", json={
                    "username": name, "display_name": name.title(),
                    "password": "bench-password-1", "birthdate": "1990-01-01"})
                body = await resp.json()
                if resp.status != 201:
                    raise RuntimeError(f"register {name}: {body}")
                return dict(body)

            creator = await account(f"creator{tag}")
            creator_id = creator["user"]["id"]
            online = [await account(f"fan{tag}{n}") for n in range(args.online)]
        seeded = time.perf_counter()
        ids = [o["user"]["id"] for o in online]
        ids += [f"{tag}{n:08x}" for n in range(args.followers - len(ids))]
        for start in range(0, len(ids), SEED_CHUNK):
            chunk = ids[start:start + SEED_CHUNK]
            async with redis.pipeline(transaction=False) as pipe:
                pipe.zadd(keys.followers(creator_id), dict.fromkeys(chunk, time.time()))
                pipe.sadd(keys.live_alerts(creator_id), *chunk)
                await pipe.execute()
        _note(f"seeded in {time.perf_counter() - seeded:.1f} s")

        pushes: dict[str, float] = {}
        for o in online:
            sio = bare_socket()
            uid = o["user"]["id"]

            def on_new(data: dict[str, Any], uid: str = uid) -> None:
                if data["notification"]["kind"] == "live":
                    pushes.setdefault(uid, time.perf_counter())

            sio.on("notify:new", on_new)
            await sio.connect(base, auth={"token": o["token"]}, transports=["websocket"])
            clients.append(sio)
        memory_before = int((await redis.info("memory"))["used_memory"])

        # --- measure ---------------------------------------------------------------
        probe = StallProbe()
        probe.start()
        await asyncio.sleep(args.baseline)
        result["baseline_stall"] = await probe.stop()
        _note(f"baseline: longest stall {result['baseline_stall']['max_ms']} ms")

        probe.start()
        live = await services.lives.start(creator_id, "Bench live")
        started = time.perf_counter()
        for listener in app[LIVES].started_listeners:
            await listener(live)
        hooked = time.perf_counter() - started
        fanout = app[ALERT_FANOUT]
        deadline = started + args.timeout
        while await redis.exists(keys.notify_job(live.live_id)) or await redis.llen(
                keys.notify_jobs()):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the fan-out did not finish within {args.timeout} s")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        stall = await probe.stop()
        memory_after = int((await redis.info("memory"))["used_memory"])

        # --- check: every follower holds it once -------------------------------------
        held = 0
        for start in range(0, len(ids), SEED_CHUNK):
            async with redis.pipeline(transaction=False) as pipe:
                for uid in ids[start:start + SEED_CHUNK]:
                    pipe.zscore(keys.notifications(uid), live.live_id)
                held += sum(1 for s in await pipe.execute() if s is not None)
        deliveries = sorted(t - started for t in pushes.values())
        result.update({
            "followers": args.followers, "batch": batch, "steps": fanout.steps,
            "written": fanout.told, "held": held,
            "seconds": round(elapsed, 3), "hook_ms": round(hooked * 1000, 2),
            "writes_per_s": round(fanout.told / elapsed) if elapsed else None,
            "stall": stall,
            "online": len(clients), "pushed": len(pushes),
            "push_ms": {"first": round(deliveries[0] * 1000, 1),
                        "last": round(deliveries[-1] * 1000, 1)} if deliveries else None,
            "redis_bytes_per_notification": round((memory_after - memory_before)
                                                  / max(1, fanout.told)),
        })
        await services.lives.end(live)
        ok = held == args.followers and fanout.told == args.followers
        if not ok:
            result["errors"].append(f"{held} of {args.followers} inboxes hold the notification; "
                                    f"{fanout.told} written")
        status = 0 if ok else 1
    except Exception as exc:
        result["errors"].append(f"{type(exc).__name__}: {exc}")
        _note(f"failed: {type(exc).__name__}: {exc}")
    finally:
        for sio in clients:
            with contextlib.suppress(Exception):
                await sio.disconnect()
        if runner is not None:
            await runner.cleanup()
        if redis is not None:
            await redis.aclose()
        if embedded is not None:
            await embedded.stop()
        shutil.rmtree(temp, ignore_errors=True)
        (out / "result.json").write_text(json.dumps(result, indent=2))
    _report(result, out)
    return status


def _report(result: dict[str, Any], out: Path) -> None:
    if "seconds" not in result:
        print(f"bench notify failed: {result['errors']} ({out}/result.json)")
        return
    stall, base = result["stall"], result.get("baseline_stall", {})
    rows = [
        ("notifications written", f"{result['written']:,} of {result['followers']:,} "
                                  f"(held once each: {result['held']:,})"),
        ("time to write them", f"{result['seconds']:.2f} s ({result['writes_per_s']:,}/s, "
                               f"{result['steps']} steps of {result['batch']})"),
        ("longest event-loop stall", f"{stall['max_ms']} ms (p99 {stall['p99_ms']} ms; "
                                     f"idle baseline {base.get('max_ms')} ms)"),
        ("  of it on the CPU", f"{stall['max_busy_ms']} ms (p99 {stall['p99_busy_ms']} ms; "
                               f"idle baseline {base.get('max_busy_ms')} ms)"),
        ("go-live hook", f"{result['hook_ms']} ms"),
        ("pushes to online tabs", f"{result['pushed']} of {result['online']}"
                                  + (f", {result['push_ms']['first']}-{result['push_ms']['last']}"
                                     " ms after going live" if result["push_ms"] else "")),
        ("Redis memory", f"~{result['redis_bytes_per_notification']} B per notification"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if result["errors"]:
        print(f"errors: {result['errors']}")
    print(f"figures: {out}/result.json")


if __name__ == "__main__":
    sys.exit(main())
