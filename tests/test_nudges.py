"""Nudges and notifications through the real server: real Socket.IO clients, real Redis,
a real aiortc creator going live.

Nudge to alert in every tab, the bell's state across reloads, every limit and the
opt-out, blocks, bad input that stores nothing, going live telling each nudger and
alert follower once (online in several tabs, or offline into the inbox), insights,
follows and message requests in the inbox, and nudges copied to Messages."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from redis.asyncio import Redis

from engine import keys
from engine.nudge_rules import NudgeLimits
from signaling.appkeys import SERVICES
from tests.support.peers import SocketPeer, go_live, open_tab
from tests.support.poll import poll
from tests.support.state import SKIP, snapshot

DAY = 24 * 3600


class Tab(SocketPeer):
    """One signed-in browser tab."""

    PUSHES = ("notify:new", "notify:unread", "nudge:waiting", "nudge:sent", "dm:message",
              "live:started", "nudge:came")

    def alerts(self, kind: str) -> list[dict[str, Any]]:
        return [p for p in self.got("notify:new") if p["notification"]["kind"] == kind]


tab = functools.partial(open_tab, peer=Tab)


async def nudge(t: Tab, creator: Tab | str) -> dict[str, Any]:
    target = creator if isinstance(creator, str) else creator.user.id
    return await t.call("nudge:send", {"user_id": target})


async def fanout_done(client: Any, redis: Redis, live_id: str) -> None:
    """Wait until the go-live job is finished (its hash is gone, nothing queued)."""
    await poll(lambda: _job_gone(redis, live_id), timeout=10)


async def _job_gone(redis: Redis, live_id: str) -> bool:
    return not await redis.exists(keys.notify_job(live_id)) and not await redis.llen(
        keys.notify_jobs())


async def test_a_nudge_alerts_every_tab_of_the_creator_and_the_bell_remembers(
        client: Any, closers: list[Any]) -> None:
    carol = await tab(client, "carol", closers)
    carol2 = await tab(client, carol.user, closers)
    bob = await tab(client, "bob", closers)
    dave = await tab(client, "dave", closers)

    ack = await nudge(bob, carol)
    assert ack["ok"] and ack["nudged"] is True and ack["retry_after"] == DAY
    assert ack["creator"]["username"] == "carol"
    for t in (carol, carol2):
        alert = (await poll(lambda t=t: t.alerts("nudge")))[0]
        assert alert["alert"] == "Bob nudged you to go live!" and alert["unread"] == 1
        assert alert["notification"]["text"] == "Bob nudged you to go live"
        assert alert["notification"]["link"] == "/studio"
        assert (await poll(lambda t=t: t.got("nudge:waiting")))[-1] == {"waiting": 1}
    await poll(lambda: bob.got("nudge:sent"))

    state = await bob.call("nudge:state", {"user_id": carol.user.id})
    assert state["ok"] and state["nudged"] is True and state["allowed"] is True
    assert state["live"] is False and DAY - 60 < state["retry_after"] <= DAY
    reloaded = await tab(client, bob.user, closers)  # a reload: a new connection
    assert (await reloaded.call("nudge:state", {"user_id": carol.user.id}))["nudged"] is True
    assert (await dave.call("nudge:state", {"user_id": carol.user.id}))["nudged"] is False

    # a second nudger the same day: one inbox line, aggregated, still one unread
    assert (await nudge(dave, carol))["ok"]
    await poll(lambda: len(carol.alerts("nudge")) == 2)
    second = carol.alerts("nudge")[1]
    assert second["alert"] == "Dave nudged you to go live!" and second["merged"] is True
    assert second["unread"] == 1
    inbox = await carol.call("notify:list", {})
    assert [n["text"] for n in inbox["notifications"]] == ["Dave and Bob nudged you to go live"]
    assert inbox["unread"] == 1 and inbox["more"] is False
    assert (await carol.call("nudge:waiting", {})) == {
        "ok": True, "waiting": 2, "settings": {"allow": True, "dm": False}}
    insights = await carol.call("nudge:insights", {})
    assert len(insights["days"]) == 30 and insights["days"][-1]["nudges"] == 2
    assert insights["totals"]["nudges"] == 2 and insights["waiting"] == 2


async def test_every_limit_refuses_with_the_time_to_wait_and_stores_nothing(
        client: Any, redis_url: str, closers: list[Any]) -> None:
    services = client.app[SERVICES]
    services.nudges.limits = NudgeLimits.configured(window_s=DAY, hourly_cap=3)
    bob = await tab(client, "bob", closers)
    creators = [await tab(client, f"creator{n}", closers) for n in range(4)]

    assert (await nudge(bob, creators[0]))["ok"]
    before = await snapshot(redis_url)
    again = await nudge(bob, creators[0])
    assert again["error"]["code"] == "rate_limited"
    assert again["error"]["reason"] == "already_nudged"
    assert DAY - 60 < again["error"]["retry_after"] <= DAY
    assert await snapshot(redis_url) == before

    assert (await nudge(bob, creators[1]))["ok"] and (await nudge(bob, creators[2]))["ok"]
    before = await snapshot(redis_url)
    capped = await nudge(bob, creators[3])
    assert capped["error"]["code"] == "rate_limited" and capped["error"]["reason"] == "hourly_cap"
    assert 3500 < capped["error"]["retry_after"] <= 3600
    assert await snapshot(redis_url) == before

    # a flood of one sender at one creator, all at once: exactly one gets through
    services.nudges.limits = NudgeLimits.configured(window_s=DAY, hourly_cap=100)
    eve = await tab(client, "eve", closers)
    target = await tab(client, "target", closers)
    answers = await asyncio.gather(*(nudge(eve, target) for _ in range(30)))
    assert sum(1 for a in answers if a["ok"]) == 1
    assert {a["error"]["reason"] for a in answers if not a["ok"]} == {"already_nudged"}
    assert (await target.call("nudge:waiting", {}))["waiting"] == 1
    assert (await target.call("notify:list", {}))["unread"] == 1

    # the window is configuration: a short one lets the same pair nudge again
    services.nudges.limits = NudgeLimits.configured(window_s=0.3, hourly_cap=100)
    fay = await tab(client, "fay", closers)
    assert (await nudge(fay, target))["ok"]
    assert (await nudge(fay, target))["error"]["reason"] == "already_nudged"
    await poll(lambda: _ok(nudge(fay, target)), timeout=3, interval=0.1)
    assert (await target.call("nudge:waiting", {}))["waiting"] == 2  # fay counts once


async def _ok(answer: Any) -> bool:
    return bool((await answer)["ok"])


async def test_opt_out_blocks_live_and_bad_input_are_refused_and_store_nothing(
        client: Any, redis_url: str, closers: list[Any]) -> None:
    carol = await tab(client, "carol", closers)
    bob = await tab(client, "bob", closers)
    eve = await tab(client, "eve", closers)
    frank = await tab(client, "frank", closers)
    assert (await eve.call("user:block", {"user_id": carol.user.id}))["ok"]
    assert (await carol.call("user:block", {"user_id": frank.user.id}))["ok"]
    settings = await carol.call("nudge:settings", {"allow": False})
    assert settings["settings"] == {"allow": False, "dm": False}

    before = await snapshot(redis_url)
    off = await nudge(bob, carol)
    assert off["error"]["code"] == "forbidden" and off["error"]["reason"] == "nudges_off"
    assert (await bob.call("nudge:state", {"user_id": carol.user.id}))["allowed"] is False
    for blocked in (eve, frank):
        answer = await nudge(blocked, carol)
        assert answer["error"]["code"] == "forbidden" and answer["error"]["reason"] == "blocked"
    assert (await nudge(bob, bob))["error"]["code"] == "invalid"
    assert (await nudge(bob, "0123456789abcdef"))["error"]["code"] == "not_found"
    for payload in ({}, {"user_id": 5}, {"user_id": "ABC"}, {"user_id": "x" * 5000},
                    {"user_id": carol.user.id, "extra": 1}, "carol", None, [carol.user.id]):
        answer = await bob.call("nudge:send", payload)
        assert answer["error"]["code"] == "invalid", (payload, answer)
    for event, payload in (("nudge:settings", {"allow": "yes"}), ("nudge:state", {}),
                           ("alerts:set", {"user_id": carol.user.id}),
                           ("notify:read", {"id": "../x"}), ("notify:list", {"before": "x"}),
                           ("notify:list", {"limit": 0})):
        assert (await bob.call(event, payload))["error"]["code"] == "invalid", event
    assert (await bob.call("notify:read", {"id": "0123456789abcdef"}))["error"]["code"] \
        == "not_found"
    assert (await bob.call("nudge:state", {"user_id": "0123456789abcdef"}))["error"]["code"] \
        == "not_found"
    assert await snapshot(redis_url) == before

    # switched back on (the default), and a live creator cannot be nudged
    assert (await carol.call("nudge:settings", {"allow": True}))["settings"]["allow"] is True
    assert (await nudge(bob, carol))["ok"]
    gus = await tab(client, "gus", closers)
    await go_live(carol, closers, "on air", size=(160, 96), fps=15)
    before = await snapshot(redis_url, skip=(*SKIP, *(keys.CORE + name for name in (
        "live_viewers:", "lives", "notif", "notify_job"))))
    live = await nudge(gus, carol)
    assert live["error"]["code"] == "conflict" and live["error"]["reason"] == "live"
    assert (await gus.call("nudge:state", {"user_id": carol.user.id}))["live"] is True
    assert await snapshot(redis_url, skip=(*SKIP, *(keys.CORE + name for name in (
        "live_viewers:", "lives", "notif", "notify_job")))) == before


async def test_going_live_tells_each_nudger_and_alert_follower_once(
        client: Any, redis: Redis, closers: list[Any]) -> None:
    carol = await tab(client, "carol", closers)
    bob = await tab(client, "bob", closers)
    bob2 = await tab(client, bob.user, closers)
    dave = await tab(client, "dave", closers)
    erin = await tab(client, "erin", closers)
    frank = await tab(client, "frank", closers)
    gina = await tab(client, "gina", closers)
    hank = await tab(client, "hank", closers)
    for t in (erin, frank, gina):
        assert (await t.call("user:follow", {"user_id": carol.user.id}))["ok"]
    for t in (erin, frank):
        assert (await t.call("alerts:set", {"user_id": carol.user.id, "on": True}))["on"]
    for t in (bob, dave, erin, hank):
        assert (await nudge(t, carol))["ok"]
    assert (await carol.call("user:block", {"user_id": hank.user.id}))["ok"]
    await dave.sio.disconnect()  # offline when carol goes live

    ack = (await go_live(carol, closers, "Morning show", size=(160, 96), fps=15)).ack
    live_id = ack["live"]["live_id"]
    await fanout_done(client, redis, live_id)
    for t in (bob, bob2, erin, frank):
        lives = await poll(lambda t=t: t.alerts("live"))
        assert lives[0]["alert"] == "Carol is LIVE: Morning show"
        assert lives[0]["notification"]["link"] == "/@carol"
        assert lives[0]["notification"]["id"] == live_id
    await poll(lambda: carol.got("nudge:waiting") and carol.got("nudge:waiting")[-1]
               == {"waiting": 0})
    await asyncio.sleep(0.3)  # anything sent twice would have arrived by now
    for t in (bob, bob2, erin, frank):
        assert len(t.alerts("live")) == 1, t.user.username
    assert gina.alerts("live") == [] and hank.alerts("live") == []

    # offline: it waits in the inbox, once
    dave_again = await tab(client, dave.user, closers)
    inbox = await dave_again.call("notify:list", {})
    assert [n["text"] for n in inbox["notifications"]] == ["Carol is LIVE: Morning show"]
    assert inbox["unread"] == 1
    for t in (bob, erin):
        assert [n["id"] for n in (await t.call("notify:list", {}))["notifications"]
                if n["kind"] == "live"] == [live_id]
    assert (await gina.call("notify:list", {}))["notifications"] == []
    assert (await hank.call("notify:list", {}))["notifications"] == []

    # the waiting count and the bell reset; insights count who came
    assert (await carol.call("nudge:waiting", {}))["waiting"] == 0
    assert (await bob.call("nudge:state", {"user_id": carol.user.id}))["nudged"] is False
    joined = await bob.call("room:join", {"user_id": carol.user.id, "media": False})
    assert joined["ok"], joined
    joined = await bob2.call("room:join", {"user_id": carol.user.id, "media": False})
    assert joined["ok"]
    assert (await gina.call("room:join", {"user_id": carol.user.id, "media": False}))["ok"]
    # the studio is told at once that a nudger came (bob's second tab is no second one)
    await poll(lambda: carol.got("nudge:came"))
    assert carol.got("nudge:came") == [{"live_id": live_id, "nudgers": 4, "came": 1}]
    insights = await carol.call("nudge:insights", {})
    assert insights["lives"] == [{"live_id": live_id, "title": "Morning show",
                                  "started_at": ack["live"]["started_at"], "nudgers": 4,
                                  "came": 1}]
    assert insights["totals"] == {"nudges": 4, "nudgers": 4, "came": 1}


async def test_follows_and_message_requests_land_in_the_inbox(
        client: Any, closers: list[Any]) -> None:
    carol = await tab(client, "carol", closers)
    carol2 = await tab(client, carol.user, closers)
    bob = await tab(client, "bob", closers)
    dave = await tab(client, "dave", closers)
    assert (await bob.call("user:follow", {"user_id": carol.user.id}))["ok"]
    follow = (await poll(lambda: carol.alerts("follow")))[0]
    assert follow["alert"] == "Bob started following you" and follow["unread"] == 1
    # over HTTP too, merged into the day's line
    resp = await client.post("/api/users/carol/follow",
                             headers={"Authorization": f"Bearer {dave.user.token}"})
    assert resp.status == 200
    await poll(lambda: len(carol.alerts("follow")) == 2)
    # following again after an unfollow does not count twice
    assert (await bob.call("user:unfollow", {"user_id": carol.user.id}))["ok"]
    assert (await bob.call("user:follow", {"user_id": carol.user.id}))["ok"]
    await poll(lambda: len(carol.alerts("follow")) == 3)
    sent = await dave.call("dm:send", {"to": carol.user.id, "text": "hi carol"})
    assert sent["ok"] and sent["route"] == "request"
    request = (await poll(lambda: carol.alerts("message_request")))[0]
    assert request["notification"]["link"] == f"/messages?c={sent['conversation_id']}"
    assert request["alert"] == "Dave sent you a message request"
    assert (await dave.call("dm:send", {"to": carol.user.id, "text": "hello?"}))["ok"] is False

    page1 = await carol.call("notify:list", {"limit": 1})
    assert [n["text"] for n in page1["notifications"]] == ["Dave sent you a message request"]
    assert page1["more"] is True and page1["unread"] == 2
    page2 = await carol.call("notify:list", {"limit": 1, "before": page1["next"]})
    assert [n["text"] for n in page2["notifications"]] == [
        "Bob and Dave started following you"]
    assert page2["more"] is False and page2["next"] is None

    read = await carol.call("notify:read", {"id": page1["notifications"][0]["id"]})
    assert read == {"ok": True, "id": page1["notifications"][0]["id"], "unread": 1}
    await poll(lambda: carol2.got("notify:unread") and carol2.got("notify:unread")[-1]
               == {"unread": 1})
    assert (await carol.call("notify:read_all", {})) == {"ok": True, "unread": 0}
    await poll(lambda: carol2.got("notify:unread")[-1] == {"unread": 0})
    assert (await carol2.call("notify:unread", {})) == {"ok": True, "unread": 0}
    assert all(n["read"] for n in (await carol.call("notify:list", {}))["notifications"])


async def test_a_nudge_shows_in_messages_when_the_creator_asks(
        client: Any, closers: list[Any]) -> None:
    carol = await tab(client, "carol", closers)
    bob = await tab(client, "bob", closers)
    dave = await tab(client, "dave", closers)
    assert (await carol.call("user:follow", {"user_id": bob.user.id}))["ok"]
    assert (await carol.call("nudge:settings", {"dm": True}))["settings"] == {"allow": True,
                                                                              "dm": True}
    assert (await nudge(bob, carol))["ok"]
    pushed = (await poll(lambda: carol.got("dm:message")))[0]
    assert pushed["message"]["card"]["kind"] == "nudge"
    assert pushed["message"]["card"]["user"]["username"] == "bob"
    assert pushed["conversation"]["last"]["text"] == "Nudged you to go live"
    assert pushed["conversation"]["state"] == "accepted"
    conv = pushed["conversation"]["conversation_id"]
    history = await carol.call("dm:history", {"conversation_id": conv})
    assert [m["card"]["kind"] for m in history["messages"]] == ["nudge"]
    assert (await carol.call("dm:unread", {})) == {"ok": True, "total": 1, "requests": 0}
    # it counts against none of bob's message limits, and he can write as before
    assert (await bob.call("dm:send", {"to": carol.user.id, "text": "please go live"}))["ok"]
    # from someone carol does not follow it would be a Message Request: not posted
    assert (await nudge(dave, carol))["ok"]
    await poll(lambda: len(carol.alerts("nudge")) == 2)
    assert len(carol.got("dm:message")) == 2  # bob's nudge and bob's message only
    assert (await carol.call("dm:requests", {}))["conversations"] == []


async def test_live_alerts_are_for_followers(client: Any, closers: list[Any]) -> None:
    carol = await tab(client, "carol", closers)
    bob = await tab(client, "bob", closers)
    refused = await bob.call("alerts:set", {"user_id": carol.user.id, "on": True})
    assert refused["error"]["code"] == "forbidden"
    assert refused["error"]["reason"] == "not_following"
    assert (await bob.call("alerts:set", {"user_id": bob.user.id, "on": True}))["error"][
        "code"] == "invalid"
    assert (await bob.call("user:follow", {"user_id": carol.user.id}))["ok"]
    assert (await bob.call("alerts:set", {"user_id": carol.user.id, "on": True}))["on"] is True
    assert (await bob.call("nudge:state", {"user_id": carol.user.id}))["alerts"] is True
    assert (await bob.call("user:unfollow", {"user_id": carol.user.id}))["ok"]
    assert (await bob.call("nudge:state", {"user_id": carol.user.id}))["alerts"] is False
    assert (await bob.call("alerts:set", {"user_id": carol.user.id, "on": False}))["on"] is False
    own = await carol.call("nudge:state", {"user_id": carol.user.id})
    assert own["is_self"] is True and own["allowed"] is False


async def test_a_creator_too_young_to_go_live_cannot_be_nudged(
        client: Any, redis_url: str, closers: list[Any]) -> None:
    teen = await tab(client, "teen", closers, birthdate="2011-05-05")
    bob = await tab(client, "bob", closers)
    state = await bob.call("nudge:state", {"user_id": teen.user.id})
    assert state["ok"] and state["allowed"] is False  # no bell for them
    before = await snapshot(redis_url)
    refused = await nudge(bob, teen)
    assert refused["error"]["code"] == "forbidden" and refused["error"]["reason"] == "under_age"
    assert await snapshot(redis_url) == before
    assert teen.got("notify:new") == []
