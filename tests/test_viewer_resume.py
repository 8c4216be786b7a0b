"""A viewer whose socket drops resumes on a new socket (room:resume) without rejoining
(real server, real Redis, real aiortc peers over loopback): its peer connection, its
place in the count and its quality pin are held for GOLIVE_VIEWER_RESUME_GRACE, the new
socket takes them back with the resume token of its join, and ICE restarts over it.
The rules themselves: tests/test_viewer_resume_rules.py."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import pytest
from redis.asyncio import Redis

from signaling.app import create_app
from signaling.appkeys import LIVES
from tests.support.paths import cut
from tests.support.peers import SocketPeer, anonymous_tab, go_live, open_tab
from tests.support.poll import poll
from tests.support.resume import Recorder, drop, restart_ice
from tests.support.viewer import DecodingViewer, decoded_size

peer = functools.partial(open_tab, peer=Recorder)
visitor = functools.partial(anonymous_tab, peer=Recorder)  # a signed-out tab


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Any, redis: Redis) -> Any:
    settings.viewer_resume_grace = 30.0  # never runs out within a test that resumes
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def short_hold_client(aiohttp_client: Any, settings: Any, redis: Redis) -> Any:
    settings.viewer_resume_grace = 0.5
    return await aiohttp_client(create_app(settings))


async def watch(tab: SocketPeer, creator_id: str, live_id: str, closers: list[Any],
                quality: str = "auto") -> tuple[dict[str, Any], DecodingViewer]:
    ack = await tab.call("room:join", {"user_id": creator_id, "quality": quality})
    assert ack["ok"], ack
    viewer = DecodingViewer("viewer")
    closers.append(viewer)
    assert (await tab.call("rtc:answer", {"live_id": live_id,
                                          "sdp": await viewer.answer(ack["offer"])}))["ok"]
    await poll(lambda: viewer.video_frames >= 10, timeout=10, what="the viewer decoding")
    return ack, viewer


class Watching(NamedTuple):
    ann: Recorder
    live_id: str
    bob: Recorder
    ack: dict[str, Any]  # bob's room:join
    viewer: DecodingViewer


async def ann_live_bob_watching(client: Any, closers: list[Any], *,
                                size: tuple[int, int] = (320, 180),
                                quality: str = "auto") -> Watching:
    """Ann LIVE (a synthetic creator of `size`) and Bob watching at `quality`, decoding;
    Ann's room:state pushes say one viewer."""
    ann = await peer(client, "ann", closers)
    live_id = (await go_live(ann, closers, size=size)).live_id
    bob = await peer(client, "bob", closers)
    ack, viewer = await watch(bob, ann.user.id, live_id, closers, quality=quality)
    await poll(lambda: [p["viewers"] for p in ann.got("room:state")] == [1],
               what="the creator told of one viewer")
    return Watching(ann, live_id, bob, ack, viewer)


