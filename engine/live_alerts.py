"""Live alerts and the go-live fan-out: who is told "NAME is LIVE: TITLE", once each.

Followers turn alerts on per creator (`live_alerts:{creator}`, opt-in). When a
creator goes live, begin() does in one script what closes the nudge loop: the
waiting nudgers become the live's nudgers (`live_nudgers:{live_id}`, so the
studio's waiting count resets and insights can count who came), the live's
nudge figures are recorded, and a fan-out job is queued.

A job (`notify_job:{live_id}`) walks two sets with SSCAN/ZSCAN cursors: the
live's nudgers, then the creator's alert followers. Each step writes one batch
of inboxes in one script call (one round trip for hundreds of users; the
notification's JSON is the same for all) and moves the job's cursor in the
same script, so a job resumed after a crash starts where the last write ended.
The notification's id is the live's id: a user who is both a nudger and an
alert follower, or whom a resumed scan returns twice, is told once (the write
finds the id and skips).

Filters at write time: nobody blocked either way with the creator; alert
followers must still follow (an unfollow or a block drops the alert here,
lazily, so neither needs a hook).

Queue: `notify_jobs` (waiting), claimed with LMOVE into this node's
`notify_jobs_active:{node}`; a restarted node resumes its active jobs first, and a
node that died and does not come back has its active jobs put back at the head of the
queue by the live node that takes over from it (requeue_node), which resumes them at
their cursors: each user is still told once (the id check above).

Cluster note: a batch script names the keys of many users; they are all in the
`{core}` slot (engine/keys.py), so a Redis Cluster serves it (docs/scaling.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from engine import keys
from engine.accounts import Account
from engine.errors import DomainError, ErrorCode, invalid
from engine.graph import Relation
from engine.lives import Live
from engine.notifications import LUA_NOTIFY, Kind, Notification, Notifications, item_json
from engine.nudges import DAY_S, actor

# Users per write step. `python -m bench.notify --followers 100000 --batch N` on this
# 2-core host (busy with other work): the loop's longest own-CPU stall per step was
# 3 ms at 200, 4 ms at 250, 8 ms at 500, 15 ms at 1000, 29 ms at 2000 (~15 us per user
# to build and pack the keys), while 100,000 writes took 4-6 s at every size (Redis
# bound, ~20-25k/s). Smaller steps also keep each script short inside Redis.
BATCH = 250
JOB_TTL_S = 7 * DAY_S


def check_may_set_alerts(user_id: str, creator_id: str, relation: Relation, on: bool) -> None:
    """Alerts are for followers: not yourself, not across a block, and turning them on
    needs a follow (turning them off is always allowed)."""
    if user_id == creator_id:
        raise invalid("you cannot turn on live alerts for yourself")
    if not on:
        return
    if relation.blocked_by or relation.blocking:
        raise DomainError(ErrorCode.FORBIDDEN, "you cannot get alerts from this account",
                          reason="blocked")
    if not relation.following:
        raise DomainError(ErrorCode.FORBIDDEN, "follow them to get their live alerts",
                          reason="not_following")


# KEYS: 1 waiting, 2 live_nudgers, 3 stats, 4 creator's lives, 5 job, 6 jobs,
# 7 live_alerted:creator.
# ARGV: 1 live id, 2 creator, 3 title, 4 started_at, 5 item JSON, 6 ms, 7 stats ttl,
# 8 oldest start kept, 9 job ttl, 10 alert window ms (0: none).
# The alert followers are told at most once per window per creator (SET NX PX on
# live_alerted): a LIVE begun within it queues a job for its nudgers only ('quiet').
_BEGIN = """
if redis.call('EXISTS', KEYS[5]) == 1 then return -1 end
local quiet = '0'
if ARGV[10] ~= '0' then
  if not redis.call('SET', KEYS[7], ARGV[1], 'NX', 'PX', ARGV[10]) then quiet = '1' end
end
local n = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  n = redis.call('ZCARD', KEYS[1])
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
end
redis.call('HSET', KEYS[3], 'title', ARGV[3], 'started_at', ARGV[4], 'nudgers', n, 'came', 0)
redis.call('EXPIRE', KEYS[3], ARGV[7])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[8])
redis.call('HSET', KEYS[5], 'creator', ARGV[2], 'item', ARGV[5], 'ms', ARGV[6],
           'phase', 'nudgers', 'cursor', '0', 'sent', 0, 'quiet', quiet)
