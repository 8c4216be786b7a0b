"""Payments: the built-in test provider and the signed webhook of a real provider.

Coins are only ever credited through Ledger.credit_purchase, once per
(provider, payment id), and payouts only settled through
Ledger.settle_cashout, once per payout; so a provider that retries a webhook
(they all do until they get a 2xx) or an attacker who replays a captured one
moves nothing the second time.

The webhook is signed the way Stripe signs its own: the header
`Golive-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
(several v1 values are allowed, for rotating the secret). The signature covers
the timestamp, so an old message cannot be re-dated; a timestamp further than
the tolerance from our clock is refused, which bounds how long a captured
message is worth anything at all.

The test provider "pays" at once, for local use and tests; it is refused when
the server runs in production mode, where coins come only from the webhook.

Buying coins needs an age (LedgerRules.min_age, 18): check_may_buy_coins is
asked by the checkout and by the webhook alike. A webhook payment for someone
too young is refused, not credited: the refusal is recorded under the payment
id (so every replay answers it the same way) and answered with HTTP 200 and
`{applied: false, refused: "forbidden", reason: "under_age", refund: true}`.
200, because every provider retries an event until it gets a 2xx and the refusal
is final; `refund: true` tells it to give the money back (docs/protocol.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from engine.accounts import Accounts, check_age, utc_today
from engine.catalog import Catalog
from engine.errors import DomainError, ErrorCode, forbidden, invalid, unauthorized
from engine.ledger import Ledger, Payout, Purchase, PurchaseRefused
from engine.ledger_rules import GIFT_MIN_AGE, check_op_id
from engine.nesting import MAX_DEPTH, json_too_deep
from engine.text import has_control_chars

SIGNATURE_HEADER = "Golive-Signature"
DEFAULT_TOLERANCE_S = 300
MAX_WEBHOOK_BYTES = 64 * 1024
TEST, WEBHOOK = "test", "webhook"
PAYMENT_SUCCEEDED, PAYOUT_PAID, PAYOUT_FAILED = "payment.succeeded", "payout.paid", "payout.failed"


# --- signatures: plain functions ---------------------------------------------------

def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The Golive-Signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str | None, body: bytes, *, now: float,
                     tolerance: float = DEFAULT_TOLERANCE_S) -> int:
    """The header's timestamp when the header signs `body` with `secret` within
    `tolerance` seconds of `now`; `unauthorized` with reason missing, malformed,
    stale or bad_signature otherwise."""
    if not header:
        raise unauthorized(f"send the {SIGNATURE_HEADER} header", "missing")
    stamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise unauthorized("the signature header is malformed", "malformed")
        if name == "t":
            if not value.isdigit() or len(value) > 12 or stamp is not None:
                raise unauthorized("the signature header's timestamp is malformed", "malformed")
            stamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if stamp is None or not candidates:
        raise unauthorized("the signature header needs t= and v1=", "malformed")
    if abs(now - stamp) > tolerance:
        raise unauthorized(f"the signature is older than {tolerance:.0f} s (or from the "
                           "future)", "stale")
    expected = sign(secret, body, stamp).partition(",v1=")[2]
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise unauthorized("the signature does not match", "bad_signature")
    return stamp


# --- who may buy: a plain function -------------------------------------------------

def check_may_buy_coins(birthdate: dt.date, today: dt.date,
                        min_age: int = GIFT_MIN_AGE) -> None:
    """`forbidden` (reason under_age, with min_age) unless the buyer is `min_age` or
    older today: the checkout and the webhook both ask this (Payments.check_buyer)."""
    check_age(birthdate, today, min_age, "buy coins")


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One provider event. payment.succeeded: payment_id, user_id, package_id,
    amount_cents, currency. payout.paid / payout.failed: payout_id."""

    type: str
    payment_id: str = ""
    user_id: str = ""
    package_id: str = ""
    amount_cents: int = 0
    currency: str = ""
    payout_id: str = ""


