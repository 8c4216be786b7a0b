"""The ledger audit: replay the journal and prove every balance from it.

`golive ledger audit` runs this against the live Redis. It checks:

- every entry balances: per unit (coins, diamonds) its postings add up to zero,
  i.e. its debits equal its credits;
- every gift is worth what it cost at the rate it recorded (the rate in force
  when it was sent): diamonds x coins_per_diamond + platform coins + the
  creator's carry change == coins spent, and (diamonds, platform, carry after)
  == carry_gift(coins, the creator's carry before it as the replay has it,
  rate), with 0 <= carry < coins_per_diamond: no coin is lost to rounding
  (gifts journalled before the carry: (diamonds, platform) == split_gift);
- every operation id was applied once, and a payout settles at most once,
  after its cash-out, for the same amount;
- every stored balance equals the sum of its entries, and nothing is negative
  (at any point of the replay, and now), except the two system accounts that
  are minus by construction (@world/coins: coins sold; @exchange/diamonds:
  diamonds minted);
- coins bought == coins held + coins spent; diamonds credited + the platform's
  share == the value of the coins spent; diamonds held + pending + paid ==
  diamonds credited; coins carried == the creators' carry; payout records
  agree with the pending balances.

Rules are pure (`audit`), the Redis reading is `read_state`, so tests can also
feed it a doctored journal.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from engine import keys
from engine.errors import unavailable
from engine.ledger import (
    CASHOUT,
    EXCHANGE,
    GIFT,
    PAYOUT,
    PLATFORM,
    PURCHASE,
    RETURN,
    WORLD,
    JournalEntry,
    Ledger,
    account,
)
from engine.ledger_rules import carry_gift, parse_rate, split_gift

# System accounts whose balance is minus by construction.
NEGATIVE_BY_DESIGN = frozenset({account(WORLD, "coins"), account(EXCHANGE, "diamonds")})
KINDS = (PURCHASE, GIFT, CASHOUT, PAYOUT, RETURN)


@dataclass(frozen=True, slots=True)
class Mismatch:
    check: str      # which proof failed: balance, entry, gift, replay, negative, totals, payout
    subject: str    # the account, entry id or total it is about
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: {self.detail}"


@dataclass
class AuditReport:
    entries: int = 0
    accounts: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "accounts": self.accounts,
                "totals": self.totals, "mismatches": [vars_of(m) for m in self.mismatches]}


def vars_of(m: Mismatch) -> dict[str, str]:
    return {"check": m.check, "subject": m.subject, "detail": m.detail}


@dataclass(frozen=True, slots=True)
class PayoutRecord:
    user_id: str
    diamonds: int
    status: str


def _is_user(owner: str) -> bool:
    return not owner.startswith("@")


def audit(entries: Iterable[JournalEntry], stored: dict[str, int],
          payouts: dict[str, PayoutRecord] | None = None) -> AuditReport:
    """Replay `entries` (oldest first) against `stored` balances ('owner/field' -> int)
    and the payout records; every failed proof is one Mismatch."""
    report = AuditReport()
    bad = report.mismatches.append
    running: dict[str, int] = defaultdict(int)
    seen_ops: Counter[tuple[str, str, str]] = Counter()
    cashouts: dict[str, tuple[str, int]] = {}        # payout id -> (user, diamonds)
    settled: dict[str, str] = {}                      # payout id -> payout|return
    bought = spent = credited = platform = value = carried = 0

    for entry in entries:
        report.entries += 1
        meta = entry.meta
        # 1. the entry balances per unit, on known accounts only
        per_unit: Counter[str] = Counter()
        for p in entry.postings:
            if p.unit == "?" or not p.owner:
                bad(Mismatch("entry", entry.id, f"unknown account {p.account!r}"))
            per_unit[p.unit] += p.amount
        for unit, total in per_unit.items():
            if total:
                bad(Mismatch("entry", entry.id,
                             f"{unit} postings add up to {total:+d}, not 0 (debits != credits)"))
        if entry.kind not in KINDS:
            bad(Mismatch("entry", entry.id, f"unknown kind {entry.kind!r}"))
        # 2. the operation was applied once
        scope = {GIFT: meta.get("sender", ""), PURCHASE: meta.get("provider", ""),
                 CASHOUT: meta.get("user", "")}.get(entry.kind, "")
        seen_ops[(entry.kind, scope, entry.op_id)] += 1
        if seen_ops[(entry.kind, scope, entry.op_id)] == 2:
            bad(Mismatch("replay", entry.id,
                         f"{entry.kind} {entry.op_id} applied more than once"))
        # 3. what each kind must move
        try:
            if entry.kind == PURCHASE:
                coins = int(meta["coins"])
                bought += coins
                _expect(entry, {account(meta["user"], "coins"): coins,
                                account(WORLD, "coins"): -coins}, bad)
            elif entry.kind == GIFT:
                coins, diamonds, share = (int(meta["coins"]), int(meta["diamonds"]),
                                          int(meta["platform"]))
                per, pct = parse_rate(meta["rate"])
                spent += coins
                credited += diamonds
                platform += share
                value += diamonds * per
                if "carry" in meta:  # sent since the carry (ledger_rules.carry_gift)
                    carried += _check_carried_gift(entry, coins, diamonds, share, per, pct,
                                                   running, bad)
                else:
                    _check_split_gift(entry, coins, diamonds, share, per, pct, bad)
            elif entry.kind == CASHOUT:
                amount = int(meta["diamonds"])
                cashouts[meta["payout"]] = (meta["user"], amount)
                _expect(entry, {account(meta["user"], "diamonds"): -amount,
                                account(meta["user"], "pending"): amount}, bad)
            elif entry.kind in (PAYOUT, RETURN):
                payout_id, amount = meta["payout"], int(meta["diamonds"])
                if cashouts.get(payout_id) != (meta["user"], amount):
                    bad(Mismatch("payout", entry.id,
                                 f"settles payout {payout_id} without a matching cash-out"))
                if payout_id in settled:
                    bad(Mismatch("payout", entry.id, f"payout {payout_id} settled twice"))
                settled[payout_id] = entry.kind
                to = "paid" if entry.kind == PAYOUT else "diamonds"
                _expect(entry, {account(meta["user"], "pending"): -amount,
                                account(meta["user"], to): amount}, bad)
        except (KeyError, ValueError) as exc:
            bad(Mismatch("entry", entry.id, f"{entry.kind} entry is malformed: {exc!r}"))
        # 4. nothing goes negative during the replay
        for p in entry.postings:
            before = running[p.account]
            running[p.account] = before + p.amount
            if p.account not in NEGATIVE_BY_DESIGN and running[p.account] < 0 <= before:
                bad(Mismatch("negative", p.account,
                             f"went to {running[p.account]} at entry {entry.id}"))

    # 5. every stored balance is the sum of its entries; nothing negative now
    names = set(running) | set(stored)
    report.accounts = len(names)
    for name in sorted(names):
        have, want = stored.get(name, 0), running.get(name, 0)
        if have != want:
            bad(Mismatch("balance", name, f"stored {have}, journal says {want}"))
        if name in NEGATIVE_BY_DESIGN:
            if have > 0:
                bad(Mismatch("negative", name, f"is {have}; it can only be minus"))
        elif have < 0:
            bad(Mismatch("negative", name, f"is {have}"))

    # 6. the totals
    def total(field_name: str) -> int:
        return sum(v for k, v in stored.items()
                   if _is_user(k.partition("/")[0]) and k.partition("/")[2] == field_name)

    held = total("coins")
    held_d, pending, paid = total("diamonds"), total("pending"), total("paid")
    carry_held = total("carry")
    report.totals = {"coins_bought": bought, "coins_held": held, "coins_spent": spent,
                     "platform_coins": platform, "coins_carried": carry_held,
                     "diamonds_credited": credited, "diamonds_held": held_d,
                     "diamonds_pending": pending, "diamonds_paid": paid}
    checks = [
        ("coins bought == coins held + coins spent", bought, held + spent),
        ("coins sold (-@world/coins) == coins bought", -stored.get(account(WORLD, "coins"), 0),
         bought),
        ("diamonds credited x rate + platform share + coins carried == coins spent",
         value + platform + carried, spent),
        ("creators' carry == coins carried", carry_held, carried),
        ("@platform/coins == platform share", stored.get(account(PLATFORM, "coins"), 0),
         platform),
        ("diamonds held + pending + paid == diamonds credited", held_d + pending + paid,
         credited),
        ("diamonds minted (-@exchange/diamonds) == diamonds credited",
         -stored.get(account(EXCHANGE, "diamonds"), 0), credited),
    ]
    for name, left, right in checks:
        if left != right:
            bad(Mismatch("totals", name, f"{left} != {right}"))

    # 7. payout records agree with the journal and the pending balances
    if payouts is not None:
        pending_by_user: Counter[str] = Counter()
        for payout_id, record in sorted(payouts.items()):
            want_status = {PAYOUT: "paid", RETURN: "returned"}.get(
                settled.get(payout_id, ""), "pending")
            if payout_id not in cashouts:
                bad(Mismatch("payout", payout_id, "has no cash-out entry"))
            elif cashouts[payout_id] != (record.user_id, record.diamonds):
                bad(Mismatch("payout", payout_id, "user or amount differs from its entry"))
            if record.status != want_status:
                bad(Mismatch("payout", payout_id,
                             f"status {record.status}, journal says {want_status}"))
            if record.status == "pending":
                pending_by_user[record.user_id] += record.diamonds
        for payout_id in sorted(set(cashouts) - set(payouts)):
            bad(Mismatch("payout", payout_id, "cash-out entry without a payout record"))
        for name, have in sorted(stored.items()):
            owner, _, field_name = name.partition("/")
            if field_name == "pending" and _is_user(owner) and have != pending_by_user[owner]:
                bad(Mismatch("payout", name, f"pending {have}, open payouts hold "
                                             f"{pending_by_user[owner]}"))
    return report


def _check_split_gift(entry: JournalEntry, coins: int, diamonds: int, share: int, per: int,
                      pct: int, bad: Any) -> None:
    """A gift journalled before the carry: the lone coins were the platform's."""
    meta = entry.meta
    if diamonds * per + share != coins:
        bad(Mismatch("gift", entry.id,
                     f"{diamonds} diamonds x {per} + {share} platform coins != "
                     f"{coins} coins spent"))
    if split_gift(coins, per, pct) != (diamonds, share):
        bad(Mismatch("gift", entry.id,
                     f"{coins} coins at rate {meta['rate']} make "
                     f"{split_gift(coins, per, pct)}, not ({diamonds}, {share})"))
    _expect(entry, {account(meta["sender"], "coins"): -coins,
                    account(meta["creator"], "diamonds"): diamonds,
                    account(PLATFORM, "coins"): share,
                    account(EXCHANGE, "coins"): coins - share,
                    account(EXCHANGE, "diamonds"): -diamonds}, bad)


