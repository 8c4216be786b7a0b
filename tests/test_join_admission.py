"""Join admission through the real server: a join past the node's handshake queue gets
`unavailable` with retry_after, leaves no trace, counts in /metrics and succeeds when
asked again (issue 14, item 5). Real Socket.IO, aiortc peers and Redis."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from redis.asyncio import Redis

from engine import keys
from signaling.app import create_app
from tests.support.peers import SocketPeer, go_live, open_tab
from tests.support.poll import poll
from tests.support.viewer import DecodingViewer


class Peer(SocketPeer):
    PUSHES = ("room:state", "live:ended", "room:left")


peer = functools.partial(open_tab, peer=Peer)


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Any, redis: Redis) -> Any:
    settings.join_handshakes = 1  # one handshake at once
    settings.join_queue = 0  # and nobody waits
    return await aiohttp_client(create_app(settings))


async def metric(app_client: Any, line_start: str) -> float:
    text = await (await app_client.get("/metrics")).text()
    return next(float(line.split()[-1]) for line in text.splitlines()
                if line.startswith(line_start))


async def test_a_join_past_the_queue_is_told_to_retry_and_then_gets_in(
        app_client: Any, redis: Redis, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    _, live = await go_live(ann, closers)
    live_id = live["live"]["live_id"]
    vic = await peer(app_client, "vic", closers)
    first = await vic.call("room:join", {"user_id": ann.user.id})
    assert first["ok"], first  # vic holds the only handshake place until connected

    wes = await peer(app_client, "wes", closers)
    refused = await wes.call("room:join", {"user_id": ann.user.id})
    assert refused["ok"] is False
    error = refused["error"]
    assert error["code"] == "unavailable" and error["retryable"] is True
    assert error["reason"] == "joins_busy" and 0.2 <= error["retry_after"] <= 10
    assert await redis.hlen(keys.live_viewers(live_id)) == 1  # the refusal wrote nothing
    assert await metric(app_client, 'golive_joins_total{outcome="refused"}') == 1
    assert await metric(app_client, "golive_join_handshakes ") == 1

    viewer = DecodingViewer("vic")
    closers.append(viewer)
    done = await vic.call("rtc:answer", {"live_id": live_id,
                                         "sdp": await viewer.answer(first["offer"])})
    assert done == {"ok": True}
    await poll(lambda: viewer.video_frames > 0, timeout=15, what="vic's video")

    again = await wes.call("room:join", {"user_id": ann.user.id})  # vic is connected now
    assert again["ok"], again
    late = DecodingViewer("wes")
    closers.append(late)
    done = await wes.call("rtc:answer", {"live_id": live_id,
                                         "sdp": await late.answer(again["offer"])})
    assert done == {"ok": True}
    await poll(lambda: late.video_frames > 0, timeout=15, what="wes's video")
    assert await redis.hlen(keys.live_viewers(live_id)) == 2
    assert await metric(app_client, 'golive_joins_total{outcome="admitted"}') == 2
