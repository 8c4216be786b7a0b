"""The ledger over a real Redis: gifts, purchases, cash-outs, replays, concurrency and
every refusal (with proof that a refusal wrote nothing)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from engine import keys, stream_ids
from engine.accounts import age_on
from engine.audit import run_audit
from engine.errors import DomainError, ErrorCode
from engine.ledger import Balances, GiftRequest
from engine.ledger_rules import LedgerRules, adult_cutoff, carry_gift, split_gift
from signaling.app import redis_client
from tests.ledger_world import TODAY, World, make_world
from tests.support.state import SKIP, snapshot

_ids = itertools.count()


def tid(prefix: str = "t") -> str:
    return f"{prefix}-{next(_ids):08d}"


@pytest.fixture
async def world(redis: Redis, redis_url: str) -> AsyncIterator[World]:
    """On a blocking pool like the server's (64 connections; callers wait at the cap)."""
    client = redis_client(redis_url)
    yield await make_world(client)
    await client.aclose()


async def fund(world: World, who: str, coins: int) -> None:
    await world.ledger.credit_purchase(payment_id=tid("pay"), provider="test",
                                       user_id=world.ids[who], coins=coins)


async def assert_audit_ok(world: World) -> None:
    report = await run_audit(world.redis, world.ledger)
    assert report.ok, [str(m) for m in report.mismatches]


# --- rules -----------------------------------------------------------------------

