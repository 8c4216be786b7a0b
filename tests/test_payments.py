"""Buying coins and cashing out over HTTP: the test provider, the signed webhook (good,
bad, stale, replayed, malformed) and the wallet routes, on the full in-process app over
a real Redis. Every refusal is checked to have written nothing."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from engine import keys
from engine.errors import DomainError, ErrorCode
from engine.ledger import PurchaseRefused
from engine.payments import SIGNATURE_HEADER, sign, verify_signature
from signaling.app import create_app
from signaling.appkeys import SERVICES
from signaling.config import Settings
from tests.support.peers import User, register
from tests.support.state import snapshot

SECRET = "whsec_" + "k" * 32


def auth(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def event(payment_id: str, user_id: str, package_id: str = "coins_350",
          amount: int = 499, currency: str = "USD") -> bytes:
    return json.dumps({"type": "payment.succeeded", "data": {
        "payment_id": payment_id, "user_id": user_id, "package_id": package_id,
        "amount_cents": amount, "currency": currency}}).encode()


async def post_webhook(client: Any, body: bytes, *, secret: str = SECRET,
                       at: float | None = None, header: str | None = "sign") -> Any:
    headers = {"Content-Type": "application/json"}
    if header == "sign":
        headers[SIGNATURE_HEADER] = sign(secret, body, int(time.time() if at is None else at))
    elif header is not None:
        headers[SIGNATURE_HEADER] = header
    resp = await client.post("/api/payments/webhook", data=body, headers=headers)
    return resp.status, await resp.json()


@pytest.fixture
async def prod(aiohttp_client: Any, settings: Settings, redis: Redis) -> Any:
    """The app in production mode with the webhook configured."""
    cfg = dataclasses.replace(settings, production=True, payment_webhook_secret=SECRET,
                              payment_webhook_tolerance=300, cashout_min=100)
    return await aiohttp_client(create_app(cfg))


@pytest.fixture
async def dev(aiohttp_client: Any, settings: Settings, redis: Redis) -> Any:
    """The app as `golive serve` runs locally: test provider on, webhook configured too."""
    cfg = dataclasses.replace(settings, payment_webhook_secret=SECRET, cashout_min=100)
    return await aiohttp_client(create_app(cfg))


async def balances(client: Any, user: User) -> dict[str, int]:
    body = await (await client.get("/api/wallet", headers=auth(user))).json()
    assert body["ok"], body
    return body["balances"]


# --- signatures: the rule itself ------------------------------------------------

def test_signature_rule() -> None:
    body = b'{"a":1}'
    now = 1_800_000_000
    good = sign(SECRET, body, now)
    assert verify_signature(SECRET, good, body, now=now + 299, tolerance=300) == now
    # a rotated secret: either v1 may match
    rotated = f"{good},v1={'0' * 64}"
    assert verify_signature(SECRET, rotated, body, now=now, tolerance=300) == now
    cases = [
        (None, body, now, "missing"), ("", body, now, "missing"),
        ("garbage", body, now, "malformed"), ("t=abc,v1=00", body, now, "malformed"),
        (f"v1={good.split('v1=')[1]}", body, now, "malformed"),
        (good, body, now + 301, "stale"), (good, body, now - 301, "stale"),
        (good, b'{"a":2}', now, "bad_signature"),
        (sign("other-secret", body, now), body, now, "bad_signature"),
        (good.replace(f"t={now}", f"t={now + 1}"), body, now, "bad_signature"),  # re-dated
    ]
    for header, signed_body, at, reason in cases:
        with pytest.raises(DomainError) as err:
            verify_signature(SECRET, header, signed_body, now=at, tolerance=300)
        assert err.value.code is ErrorCode.UNAUTHORIZED
        assert err.value.details["reason"] == reason, (header, reason)


# --- the test provider ------------------------------------------------------------------

async def test_catalog_and_packages_come_from_the_server(dev: Any) -> None:
    gifts = await (await dev.get("/api/gifts")).json()
    assert gifts["ok"] and gifts["gifts"][0] == {
        "id": "rose", "name": "Rose", "coins": 1, "icon": "/static/gifts/rose.svg",
        "style": "small", "color": "#ff1e50", "glyph": "R"}
    assert gifts["rate"] == {"coins_per_diamond": 2, "commission_pct": 0}
    icon = await dev.get(gifts["gifts"][0]["icon"])
    assert icon.status == 200 and b"<svg" in await icon.read()
    packages = await (await dev.get("/api/coins/packages")).json()
    assert packages["test_provider"] is True
    assert packages["packages"][0] == {"id": "coins_70", "coins": 70, "price_cents": 99,
                                       "currency": "USD"}


async def test_test_checkout_pays_at_once_ignores_client_prices_and_retries_once(
        dev: Any, redis_url: str) -> None:
    ann = await register(dev, "ann")
    resp = await dev.post("/api/coins/checkout", headers=auth(ann), json={
        "package_id": "coins_70", "checkout_id": "chk-00000001", "price_cents": 1,
        "coins": 1_000_000})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["purchase"]["coins"] == 70 and body["balances"]["coins"] == 70
    again = await (await dev.post("/api/coins/checkout", headers=auth(ann), json={
        "package_id": "coins_70", "checkout_id": "chk-00000001"})).json()
    assert again["purchase"]["replayed"] is True and again["balances"]["coins"] == 70
    before = await snapshot(redis_url)
    for payload, status, code in (
            ({"package_id": "coins_1"}, 404, "not_found"),
            ({"package_id": "../etc"}, 400, "invalid"),
            ({}, 400, "invalid"),
            ({"package_id": "coins_70", "checkout_id": "x"}, 400, "invalid"),
            ({"package_id": "coins_70", "extra": 1}, 400, "invalid"),
            ({"package_id": "coins_350", "checkout_id": "chk-00000001"}, 409, "conflict")):
        resp = await dev.post("/api/coins/checkout", headers=auth(ann), json=payload)
        body = await resp.json()
        assert (resp.status, body["error"]["code"]) == (status, code), (payload, body)
    resp = await dev.post("/api/coins/checkout", json={"package_id": "coins_70"})
    assert resp.status == 401
    kid = await register(dev, "kid", birthdate=f"{time.gmtime().tm_year - 15}-01-01")
    before = await snapshot(redis_url)
    resp = await dev.post("/api/coins/checkout", headers=auth(kid),
                          json={"package_id": "coins_70"})
    assert resp.status == 403 and "18" in (await resp.json())["error"]["message"]
    assert await snapshot(redis_url) == before


async def test_production_refuses_the_test_provider(prod: Any, redis_url: str) -> None:
    ann = await register(prod, "ann")
    packages = await (await prod.get("/api/coins/packages")).json()
    assert packages["test_provider"] is False
    before = await snapshot(redis_url)
    resp = await prod.post("/api/coins/checkout", headers=auth(ann),
                           json={"package_id": "coins_70"})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
    assert await snapshot(redis_url) == before


# --- the webhook ------------------------------------------------------------------------

async def test_webhook_good_replayed_bad_stale_and_malformed(prod: Any, redis_url: str) -> None:
    ann = await register(prod, "ann")
    body = event("pi_00000001", ann.id)
    status, reply = await post_webhook(prod, body)
    assert status == 200 and reply["applied"] is True, reply
    assert (await balances(prod, ann))["coins"] == 350
    # the provider retries, an attacker replays: both credit nothing
    status, reply = await post_webhook(prod, body)
    assert status == 200 and reply["applied"] is False and reply["purchase"]["replayed"]
    before = await snapshot(redis_url)
    old = time.time() - 301
    refusals = [
        (body, {"header": None}, 401, "missing"),
        (body, {"header": "t=1,v1=zz"}, 401, "stale"),
        (body, {"header": "nonsense"}, 401, "malformed"),
        (event("pi_00000002", ann.id), {"secret": "not-our-secret"}, 401, "bad_signature"),
        (event("pi_00000003", ann.id), {"at": old}, 401, "stale"),
        (event("pi_00000004", ann.id), {"at": time.time() + 400}, 401, "stale"),
        (b"{not json", {}, 400, None),
        (b"[]", {}, 400, None),
        (json.dumps({"type": "payment.succeeded"}).encode(), {}, 400, None),
        (event("pi_00000005", ann.id, amount=1), {}, 400, None),        # underpaid
        (event("pi_00000006", ann.id, currency="EUR"), {}, 400, None),
        (event("pi_00000007", ann.id, package_id="coins_0"), {}, 404, None),
        # no such user: a final refusal answered 200 for a refund (its own test below)
        (event("p", ann.id), {}, 400, None),                             # bad payment id
        (event("pi_00000001", ann.id, package_id="coins_700", amount=999), {}, 409, None),
        (b"x" * 70_000, {}, 400, None),
    ]
    for raw, how, status_want, reason in refusals:
        status, reply = await post_webhook(prod, raw, **how)
        assert status == status_want, (raw[:60], how, reply)
        if reason:
            assert reply["error"]["reason"] == reason, reply
    # a body altered after signing: the signature no longer matches
    signed = sign(SECRET, event("pi_00000009", ann.id), int(time.time()))
    status, reply = await post_webhook(prod, event("pi_00000009", ann.id, "coins_52500",
                                                   74999), header=signed)
    assert status == 401 and reply["error"]["reason"] == "bad_signature"
    assert await snapshot(redis_url) == before
    # an event type we do not handle is acknowledged (so the provider stops retrying)
    status, reply = await post_webhook(prod, json.dumps({"type": "charge.dispute",
                                                         "data": {}}).encode())
    assert status == 200 and reply["applied"] is False and reply["ignored"] == "charge.dispute"
    assert await snapshot(redis_url) == before


async def test_webhook_is_off_without_a_secret(client: Any, redis_url: str) -> None:
    before = await snapshot(redis_url)
    status, reply = await post_webhook(client, event("pi_00000001", "ffffffffffffffff"))
    assert status == 503 and reply["error"]["code"] == "unavailable"
    assert await snapshot(redis_url) == before


# --- cash-out and the wallet ------------------------------------------------------------

async def _earn(app_client: Any, creator: User, fan: User) -> None:
    """The fan buys 52,500 coins (webhook) and sends a Lion (29,999) to the creator's live."""
    services = app_client.server.app[SERVICES]
    status, reply = await post_webhook(app_client, event("pi_earn_0001", fan.id,
                                                         "coins_52500", 74_999))
    assert status == 200, reply
    live = await services.lives.start(creator.id, "earning")
    await services.ledger.send_gift(transfer_id="earn-gift-1", sender_id=fan.id,
                                    creator_id=creator.id, live_id=live.live_id,
                                    gift_id="lion", count=1)


