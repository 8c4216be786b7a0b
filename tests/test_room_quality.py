"""A viewer's video quality through the real server: `room:join` with `quality`, then
`room:quality` (GOLIVE_RENDITIONS' default ladder; real aiortc peers, real Redis)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from redis.asyncio import Redis

from signaling.app import create_app
from tests.support.peers import SocketPeer, go_live, open_tab
from tests.support.poll import poll
from tests.support.viewer import DecodingViewer, decoded_size

peer = functools.partial(open_tab, peer=SocketPeer)


class Viewer(SocketPeer):
    PUSHES = ("room:rendition",)


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Any, redis: Redis) -> Any:
    return await aiohttp_client(create_app(settings))


async def test_a_viewer_joins_at_a_pinned_quality_and_changes_it(app_client: Any,
                                                                 closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    live = (await go_live(ann, closers, size=(640, 360))).ack
    live_id = live["live"]["live_id"]
    bob = await peer(app_client, "bob", closers, peer=Viewer)

    bad = await bob.call("room:join", {"user_id": ann.user.id, "quality": "hd"})
    assert bad["error"]["code"] == "invalid", bad
    ack = await bob.call("room:join", {"user_id": ann.user.id, "quality": "180"})
    assert ack["ok"], ack
    assert ack["renditions"] == ["720", "360", "180"]
    assert (ack["quality"], ack["rendition"], ack["switching_to"]) == ("180", "180", None)
    viewer = DecodingViewer("bob")
    closers.append(viewer)
    answer = await viewer.answer(ack["offer"])
    assert (await bob.call("rtc:answer", {"live_id": live_id, "sdp": answer}))["ok"]
    await poll(lambda: decoded_size(viewer) == (320, 180), timeout=10, what="frames at 180p")

    moved = await bob.call("room:quality", {"live_id": live_id, "quality": "720"})
    assert moved["ok"] and moved["quality"] == "720", moved
    await poll(lambda: decoded_size(viewer) == (640, 360), timeout=10,
               what="frames at the creator's 360p (the 720 rendition of a 360p creator)")
    # the move done (at the 720 rendition's keyframe), the server says so: a page on
    # "auto" labels the picker from this push (web/static/quality.js)
    await poll(lambda: bob.got("room:rendition"), timeout=5, what="a room:rendition push")
    assert bob.got("room:rendition")[-1] == {"live_id": live_id, "quality": "720",
                                             "rendition": "720", "height": 360}
    auto = await bob.call("room:quality", {"live_id": live_id, "quality": "auto"})
    assert auto["ok"] and auto["quality"] == "auto" and auto["rendition"] == "720", auto

    for payload, code in (({"live_id": live_id, "quality": "x"}, "invalid"),
                          ({"live_id": "0" * 16, "quality": "360"}, "not_found")):
        refused = await bob.call("room:quality", payload)
        assert refused["error"]["code"] == code, refused
    chat_only = await peer(app_client, "cat", closers)
    assert (await chat_only.call("room:join", {"user_id": ann.user.id, "media": False}))["ok"]
    refused = await chat_only.call("room:quality", {"live_id": live_id, "quality": "360"})
    assert refused["error"]["code"] == "not_found", refused
