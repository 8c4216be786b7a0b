"""Going live and watching through the real server: Socket.IO signaling, real aiortc
peers over loopback, real Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import sys
from typing import Any

import pytest
from redis.asyncio import Redis

from engine import keys
from media.synthetic import HeadlessCreator
from signaling.app import create_app
from signaling.appkeys import LIVES
from tests.support.peers import SocketPeer, go_live, open_tab, register, sio_connect
from tests.support.poll import poll
from tests.support.servers import REPO
from tests.support.state import snapshot
from tests.support.viewer import DecodingViewer


class Peer(SocketPeer):
    PUSHES = ("room:state", "live:ended", "live:started", "room:left", "discover:update")


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Any, redis: Redis) -> Any:
    settings.live_grace = 0.6
    # python-socketio's disconnect() closes the websocket before its goodbye is sent, so
    # the server takes it for a lost connection and would hold a viewer's media for its
    # page's new socket; held viewers: tests/test_viewer_resume.py
    settings.viewer_resume_grace = 0
    return await aiohttp_client(create_app(settings))


peer = functools.partial(open_tab, peer=Peer)


async def watch(p: Peer, creator: Peer, closers: list[Any]) -> tuple[DecodingViewer,
                                                                    dict[str, Any]]:
    ack = await p.call("room:join", {"user_id": creator.user.id})
    assert ack["ok"], ack
    viewer = DecodingViewer(p.user.username)
    closers.append(viewer)
    answer = await viewer.answer(ack["offer"])
    done = await p.call("rtc:answer", {"live_id": ack["live"]["live_id"], "sdp": answer})
    assert done == {"ok": True}
    return viewer, ack


async def test_go_live_and_watch_with_several_viewers(app_client: Any, redis: Redis,
                                                      closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    _, live = await go_live(ann, closers, "first live")
    assert live["live"]["title"] == "first live" and live["ice_servers"] == []
    live_id = live["live"]["live_id"]
    viewers = []
    for name in ("vic", "wes", "xia"):
        p = await peer(app_client, name, closers)
        viewer, ack = await watch(p, ann, closers)
        assert ack["live"]["live_id"] == live_id
        viewers.append((p, viewer))
    for _, viewer in viewers:
        await poll(lambda v=viewer: v.video_frames >= 5 and v.audio_frames >= 5, timeout=15)
        assert viewer.last_video is not None and viewer.last_video.width == 320
    assert await redis.hlen(keys.live_viewers(live_id)) == 3
    assert await redis.zscore(keys.live_directory(), ann.user.id) == 3
    await poll(lambda: any(s["viewers"] == 3 for s in ann.got("room:state")))
    listed = await (await app_client.get("/api/lives")).json()
    assert [(row["live_id"], row["viewers"]) for row in listed["lives"]] == [(live_id, 3)]
    profile = await (await app_client.get("/api/users/ann")).json()
    assert profile["live"]["live_id"] == live_id


async def test_late_viewer_gets_a_frame_quickly(app_client: Any, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    await go_live(ann, closers)
    await asyncio.sleep(2.5)  # let the stream run past a keyframe interval
    late = await peer(app_client, "late", closers)
    viewer, _ = await watch(late, ann, closers)
    await poll(lambda: viewer.video_frames > 0, timeout=5)
    assert viewer.first_video_at is not None
    assert viewer.first_video_at - viewer.created < 5


async def test_ending_the_live_ends_it_for_everyone(app_client: Any, redis: Redis,
                                                    closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    await go_live(ann, closers)
    bob = await peer(app_client, "bob", closers)
    viewer, ack = await watch(bob, ann, closers)
    await poll(lambda: viewer.video_frames > 0, timeout=15)
    assert (await ann.call("live:end", {})) == {"ok": True}
    await poll(lambda: bob.got("live:ended"))
    assert bob.got("live:ended")[0]["reason"] == "ended_by_creator"
    await poll(lambda: viewer.ended >= {"video", "audio"}
               or viewer.pc.connectionState in ("closed", "failed"), timeout=15)
    assert await redis.exists(keys.live(ann.user.id), keys.live_viewers(ack['live']['live_id']),
                              ) == 0
    assert await redis.zcard(keys.live_directory()) == 0
    assert app_client.app[LIVES].hosted == {}
    assert (await ann.call("live:end", {}))["error"]["code"] == "not_found"


async def test_one_live_per_creator(app_client: Any, aiohttp_client: Any,
                                    closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    await go_live(ann, closers)
    other_tab = await sio_connect(app_client, ann.user.token)
    closers.append(other_tab)
    second = HeadlessCreator.synthetic(320, 180, 30)
    closers.append(second)
    ack = await other_tab.call("live:start", {"offer": await second.offer()}, timeout=20)
    assert ack["error"]["code"] == "conflict"
    assert "already live" in ack["error"]["message"]


async def test_parallel_starts_make_one_live(app_client: Any, redis: Redis,
                                             closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    creators = [HeadlessCreator.synthetic(320, 180, 30) for _ in range(2)]
    closers.extend(creators)
    offers = [await c.offer() for c in creators]
    acks = await asyncio.gather(*(ann.call("live:start", {"offer": o}) for o in offers))
    assert sorted(a["ok"] for a in acks) == [False, True]
    assert [a["error"]["code"] for a in acks if not a["ok"]] == ["conflict"]
    rooms = app_client.app[LIVES].hosted
    assert len(rooms) == 1


def born_years_ago(years: int) -> str:
    """A birthdate that makes someone `years` old today, and for the rest of the year."""
    return f"{dt.datetime.now(dt.UTC).year - years}-01-01"


UNDER_AGE = {"code": "forbidden", "message": "you must be 18 or older to go LIVE",
             "reason": "under_age", "min_age": 18}


async def test_a_minor_cannot_go_live_and_an_adult_can(app_client: Any, redis_url: str,
                                                       closers: list[Any]) -> None:
    kid = await peer(app_client, "kid", closers, birthdate=born_years_ago(15))
    creator = HeadlessCreator.synthetic(320, 180, 30)
    closers.append(creator)
    offer = await creator.offer()
    before = await snapshot(redis_url)
    ack = await kid.call("live:start", {"title": "too young", "offer": offer})
    assert ack == {"ok": False, "error": UNDER_AGE}
    assert await snapshot(redis_url) == before   # no live, no directory entry
    assert app_client.app[LIVES].hosted == {}
    # the studio is told before Go LIVE: /api/me answers what live:start would
    me = await (await app_client.get(
        "/api/me", headers={"Authorization": f"Bearer {kid.user.token}"})).json()
    assert me["go_live"] == {"ok": False, "error": UNDER_AGE}
    # 18 today is old enough
    ann = await peer(app_client, "ann", closers, birthdate=born_years_ago(18))
    _, live = await go_live(ann, closers, "just 18")
    assert live["live"]["creator_id"] == ann.user.id
    me = await (await app_client.get(
        "/api/me", headers={"Authorization": f"Bearer {ann.user.token}"})).json()
    assert me["go_live"] == {"ok": True}


async def test_the_live_age_comes_from_the_configuration(
        aiohttp_client: Any, settings: Any, redis: Redis, closers: list[Any]) -> None:
    settings.live_min_age = 16
    client = await aiohttp_client(create_app(settings))
    teen = await peer(client, "teen", closers, birthdate=born_years_ago(16))
    await go_live(teen, closers)
    kid = await peer(client, "kid", closers, birthdate=born_years_ago(15))
    ack = await kid.call("live:start", {"offer": "v=0"})
    assert ack["error"] == {**UNDER_AGE, "message": "you must be 16 or older to go LIVE",
                            "min_age": 16}


async def test_golive_broadcast_for_a_minor_exits_1_saying_why(app_client: Any) -> None:
    await register(app_client, "kid", birthdate=born_years_ago(15), password="kid-password-1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signaling.cli", "broadcast", "--url",
        str(app_client.make_url("/")).rstrip("/"), "--user", "kid", "--password",
        "kid-password-1", "--size", "160x96", "--duration", "5", cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == 1, out
    assert "live:start refused: you must be 18 or older to go LIVE" in out.decode(), out


BAD_OFFERS = [
    ("not sdp at all", "invalid"),
    ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", "invalid"),
]


async def test_bad_offers_leave_nothing_behind(app_client: Any, redis_url: str,
                                               closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    before = await snapshot(redis_url)
    for offer, code in BAD_OFFERS:
        ack = await ann.call("live:start", {"offer": offer})
        assert ack["error"]["code"] == code, ack
    # an offer with only audio has no usable video codec
    audio_only = HeadlessCreator.synthetic(320, 180, 30)
    closers.append(audio_only)
    sdp = await audio_only.offer()
    video_at = sdp.index("m=video")
    audio_at = sdp.index("m=audio")
    stripped = sdp[:video_at] + sdp[audio_at:] if video_at < audio_at else sdp[:video_at]
    ack = await ann.call("live:start", {"offer": stripped})
    assert ack["error"]["code"] == "invalid", ack
    assert await snapshot(redis_url) == before
    assert app_client.app[LIVES].hosted == {}


async def test_viewers_cannot_publish_answer_or_end_for_others(
        app_client: Any, redis: Redis, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    _, live = await go_live(ann, closers)
    live_id = live["live"]["live_id"]
    bob = await peer(app_client, "bob", closers)
    # answering without joining, ending someone else's live, joining yourself
    fake = await bob.call("rtc:answer", {"live_id": live_id, "sdp": "v=0"})
    assert fake["error"]["code"] == "not_found"
    assert (await bob.call("live:end", {}))["error"]["code"] == "not_found"
    assert (await ann.call("room:join", {"user_id": ann.user.id}))["error"]["code"] == "invalid"
    assert await redis.exists(keys.live(ann.user.id)) == 1
    # a bad answer from a joined viewer drops only that viewer
    ack = await bob.call("room:join", {"user_id": ann.user.id})
    bad = await bob.call("rtc:answer", {"live_id": live_id, "sdp": "garbage"})
    assert bad["error"]["code"] == "invalid"
    assert await redis.hlen(keys.live_viewers(live_id)) == 0
    assert ack["ok"]
    # joining an offline creator
    carl = await peer(app_client, "carl", closers)
    assert (await bob.call("room:join", {"user_id": carl.user.id}))["error"]["code"] == \
        "not_found"


async def test_answer_twice_is_a_conflict(app_client: Any, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    await go_live(ann, closers)
    bob = await peer(app_client, "bob", closers)
    viewer, ack = await watch(bob, ann, closers)
    again = await bob.call("rtc:answer", {"live_id": ack["live"]["live_id"],
                                          "sdp": viewer.pc.localDescription.sdp})
    assert again["error"]["code"] == "conflict"
    await poll(lambda: viewer.video_frames > 0, timeout=15)


async def test_blocked_viewers_cannot_join(app_client: Any, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    bob = await peer(app_client, "bob", closers)
    await ann.call("user:block", {"user_id": bob.user.id})
    await go_live(ann, closers)
    assert (await bob.call("room:join", {"user_id": ann.user.id}))["error"]["code"] == \
        "forbidden"
    assert (await bob.call("live:watch", {"user_id": ann.user.id}))["error"]["code"] == \
        "forbidden"


async def test_viewer_disconnect_updates_the_count(app_client: Any, redis: Redis,
                                                   closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    _, live = await go_live(ann, closers)
    live_id = live["live"]["live_id"]
    bob = await peer(app_client, "bob", closers)
    tab2 = Peer(await sio_connect(app_client, bob.user.token), bob.user)
    closers.append(tab2.sio)
    await watch(bob, ann, closers)
    await watch(tab2, ann, closers)
    assert await redis.hlen(keys.live_viewers(live_id)) == 1  # one person, two tabs
    await bob.sio.disconnect()
    await poll(lambda: redis.hget(keys.live_viewers(live_id), bob.user.id), timeout=5)

    async def one_tab_left() -> bool:
        return await redis.hget(keys.live_viewers(live_id), bob.user.id) == "1"

    await poll(one_tab_left, timeout=5)
    await tab2.call("room:leave", {"live_id": live_id})
    assert await redis.hlen(keys.live_viewers(live_id)) == 0
    await poll(lambda: any(s["viewers"] == 0 for s in ann.got("room:state")))


async def test_creator_drop_ends_after_grace_unless_they_return(
        app_client: Any, redis: Redis, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    _, live = await go_live(ann, closers)
    bob = await peer(app_client, "bob", closers)
    viewer, _ = await watch(bob, ann, closers)
    await poll(lambda: viewer.video_frames > 0, timeout=15)
    # the creator's connection drops and comes back within the grace period
    await ann.sio.disconnect()
    back = Peer(await sio_connect(app_client, ann.user.token), ann.user)
    closers.append(back.sio)
    _, resumed = await go_live(back, closers)
    assert resumed["resumed"] is True
    assert resumed["live"]["live_id"] == live["live"]["live_id"]
    await asyncio.sleep(0.8)  # past the 0.6 s grace: still live
    assert await redis.exists(keys.live(ann.user.id)) == 1
    frames = viewer.video_frames
    await poll(lambda: viewer.video_frames > frames + 10, timeout=15)
    assert not bob.got("live:ended")
    # it drops again and does not come back
    await back.sio.disconnect()
    await poll(lambda: bob.got("live:ended"), timeout=5)
    assert bob.got("live:ended")[0]["reason"] == "creator_left"
    assert await redis.exists(keys.live(ann.user.id)) == 0


async def test_the_publishing_connection_may_re_offer(app_client: Any, redis: Redis,
                                                      closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    _, first = await go_live(ann, closers)
    _, again = await go_live(ann, closers)  # same socket, new media connection
    assert again["resumed"] is True
    assert again["live"]["live_id"] == first["live"]["live_id"]


async def test_watchers_see_a_creator_go_live(app_client: Any, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    fan = await peer(app_client, "fan", closers)
    watching = await fan.call("live:watch", {"user_id": ann.user.id})
    assert watching == {"ok": True, "live": None, "viewers": 0}
    assert (await fan.call("discover:watch", {})) == {"ok": True, "lives": []}
    await go_live(ann, closers, "surprise")
    await poll(lambda: fan.got("live:started"))
    assert fan.got("live:started")[0]["live"]["title"] == "surprise"
    await poll(lambda: any(u["lives"] for u in fan.got("discover:update")))
    await ann.call("live:end", {})
    await poll(lambda: fan.got("live:ended"))


async def test_stale_lives_are_cleaned_on_start(aiohttp_client: Any, settings: Any,
                                                redis: Redis) -> None:
    """A live this node left behind (it crashed) waits a grace period for its creator,
    with no viewers, then ends; another node's live is left alone."""
    settings.live_grace = 0.3
    node = settings.node_name()
    await redis.hset(keys.live("abc"), mapping={"live_id": "0" * 16, "creator_id": "abc",
                                                "title": "t", "started_at": "1", "node": node})
    await redis.zadd(keys.live_directory(), {"abc": 5})
    await redis.hset(keys.live_viewers('0' * 16), "someone", 1)
    await redis.sadd(keys.node_lives(node), "abc")
    await redis.hset(keys.live("other"), mapping={
        "live_id": "1" * 16, "creator_id": "other", "title": "t", "started_at": "1",
        "node": "elsewhere"})
    await redis.zadd(keys.live_directory(), {"other": 1})
    client = await aiohttp_client(create_app(settings))
    assert client.app[LIVES].hosted_live("0" * 16) is not None
    assert await redis.zscore(keys.live_directory(), "abc") == 0
    assert await redis.exists(keys.live_viewers('0' * 16)) == 0

    async def ended() -> bool:
        return await redis.exists(keys.live("abc")) == 0

    await poll(ended, timeout=5)
    assert await redis.zrange(keys.live_directory(), 0, -1) == ["other"]
    assert await redis.smembers(keys.node_lives(node)) == set()


