"""A property test of the ledger against a plain-Python model of it: random buys, gifts
(one at a time and in batches: Ledger.send_gifts), replays, conflicts, cash-outs and
settlements, in any order, over a real Redis. After
every step the real balances equal the model's and the outcome (applied, replayed or
the error code) is the one the model predicts; after every run the audit passes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from engine import keys
from engine.audit import run_audit
from engine.errors import DomainError
from engine.ledger import GiftReceipt, GiftRequest
from engine.ledger_rules import LedgerRules, carry_gift
from tests.ledger_world import TODAY, make_world

RULES = LedgerRules(coins_per_diamond=2, commission_pct=10, cashout_min=50,
                    cashout_daily_cap=2_000, max_count=99)
PEOPLE = {"ann": "1990-01-01", "ben": "1985-07-07", "cat": "2000-02-29"}
NAMES = list(PEOPLE)
PRICES = {"rose": 1, "finger_heart": 5, "doughnut": 30, "galaxy": 1000}
NOW = 1_800_000_000.0


@dataclass
class Model:
    """The ledger as plain Python: what each operation should do."""

    coins: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    diamonds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    pending: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    paid: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    carry: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    platform: int = 0
    gifts: dict[tuple[str, str], tuple] = field(default_factory=dict)
    purchases: dict[str, tuple[str, int]] = field(default_factory=dict)
    cashouts: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    payouts: list[list] = field(default_factory=list)     # [user, amount, status]
    today: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))

    def buy(self, user: str, payment: str, coins: int) -> str:
        if payment in self.purchases:
            return "replay" if self.purchases[payment] == (user, coins) else "conflict"
        self.purchases[payment] = (user, coins)
        self.coins[user] += coins
        return "ok"

    def gift(self, sender: str, creator: str, gift: str, count: int, transfer: str) -> str:
        if sender == creator or not 1 <= count <= RULES.max_count:
            return "invalid"
        params = (creator, gift, count)
        if (sender, transfer) in self.gifts:
            return "replay" if self.gifts[(sender, transfer)] == params else "conflict"
        cost = PRICES[gift] * count
        if self.coins[sender] < cost:
            return "insufficient_funds"
        diamonds, platform, self.carry[creator] = carry_gift(
            cost, self.carry[creator], RULES.coins_per_diamond, RULES.commission_pct)
        self.coins[sender] -= cost
        self.diamonds[creator] += diamonds
        self.platform += platform
        self.gifts[(sender, transfer)] = params
        return "ok"

    def cashout(self, user: str, request: str, amount: int) -> tuple[str, int | None]:
        if not RULES.cashout_min <= amount <= RULES.cashout_daily_cap:
            return "invalid", None
        if (user, request) in self.cashouts:
            first, index = self.cashouts[(user, request)]
            return ("replay", index) if first == amount else ("conflict", None)
        if self.diamonds[user] < amount:
            return "insufficient_funds", None
        if self.today[user] + amount > RULES.cashout_daily_cap:
            return "forbidden", None
        self.today[user] += amount
        self.diamonds[user] -= amount
        self.pending[user] += amount
        self.payouts.append([user, amount, "pending"])
        self.cashouts[(user, request)] = (amount, len(self.payouts) - 1)
        return "ok", len(self.payouts) - 1

    def settle(self, index: int, paid: bool) -> str:
        user, amount, status = self.payouts[index]
        outcome = "paid" if paid else "returned"
        if status == outcome:
            return "replay"
        if status != "pending":
            return "conflict"
        self.payouts[index][2] = outcome
        self.pending[user] -= amount
        if paid:
            self.paid[user] += amount
        else:
            self.diamonds[user] += amount
        return "ok"


ids = st.sampled_from([f"id-{i:05d}" for i in range(6)])   # few ids: replays and conflicts
who = st.sampled_from(NAMES)
# mostly sensible values (so gifts and cash-outs go through), sometimes anything
counts = st.one_of(st.sampled_from([1, 1, 2, 3]), st.integers(-2, 110))
pairs = st.one_of(st.permutations(NAMES).map(lambda p: (p[0], p[1])), st.tuples(who, who))
amounts = st.one_of(st.integers(40, 1_200), st.integers(0, 2_500))
gifts = st.tuples(pairs, st.sampled_from(["galaxy", "galaxy", *PRICES]), counts,
                  ids).map(lambda t: (*t[0], *t[1:]))   # (sender, creator, gift, count, id)
ops = st.one_of(
    st.tuples(st.just("buy"), who, ids, st.integers(1, 6_000)),
    gifts.map(lambda g: ("gift", *g)),
    st.tuples(st.just("gifts"), st.lists(gifts, min_size=1, max_size=8)),
    st.tuples(st.just("cashout"), st.one_of(who, st.just("*")), ids, amounts),
    st.tuples(st.just("settle"), st.integers(0, 5), st.booleans()),
    st.just(("again",)),         # the previous step once more: a retry
)


async def run(redis_url: str, steps: list[tuple]) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        await redis.flushall()
        world = await make_world(redis, rules=RULES, people=PEOPLE)
        lives = {name: await world.lives.start(world.ids[name], "live") for name in NAMES
                 if name != "cat"}
        lives["cat"] = world.live
        ledger, model = world.ledger, Model()
        for name in NAMES:  # a start balance so that gifts and then cash-outs go through
            await ledger.credit_purchase(payment_id=f"seed-{name}", provider="seed",
                                         user_id=world.ids[name], coins=5_000)
            model.coins[name] += 5_000
        payout_ids: list[str] = []

        async def outcome(call) -> tuple[str, object]:  # type: ignore[no-untyped-def]
            try:
                result = await call
            except DomainError as exc:
                return str(exc.code), None
            return ("replay" if result.replayed else "ok"), result

        previous: tuple = ("settle", 99, True)
        for step in steps:
            if step[0] == "again":
                step = previous
            previous = step
            kind = step[0]
            if kind == "buy":
                _, user, payment, coins = step
                got, _ = await outcome(ledger.credit_purchase(
                    payment_id=payment, provider="test", user_id=world.ids[user], coins=coins))
                want = model.buy(user, payment, coins)
            elif kind == "gift":
                _, sender, creator, gift, count, transfer = step
                got, receipt = await outcome(ledger.send_gift(
                    transfer_id=transfer, sender_id=world.ids[sender],
                    creator_id=world.ids[creator], live_id=lives[creator].live_id,
                    gift_id=gift, count=count, today=TODAY))
                want = model.gift(sender, creator, gift, count, transfer)
                if want == got == "ok":  # the balances right after this gift
                    assert (receipt.sender_coins, receipt.creator_diamonds) == (  # type: ignore[attr-defined]
                        model.coins[sender], model.diamonds[creator]), step
            elif kind == "gifts":  # one send_gifts call: as if sent one by one, in order
                results = await ledger.send_gifts([GiftRequest(
                    transfer, world.ids[sender], world.ids[creator], lives[creator].live_id,
                    gift, count) for sender, creator, gift, count, transfer in step[1]],
                    today=TODAY)
                got, want = [], []
                for (sender, creator, gift, count, transfer), result in zip(
                        step[1], results, strict=True):
                    want.append(model.gift(sender, creator, gift, count, transfer))
                    if isinstance(result, GiftReceipt):
                        got.append("replay" if result.replayed else "ok")
                        if want[-1] == "ok":
                            assert (result.sender_coins, result.creator_diamonds) == (
                                model.coins[sender], model.diamonds[creator]), step
                    else:
                        got.append(str(result.code))
            elif kind == "cashout":
                _, user, request, amount = step
                if user == "*":  # whoever holds the most diamonds now
                    user = max(NAMES, key=lambda n: (model.diamonds[n], n))
                got, payout = await outcome(ledger.request_cashout(
                    request_id=request, user_id=world.ids[user], diamonds=amount,
                    today=TODAY, now=NOW))
                want, index = model.cashout(user, request, amount)
                if want == "ok":
                    payout_ids.append(payout.payout_id)  # type: ignore[attr-defined]
                elif want == "replay" and got == "replay":
                    assert payout.payout_id == payout_ids[index]  # type: ignore[attr-defined,index]
            else:
                _, index, paid = step
                if not payout_ids:
                    continue
                index %= len(payout_ids)
                got, _ = await outcome(ledger.settle_cashout(payout_id=payout_ids[index],
                                                             paid=paid))
                want = model.settle(index, paid)
            assert got == want, (step, got, want)
            event(f"{kind}: {got}")   # --hypothesis-show-statistics shows the mix
            for name in NAMES:
                b = await ledger.balances(world.ids[name])
                assert (b.coins, b.diamonds, b.pending_diamonds, b.paid_diamonds,
                        b.carry_coins) == (
                    model.coins[name], model.diamonds[name], model.pending[name],
                    model.paid[name], model.carry[name]), (step, name)
        assert int(await redis.hget(keys.wallet("@platform"), "coins") or 0) == model.platform
        report = await run_audit(redis, ledger)
        assert report.ok, [str(m) for m in report.mismatches]
    finally:
        await redis.aclose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(ops, min_size=10, max_size=60))
def test_the_ledger_behaves_like_its_model(redis_url: str, steps: list[tuple]) -> None:
    asyncio.run(run(redis_url, steps))
