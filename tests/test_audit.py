"""`golive ledger audit` catches what it must: balances changed behind the ledger's back,
doctored or unbalanced entries, replays, payouts out of step; and passes a clean ledger."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from engine import keys
from engine.audit import audit, run_audit
from engine.ledger import JournalEntry, Posting
from signaling.app import redis_client
from tests.ledger_world import World, make_world

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def world(redis: Redis, redis_url: str) -> AsyncIterator[World]:
    client = redis_client(redis_url)
    w = await make_world(client)
    ledger = w.ledger
    # a little of everything: purchases, gifts (with remainders), a paid and a pending cash-out
    await ledger.credit_purchase(payment_id="pay-audit-1", provider="test",
                                 user_id=w.ids["ann"], coins=52_500)
    await ledger.credit_purchase(payment_id="pay-audit-2", provider="acme",
                                 user_id=w.ids["ben"], coins=70)
    await ledger.send_gift(transfer_id="gift-audit-1", **w.gift_args(gift_id="lion"))
    await ledger.send_gift(transfer_id="gift-audit-2", **w.gift_args(gift_id="doughnut",
                                                                     count=3))
    await ledger.send_gift(transfer_id="gift-audit-3", **w.gift_args("ben", count=7))
    first = await ledger.request_cashout(request_id="cash-audit-1", user_id=w.ids["cat"],
                                         diamonds=5_000)
    await ledger.settle_cashout(payout_id=first.payout_id, paid=True)
    await ledger.request_cashout(request_id="cash-audit-2", user_id=w.ids["cat"],
                                 diamonds=2_000)
    yield w
    await client.aclose()


def golive_audit(redis_url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url}
    return subprocess.run([sys.executable, "-m", "signaling.cli", "ledger", "audit", *extra],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


async def test_a_clean_ledger_passes_and_the_totals_add_up(world: World, redis_url: str) -> None:
    report = await run_audit(world.redis, world.ledger)
    assert report.ok, [str(m) for m in report.mismatches]
    assert report.entries == 8
    t = report.totals
    assert t["coins_bought"] == 52_570
    assert t["coins_spent"] == 29_999 + 90 + 7
    assert t["coins_held"] == 52_570 - t["coins_spent"]
    # the lion's and the doughnuts' odd coins carry over: with the 7 roses, a 4th diamond
    assert t["diamonds_credited"] == 14_999 + 45 + 4
    assert t["platform_coins"] == 0
    assert t["coins_carried"] == 0
    assert (t["diamonds_held"], t["diamonds_pending"], t["diamonds_paid"]) == (
        14_999 + 45 + 4 - 7_000, 2_000, 5_000)
    done = golive_audit(redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK:" in done.stdout and "52,570" in done.stdout


async def test_a_balance_changed_behind_its_back_is_named(world: World, redis_url: str) -> None:
    await world.redis.hincrby(keys.wallet(world.ids["ann"]), "coins", 1_000)
    await world.redis.hincrby(keys.wallet(world.ids["cat"]), "diamonds", -15_000)
    done = golive_audit(redis_url, "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    found = {(m["check"], m["subject"]) for m in report["mismatches"]}
    assert ("balance", f"{world.ids['ann']}/coins") in found
    assert ("balance", f"{world.ids['cat']}/diamonds") in found
    assert ("negative", f"{world.ids['cat']}/diamonds") in found
    assert ("totals", "coins bought == coins held + coins spent") in found
    assert ("totals", "diamonds held + pending + paid == diamonds credited") in found
    text = golive_audit(redis_url)
    assert text.returncode == 1 and "FAILED" in text.stdout
    assert f"balance: {world.ids['ann']}/coins: stored" in text.stdout


async def test_a_doctored_or_unbalanced_entry_is_named(world: World) -> None:
    # an entry that mints coins from nothing and is not balanced
    await world.redis.xadd(keys.ledger_journal(), {"e": json.dumps({
        "kind": "purchase", "op": "forged-0001", "user": world.ids["ben"], "coins": "5",
        "provider": "test", "postings": [[f"{world.ids['ben']}/coins", 500]]})})
    await world.redis.hincrby(keys.wallet(world.ids["ben"]), "coins", 500)
    report = await run_audit(world.redis, world.ledger)
    text = [str(m) for m in report.mismatches]
    assert any("coin postings add up to +500" in t for t in text), text
    assert any("moves 500" in t and "its record says 5" in t for t in text), text
    assert not report.ok


async def test_a_payout_record_out_of_step_is_named(world: World) -> None:
    # the two cash-outs may share a millisecond, so pick by status, not by order
    [pending] = [p for p in await world.ledger.payouts(world.ids["cat"])
                 if p.status == "pending"]
    await world.redis.hset(keys.payout(pending.payout_id), "status", "paid")
    report = await run_audit(world.redis, world.ledger)
    assert {m.check for m in report.mismatches} == {"payout"}
    assert any(pending.payout_id in str(m) for m in report.mismatches)


def test_the_pure_audit_catches_replays_bad_rates_and_dips() -> None:
    def gift(entry_id: str, op: str, coins: int, diamonds: int, platform: int,
             rate: str = "2:0") -> JournalEntry:
        return JournalEntry(entry_id, "gift", op, (
            Posting("a/coins", -coins), Posting("c/diamonds", diamonds),
            Posting("@platform/coins", platform), Posting("@exchange/coins", coins - platform),
            Posting("@exchange/diamonds", -diamonds)),
            {"sender": "a", "creator": "c", "coins": str(coins), "diamonds": str(diamonds),
             "platform": str(platform), "rate": rate})

    buy = JournalEntry("1-0", "purchase", "p1", (Posting("a/coins", 10),
                                                 Posting("@world/coins", -10)),
                       {"user": "a", "provider": "test", "coins": "10"})
    entries = [buy, gift("2-0", "g1", 5, 2, 1), gift("3-0", "g1", 5, 2, 1),
               gift("4-0", "g2", 4, 1, 2)]       # 4 coins at 2:1 make 2 diamonds, not 1
    stored = {"a/coins": -4, "c/diamonds": 5, "@platform/coins": 4, "@exchange/coins": 10,
              "@exchange/diamonds": -5, "@world/coins": -10}
    report = audit(entries, stored, {})
    text = [str(m) for m in report.mismatches]
    assert "replay: 3-0: gift g1 applied more than once" in text
    assert any(t.startswith("gift: 4-0: 4 coins at rate 2:0 make (2, 0)") for t in text)
    assert any(t.startswith("negative: a/coins: went to -4 at entry 4-0") for t in text)
    assert any(t.startswith("negative: a/coins: is -4") for t in text)
    # and a clean journal under a different rate passes
    ok = audit([buy, gift("2-0", "g1", 10, 3, 1, rate="3:0")],
               {"a/coins": 0, "c/diamonds": 3, "@platform/coins": 1, "@exchange/coins": 9,
                "@exchange/diamonds": -3, "@world/coins": -10}, {})
    assert ok.ok, [str(m) for m in ok.mismatches]


async def test_the_audit_holds_while_gifts_keep_flowing(world: World) -> None:
    """The snapshot is consistent: an audit taken mid-stream sees no phantom mismatch."""
    async def gifts() -> None:
        for i in range(150):
            await world.ledger.send_gift(transfer_id=f"flow-{i:06d}",
                                         **world.gift_args(gift_id="rose"))

    flow = asyncio.create_task(gifts())
    reports = []
    while not flow.done():
        reports.append(await run_audit(world.redis, world.ledger))
    await flow
    assert len(reports) >= 2
    assert all(r.ok for r in reports), [str(m) for r in reports for m in r.mismatches]


async def test_the_cli_audits_a_stopped_servers_data_dir(tmp_path: Path) -> None:
    """No REDIS_URL: the audit starts the data dir's own redis-server, audits, stops it."""
    from signaling.embedded_redis import EmbeddedRedis
    from tests.support.servers import assert_gone, processes_mentioning

    data = tmp_path / "data"
    embedded = EmbeddedRedis(data)
    await embedded.start()
    client = Redis.from_url(embedded.url, decode_responses=True)
    try:
        w = await make_world(client, people={"ann": "1990-01-01", "cat": "1991-01-01"})
        await w.ledger.credit_purchase(payment_id="pay-dir-0001", provider="test",
                                       user_id=w.ids["ann"], coins=70)
        await w.ledger.send_gift(transfer_id="gift-dir-0001", **w.gift_args(count=5))
    finally:
        await client.aclose()
        await embedded.stop()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "signaling.cli", "ledger", "audit",
                         "--data-dir", str(data), "--json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["entries"] == 2 and report["totals"]["coins_spent"] == 5
    assert_gone(processes_mentioning(str(data)))
    empty = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "signaling.cli", "ledger", "audit",
                         "--data-dir", str(tmp_path / "nothing")],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert empty.returncode == 2 and "no Redis data" in empty.stderr