def parse_event(body: bytes) -> WebhookEvent:
    """The event in a (signed) webhook body; `invalid` naming the bad field."""
    if json_too_deep(body):  # json.loads recurses per level (RecursionError)
        raise invalid(f"the webhook body nests deeper than {MAX_DEPTH} levels")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise invalid("the webhook body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise invalid("the webhook body must be an object with a type", field="type")
    kind = data["type"]
    obj = data.get("data")
    if not isinstance(obj, dict):
        raise invalid("the webhook body needs a data object", field="data")

    def text(name: str) -> str:
        value = obj.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= 64:
            raise invalid(f"data.{name} must be a string of 1-64 characters", field=name)
        # json.loads reads "\ud800" as a lone surrogate, which no Redis key can hold: a
        # user_id of one raised UnicodeEncodeError at the account lookup, a 500 the
        # provider would retry for ever (found by bench/fuzz.py's signed webhook target)
        if has_control_chars(value):
            raise invalid(f"data.{name} must be printable text", field=name)
        return value

    if kind == PAYMENT_SUCCEEDED:
        amount = obj.get("amount_cents")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
            raise invalid("data.amount_cents must be a positive whole number",
                          field="amount_cents")
        return WebhookEvent(kind, payment_id=check_op_id(text("payment_id"), "payment_id"),
                            user_id=text("user_id"), package_id=text("package_id"),
                            amount_cents=amount, currency=text("currency").upper())
    if kind in (PAYOUT_PAID, PAYOUT_FAILED):
        return WebhookEvent(kind, payout_id=text("payout_id"))
    return WebhookEvent(kind)


# --- the service ----------------------------------------------------------------------

class Payments:
    """Checkout (test provider), the webhook, and starting payouts."""

    def __init__(self, ledger: Ledger, catalog: Catalog, accounts: Accounts, *,
                 production: bool, webhook_secret: str | None,
                 tolerance: float = DEFAULT_TOLERANCE_S) -> None:
        self.ledger = ledger
        self.catalog = catalog
        self.accounts = accounts
        self.production = production
        self._secret = webhook_secret
        self.tolerance = tolerance

    @property
    def test_provider(self) -> bool:
        """The test provider runs everywhere but in production."""
        return not self.production

    async def check_buyer(self, user_id: str, *, today: dt.date | None = None) -> None:
        """check_may_buy_coins for this user at the ledger's min_age; `not_found` for
        no such user."""
        account = await self.accounts.get(user_id)
        check_may_buy_coins(account.birthdate, today or utc_today(), self.ledger.rules.min_age)

    async def test_checkout(self, *, user_id: str, package_id: str,
                            checkout_id: str | None = None) -> Purchase:
        """Buy a package with the test provider: paid at once. `checkout_id` makes a
        retried request credit once (a fresh one is made when absent). `forbidden`
        for a buyer too young (check_buyer) and in production."""
        await self.check_buyer(user_id)
        if not self.test_provider:
            raise forbidden("the test payment provider is off in production")
        package = self.catalog.package(package_id)
        payment_id = checkout_id or "test_" + secrets.token_hex(12)
        return await self.ledger.credit_purchase(payment_id=payment_id, provider=TEST,
                                                 user_id=user_id, coins=package.coins,
                                                 package_id=package.id)

    async def start_payout(self, payout: Payout) -> Payout:
        """Hand a pending payout to the provider: the test provider pays it at once; a
        real one settles it later through the webhook (payout.paid / payout.failed)."""
        if self.test_provider and payout.status == "pending":
            return await self.ledger.settle_cashout(payout_id=payout.payout_id, paid=True)
        return payout

    async def webhook(self, body: bytes, signature: str | None, *,
                      now: float | None = None) -> dict[str, Any]:
        """Apply one signed provider event; the answer's body for the provider.

        A payment.succeeded whose buyer may not buy coins (check_buyer) credits
        nothing and answers {applied: false, refused, reason, message, refund:
        true, payment_id, replayed}, the same for every replay of the payment id; so does
        one for a user id that names no account (refused: not_found)."""
        if not self._secret:
            raise DomainError(ErrorCode.UNAVAILABLE, "the payment webhook is not configured")
        if len(body) > MAX_WEBHOOK_BYTES:
            raise invalid("the webhook body is too large")
        now = time.time() if now is None else now
        verify_signature(self._secret, signature, body, now=now, tolerance=self.tolerance)
        event = parse_event(body)
        if event.type == PAYMENT_SUCCEEDED:
            package = self.catalog.package(event.package_id)
            if (event.amount_cents, event.currency) != (package.price_cents, package.currency):
                raise invalid(f"package {package.id} costs {package.price_cents} "
                              f"{package.currency}, the payment was {event.amount_cents} "
                              f"{event.currency}", field="amount_cents")
            refusal: DomainError | None = None
            try:
                await self.check_buyer(event.user_id,
                                       today=dt.datetime.fromtimestamp(now, dt.UTC).date())
            except DomainError as exc:
                # too young, or no such user (a provider's metadata gone wrong): final,
                # so the provider is answered 200 and told to refund; anything else
                # (Redis down) is not final and raises, so the provider retries
                if exc.code not in (ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND):
                    raise
                refusal = exc
            try:
                purchase = await self.ledger.credit_purchase(
                    payment_id=event.payment_id, provider=WEBHOOK, user_id=event.user_id,
                    coins=package.coins, package_id=package.id, refusal=refusal)
            except PurchaseRefused as refused:
                return refused_answer(refused)
            return {"applied": not purchase.replayed, "purchase": purchase.as_dict()}
        if event.type in (PAYOUT_PAID, PAYOUT_FAILED):
            payout = await self.ledger.settle_cashout(payout_id=event.payout_id,
                                                      paid=event.type == PAYOUT_PAID)
            return {"applied": not payout.replayed, "payout": payout.as_dict()}
        return {"applied": False, "ignored": event.type[:64]}


def refused_answer(refused: PurchaseRefused) -> dict[str, Any]:
    """The webhook's answer to a refused payment: nothing credited, refund it."""
    return {"applied": False, "refused": str(refused.code), **refused.details,
            "message": refused.message, "refund": True, "payment_id": refused.payment_id,
            "replayed": refused.replayed}
