"""Webhook rules as plain functions: the events, an endpoint's URL, the addresses a
delivery may reach, the retry schedule, the body and the headers of a delivery.

A delivery is signed exactly as the payment webhook golive verifies
(engine/payments.py `sign`: `Golive-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret,
"<t>.<raw body>")>`), so one receiver-side check serves both directions.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from engine.errors import invalid
from engine.payments import SIGNATURE_HEADER, sign

LIVE_STARTED, LIVE_ENDED = "live.started", "live.ended"
GIFT_RECEIVED, NUDGE_RECEIVED = "gift.received", "nudge.received"
FOLLOW, MESSAGE_REQUEST = "follow", "message.request"
EVENTS = (LIVE_STARTED, LIVE_ENDED, GIFT_RECEIVED, NUDGE_RECEIVED, FOLLOW, MESSAGE_REQUEST)
"""Every event an endpoint may subscribe to."""
TEST_EVENT = "webhook.test"
"""Sent by "Send a test event" only; not subscribable."""

EVENT_ID_HEADER = "Golive-Event-Id"
EVENT_TYPE_HEADER = "Golive-Event-Type"
ATTEMPT_HEADER = "Golive-Delivery-Attempt"
USER_AGENT = "golive-webhooks/1"

URL_MAX = 2048
ENDPOINTS_MAX = 5          # per user: each event is one delivery per endpoint
# Retries: 1 s, 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h (8 attempts in ~4 h 45 min
# after the first): a receiver down for a deploy (minutes) or an evening still gets
# every event; then the delivery is dead and shown as such on /webhooks.
BACKOFF_S = (1, 5, 30, 120, 600, 1800, 3600, 7200)
ATTEMPTS_MAX = len(BACKOFF_S) + 1
JITTER = 0.2               # +-20 %: receivers back up together do not get a thundering herd


# --- events -----------------------------------------------------------------------

def check_events(events: Iterable[str] | None) -> tuple[str, ...]:
    """An endpoint's event filter: the named events (each in EVENTS, no repeats) in
    EVENTS order; None or empty is every event. `invalid` (field events) otherwise."""
    if not events:
        return EVENTS
    chosen = set()
    for name in events:
        if name not in EVENTS:
            raise invalid(f"unknown event {str(name)[:40]!r}: use {', '.join(EVENTS)}",
                          field="events")
        chosen.add(name)
    return tuple(e for e in EVENTS if e in chosen)


def event_id(kind: str, key: str | None = None) -> str:
    """The event's id, sent with every attempt of every delivery of it: derived from
    `key` (what makes the event unique: a gift's transfer id, a live's id) so the same
    event emitted twice (a retried gift, two nodes) is one event; random without one."""
    if key is None:
        return "evt_" + secrets.token_hex(12)
    return "evt_" + hashlib.sha256(f"{kind}\0{key}".encode()).hexdigest()[:24]


def event_body(kind: str, eid: str, created: float, user_id: str,
               data: dict[str, Any]) -> bytes:
    """The JSON body of an event: {id, type, created, user_id, data}. `data` holds only
    what the account owner may see (public profiles, their own live, the gift's figures),
    never another user's birthdate or anything private."""
    return json.dumps({"id": eid, "type": kind, "created": round(created, 3),
                       "user_id": user_id, "data": data},
                      separators=(",", ":")).encode()  # ASCII: a lone surrogate in a
    # name (JSON can carry one) is escaped, never a UnicodeEncodeError that loses the event


def delivery_headers(secret: str, body: bytes, *, eid: str, kind: str, attempt: int,
                     timestamp: int) -> dict[str, str]:
    """The headers of one attempt: the signature (engine/payments.py `sign`), the event's
    id (the same on every attempt: the receiver's idempotency key), type and attempt."""
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(secret, body, timestamp), EVENT_ID_HEADER: eid,
            EVENT_TYPE_HEADER: kind, ATTEMPT_HEADER: str(attempt)}


def new_secret() -> str:
    """A signing secret, made by the server and shown once."""
    return "whsec_" + secrets.token_urlsafe(32)


# --- retries ------------------------------------------------------------------------

def retry_delay(attempts: int, rand: float, *, attempts_max: int = ATTEMPTS_MAX) -> float | None:
    """Seconds before the next attempt after `attempts` failed ones (1+), with +-JITTER
    from `rand` in [0, 1); None when the delivery has had its attempts_max and is dead."""
    if attempts >= attempts_max:
        return None
    base = BACKOFF_S[min(attempts, len(BACKOFF_S)) - 1]
    return base * (1 - JITTER + 2 * JITTER * rand)


# --- where a delivery may go ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Target:
    """A checked endpoint URL."""

    url: str
    host: str
    port: int


def check_url(url: str, *, allow_private: bool = False) -> Target:
    """An endpoint URL: https, a host, no user or password, at most URL_MAX characters;
    an IP literal host must be public unless `allow_private` (check_address). `invalid`
    (field url, with a reason) otherwise. A name's addresses are checked when it is
    resolved (check_address, at registration and on every connection)."""
    if not isinstance(url, str) or not url or len(url) > URL_MAX:
        raise invalid(f"a webhook URL is 1-{URL_MAX} characters", field="url", reason="length")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise invalid("a webhook URL has no spaces or control characters", field="url",
                      reason="malformed")
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError:
        raise invalid("the webhook URL is malformed", field="url", reason="malformed") from None
    if parts.scheme.lower() != "https":
        raise invalid("a webhook URL must be https://", field="url", reason="not_https")
    if parts.username is not None or parts.password is not None:
        raise invalid("a webhook URL may not hold a user or password", field="url",
                      reason="credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise invalid("the webhook URL has no host", field="url", reason="malformed")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        check_address(str(literal), allow_private=allow_private)
    return Target(url, host, port)


def check_address(address: str, *, allow_private: bool = False) -> None:
    """The SSRF guard: `invalid` (reason private_address) for an address that is not
    public (loopback, private, shared, link-local, multicast, reserved, the cloud
    metadata address 169.254.169.254...) unless `allow_private` (an operator's setting,
    GOLIVE_WEBHOOK_ALLOW_PRIVATE, for tests and private deployments)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_private or (ip.is_global and not (ip.is_multicast or ip.is_reserved)):
        return
    raise invalid(f"webhooks may not reach {ip} (a loopback, private or link-local "
                  "address)", field="url", reason="private_address")


@dataclass(frozen=True, slots=True)
class OperatorEndpoint:
    """An endpoint from GOLIVE_WEBHOOKS: every event of every user."""

    id: str
    url: str
    secret: str


def parse_operator_endpoints(text: str) -> tuple[OperatorEndpoint, ...]:
    """GOLIVE_WEBHOOKS: `URL|SECRET` entries separated by commas or spaces; ValueError
    naming the bad entry. The operator's URLs may be private (their own network)."""
    found = []
    for index, entry in enumerate(text.replace(",", " ").split()):
        url, sep, secret = entry.partition("|")
        if not sep or len(secret) < 16:
            raise ValueError(f"GOLIVE_WEBHOOKS entry {index + 1}: use URL|SECRET with a "
                             "secret of 16 characters or more")
        try:
            check_url(url, allow_private=True)
        except Exception as exc:
            raise ValueError(f"GOLIVE_WEBHOOKS entry {index + 1}: {exc}") from None
        found.append(OperatorEndpoint(f"operator-{index}", url, secret))
    return tuple(found)
