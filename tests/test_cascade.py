"""The cascade across real nodes: three `golive serve` processes on one real redis-server,
a creator on A (a real headless aiortc creator), viewers on B and C decoding frames with
real aiortc peers. The origin relays the live once to each edge with viewers
(media/relay.py); a gift sent on C shows in C's viewer's video; relays open on an
edge's first viewer and close after its last; the end of the live on A ends B's and
C's viewers; the relay port refuses clients without the cluster's secret. And with
`--workers 2`, each worker serves the other's live's viewers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import socketio
from redis.asyncio import Redis

from engine import keys
from engine.catalog import load_catalog
from engine.gift_room import GiftMoment
from media.overlay import overlay_layout
from media.relay import RelayClient, RelayError, relay_key
from signaling.app import NODE_HEADER
from signaling.cascade import relay_address
from signaling.gifts import gift_overlay, hex_color
from signaling.push_bus import GIFT_SHOWN, encode_envelope
from tests.support.cluster import (
    NODE_ENV,
    RedisProcess,
    Tab,
    nodes_on_one_redis,
    register,
    tab,
)
from tests.support.peers import User, go_live
from tests.support.poll import poll
from tests.support.servers import ServerProcess
from tests.support.viewer import DecodingViewer
from tests.support.workers import session_on, start_workers


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[RedisProcess, list[ServerProcess]]]:
    with nodes_on_one_redis(tmp_path, ("node-a", "node-b", "node-c")) as nodes:
        yield nodes


async def metric(url: str, name: str, labels: str = "") -> float:
    """One sample of a node's /metrics (0 when absent)."""
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
        text = await resp.text()
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.e+-]+)"
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


async def watch(peer: Tab, creator_id: str, closers: list[Any]) -> DecodingViewer:
    ack = await peer.call("room:join", {"user_id": creator_id})
    assert ack["ok"] and ack["offer"], ack
    viewer = DecodingViewer(peer.user.username)
    closers.append(viewer)
    answer = await viewer.answer(ack["offer"])
    assert (await peer.call("rtc:answer", {"live_id": ack["live"]["live_id"], "sdp": answer}))[
        "ok"]
    return viewer


def rose_badge_shown(viewer: DecodingViewer, username: str) -> bool:
    """The Rose's badge colour in its left padding, where the origin's layout puts it."""
    frame = viewer.last_video
    if frame is None or (frame.width, frame.height) != (640, 360):
        return False
    rose = load_catalog().gift("rose")
    icon = rose.icon_png.read_bytes() if rose.icon_png.exists() else None
    overlay = gift_overlay(rose, username, GiftMoment("", "", 1, 0, True), icon)
    [(_, rect)] = overlay_layout([overlay], 640, 360)
    rgb = frame.to_ndarray(format="rgb24").astype(int)
    pad = 3 * rect.scale
    patch = rgb[rect.y + 2 : rect.y + rect.height - 2, rect.x + 2 : rect.x + pad - 1]
    return bool(np.all(np.abs(patch.reshape(-1, 3).mean(axis=0) - hex_color(rose.color)) < 30))