async def test_a_viewer_resumes_on_a_new_socket_with_the_same_peer_connection(
        app_client: Any, closers: list[Any]) -> None:
    ann, live_id, bob, ack, viewer = await ann_live_bob_watching(
        app_client, closers, size=(640, 360), quality="180")
    token = ack["resume_token"]
    assert isinstance(token, str) and len(token) >= 32
    await poll(lambda: decoded_size(viewer) == (320, 180), timeout=10, what="bob at 180p")
    pc = viewer.pc

    old_sid = await drop(app_client, bob)
    lives = app_client.app[LIVES]
    assert [h.sid for h in lives.holds.held()] == [old_sid]
    # its media is held: the server's peer connection still sends
    frames = viewer.video_frames
    await poll(lambda: viewer.video_frames >= frames + 10, timeout=10,
               what="bob decoding while its socket is away")

    cut(viewer.pc)  # the network changed too: the old path is dead
    back = await open_tab(app_client, bob.user, closers, peer=Recorder)
    resumed = await back.call("room:resume", {"live_id": live_id, "token": token})
    assert resumed["ok"], resumed
    assert resumed["live"]["live_id"] == live_id and resumed["viewers"] == 1
    assert resumed["likes"] == 0
    assert resumed["quality"] == "180" and resumed["rendition"] == "180"  # the pin held
    assert resumed["resume_token"] not in (None, token)  # a token is used once
    assert lives.holds.held() == []
    await restart_ice(back, viewer, live_id)
    frames = viewer.video_frames
    await poll(lambda: viewer.video_frames >= frames + 15, timeout=10,
               what="bob decoding on its new path")
    assert viewer.pc is pc and decoded_size(viewer) == (320, 180)
    listed = await ann.call("room:viewers", {"live_id": live_id})
    assert listed["count"] == 1, listed
    assert back.got("room:left") == []
    # the new socket is the viewer: its quality, and the room's pushes reach it
    quality = await back.call("room:quality", {"live_id": live_id, "quality": "360"})
    assert quality["ok"] and quality["quality"] == "360", quality
    cat = await peer(app_client, "cat", closers)
    assert (await cat.call("room:join", {"user_id": ann.user.id, "media": False}))["ok"]
    await poll(lambda: any(p["viewers"] == 2 for p in back.got("room:state")),
               what="the resumed socket hears the room")
    # the count never blipped: 1, then 2 when cat came (no 0 pushed by the drop, and no
    # push for the resume itself)
    await poll(lambda: any(p["viewers"] == 2 for p in ann.got("room:state")),
               what="the creator told of cat")
    assert [p["viewers"] for p in ann.got("room:state")] == [1, 2]

    # the resumed socket drops in turn: held again under its token, taken back again
    token = resumed["resume_token"]
    await drop(app_client, back)
    again = await open_tab(app_client, bob.user, closers, peer=Recorder)
    resumed = await again.call("room:resume", {"live_id": live_id, "token": token})
    assert resumed["ok"] and resumed["viewers"] == 2, resumed
    assert (await again.call("room:leave", {"live_id": live_id}))["ok"]
    await poll(lambda: [p["viewers"] for p in ann.got("room:state")][-1] == 1,
               what="bob's leave counted")
    assert lives.holds.held() == []


async def test_resume_token_misuse_is_refused_with_clear_codes(app_client: Any,
                                                              closers: list[Any]) -> None:
    ann, live_id, bob, ack, _ = await ann_live_bob_watching(app_client, closers)
    token = ack["resume_token"]
    cat = await peer(app_client, "cat", closers)

    async def refused(tab: SocketPeer, payload: dict[str, Any]) -> tuple[str, str]:
        reply = await tab.call("room:resume", payload)
        assert not reply["ok"], reply
        return reply["error"]["code"], reply["error"].get("reason")

    # bob's socket is up (as the server sees it): still bob's alone
    assert await refused(cat, {"live_id": live_id, "token": token}) == ("forbidden",
                                                                         "other_user")
    assert (await bob.call("room:resume", {"live_id": live_id, "token": token}))[
        "error"]["code"] == "conflict"  # its own socket: nothing to take
    await drop(app_client, bob)
    # another user, a made-up token, another live id, not a token at all
    assert await refused(cat, {"live_id": live_id, "token": token}) == ("forbidden",
                                                                         "other_user")
    assert await refused(cat, {"live_id": live_id, "token": "A" * 32}) == ("not_found",
                                                                           "unknown_token")
    assert await refused(cat, {"live_id": "f" * 16, "token": token}) == ("not_found",
                                                                         "unknown_token")
    bad = await cat.call("room:resume", {"live_id": live_id, "token": "../../etc"})
    assert bad["error"]["code"] == "invalid", bad
    guest = await visitor(app_client, closers)
    assert await refused(guest, {"live_id": live_id, "token": token}) == ("forbidden",
                                                                          "other_user")
    # cat's tries left the hold to its owner
    back = await open_tab(app_client, bob.user, closers, peer=Recorder)
    assert (await back.call("room:resume", {"live_id": live_id, "token": token}))["ok"]
    assert await refused(back, {"live_id": live_id, "token": token}) == ("not_found",
                                                                         "unknown_token")

    # a visitor's hold: its new anonymous socket (another made-up identity) takes it back;
    # a signed-in user's socket may not
    ack = await guest.call("room:join", {"user_id": ann.user.id, "media": False})
    assert ack["ok"], ack
    await drop(app_client, guest)
    assert await refused(cat, {"live_id": live_id, "token": ack["resume_token"]}) == (
        "forbidden", "other_user")
    again = await visitor(app_client, closers)
    resumed = await again.call("room:resume", {"live_id": live_id, "token": ack["resume_token"]})
    assert resumed["ok"] and resumed["viewers"] == 2, resumed  # bob and the visitor

    # the live ended while a viewer was away
    token = resumed["resume_token"]
    await drop(app_client, again)
    assert (await ann.call("live:end", {}))["ok"]
    last = await visitor(app_client, closers)
    assert await refused(last, {"live_id": live_id, "token": token}) == ("not_found",
                                                                         "live_ended")
    holds = app_client.app[LIVES].holds
    assert holds._bound == {} and holds._tokens == {}  # nothing left of the ended live


