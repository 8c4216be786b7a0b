"""Webhooks over Redis: users' endpoints, the operator's, and a durable delivery queue.

An event (`emit`) becomes one delivery per endpoint that wants it: the user's own
enabled endpoints subscribed to it and every operator endpoint (GOLIVE_WEBHOOKS).
Deliveries sit in one sorted set scored by when they are due (ms). A node claims due
ones (`claim`, one Lua script): each is re-scored to the end of its lease (now +
visibility), so a node killed mid-delivery leaves it to be claimed again once the
lease runs out: at-least-once. The lease's end is the claim's token: `finish` applies
only while the score still equals it (a node whose lease ran out and was claimed by
another cannot overwrite the newer attempt).

Every attempt of every delivery of one event carries the same event id (the
receiver's idempotency key); an event emitted twice with the same key (a retried
gift, two nodes) is queued once (a marker kept EVENT_TTL_S). Each endpoint keeps
its last HISTORY_MAX deliveries; a finished delivery is kept RETENTION_S.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from engine import keys
from engine.errors import DomainError, ErrorCode, not_found
from engine.webhook_rules import (
    ATTEMPTS_MAX,
    ENDPOINTS_MAX,
    EVENTS,
    TEST_EVENT,
    OperatorEndpoint,
    check_address,
    check_events,
    check_url,
    event_body,
    event_id,
    new_secret,
    retry_delay,
)

log = logging.getLogger("golive.webhooks")

HISTORY_MAX = 50             # deliveries listed per endpoint
RETENTION_S = 7 * 24 * 3600  # a finished delivery's record
EVENT_TTL_S = 24 * 3600      # an event id's "already queued" marker
# The queue's bound: past it an event is dropped (logged): a receiver down for hours
# with a busy creator must not grow Redis without limit. 100,000 deliveries of ~1 KB
# are ~100 MB at most.
QUEUE_MAX = 100_000
OPERATOR = "operator"        # the owner of the operator's endpoints' deliveries

EventData = dict[str, Any] | Callable[[], Awaitable[dict[str, Any]]]

PENDING, SENDING, RETRYING, DELIVERED, DEAD = "pending", "sending", "retrying", "delivered", "dead"

# KEYS: 1 event marker (or none), 2 due, then per delivery: its hash, its endpoint's
# history. ARGV: 1 marker ttl, 2 now ms, 3 history max, 4 queue max, 5 JSON list of
# [delivery id, [field, value, ...]].
_ENQUEUE = """
if KEYS[1] ~= '' and string.sub(KEYS[1], -1) ~= '-' then
  if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
local items = cjson.decode(ARGV[5])
for i, item in ipairs(items) do
  local dkey, hkey = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  redis.call('HSET', dkey, unpack(item[2]))
  redis.call('ZADD', KEYS[2], ARGV[2], item[1])
  redis.call('LPUSH', hkey, item[1])
  redis.call('LTRIM', hkey, 0, tonumber(ARGV[3]) - 1)
end
return #items
"""

# KEYS: 1 due. ARGV: 1 now ms, 2 lease ms, 3 limit. The ids due now, each re-scored to
# now + lease (its claim's token).
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], until_ms, id) end
return ids
"""

