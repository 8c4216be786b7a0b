"""A viewer's network really drops (its media in a network namespace, a veth pair to the
root namespace: tests/support/netns.py) together with its socket, and comes back on a
new address: the page's new socket resumes the held join (room:resume) and restarts
ICE over it, and the same server-side viewer decodes again, counted once throughout.
Its Socket.IO client runs in the test process (loopback), the drop of its transport
done by hand at the moment the link goes."""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from signaling.app import create_app
from signaling.appkeys import LIVES
from tests.support import netns
from tests.support.netns_viewer import NamespacedViewer
from tests.support.peers import go_live, open_tab
from tests.support.poll import poll
from tests.support.resume import Recorder, drop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(netns.unavailable_reason() is not None,
                                reason=str(netns.unavailable_reason()))

peer = functools.partial(open_tab, peer=Recorder)


@pytest.fixture
def namespace() -> Any:
    with netns.Namespace(218) as ns:
        yield ns


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Any, redis: Redis, namespace: Any) -> Any:
    settings.viewer_resume_grace = 30.0
    # the server's ICE on loopback (the creator) and on the veth's root end (the viewer)
    settings.ice_addresses = f"127.0.0.1,{namespace.root_addr}"
    return await aiohttp_client(create_app(settings))


async def test_a_viewer_whose_network_drops_and_moves_resumes_its_held_join(
        app_client: Any, namespace: Any, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    live_id = (await go_live(ann, closers)).live_id
    bob = await peer(app_client, "bob", closers)
    ack = await bob.call("room:join", {"user_id": ann.user.id})
    assert ack["ok"], ack
    viewer = NamespacedViewer(namespace.exec_args(), cwd=ROOT)
    closers.append(viewer)
    assert (await bob.call("rtc:answer", {"live_id": live_id,
                                          "sdp": await viewer.answer(ack["offer"])}))["ok"]
    await poll(lambda: viewer.frames >= 30, timeout=20, what="the namespaced viewer decoding")
    await poll(lambda: [p["viewers"] for p in ann.got("room:state")] == [1],
               what="the creator told of one viewer")
    media = app_client.app[LIVES].hosted[ann.user.id].media
    (key,) = media.viewer_ids
    server_peer = media._viewers[key]

    namespace.set_link(False)  # the viewer's network is gone, and its socket with it
    lost_at = time.monotonic()
    await drop(app_client, bob)
    assert len(app_client.app[LIVES].holds.held()) == 1
    namespace.set_link(True)
    new_address = namespace.readdress()  # back, on another network (the old address gone)
    frames = viewer.frames

    back = await open_tab(app_client, bob.user, closers, peer=Recorder)
    resumed = await back.call("room:resume", {"live_id": live_id, "token": ack["resume_token"]})
    assert resumed["ok"] and resumed["viewers"] == 1, resumed
    restart = await back.call("rtc:restart", {"live_id": live_id})
    assert restart["ok"], restart
    answer = await viewer.restart(restart["offer"])
    assert (await back.call("rtc:answer", {"live_id": live_id, "sdp": answer}))["ok"]
    await poll(lambda: viewer.frames >= frames + 30, timeout=20,
               what="30 frames decoded on the new address")
    back_s = time.monotonic() - lost_at
    assert viewer.last.get("restart_error") is None
    assert media.viewer_ids == [key] and media._viewers[key] is server_peer  # never re-added
    assert (await ann.call("room:viewers", {"live_id": live_id}))["count"] == 1
    assert [p["viewers"] for p in ann.got("room:state")] == [1]  # no blip
    assert back.got("room:left") == []
    print(f"network drop + move to {new_address}: decoding again (30 frames) "
          f"{back_s:.2f} s after the link went down, on the same peer connection")
