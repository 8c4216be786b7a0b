"""The notifications inbox and the go-live fan-out job over a real Redis: aggregation,
unread counts, marks, pages, the bound, exactly-once ids, and a job resumed after a
crash telling everyone once."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from engine import keys
from engine.accounts import Account, UserId
from engine.live_alerts import LiveAlerts
from engine.lives import Live
from engine.notifications import Notifications
from engine.nudges import actor

DAY = 86400.0
T0 = 1_700_000_000.0


def person(n: int) -> dict[str, str]:
    return {"id": f"{n:016x}", "username": f"user{n}", "display_name": f"User {n}"}


async def test_add_aggregates_a_day_of_nudges_into_one_line(redis: Redis) -> None:
    inbox = Notifications(redis)
    first = await inbox.add("c", "nudge", {"actors": [person(1)], "count": 1},
                            group="nudge:2023-11-14", now=T0)
    assert first is not None and not first.merged
    for n in range(2, 15):
        added = await inbox.add("c", "nudge", {"actors": [person(n)], "count": 1},
                                group="nudge:2023-11-14", now=T0 + n)
        assert added is not None and added.merged and added.notification.id == first.notification.id
    # the same person again the same day counts once (they are among the newest kept)
    again = await inbox.add("c", "nudge", {"actors": [person(14)], "count": 1},
                            group="nudge:2023-11-14", now=T0 + 20)
    assert again is not None and again.notification.data["count"] == 14
    items, more = await inbox.page("c")
    assert more is None and len(items) == 1
    view = items[0].as_dict()
    assert view["text"] == "User 14, User 13 and 12 others nudged you to go live"
    assert [a["id"] for a in view["data"]["actors"]] == [person(n)["id"] for n in (14, 13, 12)]
    assert view["at"] == T0 + 20 and view["read"] is False
    # another day is another line, on top
    await inbox.add("c", "nudge", {"actors": [person(1)], "count": 1}, group="nudge:2023-11-15",
                    now=T0 + DAY)
    items, _ = await inbox.page("c")
    assert [i.as_dict()["text"] for i in items] == [
        "User 1 nudged you to go live", "User 14, User 13 and 12 others nudged you to go live"]
    assert await inbox.unread("c") == 2


async def test_unread_marks_and_pages(redis: Redis) -> None:
    inbox = Notifications(redis, page_max=100)
    ids = []
    for n in range(25):
        # pairs share a millisecond: the cursor must not skip or repeat ties
        added = await inbox.add("u", "follow", {"actors": [person(n)], "count": 1},
                                now=T0 + n // 2 / 1000)
        assert added is not None
        ids.append(added.notification.id)
    assert await inbox.unread("u") == 25
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        items, cursor = await inbox.page("u", before=cursor, limit=4)
        seen += [i.id for i in items]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 25
    times = [(await inbox.get("u", i)).at for i in seen]
    assert times == sorted(times, reverse=True)

    assert await inbox.mark_read("u", ids[3]) == 24
    assert await inbox.mark_read("u", ids[3]) == 24  # twice is harmless
    assert (await inbox.get("u", ids[3])).read is True
    try:
        await inbox.mark_read("u", "f" * 16)
        raise AssertionError("an unknown id must be not_found")
    except Exception as exc:
        assert getattr(exc, "code", None) == "not_found"
    try:
        await inbox.mark_read("someone-else", ids[4])
        raise AssertionError("another user's notification must be not_found")
    except Exception as exc:
        assert getattr(exc, "code", None) == "not_found"
    assert await inbox.mark_all_read("u") == 0
    assert await inbox.unread("u") == 0
    assert all(i.read for i in (await inbox.page("u", limit=50))[0])


async def test_an_explicit_id_is_written_once_and_the_inbox_is_bounded(redis: Redis) -> None:
    inbox = Notifications(redis, keep=5)
    assert await inbox.add("u", "live", {"user": person(1), "live": {"title": "x"}},
                           id="0123456789abcdef", now=T0) is not None
    assert await inbox.add("u", "live", {"user": person(1), "live": {"title": "x"}},
                           id="0123456789abcdef", now=T0 + 1) is None
    await inbox.add("u", "follow", {"actors": [person(2)], "count": 1}, group="follow:d", now=T0)
    for n in range(10):
        await inbox.add("u", "gift", {"user": person(3), "gift": {"name": "Rose"}},
                        now=T0 + 10 + n)
    items, _ = await inbox.page("u")
    assert len(items) == 5 and {i.kind for i in items} == {"gift"}
    assert await redis.hlen(keys.notification_data("u")) == 5
    assert await redis.scard(keys.notifications_unread("u")) == 5
    # the dropped group's pointer went with it: the next follow starts a new line
    assert await redis.hget(keys.notification_groups("u"), "follow:d") is None
    assert items[0].as_dict()["text"] == "User 3 sent you Rose"


async def seed_creator(redis: Redis, creator: str, followers: int, *, alerts: int,
                       nudgers: list[str]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(keys.user(creator), mapping={"id": creator})
        for n in range(followers):
            uid = f"{n:016x}"
            pipe.zadd(keys.followers(creator), {uid: T0})
            if n < alerts:
                pipe.sadd(keys.live_alerts(creator), uid)
        for n, uid in enumerate(nudgers):
            pipe.zadd(keys.nudge_waiting(creator), {uid: T0 * 1000 + n})
        await pipe.execute()


async def test_fan_out_tells_each_once_even_when_resumed_after_a_crash(redis: Redis) -> None:
    inbox = Notifications(redis)
    creator_id = "c" * 16
    # 1,200 followers, 1,000 with alerts on; 30 nudgers of whom 10 also have alerts on and
    # one is blocked; an alert follower who unfollowed; one who blocked the creator.
    nudgers = [f"{n:016x}" for n in range(990, 1010)] + [f"{n:016x}" for n in range(5000, 5010)]
    await seed_creator(redis, creator_id, 1200, alerts=1000, nudgers=nudgers)
    await redis.sadd(keys.live_alerts(creator_id), f"{9999:016x}")  # alert on, not a follower
    await redis.sadd(keys.blocks(creator_id), f"{5000:016x}")       # creator blocked a nudger
    await redis.sadd(keys.blocked_by(creator_id), f"{1:016x}")       # a follower blocked them

    creator = Account(UserId(creator_id), "cathy", "Cathy", None, "", T0)  # type: ignore[arg-type]
    live = Live("0123456789abcdef", creator_id, "Morning show", T0, "node-a")
    crashing = LiveAlerts(redis, inbox, "node-a", batch=100)
    assert await crashing.begin(live, creator, now=T0) == 30
    assert await crashing.begin(live, creator, now=T0) == -1  # once per live
    assert await redis.zcard(keys.nudge_waiting(creator_id)) == 0
    assert await crashing.claim() == live.live_id
    told: list[str] = []
    for _ in range(4):  # a few batches, then the node "dies"
        step = await crashing.step(live.live_id)
        assert step is not None
        told += step.told

    restarted = LiveAlerts(redis, inbox, "node-a", batch=100)
    assert await restarted.active() == [live.live_id]
    assert await restarted.claim() is None
    for _ in range(200):
        step = await restarted.step(live.live_id)
        assert step is not None
        told += step.told
        if step.done:
            break
    assert step.done
    expected = ({f"{n:016x}" for n in range(1000)} | set(nudgers)) - {f"{5000:016x}",
                                                                      f"{1:016x}"}
    assert len(told) == len(set(told)) and set(told) == expected
    assert await restarted.finish(live.live_id) == len(expected)
    assert await restarted.active() == [] and not await redis.exists(keys.notify_job(live.live_id))
    # every inbox holds it once; the stale alert of the non-follower was dropped
    for uid in (f"{0:016x}", f"{995:016x}", f"{5005:016x}"):
        items, _ = await inbox.page(uid)
        assert [(i.id, i.as_dict()["text"]) for i in items] == [
            (live.live_id, "Cathy is LIVE: Morning show")]
    for uid in (f"{1100:016x}", f"{5000:016x}", f"{1:016x}", f"{9999:016x}"):
        assert (await inbox.page(uid))[0] == []
    assert not await redis.sismember(keys.live_alerts(creator_id), f"{9999:016x}")
    stats = await redis.hgetall(keys.live_nudge_stats(live.live_id))
    assert stats["nudgers"] == "30" and stats["title"] == "Morning show"
    item = json.loads(await redis.hget(keys.notification_data(f"{0:016x}"), live.live_id))
    assert item["data"]["user"] == actor(creator)


async def run_job(alerts: LiveAlerts, live_id: str) -> list[str]:
    assert await alerts.claim() == live_id
    told: list[str] = []
    for _ in range(100):
        step = await alerts.step(live_id)
        assert step is not None
        told += step.told
        if step.done:
            break
    await alerts.finish(live_id)
    return told


async def test_go_live_alerts_reach_the_same_followers_once_per_window(redis: Redis) -> None:
    """A creator who goes LIVE again within the window (a lost connection past the
    grace, a restart) alerts their nudgers but not their alert followers again."""
    inbox = Notifications(redis)
    creator_id = "d" * 16
    await seed_creator(redis, creator_id, 50, alerts=40, nudgers=[])
    creator = Account(UserId(creator_id), "dora", "Dora", None, "", T0)  # type: ignore[arg-type]
    alerts = LiveAlerts(redis, inbox, "node-a", batch=100, alert_window_s=600)
    first = Live("1" * 16, creator_id, "first", T0, "node-a")
    assert await alerts.begin(first, creator, now=T0) == 0
    assert len(await run_job(alerts, first.live_id)) == 40
    assert 0 < await redis.pttl(keys.live_alerted(creator_id)) <= 600_000
    # a second LIVE a minute later: only the one who nudged meanwhile is told
    nudger = f"{7000:016x}"
    await redis.zadd(keys.nudge_waiting(creator_id), {nudger: T0 * 1000})
    second = Live("2" * 16, creator_id, "second", T0 + 60, "node-a")
    assert await alerts.begin(second, creator, now=T0 + 60) == 1
    assert await run_job(alerts, second.live_id) == [nudger]
    assert (await inbox.page(f"{0:016x}"))[0][0].id == first.live_id  # no second alert
    # once the window has passed, the followers are told again
    await redis.delete(keys.live_alerted(creator_id))   # what its TTL does after 600 s
    third = Live("3" * 16, creator_id, "third", T0 + 700, "node-a")
    await alerts.begin(third, creator, now=T0 + 700)
    assert len(await run_job(alerts, third.live_id)) == 40
    # a window of 0 debounces nothing
    every = LiveAlerts(redis, inbox, "node-a", batch=100, alert_window_s=0)
    fourth = Live("4" * 16, creator_id, "fourth", T0 + 710, "node-a")
    await every.begin(fourth, creator, now=T0 + 710)
    assert len(await run_job(every, fourth.live_id)) == 40


async def test_the_fanout_waits_for_a_redis_that_does_not_answer_without_a_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    """A paused Redis (`golive chaos --pause 8` found it: the worker's calls time out, and
    each timeout was logged with a traceback): one warning per try, never a traceback."""
    import logging
    import socket

    from signaling.config import Settings
    from signaling.notifications import AlertFanout, Notifier
    from signaling.services import Services
    from tests.support.poll import poll
    from tests.support.servers import TEST_SECRET

    silent = socket.socket()  # accepts connections (the kernel's backlog), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    stuck = Redis.from_url(f"redis://127.0.0.1:{silent.getsockname()[1]}",
                           decode_responses=True, socket_timeout=0.2,
                           socket_connect_timeout=0.2)
    services = Services.build(stuck, Settings(secret=TEST_SECRET))
    fanout = AlertFanout(Notifier(None, services), poll_s=60)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="golive.notifications")
    await fanout.on_open()
    try:
        await poll(lambda: [r for r in caplog.records if r.name == "golive.notifications"],
                   what="the worker's log line")
    finally:
        await fanout.on_close()
        await stuck.aclose()
        silent.close()
    lines = [r for r in caplog.records if r.name == "golive.notifications"]
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in lines] == [
        ("WARNING", "live fan-out waits for Redis; retrying", None)]