def test_the_pure_audit_proves_the_carry_and_names_a_coin_taken_from_it() -> None:
    def rose(entry_id: str, op: str, diamonds: int, moved: int, after: int,
             platform: int = 0) -> JournalEntry:
        return JournalEntry(entry_id, "gift", op, (
            Posting("a/coins", -1), Posting("c/diamonds", diamonds), Posting("c/carry", moved),
            Posting("@platform/coins", platform), Posting("@exchange/coins", diamonds * 2),
            Posting("@exchange/diamonds", -diamonds)),
            {"sender": "a", "creator": "c", "coins": "1", "diamonds": str(diamonds),
             "carry": str(after), "platform": str(platform), "rate": "2:0"})

    buy = JournalEntry("1-0", "purchase", "p1", (Posting("a/coins", 2),
                                                 Posting("@world/coins", -2)),
                       {"user": "a", "provider": "test", "coins": "2"})
    stored = {"a/coins": 0, "c/diamonds": 1, "c/carry": 0, "@platform/coins": 0,
              "@exchange/coins": 2, "@exchange/diamonds": -1, "@world/coins": -2}
    # two roses: the first carries its coin, the second makes the diamond
    report = audit([buy, rose("2-0", "g1", 0, 1, 1), rose("3-0", "g2", 1, -1, 0)], stored, {})
    assert report.ok, [str(m) for m in report.mismatches]
    assert report.totals["diamonds_credited"] == 1 and report.totals["coins_carried"] == 0
    # the old rounding (the first rose's coin to the platform) is named on a carried gift
    lost = rose("2-0", "g1", 0, 0, 0, platform=1)
    report = audit([buy, lost, rose("3-0", "g2", 1, -1, 0)],
                   {**stored, "@platform/coins": 1, "c/carry": -1}, {})
    text = [str(m) for m in report.mismatches]
    assert any(t.startswith("gift: 2-0: 1 coins with 0 carried at rate 2:0 make (0, 0, 1)")
               for t in text), text
    assert any(t.startswith("gift: 3-0: 1 coins with 0 carried") for t in text), text
