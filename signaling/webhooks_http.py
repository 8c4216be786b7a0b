"""Webhooks' HTTP API: a signed-in user's endpoints and their deliveries
(engine/webhooks.py does the work, signaling/webhooks.py sends).

GET    /api/me/webhooks                                  endpoints, the events
POST   /api/me/webhooks                                  a new endpoint; its secret, once
DELETE /api/me/webhooks/{endpoint_id}                    remove it
POST   /api/me/webhooks/{endpoint_id}/rotate             a new secret, once
GET    /api/me/webhooks/{endpoint_id}/deliveries         the last deliveries, newest first
POST   /api/me/webhooks/{endpoint_id}/test               queue a webhook.test event
POST   /api/me/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver
                                                         the same event (same id) again
"""

from __future__ import annotations

import logging

from aiohttp import web

from engine.errors import rate_limited
from engine.webhook_rules import EVENTS, check_url
from engine.webhooks import Webhooks
from signaling.appkeys import SERVICES
from signaling.http_api import body, ok, signed_in
from signaling.ratelimit import KeyedBuckets
from signaling.schemas import WebhookCreate
from signaling.webhooks import resolve_addresses

log = logging.getLogger("golive.webhooks")

# Adds, test sends and redeliveries per user: each makes golive resolve or reach a URL
# the user chose, so a burst of 10 and then one every 2 s bounds what one account can
# make it do.
SEND_BUCKETS = web.AppKey("webhook_send_buckets", KeyedBuckets)


def hooks(request: web.Request) -> Webhooks:
    return request.app[SERVICES].webhooks


async def list_endpoints(request: web.Request) -> web.Response:
    session = await signed_in(request)
    endpoints = await hooks(request).endpoints(session.user_id)
    return ok(endpoints=[e.view() for e in endpoints], events=list(EVENTS))


async def create(request: web.Request) -> web.Response:
    session = await signed_in(request)
    p = await body(request, WebhookCreate)
    webhooks = hooks(request)
    throttle_sends(request, session.user_id)  # each add may resolve a name
    target = check_url(p.url, allow_private=webhooks.allow_private)
    endpoint = await webhooks.create(session.user_id, p.url, p.events, enabled=p.enabled,
                                     addresses=await resolve_addresses(target.host))
    log.info("webhook endpoint added", extra={"fields": {"user": session.user_id,
                                                         "endpoint": endpoint.id}})
    return ok(201, endpoint=endpoint.view(), secret=endpoint.secret)


async def delete(request: web.Request) -> web.Response:
    session = await signed_in(request)
    await hooks(request).delete(session.user_id, request.match_info["endpoint_id"])
    return ok()


async def rotate(request: web.Request) -> web.Response:
    session = await signed_in(request)
    endpoint = await hooks(request).rotate(session.user_id, request.match_info["endpoint_id"])
    return ok(endpoint=endpoint.view(), secret=endpoint.secret)


async def deliveries(request: web.Request) -> web.Response:
    session = await signed_in(request)
    rows = await hooks(request).deliveries(session.user_id, request.match_info["endpoint_id"])
    return ok(deliveries=rows)


def throttle_sends(request: web.Request, user_id: str) -> None:
    wait = request.app[SEND_BUCKETS].take(user_id)
    if wait:
        raise rate_limited(wait)


async def send_test(request: web.Request) -> web.Response:
    session = await signed_in(request)
    webhooks = hooks(request)
    await webhooks.endpoint(session.user_id, request.match_info["endpoint_id"])  # not_found
    throttle_sends(request, session.user_id)
    delivery_id = await webhooks.send_test(session.user_id, request.match_info["endpoint_id"])
    return ok(202, delivery_id=delivery_id)


async def redeliver(request: web.Request) -> web.Response:
    session = await signed_in(request)
    webhooks = hooks(request)
    await webhooks.endpoint(session.user_id, request.match_info["endpoint_id"])
    throttle_sends(request, session.user_id)
    delivery_id = await webhooks.redeliver(session.user_id, request.match_info["endpoint_id"],
                                           request.match_info["delivery_id"])
    return ok(202, delivery_id=delivery_id)


def setup(app: web.Application) -> None:
    app[SEND_BUCKETS] = KeyedBuckets(0.5, 10)
    base = "/api/me/webhooks"
    app.router.add_get(base, list_endpoints)
    app.router.add_post(base, create)
    app.router.add_delete(base + "/{endpoint_id}", delete)
    app.router.add_post(base + "/{endpoint_id}/rotate", rotate)
    app.router.add_get(base + "/{endpoint_id}/deliveries", deliveries)
    app.router.add_post(base + "/{endpoint_id}/test", send_test)
    app.router.add_post(base + "/{endpoint_id}/deliveries/{delivery_id}/redeliver", redeliver)