def _check_carried_gift(entry: JournalEntry, coins: int, diamonds: int, share: int, per: int,
                        pct: int, running: dict[str, int], bad: Any) -> int:
    """A gift with the carry: its diamonds, commission and carry after are what
    carry_gift makes of its coins and the creator's carry before it (as the replay so
    far has it), and its postings move exactly that. Returns the carry change."""
    meta = entry.meta
    after = int(meta["carry"])
    before = running[account(meta["creator"], "carry")]
    moved = after - before
    if diamonds * per + share + moved != coins:
        bad(Mismatch("gift", entry.id,
                     f"{diamonds} diamonds x {per} + {share} platform coins + {moved} "
                     f"carried != {coins} coins spent"))
    if not 0 <= after < per:
        bad(Mismatch("gift", entry.id, f"carry {after} is not 0..{per - 1} coins"))
    want = carry_gift(coins, max(before, 0), per, pct)
    if want != (diamonds, share, after):
        bad(Mismatch("gift", entry.id,
                     f"{coins} coins with {before} carried at rate {meta['rate']} make "
                     f"{want}, not ({diamonds}, {share}, {after})"))
    _expect(entry, {account(meta["sender"], "coins"): -coins,
                    account(meta["creator"], "diamonds"): diamonds,
                    account(meta["creator"], "carry"): moved,
                    account(PLATFORM, "coins"): share,
                    account(EXCHANGE, "coins"): diamonds * per,
                    account(EXCHANGE, "diamonds"): -diamonds}, bad)
    return moved