async def test_bad_live_payloads(app_client: Any, closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    cases = [
        ("live:start", {}, "missing required field `offer`"),
        ("live:start", {"offer": 5}, "Expected `str`"),
        ("live:start", {"offer": "x" * 40_000}, "length <= 32768"),
        ("live:start", {"offer": "v=0", "title": "t" * 300}, "length <= 256"),
        ("room:join", {"user_id": "nope"}, "matching regex"),
        ("rtc:answer", {"live_id": "0" * 16}, "missing required field `sdp`"),
        ("room:leave", {"live_id": 7}, "Expected `str`"),
    ]
    for event, payload, expected in cases:
        ack = await ann.call(event, payload)
        assert ack["error"]["code"] == "invalid" and expected in ack["error"]["message"], ack
    long_title = await ann.call("live:start", {"offer": "v=0", "title": "t" * 150})
    assert long_title["error"]["code"] == "invalid"


async def test_chat_only_join_counts_without_a_stream(app_client: Any, redis: Redis,
                                                      closers: list[Any]) -> None:
    ann = await peer(app_client, "ann", closers)
    _, live = await go_live(ann, closers)
    live_id = live["live"]["live_id"]
    bob = await peer(app_client, "bob", closers)
    ack = await bob.call("room:join", {"user_id": ann.user.id, "media": False})
    assert ack["ok"] and ack["offer"] is None and ack["viewers"] == 1
    assert await redis.hlen(keys.live_viewers(live_id)) == 1
    hosted = app_client.app[LIVES].hosted[ann.user.id]
    assert hosted.media.viewer_ids == []
    stray = await bob.call("rtc:answer", {"live_id": live_id, "sdp": "v=0"})
    assert stray["error"]["code"] == "not_found"
    assert await redis.hlen(keys.live_viewers(live_id)) == 1
    assert (await bob.call("room:leave", {"live_id": live_id})) == {"ok": True}
    assert await redis.hlen(keys.live_viewers(live_id)) == 0
