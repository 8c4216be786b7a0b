"""Likes and the viewer list through the real server (Socket.IO, Redis), and the plain
rules behind them; also a creator back after the grace period (live:start resume_of)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
from redis.asyncio import Redis

from engine import keys
from engine.audience import viewer_order
from engine.errors import DomainError
from engine.likes import MAX_TAPS_PER_EVENT, check_may_like, check_taps
from media.synthetic import HeadlessCreator
from signaling.app import create_app
from tests.support.peers import SocketPeer, go_live, open_tab
from tests.support.poll import poll


class Peer(SocketPeer):
    PUSHES = ("live:likes", "room:state", "live:ended")


peer = functools.partial(open_tab, peer=Peer)


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Any, redis: Redis) -> Any:
    settings.like_rate = 4.0  # burst 8
    settings.live_grace = 0.5
    return await aiohttp_client(create_app(settings))


def test_like_rules() -> None:
    assert check_taps(1) == 1 and check_taps(MAX_TAPS_PER_EVENT) == MAX_TAPS_PER_EVENT
    for bad in (0, -1, MAX_TAPS_PER_EVENT + 1):
        with pytest.raises(DomainError):
            check_taps(bad)
    check_may_like(is_creator=False, is_member=True)
    for creator, member, reason in ((True, True, "creator"), (False, False, "not_member")):
        with pytest.raises(DomainError) as refused:
            check_may_like(is_creator=creator, is_member=member)
        assert refused.value.to_payload()["reason"] == reason


def test_viewer_list_puts_top_gifters_first() -> None:
    ids = ["b" * 16, "anon-1", "a" * 16, "c" * 16, "anon-2"]
    ranked, anonymous = viewer_order(ids, {"c" * 16: 50, "b" * 16: 5, "z" * 16: 99})
    assert ranked == [("c" * 16, 50), ("b" * 16, 5), ("a" * 16, 0)]
    assert anonymous == 2
    assert viewer_order(ids, {}, limit=1)[0] == [("a" * 16, 0)]


async def test_likes_count_and_are_pushed_coalesced(app_client: Any, redis: Redis,
                                                    closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    on_air = await go_live(ann, closers)
    live_id = on_air.live_id
    bob = await peer(app_client, "bob", closers)
    cat = await peer(app_client, "cat", closers)

    # Not in the live yet: refused, nothing counted.
    early = await bob.call("live:like", {"live_id": live_id, "count": 3})
    assert early["error"]["code"] == "forbidden" and early["error"]["reason"] == "not_member"
    own = await ann.call("live:like", {"live_id": live_id, "count": 1})
    assert own["error"]["reason"] == "creator"
    for p in (bob, cat):
        assert (await p.call("room:join", {"user_id": ann.user.id, "media": False}))["ok"]

    replies = await asyncio.gather(*(p.call("live:like", {"live_id": live_id, "count": n})
                                     for p in (bob, cat) for n in (5, 10)))
    assert all(r["ok"] for r in replies)
    assert max(r["likes"] for r in replies) == 30
    assert int(await redis.get(keys.live_likes(live_id))) == 30
    # One coalesced push carries the total to everyone in the room.
    await poll(lambda: any(p["likes"] == 30 for p in ann.got("live:likes")))
    await poll(lambda: any(p["likes"] == 30 for p in bob.got("live:likes")))
    assert len(ann.got("live:likes")) <= 2
    bad = await bob.call("live:like", {"live_id": live_id, "count": MAX_TAPS_PER_EVENT + 1})
    assert bad["error"]["code"] == "invalid"
    # The count is in the join ack for a late arrival.
    dan = await peer(app_client, "dan", closers)
    assert (await dan.call("room:join", {"user_id": ann.user.id, "media": False}))["likes"] == 30


async def test_likes_are_rate_limited_per_connection(app_client: Any, redis: Redis,
                                                     closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    on_air = await go_live(ann, closers)
    bob = await peer(app_client, "bob", closers)
    assert (await bob.call("room:join", {"user_id": ann.user.id, "media": False}))["ok"]
    codes = [(await bob.call("live:like", {"live_id": on_air.live_id, "count": 1}))
             .get("error", {}).get("code", "ok") for _ in range(10)]
    assert codes[:8] == ["ok"] * 8 and "rate_limited" in codes[8:]
    assert int(await redis.get(keys.live_likes(on_air.live_id))) == codes.count("ok")


async def test_viewer_list_over_the_socket(app_client: Any, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    on_air = await go_live(ann, closers)
    viewers = [await peer(app_client, name, closers) for name in ("bob", "cat")]
    for p in viewers:
        assert (await p.call("room:join", {"user_id": ann.user.id, "media": False}))["ok"]
    listed = await ann.call("room:viewers", {"live_id": on_air.live_id})
    assert listed["ok"] and listed["count"] == 2 and listed["anonymous"] == 0
    assert sorted(v["user"]["username"] for v in listed["viewers"]) == ["bob", "cat"]
    outsider = await peer(app_client, "eve", closers)
    refused = await outsider.call("room:viewers", {"live_id": on_air.live_id})
    assert refused["error"]["code"] == "forbidden"


async def test_a_creator_back_after_the_grace_period_is_told_it_ended(
        app_client: Any, redis: Redis, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    on_air = await go_live(ann, closers, "first")
    # A resume within the grace period keeps the live.
    again = HeadlessCreator.synthetic(320, 180, 30)
    closers.append(again)
    kept = await ann.call("live:start", {"offer": await again.offer(),
                                         "resume_of": on_air.live_id}, timeout=20)
    assert kept["ok"] and kept["resumed"] and kept["live"]["live_id"] == on_air.live_id
    await again.accept_answer(kept["answer"])
    # The creator's socket drops past the grace period: the live ends.
    await ann.sio.disconnect()
    await poll(lambda: _gone(redis, ann.user.id), timeout=10)
    back = await peer(app_client, ann.user, closers)
    late = HeadlessCreator.synthetic(320, 180, 30)
    closers.append(late)
    refused = await back.call("live:start", {"offer": await late.offer(),
                                             "resume_of": on_air.live_id}, timeout=20)
    assert refused["error"]["code"] == "not_found"
    assert refused["error"]["reason"] == "live_ended"
    assert refused["error"]["live_id"] == on_air.live_id
    assert await redis.exists(keys.live(ann.user.id)) == 0  # no silent new live
    # Asked to, they start a new one.
    fresh = await back.call("live:start", {"offer": await late.offer(), "title": "second"},
                            timeout=20)
    assert fresh["ok"] and fresh["live"]["live_id"] != on_air.live_id


async def _gone(redis: Redis, creator_id: str) -> bool:
    return not await redis.exists(keys.live(creator_id))
