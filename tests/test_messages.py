"""Direct messages through the real server: real Socket.IO clients, real Redis.

Message Requests, accept and delete, settings, ages, blocks, multi-tab delivery,
read receipts, typing, unread counts, history pages, shared cards, spam control,
reports, and bad input that stores nothing."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from redis.asyncio import Redis

from engine import keys
from engine.message_rules import MessageLimits
from engine.throttle import Window
from media.synthetic import HeadlessCreator
from signaling.appkeys import SERVICES
from tests.support.peers import SocketPeer, open_tab
from tests.support.poll import poll
from tests.support.state import SKIP, snapshot


class Tab(SocketPeer):
    """One signed-in browser tab."""

    PUSHES = ("dm:message", "dm:unread", "dm:seen", "dm:typing", "dm:conversation",
              "dm:deleted")

    async def send(self, to: Tab | str, text: str | None = None, **extra: Any) -> dict[str, Any]:
        target = to if isinstance(to, str) else to.user.id
        payload: dict[str, Any] = {"to": target, **extra}
        if text is not None:
            payload["text"] = text
        return await self.call("dm:send", payload)


tab = functools.partial(open_tab, peer=Tab)


def conv(a: Tab, b: Tab) -> str:
    return "".join(sorted((a.user.id, b.user.id)))


async def befriend(a: Tab, b: Tab) -> None:
    assert (await a.call("user:follow", {"user_id": b.user.id}))["ok"]
    assert (await b.call("user:follow", {"user_id": a.user.id}))["ok"]


def set_limits(client: Any, **changes: Any) -> None:
    messages = client.app[SERVICES].messages
    base = messages.limits
    messages.limits = MessageLimits(**{**{f: getattr(base, f) for f in (
        "text_max", "page_max", "list_max", "stream_max", "rate", "new_conversations",
        "repeats")}, **changes})


async def test_message_requests_accept_delete_and_report(
        client: Any, redis_url: str, closers: list[Any]) -> None:
    alice = await tab(client, "alice", closers)
    bob = await tab(client, "bob", closers)
    carol = await tab(client, "carol", closers)

    # bob does not follow alice: her first message waits in his requests
    sent = await alice.send(bob, "hi bob, loved your stream")
    assert sent["ok"] and sent["route"] == "request" and sent["state"] == "requested"
    requests = await bob.call("dm:requests", {})
    assert [c["conversation_id"] for c in requests["conversations"]] == [conv(alice, bob)]
    row = requests["conversations"][0]
    assert row["request"] is True and row["with"]["username"] == "alice"
    assert row["last"]["text"] == "hi bob, loved your stream" and row["unread"] == 1
    assert (await bob.call("dm:list", {}))["conversations"] == []
    mine = (await alice.call("dm:list", {}))["conversations"]
    assert mine[0]["pending"] is True and mine[0]["unread"] == 0
    assert (await bob.call("dm:unread", {})) == {"ok": True, "total": 1, "requests": 1}
    history = await bob.call("dm:history", {"conversation_id": conv(alice, bob)})
    assert history["request"] is True and history["seen"] is None

    # she cannot send more until he accepts; nothing is stored
    before = await snapshot(redis_url)
    more = await alice.send(bob, "hello??")
    assert more["error"]["code"] == "forbidden" and more["error"]["reason"] == "request_pending"
    assert await snapshot(redis_url) == before

    accepted = await bob.call("dm:accept", {"conversation_id": conv(alice, bob)})
    assert accepted["ok"] and accepted["conversation"]["state"] == "accepted"
    assert (await bob.call("dm:requests", {}))["conversations"] == []
    assert [c["with"]["username"] for c in (await bob.call("dm:list", {}))["conversations"]] \
        == ["alice"]
    await poll(lambda: alice.got("dm:conversation"))
    assert alice.got("dm:conversation")[-1]["conversation"]["state"] == "accepted"
    again = await bob.call("dm:accept", {"conversation_id": conv(alice, bob)})
    assert again["error"]["code"] == "conflict"
    assert (await alice.send(bob, "thanks!"))["route"] == "inbox"

    # carol's request is deleted (declined): gone for bob; carol still cannot write
    await carol.send(bob, "buy my course")
    spam_id = (await bob.call("dm:history", {"conversation_id": conv(bob, carol)})
               )["messages"][0]["id"]
    report = await bob.call("report:create", {
        "kind": "message", "conversation_id": conv(bob, carol), "message_id": spam_id,
        "reason": "spam", "note": "sends this to everyone"})
    assert report["ok"]
    assert (await bob.call("dm:delete", {"conversation_id": conv(bob, carol)}))["ok"]
    assert (await bob.call("dm:requests", {}))["conversations"] == []
    assert (await bob.call("dm:unread", {})) == {"ok": True, "total": 2, "requests": 0}
    assert (await carol.send(bob, "hello?"))["error"]["reason"] == "request_pending"
    assert (await bob.call("dm:accept", {"conversation_id": conv(bob, carol)})
            )["error"]["code"] == "not_found"
    stored = await client.app[SERVICES].reports.latest()
    assert stored[0].as_dict() | {"id": "", "at": 0} == {
        "id": "", "at": 0, "reporter": bob.user.id, "kind": "message",
        "target": carol.user.id, "reason": "spam", "note": "sends this to everyone",
        "content": {"conversation_id": conv(bob, carol), "message_id": spam_id,
                    "text": "buy my course", "card": None}}
    # a user report keeps who they were
    assert (await bob.call("report:create", {"kind": "user", "user_id": carol.user.id,
                                             "reason": "harassment"}))["ok"]
    assert (await client.app[SERVICES].reports.latest())[0].content["username"] == "carol"


async def test_followed_senders_land_in_the_inbox(client: Any, closers: list[Any]) -> None:
    alice = await tab(client, "alice", closers)
    bob = await tab(client, "bob", closers)
    await bob.call("user:follow", {"user_id": alice.user.id})
    sent = await alice.send(bob, "you follow me, so this is in your inbox")
    assert sent["route"] == "inbox" and sent["state"] == "accepted"
    assert (await bob.call("dm:requests", {}))["conversations"] == []
    assert len((await bob.call("dm:list", {}))["conversations"]) == 1
    # answering a request accepts it too
    carol = await tab(client, "carol", closers)
    await carol.send(alice, "hi alice")
    assert (await alice.send(carol, "hi carol"))["route"] == "inbox"
    assert (await carol.send(alice, "more"))["ok"]
    assert (await alice.call("dm:requests", {}))["conversations"] == []


async def test_who_may_message_me(client: Any, closers: list[Any]) -> None:
    alice = await tab(client, "alice", closers)
    bob = await tab(client, "bob", closers)
    teen = await tab(client, "teen", closers, birthdate="2009-06-01")  # 16-17
    kid = await tab(client, "kid", closers, birthdate="2012-01-01")    # 13-15
    assert (await bob.call("settings:get", {}))["dm_policy"] == "everyone"
    assert (await teen.call("settings:get", {}))["dm_policy"] == "friends"

    ack = await bob.call("settings:update", {"dm_policy": "none"})
    assert ack == {"ok": True, "dm_policy": "none"}
    assert (await alice.send(bob, "hi"))["error"]["reason"] == "no_one"
    await bob.call("settings:update", {"dm_policy": "friends"})
    assert (await alice.send(bob, "hi"))["error"]["reason"] == "friends_only"
    await bob.call("user:follow", {"user_id": alice.user.id})
    assert (await alice.send(bob, "hi"))["error"]["reason"] == "friends_only"
    await alice.call("user:follow", {"user_id": bob.user.id})
    assert (await alice.send(bob, "now we are friends"))["ok"]

    # minors: friends by default; under 16 nothing at all
    assert (await alice.send(teen, "hi"))["error"]["reason"] == "friends_only"
    await befriend(alice, teen)
    assert (await alice.send(teen, "hi"))["ok"]
    await befriend(alice, kid)
    for ack in (await alice.send(kid, "hi"), await kid.send(alice, "hi")):
        assert ack["error"]["code"] == "forbidden" and ack["error"]["reason"] == "age"


async def test_blocks_stop_messages_both_ways(client: Any, redis_url: str,
                                              closers: list[Any]) -> None:
    alice = await tab(client, "alice", closers)
    bob = await tab(client, "bob", closers)
    await befriend(alice, bob)
    assert (await alice.send(bob, "hi"))["ok"]
    await bob.call("user:block", {"user_id": alice.user.id})
    before = await snapshot(redis_url)
    for ack in (await alice.send(bob, "hello?"), await bob.send(alice, "bye")):
        assert ack["error"]["code"] == "forbidden" and ack["error"]["reason"] == "blocked"
    typing = await alice.call("dm:typing", {"conversation_id": conv(alice, bob)})
    assert typing == {"ok": True, "delivered": False}
    assert await snapshot(redis_url) == before


async def test_a_block_ends_read_receipts(client: Any, closers: list[Any]) -> None:
    """After a block the conversation stays readable on both sides, but neither is told
    when the other reads it any more (as typing): no dm:seen, no `seen` in dm:history
    or dm:list."""
    alice = await tab(client, "alice", closers)
    bob = await tab(client, "bob", closers)
    await befriend(alice, bob)
    c = conv(alice, bob)
    first = (await alice.send(bob, "one"))["message"]["id"]
    second = (await alice.send(bob, "two"))["message"]["id"]
    assert (await bob.call("dm:read", {"conversation_id": c, "message_id": first}))["ok"]
    await poll(lambda: alice.got("dm:seen"))
    assert (await alice.call("dm:history", {"conversation_id": c}))["seen"] == first

    assert (await alice.call("user:block", {"user_id": bob.user.id}))["ok"]
    assert (await bob.call("dm:read", {"conversation_id": c, "message_id": second}))["ok"]
    # A push to alice after bob's read: a dm:seen sent to her would have come before it
    # (one channel per user, in order).
    badges = len(alice.got("dm:unread"))
    assert (await alice.call("dm:read", {"conversation_id": c, "message_id": second}))["ok"]
    await poll(lambda: len(alice.got("dm:unread")) > badges, what="alice's own push")
    assert len(alice.got("dm:seen")) == 1
    for me in (alice, bob):
        history = await me.call("dm:history", {"conversation_id": c})
        assert history["ok"] and [m["id"] for m in history["messages"]] == [first, second]
        assert history["seen"] is None
        listed = await me.call("dm:list", {})
        assert [v["seen"] for v in listed["conversations"]] == [None]
    assert (await alice.call("dm:typing", {"conversation_id": c}))["delivered"] is False


async def test_every_tab_gets_messages_receipts_typing_and_unread(
        client: Any, closers: list[Any]) -> None:
    alice = await tab(client, "alice", closers)
    bob1 = await tab(client, "bob", closers)
    bob2 = await tab(client, bob1.user, closers)
    await befriend(alice, bob1)
    c = conv(alice, bob1)
    sent = await alice.send(bob1, "are you there?")
    message = sent["message"]
    for t in (bob1, bob2):
        await poll(lambda t=t: t.got("dm:message") and t.got("dm:unread"))
        push = t.got("dm:message")[-1]
        assert push["message"] == message
        assert push["conversation"]["unread"] == 1 and push["conversation"]["with"]["id"] == \
            alice.user.id
        assert t.got("dm:unread")[-1] == {"total": 1, "requests": 0}
    assert alice.got("dm:message")[-1]["message"] == message  # her other tabs too

    await alice.call("dm:typing", {"conversation_id": c})
    for t in (bob1, bob2):
        await poll(lambda t=t: t.got("dm:typing"))
        assert t.got("dm:typing")[-1] == {"conversation_id": c, "user_id": alice.user.id}

    read = await bob1.call("dm:read", {"conversation_id": c, "message_id": message["id"]})
    assert read == {"ok": True, "message_id": message["id"], "unread": 0, "total": 0}
    await poll(lambda: alice.got("dm:seen"))
    assert alice.got("dm:seen")[-1] == {"conversation_id": c, "user_id": bob1.user.id,
                                        "message_id": message["id"]}
    await poll(lambda: bob2.got("dm:unread")[-1]["total"] == 0)
    assert (await alice.call("dm:history", {"conversation_id": c}))["seen"] == message["id"]
    # a read mark never moves back
    first = (await alice.send(bob1, "one more"))["message"]["id"]
    await bob1.call("dm:read", {"conversation_id": c, "message_id": first})
    old = await bob1.call("dm:read", {"conversation_id": c, "message_id": message["id"]})
    assert old["message_id"] == first


async def test_the_inbox_orders_by_latest_message_with_unread_counts(
        client: Any, closers: list[Any]) -> None:
    me = await tab(client, "mel", closers)
    others = [await tab(client, name, closers) for name in ("ann", "ben", "cyd")]
    for other in others:
        await me.call("user:follow", {"user_id": other.user.id})
    await others[0].send(me, "ann 1")
    await others[1].send(me, "ben 1")
    await others[2].send(me, "cy 1")
    await others[0].send(me, "ann 2")
    listed = (await me.call("dm:list", {}))
    assert [(c["with"]["username"], c["last"]["text"], c["unread"])
            for c in listed["conversations"]] == [("ann", "ann 2", 2), ("cyd", "cy 1", 1),
                                                  ("ben", "ben 1", 1)]
    assert listed["unread"] == {"total": 4, "requests": 0}
    page = await me.call("dm:list", {"limit": 2})
    assert page["more"] is True
    rest = await me.call("dm:list", {"before": page["conversations"][-1]["updated_at"]})
    assert [c["with"]["username"] for c in rest["conversations"]] == ["ben"]


async def test_history_comes_page_by_page(client: Any, closers: list[Any]) -> None:
    set_limits(client, rate=Window(1000, 1.0))
    alice = await tab(client, "alice", closers)
    bob = await tab(client, "bob", closers)
    await befriend(alice, bob)
    for n in range(45):
        assert (await alice.send(bob, f"message {n}"))["ok"]
    c = conv(alice, bob)
    pages = []
    before = None
    while True:
        payload: dict[str, Any] = {"conversation_id": c, "limit": 20}
        if before:
            payload["before"] = before
        page = await bob.call("dm:history", payload)
        pages.append([m["text"] for m in page["messages"]])
        if not page["more"]:
            break
        before = page["messages"][0]["id"]
    assert [len(p) for p in pages] == [20, 20, 5]
    assert [text for page in reversed(pages) for text in page] == \
        [f"message {n}" for n in range(45)]
    # a tab that reconnects asks for what came after its last id
    last = (await bob.call("dm:history", {"conversation_id": c}))["messages"][-1]["id"]
    await alice.send(bob, "after the drop")
    missed = await bob.call("dm:history", {"conversation_id": c, "after": last})
    assert [m["text"] for m in missed["messages"]] == ["after the drop"]
    # deleting a conversation hides its history from the deleter only
    await bob.call("dm:delete", {"conversation_id": c})
    assert (await bob.call("dm:history", {"conversation_id": c}))["messages"] == []
    assert len((await alice.call("dm:history", {"conversation_id": c}))["messages"]) == 30
    await alice.send(bob, "still there?")
    assert [m["text"] for m in (await bob.call("dm:history", {"conversation_id": c})
                                )["messages"]] == ["still there?"]


async def test_shared_profiles_and_lives_are_cards(client: Any, closers: list[Any]) -> None:
    alice = await tab(client, "alice", closers)
    bob = await tab(client, "bob", closers)
    star = await tab(client, "star", closers)
    await befriend(alice, bob)
    profile = await alice.send(bob, share={"kind": "profile", "user_id": star.user.id})
    assert profile["message"]["card"] == {"kind": "profile", "user": {
        "id": star.user.id, "username": "star", "display_name": "Star"}}
    assert profile["message"]["text"] == ""
    offline = await alice.send(bob, share={"kind": "live", "user_id": star.user.id})
    assert offline["error"]["code"] == "not_found"
    media = HeadlessCreator.synthetic(320, 180, 15)
    closers.append(media)
    live = await star.call("live:start", {"title": "Star live", "offer": await media.offer()})
    await media.accept_answer(live["answer"])
    card = await alice.send(bob, "watch this!", share={"kind": "live", "user_id": star.user.id})
    assert card["message"]["text"] == "watch this!"
    assert card["message"]["card"]["live"] == {"live_id": live["live"]["live_id"],
                                               "title": "Star live"}
    listed = (await bob.call("dm:list", {}))["conversations"][0]
    assert listed["last"]["text"] == "watch this!"
    await star.call("user:block", {"user_id": alice.user.id})
    blocked = await alice.send(bob, share={"kind": "profile", "user_id": star.user.id})
    assert blocked["error"]["code"] == "forbidden"


async def test_spam_controls(client: Any, redis_url: str, closers: list[Any]) -> None:
    set_limits(client, rate=Window(6, 60.0), new_conversations=Window(2, 3600.0),
               repeats=Window(3, 600.0))
    spammer = await tab(client, "spammer", closers)
    targets = [await tab(client, f"target{n}", closers) for n in range(3)]
    for t in targets:
        await t.call("user:follow", {"user_id": spammer.user.id})  # inboxes, not requests
    pitch = "Cheap coins at example.com"
    assert (await spammer.send(targets[0], pitch))["ok"]
    assert (await spammer.send(targets[1], pitch.upper()))["ok"]
    # a third new conversation within the hour
    counters = (*SKIP, keys.DM + "dm_rate:", keys.DM + "dm_repeat:")
    before = await snapshot(redis_url, skip=counters)
    third = await spammer.send(targets[2], "hello there")
    assert third["error"]["code"] == "rate_limited"
    assert third["error"]["reason"] == "new_conversations"
    assert third["error"]["retry_after"] > 3000
    assert await snapshot(redis_url, skip=counters) == before
    # the same text a fourth time, in any spacing and case
    assert (await spammer.send(targets[0], "cheap  coins at EXAMPLE.com"))["ok"]
    repeated = await spammer.send(targets[1], pitch)
    assert repeated["error"]["reason"] == "repeated"
    # the per-sender rate: 6 a minute, 3 used so far
    acks = [await spammer.send(targets[0], f"note {n}") for n in range(4)]
    assert [a["ok"] for a in acks] == [True, True, True, False]
    assert acks[-1]["error"]["reason"] == "rate"


BAD: list[tuple[str, Any, str, str]] = [
    ("dm:send", {"text": "hi"}, "invalid", "missing required field `to`"),
    ("dm:send", {"to": 5, "text": "hi"}, "invalid", "Expected `str`"),
    ("dm:send", {"to": "{bob}", "text": 5}, "invalid", "Expected `str | null`"),
    ("dm:send", {"to": "{bob}"}, "invalid", "needs text or something to share"),
    ("dm:send", {"to": "{bob}", "text": ""}, "invalid", "cannot be empty"),
    ("dm:send", {"to": "{bob}", "text": " \n "}, "invalid", "cannot be empty"),
    ("dm:send", {"to": "{bob}", "text": "x" * 1001}, "invalid", "at most 1000"),
    ("dm:send", {"to": "{bob}", "text": "x" * 4001}, "invalid", "length <= 4000"),
    ("dm:send", {"to": "{bob}", "text": "bell\x07"}, "invalid", "control characters"),
    ("dm:send", {"to": "{bob}", "text": "rlo\u202e"}, "invalid", "control characters"),
    ("dm:send", {"to": "{bob}", "share": {"kind": "song", "user_id": "{bob}"}}, "invalid",
     "Invalid enum value"),
    ("dm:send", {"to": "{bob}", "share": {"kind": "live"}}, "invalid",
     "missing required field `user_id`"),
    ("dm:send", {"to": "{me}", "text": "note to self"}, "invalid", "yourself"),
    ("dm:send", {"to": "0" * 16, "text": "anyone?"}, "not_found", "no such user"),
    ("dm:send", {"to": "{blocker}", "text": "hi"}, "forbidden", "cannot message"),
    ("dm:send", {"to": "{bob}", "share": {"kind": "profile", "user_id": "0" * 16}},
     "not_found", "no such user"),
    ("dm:history", {"conversation_id": "{theirs}"}, "not_found", "no such conversation"),
    ("dm:history", {"conversation_id": "xyz"}, "invalid", "matching regex"),
    ("dm:history", {"conversation_id": "{ours}", "before": "yesterday"}, "invalid", "regex"),
    ("dm:history", {"conversation_id": "{ours}", "limit": 500}, "invalid", "<= 100"),
    ("dm:read", {"conversation_id": "{theirs}", "message_id": "1-0"}, "not_found", "no such"),
    ("dm:read", {"conversation_id": "{ours}", "message_id": "1-0"}, "not_found", "no such"),
    ("dm:read", {"conversation_id": "{ours}"}, "invalid", "missing required field"),
    ("dm:typing", {"conversation_id": "{theirs}"}, "not_found", "no such conversation"),
    ("dm:accept", {"conversation_id": "{theirs}"}, "not_found", "no such"),
    ("dm:accept", {"conversation_id": "{ours}"}, "conflict", "already accepted"),
    ("dm:delete", {"conversation_id": "{theirs}"}, "not_found", "no such conversation"),
    ("dm:list", {"limit": "10"}, "invalid", "Expected `int`"),
    ("dm:requests", {"box": "spam"}, "invalid", "unknown field `box`"),
    ("settings:update", {"dm_policy": "nobody"}, "invalid", "Invalid enum value"),
    ("settings:update", {"dm_policy": 1}, "invalid", "Expected `str | null`"),
    ("report:create", {"kind": "user", "reason": "spam"}, "invalid", "needs user_id"),
    ("report:create", {"kind": "user", "user_id": "{bob}", "reason": "meh"}, "invalid",
     "reason is one of"),
    ("report:create", {"kind": "user", "user_id": "{me}", "reason": "spam"}, "invalid",
     "yourself"),
    ("report:create", {"kind": "message", "conversation_id": "{theirs}",
                       "message_id": "{their_message}", "reason": "spam"}, "not_found",
     "no such"),
    ("report:create", {"kind": "chat", "live_id": "0" * 16, "message_id": "1-0",
                       "reason": "spam"}, "not_found", "no such message"),
    ("report:create", {"kind": "video", "reason": "spam"}, "invalid", "Invalid enum value"),
]


async def test_bad_input_gets_a_clear_code_and_stores_nothing(
        client: Any, redis_url: str, closers: list[Any]) -> None:
    me = await tab(client, "mel", closers)
    bob = await tab(client, "bob", closers)
    carl = await tab(client, "carl", closers)
    blocker = await tab(client, "blocker", closers)
    await blocker.call("user:block", {"user_id": me.user.id})
    await befriend(me, bob)
    assert (await me.send(bob, "hello"))["ok"]
    their = await carl.send(bob, "a private word")
    names = {"{me}": me.user.id, "{bob}": bob.user.id, "{blocker}": blocker.user.id,
             "{ours}": conv(me, bob), "{theirs}": conv(bob, carl),
             "{their_message}": their["message"]["id"]}

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return names.get(value, value)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    before = await snapshot(redis_url)
    for event, payload, code, words in BAD:
        ack = await me.call(event, fill(payload))
        assert ack["ok"] is False and ack["error"]["code"] == code, (event, payload, ack)
        assert words in ack["error"]["message"], (event, payload, ack)
    assert await snapshot(redis_url) == before
    # markup is text, stored and answered as typed
    html = "<b>bold</b><script>alert('x')</script>\nsecond line"
    ack = await me.send(bob, html)
    assert ack["message"]["text"] == html
    history = await bob.call("dm:history", {"conversation_id": conv(me, bob)})
    assert history["messages"][-1]["text"] == html


async def test_concurrent_first_messages_open_one_request(client: Any, redis: Redis,
                                                          closers: list[Any]) -> None:
    alice1 = await tab(client, "alice", closers)
    alice2 = await tab(client, alice1.user, closers)
    bob = await tab(client, "bob", closers)
    acks = await asyncio.gather(alice1.send(bob, "first from tab 1"),
                                alice2.send(bob, "first from tab 2"))
    assert sorted(a["ok"] for a in acks) == [False, True]
    refused = next(a for a in acks if not a["ok"])
    assert refused["error"]["reason"] == "request_pending"
    assert await redis.xlen(keys.dm(conv(alice1, bob))) == 1