def _expect(entry: JournalEntry, want: dict[str, int], bad: Any) -> None:
    """The entry's postings are exactly `want` (accounts with a zero amount may be absent)."""
    got: Counter[str] = Counter()
    for p in entry.postings:
        got[p.account] += p.amount
    for name in set(got) | set(want):
        if got.get(name, 0) != want.get(name, 0):
            bad(Mismatch("entry", entry.id,
                         f"{entry.kind} moves {got.get(name, 0)} on {name}, "
                         f"its record says {want.get(name, 0)}"))


# One consistent snapshot: every wallet and payout hash and the journal's last
# id, read in one script so that entries written during the audit (after that
# id) are left out of the replay instead of showing as mismatches. The script reads
# only keys it declares (a Redis Cluster refuses others): read_state lists the names
# with SCAN first and again after; a wallet or payout created in between (its entry may
# be older than the last id read) makes it read again.
# KEYS: 1 journal, then ARGV[1] wallets, then the payouts.
_SNAPSHOT = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local out = {last[1] and last[1][1] or '0-0', {}, {}}
local nw = tonumber(ARGV[1])
for i = 2, #KEYS do
  local part = 3
  if i <= 1 + nw then part = 2 end
  table.insert(out[part], {KEYS[i], redis.call('HGETALL', KEYS[i])})
