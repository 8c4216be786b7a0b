"""Phase 2: the go-live notification fan-out, its node SIGKILLed mid-job: every follower
must be told once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.chaos import faults as F
from bench.chaos.campaign import Campaign, Row
from bench.chaos.invariants import check_fanout
from bench.chaos.live import LiveCreator
from bench.target import Account

FANOUT_TIMEOUT_S = 90.0


async def fanout_killed_midway(c: Campaign) -> list[Row]:
    """A creator with --followers alert followers goes live; the node running the fan-out
    job is SIGKILLed once the first batch is written and restarted; the job finishes
    (on the restarted node, or another after the takeover) and every follower is told
    once."""
    from engine import keys

    args, cluster = c.args, c.cluster
    creator_acc, *fan_accs = await c.accounts(3, "fo")
    home = cluster.nodes[-1]
    fans_seen: dict[str, list[str]] = {a.id: [] for a in fan_accs}
    fans = []
    for acc in fan_accs:
        async def record(data: dict[str, Any], uid: str = acc.id) -> None:
            fans_seen[uid].append(str((data.get("notification") or {}).get("id")))
        peer = _peer_for(acc, cluster.urls[:1], record)
        c.closers.append(peer.close)
        await peer.start()
        for event, payload in (("user:follow", {"user_id": creator_acc.id}),
                               ("alerts:set", {"user_id": creator_acc.id, "on": True})):
            ack = await peer.call(event, payload, 10)
            if not (isinstance(ack, dict) and ack.get("ok")):
                raise RuntimeError(f"{event}: {ack}")
        fans.append(peer)
    fake = [f"f{c.tag}{i:07d}" for i in range(args.followers)]
    redis = cluster.client()
    try:
        for start in range(0, len(fake), 5000):
            chunk = fake[start:start + 5000]
            async with redis.pipeline(transaction=False) as pipe:
                pipe.zadd(keys.followers(creator_acc.id), dict.fromkeys(chunk, 1.0))
                pipe.sadd(keys.live_alerts(creator_acc.id), *chunk)
                await pipe.execute()
        creator = LiveCreator(creator_acc, home.url, "big")
        c.closers.append(creator.close)
        began = time.monotonic()
        live_id = await creator.start()
        job = keys.notify_job(live_id)
        deadline = time.monotonic() + 30
        runner = None
        while time.monotonic() < deadline and runner is None:
            if int(await redis.hget(job, "sent") or 0) > 0:
                for node in cluster.nodes:
                    if live_id in await redis.lrange(keys.notify_jobs_active(node.name), 0, -1):
                        runner = node
            elif not await redis.exists(job):
                break
            await asyncio.sleep(0.005)
        note = ""
        if runner is None:
            note = "the job ended before it could be killed (raise --followers)"
        else:
            fault = F.Fault(F.SERVER_KILL, runner.name, time.monotonic())
            await runner.kill()
            state = await redis.hgetall(job)
            cut = bool(state) and state.get("phase") != "done"
            note = (f"{runner.name} killed after {state.get('sent', '?')} of "
                    f"{args.followers + len(fans)} told" if cut else
                    "the job had just finished when its node was killed")
            try:
                await runner.start()
            except RuntimeError as exc:
                fault.note = str(exc)
            fault.ended = time.monotonic()
            fault.survived = not fault.note and await cluster.all_healthy()
            fault.recovery_s = time.monotonic() - fault.ended
            fault.note = fault.note or "mid fan-out"
            c.faults.faults.append(fault)
            c.note(f"fault {len(c.faults.faults)}: server_kill {runner.name} mid fan-out: "
                   f"{'survived' if fault.survived else 'NOT SURVIVED'}")

        async def finished() -> bool:
            if await redis.exists(job) or await redis.llen(keys.notify_jobs()):
                return False
            for node in cluster.nodes:
                if await redis.llen(keys.notify_jobs_active(node.name)):
                    return False
            return True
        deadline = time.monotonic() + FANOUT_TIMEOUT_S
        while not await finished():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the fan-out job did not finish in {FANOUT_TIMEOUT_S:g} s")
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # the last pushes on their way
        ended = time.monotonic()
        notified: dict[str, int] = {}
        everyone = fake + [a.id for a in fan_accs]
        for start in range(0, len(everyone), 5000):
            chunk = everyone[start:start + 5000]
            async with redis.pipeline(transaction=False) as pipe:
                for uid in chunk:
                    pipe.zscore(keys.notifications(uid), live_id)
                    pipe.zcard(keys.notifications(uid))
                found = await pipe.execute()
            for uid, score, count in zip(chunk, found[0::2], found[1::2], strict=True):
                notified[uid] = 0 if score is None else int(count)
    finally:
        await redis.aclose()
    pushes = {uid: seen.count(live_id) for uid, seen in fans_seen.items()}
    check = check_fanout(len(everyone), notified, pushes)
    return [Row.of(check, len(c.faults.during(began, ended)),
                   f"{note}; {check.extra['pushed']} of {len(pushes)} online fans pushed")]


def _peer_for(acc: Account, urls: list[str], on_notify: Any) -> Any:
    from bench.chaos.clients import Peer

    return Peer(acc.username, acc.token, urls, pushes={"notify:new": on_notify})


__all__ = ["fanout_killed_midway"]