async def test_cash_out_through_the_webhook_provider_pays_or_returns(prod: Any) -> None:
    cat, fan = await register(prod, "cat"), await register(prod, "fan")
    await _earn(prod, cat, fan)
    assert (await balances(prod, cat))["diamonds"] == 14_999
    resp = await prod.post("/api/wallet/cashout", headers=auth(cat),
                           json={"request_id": "cash-0000001", "diamonds": 4_000})
    body = await resp.json()
    assert resp.status == 200 and body["payout"]["status"] == "pending", body
    assert body["balances"] == {"coins": 0, "diamonds": 10_999, "pending_diamonds": 4_000,
                                "paid_diamonds": 0, "carry_coins": 1}
    first = body["payout"]["payout_id"]
    resp = await prod.post("/api/wallet/cashout", headers=auth(cat),
                           json={"request_id": "cash-0000002", "diamonds": 1_000})
    second = (await resp.json())["payout"]["payout_id"]
    paid = json.dumps({"type": "payout.paid", "data": {"payout_id": first}}).encode()
    failed = json.dumps({"type": "payout.failed", "data": {"payout_id": second}}).encode()
    assert (await post_webhook(prod, paid))[1]["payout"]["status"] == "paid"
    assert (await post_webhook(prod, paid))[1]["applied"] is False      # replay
    assert (await post_webhook(prod, failed))[1]["payout"]["status"] == "returned"
    status, reply = await post_webhook(prod, json.dumps(
        {"type": "payout.failed", "data": {"payout_id": first}}).encode())
    assert status == 409, reply
    status, reply = await post_webhook(prod, json.dumps(
        {"type": "payout.paid", "data": {"payout_id": "0000000000000000"}}).encode())
    assert status == 404, reply
    assert await balances(prod, cat) == {"coins": 0, "diamonds": 10_999,
                                         "pending_diamonds": 0, "paid_diamonds": 4_000,
                                         "carry_coins": 1}
    wallet = await (await prod.get("/api/wallet", headers=auth(cat))).json()
    assert [p["status"] for p in wallet["payouts"]] == ["returned", "paid"]
    assert wallet["cashout"] == {"min": 100, "daily_cap": 200_000}