# KEYS: 1 due, 2 delivery. ARGV: 1 id, 2 lease. The delivery's fields with its attempt
# counted, or nil when the lease is not ours or the delivery is gone.
_BEGIN = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return nil end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('ZREM', KEYS[1], ARGV[1]) return nil end
redis.call('HINCRBY', KEYS[2], 'attempts', 1)
redis.call('HSET', KEYS[2], 'status', 'sending')
return redis.call('HGETALL', KEYS[2])
"""

# KEYS: 1 due, 2 delivery. ARGV: 1 id, 2 lease, 3 next due ms ('' when finished),
# 4 retention s, then field, value pairs. 1, or 0 when the lease was lost.
_FINISH = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A user's endpoint. The secret is shown once (`Created`), never in `view`."""

    id: str
    user_id: str
    url: str
    events: tuple[str, ...]
    enabled: bool
    created_at: float
    secret: str

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": list(self.events),
                "enabled": self.enabled, "created_at": self.created_at,
                "secret_hint": "whsec_…" + self.secret[-4:]}

    def stored(self) -> str:
        return json.dumps({"id": self.id, "url": self.url, "events": list(self.events),
                           "enabled": self.enabled, "created_at": self.created_at,
                           "secret": self.secret})

    @classmethod
    def load(cls, user_id: str, text: str) -> Endpoint:
        d = json.loads(text)
        return cls(d["id"], user_id, d["url"], tuple(d["events"]), bool(d["enabled"]),
                   float(d["created_at"]), d["secret"])

    def wants(self, kind: str) -> bool:
        return self.enabled and (kind in self.events or kind == TEST_EVENT)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to one endpoint, as claimed (`attempt` counts this one)."""

    id: str
    endpoint_id: str
    owner: str           # the user, or OPERATOR
    url: str
    event_id: str
    type: str
    body: bytes
    attempt: int
    lease: int

    @classmethod
    def from_fields(cls, fields: dict[str, str], lease: int) -> Delivery:
        return cls(fields["id"], fields["endpoint"], fields["owner"], fields["url"],
                   fields["event"], fields["type"], fields["body"].encode(),
                   int(fields.get("attempts", "1")), lease)


def delivery_view(fields: dict[str, str]) -> dict[str, Any]:
    """A delivery as /api/me/webhooks/{id}/deliveries lists it."""
    def num(name: str) -> float | None:
        value = fields.get(name, "")
        return float(value) if value else None
    return {"id": fields.get("id", ""), "event_id": fields.get("event", ""),
            "type": fields.get("type", ""), "status": fields.get("status", ""),
            "attempts": int(fields.get("attempts", "0")),
            "created_at": (num("created") or 0) / 1000,
            "updated_at": (num("updated") or 0) / 1000,
            "next_attempt_at": (num("next") or 0) / 1000 or None,
            "response_status": int(fields["code"]) if fields.get("code") else None,
            "latency_ms": num("latency"), "error": fields.get("error") or None}


class Webhooks:
    """Users' endpoints, the operator's, emitting events and the delivery queue."""

    def __init__(self, redis: Redis, *, operator: tuple[OperatorEndpoint, ...] = (),
                 allow_private: bool = False, attempts_max: int = ATTEMPTS_MAX) -> None:
        self._redis = redis
        self.operator = {e.id: e for e in operator}
        self.allow_private = allow_private
        self.attempts_max = attempts_max
        self.queue_max = QUEUE_MAX
        # Called after an emit queued deliveries (the node's worker wakes at once).
        self.on_queued: Callable[[], None] | None = None
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)
        self._begin = redis.register_script(_BEGIN)
        self._finish = redis.register_script(_FINISH)

    # --- endpoints ------------------------------------------------------------------

    async def endpoints(self, user_id: str) -> list[Endpoint]:
        """The user's endpoints, oldest first."""
        raw = await self._redis.hgetall(keys.webhook_endpoints(user_id))
        return sorted((Endpoint.load(user_id, v) for v in raw.values()),
                      key=lambda e: (e.created_at, e.id))

    async def endpoint(self, user_id: str, endpoint_id: str) -> Endpoint:
        """One of the user's endpoints; `not_found` for any other id."""
        raw = await self._redis.hget(keys.webhook_endpoints(user_id), endpoint_id[:64])
        if raw is None:
            raise not_found("no such webhook endpoint")
        return Endpoint.load(user_id, raw)

    async def create(self, user_id: str, url: str, events: list[str] | None = None, *,
                     enabled: bool = True, addresses: list[str] | None = None) -> Endpoint:
        """A new endpoint with a new secret (its `secret` is shown to the user once).
        `addresses`: what the URL's host resolves to now, each checked (check_address)."""
        target = check_url(url, allow_private=self.allow_private)
        for address in addresses or ():
            check_address(address, allow_private=self.allow_private)
        chosen = check_events(events)
        key = keys.webhook_endpoints(user_id)
        if await self._redis.hlen(key) >= ENDPOINTS_MAX:
            raise DomainError(ErrorCode.CONFLICT, f"at most {ENDPOINTS_MAX} webhook endpoints",
                              reason="too_many", max=ENDPOINTS_MAX)
        endpoint = Endpoint("we_" + secrets.token_hex(8), user_id, target.url, chosen,
                            enabled, round(time.time(), 3), new_secret())
        await self._redis.hset(key, endpoint.id, endpoint.stored())
        return endpoint

    async def rotate(self, user_id: str, endpoint_id: str) -> Endpoint:
        """A new secret for the endpoint (retries of earlier events are signed with it)."""
        old = await self.endpoint(user_id, endpoint_id)
        new = Endpoint(old.id, user_id, old.url, old.events, old.enabled, old.created_at,
                       new_secret())
        await self._redis.hset(keys.webhook_endpoints(user_id), old.id, new.stored())
        return new

    async def delete(self, user_id: str, endpoint_id: str) -> None:
        """Remove the endpoint and its history; its pending deliveries end as dead."""
        await self.endpoint(user_id, endpoint_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.webhook_endpoints(user_id), endpoint_id)
            pipe.delete(keys.webhook_history(endpoint_id))
            await pipe.execute()

    async def secret_of(self, owner: str, endpoint_id: str) -> str | None:
        """The signing secret of a delivery's endpoint; None when it was deleted or turned
        off (the delivery then ends dead)."""
        if owner == OPERATOR:
            op = self.operator.get(endpoint_id)
            return op.secret if op is not None else None
        raw = await self._redis.hget(keys.webhook_endpoints(owner), endpoint_id)
        if raw is None:
            return None
        endpoint = Endpoint.load(owner, raw)
        return endpoint.secret if endpoint.enabled else None

    # --- events -------------------------------------------------------------------------

    async def emit(self, kind: str, user_id: str, data: EventData, *,
                   key: str | None = None, now: float | None = None) -> str | None:
        """Queue event `kind` (one of EVENTS) for `user_id`'s endpoints that want it and
        every operator endpoint; its id, or None when nobody wants it or it was queued
        before (same `key`). `data` (or what the coroutine function `data` returns, called
        only when some endpoint wants the event) holds only what `user_id` may see."""
        if kind not in EVENTS:
            raise ValueError(f"not a webhook event: {kind}")
        raw = await self._redis.hgetall(keys.webhook_endpoints(user_id))
        targets: list[tuple[str, str, str]] = [
            (e.id, user_id, e.url) for e in (Endpoint.load(user_id, v) for v in raw.values())
            if e.wants(kind)]
        targets += [(op.id, OPERATOR, op.url) for op in self.operator.values()]
        if not targets:
            return None
        now = time.time() if now is None else now
        eid = event_id(kind, key)
        if callable(data):
            data = await data()
        body = event_body(kind, eid, now, user_id, data)
        queued = await self._queue(eid, kind, body, targets, now,
                                   marker=keys.webhook_event(eid) if key is not None else None)
        return eid if queued else None

    async def send_test(self, user_id: str, endpoint_id: str) -> str:
        """Queue a `webhook.test` event to one endpoint; the delivery's id."""
        endpoint = await self.endpoint(user_id, endpoint_id)
        now = time.time()
        eid = event_id(TEST_EVENT)
        body = event_body(TEST_EVENT, eid, now, user_id, {"endpoint_id": endpoint.id})
        ids: list[str] = []
        await self._queue(eid, TEST_EVENT, body, [(endpoint.id, user_id, endpoint.url)], now,
                          ids=ids)
        return ids[0]

    async def redeliver(self, user_id: str, endpoint_id: str, delivery_id: str) -> str:
        """Queue one more delivery of a past delivery's event: the same event id and body
        (the receiver sees a replay it can detect); the new delivery's id."""
        endpoint = await self.endpoint(user_id, endpoint_id)
        fields = await self._redis.hgetall(keys.webhook_delivery(delivery_id[:64]))
        if not fields or fields.get("endpoint") != endpoint.id or fields.get("owner") != user_id:
            raise not_found("no such delivery")
        ids: list[str] = []
        await self._queue(fields["event"], fields["type"], fields["body"].encode(),
                          [(endpoint.id, user_id, endpoint.url)], time.time(), ids=ids)
        return ids[0]

    async def _queue(self, eid: str, kind: str, body: bytes,
                     targets: list[tuple[str, str, str]], now: float, *,
                     marker: str | None = None, ids: list[str] | None = None) -> bool:
        ms = int(now * 1000)
        items, script_keys = [], [marker or keys.none(keys.WH), keys.webhook_due()]
        for endpoint_id, owner, url in targets:
            did = "wd_" + secrets.token_hex(10)
            items.append([did, ["id", did, "endpoint", endpoint_id, "owner", owner,
                                "url", url, "event", eid, "type", kind,
                                "body", body.decode(), "attempts", "0",
                                "status", PENDING, "created", str(ms), "updated", str(ms),
                                "next", str(ms)]])
            script_keys += [keys.webhook_delivery(did), keys.webhook_history(endpoint_id)]
            if ids is not None:
                ids.append(did)
        result = int(await self._enqueue(keys=script_keys, args=[
            EVENT_TTL_S, ms, HISTORY_MAX, self.queue_max, json.dumps(items)]))
        if result < 0:
            log.warning("webhook queue full; event dropped", extra={"fields": {
                "event": eid, "type": kind, "max": self.queue_max}})
            raise DomainError(ErrorCode.UNAVAILABLE, "the webhook queue is full")
        if result > 0 and self.on_queued is not None:
            self.on_queued()
        return result > 0

    # --- the queue ----------------------------------------------------------------------

    async def claim(self, limit: int, *, lease_s: float,
                    now: float | None = None) -> list[Delivery]:
        """Up to `limit` due deliveries, each leased for `lease_s` seconds and its attempt
        counted; they must be `finish`ed before the lease ends or another node retries."""
        ms = int((time.time() if now is None else now) * 1000)
        lease_ms = int(lease_s * 1000)
        ids = await self._claim(keys=[keys.webhook_due()], args=[ms, lease_ms, limit])
        claimed = []
        for did in ids:
            raw = await self._begin(keys=[keys.webhook_due(), keys.webhook_delivery(did)],
                                    args=[did, ms + lease_ms])
            if raw:
                fields = dict(zip(raw[::2], raw[1::2], strict=True))
                claimed.append(Delivery.from_fields(fields, ms + lease_ms))
        return claimed

    async def finish(self, delivery: Delivery, *, ok: bool, code: int | None = None,
                     error: str = "", latency_ms: float | None = None,
                     final: bool = False, now: float | None = None,
                     rand: float | None = None) -> str:
        """Record an attempt's outcome: delivered, retrying (after retry_delay) or dead
        after attempts_max (at once when `final`: its endpoint is gone); the new status,
        or "lost" when the lease ran out and another node has the delivery."""
        now = time.time() if now is None else now
        ms = int(now * 1000)
        delay = None if ok or final else retry_delay(
            delivery.attempt, random.random() if rand is None else rand,
            attempts_max=self.attempts_max)
        status = DELIVERED if ok else (RETRYING if delay is not None else DEAD)
        due = "" if delay is None else str(ms + int(delay * 1000))
        fields = ["status", status, "updated", str(ms), "code", "" if code is None else str(code),
                  "error", error[:300], "latency", "" if latency_ms is None else
                  f"{latency_ms:.1f}", "next", due]
        done = await self._finish(keys=[keys.webhook_due(), keys.webhook_delivery(delivery.id)],
                                  args=[delivery.id, delivery.lease, due, RETENTION_S, *fields])
        return status if int(done) else "lost"

    async def deliveries(self, user_id: str, endpoint_id: str,
                         limit: int = HISTORY_MAX) -> list[dict[str, Any]]:
        """The endpoint's latest deliveries, newest first (delivery_view)."""
        endpoint = await self.endpoint(user_id, endpoint_id)
        return await self.history(endpoint.id, limit)

    async def history(self, endpoint_id: str, limit: int = HISTORY_MAX) -> list[dict[str, Any]]:
        """Any endpoint's latest deliveries (an operator endpoint's too), newest first."""
        ids = await self._redis.lrange(keys.webhook_history(endpoint_id), 0, limit - 1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for did in ids:
                pipe.hgetall(keys.webhook_delivery(did))
            rows = await pipe.execute()
        return [delivery_view(r) for r in rows if r]

    async def pending(self) -> int:
        """Deliveries queued or in flight, on every node."""
        return int(await self._redis.zcard(keys.webhook_due()))

