"""The composition root (signaling/server.py) and the one feature shape
(signaling/feature.py): a feature is built with its dependencies, without create_app,
and opening it before what it needs is an error at start."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from signaling.chat import LiveChat
from signaling.config import Settings
from signaling.feature import StartOrderError
from signaling.frames import FrameWriter
from signaling.gateway import Gateway
from signaling.live_rooms import LiveRooms
from signaling.metrics import Metrics
from signaling.server import Server, redis_client
from signaling.services import Services


async def test_live_chat_is_built_and_opened_without_create_app(settings: Settings,
                                                                 redis: Redis) -> None:
    store = redis_client(settings.redis_url)
    services = Services.build(store, settings)
    gateway = Gateway(settings, Metrics(), services)
    lives = LiveRooms(gateway, services, settings)
    chat = LiveChat(gateway, services, lives, FrameWriter(gateway.sio, metrics=gateway.metrics))
    assert {"chat:send", "chat:history", "live:start"} <= set(gateway.event_names)
    assert lives.join_listeners == [chat.on_viewer_joined]
    try:
        with pytest.raises(StartOrderError, match="LiveChat opened before LiveRooms"):
            await chat.open()
        assert not chat.is_open
        await lives.open()
        await chat.open()
        assert chat.is_open
        await chat.feed.watch("f" * 16)  # reads the live's chat stream in Redis
        assert chat.feed.cursors == {"f" * 16: "0-0"}
    finally:
        await chat.close()
        await lives.close()
        await store.aclose()
    assert not chat.is_open and not lives.is_open


async def test_the_server_opens_no_feature_before_redis_answers(settings: Settings) -> None:
    server = Server(settings)
    with pytest.raises(StartOrderError, match="before Redis"):
        await server.open_features()
    assert not any(f.is_open for f in server.features)
    await server.close()


async def test_the_server_builds_each_shared_part_once(settings: Settings,
                                                        redis: Redis) -> None:
    server = Server(settings)
    # one frame writer (one hook into Engine.IO's websockets), one notifier
    assert server.gifts.writer is server.chat.feed.writer is server.writer
    assert server.fanout.notifier is server.notifier
    await server.open()
    try:
        assert server.gateway.ready
        assert all(f.is_open for f in server.features)
    finally:
        await server.close()
    assert not server.gateway.ready
    assert not any(f.is_open for f in server.features)


def test_the_start_order_puts_every_feature_after_what_it_needs(settings: Settings) -> None:
    server = Server(settings)
    order = [type(f).__name__ for f in server.features]
    for feature in server.features:
        for needed in feature.after:
            assert order.index(type(needed).__name__) < order.index(type(feature).__name__)