async def test_wallet_history_and_cash_out_with_the_test_provider(dev: Any) -> None:
    cat, fan = await register(dev, "cat"), await register(dev, "fan")
    await _earn(dev, cat, fan)
    for payload, status, code in (
            ({"request_id": "cash-0000001", "diamonds": 99}, 400, "invalid"),        # threshold
            ({"request_id": "cash-0000001", "diamonds": 20_000}, 402, "insufficient_funds"),
            ({"request_id": "cash-0000001", "diamonds": "100"}, 400, "invalid"),
            ({"request_id": "cash-0000001", "diamonds": 100.5}, 400, "invalid"),
            ({"request_id": "short", "diamonds": 100}, 400, "invalid")):
        resp = await dev.post("/api/wallet/cashout", headers=auth(cat), json=payload)
        assert (resp.status, (await resp.json())["error"]["code"]) == (status, code), payload
    resp = await dev.post("/api/wallet/cashout", headers=auth(cat),
                          json={"request_id": "cash-0000001", "diamonds": 999})
    body = await resp.json()
    assert body["payout"]["status"] == "paid"        # the test provider pays at once
    assert body["balances"]["paid_diamonds"] == 999
    history = await (await dev.get("/api/wallet/history?limit=2", headers=auth(cat))).json()
    assert [i["kind"] for i in history["items"]] == ["payout", "cashout"] and history["more"]
    rest = await (await dev.get(f"/api/wallet/history?before={history['items'][-1]['id']}",
                                headers=auth(cat))).json()
    [gift] = rest["items"]
    assert gift["direction"] == "received" and gift["changes"] == {"diamonds": 14_999,
                                                                        "carry": 1}
    assert gift["gift"]["name"] == "Lion" and gift["with"]["username"] == "fan"
    sent = await (await dev.get("/api/wallet/history", headers=auth(fan))).json()
    assert [i["kind"] for i in sent["items"]] == ["gift", "purchase"]
    assert sent["items"][0]["changes"] == {"coins": -29_999}
    assert sent["items"][0]["with"]["username"] == "cat"
    for query in ("limit=0", "limit=500", "limit=x", "before=nonsense"):
        resp = await dev.get(f"/api/wallet/history?{query}", headers=auth(cat))
        assert resp.status == 400, query
    assert (await dev.get("/api/wallet")).status == 401


