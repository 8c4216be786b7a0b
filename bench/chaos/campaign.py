"""A chaos run: the cluster, the accounts, and the phases that each drive a workload under
faults and return rows of the table (bench/chaos/report.py).

A phase is an async callable taking the Campaign and returning rows; PHASES is the list a
run goes through, in order (another phase, e.g. a fuzzer, is one more entry). Each row
says what ran, how many operations, how many faults fell during it, what was
acknowledged, lost and duplicated, and whether its invariant held.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos import faults as F
from bench.chaos.cluster import Cluster
from bench.chaos.invariants import (
    Check,
    check_fanout,
    check_journal,
    check_lines,
    check_retried,
    check_views,
)
from bench.chaos.live import LiveCreator
from bench.chaos.workloads import ChatMember, DmUser, MoneyClients, history_of_chat, history_of_dms
from bench.target import Account, register_accounts

FANOUT_TIMEOUT_S = 90.0
SETTLE_S = 60.0


@dataclass
class Row:
    """One line of the table."""

    workload: str
    operations: int
    faults: int
    acknowledged: int
    lost: int
    duplicated: int
    ok: bool
    note: str = ""
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, check: Check, faults: int, note: str = "") -> Row:
        return cls(check.name, check.operations, faults, check.acknowledged, check.lost,
                   check.duplicated, check.ok, note, list(check.problems), dict(check.extra))

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Campaign:
    """What every phase shares: the settings, the cluster, the fault log, the output."""

    args: Any
    run_dir: Path
    cluster: Cluster
    progress: Any
    faults: F.FaultLog = field(default_factory=F.FaultLog)
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    result: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.progress.note(text)

    async def accounts(self, count: int, prefix: str) -> list[Account]:
        return await register_accounts(self.cluster.urls[0], count, prefix=f"{prefix}{self.tag}")

    async def close_all(self) -> None:
        while self.closers:
            closer = self.closers.pop()
            try:
                await asyncio.wait_for(closer(), 30)
            except Exception as exc:  # closing must go on: every process is stopped later
                self.note(f"closing: {type(exc).__name__}: {exc}")


Phase = Callable[[Campaign], Awaitable[list[Row]]]


# --- phase 1: money, chat and DMs under the fault schedule ---------------------------------


async def money_chat_dms(c: Campaign) -> list[Row]:
    """Gifts, purchases, chat and DMs for --seconds while the schedule injects faults;
    then every invariant of them, from Redis, the server's history and the clients."""
    args, cluster = c.args, c.cluster
    urls = cluster.urls
    c.note(f"accounts: 1 creator, {args.senders} senders, {args.members} chat members, "
           f"{args.dm_pairs} DM pairs")
    creator_acc, *rest = await c.accounts(1 + args.senders + args.members + 2 * args.dm_pairs,
                                          "ch")
    senders = rest[:args.senders]
    member_accs = rest[args.senders:args.senders + args.members]
    dm_accs = rest[args.senders + args.members:]

    creator = LiveCreator(creator_acc, urls[0], "chaos")
    c.closers.append(creator.close)
    live_id = await creator.start()
    money = MoneyClients(c.tag, senders, creator_acc.id, urls, interval_s=args.gift_interval)
    c.closers.append(money.close)
    await money.open()
    members = [ChatMember(f"m{i}", a, creator_acc.id, urls[i % len(urls):] + urls[:i % len(urls)],
                          c.tag) for i, a in enumerate(member_accs)]
    for m in members:
        c.closers.append(m.peer.close)
        await m.peer.start()
    dms = [DmUser(f"d{i}", a, urls[i % len(urls):] + urls[:i % len(urls)], c.tag)
           for i, a in enumerate(dm_accs)]
    for d in dms:
        c.closers.append(d.peer.close)
        await d.peer.start()
    for a, b in zip(dms[0::2], dms[1::2], strict=True):
        a.other, b.other = b, a
        for x, y in ((a, b), (b, a)):  # friends: their messages land in the inbox
            ack = await x.peer.call("user:follow", {"user_id": y.account.id}, 10)
            if not (isinstance(ack, dict) and ack.get("ok")):
                raise RuntimeError(f"user:follow: {ack}")

    c.note(f"live {live_id} on {cluster.nodes[0].name}; {args.seconds:g} s of load and faults")
    stop = asyncio.Event()
    began = time.monotonic()
    until = began + args.seconds
    load = asyncio.gather(
        money.run(stop),
        *(m.run(stop, i * 0.3) for i, m in enumerate(members)),
        *(d.run(stop, i * 0.25) for i, d in enumerate(dms)))
    try:
        await F.run_schedule(cluster, c.faults, until=until, gap_s=args.fault_gap,
                             pause_s=args.pause, kinds=args.faults,
                             max_faults=args.max_faults, progress=c.progress)
        if c.faults.all_survived:  # the load runs its full time, faults or not
            await asyncio.sleep(max(0.0, until - time.monotonic()))
    finally:
        stop.set()
        await asyncio.wait_for(load, 120)  # each operation gives up after OP_DEADLINE_S
    ended = time.monotonic()
    during = len(c.faults.during(began, ended))

    c.progress.update("checking: the cluster is back, clients catch up")
    if not await cluster.all_healthy(SETTLE_S):
        raise RuntimeError("the cluster did not come back after the faults")
    for m in members:
        await m.settle()
    for d in dms:
        if d.conversation_id and d.peer.sio is not None:
            await d.catch_up(d.peer.sio)

    rows: list[Row] = []
    redis = cluster.client()
    try:
        journal: dict[str, list[str]] = {"gift": [], "purchase": []}
        async for entry in _journal(redis):
            journal.setdefault(entry.kind, []).append(entry.op_id)
    finally:
        await redis.aclose()
    gifts = [op for op in money.operations if op.kind == "gift"]
    purchases = [op for op in money.operations if op.kind == "purchase"]
    for name, ops, kind in (("gifts", gifts, "gift"), ("coin purchases", purchases, "purchase")):
        check = check_journal(name, ops, journal[kind])
        check.extra["refusal_codes"] = {k: v for k, v in money.codes.items()}
        rows.append(Row.of(check, during, _money_note(check)))
    retried = check_retried(money.operations, journal["gift"] + journal["purchase"])
    rows.append(Row.of(retried, during,
                       f"{retried.extra['attempts']} sends, "
                       f"{retried.extra['replayed_acks']} answered replayed"))
    rows.append(await _audit_row(c, during))

    history = await history_of_chat(members[0].peer, live_id) if members else []
    ids = [i["id"] for i in history]
    texts = [str(i.get("text")) for i in history if i.get("kind") == "message"]
    lines = check_lines("chat lines", sum(m.sent for m in members),
                        [i for m in members for i in m.acked], ids, texts)
    rows.append(Row.of(lines, during, f"{len(history)} lines in the live's history"))
    views = check_views("chat catch-up by id", {m.name: m.view for m in members}, ids)
    rows.append(Row.of(views, during,
                       f"{sum(m.peer.reconnects for m in members)} reconnects, "
                       f"{sum(m.catch_ups for m in members)} catch-ups"))

    dm_ids: list[str] = []
    dm_texts: list[str] = []
    missed = 0
    for a, b in zip(dms[0::2], dms[1::2], strict=True):
        conversation = a.conversation_id or b.conversation_id
        if conversation is None:
            continue
        held = await history_of_dms(a.peer, conversation)
        held_ids = [m["id"] for m in held]
        dm_ids += [f"{conversation}/{i}" for i in held_ids]
        dm_texts += [str(m.get("text")) for m in held]
        for user in (a, b):
            # pushes are at-most-once (signaling/push_bus.py): a DM pushed while a node's
            # bus was down is read on the next reconnect; what was shown must be there
            missed += sum(1 for i in held_ids if i not in user.seen)
    dm_check = check_lines("direct messages", sum(d.sent for d in dms),
                           [i for d in dms for i in d.acked], dm_ids, dm_texts)
    held_all = set(dm_ids)
    foreign = sum(1 for d in dms for i in d.seen if f"{d.conversation_id}/{i}" not in held_all)
    if foreign:
        dm_check.duplicated += foreign
        dm_check.problems.append(f"{foreign} DMs shown that the history does not hold")
    rows.append(Row.of(dm_check, during,
                       f"{missed} pushes missed while connected (at-most-once bus; "
                       "pages read the history again on a reconnect)"))
    c.result["live_id"] = live_id
    c.result["creator"] = {"resumed": creator.resumed, "resume_refusals": creator.resume_refusals}
    return rows


