"""Live chat through the real server: real Socket.IO clients, real Redis, a real live
(a headless aiortc creator). Viewers join with room:join; their media is left
unanswered (chat does not need it; the server drops it after 15 s)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from engine import keys, stream_ids
from engine.chat_rules import ChatLimits
from engine.throttle import Window
from signaling.appkeys import GATEWAY, SERVICES
from signaling.chat import CHAT, joined_push_at
from tests.support.chat import Member, join, member
from tests.support.peers import go_live, sio_connect
from tests.support.poll import poll
from tests.support.state import snapshot


def limits(client: Any, **changes: Any) -> None:
    chat = client.app[SERVICES].chat
    chat.limits = ChatLimits(**{**{f: getattr(chat.limits, f) for f in (
        "text_max", "history", "history_max", "stream_max", "retention_s", "rate",
        "joined_every_s", "mute_max_s")}, **changes})


async def test_everyone_sees_one_order_under_concurrent_senders(
        app_client: Any, redis: Redis, closers: list[Any]) -> None:
    limits(app_client, rate=Window(1000, 1.0))
    ann = await member(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "chat test", fps=15)).live_id
    viewers = [await member(app_client, name, closers) for name in ("bob", "cat", "dan")]
    # one more viewer, reading only, whose websocket the server does not know (as for a
    # client on long-polling): its pushes take Engine.IO's queue, in the same order
    eve = await member(app_client, "eve", closers)
    senders = [ann, *viewers]
    everyone = [*senders, eve]
    for viewer in [*viewers, eve]:
        await join(viewer, ann)
    for m in everyone:
        await m.open_chat(live_id)
    sio = app_client.app[GATEWAY].sio
    eve_socket = sio.eio.sockets[sio.manager.eio_sid_from_sid(eve.sio.get_sid(), "/")]
    eve_socket.golive_ws = None

    per_sender = 25
    acks = await asyncio.gather(*(
        m.call("chat:send", {"live_id": live_id, "text": f"{m.user.username} {n}"})
        for n in range(per_sender) for m in senders))
    assert all(a["ok"] for a in acks), [a for a in acks if not a["ok"]][:3]
    total = per_sender * len(senders)
    await poll(lambda: all(len(m.texts()) == total for m in everyone), timeout=10)

    stream = [(i, f) for i, f in await redis.xrange(keys.chat(live_id)) if f["k"] == "m"]
    order = [i for i, _ in stream]
    assert len(order) == total
    for m in everyone:
        got = [i for i in m.items if i["kind"] == "message"]
        assert [i["id"] for i in got] == order  # one order, the stream's, no gaps or dupes
        assert m.gaps == 0
    first = ann.items[-1]
    assert first["user"]["display_name"] in {"Ann", "Bob", "Cat", "Dan", "Eve"}
    assert isinstance(first["at"], float) and first["at"] == stream_ids.seconds(first["id"])
    ids_from_acks = sorted((a["message"]["id"] for a in acks), key=stream_ids.parse)
    assert ids_from_acks == order
    # batching: fewer pushes than lines, each written once per socket
    feed = app_client.app[CHAT].feed
    batches = len(bob_batches := viewers[0].got("chat:messages"))
    assert batches < total, batches
    assert max(len(b["items"]) for b in bob_batches) > 1
    assert feed.totals.queued > 0 and feed.totals.direct > 0


async def test_history_on_join_and_exact_catch_up_after_a_reconnect(
        app_client: Any, redis: Redis, closers: list[Any]) -> None:
    limits(app_client, rate=Window(1000, 1.0))
    ann = await member(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "chat test", fps=15)).live_id
    for n in range(120):
        assert (await ann.call("chat:send", {"live_id": live_id, "text": f"m{n}"}))["ok"]
    bob = await member(app_client, "bob", closers)
    await join(bob, ann)
    ack = await bob.open_chat(live_id)
    # the last 100 lines: 99 messages and bob's own "joined" line
    assert len(ack["items"]) == 100
    assert [i["text"] for i in ack["items"][:-1]] == [f"m{n}" for n in range(21, 120)]
    assert ack["items"][-1]["kind"] == "system" and ack["items"][-1]["text"] == "Bob joined"
    assert ack["last"] == ack["items"][-1]["id"]
    assert ack["settings"] == {"slow_mode": 0} and ack["you"] == {"creator": False,
                                                                  "moderator": False,
                                                                  "muted_until": 0}
    await ann.open_chat(live_id)
    await ann.call("chat:send", {"live_id": live_id, "text": "while bob is here"})
    await poll(lambda: bob.texts()[-1:] == ["while bob is here"])
    doomed = bob.items[-1]["id"]

    # bob's connection drops; the chat goes on
    await bob.sio.disconnect()
    for n in range(5):
        await ann.call("chat:send", {"live_id": live_id, "text": f"missed {n}"})
    assert (await ann.call("chat:delete", {"live_id": live_id, "message_id": doomed}))["ok"]

    back = Member(await sio_connect(app_client, bob.user.token), bob.user)
    closers.append(back.sio)
    back.items, back.last, back.early = list(bob.items), bob.last, None
    had = len(back.items)
    await join(back, ann)  # no second "joined" line: once per user per few minutes
    await back.catch_up(live_id)
    # The room's feed may push the missed batch right after the rejoin (its poll raced
    # it on a slow machine); either way bob gets each missed item exactly once.
    missed = back.items[had:]
    assert [i.get("text") for i in missed] == [f"missed {n}" for n in range(5)] + [None]
    assert missed[-1] == {"id": missed[-1]["id"], "kind": "delete", "target": doomed,
                          "at": missed[-1]["at"]}
    # nothing twice, nothing skipped: what bob has is the stream
    stream = [i for i, _ in await redis.xrange(keys.chat(live_id))]
    assert [i["id"] for i in back.items][-6:] == stream[-6:]
    again = await back.call("chat:history", {"live_id": live_id, "after": back.last})
    assert again["items"] == [] and again["last"] == back.last
    # paging a long catch-up
    page = await back.call("chat:history", {"live_id": live_id, "after": "0-0", "limit": 50})
    assert len(page["items"]) == 50 and page["more"] is True
    # the deleted line is gone from everyone's history
    tail = await back.call("chat:history", {"live_id": live_id})
    assert doomed not in [i["id"] for i in tail["items"]]
    assert all(i["kind"] != "delete" for i in tail["items"])


async def test_a_skipped_reader_sees_the_gap_and_fills_it(
        app_client: Any, closers: list[Any]) -> None:
    ann = await member(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "chat test", fps=15)).live_id
    bob = await member(app_client, "bob", closers)
    await join(bob, ann)
    await bob.open_chat(live_id)
    await ann.call("chat:send", {"live_id": live_id, "text": "one"})
    await poll(lambda: bob.texts() == ["one"])
    writer = app_client.app[CHAT].feed.writer
    writer.buffer_bound = -1  # every socket counts as a slow reader
    await ann.call("chat:send", {"live_id": live_id, "text": "two"})
    await poll(lambda: app_client.app[CHAT].feed.totals.skipped > 0)
    writer.buffer_bound = 256 * 1024
    await ann.call("chat:send", {"live_id": live_id, "text": "three"})
    await poll(lambda: bob.gaps == 1)
    assert bob.texts() == ["one"]
    await bob.catch_up(live_id)
    assert bob.texts() == ["one", "two", "three"]


async def test_slow_mode_mute_and_ban(app_client: Any, redis_url: str,
                                      closers: list[Any]) -> None:
    ann = await member(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "chat test", fps=15)).live_id
    bob = await member(app_client, "bob", closers)
    cat = await member(app_client, "cat", closers)
    for m in (bob, cat):
        await join(m, ann)
        await m.open_chat(live_id)
    send = lambda m, text: m.call("chat:send", {"live_id": live_id, "text": text})  # noqa: E731

    # slow mode: set by the creator, pushed to the room; the creator is exempt
    assert (await bob.call("chat:settings", {"slow_mode": 5}))["settings"]["slow_mode"] == 5
    ack = await ann.call("chat:settings", {"slow_mode": 1})
    assert ack["settings"] == {"slow_mode": 1, "filter_words": []}
    await poll(lambda: bob.got("chat:settings"))
    assert bob.got("chat:settings")[-1] == {"live_id": live_id, "slow_mode": 1}
    assert (await send(bob, "first"))["ok"]
    slow = await send(bob, "second")
    assert slow["error"]["code"] == "rate_limited" and slow["error"]["reason"] == "slow_mode"
    assert 0 < slow["error"]["retry_after"] <= 1
    assert (await send(cat, "cat is not slowed by bob"))["ok"]
    assert (await send(ann, "creator 1"))["ok"] and (await send(ann, "creator 2"))["ok"]
    await asyncio.sleep(slow["error"]["retry_after"])
    assert (await send(bob, "second, later"))["ok"]
    await ann.call("chat:settings", {"slow_mode": 0})

    # mute: the muted viewer is told, reads on, cannot send until it ends. Moderation
    # is per creator: bob muting cat mutes cat in bob's lives, not in ann's.
    assert (await bob.call("chat:mute", {"user_id": cat.user.id, "seconds": 60}))["ok"]
    assert (await send(cat, "still fine in ann's chat"))["ok"]
    assert (await ann.call("chat:mute", {"user_id": ann.user.id, "seconds": 60})
            )["error"]["code"] == "invalid"
    muted = await ann.call("chat:mute", {"user_id": bob.user.id, "seconds": 1})
    assert muted["ok"] and muted["until"] > 0
    await poll(lambda: bob.got("chat:muted"))
    refused = await send(bob, "am I muted?")
    assert refused["error"]["code"] == "forbidden" and refused["error"]["reason"] == "muted"
    assert (await bob.call("chat:history", {"live_id": live_id}))["you"]["muted_until"] > 0
    await send(cat, "cat still talks")
    await poll(lambda: "cat still talks" in bob.texts())

    async def unmuted() -> bool:
        return bool((await send(bob, "back"))["ok"])

    await poll(unmuted, timeout=5, interval=0.2)

    # ban: out of the live and its chat at once, and cannot come back
    assert (await ann.call("chat:ban", {"user_id": bob.user.id}))["ok"]
    await poll(lambda: bob.got("room:left") and bob.got("chat:banned"))
    assert bob.got("room:left")[-1] == {"live_id": live_id, "reason": "banned"}
    seen = len(bob.items)
    await send(cat, "after the ban")
    await poll(lambda: "after the ban" in cat.texts())
    await asyncio.sleep(0.2)
    assert len(bob.items) == seen  # reads nothing more
    before = await snapshot(redis_url)
    for event, payload in (("chat:send", {"live_id": live_id, "text": "let me in"}),
                           ("chat:history", {"live_id": live_id}),
                           ("room:join", {"user_id": ann.user.id})):
        ack = await bob.call(event, payload)
        assert ack["error"]["code"] == "forbidden", (event, ack)
        assert ack["error"]["reason"] == "banned", (event, ack)
    assert await snapshot(redis_url) == before
    assert (await ann.call("chat:unban", {"user_id": bob.user.id}))["ok"]
    await join(bob, ann)
    assert (await send(bob, "thanks"))["ok"]


async def test_the_creator_deletes_and_filters(app_client: Any, redis_url: str,
                                               closers: list[Any]) -> None:
    ann = await member(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "chat test", fps=15)).live_id
    bob = await member(app_client, "bob", closers)
    await join(bob, ann)
    await bob.open_chat(live_id)
    await ann.open_chat(live_id)
    rude = await bob.call("chat:send", {"live_id": live_id, "text": "something rude"})
    await poll(lambda: "something rude" in ann.texts())
    rude_id = rude["message"]["id"]
    assert (await bob.call("chat:delete", {"live_id": live_id, "message_id": rude_id})
            )["error"]["code"] == "forbidden"
    joined_line = next(i["id"] for i in ann.items if i["kind"] == "system")
    for missing in ("1-1", joined_line):
        ack = await ann.call("chat:delete", {"live_id": live_id, "message_id": missing})
        assert ack["error"]["code"] == "not_found", ack
    report = await ann.call("report:create", {"kind": "chat", "live_id": live_id,
                                              "message_id": rude_id, "reason": "harassment"})
    assert report["ok"]
    assert (await ann.call("chat:delete", {"live_id": live_id, "message_id": rude_id}))["ok"]
    stored = (await app_client.app[SERVICES].reports.latest())[0]
    assert (stored.kind, stored.target, stored.content["text"]) == (
        "chat", bob.user.id, "something rude")  # kept after the delete
    for m in (ann, bob):
        await poll(lambda m=m: any(i.get("target") == rude_id for i in m.items))
    again = await ann.call("chat:delete", {"live_id": live_id, "message_id": rude_id})
    assert again["error"]["code"] == "not_found"

    ack = await ann.call("chat:settings", {"filter_words": ["Spoiler", "buy now"]})
    assert ack["settings"]["filter_words"] == ["buy now", "spoiler"]
    history = await bob.call("chat:history", {"live_id": live_id})
    assert "filter_words" not in history["settings"]  # the list is the creator's
    before = await snapshot(redis_url)
    for text in ("SPOILER: he dies", "please buy now!"):
        ack = await bob.call("chat:send", {"live_id": live_id, "text": text})
        assert ack["error"]["code"] == "invalid" and ack["error"]["reason"] == "filtered"
    assert await snapshot(redis_url) == before
    assert (await bob.call("chat:send", {"live_id": live_id, "text": "no spoilers"}))["ok"]


async def test_the_per_user_rate(app_client: Any, closers: list[Any]) -> None:
    limits(app_client, rate=Window(3, 60.0))
    ann = await member(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "chat test", fps=15)).live_id
    acks = [await ann.call("chat:send", {"live_id": live_id, "text": f"n{n}"})
            for n in range(4)]
    assert [a["ok"] for a in acks] == [True, True, True, False]
    assert acks[-1]["error"]["code"] == "rate_limited"
    assert 50 < acks[-1]["error"]["retry_after"] <= 60


BAD: list[tuple[str, Any, str]] = [
    ("chat:send", {"live_id": "LIVE", "text": "hi"}, "matching regex"),
    ("chat:send", {"text": "hi"}, "missing required field `live_id`"),
    ("chat:send", {"live_id": "{live}"}, "missing required field `text`"),
    ("chat:send", {"live_id": "{live}", "text": 5}, "Expected `str`"),
    ("chat:send", {"live_id": "{live}", "text": ["hi"]}, "Expected `str`"),
    ("chat:send", {"live_id": "{live}", "text": ""}, "cannot be empty"),
    ("chat:send", {"live_id": "{live}", "text": " \t "}, "cannot be empty"),
    ("chat:send", {"live_id": "{live}", "text": "x" * 301}, "at most 300"),
    ("chat:send", {"live_id": "{live}", "text": "x" * 5000}, "length <= 2000"),
    ("chat:send", {"live_id": "{live}", "text": "line\nbreak"}, "control characters"),
    ("chat:send", {"live_id": "{live}", "text": "\x1b[2J"}, "control characters"),
    ("chat:send", {"live_id": "{live}", "text": "hi", "user_id": "0" * 16},
     "unknown field `user_id`"),
    ("chat:send", "hi", "must be an object"),
    ("chat:history", {"live_id": "{live}", "after": "latest"}, "matching regex"),
    ("chat:history", {"live_id": "{live}", "limit": 0}, ">= 1"),
    ("chat:history", {"live_id": "{live}", "limit": 201}, "<= 200"),
    ("chat:delete", {"live_id": "{live}"}, "missing required field `message_id`"),
    ("chat:delete", {"live_id": "{live}", "message_id": 12}, "Expected `str`"),
    ("chat:mute", {"user_id": "{bob}"}, "missing required field `seconds`"),
    ("chat:mute", {"user_id": "{bob}", "seconds": 0}, ">= 1"),
    ("chat:mute", {"user_id": "{bob}", "seconds": "60"}, "Expected `int`"),
    ("chat:ban", {"user_id": "bob"}, "matching regex"),
    ("chat:settings", {"slow_mode": -1}, ">= 0"),
    ("chat:settings", {"slow_mode": 1.5}, "Expected `int"),
    ("chat:settings", {"filter_words": "spoiler"}, "Expected `array"),
    ("chat:settings", {"filter_words": [""]}, "filtered word"),
    ("chat:settings", {"filter_words": ["bad\x00word"]}, "filtered word"),
]


async def test_bad_chat_input_is_refused_and_stores_nothing(
        app_client: Any, redis_url: str, closers: list[Any]) -> None:
    ann = await member(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "chat test", fps=15)).live_id
    bob = await member(app_client, "bob", closers)
    await join(bob, ann)
    stranger = await member(app_client, "stranger", closers)
    before = await snapshot(redis_url)

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{live}", live_id).replace("{bob}", bob.user.id)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    for event, payload, expected in BAD:
        ack = await ann.call(event, fill(payload))
        assert ack["ok"] is False and ack["error"]["code"] == "invalid", (event, payload, ack)
        assert expected in ack["error"]["message"], (event, payload, ack)
    # not a member, no such live, not the creator, no such user
    refusals = [
        (stranger, "chat:send", {"live_id": live_id, "text": "hi"}, "forbidden"),
        (stranger, "chat:history", {"live_id": live_id}, "forbidden"),
        (bob, "chat:send", {"live_id": "0" * 16, "text": "hi"}, "not_found"),
        (bob, "chat:history", {"live_id": "0" * 16}, "not_found"),
        (bob, "chat:delete", {"live_id": live_id, "message_id": "1-0"}, "forbidden"),
        (ann, "chat:mute", {"user_id": "0" * 16, "seconds": 5}, "not_found"),
        (ann, "chat:ban", {"user_id": "0" * 16}, "not_found"),
    ]
    for who, event, payload, code in refusals:
        ack = await who.call(event, payload)
        assert ack["ok"] is False and ack["error"]["code"] == code, (event, ack)
    assert await snapshot(redis_url) == before
    # markup is text: stored and sent back exactly as typed
    html = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    sent = await bob.call("chat:send", {"live_id": live_id, "text": html})
    assert sent["ok"] and sent["message"]["text"] == html
    assert (await bob.call("chat:history", {"live_id": live_id}))["items"][-1]["text"] == html


async def test_the_chat_ends_with_the_live(app_client: Any, redis: Redis,
                                           closers: list[Any]) -> None:
    ann = await member(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "chat test", fps=15)).live_id
    bob = await member(app_client, "bob", closers)
    await join(bob, ann)
    await bob.call("chat:send", {"live_id": live_id, "text": "bye"})
    assert 0 < await redis.pttl(keys.chat(live_id)) <= 2 * 24 * 3600 * 1000  # expires later
    await ann.call("live:end", {})
    await poll(lambda: bob.got("live:ended"))
    ack = await bob.call("chat:send", {"live_id": live_id, "text": "hello?"})
    assert ack["error"]["code"] == "not_found"
    feed = app_client.app[CHAT].feed
    await poll(lambda: live_id not in feed.cursors, timeout=3)  # no sockets left: dropped


async def test_a_burst_larger_than_a_batch_arrives_whole_and_in_order(
        app_client: Any, redis: Redis, closers: list[Any]) -> None:
    limits(app_client, rate=Window(1000, 1.0))
    app_client.app[CHAT].feed.batch_max = 7
    ann = await member(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "chat test", fps=15)).live_id
    bob = await member(app_client, "bob", closers)
    await join(bob, ann)
    await bob.open_chat(live_id)
    await asyncio.gather(*(ann.call("chat:send", {"live_id": live_id, "text": f"b{n}"})
                           for n in range(40)))
    await poll(lambda: len(bob.texts()) == 40)
    order = [i for i, f in await redis.xrange(keys.chat(live_id)) if f["k"] == "m"]
    assert [i["id"] for i in bob.items if i["kind"] == "message"] == order
    assert max(len(b["items"]) for b in bob.got("chat:messages")) == 7
    assert bob.gaps == 0


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_websocket_frames_for_any_size(size: int) -> None:
    """RFC 6455 5.2, read back independently: FIN + binary opcode, no mask, and the
    7-bit, 16-bit or 64-bit length form the size calls for."""
    import struct

    from signaling.frames import websocket_frame

    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = websocket_frame(payload)
    assert frame[0] == 0x82 and frame[1] & 0x80 == 0
    length, offset = frame[1] & 0x7F, 2
    if length == 126:
        (length,), offset = struct.unpack("!H", frame[2:4]), 4
    elif length == 127:
        (length,), offset = struct.unpack("!Q", frame[2:10]), 10
    assert (length, frame[offset:]) == (size, payload)
    assert offset == (2 if size < 126 else 4 if size < 65536 else 10)
    assert websocket_frame("hi") == b"\x81\x02hi"  # text frames for JSON packets


async def test_lines_written_elsewhere_arrive_with_the_poll(
        app_client: Any, closers: list[Any]) -> None:
    """A line this node's feed was not told about (another node wrote it) arrives
    within the poll period (0.3 s here), even while another room keeps the feed busy."""
    limits(app_client, rate=Window(1000, 1.0))
    ann = await member(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "chat test", fps=15)).live_id
    cyd = await member(app_client, "cyd", closers)
    busy_live = (await go_live(cyd, closers, "chat test", fps=15)).live_id
    bob = await member(app_client, "bob", closers)
    await join(bob, ann)
    await bob.open_chat(live_id)
    services = app_client.app[SERVICES]
    live = app_client.app[CHAT].live(live_id)
    await services.chat.send(live, await services.accounts.get(ann.user.id), "from elsewhere")
    started = asyncio.get_running_loop().time()
    while "from elsewhere" not in bob.texts():
        await cyd.call("chat:send", {"live_id": busy_live, "text": "busy"})
        assert asyncio.get_running_loop().time() - started < 3
        await asyncio.sleep(0.05)
    assert bob.gaps == 0 and bob.texts() == ["from elsewhere"]


async def test_two_tabs_racing_in_slow_mode_send_one(app_client: Any, closers: list[Any]) -> None:
    ann = await member(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "chat test", fps=15)).live_id
    bob = await member(app_client, "bob", closers)
    tab2 = Member(await sio_connect(app_client, bob.user.token), bob.user)
    closers.append(tab2.sio)
    await join(bob, ann)
    await join(tab2, ann)
    await ann.call("chat:settings", {"slow_mode": 30})
    acks = await asyncio.gather(*(m.call("chat:send", {"live_id": live_id, "text": f"tab {n}"})
                                  for n, m in enumerate((bob, tab2, bob, tab2))))
    assert sorted(a["ok"] for a in acks) == [False, False, False, True]
    assert {a["error"]["reason"] for a in acks if not a["ok"]} == {"slow_mode"}


def test_joined_pushes_go_out_at_once_then_one_per_window() -> None:
    assert joined_push_at(10.0, None, 0.25) == 10.0  # a quiet room: at once
    assert joined_push_at(10.1, 10.0, 0.25) == 10.25  # within the window: at its end
    assert joined_push_at(11.0, 10.0, 0.25) == 11.0


async def test_a_join_storm_gives_the_room_few_joined_pushes(
        app_client: Any, closers: list[Any]) -> None:
    """Each join's "NAME joined" line is written at once, but the room gets one push for
    the first and one for all those within the window after it (issue 14: one push per
    join to every socket in the room was a storm's cost), every line in order."""
    chat = app_client.app[CHAT]
    chat.joined_lines.window_s = 4.0  # wide: a slow machine's joins still fit in it
    chat.feed.poll_s = 60.0  # after its next poll: lines go out with their pushes only
    ann = await member(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "storm", fps=15)).live_id
    await ann.open_chat(live_id)
    names = [f"viewer{n}" for n in range(6)]
    # signed up before the storm: six sign-ups (argon2 hashes) on a loaded machine
    # outlasted the window, which split the storm into more pushes than its joins make
    viewers = [await member(app_client, name, closers) for name in names]
    for viewer in viewers:
        ack = await viewer.call("room:join", {"user_id": ann.user.id, "media": False})
        assert ack["ok"], ack
        await asyncio.sleep(0.05)  # past the feed's 25 ms batch: each would be a push
    await poll(lambda: sum(i["kind"] == "system" for i in ann.items) == len(names),
               what="every joined line at the creator")
    assert [i["text"] for i in ann.items if i["kind"] == "system"] == [
        f"{n.capitalize()} joined" for n in names]
    # The first at once, the other five in one push (the feed's poll due before the
    # 60 s may split them once more at the socket: it reads whatever is written by then).
    await poll(lambda: chat.joined_lines.pushes >= 2, timeout=10, what="the window's push")
    assert chat.joined_lines.pushes == 2
    pushes = [b for b in ann.got("chat:messages")
              if any(i["kind"] == "system" for i in b["items"])]
    assert len(pushes) <= 3 and pushes[0]["items"][0]["text"] == "Viewer0 joined"


async def test_the_feed_waits_for_a_redis_that_is_away_without_a_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    """Redis restarting (`golive chaos` found it: two tracebacks in 24 faults): the feed
    logs one warning per try, never a traceback, and keeps its cursor for the next."""
    import logging

    from signaling.chat import ChatFeed
    from signaling.config import Settings
    from signaling.services import Services
    from tests.support.servers import TEST_SECRET, free_port

    away = Redis.from_url(f"redis://127.0.0.1:{free_port()}", decode_responses=True)
    services = Services.build(away, Settings(secret=TEST_SECRET))
    feed = ChatFeed(None, services, None, window_s=0.01, poll_s=60)  # type: ignore[arg-type]
    feed.cursors["L1"] = "5-0"
    caplog.set_level(logging.INFO, logger="golive.chat")
    feed.open()
    try:
        feed.poke("L1")
        await poll(lambda: [r for r in caplog.records if r.name == "golive.chat"],
                   what="the feed's log line")
    finally:
        await feed.close()
        await away.aclose()
    lines = [r for r in caplog.records if r.name == "golive.chat"]
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in lines] == [
        ("WARNING", "chat delivery waits for Redis; retrying", None)]
    assert feed.cursors == {"L1": "5-0"}