async def test_viewers_on_other_nodes_watch_through_relays(
        nodes: tuple[RedisProcess, list[ServerProcess]], closers: list[Any]) -> None:
    redis_process, (a, b, c) = nodes
    carol_user = await register(a.url, "carol")
    carol = await tab(a.url, carol_user, closers)
    onair = await go_live(carol, closers, "cascade", size=(640, 360), fps=15)

    # dan on B and eve on C: each edge opens one relay from A and decodes the live
    dan = await tab(b.url, await register(b.url, "dan"), closers)
    eve = await tab(c.url, await register(c.url, "eve"), closers)
    dan_view = await watch(dan, carol_user.id, closers)
    eve_view = await watch(eve, carol_user.id, closers)
    await poll(lambda: dan_view.video_frames >= 5 and eve_view.video_frames >= 5,
               timeout=20, what="decoded video on B and C")
    await poll(lambda: eve_view.audio_frames >= 5, what="audio on C")
    assert await metric(a.url, "golive_relays_open", 'side="origin"') == 2
    assert await metric(b.url, "golive_relays_open", 'side="edge"') == 1
    await poll(lambda: carol.got("room:state") and carol.got("room:state")[-1]["viewers"] == 2,
               what="the origin counts both edges' viewers")

    # a second viewer on B shares B's relay
    fay = await tab(b.url, await register(b.url, "fay"), closers)
    fay_view = await watch(fay, carol_user.id, closers)
    await poll(lambda: fay_view.video_frames >= 5, timeout=20, what="fay on B")
    assert await metric(a.url, "golive_relays_open", 'side="origin"') == 2
    assert await metric(a.url, "golive_relay_frames_total", 'edge="node-b"') > 0

    # a gift sent on C: its badge is drawn by A's compositor, seen in C's decoded video
    async with aiohttp.ClientSession() as http:
        resp = await http.post(c.url + "/api/coins/checkout", json={"package_id": "coins_1400"},
                               headers={"Authorization": f"Bearer {eve.user.token}"})
        assert resp.status == 200, await resp.text()
    sent = await eve.call("gift:send", {"transfer_id": "cascade-gift-1",
                                        "creator": carol_user.id, "gift_id": "rose"})
    assert sent["ok"], sent
    await poll(lambda: rose_badge_shown(eve_view, "eve"), timeout=10,
               what="the gift's badge in C's viewer's video")
    await poll(lambda: dan.got("gift:received"), what="the gift's push on B")

    # B's last viewer leaves: B's relay closes; C's stays
    assert (await dan.call("room:leave", {"live_id": onair.live_id}))["ok"]
    assert await metric(b.url, "golive_relays_open", 'side="edge"') == 1
    assert (await fay.call("room:leave", {"live_id": onair.live_id}))["ok"]

    async def b_closed() -> bool:
        return (await metric(b.url, "golive_relays_open", 'side="edge"') == 0
                and await metric(a.url, "golive_relays_open", 'side="origin"') == 1)

    await poll(b_closed, what="B's relay closed at B and at A")
    assert await metric(a.url, "golive_relay_frames_dropped_total", 'edge="node-b"') == 0

    # the relay port: without the cluster's secret, or for an unknown live, refused
    redis = Redis.from_url(redis_process.url, decode_responses=True)
    try:
        address = str(await redis.hget(keys.node("node-a"), "relay"))
        # a forged badge on the live's bus channel: dropped and logged by the origin
        await redis.publish(f"golive:push:live:{onair.live_id}", encode_envelope(
            "intruder", GIFT_SHOWN, f"live:{onair.live_id}", "{not json"))
        await poll(lambda: "gift badge from another node dropped" in a.log(),
                   what="the forged badge dropped at A")
    finally:
        await redis.aclose()
    assert address == relay_address(a.url.split("//")[1], int(address.rpartition(":")[2]))
    assert address.startswith("127.0.0.1:") and not address.endswith(a.url.rpartition(":")[2])
    with pytest.raises(RelayError) as refused:
        await RelayClient(address, relay_key(b"a guess" * 8), "intruder", onair.live_id).open()
    assert refused.value.code == "unauthorized"
    cluster_key = relay_key(NODE_ENV["GOLIVE_SECRET"].encode())
    with pytest.raises(RelayError) as stranger:  # the secret, but no node of the cluster
        await RelayClient(address, cluster_key, "node-x", onair.live_id).open()
    assert stranger.value.code == "forbidden"
    with pytest.raises(RelayError) as unknown:
        await RelayClient(address, cluster_key, "node-c", "no-such-live").open()
    assert unknown.value.code == "not_found"
    for reason in ("unauthorized", "forbidden", "not_found"):
        assert await metric(a.url, "golive_relay_refused_total", f'reason="{reason}"') == 1
    assert eve_view.video_frames > 0 and not eve_view.ended  # A kept serving C

    # the live ends on A: C's viewer gets live:ended, its media ends, C's relay closes
    assert (await carol.call("live:end", {}))["ok"]
    await poll(lambda: eve.got("live:ended"), what="live:ended on C")
    assert eve.got("live:ended")[0]["reason"] == "ended_by_creator"
    await poll(lambda: eve_view.pc.connectionState in ("closed", "failed") or eve_view.ended,
               timeout=15, what="C's viewer's media ended")

    async def c_closed() -> bool:
        return (await metric(c.url, "golive_relays_open", 'side="edge"') == 0
                and await metric(a.url, "golive_relays_open", 'side="origin"') == 0)

    await poll(c_closed, what="every relay closed")


async def test_two_workers_serve_each_others_viewers(tmp_path: Path, server_factory: Any,
                                                     closers: list[Any]) -> None:
    """`golive serve --workers 2`: the creator's socket on one worker, a viewer's on the
    other; the other worker serves the viewer through a relay."""
    server, serving = await asyncio.to_thread(start_workers, server_factory, tmp_path / "data")
    origin, edge = serving["nodes"]
    sessions = [await session_on(server.url, origin), await session_on(server.url, edge)]
    closers.extend(sessions)

    async def tab_on(session: aiohttp.ClientSession, name: str) -> Tab:
        async with session.post(server.url + "/api/register", json={
                "username": name, "display_name": name, "password": "correct-horse-1",
                "birthdate": "1990-01-01"}) as resp:
            body = await resp.json()
            assert resp.status == 201, body
        sio = socketio.AsyncClient(serializer="msgpack", reconnection=False,
                                   http_session=session)
        await sio.connect(server.url, auth={"token": body["token"]}, transports=["websocket"])
        closers.append(sio)
        return Tab(sio, User(body["user"]["id"], name, body["token"]))

    carol = await tab_on(sessions[0], "carol")
    await go_live(carol, closers, "two workers", size=(320, 180), fps=15)
    dan = await tab_on(sessions[1], "dan")
    viewer = await watch(dan, carol.user.id, closers)
    await poll(lambda: viewer.video_frames >= 5, timeout=20, what="video via the other worker")

    # the sessions' one connection each now carries a websocket: a fresh one for /metrics
    metrics = await session_on(server.url, edge)
    closers.append(metrics)

    async def edge_relays() -> float:
        async with metrics.get(server.url + "/metrics") as resp:
            assert resp.headers[NODE_HEADER] == edge
            text = await resp.text()
        found = re.search(r'golive_relays_open\{side="edge"\} ([0-9.]+)', text)
        return float(found.group(1)) if found else 0.0

    assert await edge_relays() == 1

    # the creator back through the other worker (a reload whose connection the kernel
    # gave to it): told where the live runs, so the studio opens a new connection
    other = await session_on(server.url, edge)
    closers.append(other)
    sio = socketio.AsyncClient(serializer="msgpack", reconnection=False, http_session=other)
    await sio.connect(server.url, auth={"token": carol.user.token}, transports=["websocket"])
    closers.append(sio)
    ack = await sio.call("live:start", {"title": "again", "offer": "v=0"}, timeout=10)
    assert ack["error"]["code"] == "conflict" and ack["error"]["reason"] == "other_node", ack
    assert ack["error"]["node"] == origin