def _money_note(check: Check) -> str:
    e = check.extra
    return (f"{e['refused']} refused, {e['unknown']} unanswered "
            f"({e['unknown_applied']} of them applied)")


async def _journal(redis: Any) -> Any:
    from engine.catalog import load_catalog
    from engine.ledger import Ledger
    from engine.ledger_rules import LedgerRules

    async for entry in Ledger(redis, load_catalog(), LedgerRules()).journal():
        yield entry


async def _audit_row(c: Campaign, faults: int) -> Row:
    """`golive ledger audit` against the run's Redis, as an operator runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signaling.cli", "ledger", "audit", "--redis-url",
        c.cluster.redis.url, "--json", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    report: dict[str, Any] = {}
    try:
        report = json.loads(out)
    except ValueError:
        pass
    ok = proc.returncode == 0 and bool(report.get("ok"))
    problems = [] if ok else [f"golive ledger audit exited {proc.returncode}: "
                              f"{(report.get('mismatches') or err.decode()[-300:])}"]
    c.result["audit"] = report
    return Row("golive ledger audit", int(report.get("entries", 0)), faults,
               int(report.get("entries", 0)) if ok else 0, 0, 0, ok,
               "journal replayed: every balance proven" if ok else "FAILED", problems)


# --- phase 2: the go-live fan-out, its node killed mid-job ---------------------------------


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


PHASES: list[Phase] = [money_chat_dms, fanout_killed_midway]


async def run_phases(c: Campaign, phases: list[Phase]) -> list[Row]:
    """Start the cluster, run each phase (closing its clients after it), and add the
    check of the server logs. The rows of every phase, in order."""
    c.progress.update(f"starting redis-server (appendfsync {c.args.redis_fsync}) and "
                      f"{c.args.nodes} golive nodes")
    await c.cluster.start()
    c.result["redis"] = await _redis_info(c.cluster)
    rows: list[Row] = []
    for phase in phases:
        c.progress.update(f"phase {phase.__name__}")
        try:
            rows += await phase(c)
        finally:
            await c.close_all()
    rows.append(logs_row(c.cluster, len(c.faults.faults)))
    return rows


async def _redis_info(cluster: Cluster) -> dict[str, Any]:
    redis = cluster.client()
    try:
        info = await redis.info("server")
        conf = await redis.config_get("appendfsync")
        return {"version": info.get("redis_version"), "appendfsync": conf.get("appendfsync"),
                "appendonly": (await redis.config_get("appendonly")).get("appendonly")}
    finally:
        await redis.aclose()


def logs_row(cluster: Cluster, faults: int) -> Row:
    """Tracebacks in the nodes' logs: a handled fault logs a line, never a traceback."""
    lines = tracebacks = 0
    samples: list[str] = []
    for node in cluster.nodes:
        text = node.log_path.read_text(errors="replace") if node.log_path.exists() else ""
        for line in text.splitlines():
            lines += 1
            if "Traceback" in line:
                tracebacks += 1
                if len(samples) < 3:
                    samples.append(f"{node.name}: {line[:300]}")
    return Row("server logs", lines, faults, lines - tracebacks, 0, 0, tracebacks == 0,
               f"{tracebacks} tracebacks", samples)


__all__ = ["PHASES", "Campaign", "Phase", "Row", "fanout_killed_midway", "money_chat_dms",
           "run_phases"]