@pytest.mark.parametrize("per,pct", [(2, 0), (2, 10), (3, 0), (1, 50), (7, 33), (2, 100)])
def test_split_gift_is_exact_and_never_favours_the_platform_beyond_the_rate(
        per: int, pct: int) -> None:
    for coins in [*range(0, 300), 29_999, 44_999, 44_999 * 99]:
        diamonds, platform = split_gift(coins, per, pct)
        assert diamonds * per + platform == coins
        assert diamonds >= 0 and platform >= 0
        # the creator gets every whole diamond the post-commission coins make
        assert diamonds == (coins - coins * pct // 100) // per


def test_default_rate_two_coins_one_diamond() -> None:
    assert split_gift(1, 2, 0) == (0, 1)        # a Rose: the lone coin is the platform's
    assert split_gift(5, 2, 0) == (2, 1)
    assert split_gift(29_999, 2, 0) == (14_999, 1)


def test_adult_cutoff_agrees_with_age_on_every_day_of_three_years() -> None:
    births = [dt.date(2006, 1, 1) + dt.timedelta(days=i) for i in range(0, 366 * 8, 7)]
    births += [dt.date(2008, 2, 29), dt.date(2008, 2, 28), dt.date(2008, 3, 1),
               dt.date(2010, 2, 28), dt.date(2010, 3, 1), dt.date(2012, 2, 29)]
    day = dt.date(2027, 1, 1)       # through 29 February 2028 and the years around it
    while day < dt.date(2030, 1, 1):
        cutoff = adult_cutoff(day, 18)
        for born in births:
            assert (born.isoformat() <= cutoff) == (age_on(born, day) >= 18), (born, day)
        day += dt.timedelta(days=1)


# --- gifts -------------------------------------------------------------------------

async def test_a_gift_debits_coins_credits_diamonds_and_journals(world: World) -> None:
    await fund(world, "ann", 100)
    receipt = await world.ledger.send_gift(transfer_id=tid(),
                                           **world.gift_args(gift_id="finger_heart", count=3))
    assert (receipt.coins, receipt.diamonds) == (15, 7)
    assert (receipt.sender_coins, receipt.creator_diamonds) == (85, 7)
    assert not receipt.replayed
    ann = await world.ledger.balances(world.ids["ann"])
    cat = await world.ledger.balances(world.ids["cat"])
    assert ann == Balances(world.ids["ann"], coins=85)
    # the 15th coin is the creator's carry toward their next diamond, not the platform's
    assert cat == Balances(world.ids["cat"], diamonds=7, carry_coins=1)
    platform = await world.redis.hgetall(keys.wallet("@platform"))
    assert platform == {"coins": "0"}
    [sent, bought] = await world.ledger.history(world.ids["ann"])
    assert sent.kind == "gift" and sent.as_dict(world.ids["ann"])["changes"] == {"coins": -15}
    assert bought.kind == "purchase"
    [got] = await world.ledger.history(world.ids["cat"])
    assert got.as_dict(world.ids["cat"])["changes"] == {"diamonds": 7, "carry": 1}
    assert got.meta["gift"] == "finger_heart" and got.meta["count"] == "3"
    await assert_audit_ok(world)


async def test_the_same_transfer_id_applies_once_and_returns_the_first_receipt(
        world: World, redis_url: str) -> None:
    await fund(world, "ann", 50)
    transfer = tid()
    first = await world.ledger.send_gift(transfer_id=transfer, **world.gift_args(count=4))
    before = await snapshot(redis_url)
    again = await world.ledger.send_gift(transfer_id=transfer, **world.gift_args(count=4))
    assert again.replayed and again.entry_id == first.entry_id
    assert (again.coins, again.sender_coins) == (first.coins, first.sender_coins)
    # even after the live ended the replay answers the same
    await world.lives.end(world.live)
    assert (await world.ledger.send_gift(transfer_id=transfer,
                                         **world.gift_args(count=4))).replayed
    world.live = await world.lives.start(world.ids["cat"], "back")
    lives = (keys.CORE + "live", keys.CORE + "node_lives")
    assert await snapshot(redis_url, skip=(*SKIP, *lives)) == {
        k: v for k, v in before.items() if not k.decode().startswith(lives)}
    for changed in ({"count": 5}, {"gift_id": "doughnut"}, {"creator": "ben"}):
        args = world.gift_args(**{k: v for k, v in changed.items() if k != "creator"})
        if "creator" in changed:
            args["creator_id"] = world.ids["ben"]
        with pytest.raises(DomainError) as err:
            await world.ledger.send_gift(transfer_id=transfer, **args)
        assert err.value.code is ErrorCode.CONFLICT
    # another sender may use the same id string: ids are per sender
    await fund(world, "ben", 10)
    other = await world.ledger.send_gift(transfer_id=transfer, **world.gift_args("ben"))
    assert not other.replayed
    await assert_audit_ok(world)


async def test_too_few_coins_is_insufficient_funds_and_changes_nothing(
        world: World, redis_url: str) -> None:
    await fund(world, "ann", 29_998)
    before = await snapshot(redis_url)
    with pytest.raises(DomainError) as err:
        await world.ledger.send_gift(transfer_id=tid(), **world.gift_args(gift_id="lion"))
    assert err.value.code is ErrorCode.INSUFFICIENT_FUNDS
    assert err.value.details == {"need": 29_999, "have": 29_998}
    assert await snapshot(redis_url) == before
    # a failed id is not spent: after topping up the same id goes through
    transfer = tid()
    with pytest.raises(DomainError):
        await world.ledger.send_gift(transfer_id=transfer, **world.gift_args(gift_id="lion"))
    await fund(world, "ann", 1)
    receipt = await world.ledger.send_gift(transfer_id=transfer,
                                           **world.gift_args(gift_id="lion"))
    assert receipt.sender_coins == 0 and receipt.diamonds == 14_999
    await assert_audit_ok(world)


async def _refusal(world: World, redis_url: str, args: dict[str, Any]) -> DomainError:
    before = await snapshot(redis_url)
    with pytest.raises(DomainError) as err:
        await world.ledger.send_gift(**args)
    assert await snapshot(redis_url) == before, "a refused gift wrote something"
    return err.value


@pytest.mark.parametrize("change,code", [
    ({"gift_id": "unicorn"}, ErrorCode.NOT_FOUND),
    ({"gift_id": 7}, ErrorCode.NOT_FOUND),
    ({"count": 0}, ErrorCode.INVALID),
    ({"count": -3}, ErrorCode.INVALID),
    ({"count": 100}, ErrorCode.INVALID),
    ({"count": 10**18}, ErrorCode.INVALID),
    ({"count": True}, ErrorCode.INVALID),
    ({"count": 2.0}, ErrorCode.INVALID),
    ({"transfer_id": "short"}, ErrorCode.INVALID),
    ({"transfer_id": "x" * 65}, ErrorCode.INVALID),
    ({"transfer_id": "has space!"}, ErrorCode.INVALID),
    ({"live_id": "0123456789abcdef"}, ErrorCode.NOT_FOUND),
    ({"creator": "ben"}, ErrorCode.NOT_FOUND),          # ben is not live
    ({"creator": "ann"}, ErrorCode.INVALID),            # to yourself
    ({"sender": "kid"}, ErrorCode.FORBIDDEN),           # 16
    ({"sender": "teen"}, ErrorCode.FORBIDDEN),          # 18 tomorrow
    ({"sender_id": "ffffffffffffffff"}, ErrorCode.NOT_FOUND),
])
async def test_bad_gifts_are_refused_with_a_code_and_move_nothing(
        world: World, redis_url: str, change: dict[str, Any], code: ErrorCode) -> None:
    for who in ("ann", "kid", "teen"):
        await fund(world, who, 1000)
    args = world.gift_args(change.pop("sender", "ann"), change.pop("creator", "cat"))
    args["transfer_id"] = tid()
    args.update(change)
    error = await _refusal(world, redis_url, args)
    assert error.code is code, error


async def test_the_teen_may_gift_on_their_eighteenth_birthday(world: World) -> None:
    await fund(world, "teen", 5)
    args = world.gift_args("teen", today=TODAY + dt.timedelta(days=1))
    assert (await world.ledger.send_gift(transfer_id=tid(), **args)).coins == 1


async def test_bans_blocks_minors_and_the_follower_threshold(
        redis: Redis, redis_url: str) -> None:
    world = await make_world(redis, rules=LedgerRules(min_followers=2))
    await fund(world, "ann", 100)
    args = world.gift_args()
    error = await _refusal(world, redis_url, {**args, "transfer_id": tid()})
    assert error.code is ErrorCode.FORBIDDEN and "2 followers" in error.message
    await world.graph.follow(world.ids["ann"], world.ids["cat"])
    await world.graph.follow(world.ids["ben"], world.ids["cat"])
    assert (await world.ledger.send_gift(transfer_id=tid(), **args)).coins == 1

    await redis.sadd(keys.chat_bans(world.ids["cat"]), world.ids["ann"])
    error = await _refusal(world, redis_url, {**args, "transfer_id": tid()})
    assert error.code is ErrorCode.FORBIDDEN and "banned" in error.message
    await redis.srem(keys.chat_bans(world.ids["cat"]), world.ids["ann"])

    await world.graph.block(world.ids["cat"], world.ids["ann"])     # the creator blocks
    error = await _refusal(world, redis_url, {**args, "transfer_id": tid()})
    assert error.code is ErrorCode.FORBIDDEN
    await world.graph.unblock(world.ids["cat"], world.ids["ann"])
    await world.graph.block(world.ids["ann"], world.ids["cat"])     # the sender blocks
    error = await _refusal(world, redis_url, {**args, "transfer_id": tid()})
    assert error.code is ErrorCode.FORBIDDEN and "unblock" in error.message
    await world.graph.unblock(world.ids["ann"], world.ids["cat"])

    # a 16-year-old creator cannot receive gifts
    await world.lives.end(world.live)
    kid_live = await world.lives.start(world.ids["kid"], "too young")
    error = await _refusal(world, redis_url, {
        **args, "creator_id": world.ids["kid"], "live_id": kid_live.live_id,
        "transfer_id": tid()})
    assert error.code is ErrorCode.FORBIDDEN and "cannot receive" in error.message
    await assert_audit_ok(world)


# --- concurrency -------------------------------------------------------------------

async def test_hundreds_of_concurrent_gifts_from_one_wallet_never_overdraw(
        world: World) -> None:
    await fund(world, "ann", 2_000)            # enough for 200 doughnuts... of 300 sent
    await fund(world, "ben", 500)

    async def send(sender: str) -> Any:
        try:
            return await world.ledger.send_gift(transfer_id=tid(), **world.gift_args(
                sender, gift_id="ice_cream", count=1))
        except DomainError as exc:
            return exc.code

    results = await asyncio.gather(*(send("ann" if i % 4 else "ben") for i in range(400)))
    ok = [r for r in results if not isinstance(r, ErrorCode)]
    refused = [r for r in results if isinstance(r, ErrorCode)]
    assert set(refused) <= {ErrorCode.INSUFFICIENT_FUNDS}
    ann_ok = sum(1 for r in ok if r.sender_id == world.ids["ann"])
    ben_ok = sum(1 for r in ok if r.sender_id == world.ids["ben"])
    assert ann_ok == 2_000 // 9 and ben_ok == 500 // 9
    ann = await world.ledger.balances(world.ids["ann"])
    ben = await world.ledger.balances(world.ids["ben"])
    cat = await world.ledger.balances(world.ids["cat"])
    assert ann.coins == 2_000 - 9 * ann_ok and ben.coins == 500 - 9 * ben_ok
    # conserved: coins spent == diamonds x 2 + platform coins + the creator's carry
    platform = int(await world.redis.hget(keys.wallet("@platform"), "coins") or 0)
    assert 9 * len(ok) == cat.diamonds * 2 + platform + cat.carry_coins
    assert platform == 0 and cat.carry_coins == 9 * len(ok) % 2
    assert cat.diamonds == sum(r.diamonds for r in ok)
    assert sorted(r.sender_coins for r in ok if r.sender_id == world.ids["ann"]) == \
        [2_000 - 9 * k for k in range(ann_ok, 0, -1)]   # each balance seen exactly once
    await assert_audit_ok(world)


async def test_concurrent_calls_with_one_id_apply_once(world: World) -> None:
    await fund(world, "ann", 1_000)
    transfer = tid()
    receipts = await asyncio.gather(*(world.ledger.send_gift(
        transfer_id=transfer, **world.gift_args(gift_id="hand_hearts", count=2))
        for _ in range(200)))
    assert sum(not r.replayed for r in receipts) == 1
    assert len({(r.entry_id, r.sender_coins, r.creator_diamonds) for r in receipts}) == 1
    assert (await world.ledger.balances(world.ids["ann"])).coins == 800
    assert await world.redis.xlen(keys.ledger_journal()) == 2
    await assert_audit_ok(world)


# --- purchases and cash-outs ---------------------------------------------------

async def test_purchases_are_idempotent_by_provider_payment_id(world: World) -> None:
    ann = world.ids["ann"]
    first = await world.ledger.credit_purchase(payment_id="pay-00000001", provider="test",
                                               user_id=ann, coins=70)
    again = await world.ledger.credit_purchase(payment_id="pay-00000001", provider="test",
                                               user_id=ann, coins=70)
    assert again.replayed and again.balance == first.balance == 70
    other = await world.ledger.credit_purchase(payment_id="pay-00000001", provider="acme",
                                               user_id=ann, coins=70)
    assert not other.replayed and other.balance == 140
    for change in ({"coins": 71}, {"user_id": world.ids["ben"]}):
        with pytest.raises(DomainError) as err:
            await world.ledger.credit_purchase(**{"payment_id": "pay-00000001",
                                                  "provider": "test", "user_id": ann,
                                                  "coins": 70, **change})
        assert err.value.code is ErrorCode.CONFLICT
    for bad in ({"coins": 0}, {"coins": -5}, {"user_id": "nobody-at-all"},
                {"payment_id": "p"}):
        with pytest.raises(DomainError):
            await world.ledger.credit_purchase(**{"payment_id": tid("pay"), "provider": "test",
                                                  "user_id": ann, "coins": 70, **bad})
    assert (await world.ledger.balances(ann)).coins == 140
    await assert_audit_ok(world)


async def test_cash_out_threshold_cap_pay_and_return(redis: Redis, redis_url: str) -> None:
    world = await make_world(redis, rules=LedgerRules(cashout_min=100, cashout_daily_cap=500))
    await fund(world, "ann", 3_000)
    await world.ledger.send_gift(transfer_id=tid(), **world.gift_args(gift_id="galaxy", count=2))
    cat = world.ids["cat"]
    ledger = world.ledger
    assert (await ledger.balances(cat)).diamonds == 1_000
    before = await snapshot(redis_url)
    for amount, code in ((99, ErrorCode.INVALID), (501, ErrorCode.INVALID),
                         (0, ErrorCode.INVALID), (-100, ErrorCode.INVALID)):
        with pytest.raises(DomainError) as err:
            await ledger.request_cashout(request_id=tid("co"), user_id=cat, diamonds=amount,
                                         today=TODAY)
        assert err.value.code is code
    assert await snapshot(redis_url) == before
    request = tid("co")
    first = await ledger.request_cashout(request_id=request, user_id=cat, diamonds=300,
                                         today=TODAY)
    assert first.status == "pending" and not first.replayed
    again = await ledger.request_cashout(request_id=request, user_id=cat, diamonds=300,
                                         today=TODAY)
    assert again.replayed and again.payout_id == first.payout_id
    with pytest.raises(DomainError) as err:
        await ledger.request_cashout(request_id=request, user_id=cat, diamonds=301,
                                     today=TODAY)
    assert err.value.code is ErrorCode.CONFLICT
    assert await ledger.balances(cat) == Balances(cat, diamonds=700, pending_diamonds=300)
    # the daily cap counts today's requests: 300 + 300 > 500
    with pytest.raises(DomainError) as err:
        await ledger.request_cashout(request_id=tid("co"), user_id=cat, diamonds=300,
                                     today=TODAY)
    assert err.value.code is ErrorCode.FORBIDDEN and err.value.details == {"remaining": 200}
    second = await ledger.request_cashout(request_id=tid("co"), user_id=cat, diamonds=200,
                                          today=TODAY)
    paid = await ledger.settle_cashout(payout_id=first.payout_id, paid=True)
    assert paid.status == "paid" and paid.settled_at
    assert (await ledger.settle_cashout(payout_id=first.payout_id, paid=True)).replayed
    with pytest.raises(DomainError) as err:
        await ledger.settle_cashout(payout_id=first.payout_id, paid=False)
    assert err.value.code is ErrorCode.CONFLICT
    returned = await ledger.settle_cashout(payout_id=second.payout_id, paid=False)
    assert returned.status == "returned"
    assert await ledger.balances(cat) == Balances(cat, diamonds=700, paid_diamonds=300)
    assert [p.status for p in await ledger.payouts(cat)] == ["returned", "paid"]
    # more than the balance: insufficient_funds; a 16-year-old: forbidden
    with pytest.raises(DomainError) as err:
        await ledger.request_cashout(request_id=tid("co"), user_id=world.ids["ben"],
                                     diamonds=100, today=TODAY)
    assert err.value.code is ErrorCode.INSUFFICIENT_FUNDS
    with pytest.raises(DomainError) as err:
        await ledger.request_cashout(request_id=tid("co"), user_id=world.ids["kid"],
                                     diamonds=100, today=TODAY)
    assert err.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(DomainError) as err:
        await ledger.settle_cashout(payout_id="0123456789abcdef", paid=True)
    assert err.value.code is ErrorCode.NOT_FOUND
    kinds = [e.kind for e in await ledger.history(cat)]
    assert kinds == ["return", "payout", "cashout", "cashout", "gift"]
    page = await ledger.history(cat, limit=2)
    older = await ledger.history(cat, before=page[-1].id, limit=10)
    assert [e.kind for e in older] == ["cashout", "cashout", "gift"]
    await assert_audit_ok(world)


async def test_cash_outs_in_one_millisecond_list_newest_first(world: World) -> None:
    await fund(world, "ann", 30_000)
    await world.ledger.send_gift(transfer_id=tid(), **world.gift_args(gift_id="lion"))
    cat = world.ids["cat"]
    made = [await world.ledger.request_cashout(request_id=f"same-ms-{i}", user_id=cat,
                                               diamonds=2_000, today=TODAY, now=1_800_000_000.0)
            for i in range(6)]
    assert [p.payout_id for p in await world.ledger.payouts(cat)] == [
        p.payout_id for p in reversed(made)]


async def test_history_pages_by_any_id_and_reads_the_older_stream_index(world: World) -> None:
    ann = world.ids["ann"]
    for _ in range(6):
        await fund(world, "ann", 5)
        await asyncio.sleep(0.002)  # each entry its own millisecond: ids between them exist
    ids = [e.id for e in await world.ledger.history(ann, limit=100)]
    assert len(ids) == 6 and ids == sorted(ids, key=stream_ids.parse, reverse=True)
    # an id between two entries, one after the newest, one before the oldest
    ms, seq = stream_ids.parse(ids[2])
    between = f"{ms}-{seq + 1}"
    assert between not in ids
    assert [e.id for e in await world.ledger.history(ann, before=between, limit=2)] == ids[2:4]
    top_ms, _ = stream_ids.parse(ids[0])
    assert [e.id for e in await world.ledger.history(ann, before=f"{top_ms + 1}-0")] == ids
    assert await world.ledger.history(ann, before="0-1") == []
    assert [e.id for e in await world.ledger.history(ann, before="0" + ids[3])] == ids[4:]
    # entries indexed in the Stream (wallet_log) before the List existed follow the List's
    legacy = await world.redis.lrange(keys.wallet_entries(ann), 0, 2)
    await world.redis.ltrim(keys.wallet_entries(ann), 3, -1)
    for entry_id in legacy:
        await world.redis.xadd(keys.wallet_log(ann), {"k": "p"}, id=entry_id)
    assert [e.id for e in await world.ledger.history(ann, limit=100)] == ids
    assert [e.id for e in await world.ledger.history(ann, before=ids[1], limit=4)] == ids[2:6]
    assert [e.id for e in await world.ledger.history(ann, before=ids[4])] == ids[5:]


async def test_a_pipelined_batch_applies_each_gift_on_its_own(world: World) -> None:
    await fund(world, "ann", 10)
    args = {k: v for k, v in world.gift_args().items() if k != "today"}
    batch = [GiftRequest(transfer_id="batch-0001", **{**args, "count": 4}),
             GiftRequest(transfer_id="batch-0002", **{**args, "gift_id": "nope"}),
             GiftRequest(transfer_id="batch-0003", **{**args, "count": 5}),
             GiftRequest(transfer_id="batch-0001", **{**args, "count": 4}),      # a retry
             GiftRequest(transfer_id="batch-0004", **{**args, "count": 3}),      # 1 left
             GiftRequest(transfer_id="batch-0001", **{**args, "count": 1})]      # conflict
    results = await world.ledger.send_gifts(batch, today=TODAY)
    codes = [r.code if isinstance(r, DomainError) else ("replay" if r.replayed else "ok")
             for r in results]
    assert codes == ["ok", ErrorCode.NOT_FOUND, "ok", "replay",
                     ErrorCode.INSUFFICIENT_FUNDS, ErrorCode.CONFLICT]
    assert (await world.ledger.balances(world.ids["ann"])).coins == 1
    assert await world.ledger.send_gifts([]) == []
    await assert_audit_ok(world)


async def test_a_batch_spans_creators_and_script_calls_as_if_sent_one_by_one(
        world: World, redis_url: str) -> None:
    """send_gifts packs GIFTS_PER_CALL gifts into one script call, which reads each
    creator's facts once and writes the shared balances once with the sums: every
    receipt still shows the balances right after its own gift."""
    from engine.ledger import GIFTS_PER_CALL

    ann, ben, cat = (world.ids[n] for n in ("ann", "ben", "cat"))
    ben_live = await world.lives.start(ben, "second room")
    await fund(world, "ann", 5_000)
    rooms = [(cat, world.live.live_id), (ben, ben_live.live_id)]
    n = GIFTS_PER_CALL * 2 + 7
    results = await world.ledger.send_gifts(
        [GiftRequest(f"span-{i:04d}", ann, *rooms[i % 3 == 0], "finger_heart", 1)
         for i in range(n)], today=TODAY)
    assert [r.sender_coins for r in results] == [5_000 - 5 * (i + 1) for i in range(n)]
    earned = {cat: 0, ben: 0}
    carry = {cat: 0, ben: 0}
    for r in results:
        got, _, carry[r.creator_id] = carry_gift(5, carry[r.creator_id], 2, 0)
        earned[r.creator_id] += got
        assert r.creator_diamonds == earned[r.creator_id] and not r.replayed
        assert r.creator_carry == carry[r.creator_id]
    assert [(await world.ledger.balances(u)).diamonds for u in (cat, ben)] == [
        earned[cat], earned[ben]]
    entries = [e.id for e in await world.ledger.history(ben, limit=100)]
    assert entries == [r.entry_id for r in reversed(results) if r.creator_id == ben][:100]
    await assert_audit_ok(world)

    # a batch that is all refusals writes nothing at all
    await world.lives.end(ben_live)
    before = await snapshot(redis_url)
    refused = await world.ledger.send_gifts([
        GiftRequest("gone-0001", ann, ben, ben_live.live_id, "rose", 1),        # ended
        GiftRequest("gone-0002", ann, cat, world.live.live_id, "universe", 1),  # too dear
        GiftRequest("gone-0003", world.ids["kid"], cat, world.live.live_id, "rose", 1),
        GiftRequest("gone-0004", ann, ann, world.live.live_id, "rose", 1)], today=TODAY)
    assert [r.code for r in refused] == [  # type: ignore[union-attr]
        ErrorCode.NOT_FOUND, ErrorCode.INSUFFICIENT_FUNDS, ErrorCode.FORBIDDEN,
        ErrorCode.INVALID]
    assert await snapshot(redis_url) == before


async def test_gifts_sent_in_one_loop_turn_share_script_calls(world: World) -> None:
    """send_gift's group commit: gift:send handlers that run in the same loop turn
    go to Redis together (one script call per GIFTS_PER_CALL gifts), each still
    answered with its own receipt or error."""
    await fund(world, "ann", 1_000)
    await fund(world, "ben", 3)
    await world.redis.config_resetstat()
    args = world.gift_args()
    results = await asyncio.gather(
        *(world.ledger.send_gift(transfer_id=f"turn-{i:04d}", **args) for i in range(150)),
        *(world.ledger.send_gift(transfer_id=f"poor-{i:04d}", **world.gift_args("ben"))
          for i in range(5)),
        world.ledger.send_gift(transfer_id="turn-0000", **args),           # a retry
        return_exceptions=True)
    calls = (await world.redis.info("commandstats"))["cmdstat_evalsha"]["calls"]
    assert calls <= 3, calls  # 156 gifts: two script calls (+1 if Redis lost the script)
    mine = results[:150]
    assert sorted(r.sender_coins for r in mine) == list(range(850, 1_000))  # type: ignore[union-attr]
    ben = results[150:155]
    assert [getattr(r, "code", "ok") for r in ben] == ["ok"] * 3 + [
        ErrorCode.INSUFFICIENT_FUNDS] * 2
    assert results[155].replayed and results[155].entry_id == mine[0].entry_id  # type: ignore[union-attr]
    await assert_audit_ok(world)


async def test_a_cancelled_gift_leaves_the_others_of_its_turn_answered(
        world: World, redis_url: str) -> None:
    await fund(world, "ann", 10)
    before = await snapshot(redis_url)
    args = world.gift_args()
    tasks = [asyncio.create_task(world.ledger.send_gift(transfer_id=f"cut-{i:04d}", **args))
             for i in range(3)]
    await asyncio.sleep(0)      # all three joined; the first leads and has not sent yet
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert [r.code for r in results[1:]] == [ErrorCode.UNAVAILABLE] * 2  # type: ignore[union-attr]
    assert await snapshot(redis_url) == before  # nothing was sent
    again = await world.ledger.send_gift(transfer_id="cut-0001", **args)  # the retry
    assert again.sender_coins == 9 and not again.replayed


async def test_gifts_still_go_through_after_redis_forgets_the_script(world: World) -> None:
    """The gift is sent as a packed EVALSHA (engine/packed_script.py): a Redis that lost
    its scripts (restart, SCRIPT FLUSH) answers NOSCRIPT, and the script is loaded again."""
    await fund(world, "ann", 10)
    args = {k: v for k, v in world.gift_args().items() if k != "today"}
    await world.redis.script_flush()
    results = await world.ledger.send_gifts(
        [GiftRequest(transfer_id=f"flushed-{i}", **args) for i in range(3)], today=TODAY)
    assert [getattr(r, "replayed", r) for r in results] == [False] * 3
    await world.redis.script_flush()
    receipt = await world.ledger.send_gift(transfer_id="flushed-9", **world.gift_args())
    assert receipt.sender_coins == 6
    await assert_audit_ok(world)


def test_a_packed_call_is_the_resp_redis_py_would_send() -> None:
    from redis.asyncio.connection import Connection

    from engine.packed_script import PackedScript

    script = PackedScript(None, "return 1")  # type: ignore[arg-type]
    conn = Connection()
    for keys_, args_ in ((["a", "bb"], ["x y", ""]), (["k"], ["café ☕", "1"])):
        want = b"".join(conn.pack_command("EVALSHA", script.sha, len(keys_), *keys_, *args_))
        assert script.pack(keys_, args_) == want


# --- the carry: no value lost to rounding ---------------------------------------------

@pytest.mark.parametrize("per,pct", [(2, 0), (2, 10), (3, 0), (1, 50), (7, 33), (2, 100)])
def test_carry_gift_loses_no_coin_over_any_run_of_gifts(per: int, pct: int) -> None:
    carry = diamonds_total = platform_total = spent = 0
    for coins in [*range(0, 120), 1, 1, 1, 29_999, 44_999 * 99]:
        diamonds, platform, after = carry_gift(coins, carry, per, pct)
        assert diamonds * per + platform + (after - carry) == coins
        assert 0 <= after < per and diamonds >= 0
        assert platform == coins * pct // 100       # the commission only, never a remainder
        carry = after
        diamonds_total += diamonds
        platform_total += platform
        spent += coins
    # over the whole run the creator got every whole diamond the coins made
    assert diamonds_total == (spent - platform_total) // per
    assert carry == (spent - platform_total) % per


def test_two_one_coin_roses_make_a_diamond() -> None:
    assert carry_gift(1, 0, 2, 0) == (0, 0, 1)
    assert carry_gift(1, 1, 2, 0) == (1, 0, 0)
    assert carry_gift(1, 2, 3, 0) == (1, 0, 0)   # a carry kept at 2:0 converts at 3:0
    assert carry_gift(1, 2, 2, 0) == (1, 0, 1)   # and one left above a smaller rate too


async def test_two_roses_make_a_diamond_and_the_audit_proves_the_carry(
        world: World, redis_url: str) -> None:
    await fund(world, "ann", 10)
    first = await world.ledger.send_gift(transfer_id=tid(),
                                         **world.gift_args(gift_id="rose", count=1))
    assert (first.diamonds, first.creator_diamonds, first.creator_carry) == (0, 0, 1)
    await assert_audit_ok(world)
    second = await world.ledger.send_gift(transfer_id=tid(),
                                          **world.gift_args(gift_id="rose", count=1))
    assert (second.diamonds, second.creator_diamonds, second.creator_carry) == (1, 1, 0)
    cat = await world.ledger.balances(world.ids["cat"])
    assert (cat.diamonds, cat.carry_coins) == (1, 0)
    assert int(await world.redis.hget(keys.wallet("@platform"), "coins") or 0) == 0
    [got, _] = await world.ledger.history(world.ids["cat"])
    assert got.as_dict(world.ids["cat"])["changes"] == {"diamonds": 1, "carry": -1}
    report = await run_audit(world.redis, world.ledger)
    assert report.ok, [str(m) for m in report.mismatches]
    assert report.totals["diamonds_credited"] == 1 and report.totals["coins_carried"] == 0
    # a replay answers the same receipt, carry included, and moves nothing
    again = await world.ledger.send_gift(transfer_id=second.transfer_id,
                                         **world.gift_args(gift_id="rose", count=1))
    assert again.replayed and again.creator_carry == 0 and again.diamonds == 1
    # a carry changed behind the ledger's back is named by the audit
    await world.redis.hincrby(keys.wallet(world.ids["cat"]), "carry", 1)
    report = await run_audit(world.redis, world.ledger)
    assert any(m.check == "balance" and m.subject.endswith("/carry")
               for m in report.mismatches), [str(m) for m in report.mismatches]
