"""ICE restarts through the real server (`rtc:restart`, `live:restart`; real aiortc
peers over loopback, real Redis): the viewer's and the creator's paths die, each
restarts ICE on its own peer connection, and the live goes on with the same membership:
no room:leave/room:join, no viewer-count push, the quality pin kept. The namespaced
tests (an address that really changes) are tests/media/test_network_changes.py."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from redis.asyncio import Redis

from media.ice_restart import IceRestart, read_ice, with_ice
from signaling.app import create_app
from tests.support.paths import cut
from tests.support.peers import SocketPeer, go_live, open_tab
from tests.support.poll import poll
from tests.support.resume import restart_ice
from tests.support.viewer import DecodingViewer, decoded_size


class Recorder(SocketPeer):
    PUSHES = ("room:state", "room:left", "live:ended")


peer = functools.partial(open_tab, peer=Recorder)


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Any, redis: Redis) -> Any:
    settings.live_grace = 1.0  # a creator's grace period that ends within the test
    return await aiohttp_client(create_app(settings))


async def test_a_viewer_restarts_ice_without_leaving_the_room(app_client: Any,
                                                              closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, size=(640, 360))).ack["live"]["live_id"]
    bob = await peer(app_client, "bob", closers)
    ack = await bob.call("room:join", {"user_id": ann.user.id, "quality": "180"})
    assert ack["ok"], ack
    viewer = DecodingViewer("bob")
    closers.append(viewer)
    assert (await bob.call("rtc:answer", {"live_id": live_id,
                                          "sdp": await viewer.answer(ack["offer"])}))["ok"]
    await poll(lambda: decoded_size(viewer) == (320, 180) and viewer.video_frames >= 10,
               timeout=10, what="bob decoding at 180p")
    await poll(lambda: any(p["viewers"] == 1 for p in ann.got("room:state")),
               what="the creator told of one viewer")
    state_pushes = len(ann.got("room:state"))

    cut(viewer.pc)
    await restart_ice(bob, viewer, live_id)
    frames = viewer.video_frames
    await poll(lambda: viewer.video_frames >= frames + 15, timeout=10,
               what="bob decoding again after the restart")
    assert decoded_size(viewer) == (320, 180)  # the quality pin held
    listed = await ann.call("room:viewers", {"live_id": live_id})
    assert listed["count"] == 1, listed
    assert len(ann.got("room:state")) == state_pushes  # no count change pushed
    assert bob.got("room:left") == []
    quality = await bob.call("room:quality", {"live_id": live_id, "quality": "180"})
    assert quality["ok"] and quality["rendition"] == "180", quality

    # refusals: a live it has no stream in, an unknown live
    cat = await peer(app_client, "cat", closers)
    assert (await cat.call("room:join", {"user_id": ann.user.id, "media": False}))["ok"]
    for who, payload in ((cat, {"live_id": live_id}), (bob, {"live_id": "0" * 16})):
        refused = await who.call("rtc:restart", payload)
        assert refused["error"]["code"] == "not_found", refused


async def test_a_creator_restarts_ice_from_a_new_socket_within_the_grace_period(
        app_client: Any, closers: list[Any]) -> None:
    """The creator's socket and path both die (a network change); its new socket sends
    live:restart from the same peer connection: the grace period ends, the live goes on,
    and its viewer keeps decoding without rejoining."""
    ann = await peer(app_client, "ann", closers)
    on_air = await go_live(ann, closers)
    live_id = on_air.ack["live"]["live_id"]
    bob = await peer(app_client, "bob", closers)
    ack = await bob.call("room:join", {"user_id": ann.user.id})
    viewer = DecodingViewer("bob")
    closers.append(viewer)
    assert (await bob.call("rtc:answer", {"live_id": live_id,
                                          "sdp": await viewer.answer(ack["offer"])}))["ok"]
    await poll(lambda: viewer.video_frames >= 10, timeout=10, what="bob decoding")

    creator = on_air.creator
    cut(creator.pc)
    await ann.sio.disconnect()  # its grace period starts (1 s here)
    back = await open_tab(app_client, ann.user, closers, peer=Recorder)
    ice = IceRestart(creator.pc.getTransceivers()[0].sender.transport)
    offer = with_ice(creator.pc.localDescription.sdp, await ice.gather())
    restarted = await back.call("live:restart", {"offer": offer})
    assert restarted["ok"], restarted
    assert restarted["live"]["live_id"] == live_id
    await ice.connect(read_ice(restarted["answer"]))
    frames = viewer.video_frames
    # 60 frames at 30 fps: 2 s, past the 1 s grace period that the restart ended
    await poll(lambda: viewer.video_frames >= frames + 60, timeout=10,
               what="bob decoding the creator's new path")
    assert bob.got("live:ended") == [] and bob.got("room:left") == []
    watched = await bob.call("live:watch", {"user_id": ann.user.id})
    assert watched["live"]["live_id"] == live_id

    # the same offer again keeps the (now current) ICE: not a restart
    refused = await back.call("live:restart", {"offer": offer})
    assert refused["error"]["code"] == "invalid", refused
    refused = await bob.call("live:restart", {"offer": offer})
    assert refused["error"]["code"] == "not_found", refused
