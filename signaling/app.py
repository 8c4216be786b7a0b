"""The aiohttp Application: it owns Redis, the services, Socket.IO and every task.

Lifetimes are cleanup contexts, unwound in reverse on shutdown: Socket.IO
clients are disconnected first, then background tasks are cancelled and
awaited, then Redis is closed and an embedded redis-server stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from media.fastpath import FanoutPath
from media.fastpath import resolve as resolve_fanout
from media.ice import restrict_host_addresses
from signaling import (
    chat,
    gifts,
    http_api,
    messages,
    notifications,
    nudges,
    profiles,
    reports,
    wallet_http,
    web_pages,
)
from signaling.appkeys import GATEWAY, LIVES, METRICS, SERVICES, SETTINGS
from signaling.config import Settings
from signaling.embedded_redis import EmbeddedRedis
from signaling.gateway import Gateway
from signaling.live_rooms import LiveRooms
from signaling.metrics import Metrics
from signaling.services import Services

log = logging.getLogger("golive.app")

REDIS = web.AppKey("redis", Redis)
EMBEDDED = web.AppKey("embedded_redis", EmbeddedRedis)
RTT_PERIOD_S = 5.0


def redis_client(url: str) -> Redis:
    """A client on a blocking pool: at the cap a caller waits instead of failing
    (redis-py's plain pool raises MaxConnectionsError)."""
    pool = BlockingConnectionPool.from_url(url, max_connections=64, timeout=5,
                                           decode_responses=True)
    return Redis(connection_pool=pool)


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    embedded = None
    url = settings.redis_url
    if not url:
        embedded = app[EMBEDDED] = EmbeddedRedis(
            settings.data_dir, on_restart=app[METRICS].embedded_redis_restarts.inc)
        await embedded.start()
        url = embedded.url
    redis = app[REDIS] = redis_client(url)
    try:
        await redis.ping()
        services = app[SERVICES] = Services.build(redis, settings)
        app[GATEWAY].services = services
        log.info("redis ready", extra={"fields": {"embedded": embedded is not None}})
        yield
    finally:
        app[GATEWAY].services = None
        await redis.aclose()
        await redis.connection_pool.disconnect()
        if embedded is not None:
            await embedded.stop()


async def measure_rtt(app: web.Application) -> float:
    started = time.perf_counter()
    await app[REDIS].ping()
    rtt = time.perf_counter() - started
    app[METRICS].redis_rtt.observe(rtt)
    return rtt


async def _rtt_loop(app: web.Application) -> None:
    while True:
        with contextlib.suppress(RedisError, OSError):
            await measure_rtt(app)
        await asyncio.sleep(RTT_PERIOD_S)


async def rtt_ctx(app: web.Application) -> AsyncIterator[None]:
    """Owns the task that samples Redis round-trip time for /metrics."""
    task = asyncio.create_task(_rtt_loop(app), name="redis-rtt")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def lives_ctx(app: web.Application) -> AsyncIterator[None]:
    """Live rooms open once Redis is up (lives this node left behind in a crash wait
    a grace period for their creators)."""
    addresses = app[SETTINGS].ice_host_addresses()
    restriction = restrict_host_addresses(addresses) if addresses else None
    await app[LIVES].open()
    try:
        yield
    finally:
        await app[LIVES].close()  # idempotent: normally done in on_shutdown already
        if restriction is not None:
            restriction.restore()


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
    except (RedisError, OSError, TimeoutError, KeyError) as exc:
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


def create_app(settings: Settings) -> web.Application:
    """Build the whole server; nothing starts until the app runs."""
    app = web.Application(client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[METRICS].fanout_path.labels(fanout_path(settings).name).set(1)
    gateway = app[GATEWAY] = Gateway(settings, app[METRICS])
    gateway.sio.attach(app)
    profiles.register(gateway)
    app[LIVES] = LiveRooms(gateway, settings)
    app[LIVES].register()
    app.cleanup_ctx.append(redis_ctx)
    app.cleanup_ctx.append(rtt_ctx)
    app.cleanup_ctx.append(lives_ctx)
    chat.register(app)  # after redis_ctx: its feed task starts once Redis is up
    gifts.register(app)
    messages.register(gateway)
    reports.register(gateway)
    notifications.register(app)  # after redis_ctx: its fan-out worker starts once Redis is up
    nudges.register(app)
    app.on_shutdown.append(end_lives)
    app.on_shutdown.append(close_sockets)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    http_api.setup(app)
    wallet_http.setup(app)
    web_pages.setup(app)
    return app
