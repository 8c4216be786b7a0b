"""The coin and diamond ledger over Redis: every movement is one Lua script.

Accounts are fields of `wallet:<owner>` hashes: a user's `coins`, `diamonds`,
`pending` (diamonds waiting for a payout) and `paid` (diamonds paid out); the
platform's own `@platform/coins` (the remainder and the commission of every
gift); `@world/coins` (minus every coin sold) and `@exchange` (coins turned
into diamonds, and minus every diamond minted). Each operation appends one
double-entry journal entry to the `ledger:journal` Stream: postings
(account, amount) whose amounts add up to zero per unit, so
`golive ledger audit` can replay the journal and prove every balance.

Each operation carries an id (a gift's transfer id, a provider's payment id, a
cash-out request id). Its script first looks the id up: a known id with the
same parameters returns the first result and moves nothing; with other
parameters it is a `conflict`. Then it validates everything and only then
writes, because Lua does not roll back (FIELD-NOTES: Redis).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from engine.catalog import Catalog
from engine.ledger_rules import LedgerRules

# Journal entry kinds
PURCHASE, GIFT, CASHOUT, PAYOUT, RETURN = "purchase", "gift", "cashout", "payout", "return"
# System owners (user ids are 16 hex characters, so these never clash)
PLATFORM, WORLD, EXCHANGE = "@platform", "@world", "@exchange"
# Wallet fields and their units
UNITS = {"coins": "coin", "diamonds": "diamond", "pending": "diamond", "paid": "diamond"}


@dataclass(frozen=True, slots=True)
class GiftReceipt:
    """What a gift did: the coins it cost, the diamonds the creator got, both balances after."""

    transfer_id: str
    sender_id: str
    creator_id: str
    live_id: str
    gift_id: str
    count: int
    coins: int             # coins debited from the sender (catalog price x count)
    diamonds: int          # diamonds credited to the creator
    sender_coins: int      # the sender's coin balance right after this gift
    creator_diamonds: int  # the creator's diamond balance right after this gift
    replayed: bool         # True when this id was applied before (nothing moved now)
    entry_id: str = ""     # the journal entry's id (Stream id)

    def as_dict(self) -> dict[str, Any]:
        return {"transfer_id": self.transfer_id, "sender_id": self.sender_id,
                "creator_id": self.creator_id, "live_id": self.live_id,
                "gift_id": self.gift_id, "count": self.count, "coins": self.coins,
                "diamonds": self.diamonds, "sender_coins": self.sender_coins,
                "creator_diamonds": self.creator_diamonds, "replayed": self.replayed,
                "entry_id": self.entry_id}


@dataclass(frozen=True, slots=True)
class Purchase:
    """Coins credited for one provider payment."""

    payment_id: str
    provider: str
    user_id: str
    coins: int
    balance: int           # the user's coins right after
    replayed: bool
    entry_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"payment_id": self.payment_id, "provider": self.provider,
                "user_id": self.user_id, "coins": self.coins, "balance": self.balance,
                "replayed": self.replayed, "entry_id": self.entry_id}


@dataclass(frozen=True, slots=True)
class Balances:
    user_id: str
    coins: int = 0
    diamonds: int = 0
    pending_diamonds: int = 0
    paid_diamonds: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"coins": self.coins, "diamonds": self.diamonds,
                "pending_diamonds": self.pending_diamonds, "paid_diamonds": self.paid_diamonds}


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of a journal entry: `amount` (signed) on `account` ('<owner>/<field>')."""

    account: str
    amount: int

    @property
    def owner(self) -> str:
        return self.account.partition("/")[0]

    @property
    def field(self) -> str:
        return self.account.partition("/")[2]

    @property
    def unit(self) -> str:
        return UNITS.get(self.field, "?")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One double-entry journal entry as the Stream holds it."""

    id: str                 # Stream id: the journal's order and the entry's time
    kind: str               # purchase, gift, cashout, payout, return
    op_id: str              # the operation's idempotency id
    postings: tuple[Posting, ...]
    meta: dict[str, str] = field(default_factory=dict)

    def as_dict(self, viewer: str | None = None) -> dict[str, Any]:
        """The entry for a wallet's history: with `viewer`, only that user's postings."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Payout:
    """A cash-out: diamonds moved to `pending`, then `paid` or `returned`."""

    payout_id: str
    user_id: str
    diamonds: int
    status: str             # pending, paid or returned
    requested_at: float
    settled_at: float | None = None
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"payout_id": self.payout_id, "diamonds": self.diamonds, "status": self.status,
                "requested_at": self.requested_at, "settled_at": self.settled_at,
                "replayed": self.replayed}


class Ledger:
    """Gifts, purchases, cash-outs and balances; every write one validating Lua script."""

    def __init__(self, redis: Redis, catalog: Catalog, rules: LedgerRules) -> None:
        self._redis = redis
        self.catalog = catalog
        self.rules = rules

    async def send_gift(self, *, transfer_id: str, sender_id: str, creator_id: str,
                        live_id: str, gift_id: str, count: int,
                        today: dt.date | None = None) -> GiftReceipt:
        """Send `count` of `gift_id` from sender to the creator's running live `live_id`.

        One Lua script checks, in this order: the transfer id (seen with the
        same parameters: the first receipt with replayed=True; with others:
        `conflict`), the live (`not_found` unless live:<creator> holds live_id),
        both accounts exist, the sender is not banned from the creator's lives
        and no block stands either way (`forbidden`), both are `min_age`+ from
        their birthdates (`forbidden`), the creator has `min_followers`
        (`forbidden`), the sender holds the coins (`insufficient_funds`, with
        `need` and `have`). Before it: not to yourself, a known gift, count
        1..max_count (`invalid`/`not_found`). Then it debits the sender, credits
        the creator's diamonds (split_gift at the rules' rate), the platform's
        coins, journals the entry and records the transfer id, atomically.
        """
        raise NotImplementedError

    async def credit_purchase(self, *, payment_id: str, provider: str, user_id: str,
                              coins: int, package_id: str = "") -> Purchase:
        """Credit `coins` bought with a provider's payment, at most once per
        (provider, payment_id); the same id with another user or amount is `conflict`."""
        raise NotImplementedError

    async def balances(self, user_id: str) -> Balances:
        raise NotImplementedError

    async def history(self, user_id: str, *, before: str | None = None,
                      limit: int = 20) -> list[JournalEntry]:
        """The user's journal entries, newest first, older than `before` (an entry id)."""
        raise NotImplementedError

    async def request_cashout(self, *, request_id: str, user_id: str, diamonds: int,
                              today: dt.date | None = None) -> Payout:
        """Move `diamonds` from the user's balance to `pending` for a payout.

        `invalid` under the threshold or over the daily cap, `forbidden` under
        min_age, `insufficient_funds` beyond the balance, `rate_limited`-free:
        the daily cap is a hard `forbidden` with `remaining`. Idempotent by
        (user, request_id)."""
        raise NotImplementedError

    async def settle_cashout(self, *, payout_id: str, paid: bool) -> Payout:
        """Pending -> paid (paid=True) or back to the diamond balance (paid=False).
        Settling again the same way replays; the other way is `conflict`."""
        raise NotImplementedError

    async def payout(self, payout_id: str) -> Payout:
        raise NotImplementedError

    async def payouts(self, user_id: str, *, limit: int = 20) -> list[Payout]:
        raise NotImplementedError

    async def journal(self, *, batch: int = 1000) -> AsyncIterator[JournalEntry]:
        """Every journal entry, oldest first (the audit's input)."""
        raise NotImplementedError
        yield  # pragma: no cover
