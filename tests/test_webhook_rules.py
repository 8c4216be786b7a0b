"""Webhook rules (engine/webhook_rules.py) and the delivery queue over a real Redis
(engine/webhooks.py): leases, retries, idempotency, bounds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis

from engine.errors import DomainError, ErrorCode
from engine.payments import SIGNATURE_HEADER, verify_signature
from engine.webhook_rules import (
    ATTEMPTS_MAX,
    BACKOFF_S,
    EVENT_ID_HEADER,
    EVENTS,
    FOLLOW,
    GIFT_RECEIVED,
    LIVE_STARTED,
    check_address,
    check_events,
    check_url,
    delivery_headers,
    event_body,
    event_id,
    parse_operator_endpoints,
    retry_delay,
)
from engine.webhooks import (
    DEAD,
    DELIVERED,
    HISTORY_MAX,
    OPERATOR,
    RETRYING,
    Webhooks,
)

USER = "0123456789abcdef"


# --- rules ------------------------------------------------------------------------

@pytest.mark.parametrize("url, reason", [
    ("http://example.com/hook", "not_https"),
    ("ftp://example.com/hook", "not_https"),
    ("https://user:pw@example.com/hook", "credentials"),
    ("https:///hook", "malformed"),
    ("https://example.com/ hook", "malformed"),
    ("https://example.com:99999/hook", "malformed"),
    ("https://" + "a" * 2100 + ".com/", "length"),
    ("https://127.0.0.1/hook", "private_address"),
    ("https://10.1.2.3/hook", "private_address"),
    ("https://169.254.169.254/latest/meta-data", "private_address"),
    ("https://[::1]/hook", "private_address"),
    ("https://[::ffff:127.0.0.1]/hook", "private_address"),
    ("https://[fe80::1]/hook", "private_address"),
    ("https://0.0.0.0/hook", "private_address"),
])
def test_a_bad_url_is_refused_with_its_reason(url: str, reason: str) -> None:
    with pytest.raises(DomainError) as refused:
        check_url(url)
    assert refused.value.code is ErrorCode.INVALID
    assert refused.value.details["reason"] == reason
    assert refused.value.details["field"] == "url"


def test_a_public_https_url_passes_and_private_ones_only_when_allowed() -> None:
    target = check_url("https://hooks.example.com:8443/golive?x=1")
    assert (target.host, target.port) == ("hooks.example.com", 8443)
    assert check_url("https://93.184.215.14/hook").port == 443
    assert check_url("https://127.0.0.1:9/hook", allow_private=True).host == "127.0.0.1"
    check_address("93.184.215.14")
    check_address("2606:4700::1111")
    for private in ("127.0.0.1", "192.168.1.1", "172.16.0.1", "100.64.0.1", "::1",
                    "fd00::1", "224.0.0.1"):
        with pytest.raises(DomainError):
            check_address(private)
        check_address(private, allow_private=True)


def test_the_backoff_grows_with_jitter_and_ends_dead() -> None:
    assert retry_delay(1, 0.5) == BACKOFF_S[0]
    assert retry_delay(2, 0.0) == pytest.approx(BACKOFF_S[1] * 0.8)
    assert retry_delay(3, 0.999) == pytest.approx(BACKOFF_S[2] * 1.2, rel=1e-3)
    delays = [retry_delay(n, 0.5) for n in range(1, ATTEMPTS_MAX)]
    assert delays == sorted(delays) and delays[-1] == BACKOFF_S[-1]
    assert retry_delay(ATTEMPTS_MAX, 0.5) is None
    assert retry_delay(3, 0.5, attempts_max=3) is None


def test_events_filter_ids_and_operator_config() -> None:
    assert check_events(None) == EVENTS
    assert check_events([FOLLOW, LIVE_STARTED, FOLLOW]) == (LIVE_STARTED, FOLLOW)
    with pytest.raises(DomainError):
        check_events(["live.paused"])
    assert event_id(GIFT_RECEIVED, "t-1") == event_id(GIFT_RECEIVED, "t-1")
    assert event_id(GIFT_RECEIVED, "t-1") != event_id(FOLLOW, "t-1")
    assert event_id(FOLLOW) != event_id(FOLLOW)
    ops = parse_operator_endpoints("https://ops.internal/a|" + "s" * 16
                                   + ", https://10.0.0.5/b|" + "t" * 20)
    assert [(o.id, o.url) for o in ops] == [("operator-0", "https://ops.internal/a"),
                                            ("operator-1", "https://10.0.0.5/b")]
    assert parse_operator_endpoints("") == ()
    for bad in ("https://x.example/a", "https://x.example/a|short", "http://x.example/a|"
                + "s" * 16):
        with pytest.raises(ValueError):
            parse_operator_endpoints(bad)


def test_a_delivery_is_signed_as_the_payment_webhook_verifies() -> None:
    body = event_body(FOLLOW, "evt_1", 1_700_000_000.5, USER, {"user": {"id": "x"}})
    headers = delivery_headers("whsec_abc", body, eid="evt_1", kind=FOLLOW, attempt=2,
                               timestamp=1_700_000_001)
    assert verify_signature("whsec_abc", headers[SIGNATURE_HEADER], body,
                            now=1_700_000_010) == 1_700_000_001
    with pytest.raises(DomainError):
        verify_signature("whsec_other", headers[SIGNATURE_HEADER], body, now=1_700_000_010)
    assert headers[EVENT_ID_HEADER] == "evt_1"
    assert json.loads(body) == {"id": "evt_1", "type": FOLLOW, "created": 1_700_000_000.5,
                                "user_id": USER, "data": {"user": {"id": "x"}}}


# --- the queue over Redis -----------------------------------------------------------------

def hooks(redis: Redis, **kw: Any) -> Webhooks:
    return Webhooks(redis, allow_private=True, **kw)


async def test_an_event_is_claimed_once_and_a_lost_lease_is_claimed_again(redis: Redis) -> None:
    webhooks = hooks(redis)
    endpoint = await webhooks.create(USER, "https://127.0.0.1:9/hook", [FOLLOW])
    assert endpoint.secret.startswith("whsec_") and endpoint.secret not in json.dumps(
        endpoint.view())
    assert await webhooks.emit(LIVE_STARTED, USER, {}) is None  # not subscribed
    eid = await webhooks.emit(FOLLOW, USER, {"user": {"id": "f"}}, now=1000.0)
    assert eid is not None
    first = await webhooks.claim(10, lease_s=10, now=1000.0)
    assert [(d.event_id, d.attempt) for d in first] == [(eid, 1)]
    assert await webhooks.claim(10, lease_s=10, now=1009.0) == []  # leased
    # the claimer died: the lease runs out and another node gets it, same event id
    again = await webhooks.claim(10, lease_s=10, now=1010.5)
    assert [(d.id, d.event_id, d.attempt) for d in again] == [(first[0].id, eid, 2)]
    # the first claimer's late answer changes nothing
    assert await webhooks.finish(first[0], ok=True, now=1011.0) == "lost"
    assert await webhooks.finish(again[0], ok=False, code=503, error="HTTP 503",
                                 now=1011.0, rand=0.5) == RETRYING
    assert await webhooks.claim(10, lease_s=10, now=1011.5) == []  # 5 s backoff
    third = await webhooks.claim(10, lease_s=10, now=1016.1)
    assert third[0].attempt == 3
    assert await webhooks.finish(third[0], ok=True, code=204, latency_ms=12.5) == DELIVERED
    assert await webhooks.pending() == 0
    [row] = await webhooks.deliveries(USER, endpoint.id)
    assert row | {"created_at": 0, "updated_at": 0} == {
        "id": first[0].id, "event_id": eid, "type": FOLLOW, "status": DELIVERED,
        "attempts": 3, "created_at": 0, "updated_at": 0, "next_attempt_at": None,
        "response_status": 204, "latency_ms": 12.5, "error": None}


async def test_a_delivery_dies_after_its_attempts_and_a_deleted_endpoint_ends_it(
        redis: Redis) -> None:
    webhooks = hooks(redis, attempts_max=2)
    endpoint = await webhooks.create(USER, "https://127.0.0.1:9/hook")
    await webhooks.emit(FOLLOW, USER, {}, now=0.0)
    [d] = await webhooks.claim(1, lease_s=5, now=0.0)
    assert await webhooks.finish(d, ok=False, error="refused", now=0.0, rand=0.0) == RETRYING
    [d] = await webhooks.claim(1, lease_s=5, now=10.0)
    assert await webhooks.finish(d, ok=False, error="refused", now=10.0) == DEAD
    assert await webhooks.pending() == 0
    rows = await webhooks.deliveries(USER, endpoint.id)
    assert (rows[0]["status"], rows[0]["attempts"], rows[0]["error"]) == (DEAD, 2, "refused")

    await webhooks.emit(FOLLOW, USER, {}, now=20.0)
    [d] = await webhooks.claim(1, lease_s=5, now=20.0)
    assert await webhooks.secret_of(USER, endpoint.id) == endpoint.secret
    rotated = await webhooks.rotate(USER, endpoint.id)
    assert rotated.secret != endpoint.secret
    assert await webhooks.secret_of(USER, endpoint.id) == rotated.secret
    await webhooks.delete(USER, endpoint.id)
    assert await webhooks.secret_of(USER, endpoint.id) is None
    with pytest.raises(DomainError) as gone:
        await webhooks.deliveries(USER, endpoint.id)
    assert gone.value.code is ErrorCode.NOT_FOUND


async def test_the_same_event_is_queued_once_and_everything_is_bounded(redis: Redis) -> None:
    webhooks = hooks(redis)
    endpoint = await webhooks.create(USER, "https://127.0.0.1:9/hook")
    first = await webhooks.emit(GIFT_RECEIVED, USER, {}, key="transfer-1")
    assert first is not None
    assert await webhooks.emit(GIFT_RECEIVED, USER, {}, key="transfer-1") is None
    assert await webhooks.pending() == 1
    for _ in range(HISTORY_MAX + 5):
        await webhooks.emit(FOLLOW, USER, {})
    assert len(await webhooks.deliveries(USER, endpoint.id)) == HISTORY_MAX
    webhooks.queue_max = await webhooks.pending()
    with pytest.raises(DomainError) as full:
        await webhooks.emit(FOLLOW, USER, {})
    assert full.value.code is ErrorCode.UNAVAILABLE
    for n in range(4):
        await webhooks.create(USER, f"https://127.0.0.1:9/h{n}")
    with pytest.raises(DomainError) as many:
        await webhooks.create(USER, "https://127.0.0.1:9/h9")
    assert many.value.code is ErrorCode.CONFLICT


async def test_operator_endpoints_get_every_users_events_and_redelivery_keeps_the_id(
        redis: Redis) -> None:
    ops = parse_operator_endpoints("https://10.0.0.5/all|" + "s" * 20)
    webhooks = Webhooks(redis, operator=ops)  # users' private URLs refused, operator's not
    with pytest.raises(DomainError):
        await webhooks.create(USER, "https://10.0.0.5/mine")
    with pytest.raises(DomainError):
        await webhooks.create(USER, "https://localhost.example/x", addresses=["127.0.0.1"])
    mine = await webhooks.create(USER, "https://93.184.215.14/mine", [FOLLOW], enabled=False)
    eid = await webhooks.emit(LIVE_STARTED, USER, {"live": {}})
    [d] = await webhooks.claim(5, lease_s=5)
    assert (d.owner, d.endpoint_id, d.event_id) == (OPERATOR, "operator-0", eid)
    assert await webhooks.secret_of(OPERATOR, "operator-0") == "s" * 20
    assert await webhooks.finish(d, ok=True) == DELIVERED
    assert [r["event_id"] for r in await webhooks.history("operator-0")] == [eid]
    assert await webhooks.secret_of(USER, mine.id) is None  # off: nothing signed for it

    other = await Webhooks(redis, allow_private=True).create(USER, "https://127.0.0.1:9/x")
    test_id = await webhooks.send_test(USER, other.id)
    [t] = await webhooks.claim(5, lease_s=5)
    assert t.id == test_id and t.type == "webhook.test"
    await webhooks.finish(t, ok=True)
    again = await webhooks.redeliver(USER, other.id, test_id)
    [r] = await webhooks.claim(5, lease_s=5)
    assert (r.id, r.event_id, r.body) == (again, t.event_id, t.body)
    with pytest.raises(DomainError) as not_mine:
        await webhooks.redeliver(USER, mine.id, test_id)
    assert not_mine.value.code is ErrorCode.NOT_FOUND
