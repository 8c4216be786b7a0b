"""A bench viewer that closes leaves the room at once (real server, real Redis, a real
aiortc viewer over loopback): python-socketio closes the websocket before its goodbye, so
a plain disconnect reads as a lost network that the server holds, still counted, for
GOLIVE_VIEWER_RESUME_GRACE (10 s); the bench's viewers say room:leave first
(golive.client.close_socket, shared with GoliveClient.close)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from bench.viewers import BenchViewer
from signaling.app import create_app
from signaling.appkeys import GATEWAY, LIVES
from tests.support.peers import go_live, open_tab, register
from tests.support.poll import poll
from tests.support.resume import Recorder

# Well under the 10 s hold: a count back at 0 this soon can only come from the leave.
LEAVE_SEEN_S = 5.0


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Any, redis: Redis) -> Any:
    settings.viewer_resume_grace = 10.0  # the default: what the bench's servers hold
    return await aiohttp_client(create_app(settings))


async def test_a_bench_viewers_close_drops_the_room_count_at_once(
        app_client: Any, closers: list[Any]) -> None:
    ann = await open_tab(app_client, "ann", closers, peer=Recorder)
    await go_live(ann, closers)
    bob = await register(app_client, "bob")  # the bench viewer signs in with its token
    viewer = BenchViewer({"id": "bob", "token": bob.token}, str(app_client.make_url("/")),
                         ann.user.id, decode=False, codec="vp8")
    closers.append(viewer)
    await viewer.join()
    assert viewer.state == "watching"
    await poll(lambda: [p["viewers"] for p in ann.got("room:state")] == [1],
               what="the creator told of bob")

    # what the server holds once each socket's disconnect is handled (after LiveRooms's)
    gateway, lives = app_client.app[GATEWAY], app_client.app[LIVES]
    held_at_disconnect: list[list[str]] = []

    async def note(_conn: Any) -> None:
        held_at_disconnect.append([hold.user_id for hold in lives.holds.held()])

    gateway.disconnect_listeners.append(note)
    sid = viewer.sio.get_sid()

    await viewer.close()
    assert viewer.state == "left"
    # its room:leave was answered before close() returned: out of the room already (a
    # plain disconnect left it there, held, until its peer connection's close was seen)
    hosted = lives.hosted[ann.user.id]
    assert hosted.viewers == {} and lives.holds.held() == []
    await poll(lambda: [p["viewers"] for p in ann.got("room:state")] == [1, 0],
               timeout=LEAVE_SEEN_S, what="bob's leave counted (not held for a resume)")
    await poll(lambda: sid not in gateway.connections, timeout=LEAVE_SEEN_S,
               what="the server saw bob's socket go")
    assert held_at_disconnect == [[]]  # never held for a resume
    await poll(lambda: hosted.media.viewer_ids == [], timeout=LEAVE_SEEN_S,
               what="bob's media ended")
    assert lives.holds.held() == []
