"""Phase 1: gifts, coin purchases, chat and DMs while the fault schedule runs
(bench/chaos/faults.py); then every invariant of them, from Redis (the journal, `golive
ledger audit`), the servers' history and the clients' records."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.chaos import faults as F
from bench.chaos.campaign import Campaign, Row
from bench.chaos.invariants import (
    Check,
    check_journal,
    check_lines,
    check_retried,
    check_views,
)
from bench.chaos.live import LiveCreator
from bench.chaos.workloads import ChatMember, DmUser, MoneyClients, history_of_chat, history_of_dms

SETTLE_S = 60.0


def rotated(urls: list[str], i: int) -> list[str]:
    """The nodes starting with the i-th (clients spread over the nodes)."""
    k = i % len(urls)
    return urls[k:] + urls[:k]


@dataclass
class Clients:
    """Phase 1's clients: the creator on air, the money senders, chat members, DM pairs."""

    creator: LiveCreator
    live_id: str
    money: MoneyClients
    members: list[ChatMember]
    dms: list[DmUser]

    @property
    def pairs(self) -> list[tuple[DmUser, DmUser]]:
        return list(zip(self.dms[0::2], self.dms[1::2], strict=True))


async def _open_clients(c: Campaign) -> Clients:
    args, urls = c.args, c.cluster.urls
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
    members = [ChatMember(f"m{i}", a, creator_acc.id, rotated(urls, i), c.tag)
               for i, a in enumerate(member_accs)]
    dms = [DmUser(f"d{i}", a, rotated(urls, i), c.tag) for i, a in enumerate(dm_accs)]
    for member in [*members, *dms]:
        c.closers.append(member.client.close)
        await member.start()
    clients = Clients(creator, live_id, money, members, dms)
    for a, b in clients.pairs:
        a.other, b.other = b, a
        for x, y in ((a, b), (b, a)):  # friends: their messages land in the inbox
            await x.client.call("user:follow", {"user_id": y.account.id}, 10)
    return clients


async def _load_under_faults(c: Campaign, clients: Clients) -> int:
    """Run the clients for --seconds while the schedule injects faults; the faults."""
    args = c.args
    stop = asyncio.Event()
    began = time.monotonic()
    until = began + args.seconds
    load = asyncio.gather(
        clients.money.run(stop),
        *(m.run(stop, i * 0.3) for i, m in enumerate(clients.members)),
        *(d.run(stop, i * 0.25) for i, d in enumerate(clients.dms)))
    try:
        await F.run_schedule(c.cluster, c.faults, until=until, gap_s=args.fault_gap,
                             pause_s=args.pause, kinds=args.faults,
                             max_faults=args.max_faults, progress=c.progress)
        if c.faults.all_survived:  # the load runs its full time, faults or not
            await asyncio.sleep(max(0.0, until - time.monotonic()))
    finally:
        stop.set()
        await asyncio.wait_for(load, 120)  # each operation gives up after OP_DEADLINE_S
    return len(c.faults.during(began, time.monotonic()))


async def money_chat_dms(c: Campaign) -> list[Row]:
    """Gifts, purchases, chat and DMs for --seconds while the schedule injects faults;
    then every invariant of them, from Redis, the server's history and the clients."""
    clients = await _open_clients(c)
    c.note(f"live {clients.live_id} on {c.cluster.nodes[0].name}; {c.args.seconds:g} s of "
           "load and faults")
    during = await _load_under_faults(c, clients)
    c.progress.update("checking: the cluster is back, clients catch up")
    if not await c.cluster.all_healthy(SETTLE_S):
        raise RuntimeError("the cluster did not come back after the faults")
    for m in clients.members:
        await m.settle()
    for d in clients.dms:
        if d.conversation_id and d.client.connected:
            await d.catch_up()
    rows = await _money_rows(c, clients.money, during)
    rows += await _chat_rows(clients, during)
    rows.append(await _dm_row(clients, during))
    c.result["live_id"] = clients.live_id
    c.result["creator"] = {"resumed": clients.creator.resumed,
                           "resume_refusals": clients.creator.resume_refusals}
    return rows


async def _money_rows(c: Campaign, money: MoneyClients, during: int) -> list[Row]:
    """Gifts and purchases against the journal, the retried ids, the audit."""
    redis = c.cluster.client()
    try:
        journal: dict[str, list[str]] = {"gift": [], "purchase": []}
        async for entry in _journal(redis):
            journal.setdefault(entry.kind, []).append(entry.op_id)
    finally:
        await redis.aclose()
    rows = []
    for name, kind in (("gifts", "gift"), ("coin purchases", "purchase")):
        check = check_journal(name, [op for op in money.operations if op.kind == kind],
                              journal[kind])
        check.extra["answer_codes"] = dict(money.codes)
        rows.append(Row.of(check, during, _money_note(check)))
    retried = check_retried(money.operations, journal["gift"] + journal["purchase"])
    rows.append(Row.of(retried, during,
                       f"{retried.extra['attempts']} sends, "
                       f"{retried.extra['replayed_acks']} answered replayed"))
    rows.append(await _audit_row(c, during))
    return rows


async def _chat_rows(clients: Clients, during: int) -> list[Row]:
    """The live's history against the acks, and each member's view against it."""
    members = clients.members
    history = await history_of_chat(members[0].client, clients.live_id)
    ids = [i["id"] for i in history]
    texts = [str(i.get("text")) for i in history if i.get("kind") == "message"]
    lines = check_lines("chat lines", sum(m.sent for m in members),
                        [i for m in members for i in m.acked], ids, texts)
    views = check_views("chat catch-up by id", {m.name: m.view for m in members}, ids)
    return [Row.of(lines, during, f"{len(history)} lines in the live's history"),
            Row.of(views, during, f"{sum(m.client.reconnects for m in members)} reconnects, "
                                  f"{sum(m.catch_ups for m in members)} catch-ups")]


async def _dm_row(clients: Clients, during: int) -> Row:
    """Each conversation's history against the acks; what each user showed must be there.
    Ids are qualified by conversation: each is its own stream, two may share an id."""
    dm_ids: list[str] = []
    dm_texts: list[str] = []
    missed = 0
    for a, b in clients.pairs:
        conversation = a.conversation_id or b.conversation_id
        if conversation is None:
            continue
        held = await history_of_dms(a.client, conversation)
        held_ids = [m["id"] for m in held]
        dm_ids += [f"{conversation}/{i}" for i in held_ids]
        dm_texts += [str(m.get("text")) for m in held]
        for user in (a, b):
            # pushes are at-most-once (signaling/push_bus.py): a DM pushed while a node's
            # bus was down is not shown until the page reads the history again
            missed += sum(1 for i in held_ids if i not in user.seen)
    dms = clients.dms
    check = check_lines("direct messages", sum(d.sent for d in dms),
                        [i for d in dms for i in d.acked], dm_ids, dm_texts)
    held_all = set(dm_ids)
    foreign = sum(1 for d in dms for i in d.seen if f"{d.conversation_id}/{i}" not in held_all)
    if foreign:
        check.duplicated += foreign
        check.problems.append(f"{foreign} DMs shown that the history does not hold")
    return Row.of(check, during, f"{missed} pushes missed while connected (at-most-once "
                                 "bus; pages read the history again on a reconnect)")


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


__all__ = ["money_chat_dms"]