# --- a buyer too young ------------------------------------------------------------------

def years_old(years: int) -> str:
    """A birthdate that makes someone `years` old today, and for the rest of the year."""
    return f"{time.gmtime().tm_year - years}-01-01"


async def test_webhook_refuses_a_minor_credits_nothing_and_answers_replays_the_same(
        prod: Any, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    kid = await register(prod, "kid", birthdate=years_old(15))
    body = event("pi_minor_0001", kid.id, "coins_7000", 9_999)
    before = await snapshot(redis_url)
    caplog.set_level(logging.INFO, logger="golive")
    status, reply = await post_webhook(prod, body)
    refused = {"ok": True, "applied": False, "refused": "forbidden", "reason": "under_age",
               "min_age": 18, "message": "you must be 18 or older to buy coins",
               "refund": True, "payment_id": "pi_minor_0001", "replayed": False}
    assert (status, reply) == (200, refused)
    assert await balances(prod, kid) == {"coins": 0, "diamonds": 0, "pending_diamonds": 0,
                                         "paid_diamonds": 0, "carry_coins": 0}
    # nothing moved: the only new key is the refusal's record under the payment id
    after = await snapshot(redis_url)
    refusal_record = keys.ledger_op("purchase", "webhook", "pi_minor_0001").encode()
    assert set(after) - set(before) == {refusal_record}
    assert {k: v for k, v in after.items() if k in before} == before
    [logged] = [r for r in caplog.records if r.getMessage() == "payment refused"]
    assert logged.levelno == logging.WARNING
    # the provider retries, an attacker replays: the same answer, nothing moves
    recorded = await snapshot(redis_url)
    for _ in range(2):
        assert await post_webhook(prod, body) == (200, {**refused, "replayed": True})
    # the same payment id for another package or user is a conflict, as for a credit
    status, reply = await post_webhook(prod, event("pi_minor_0001", kid.id))
    assert status == 409 and reply["error"]["code"] == "conflict", reply
    assert await snapshot(redis_url) == recorded
    # an adult's payment still credits
    ann = await register(prod, "ann")
    status, reply = await post_webhook(prod, event("pi_adult_0001", ann.id, "coins_7000",
                                                   9_999))
    assert status == 200 and reply["applied"] is True, reply
    assert (await balances(prod, ann))["coins"] == 7_000


async def test_webhook_for_no_such_user_is_refused_for_a_refund_not_retried(
        prod: Any, redis_url: str) -> None:
    """A provider retries every non-2xx answer for days: a payment for a user id that
    names no account can never apply, so it is answered 200 with refund: true and
    recorded like a minor's, and every replay answers the same."""
    body = event("pi_nobody_0001", "0" * 32, "coins_7000", 9_999)
    before = await snapshot(redis_url)
    status, reply = await post_webhook(prod, body)
    assert status == 200, reply
    assert reply["applied"] is False and reply["refused"] == "not_found", reply
    assert reply["refund"] is True and reply["replayed"] is False, reply
    after = await snapshot(redis_url)
    refusal_record = keys.ledger_op("purchase", "webhook", "pi_nobody_0001").encode()
    assert set(after) - set(before) == {refusal_record}
    assert await post_webhook(prod, body) == (200, {**reply, "replayed": True})


async def test_a_recorded_refusal_or_credit_is_what_its_payment_id_answers(
        prod: Any) -> None:
    """Whichever came first for a payment id stands: a refusal replayed once the buyer
    has turned 18 is still refused, a credit replayed once a refusal would hold is
    still the credit (engine.ledger.credit_purchase)."""
    ledger = prod.server.app[SERVICES].ledger
    kid, ann = await register(prod, "kid", birthdate=years_old(15)), await register(prod, "ann")
    too_young = DomainError(ErrorCode.FORBIDDEN, "you must be 18 or older to buy coins",
                            reason="under_age", min_age=18)
    args = {"payment_id": "pi_refused_01", "provider": "webhook", "user_id": kid.id,
            "coins": 7_000, "package_id": "coins_7000"}
    with pytest.raises(PurchaseRefused) as first:
        await ledger.credit_purchase(**args, refusal=too_young)
    assert not first.value.replayed and first.value.to_payload() == too_young.to_payload()
    with pytest.raises(PurchaseRefused) as later:  # no refusal now: the record answers
        await ledger.credit_purchase(**args)
    assert later.value.replayed and later.value.to_payload() == too_young.to_payload()
    assert (await ledger.balances(kid.id)).coins == 0
    credited = await ledger.credit_purchase(**{**args, "payment_id": "pi_credit_01",
                                               "user_id": ann.id})
    again = await ledger.credit_purchase(**{**args, "payment_id": "pi_credit_01",
                                            "user_id": ann.id}, refusal=too_young)
    assert again == dataclasses.replace(credited, replayed=True)
    assert (await ledger.balances(ann.id)).coins == 7_000
