"""Gifts in a live through the real server: Socket.IO clients, real aiortc peers over
loopback, real Redis. The ledger moves the coins; the room shows the gift (pushes, combos,
the leaderboard, the creator's diamonds this live) and the video shows its badge."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import secrets
import uuid
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis

from engine import keys
from engine.catalog import load_catalog
from engine.gift_room import GiftMoment
from media.overlay import overlay_layout
from signaling.app import create_app
from signaling.appkeys import SERVICES, SETTINGS
from signaling.gifts import gift_overlay, hex_color
from tests.support.peers import SocketPeer, go_live, open_tab, sio_connect
from tests.support.poll import poll
from tests.support.state import notify_jobs_done, snapshot
from tests.support.viewer import DecodingViewer

CATALOG = load_catalog()


class Peer(SocketPeer):
    PUSHES = ("gift:received", "gift:board", "room:state")


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Any, redis: Redis) -> Any:
    settings.live_grace = 0.6
    return await aiohttp_client(create_app(settings))


peer = functools.partial(open_tab, peer=Peer)


async def watch(p: Peer, creator: Peer, closers: list[Any], media: bool = True
                ) -> DecodingViewer | None:
    ack = await p.call("room:join", {"user_id": creator.user.id, "media": media})
    assert ack["ok"], ack
    if not media:
        return None
    viewer = DecodingViewer(p.user.username)
    closers.append(viewer)
    answer = await viewer.answer(ack["offer"])
    assert await p.call("rtc:answer", {"live_id": ack["live"]["live_id"], "sdp": answer}) \
        == {"ok": True}
    return viewer


async def fund(client: Any, p: Peer, coins: int) -> None:
    """Coins bought through the ledger's purchase path (the test provider's)."""
    await client.app[SERVICES].ledger.credit_purchase(
        payment_id=f"pay-{secrets.token_hex(8)}", provider="test", user_id=p.user.id,
        coins=coins)


async def coins(client: Any, p: Peer) -> int:
    return (await client.app[SERVICES].ledger.balances(p.user.id)).coins


def send(gift_id: str = "rose", creator: str = "", count: int = 1,
         transfer_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"transfer_id": transfer_id or uuid.uuid4().hex, "creator": creator,
            "gift_id": gift_id, "count": count, **extra}


def badge_colour_at(viewer: DecodingViewer, rect: Any, colour: tuple[int, int, int]) -> bool:
    frame = viewer.last_video
    if frame is None or (frame.width, frame.height) != (640, 360):
        return False
    rgb = frame.to_ndarray(format="rgb24").astype(int)
    pad = 3 * rect.scale
    patch = rgb[rect.y + 2 : rect.y + rect.height - 2, rect.x + 2 : rect.x + pad - 1]
    return bool(np.all(np.abs(patch.reshape(-1, 3).mean(axis=0) - colour) < 30))


async def test_gifts_push_combo_rank_and_show_in_the_video(app_client: Any, redis: Redis,
                                                           closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "gifts", size=(640, 360))).live_id
    bob = await peer(app_client, "bob", closers)
    viewer = await watch(bob, ann, closers)
    assert viewer is not None
    cat = await peer(app_client, "cat", closers)
    await watch(cat, ann, closers, media=False)
    await fund(app_client, bob, 100)
    await fund(app_client, cat, 100)
    await poll(lambda: viewer.video_frames >= 3, timeout=15)

    # A Rose by username: the ack is the sender's own view of the receipt.
    first = await bob.call("gift:send", send(creator="ann"))
    assert first["ok"], first
    receipt = first["receipt"]
    assert (receipt["coins"], receipt["sender_coins"], receipt["combo"], receipt["replayed"]) \
        == (1, 99, 1, False)
    assert receipt["live_id"] == live_id and "creator_diamonds" not in receipt
    for member in (ann, bob, cat):
        await poll(lambda m=member: m.got("gift:received"))
    push = cat.got("gift:received")[0]
    assert push["sender"]["username"] == "bob" and push["gift"]["id"] == "rose"
    assert push["gift"]["coins"] == 1 and push["combo"] == 1 and push["count"] == 1
    assert push["streak"] == f"{bob.user.id}:{receipt['transfer_id']}"
    assert [(r["user"]["username"], r["coins"]) for r in push["leaderboard"]] == [("bob", 1)]
    assert push["diamonds_this_live"] == 0  # 1 coin at 2 coins a diamond: ann's carry

    # The badge is in the video the viewer decodes: the Rose's own colour, where the
    # layout puts it (the icon file is the catalog's, as the server reads it).
    rose = CATALOG.gift("rose")
    icon = rose.icon_png.read_bytes() if rose.icon_png.exists() else None
    overlay = gift_overlay(rose, "bob", GiftMoment("", push["streak"], 1, 1, True), icon)
    [(_, rect)] = overlay_layout([overlay], 640, 360)
    await poll(lambda: badge_colour_at(viewer, rect, hex_color(rose.color)), timeout=5)

    # Two more Roses by id within the combo window: the same streak, x3.
    second = await bob.call("gift:send", send(creator=ann.user.id, count=2))
    assert second["receipt"]["combo"] == 3 and second["receipt"]["sender_coins"] == 97
    await poll(lambda: len(cat.got("gift:received")) == 2)
    push = cat.got("gift:received")[1]
    assert (push["streak"], push["combo"], push["seq"]) == (first["receipt"]["streak"], 3, 2)
    assert push["diamonds_this_live"] == 1  # 1 carried + 2 coins -> 1 diamond, 1 carried

    # Another gifter outranks bob; the board says so to everyone.
    heart = await cat.call("gift:send", send("finger_heart", creator="ann"))
    assert heart["receipt"]["coins"] == 5
    await poll(lambda: len(bob.got("gift:received")) == 3)
    push = bob.got("gift:received")[2]
    assert [(r["user"]["username"], r["coins"]) for r in push["leaderboard"]] == [
        ("cat", 5), ("bob", 3)]
    assert push["diamonds_this_live"] == 4 and push["coins"] == 5  # 1 carried + 5 -> 3
    balances = await app_client.app[SERVICES].ledger.balances(ann.user.id)
    assert (balances.diamonds, balances.carry_coins) == (4, 0)

    # A late joiner gets the board at once; members may read it.
    dan = await peer(app_client, "dan", closers)
    await watch(dan, ann, closers, media=False)
    await poll(lambda: dan.got("gift:board"))
    board = dan.got("gift:board")[0]
    assert [r["user"]["username"] for r in board["leaderboard"]] == ["cat", "bob"]
    assert (board["seq"], board["diamonds_this_live"]) == (3, 4)
    read = await ann.call("gift:board", {"live_id": live_id})
    assert read["board"] == board
    eve = await peer(app_client, "eve", closers)
    refused = await eve.call("gift:board", {"live_id": live_id})
    assert refused["error"]["code"] == "forbidden"


async def test_a_retry_with_the_same_id_moves_and_shows_nothing_again(
        app_client: Any, redis_url: str, closers: list[Any]) -> None:
    # The combo key expires 1 s after its window (5 s): a window of 600 s keeps it from
    # moving by itself between the snapshots on a loaded machine, so it stays compared.
    gift_room = app_client.app[SERVICES].gift_room
    gift_room.rules = dataclasses.replace(gift_room.rules, combo_window_s=600)
    ann = await peer(app_client, "ann", closers)
    await go_live(ann, closers, "gifts")
    bob = await peer(app_client, "bob", closers)
    await watch(bob, ann, closers, media=False)
    await fund(app_client, bob, 10)
    payload = send("finger_heart", creator="ann")
    first = await bob.call("gift:send", payload)
    assert first["ok"] and first["receipt"]["sender_coins"] == 5
    await poll(lambda: bob.got("gift:received"))
    await notify_jobs_done(redis_url)
    before = await snapshot(redis_url)  # all but sessions and node heartbeats (state.SKIP)
    assert any(b"gift_combo:" in name for name in before)
    assert keys.ledger_journal().encode() in before

    again = await bob.call("gift:send", payload)
    assert again["ok"] and again["receipt"]["replayed"] is True
    assert {k: v for k, v in again["receipt"].items() if k != "replayed"} == \
        {k: v for k, v in first["receipt"].items() if k != "replayed"}
    assert await snapshot(redis_url) == before
    # Pushes are written before the ack: had the retry pushed, it would be here already.
    assert len(bob.got("gift:received")) == 1

    # The same id with other parameters is a conflict, and moves nothing.
    for other in ({**payload, "count": 2}, {**payload, "gift_id": "rose"}):
        refused = await bob.call("gift:send", other)
        assert refused["error"]["code"] == "conflict", refused
    assert await snapshot(redis_url) == before
    assert len(bob.got("gift:received")) == 1


async def test_a_snapshot_spanning_a_heartbeat_still_sees_only_what_a_request_wrote(
        app_client: Any, redis: Redis, redis_url: str, closers: list[Any]) -> None:
    """The node's record moves by itself (`beats` +1 every 2 s): snapshots taken a beat
    apart are equal (so the retry test above cannot flake on it), and one gift still shows."""
    ann = await peer(app_client, "ann", closers)
    await go_live(ann, closers, "gifts")
    bob = await peer(app_client, "bob", closers)
    await fund(app_client, bob, 10)
    await notify_jobs_done(redis_url)
    [node] = await redis.keys(keys.node("") + "*")
    beats = int(await redis.hget(node, "beats") or 0)
    before = await snapshot(redis_url)
    await poll(lambda: _beats_past(redis, node, beats), timeout=10, what="a heartbeat")
    assert await snapshot(redis_url) == before
    assert (await bob.call("gift:send", send(creator="ann")))["ok"]
    after = await snapshot(redis_url)
    wallet = keys.wallet(bob.user.id).encode()
    assert after[wallet] != before[wallet]


async def _beats_past(redis: Redis, node: bytes, beats: int) -> bool:
    return int(await redis.hget(node, "beats") or 0) > beats


def _years_ago(years: int) -> str:
    today = dt.date.today()
    return today.replace(year=today.year - years, day=min(today.day, 28)).isoformat()


async def test_bad_and_ineligible_gifts_are_refused_and_move_nothing(
        app_client: Any, redis_url: str, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    await go_live(ann, closers, "gifts")
    bob = await peer(app_client, "bob", closers)
    await watch(bob, ann, closers, media=False)
    kid = await peer(app_client, "kid", closers, birthdate=_years_ago(16))
    zed = await peer(app_client, "zed", closers)  # offline creator
    poor = await peer(app_client, "poor", closers)
    for user in (bob, kid):
        await fund(app_client, user, 50)
    before = await snapshot(redis_url)

    cases: list[tuple[Peer, dict[str, Any], str]] = [
        (bob, send("unicorn", creator="ann"), "not_found"),
        (bob, send(creator="ann", count=0), "invalid"),
        (bob, send(creator="ann", count=-1), "invalid"),
        (bob, send(creator="ann", count=100), "invalid"),          # over max_count (99)
        (bob, send(creator="ann", count=2**62), "invalid"),
        (bob, send(creator="ann", count=1.5), "invalid"),
        (bob, send(creator="ann", count="1"), "invalid"),
        (bob, send(creator="ann", coins=0), "invalid"),            # no price from clients
        (bob, send(creator="ann", price=0), "invalid"),
        (bob, send(creator="ann", sender_coins=10**9), "invalid"),
        (bob, send(creator="ann", transfer_id="short"), "invalid"),
        (bob, send(creator="ann", transfer_id="bad id with spaces!"), "invalid"),
        (bob, send(creator="ann", transfer_id="x" * 65), "invalid"),
        (bob, {"creator": "ann", "gift_id": "rose"}, "invalid"),   # no transfer id
        (bob, send(creator="nobody_here"), "not_found"),
        (bob, send(creator="zed"), "not_found"),                   # not live
        (ann, send(creator="ann"), "invalid"),                     # to yourself
        (kid, send(creator="ann"), "forbidden"),                   # under 18
        (poor, send(creator="ann"), "insufficient_funds"),
        (bob, send("universe", creator="ann"), "insufficient_funds"),
    ]
    for who, payload, code in cases:
        ack = await who.call("gift:send", payload)
        assert not ack["ok"] and ack["error"]["code"] == code, (payload, ack)
    ack = await bob.call("gift:send", send("universe", creator="ann"))
    assert (ack["error"]["need"], ack["error"]["have"]) == (44999, 50)
    assert await snapshot(redis_url) == before

    # A viewer the creator banned is refused too.
    await ann.call("chat:ban", {"user_id": bob.user.id})
    before = await snapshot(redis_url)
    ack = await bob.call("gift:send", send(creator="ann"))
    assert ack["error"]["code"] == "forbidden", ack
    assert await snapshot(redis_url) == before
    assert not any(p.got("gift:received") for p in (ann, bob, kid, poor, zed))


async def test_every_refusal_leaves_redis_as_it_was(app_client: Any, redis_url: str,
                                                   closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    await go_live(ann, closers, "gifts")
    bob = await peer(app_client, "bob", closers)
    await fund(app_client, bob, 3)
    before = await snapshot(redis_url)
    for payload in (send("unicorn", creator="ann"), send(creator="ann", count=100),
                    send(creator="ann", coins=0), send("finger_heart", creator="ann"),
                    send(creator="nobody_here")):
        ack = await bob.call("gift:send", payload)
        assert not ack["ok"], ack
        assert await snapshot(redis_url) == before, payload
    assert await coins(app_client, bob) == 3


async def test_blocked_and_below_threshold_creators_get_nothing(
        app_client: Any, redis_url: str, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    await go_live(ann, closers, "gifts")
    bob = await peer(app_client, "bob", closers)
    await fund(app_client, bob, 10)
    await ann.call("user:block", {"user_id": bob.user.id})
    before = await snapshot(redis_url)
    ack = await bob.call("gift:send", send(creator="ann"))
    assert ack["error"]["code"] == "forbidden", ack
    assert await snapshot(redis_url) == before
    await ann.call("user:unblock", {"user_id": bob.user.id})

    ledger = app_client.app[SERVICES].ledger
    ledger.rules = type(ledger.rules)(min_followers=1)
    before = await snapshot(redis_url)
    ack = await bob.call("gift:send", send(creator="ann"))
    assert ack["error"]["code"] == "forbidden", ack
    assert await snapshot(redis_url) == before
    await bob.call("user:follow", {"user_id": ann.user.id})
    ack = await bob.call("gift:send", send(creator="ann"))
    assert ack["ok"], ack

    # A creator under 18 cannot go live (test_live_rooms has the refusal); where the
    # operator lets 16-year-olds host (GOLIVE_LIVE_MIN_AGE=16) they receive no gifts.
    ledger.rules = type(ledger.rules)()
    kid = await peer(app_client, "kid", closers, birthdate=_years_ago(16))
    app_client.app[SETTINGS].live_min_age = 16
    await go_live(kid, closers, "gifts")
    await notify_jobs_done(redis_url)
    before = await snapshot(redis_url)
    ack = await bob.call("gift:send", send(creator="kid"))
    assert ack["error"]["code"] == "forbidden", ack
    assert await snapshot(redis_url) == before
    assert not kid.got("gift:received")


async def test_concurrent_gifts_from_one_wallet_never_overdraw(
        app_client: Any, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    live_id = (await go_live(ann, closers, "gifts")).live_id
    bob = await peer(app_client, "bob", closers)
    second_tab = Peer(await sio_connect(app_client, bob.user.token), bob.user)
    closers.append(second_tab.sio)
    await fund(app_client, bob, 20)
    tabs = [bob, second_tab] * 15
    acks = await asyncio.gather(*(tab.call("gift:send", send(creator="ann")) for tab in tabs))
    done = [a for a in acks if a["ok"]]
    assert len(done) == 20
    assert {a["error"]["code"] for a in acks if not a["ok"]} == {"insufficient_funds"}
    # One streak (all within the window), each send its own xN.
    assert sorted(a["receipt"]["combo"] for a in done) == list(range(1, 21))
    assert len({a["receipt"]["streak"] for a in done}) == 1
    assert await coins(app_client, bob) == 0
    board = (await ann.call("gift:board", {"live_id": live_id}))["board"]
    assert board["leaderboard"][0]["coins"] == 20 and board["seq"] == 20
