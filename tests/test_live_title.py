"""The title of a running live, changed by its creator (live:title), and Discover's
suggestions when nobody is live (user:suggest): real server, real Redis, real clients."""

from __future__ import annotations

import functools
from typing import Any

from redis.asyncio import Redis

from engine import keys
from tests.support.peers import SocketPeer, go_live, open_tab
from tests.support.poll import poll
from tests.support.state import snapshot


class Peer(SocketPeer):
    PUSHES = ("live:title", "discover:update", "room:state")


peer = functools.partial(open_tab, peer=Peer)


async def test_the_creator_changes_the_title_while_live(client: Any, redis: Redis,
                                                        redis_url: str,
                                                        closers: list[Any]) -> None:
    ann = await peer(client, "ann", closers)
    bob = await peer(client, "bob", closers)
    cat = await peer(client, "cat", closers)
    # not live yet: nothing to rename, nothing written
    before = await snapshot(redis_url)
    ack = await ann.call("live:title", {"title": "too early"})
    assert ack["error"]["code"] == "not_found"
    assert await snapshot(redis_url) == before
    live_id = (await go_live(ann, closers, "first title", fps=15)).live_id
    assert (await bob.call("room:join", {"user_id": ann.user.id, "media": False}))["ok"]
    assert (await cat.call("live:watch", {"user_id": ann.user.id}))["ok"]
    assert (await cat.call("discover:watch", {}))["ok"]

    ack = await ann.call("live:title", {"title": "  Q&A:   ask me anything  "})
    assert ack["ok"] and ack["live"]["title"] == "Q&A: ask me anything", ack
    assert ack["live"]["live_id"] == live_id
    want = {"live_id": live_id, "creator_id": ann.user.id, "title": "Q&A: ask me anything"}
    await poll(lambda: bob.got("live:title") and cat.got("live:title"))
    assert bob.got("live:title")[-1] == want and cat.got("live:title")[-1] == want
    assert await redis.hget(keys.live(ann.user.id), "title") == "Q&A: ask me anything"
    await poll(lambda: any(live["title"] == "Q&A: ask me anything"
                           for push in cat.got("discover:update") for live in push["lives"]))
    # the profile and a late joiner see it too
    profile = await (await client.get("/api/users/ann")).json()
    assert profile["live"]["title"] == "Q&A: ask me anything"

    # bad titles: refused, nothing changed; a viewer cannot rename someone else's live
    before = await snapshot(redis_url)
    for title in ("x" * 101, "bidi \u202e override"):
        ack = await ann.call("live:title", {"title": title})
        assert (ack["error"]["code"], ack["error"]["field"]) == ("invalid", "title"), ack
    assert (await ann.call("live:title", {}))["error"]["code"] == "invalid"
    assert (await bob.call("live:title", {"title": "mine now"}))["error"]["code"] == "not_found"
    assert await snapshot(redis_url) == before


async def test_suggestions_when_nobody_is_live(client: Any, closers: list[Any]) -> None:
    ann, bob, cat, dan, eve = [await peer(client, n, closers)
                               for n in ("ann", "bob", "cat", "dan", "eve")]
    # ann follows bob and cat; both follow dan, cat follows eve too
    for who, whom in ((ann, bob), (ann, cat), (bob, dan), (cat, dan), (cat, eve),
                      (bob, ann)):
        assert (await who.call("user:follow", {"user_id": whom.user.id}))["ok"]
    ack = await ann.call("user:suggest", {})
    assert [u["username"] for u in ack["users"]] == ["dan", "eve"]  # most shared first
    assert ack["recent"] == []
    # eve went LIVE (and ended): a recent creator; a block hides people either way
    await go_live(eve, closers, "short one", fps=15)
    assert (await eve.call("live:end", {}))["ok"]
    ack = await ann.call("user:suggest", {})
    assert [u["username"] for u in ack["recent"]] == ["eve"]
    assert (await eve.call("user:block", {"user_id": ann.user.id}))["ok"]
    ack = await ann.call("user:suggest", {})
    assert [u["username"] for u in ack["users"]] == ["dan"] and ack["recent"] == []
    assert (await ann.call("user:suggest", {"limit": 0}))["error"]["code"] == "invalid"
