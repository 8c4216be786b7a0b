"""The coin and diamond ledger over Redis: every movement is one Lua script.

Accounts are fields of `wallet:<owner>` hashes: a user's `coins`, `diamonds`,
`pending` (diamonds waiting for a payout), `paid` (diamonds paid out) and
`carry` (a creator's coins toward their next diamond: what a gift's coins make
beyond whole diamonds stays theirs, so two 1-coin Roses at 2 coins a diamond
make one; ledger_rules.carry_gift); the platform's own `@platform/coins` (the
commission of every gift, and the remainder of gifts sent before the carry);
`@world/coins` (minus every coin sold) and `@exchange` (coins turned into
diamonds, and minus every diamond minted). Each operation appends one
double-entry journal entry to the `ledger:journal` Stream: postings
(account, amount) whose amounts add up to zero per unit, so
`golive ledger audit` can replay the journal and prove every balance.

Each operation carries an id (a gift's transfer id, a provider's payment id, a
cash-out request id). Its script first looks the id up: a known id with the
same parameters returns the first result and moves nothing; with other
parameters it is a `conflict`. Then it validates everything and only then
writes, because a Redis script is atomic but does not roll back: a runtime
error after a write leaves that write in place.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine import keys, stream_ids
from engine import ledger_lua as lua
from engine.catalog import Catalog, check_count
from engine.errors import DomainError, ErrorCode, conflict, forbidden, invalid, not_found
from engine.ledger_rules import (
    LedgerRules,
    adult_cutoff,
    check_cashout,
    check_coins,
    check_op_id,
    commission,
    gift_refusal,
    standing_refusal,
)
from engine.packed_script import PackedScript
from engine.stream_ids import StreamId

log = logging.getLogger("golive.ledger")

# Journal entry kinds
PURCHASE, GIFT, CASHOUT, PAYOUT, RETURN = "purchase", "gift", "cashout", "payout", "return"
# System owners (user ids are 16 hex characters, so these never clash)
PLATFORM, WORLD, EXCHANGE = "@platform", "@world", "@exchange"
# Wallet fields and their units
# (`carry`: a creator's coins toward their next diamond, ledger_rules.carry_gift)
UNITS = {"coins": "coin", "diamonds": "diamond", "pending": "diamond", "paid": "diamond",
         "carry": "coin"}


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
    creator_carry: int = 0  # the creator's carry right after (coins toward a diamond)

    def as_dict(self) -> dict[str, Any]:
        return {"transfer_id": self.transfer_id, "sender_id": self.sender_id,
                "creator_id": self.creator_id, "live_id": self.live_id,
                "gift_id": self.gift_id, "count": self.count, "coins": self.coins,
                "diamonds": self.diamonds, "sender_coins": self.sender_coins,
                "creator_diamonds": self.creator_diamonds, "replayed": self.replayed,
                "entry_id": self.entry_id, "creator_carry": self.creator_carry}


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


class PurchaseRefused(DomainError):
    """A provider payment refused and recorded under its id (Ledger.credit_purchase with
    a refusal): nothing was credited, the provider should refund it, and every replay
    of the id answers this same refusal (`replayed` True)."""

    REFUSED = "refused "  # how the op record's result starts

    def __init__(self, payment_id: str, payload: dict[str, Any], *, replayed: bool) -> None:
        details = {k: v for k, v in payload.items() if k not in ("code", "message")}
        super().__init__(ErrorCode(payload["code"]), str(payload["message"]), **details)
        self.payment_id = payment_id
        self.replayed = replayed

    @classmethod
    def from_record(cls, payment_id: str, result: str, *, replayed: bool) -> PurchaseRefused:
        return cls(payment_id, json.loads(result[len(cls.REFUSED):]), replayed=replayed)


@dataclass(frozen=True, slots=True)
class Balances:
    user_id: str
    coins: int = 0
    diamonds: int = 0
    pending_diamonds: int = 0
    paid_diamonds: int = 0
    carry_coins: int = 0    # coins toward the next diamond (ledger_rules.carry_gift)

    def as_dict(self) -> dict[str, Any]:
        return {"coins": self.coins, "diamonds": self.diamonds,
                "pending_diamonds": self.pending_diamonds, "paid_diamonds": self.paid_diamonds,
                "carry_coins": self.carry_coins}


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
        """The entry for a wallet's history: with `viewer`, only that user's changes
        ({coins: -5} for a gift sent, {diamonds: 2} for one received, ...)."""
        changes: dict[str, int] = {}
        for p in self.postings:
            if viewer is None or p.owner == viewer:
                key = p.account if viewer is None else p.field
                changes[key] = changes.get(key, 0) + p.amount
        return {"id": self.id, "at": stream_ids.seconds(self.id), "kind": self.kind,
                "op_id": self.op_id, "changes": changes, **self.meta}

    def amount(self, account: str) -> int:
        return sum(p.amount for p in self.postings if p.account == account)


META_FIELDS = ("sender", "creator", "live", "gift", "count", "coins", "diamonds", "platform",
               "carry", "rate", "user", "provider", "package", "payout")


def entry_from_fields(entry_id: str, fields: dict[str, str]) -> JournalEntry:
    """A journal Stream entry as a value (ValueError when it is unreadable)."""
    data = json.loads(fields.get("e", "{}"))
    if not isinstance(data, dict):
        raise ValueError(f"journal entry {entry_id} is not an object")
    postings = tuple(Posting(str(a), int(n)) for a, n in data.pop("postings", []))
    kind, op = str(data.pop("kind", "?")), str(data.pop("op", ""))
    return JournalEntry(entry_id, kind, op, postings,
                        {k: str(v) for k, v in data.items() if k in META_FIELDS})


def account(owner: str, field_name: str) -> str:
    return f"{owner}/{field_name}"


def _fields(kind: str, op_id: str, postings: list[tuple[str, int]],
            **meta: object) -> list[str]:
    """The Stream fields of a journal entry, flat for XADD: one field `e` holding the
    entry as JSON (purchases, cash-outs, settlements; the gift script assembles the
    same shape itself, see ledger_lua.GIFTS)."""
    entry: dict[str, object] = {"kind": kind, "op": op_id,
                                "postings": [[a, n] for a, n in postings]}
    entry.update((name, str(value)) for name, value in meta.items())
    return ["e", json.dumps(entry, separators=(",", ":"))]


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


# Ids that go into ARGV[1] and the entry as they are: no spaces, nothing JSON escapes.
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# The cap's counter outlives its UTC day by a day, then expires.
CASHOUT_DAY_TTL_S = 2 * 24 * 3600


def _day(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%d")


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _payout_from_hash(payout_id: str, h: dict[str, str], replayed: bool = False) -> Payout:
    settled = h.get("settled_at")
    return Payout(payout_id, h["user"], int(h["diamonds"]), h["status"],
                  int(h["requested_at"]) / 1000, int(settled) / 1000 if settled else None,
                  replayed)


class Ledger:
    """Gifts, purchases, cash-outs and balances; every write one validating Lua script."""

    def __init__(self, redis: Redis, catalog: Catalog, rules: LedgerRules) -> None:
        self._redis = redis
        self.catalog = catalog
        self.rules = rules
        # Packed EVALSHA over one pooled connection, not redis-py's Script + pipeline:
        # `bench ledger` pipelined gifts 6.4k -> 16.9k/s, client 73 -> 40 us/gift,
        # Redis 61 -> 44 us/gift (no SCRIPT EXISTS per batch); 21.3k/s with hiredis.
        # Separate ARGV with the entry built here, and RPUSH instead of XADD for the per-user
        # index: Redis 36-46 -> 26-32 us/gift (same machine, back to back, INFO commandstats).
        # Many gifts per script call (GIFTS_PER_CALL, _pack_gifts): Redis 26-36 -> 16-18
        # us/gift, 31k -> 50k gifts/s pipelined (ratio to INCRBY 0.43 -> 0.66).
        self._gifts = PackedScript(redis, lua.GIFTS)
        self._purchase = redis.register_script(lua.PURCHASE)
        self._refuse_purchase = redis.register_script(lua.REFUSE_PURCHASE)
        self._cashout = redis.register_script(lua.CASHOUT)
        self._settle = redis.register_script(lua.SETTLE)
        self._history = redis.register_script(lua.HISTORY)
        self._cutoff: tuple[dt.date | None, str] = (None, "")  # (day, adult cutoff that day)
        # send_gift's gifts of this loop turn, by `today` (None: the real today), waiting
        # for their answers
        self._forming: dict[dt.date | None, list[tuple[_GiftCall, asyncio.Future[Any]]]] = {}

    async def send_gift(self, *, transfer_id: str, sender_id: str, creator_id: str,
                        live_id: str, gift_id: str, count: int,
                        today: dt.date | None = None) -> GiftReceipt:
        """Send `count` of `gift_id` from sender to the creator's running live `live_id`.

        One Lua script checks, in this order: the transfer id (seen with the
        same parameters: the first receipt with replayed=True; with others:
        `conflict`), not to yourself (`invalid`), the count, the live
        (`not_found` unless live:<creator> holds live_id), both accounts exist,
        the sender is not banned from the creator's lives and no block stands
        either way (`forbidden`), both are `min_age`+ from their birthdates
        (`forbidden`), the creator has `min_followers` (`forbidden`), the sender
        holds the coins (`insufficient_funds`, with `need` and `have`). The
        gift and the count are checked here first (`not_found`/`invalid`): the
        price is the catalog's. Then it debits the sender, credits the
        creator's diamonds (split_gift at the rules' rate) and the platform's
        coins, journals the entry and records the transfer id, atomically.
        """
        request = GiftRequest(transfer_id, sender_id, creator_id, live_id, gift_id, count)
        call = self._gift_call(request, today)
        # Group commit: the gifts sent in one loop turn (gift:send from many sockets) go to
        # Redis together, in script calls of up to GIFTS_PER_CALL. The first gift of a
        # turn leads: it yields once, so the others of the turn join, then sends them all.
        # `bench ledger` one-at-a-time phase (200 in flight): 9.2k -> 22.4k gifts/s, p50
        # 21 -> 8 ms; gift:send to the badge in the video p95 106 -> 73 ms.
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        group = self._forming.get(today)
        if group is not None:
            group.append((call, answer))
            return _gift_receipt(call, await answer)
        group = self._forming[today] = [(call, answer)]
        try:
            try:
                await asyncio.sleep(0)
            finally:
                del self._forming[today]
            try:
                replies = await self._send_calls([c for c, _ in group], today)
            except (RedisError, OSError) as exc:  # each gift answers `unavailable`
                log.warning("ledger: a group of gifts failed",
                            extra={"fields": {"gifts": len(group), "error": repr(exc)}})
                replies = [exc] * len(group)
            for (_, waiting), reply in zip(group, replies, strict=True):
                if not waiting.done():
                    waiting.set_result(reply)
        finally:  # the leader was cancelled: the others must not hang
            if not answer.done():
                answer.cancel()  # the leader's own: nobody awaits it now
            for _, waiting in group[1:]:
                if not waiting.done():
                    waiting.set_exception(DomainError(
                        ErrorCode.UNAVAILABLE, "the gift was interrupted; send it again "
                                               "with the same transfer id"))
        return _gift_receipt(call, await answer)

    async def send_gifts(self, requests: Sequence[GiftRequest], *,
                         today: dt.date | None = None) -> list[GiftReceipt | DomainError]:
        """Many gifts in one round trip (GIFTS_PER_CALL to a script call, each checked and
        applied on its own, in order): per request its receipt or the DomainError
        send_gift would raise."""
        calls: list[_GiftCall | DomainError] = []
        for request in requests:
            try:
                calls.append(self._gift_call(request, today))
            except DomainError as exc:
                calls.append(exc)
        ready = [c for c in calls if isinstance(c, _GiftCall)]
        answers = iter(await self._send_calls(ready, today))
        out: list[GiftReceipt | DomainError] = []
        for call in calls:
            if isinstance(call, DomainError):
                out.append(call)
                continue
            try:
                out.append(_gift_receipt(call, next(answers)))
            except DomainError as exc:
                out.append(exc)
        return out

    async def _send_calls(self, calls: list[_GiftCall], today: dt.date | None) -> list[Any]:
        """Each gift's answer from the GIFTS script, GIFTS_PER_CALL to a call, all calls
        in one write."""
        if not calls:
            return []
        chunks = [calls[i:i + GIFTS_PER_CALL] for i in range(0, len(calls), GIFTS_PER_CALL)]
        replies = await self._gifts.run([self._pack_gifts(c, today) for c in chunks])
        return [a for chunk, reply in zip(chunks, replies, strict=True)
                for a in _answers(reply, len(chunk))]

    def _gift_call(self, r: GiftRequest, today: dt.date | None) -> _GiftCall:
        """Validate a gift at the edge and build its script call (keys and args)."""
        rules = self.rules
        check_op_id(r.transfer_id, "transfer_id")
        sender, creator = r.sender_id, r.creator_id
        if sender == creator:
            raise invalid("you cannot send a gift to yourself")
        gift = self.catalog.gift(r.gift_id)
        count = check_count(r.count, rules.max_count)
        if not _SAFE_ID.match(sender) or not _SAFE_ID.match(creator):
            raise not_found("no such user")
        if not _SAFE_ID.match(r.live_id):
            raise not_found("this creator is not live")
        cost = gift.coins * count
        platform = commission(cost, rules.commission_pct)
        live_id, gift_id, tid = r.live_id, gift.id, r.transfer_id
        # The entry as _fields would write it (ids need no JSON escaping: _SAFE_ID,
        # check_op_id, the catalog's ids, and hold no '%'), built here rather than in
        # the script; the script fills each %d with what the creator's carry makes
        # (ledger_lua.GIFTS: diamonds, carry change, exchange coins, -diamonds,
        # diamonds, carry after), as ledger_rules.carry_gift
        entry = (f'{{"kind":"gift","op":"{tid}","postings":[["{sender}/coins",{-cost}],'
                 f'["{creator}/diamonds",%d],["{creator}/carry",%d],'
                 f'["@platform/coins",{platform}],'
                 f'["@exchange/coins",%d],["@exchange/diamonds",%d]],'
                 f'"sender":"{sender}","creator":"{creator}","live":"{live_id}",'
                 f'"gift":"{gift_id}","count":"{count}","coins":"{cost}",'
                 f'"diamonds":"%d","carry":"%d","platform":"{platform}","rate":"{rules.rate}"}}')
        # ARGV per gift (ledger_lua.GIFTS) but its creator's number, which _pack_gifts
        # puts after the sender
        args = [f"{sender}|{creator}|{live_id}|{gift_id}|{count}", sender, live_id,
                str(count), str(cost), str(cost - platform), str(platform), entry]
        return _GiftCall(
            GiftRequest(r.transfer_id, sender, creator, r.live_id, gift.id, count), cost,
            rules, [keys.ledger_op("gift", sender, r.transfer_id), keys.blocks(sender),
                    keys.user(sender), keys.wallet(sender), keys.wallet_entries(sender)],
            args)

    def _pack_gifts(self, calls: Sequence[_GiftCall], today: dt.date | None) -> bytes:
        """One GIFTS script call for `calls` (ledger_lua.GIFTS: keys and arguments)."""
        rules = self.rules
        day = today or _today()
        if day != self._cutoff[0]:
            self._cutoff = (day, adult_cutoff(day, rules.min_age))
        numbers: dict[str, str] = {}
        keys_: list[str] = [keys.wallet(PLATFORM), keys.wallet(EXCHANGE), keys.ledger_journal()]
        args: list[str] = []
        gift_keys: list[str] = []
        gift_args: list[str] = []
        for call in calls:
            creator = call.request.creator_id
            number = numbers.get(creator)
            if number is None:
                number = numbers[creator] = str(len(numbers) + 1)
                keys_ += [keys.live(creator), keys.chat_bans(creator), keys.blocks(creator),
                          keys.user(creator), keys.followers(creator), keys.wallet(creator),
                          keys.wallet_entries(creator)]
                args.append(creator)
            gift_keys += call.keys
            gift_args += call.args[:2]
            gift_args.append(number)
            gift_args += call.args[2:]
        return self._gifts.pack(
            keys_ + gift_keys,
            [self._cutoff[1], str(rules.min_followers), str(rules.max_count), str(len(numbers)),
             str(rules.coins_per_diamond), *args, *gift_args])

    async def credit_purchase(self, *, payment_id: str, provider: str, user_id: str,
                              coins: int, package_id: str = "",
                              refusal: DomainError | None = None) -> Purchase:
        """Credit `coins` bought with a provider's payment, at most once per
        (provider, payment_id); the same id with another user or amount is `conflict`.

        With a `refusal` (the buyer may not buy: engine.payments.check_may_buy_coins)
        nothing is credited: the refusal is recorded under the id and raised as
        PurchaseRefused. Whichever comes first for an id, the credit or the refusal,
        is what every later call with that id answers (a refusal raises again with
        replayed=True, even once the refusal would no longer hold)."""
        check_op_id(payment_id, "payment_id")
        check_coins(coins)
        if not provider.isidentifier():
            raise invalid("provider must be a plain name", field="provider")
        op = keys.ledger_op("purchase", provider, payment_id)
        if refusal is not None:
            reply = await self._refuse_purchase(keys=[op], args=[
                f"{user_id}|{coins}",
                PurchaseRefused.REFUSED + json.dumps(refusal.to_payload(), sort_keys=True)])
            if reply[0] == "conflict":
                raise conflict(f"payment {payment_id} was already seen with other parameters")
            if reply[1].startswith(PurchaseRefused.REFUSED):
                raise PurchaseRefused.from_record(payment_id, reply[1],
                                                  replayed=reply[0] == "replay")
            # credited before the refusal came: answer that credit, as any replay
            entry_id, balance = reply[1].split(" ")
            return Purchase(payment_id, provider, user_id, coins, int(balance), True, entry_id)
        postings = [(account(user_id, "coins"), coins), (account(WORLD, "coins"), -coins)]
        reply = await self._purchase(
            keys=[op, keys.user(user_id),
                  keys.wallet(user_id), keys.wallet(WORLD), keys.ledger_journal(),
                  keys.wallet_entries(user_id)],
            args=[f"{user_id}|{coins}", coins,
                  *_fields(PURCHASE, payment_id, postings, user=user_id, provider=provider,
                           package=package_id, coins=coins)])
        if reply[0] == "conflict":
            raise conflict(f"payment {payment_id} was already credited with other parameters")
        if reply[0] == "no_user":
            raise not_found("no such user")
        if reply[1].startswith(PurchaseRefused.REFUSED):  # refused before: refused again
            raise PurchaseRefused.from_record(payment_id, reply[1], replayed=True)
        entry_id, balance = reply[1].split(" ")
        return Purchase(payment_id, provider, user_id, coins, int(balance),
                        reply[0] == "replay", entry_id)

    async def gift_refusal(self, sender_id: str, creator_id: str, *,
                           today: dt.date | None = None) -> DomainError | None:
        """The refusal every gift from sender to creator would get now (the sender banned
        from the creator's lives, a block either way, the creator too young or short of
        followers, the sender too young), or None: the gift tray is offered only where
        gifts can be received (ledger_rules.standing_refusal, gift_refusal). Its
        `reason` detail is the rule's name: banned, blocking, blocked_by, creator_minor,
        followers, sender_minor."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.user(sender_id), "birthdate")
            pipe.hget(keys.user(creator_id), "birthdate")
            pipe.zcard(keys.followers(creator_id))
            pipe.sismember(keys.chat_bans(creator_id), sender_id)
            pipe.sismember(keys.blocks(sender_id), creator_id)
            pipe.sismember(keys.blocks(creator_id), sender_id)
            (sender_born, creator_born, followers, banned, blocking,
             blocked_by) = await pipe.execute()
        if sender_born is None or creator_born is None:
            return not_found("no such user")
        status = standing_refusal(banned=bool(banned), blocking=bool(blocking),
                                  blocked_by=bool(blocked_by)) or gift_refusal(
            sender_born, creator_born, int(followers), self.rules, today or _today())
        if status is None:
            return None
        error = _gift_error(status, [status], 0, self.rules)
        error.details["reason"] = status
        return error

    async def balances(self, user_id: str) -> Balances:
        h = await self._redis.hgetall(keys.wallet(user_id))
        return Balances(user_id, int(h.get("coins", 0)), int(h.get("diamonds", 0)),
                        int(h.get("pending", 0)), int(h.get("paid", 0)), int(h.get("carry", 0)))

    async def history(self, user_id: str, *, before: str | StreamId | None = None,
                      limit: int = 20) -> list[JournalEntry]:
        """The user's journal entries, newest first, older than `before` (an entry id)."""
        if before is not None:
            before = str(stream_ids.parse(before))  # canonical, as the list holds ids
        limit = max(1, min(limit, 100))
        ids: list[str] = list(reversed(await self._history(
            keys=[keys.wallet_entries(user_id)], args=[before or "", limit])))
        if len(ids) < limit:
            # Older entries may still be indexed in the Stream the list replaced
            top = ids[-1] if ids else before
            end = stream_ids.before_bound(top) if top else "+"
            if end is not None:  # None: nothing is older than 0-0
                ids += [entry_id for entry_id, _ in await self._redis.xrevrange(
                    keys.wallet_log(user_id), max=end, min="-", count=limit - len(ids))]
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xrange(keys.ledger_journal(), min=entry_id, max=entry_id)
            found = await pipe.execute()
        return [entry_from_fields(*rows[0]) for rows in found if rows]

    async def request_cashout(self, *, request_id: str, user_id: str, diamonds: int,
                              today: dt.date | None = None, now: float | None = None) -> Payout:
        """Move `diamonds` from the user's balance to `pending` for a payout.

        `invalid` under the threshold or over the daily cap as a single amount,
        `forbidden` under min_age or when today's requests would pass the daily
        cap (with `remaining`), `insufficient_funds` beyond the balance.
        Idempotent by (user, request_id)."""
        rules = self.rules
        check_op_id(request_id, "request_id")
        check_cashout(diamonds, rules)
        now = time.time() if now is None else now
        payout_id = secrets.token_hex(8)
        postings = [(account(user_id, "diamonds"), -diamonds),
                    (account(user_id, "pending"), diamonds)]
        reply = await self._cashout(
            keys=[keys.ledger_op("cashout", user_id, request_id), keys.user(user_id),
                  keys.wallet(user_id), keys.cashout_day(user_id, _day(now)),
                  keys.payout(payout_id), keys.payouts(user_id), keys.ledger_journal(),
                  keys.wallet_entries(user_id)],
            args=[str(diamonds), diamonds, rules.cashout_daily_cap, payout_id,
                  int(now * 1000), adult_cutoff(today or _today(), rules.min_age), user_id,
                  CASHOUT_DAY_TTL_S,
                  *_fields(CASHOUT, request_id, postings, user=user_id, payout=payout_id,
                           diamonds=diamonds)])
        status = reply[0]
        if status == "conflict":
            raise conflict(f"cash-out {request_id} was already requested with another amount")
        if status == "no_user":
            raise not_found("no such user")
        if status == "minor":
            raise forbidden(f"you must be {rules.min_age} or older to cash out")
        if status == "funds":
            raise DomainError(ErrorCode.INSUFFICIENT_FUNDS,
                              f"you have {reply[1]} diamonds; the cash-out needs {diamonds}",
                              need=diamonds, have=int(reply[1]))
        if status == "cap":
            raise DomainError(ErrorCode.FORBIDDEN,
                              f"the daily cash-out cap is {rules.cashout_daily_cap} diamonds; "
                              f"{reply[1]} left today", remaining=int(reply[1]))
        _, payout_id = reply[1].split(" ")
        return await self.payout(payout_id, replayed=status == "replay")

    async def settle_cashout(self, *, payout_id: str, paid: bool) -> Payout:
        """Pending -> paid (paid=True) or back to the diamond balance (paid=False).
        Settling again the same way replays; the other way is `conflict`."""
        current = await self.payout(payout_id)
        outcome = "paid" if paid else "returned"
        user = current.user_id
        credited = "paid" if paid else "diamonds"
        postings = [(account(user, "pending"), -current.diamonds),
                    (account(user, credited), current.diamonds)]
        reply = await self._settle(
            keys=[keys.payout(payout_id), keys.wallet(user), keys.ledger_journal(),
                  keys.wallet_entries(user)],
            args=[outcome, current.diamonds, int(time.time() * 1000), credited,
                  *_fields(PAYOUT if paid else RETURN, payout_id, postings, user=user,
                           payout=payout_id, diamonds=current.diamonds)])
        status = reply[0]
        if status == "conflict":
            raise conflict(f"payout {payout_id} was already {reply[1]}")
        if status == "not_found":
            raise not_found(f"no payout {payout_id}")
        if status in ("changed", "corrupt"):
            raise DomainError(ErrorCode.UNAVAILABLE,
                              f"payout {payout_id} does not match its balance; run the audit")
        return await self.payout(payout_id, replayed=status == "replay")

    async def payout(self, payout_id: str, *, replayed: bool = False) -> Payout:
        if not isinstance(payout_id, str) or not payout_id.isalnum() or len(payout_id) > 64:
            raise not_found("no such payout")
        h = await self._redis.hgetall(keys.payout(payout_id))
        if not h:
            raise not_found(f"no payout {payout_id}")
        return _payout_from_hash(payout_id, h, replayed)

    async def payouts(self, user_id: str, *, limit: int = 20) -> list[Payout]:
        """The user's cash-outs, newest first."""
        ids = await self._redis.zrevrange(keys.payouts(user_id), 0, max(1, limit) - 1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for payout_id in ids:
                pipe.hgetall(keys.payout(payout_id))
            found = await pipe.execute()
        rows = [(pid, h) for pid, h in zip(ids, found, strict=True) if h]
        # Scored by the request's millisecond: two in one millisecond come back in id
        # order; their journal entries (ms-seq) have the true order
        rows.sort(key=lambda r: (int(r[1]["requested_at"]),
                                 stream_ids.parse(r[1].get("entry") or "0-0")), reverse=True)
        return [_payout_from_hash(pid, h) for pid, h in rows]

    async def journal(self, *, until: str = "+",
                      batch: int = 1000) -> AsyncIterator[JournalEntry]:
        """Every journal entry up to `until` (an id, inclusive), oldest first, in pages."""
        start: str | None = "-"
        while start is not None:
            rows = await self._redis.xrange(keys.ledger_journal(), min=start, max=until,
                                            count=batch)
            for entry_id, fields in rows:
                yield entry_from_fields(entry_id, fields)
            if len(rows) < batch:
                return
            start = stream_ids.after_bound(rows[-1][0])


@dataclass(frozen=True, slots=True)
class GiftRequest:
    """One gift to send (Ledger.send_gifts); the fields of send_gift."""

    transfer_id: str
    sender_id: str
    creator_id: str
    live_id: str
    gift_id: str
    count: int


# Gifts per GIFTS script call. A call holds Redis for all of them (~15 us each): 100 is
# ~1.5 ms, while the per-call costs it shares (~5 us of EVALSHA, the platform's,
# exchange's and creator's balances) are already under 1 us a gift.
GIFTS_PER_CALL = 100


@dataclass(frozen=True, slots=True)
class _GiftCall:
    request: GiftRequest    # validated: the catalog's gift id, a checked count
    cost: int
    rules: LedgerRules
    keys: list[str]         # the gift's own KEYS (ledger_lua.GIFTS)
    args: list[str]         # the gift's ARGV, but its creator's number (_pack_gifts)


def _answers(reply: Any, n: int) -> list[Any]:
    """The per-gift answers of one GIFTS call: its list, or n times the error Redis gave."""
    if isinstance(reply, Exception):
        return [reply] * n
    if not isinstance(reply, list) or len(reply) != n:
        return [DomainError(ErrorCode.UNAVAILABLE, f"ledger: unexpected reply {reply!r:.80}")] * n
    return reply


def _gift_receipt(call: _GiftCall, reply: Any) -> GiftReceipt:
    """The receipt in a gift script's reply ("status ..."), or the DomainError it stands for."""
    if isinstance(reply, DomainError):
        raise reply
    if isinstance(reply, Exception):  # Redis refused the call (e.g. out of memory)
        raise DomainError(ErrorCode.UNAVAILABLE, f"ledger: {reply}")
    if isinstance(reply, bytes):
        reply = reply.decode()
    status, *rest = reply.split(" ")
    if status not in ("ok", "replay"):
        raise _gift_error(status, [status, *rest], call.cost, call.rules)
    # gifts recorded before the carry answer without it
    entry_id, sender_coins, creator_diamonds, coins, got, *carry = rest
    r = call.request
    return GiftReceipt(r.transfer_id, r.sender_id, r.creator_id, r.live_id, r.gift_id, r.count,
                       int(coins), int(got), int(sender_coins), int(creator_diamonds),
                       status == "replay", entry_id, int(carry[0]) if carry else 0)


def _gift_error(status: str, reply: list[str], cost: int, rules: LedgerRules) -> DomainError:
    """The DomainError for a refused gift script."""
    if status == "funds":
        have = int(reply[1])
        return DomainError(ErrorCode.INSUFFICIENT_FUNDS,
                           f"this gift costs {cost} coins and you have {have}",
                           need=cost, have=have)
    messages: dict[str, DomainError] = {
        "conflict": conflict("this transfer id was already used for a different gift"),
        "self": invalid("you cannot send a gift to yourself"),
        "count": invalid(f"count must be a whole number from 1 to {rules.max_count}",
                         field="count"),
        "not_live": not_found("this creator is not live"),
        "no_sender": not_found("no such user"),
        "no_creator": not_found("no such creator"),
        "banned": forbidden("you are banned from this creator's lives"),
        "blocking": forbidden("unblock this account before you send it gifts"),
        "blocked_by": forbidden("you cannot send gifts to this account"),
        "sender_minor": forbidden(f"you must be {rules.min_age} or older to send gifts"),
        "creator_minor": forbidden("this creator cannot receive gifts"),
        "followers": forbidden(f"this creator cannot receive gifts until they have "
                               f"{rules.min_followers} followers"),
    }
    return messages.get(status) or DomainError(ErrorCode.UNAVAILABLE, f"ledger: {status}")
