"""Phase 2: the go-live notification fan-out, its node SIGKILLed mid-job: every follower
must be told once.

A creator with --followers alert followers (written straight into Redis, as
bench/notify.py does, plus two real accounts online that follow and turned alerts on)
goes live on the last node. Once the job's first batch is written the node holding it
(`notify_jobs_active:NODE`) is SIGKILLed and started again; the job must finish (the
restarted node resumes its active jobs first; another node would after the takeover)
with every follower's inbox holding the live's notification exactly once and no online
follower pushed it twice (a push may die with its node: the inbox line may not).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis

from bench.chaos import faults as F
from bench.chaos.campaign import Campaign, Row
from bench.chaos.cluster import ChaosNode
from bench.chaos.invariants import check_fanout
from bench.chaos.live import LiveCreator
from engine import keys
from golive.client import GoliveClient

FANOUT_TIMEOUT_S = 90.0
SEED_CHUNK = 5000
FIRST_BATCH_TIMEOUT_S = 30.0


async def fanout_killed_midway(c: Campaign) -> list[Row]:
    """Go live with many alert followers, SIGKILL the job's node mid-job, check each
    follower was told once."""
    creator_acc, *fan_accs = await c.accounts(3, "fo")
    fans_seen: dict[str, list[str]] = {a.id: [] for a in fan_accs}
    for acc in fan_accs:
        async def record(data: dict[str, Any], uid: str = acc.id) -> None:
            fans_seen[uid].append(str((data.get("notification") or {}).get("id")))
        fan = GoliveClient(c.cluster.urls[:1], token=acc.token, reconnect_delay=0.0,
                           name=acc.username)
        fan.on("notify:new", record)
        c.closers.append(fan.close)
        await fan.connect()
        for event, payload in (("user:follow", {"user_id": creator_acc.id}),
                               ("alerts:set", {"user_id": creator_acc.id, "on": True})):
            await fan.call(event, payload, 10)
    fake = [f"f{c.tag}{i:07d}" for i in range(c.args.followers)]
    everyone = fake + [a.id for a in fan_accs]
    redis = c.cluster.client()
    try:
        for start in range(0, len(fake), SEED_CHUNK):
            chunk = fake[start:start + SEED_CHUNK]
            async with redis.pipeline(transaction=False) as pipe:
                pipe.zadd(keys.followers(creator_acc.id), dict.fromkeys(chunk, 1.0))
                pipe.sadd(keys.live_alerts(creator_acc.id), *chunk)
                await pipe.execute()
        creator = LiveCreator(creator_acc, c.cluster.nodes[-1].url, "big")
        c.closers.append(creator.close)
        began = time.monotonic()
        live_id = await creator.start()
        note = await _kill_the_runner(c, redis, live_id, len(everyone))
        await _wait_finished(c, redis, live_id)
        await asyncio.sleep(0.5)  # the last pushes on their way
        ended = time.monotonic()
        notified = await _told(redis, everyone, live_id)
    finally:
        await redis.aclose()
    pushes = {uid: seen.count(live_id) for uid, seen in fans_seen.items()}
    check = check_fanout(len(everyone), notified, pushes)
    return [Row.of(check, len(c.faults.during(began, ended)),
                   f"{note}; {check.extra['pushed']} of {len(pushes)} online fans pushed")]


async def _runner(c: Campaign, redis: Redis, live_id: str) -> ChaosNode | None:
    """The node holding the job once its first batch is written; None when the job
    ended first."""
    job = keys.notify_job(live_id)
    deadline = time.monotonic() + FIRST_BATCH_TIMEOUT_S
    while time.monotonic() < deadline:
        if int(await redis.hget(job, "sent") or 0) > 0:
            for node in c.cluster.nodes:
                if live_id in await redis.lrange(keys.notify_jobs_active(node.name), 0, -1):
                    return node
        elif not await redis.exists(job):
            return None
        await asyncio.sleep(0.005)  # a batch of 250 takes a few ms: poll finer than that
    return None


async def _kill_the_runner(c: Campaign, redis: Redis, live_id: str, total: int) -> str:
    """SIGKILL the job's node and start it again (a fault in the log); what happened."""
    node = await _runner(c, redis, live_id)
    if node is None:
        return "the job ended before it could be killed (raise --followers)"
    fault = F.Fault(F.SERVER_KILL, node.name, time.monotonic(), note="mid fan-out")
    await node.kill()
    state = await redis.hgetall(keys.notify_job(live_id))
    cut = bool(state) and state.get("phase") != "done"
    try:
        await node.start()
    except RuntimeError as exc:
        fault.note = str(exc)
    fault.ended = time.monotonic()
    fault.survived = fault.note == "mid fan-out" and await c.cluster.all_healthy()
    fault.recovery_s = time.monotonic() - fault.ended
    c.faults.faults.append(fault)
    c.note(f"fault {len(c.faults.faults)}: server_kill {node.name} mid fan-out: "
           f"{'survived' if fault.survived else 'NOT SURVIVED'}")
    if not cut:
        return "the job had just finished when its node was killed"
    return f"{node.name} killed after {state.get('sent', '?')} of {total} told"


async def _wait_finished(c: Campaign, redis: Redis, live_id: str) -> None:
    """Until the job is gone and no node holds or waits for one."""
    deadline = time.monotonic() + FANOUT_TIMEOUT_S
    while True:
        busy = await redis.exists(keys.notify_job(live_id)) or \
            await redis.llen(keys.notify_jobs())
        for node in c.cluster.nodes:
            busy = busy or await redis.llen(keys.notify_jobs_active(node.name))
        if not busy:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fan-out job did not finish in {FANOUT_TIMEOUT_S:g} s")
        await asyncio.sleep(0.2)


async def _told(redis: Redis, users: list[str], live_id: str) -> dict[str, int]:
    """Per user, how many notifications their inbox holds if it holds the live's (they
    had none before: 1 is told once), else 0."""
    told: dict[str, int] = {}
    for start in range(0, len(users), SEED_CHUNK):
        chunk = users[start:start + SEED_CHUNK]
        async with redis.pipeline(transaction=False) as pipe:
            for uid in chunk:
                pipe.zscore(keys.notifications(uid), live_id)
                pipe.zcard(keys.notifications(uid))
            found = await pipe.execute()
        for uid, score, count in zip(chunk, found[0::2], found[1::2], strict=True):
            told[uid] = 0 if score is None else int(count)
    return told


__all__ = ["fanout_killed_midway"]