async def test_an_unclaimed_hold_expires_and_ends_the_media(short_hold_client: Any,
                                                           closers: list[Any]) -> None:
    client = short_hold_client
    ann, live_id, bob, ack, _ = await ann_live_bob_watching(client, closers)
    await drop(client, bob)
    lives = client.app[LIVES]
    media = lives.hosted[ann.user.id].media
    await poll(lambda: media.viewer_ids == [], timeout=10, what="the held media ended")
    await poll(lambda: [p["viewers"] for p in ann.got("room:state")] == [1, 0],
               what="the count went down once")
    assert lives.holds.held() == [] and lives.hosted[ann.user.id].viewers == {}
    back = await open_tab(client, bob.user, closers, peer=Recorder)
    reply = await back.call("room:resume", {"live_id": live_id, "token": ack["resume_token"]})
    assert reply["error"]["code"] == "not_found", reply
    # the page's fallback: a fresh join works
    assert (await back.call("room:join", {"user_id": ann.user.id, "media": False}))["ok"]


async def test_a_page_back_before_the_server_saw_its_socket_go_takes_its_join(
        app_client: Any, closers: list[Any]) -> None:
    """A lost network is seen by the server only at the old socket's ping timeout (20 s
    and more): the page's new socket, back long before, takes the join from the socket
    the server still thinks open, whose later close then changes nothing."""
    ann, live_id, bob, ack, viewer = await ann_live_bob_watching(app_client, closers)
    pc = viewer.pc
    cut(viewer.pc)
    back = await open_tab(app_client, bob.user, closers, peer=Recorder)
    resumed = await back.call("room:resume", {"live_id": live_id, "token": ack["resume_token"]})
    assert resumed["ok"] and resumed["viewers"] == 1, resumed
    await restart_ice(back, viewer, live_id)
    frames = viewer.video_frames
    await poll(lambda: viewer.video_frames >= frames + 15, timeout=10,
               what="bob decoding on its new path")
    lives = app_client.app[LIVES]
    hosted = lives.hosted[ann.user.id]
    assert list(hosted.viewers) == [back.sio.get_sid()] and viewer.pc is pc
    # the old socket hears the room no more; its close (seen at last) holds nothing
    cat = await peer(app_client, "cat", closers)
    assert (await cat.call("room:join", {"user_id": ann.user.id, "media": False}))["ok"]
    await poll(lambda: any(p["viewers"] == 2 for p in back.got("room:state")),
               what="the new socket hears the room")
    assert all(p["viewers"] == 1 for p in bob.got("room:state"))
    await drop(app_client, bob)
    assert lives.holds.held() == [] and list(hosted.viewers) == [back.sio.get_sid(),
                                                                  cat.sio.get_sid()]
    frames = viewer.video_frames
    await poll(lambda: viewer.video_frames >= frames + 15, timeout=10,
               what="bob decoding after the old socket closed")
    assert [p["viewers"] for p in ann.got("room:state")] == [1, 2]
