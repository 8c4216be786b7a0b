"""Pushes across nodes: two real `golive serve` processes on one real redis-server, a
client on each; every kind of push reaches the other node's sockets (signaling/push_bus.py),
viewer counts add up distinct users, a dead node's heartbeat expires and its viewers
leave the counts (signaling/presence.py), and pushes resume after Redis restarts."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from engine import keys
from engine.lives import distinct_viewers
from signaling.push_bus import (
    CHAT_WRITTEN,
    PUSH,
    channel_for,
    decode_envelope,
    encode_envelope,
    room_of,
    sharded_pubsub,
)
from tests.support.cluster import (
    RedisProcess,
    lines,
    nodes_on_one_redis,
    register,
    tab,
)
from tests.support.peers import go_live
from tests.support.poll import poll
from tests.support.servers import ServerProcess

# --- the rules -------------------------------------------------------------------------


def test_channels_are_named_for_their_audience() -> None:
    assert channel_for("user:u1") == "golive:push:user:u1"
    assert channel_for("live:abc") == "golive:push:live:abc"
    assert channel_for("watch:c1") == "golive:push:watch:c1"
    assert channel_for("discover") == "golive:push:discover"
    # a socket's own sid room, and nonsense, stay local
    for local in ("Xy12sid", "user:", "live", "", None, 5):
        assert channel_for(local) is None  # type: ignore[arg-type]
    assert room_of(b"golive:push:user:u1") == "user:u1"
    with pytest.raises(ValueError):
        room_of("other:channel")


def test_envelopes_round_trip_and_garbage_is_refused() -> None:
    data = encode_envelope("node-a", PUSH, "user:u1", b"\x83packet")
    envelope = decode_envelope(data)
    assert (envelope.node, envelope.kind, envelope.room, envelope.body) == (
        "node-a", PUSH, "user:u1", b"\x83packet")
    assert decode_envelope(encode_envelope("n", CHAT_WRITTEN, "live:x", "x")).body == "x"
    import msgpack
    for bad in (b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb(["n", "nope", "r", b""]),
                msgpack.packb(["n", PUSH, "r", "text, not a packet"])):
        with pytest.raises(ValueError):
            decode_envelope(bad)


def test_sharded_pubsub_from_redis_7() -> None:
    assert sharded_pubsub("7.0.15") and sharded_pubsub("7.2.4")
    assert not sharded_pubsub("6.2.14") and not sharded_pubsub("garbage")


def test_viewer_counts_are_distinct_users_on_live_nodes() -> None:
    shares = {"a": {"ann": 2, "bob": 1}, "b": {"bob": 1, "cat": 1}, "dead": {"dan": 3}}
    assert distinct_viewers(shares, {"a", "b"}) == 3
    assert distinct_viewers(shares, {"a", "b", "dead"}) == 4
    assert distinct_viewers(shares, {"b"}) == 2
    assert distinct_viewers({"a": {"ann": 0}}, {"a"}) == 0


# --- a cluster of real processes -----------------------------------------------------------


@dataclass
class Cluster:
    redis: RedisProcess
    a: ServerProcess
    b: ServerProcess
    tmp: Path


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with nodes_on_one_redis(tmp_path, ("node-a", "node-b")) as (redis, (a, b)):
        yield Cluster(redis, a, b, tmp_path)


async def test_dms_typing_and_read_receipts_cross_nodes(cluster: Cluster,
                                                        closers: list[Any]) -> None:
    ann_user = await register(cluster.a.url, "ann")
    bob_user = await register(cluster.b.url, "bob")
    ann = await tab(cluster.a.url, ann_user, closers)
    bob = await tab(cluster.b.url, bob_user, closers)
    # they follow each other (friends may type to each other): each follow notifies
    assert (await ann.call("user:follow", {"user_id": bob_user.id}))["ok"]
    assert (await bob.call("user:follow", {"user_id": ann_user.id}))["ok"]
    await poll(lambda: bob.got("notify:new"), what="ann's follow, on bob's node")
    await poll(lambda: ann.got("notify:new"), what="bob's follow, on ann's node")

    sent = await ann.call("dm:send", {"to": bob_user.id, "text": "hi from A"})
    assert sent["ok"], sent
    await poll(lambda: bob.got("dm:message"), what="the DM on node B")
    assert bob.got("dm:message")[0]["message"]["text"] == "hi from A"
    assert ann.got("dm:message")[0]["message"]["text"] == "hi from A"  # her own tab too
    await poll(lambda: bob.got("dm:unread"), what="bob's unread badge")

    conversation = sent["conversation_id"]
    assert (await bob.call("dm:typing", {"conversation_id": conversation}))["delivered"]
    await poll(lambda: ann.got("dm:typing"), what="bob typing, on node A")
    read = await bob.call("dm:read", {"conversation_id": conversation,
                                      "message_id": sent["message"]["id"]})
    assert read["ok"], read
    await poll(lambda: ann.got("dm:seen"), what="the read receipt, on node A")
    assert ann.got("dm:seen")[0]["user_id"] == bob_user.id
    # each push once, though both nodes hear the channel
    await asyncio.sleep(0.3)
    assert len(bob.got("dm:message")) == 1 and len(ann.got("dm:typing")) == 1


async def test_nudge_alert_reaches_the_creator_on_the_other_node(cluster: Cluster,
                                                                 closers: list[Any]) -> None:
    creator = await register(cluster.b.url, "cara")
    fan = await register(cluster.a.url, "finn")
    cara = await tab(cluster.b.url, creator, closers)
    finn = await tab(cluster.a.url, fan, closers)
    assert (await finn.call("nudge:send", {"user_id": creator.id}))["ok"]
    await poll(lambda: cara.got("notify:new"), what="the nudge alert on node B")
    assert cara.got("notify:new")[0]["notification"]["kind"] == "nudge"
    await poll(lambda: cara.got("nudge:waiting"), what="the nudge count on node B")
    assert cara.got("nudge:waiting")[-1]["waiting"] == 1


async def test_a_live_on_a_reaches_members_and_pages_on_b(cluster: Cluster,
                                                          closers: list[Any]) -> None:
    carol_user = await register(cluster.a.url, "carol")
    dan_user = await register(cluster.b.url, "dan")
    eve_user = await register(cluster.a.url, "eve")
    fay_user = await register(cluster.b.url, "fay")
    carol = await tab(cluster.a.url, carol_user, closers)
    fay = await tab(cluster.b.url, fay_user, closers)
    assert (await fay.call("live:watch", {"user_id": carol_user.id}))["ok"]
    assert (await fay.call("discover:watch", {}))["lives"] == []

    onair = await go_live(carol, closers, "from A", size=(160, 96), fps=10)
    await poll(lambda: fay.got("live:started"), what="live:started on node B")
    assert fay.got("live:started")[0]["live"]["live_id"] == onair.live_id
    await poll(lambda: any(push["lives"] for push in fay.got("discover:update")),
               what="Discover on node B")

    # dan is a member on B, eve on A; dan's second tab on A is the same person. B serves
    # dan's media through its edge room (the cascade); he then stays chat-only.
    dan = await tab(cluster.b.url, dan_user, closers)
    dan_on_a = await tab(cluster.a.url, dan_user, closers)
    eve = await tab(cluster.a.url, eve_user, closers)
    media = await dan.call("room:join", {"user_id": carol_user.id})
    assert media["ok"] and media["offer"], media
    for peer in (dan, dan_on_a, eve):
        joined = await peer.call("room:join", {"user_id": carol_user.id, "media": False})
        assert joined["ok"], joined
    await poll(lambda: carol.got("room:state") and carol.got("room:state")[-1]["viewers"] == 2,
               what="two distinct viewers across nodes")
    await poll(lambda: dan.got("room:state") and dan.got("room:state")[-1]["viewers"] == 2,
               what="the count on node B")

    said = await carol.call("chat:send", {"live_id": onair.live_id, "text": "hello all"})
    assert said["ok"], said
    await poll(lambda: "hello all" in lines(dan), what="the line on node B")
    reply = await dan.call("chat:send", {"live_id": onair.live_id, "text": "hi from B"})
    assert reply["ok"], reply
    await poll(lambda: "hi from B" in lines(carol) and "hi from B" in lines(eve)
               and "hi from B" in lines(dan), what="B's line on both nodes")
    for peer in (carol, dan, dan_on_a, eve):  # once per socket, on either node
        assert lines(peer).count("hello all") == 1 and lines(peer).count("hi from B") == 1

    # a gift on A (eve buys coins there): its push and the board reach dan on B, once
    async with aiohttp.ClientSession() as http:
        resp = await http.post(cluster.a.url + "/api/coins/checkout",
                               json={"package_id": "coins_1400"},
                               headers={"Authorization": f"Bearer {eve_user.token}"})
        assert resp.status == 200, await resp.text()
    gift = await eve.call("gift:send", {"transfer_id": "cross-node-gift-1",
                                        "creator": carol_user.id, "gift_id": "rose"})
    assert gift["ok"], gift
    await poll(lambda: dan.got("gift:received"), what="the gift on node B")
    push = dan.got("gift:received")[0]
    assert push["transfer_id"] == "cross-node-gift-1"
    assert [row["user"]["username"] for row in push["leaderboard"]] == ["eve"]
    await asyncio.sleep(0.3)
    assert len(dan.got("gift:received")) == 1 and len(eve.got("gift:received")) == 1

    assert (await carol.call("live:end", {}))["ok"]
    await poll(lambda: fay.got("live:ended") and dan.got("live:ended"),
               what="live:ended on node B (watch page and member)")
    assert fay.got("live:ended")[0]["live_id"] == onair.live_id
    # every node dropped its share of the ended live's viewers
    redis = Redis.from_url(cluster.redis.url, decode_responses=True)
    try:
        await poll(lambda: _none_left(redis, onair.live_id), what="the shares dropped")
    finally:
        await redis.aclose()


async def _none_left(redis: Redis, live_id: str) -> bool:
    return not await redis.keys(keys.live_viewers(live_id) + "*") and not any(
        [await redis.hlen(keys.node_viewing(node)) for node in ("node-a", "node-b")])


async def test_a_ban_on_a_removes_the_member_on_b(cluster: Cluster,
                                                  closers: list[Any]) -> None:
    creator = await register(cluster.a.url, "mia")
    member = await register(cluster.b.url, "ned")
    mia = await tab(cluster.a.url, creator, closers)
    onair = await go_live(mia, closers, "ban", size=(160, 96), fps=10)
    ned = await tab(cluster.b.url, member, closers)
    assert (await ned.call("room:join", {"user_id": creator.id, "media": False}))["ok"]
    await poll(lambda: mia.got("room:state") and mia.got("room:state")[-1]["viewers"] == 1,
               what="ned counted")
    assert (await mia.call("chat:ban", {"user_id": member.id}))["ok"]
    await poll(lambda: ned.got("room:left") and ned.got("chat:banned"),
               what="the ban on node B")
    assert ned.got("room:left")[-1] == {"live_id": onair.live_id, "reason": "banned"}
    await poll(lambda: mia.got("room:state")[-1]["viewers"] == 0, what="ned uncounted")
    sent = await ned.call("chat:send", {"live_id": onair.live_id, "text": "still here?"})
    assert not sent["ok"]


async def test_a_block_on_a_removes_the_member_on_b(cluster: Cluster,
                                                    closers: list[Any]) -> None:
    """A viewer who joined before the creator blocked them leaves the live on their own
    node (the kick crosses the push bus with its reason) and can no longer chat."""
    creator = await register(cluster.a.url, "kit")
    member = await register(cluster.b.url, "lou")
    kit = await tab(cluster.a.url, creator, closers)
    onair = await go_live(kit, closers, "block", size=(160, 96), fps=10)
    lou = await tab(cluster.b.url, member, closers)
    assert (await lou.call("room:join", {"user_id": creator.id, "media": False}))["ok"]
    await poll(lambda: kit.got("room:state") and kit.got("room:state")[-1]["viewers"] == 1,
               what="lou counted")
    assert (await kit.call("user:block", {"user_id": member.id}))["ok"]
    await poll(lambda: lou.got("room:left"), what="the block on node B")
    assert lou.got("room:left")[-1] == {"live_id": onair.live_id, "reason": "blocked"}
    await poll(lambda: kit.got("room:state")[-1]["viewers"] == 0, what="lou uncounted")
    sent = await lou.call("chat:send", {"live_id": onair.live_id, "text": "still here?"})
    assert sent["error"]["code"] in ("forbidden", "not_found"), sent


async def test_sign_out_on_a_disconnects_the_tab_on_b(cluster: Cluster,
                                                      closers: list[Any]) -> None:
    user = await register(cluster.a.url, "gil")
    on_a = await tab(cluster.a.url, user, closers)
    on_b = await tab(cluster.b.url, user, closers)
    redis = Redis.from_url(cluster.redis.url, decode_responses=True)
    channel = f"golive:push:user:{user.id}"
    try:
        assert (await redis.pubsub_numsub(channel))[0][1] == 2  # one subscriber per node
        async with aiohttp.ClientSession() as http:
            resp = await http.post(cluster.a.url + "/api/signout",
                                   headers={"Authorization": f"Bearer {user.token}"})
            assert resp.status == 200, await resp.text()
        await poll(lambda: not on_b.sio.connected and not on_a.sio.connected,
                   what="both tabs disconnected")

        async def unsubscribed() -> bool:  # the last tab of each node left: both let go
            return (await redis.pubsub_numsub(channel))[0][1] == 0
        await poll(unsubscribed, what="the user's channel unsubscribed on both nodes")
    finally:
        await redis.aclose()


async def test_pushes_resume_after_redis_restarts(cluster: Cluster,
                                                  closers: list[Any]) -> None:
    ann_user = await register(cluster.a.url, "hal")
    bob_user = await register(cluster.b.url, "ida")
    ann = await tab(cluster.a.url, ann_user, closers)
    bob = await tab(cluster.b.url, bob_user, closers)
    assert (await bob.call("user:follow", {"user_id": ann_user.id}))["ok"]  # not a request
    assert (await ann.call("dm:send", {"to": bob_user.id, "text": "before"}))["ok"]
    await poll(lambda: bob.got("dm:message"), what="a DM before the restart")

    cluster.redis.stop()
    cluster.redis.start()

    async def delivered() -> bool:
        # sends until one gets through: the first may meet a reconnecting node
        texts = [push["message"]["text"] for push in bob.got("dm:message")]
        if "after" in texts:
            return True
        sent: Any
        try:
            sent = await ann.call("dm:send", {"to": bob_user.id, "text": "after"}, timeout=3)
        except TimeoutError:
            sent = "timeout"
        assert sent == "timeout" or sent["ok"] or sent["error"]["code"] == "unavailable", sent
        return False

    await poll(delivered, timeout=20, interval=0.5, what="a DM after the restart")
    log = cluster.b.log()
    assert "push bus lost its Redis connection" in log and "push bus reconnected" in log
    async with aiohttp.ClientSession() as http, http.get(cluster.b.url + "/metrics") as resp:
        metrics = await resp.text()
    reconnects = [line for line in metrics.splitlines()
                  if line.startswith("golive_bus_reconnects_total ")]
    assert reconnects and float(reconnects[0].split()[1]) >= 1, reconnects
    assert 'golive_bus_messages_total{outcome="delivered"}' in metrics


async def test_a_killed_node_expires_and_its_viewers_leave_the_count(
        cluster: Cluster, closers: list[Any]) -> None:
    creator = await register(cluster.a.url, "joy")
    viewer_b = await register(cluster.b.url, "kim")
    viewer_a = await register(cluster.a.url, "lea")
    jo = await tab(cluster.a.url, creator, closers)
    onair = await go_live(jo, closers, "count me", size=(160, 96), fps=10)
    kim = await tab(cluster.b.url, viewer_b, closers)
    lea = await tab(cluster.a.url, viewer_a, closers)
    for peer in (kim, lea):
        assert (await peer.call("room:join", {"user_id": creator.id, "media": False}))["ok"]
    await poll(lambda: jo.got("room:state") and jo.got("room:state")[-1]["viewers"] == 2,
               what="two viewers")

    redis = Redis.from_url(cluster.redis.url, decode_responses=True)
    try:
        assert await redis.exists(keys.node("node-b"))
        assert "node-b" in await redis.smembers(keys.nodes())
        os.kill(cluster.b.proc.pid, signal.SIGKILL)
        cluster.b.proc.wait()
        await poll(lambda: _gone(redis, keys.node("node-b")), timeout=10,
                   what="node B's record to expire")
        await poll(lambda: jo.got("room:state")[-1]["viewers"] == 1, timeout=15,
                   what="node B's viewer out of the count")
        assert "node-b" not in await redis.smembers(keys.nodes())
        assert await redis.hlen(keys.live_viewers(onair.live_id)) == 1
        assert await redis.exists(keys.node("node-a"))
    finally:
        await redis.aclose()


async def _gone(redis: Redis, key: str) -> bool:
    return not await redis.exists(key)
