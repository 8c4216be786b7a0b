"""Signed-out (anonymous) viewers through the real server: they watch a public LIVE and
read its chat, and are refused everything else; a creator may keep a LIVE for
signed-in viewers; anonymous sockets are capped per client address."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from redis.asyncio import Redis

from engine import keys
from engine.anonymous import is_anonymous, new_anonymous_id
from engine.errors import DomainError
from engine.lives import Live, check_may_watch
from media.synthetic import HeadlessCreator
from signaling.app import create_app
from signaling.appkeys import GATEWAY
from tests.support.peers import SocketPeer, anonymous_tab, go_live, open_tab, refusal
from tests.support.poll import poll
from tests.support.viewer import DecodingViewer


class Peer(SocketPeer):
    PUSHES = ("room:state", "live:ended", "chat:messages", "gift:board", "live:likes")


peer = functools.partial(open_tab, peer=Peer)
anonymous = functools.partial(anonymous_tab, peer=Peer)  # a signed-out tab


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Any, redis: Redis) -> Any:
    settings.anonymous_per_address = 3
    settings.anonymous_event_burst = 100
    return await aiohttp_client(create_app(settings))


def texts(history: dict[str, Any]) -> list[str]:
    return [m["text"] for m in history["items"] if m.get("text")]


def test_anonymous_identities_are_never_user_ids() -> None:
    made = {new_anonymous_id() for _ in range(100)}
    assert len(made) == 100 and all(is_anonymous(m) for m in made)
    # User ids are 16 hex digits (schemas.UserId): no payload can name an anonymous one.
    assert all(len(m) != 16 for m in made)


def test_the_watch_rule_refuses_anonymous_only_on_a_restricted_live() -> None:
    public = Live("a" * 16, "c" * 16, "t", 0.0, "n")
    restricted = Live("a" * 16, "c" * 16, "t", 0.0, "n", signed_in_only=True)
    assert check_may_watch("anon-1", public, anonymous=True) is public
    assert check_may_watch("b" * 16, restricted) is restricted
    with pytest.raises(DomainError) as refused:
        check_may_watch("anon-1", restricted, anonymous=True)
    assert refused.value.to_payload()["code"] == "unauthorized"
    assert refused.value.to_payload()["reason"] == "signin_required"


async def test_a_signed_out_viewer_watches_and_reads_but_cannot_act(
        app_client: Any, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    on_air = await go_live(ann, closers, "open to all")
    guest = await anonymous(app_client, closers)

    watched = await guest.call("live:watch", {"user_id": ann.user.id})
    assert watched["ok"] and watched["live"]["live_id"] == on_air.live_id
    ack = await guest.call("room:join", {"user_id": ann.user.id})
    assert ack["ok"], ack
    viewer = DecodingViewer("guest")
    closers.append(viewer)
    done = await guest.call("rtc:answer", {"live_id": on_air.live_id,
                                           "sdp": await viewer.answer(ack["offer"])})
    assert done == {"ok": True}
    await poll(lambda: viewer.video_frames >= 3, timeout=15)
    # Counted as a viewer; the board reaches them; the chat reads.
    await poll(lambda: any(s["viewers"] == 1 for s in ann.got("room:state")))
    await poll(lambda: guest.got("gift:board"))
    assert (await ann.call("chat:send", {"live_id": on_air.live_id, "text": "hi all"}))["ok"]
    await poll(lambda: guest.got("chat:messages"))
    history = await guest.call("chat:history", {"live_id": on_air.live_id})
    assert history["ok"] and texts(history) == ["hi all"]

    # Chat, gifts, likes, follows, nudges: `unauthorized` (reason anonymous), nothing stored.
    refusals = {
        "chat:send": {"live_id": on_air.live_id, "text": "spam"},
        "gift:send": {"creator": "ann", "gift_id": "rose", "transfer_id": "a" * 32},
        "live:like": {"live_id": on_air.live_id, "count": 1},
        "user:follow": {"user_id": ann.user.id},
        "nudge:send": {"user_id": ann.user.id},
        "dm:list": {},
        "live:start": {"offer": "v=0"},
    }
    for event, payload in refusals.items():
        reply = await guest.call(event, payload)
        assert reply["ok"] is False, event
        assert reply["error"]["code"] == "unauthorized", (event, reply)
        assert reply["error"]["reason"] == "anonymous", (event, reply)
    history = await guest.call("chat:history", {"live_id": on_air.live_id})
    assert texts(history) == ["hi all"]
    assert (await ann.call("room:viewers", {"live_id": on_air.live_id}))["anonymous"] == 1


async def test_a_live_kept_for_signed_in_viewers_refuses_anonymous(
        app_client: Any, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    creator = HeadlessCreator.synthetic(320, 180, 30)
    closers.append(creator)
    ack = await ann.call("live:start", {"title": "members", "offer": await creator.offer(),
                                        "signed_in_only": True}, timeout=20)
    assert ack["ok"] and ack["live"]["signed_in_only"] is True
    await creator.accept_answer(ack["answer"])

    guest = await anonymous(app_client, closers)
    watched = await guest.call("live:watch", {"user_id": ann.user.id})
    assert watched["live"]["signed_in_only"] is True  # the page can say why
    for media in (True, False):
        refused = await guest.call("room:join", {"user_id": ann.user.id, "media": media})
        assert refused["error"]["code"] == "unauthorized"
        assert refused["error"]["reason"] == "signin_required"
    bob = await peer(app_client, "bob", closers)
    joined = await bob.call("room:join", {"user_id": ann.user.id, "media": False})
    assert joined["ok"] and joined["viewers"] == 1


async def test_anonymous_sockets_are_capped_per_address(app_client: Any, redis: Redis,
                                                        closers: list[Any]) -> None:
    guests = [await anonymous(app_client, closers) for _ in range(3)]
    refused = await refusal(app_client, {"anonymous": True})
    assert refused == {"code": "rate_limited", "reason": "anonymous_cap", "retry_after": 60}
    # A signed-in socket from the same address is not capped.
    await peer(app_client, "ann", closers)
    # One leaves: its place is free again, and the count is the sockets still open.
    await guests[0].sio.disconnect()
    gateway = app_client.app[GATEWAY]
    await poll(lambda: sum(c.anonymous for c in gateway.connections.values()) == 2)
    await anonymous(app_client, closers)
    assert int(await redis.get(keys.anonymous_sockets("127.0.0.1"))) == 3


async def test_anonymous_viewers_are_off_when_the_setting_says_so(
        aiohttp_client: Any, settings: Any, redis: Redis, closers: list[Any]) -> None:
    settings.anonymous_viewers = False
    client = await aiohttp_client(create_app(settings))
    assert await refusal(client, {"anonymous": True}) == {"code": "unauthorized",
                                                          "reason": "missing"}


async def test_anonymous_sockets_have_their_own_lower_rate(
        aiohttp_client: Any, settings: Any, redis: Redis, closers: list[Any]) -> None:
    settings.anonymous_event_rate = 0.5
    settings.anonymous_event_burst = 3
    client = await aiohttp_client(create_app(settings))
    guest = await anonymous(client, closers)
    codes = [(await guest.call("discover:watch", {})).get("error", {}).get("code", "ok")
             for _ in range(4)]
    assert codes == ["ok", "ok", "ok", "rate_limited"]
    ann = await peer(client, "ann", closers)  # signed in: the usual rate (200/s here)
    assert all([(await ann.call("discover:watch", {}))["ok"] for _ in range(4)])