end
return out
"""
_SNAPSHOT_TRIES = 5  # each retry follows a wallet or payout created during the last read


async def _names(redis: Redis, pattern: str) -> list[str]:
    return sorted({name async for name in redis.scan_iter(match=pattern, count=1000)})


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


async def read_state(redis: Redis) -> tuple[str, dict[str, int], dict[str, PayoutRecord]]:
    """The journal's last id, every stored balance ('owner/field' -> int) and every
    payout record, as of one instant."""
    wallet_names = await _names(redis, keys.wallet("*"))
    payout_names = await _names(redis, keys.payout("*"))
    for _ in range(_SNAPSHOT_TRIES):
        last, wallets, payout_rows = await redis.eval(
            _SNAPSHOT, 1 + len(wallet_names) + len(payout_names), keys.ledger_journal(),
            *wallet_names, *payout_names, len(wallet_names))
        now_wallets = await _names(redis, keys.wallet("*"))
        now_payouts = await _names(redis, keys.payout("*"))
        if now_wallets == wallet_names and now_payouts == payout_names:
            break
        wallet_names, payout_names = now_wallets, now_payouts
    else:
        raise unavailable(f"ledger audit: wallets or payouts kept appearing during "
                          f"{_SNAPSHOT_TRIES} reads; run it again")
    stored: dict[str, int] = {}
    prefix = len(keys.wallet(""))
    for key, flat in wallets:
        for name, value in _pairs(flat).items():
            try:
                stored[account(key[prefix:], name)] = int(value)
            except ValueError:
                stored[account(key[prefix:], name)] = -(2**62)  # not a number: never matches
    payouts: dict[str, PayoutRecord] = {}
    payout_prefix = len(keys.payout(""))
    for key, flat in payout_rows:
        h = _pairs(flat)
        try:
            record = PayoutRecord(h["user"], int(h["diamonds"]), h["status"])
        except (KeyError, ValueError):
            record = PayoutRecord("?", -1, "malformed")
        payouts[key[payout_prefix:]] = record
    return last, stored, payouts


async def run_audit(redis: Redis, ledger: Ledger) -> AuditReport:
    """Audit the ledger in `redis` as of now; safe while gifts keep flowing."""
    last, stored, payouts = await read_state(redis)
    entries = [entry async for entry in ledger.journal(until=last)]
    return audit(entries, stored, payouts)