redis.call('EXPIRE', KEYS[5], ARGV[9])
redis.call('RPUSH', KEYS[6], ARGV[1])
return n
"""

# One step of a job. KEYS: 1 job, 2 followers:creator, 3 blocks:creator,
# 4 blocked_by:creator, 5 live_alerts:creator, then 4 inbox keys per user.
# ARGV: 1 phase expected, 2 cursor expected, 3 next cursor, 4 id, 5 item, 6 ms, 7 keep,
# then the user ids. Returns {phase after, new user ids...}, or {'raced'}.
_STEP = LUA_NOTIFY + """
if redis.call('HGET', KEYS[1], 'phase') ~= ARGV[1] or
   redis.call('HGET', KEYS[1], 'cursor') ~= ARGV[2] then return {'raced'} end
local alerts = ARGV[1] == 'alerts'
local out = {''}
for i = 8, #ARGV do
  local uid = ARGV[i]
  local k = 5 + (i - 8) * 4
  local skip = redis.call('SISMEMBER', KEYS[3], uid) == 1
             or redis.call('SISMEMBER', KEYS[4], uid) == 1
  if not skip and alerts and not redis.call('ZSCORE', KEYS[2], uid) then
    redis.call('SREM', KEYS[5], uid)
    skip = true
  end
  if not skip then
    local r = notify(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], ARGV[4], ARGV[5],
                     ARGV[6], tonumber(ARGV[7]), '', 1)
    if r[1] == 1 then out[#out + 1] = uid end
  end
end
local phase = ARGV[1]
local cursor = ARGV[3]
if cursor == '0' then
  if phase == 'nudgers' and redis.call('HGET', KEYS[1], 'quiet') ~= '1' then
    phase = 'alerts'
  else
    phase = 'done'
  end
end
redis.call('HSET', KEYS[1], 'phase', phase, 'cursor', cursor)
redis.call('HINCRBY', KEYS[1], 'sent', #out - 1)
out[1] = phase
return out
"""


# A dead node's claimed jobs go back to the head of the queue, in their order, at once.
# KEYS: 1 notify_jobs_active:DEAD, 2 notify_jobs.
_REQUEUE = """
local n = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do n = n + 1 end
return n
"""


@dataclass(frozen=True, slots=True)
class Step:
    """One write step of a fan-out job."""

    live_id: str
    notification: Notification    # as every recipient got it (unread)
    told: list[str]               # users newly notified by this step
    done: bool


class LiveAlerts:
    """Alert settings, and the go-live fan-out jobs (queued, claimed and stepped)."""

    def __init__(self, redis: Redis, notifications: Notifications, node_id: str, *,
                 batch: int = BATCH, retention_s: int = 31 * DAY_S,
                 alert_window_s: float = 3600.0) -> None:
        self._redis = redis
        # Followers with alerts on are told of a creator's LIVE at most once in this
        # many seconds: a creator who restarts (a lost connection past the grace, a
        # new title) does not alert the same people again and again. 0: every LIVE.
        self.alert_window_s = alert_window_s
        self._notifications = notifications
        self.node_id = node_id
        self.batch = batch
        self.retention_s = retention_s
        self._begin = redis.register_script(_BEGIN)
        self._step = redis.register_script(_STEP)
        self._requeue = redis.register_script(_REQUEUE)

    # --- alerts -----------------------------------------------------------------------

    async def set(self, user_id: str, creator_id: str, relation: Relation, on: bool) -> bool:
        check_may_set_alerts(user_id, creator_id, relation, on)
        if on:
            await self._redis.sadd(keys.live_alerts(creator_id), user_id)
        else:
            await self._redis.srem(keys.live_alerts(creator_id), user_id)
        return on

    async def is_on(self, user_id: str, creator_id: str, relation: Relation) -> bool:
        """On only while they follow (an unfollow leaves the entry until the next live)."""
        return relation.following and bool(
            await self._redis.sismember(keys.live_alerts(creator_id), user_id))

    async def count(self, creator_id: str) -> int:
        return int(await self._redis.scard(keys.live_alerts(creator_id)))

    # --- going live ---------------------------------------------------------------------

    async def begin(self, live: Live, creator: Account, *, now: float | None = None) -> int:
        """The creator went live: the waiting nudgers become this live's, the figures are
        recorded and the fan-out job queued (for the alert followers too, unless their
        last alert from this creator is younger than alert_window_s). The number of
        nudgers; -1 if already begun."""
        moment = time.time() if now is None else now
        data = {"user": actor(creator),
                "live": {"live_id": live.live_id, "title": live.title,
                         "started_at": live.started_at}}
        item = item_json(live.live_id, Kind.LIVE, data, moment)
        return int(await self._begin(
            keys=[keys.nudge_waiting(creator.id), keys.live_nudgers(live.live_id),
                  keys.live_nudge_stats(live.live_id), keys.nudge_lives(creator.id),
                  keys.notify_job(live.live_id), keys.notify_jobs(),
                  keys.live_alerted(creator.id)],
            args=[live.live_id, creator.id, live.title, repr(live.started_at), item,
                  int(moment * 1000), self.retention_s,
                  repr(live.started_at - self.retention_s), JOB_TTL_S,
                  int(self.alert_window_s * 1000)]))

    async def claim(self) -> str | None:
        """Take the next queued job for this node (it stays listed as this node's
        until finish())."""
        return await self._redis.lmove(keys.notify_jobs(), keys.notify_jobs_active(self.node_id),
                                       "LEFT", "RIGHT")

    async def active(self) -> list[str]:
        """Jobs this node claimed and did not finish (after a restart: resume them)."""
        return list(await self._redis.lrange(keys.notify_jobs_active(self.node_id), 0, -1))

    async def requeue_node(self, node_id: str) -> int:
        """Put a dead node's unfinished jobs back at the head of the queue (any node's
        worker resumes them where their last batch ended); the number moved."""
        return int(await self._requeue(
            keys=[keys.notify_jobs_active(node_id), keys.notify_jobs()], args=[]))

    async def pending(self) -> int:
        return int(await self._redis.llen(keys.notify_jobs()))

    async def step(self, live_id: str) -> Step | None:
        """Write one batch of a job; None when the job is gone (finished elsewhere)."""
        job = await self._redis.hgetall(keys.notify_job(live_id))
        if not job:
            return None
        creator, phase, cursor = job["creator"], job["phase"], job["cursor"]
        item, ms = job["item"], int(job["ms"])
        notification = Notification(live_id, Kind.LIVE, ms / 1000,
                                    _data_of(item), False, ms)
        if phase == "done":
            return Step(live_id, notification, [], True)
        if phase == "nudgers":
            next_cursor, scored = await self._redis.zscan(keys.live_nudgers(live_id),
                                                          int(cursor), count=self.batch)
            users = [member for member, _ in scored]
        else:
            next_cursor, found = await self._redis.sscan(keys.live_alerts(creator),
                                                         int(cursor), count=self.batch)
            users = list(found)
        inbox: list[str] = []
        for uid in users:
            inbox += [keys.notifications(uid), keys.notification_data(uid),
                      keys.notifications_unread(uid), keys.notification_groups(uid)]
        result = await self._step(
            keys=[keys.notify_job(live_id), keys.followers(creator), keys.blocks(creator),
                  keys.blocked_by(creator), keys.live_alerts(creator), *inbox],
            args=[phase, cursor, str(next_cursor), live_id, item, ms,
                  self._notifications.keep, *users])
        if result[0] == "raced":
            return Step(live_id, notification, [], False)
        return Step(live_id, notification, list(result[1:]), result[0] == "done")

    async def finish(self, live_id: str) -> int:
        """Drop a finished job; the number of users it told."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(keys.notify_job(live_id), "sent")
            pipe.delete(keys.notify_job(live_id))
            pipe.lrem(keys.notify_jobs_active(self.node_id), 0, live_id)
            sent, _, _ = await pipe.execute()
        return int(sent or 0)


def _data_of(item: str) -> dict[str, object]:
    return dict(json.loads(item).get("data") or {})


__all__ = ["BATCH", "LiveAlerts", "Step", "check_may_set_alerts"]
