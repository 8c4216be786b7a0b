"""The aiohttp Application around one Server (signaling/server.py builds the parts).

Lifetimes are cleanup contexts and shutdown hooks, unwound in reverse on shutdown:
live rooms end (viewers are told while their sockets are open), Socket.IO clients
are disconnected, the Redis round-trip sampler stops, then the server closes its
features in reverse, Redis, and an embedded redis-server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from media.fastpath import FanoutPath
from media.fastpath import resolve as resolve_fanout
from signaling import (
    http_api,
    openapi,
    replays,
    security_headers,
    wallet_http,
    web_pages,
    webhooks_http,
    whip_http,
)
from signaling.appkeys import (
    ALERT_FANOUT,
    CHAT,
    GATEWAY,
    GIFTS,
    LIVES,
    METRICS,
    NOTIFIER,
    SERVER,
    SERVICES,
    SETTINGS,
)
from signaling.config import Settings
from signaling.server import Server, redis_client
from signaling.tasks import OwnedTask

log = logging.getLogger("golive.app")

REDIS = web.AppKey("redis", Redis)
RTT_PERIOD_S = 5.0


async def server_ctx(app: web.Application) -> AsyncIterator[None]:
    """Owns the Server's lifetime: Redis and every feature."""
    server = app[SERVER]
    await server.open()
    try:
        yield
    finally:
        await server.close()


async def measure_rtt(app: web.Application) -> float:
    started = time.perf_counter()
    await app[REDIS].ping()
    rtt = time.perf_counter() - started
    app[METRICS].redis_rtt.observe(rtt)
    return rtt


async def _rtt_loop(app: web.Application) -> None:
    while True:
        try:
            await measure_rtt(app)
        except (RedisError, OSError):
            # redis-py may turn a cancel that lands mid-command into a connection error:
            # swallowed here, the loop slept on and an app's shutdown waited for it.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from None
        await asyncio.sleep(RTT_PERIOD_S)


async def rtt_ctx(app: web.Application) -> AsyncIterator[None]:
    """Owns the task that samples Redis round-trip time for /metrics."""
    sampler = OwnedTask(lambda: _rtt_loop(app), "redis-rtt")
    sampler.start()
    yield
    await sampler.stop()


async def end_lives(app: web.Application) -> None:
    """Tell viewers their lives ended while their sockets are still open."""
    await app[LIVES].close()


async def close_sockets(app: web.Application) -> None:
    await app[GATEWAY].close()


async def healthz(request: web.Request) -> web.Response:
    """200 only when Redis answers."""
    try:
        async with asyncio.timeout(1.0):
            rtt = await measure_rtt(request.app)
    except (RedisError, OSError, TimeoutError) as exc:
        return web.json_response({"ok": False, "redis": f"down: {type(exc).__name__}"},
                                 status=503)
    return web.json_response({"ok": True, "redis_rtt_ms": round(rtt * 1000, 3)})


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    return web.Response(body=m.render(), headers={"Content-Type": m.content_type})


def fanout_path(settings: Settings) -> FanoutPath:
    """The media fan-out's send path for GOLIVE_FANOUT (native falls back to python)."""
    try:
        return resolve_fanout(settings.fanout)[0]
    except ValueError as exc:
        raise SystemExit(f"golive: GOLIVE_FANOUT: {exc}") from None


NODE_HEADER = "X-Golive-Node"


def node_header(node_id: str) -> Callable[[web.Request, web.StreamResponse],
                                          Awaitable[None]]:
    """An on_response_prepare hook naming the node that answered on every response (the
    websocket handshake's too): behind one port with --workers N, which worker it was."""
    async def add(request: web.Request, response: web.StreamResponse) -> None:
        response.headers[NODE_HEADER] = node_id
    return add


@web.middleware
async def engineio_errors(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
    """A long-polling request for a session that is closing (its client sent an Engine.IO
    close) reached python-engineio's _get_socket, which raises KeyError: a 500 with
    aiohttp's traceback (found by bench/fuzz.py). Answered as engineio answers an
    unknown session: 400 "Invalid session"."""
    if not request.path.startswith("/socket.io/"):
        return await handler(request)
    try:
        return await handler(request)
    except KeyError as exc:
        log.info("engine.io request for a closed session", extra={"fields": {
            "cause": str(exc)[:100], "remote": request.remote}})
        return web.Response(status=400, text='"Invalid session"', content_type="text/plain")


def create_app(settings: Settings) -> web.Application:
    """Build the whole server; nothing starts (no Redis, no task) until the app runs."""
    app = web.Application(client_max_size=64 * 1024, middlewares=[engineio_errors])
    server = app[SERVER] = Server(settings)
    # The parts HTTP handlers and tests reach through the app.
    app[SETTINGS] = settings
    app[METRICS] = server.metrics
    server.metrics.fanout_path.labels(fanout_path(settings).name).set(1)
    app[REDIS] = server.redis
    app[SERVICES] = server.services
    app[GATEWAY] = server.gateway
    app[LIVES] = server.lives
    app[CHAT] = server.chat
    app[GIFTS] = server.gifts
    app[NOTIFIER] = server.notifier
    app[ALERT_FANOUT] = server.fanout
    server.gateway.sio.attach(app)
    app.cleanup_ctx.append(server_ctx)
    app.cleanup_ctx.append(rtt_ctx)  # after server_ctx: it pings Redis
    app.on_response_prepare.append(node_header(settings.node_name()))
    security_headers.setup(app)  # CSP and friends on every response, errors included
    app.on_shutdown.append(end_lives)
    app.on_shutdown.append(close_sockets)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    http_api.setup(app)
    wallet_http.setup(app)
    webhooks_http.setup(app)
    replays.setup(app, server.replays)
    whip_http.setup(app)
    openapi.setup(app)
    web_pages.setup(app)
    return app


__all__ = ["NODE_HEADER", "REDIS", "create_app", "measure_rtt", "redis_client"]
