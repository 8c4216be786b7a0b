"""Nudges over Redis: send one, the bell's state, the creator's waiting count, settings
and insights. The rules are plain functions in engine/nudge_rules.py.

A send reads the facts (relation, live, settings, windows), asks the rules, then
writes in one script that re-checks every fact it depends on and validates
before its first write, so a refusal stores nothing and two racing nudges cannot
both pass a limit. The same script writes the creator's inbox entry (the day's
aggregated "A, B and 12 others nudged you to go live", engine/notifications.py):
a nudge and its notification exist together or not at all.

Keys (engine/keys.py): nudge_settings, nudge_waiting (who nudged since the last
live; the studio's "14 people are waiting" and the bell's "Nudged" state),
nudge_pair (one per sender per creator per window), nudge_rate (per sender per
hour), nudge_day (per creator per UTC day, for insights), and per live
live_nudgers / live_nudge_stats / live_came, written when the creator goes live
(engine/live_alerts.py) and when a nudger joins (attended()).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from engine import keys
from engine.accounts import Account, Accounts, utc_today
from engine.graph import Graph
from engine.lives import Live, Lives
from engine.notifications import (
    ACTORS_KEPT,
    LUA_NOTIFY,
    Added,
    Kind,
    Notifications,
    day_of,
    inbox_keys,
    item_json,
)
from engine.nudge_rules import (
    NudgeFacts,
    NudgeLimits,
    NudgeSettings,
    check_may_nudge,
    check_not_self,
    refusal,
)

DAY_S = 24 * 3600


def actor(account: Account) -> dict[str, str]:
    """What a notification keeps of the person who acted (names shown later)."""
    return {"id": account.id, "username": account.username,
            "display_name": account.display_name}


# KEYS: 1 live, 2 blocks:creator, 3 blocks:sender, 4 settings, 5 pair, 6 rate, 7 waiting,
# 8 day counter, 9-12 the creator's inbox. ARGV: 1 sender, 2 creator, 3 window ms,
# 4 hourly cap, 5 hour ms, 6 now ms, 7 day ttl s, 8 notification id, 9 its JSON,
# 10 inbox bound, 11 group, 12 actors kept.
_SEND = LUA_NOTIFY + """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return {'blocked', 0} end
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then return {'blocked', 0} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'live', 0} end
if redis.call('HGET', KEYS[4], 'allow') == '0' then return {'off', 0} end
local pair = redis.call('PTTL', KEYS[5])
if pair ~= -2 then return {'pair', pair} end
local n = tonumber(redis.call('GET', KEYS[6]) or '0')
if n >= tonumber(ARGV[4]) then return {'cap', redis.call('PTTL', KEYS[6])} end
redis.call('SET', KEYS[5], ARGV[6], 'PX', ARGV[3])
if redis.call('INCR', KEYS[6]) == 1 then redis.call('PEXPIRE', KEYS[6], ARGV[5]) end
redis.call('ZADD', KEYS[7], ARGV[6], ARGV[1])
redis.call('INCR', KEYS[8])
redis.call('EXPIRE', KEYS[8], ARGV[7])
local r = notify(KEYS[9], KEYS[10], KEYS[11], KEYS[12], ARGV[8], ARGV[9], ARGV[6],
                 tonumber(ARGV[10]), ARGV[11], tonumber(ARGV[12]))
return {'ok', redis.call('ZCARD', KEYS[7]), r[2]}
"""

# A viewer joined a live: count them once if they nudged for it.
# KEYS: live_nudgers, live_came, stats; ARGV: user, ttl s.
_ATTENDED = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('HINCRBY', KEYS[3], 'came', 1) end
return 1
"""


@dataclass(frozen=True, slots=True)
class Nudged:
    creator: Account
    waiting: int            # distinct people waiting for the creator now
    retry_after: float      # seconds until this sender may nudge this creator again
    notification: Added     # the creator's inbox entry (the day's aggregate)


class Nudges:
    """Send nudges; read the bell's state, the waiting count, settings and insights."""

    def __init__(self, redis: Redis, accounts: Accounts, graph: Graph, lives: Lives,
                 notifications: Notifications, limits: NudgeLimits | None = None) -> None:
        self._redis = redis
        self._accounts = accounts
        self._graph = graph
        self._lives = lives
        self._notifications = notifications
        self.limits = limits or NudgeLimits()
        self._send = redis.register_script(_SEND)
        self._attended = redis.register_script(_ATTENDED)

    @property
    def retention_s(self) -> int:
        """How long per-day and per-live figures are kept: the insight span and a day."""
        return (self.limits.insight_days + 1) * DAY_S

    # --- settings ---------------------------------------------------------------------

    async def settings(self, creator_id: str) -> NudgeSettings:
        return NudgeSettings.from_hash(await self._redis.hgetall(keys.nudge_settings(creator_id)))

    async def update_settings(self, creator_id: str, *, allow: bool | None = None,
                              dm: bool | None = None) -> NudgeSettings:
        changes = {name: "1" if value else "0"
                   for name, value in (("allow", allow), ("dm", dm)) if value is not None}
        if changes:
            await self._redis.hset(keys.nudge_settings(creator_id), mapping=changes)
        return await self.settings(creator_id)

    # --- sending ----------------------------------------------------------------------

    async def facts(self, sender_id: str, creator: Account) -> NudgeFacts:
        """Everything check_may_nudge needs, in two round trips."""
        creator_id = creator.id
        relation = await self._graph.relation(sender_id, creator_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.live(creator_id))
            pipe.hgetall(keys.nudge_settings(creator_id))
            pipe.pttl(keys.nudge_pair(sender_id, creator_id))
            pipe.get(keys.nudge_rate(sender_id))
            pipe.pttl(keys.nudge_rate(sender_id))
            live, settings, pair_ms, sent, hour_ms = await pipe.execute()
        return NudgeFacts(
            relation=relation, creator_live=bool(live),
            settings=NudgeSettings.from_hash(settings),
            pair_wait_s=_wait_s(pair_ms, self.limits.per_creator.seconds),
            sent_this_hour=int(sent or 0),
            hour_wait_s=_wait_s(hour_ms, self.limits.per_sender.seconds),
            creator_may_go_live=self.limits.may_go_live(creator.birthdate, utc_today()))

    async def send(self, sender: Account, creator_id: str, *,
                   now: float | None = None) -> Nudged:
        """Nudge a creator to go live. invalid (yourself), not_found (no such user),
        forbidden (blocked, nudges_off), conflict (live), rate_limited (already_nudged,
        hourly_cap) with retry_after. A refusal writes nothing."""
        check_not_self(sender.id, creator_id)
        creator = await self._accounts.get(creator_id)
        check_may_nudge(sender.id, creator.id, await self.facts(sender.id, creator),
                        self.limits)
        moment = time.time() if now is None else now
        day = day_of(moment)
        data = {"actors": [actor(sender)], "count": 1}
        nid = secrets.token_hex(8)
        group = f"nudge:{day}"
        lim = self.limits
        result = await self._send(
            keys=[keys.live(creator.id), keys.blocks(creator.id), keys.blocks(sender.id),
                  keys.nudge_settings(creator.id), keys.nudge_pair(sender.id, creator.id),
                  keys.nudge_rate(sender.id), keys.nudge_waiting(creator.id),
                  keys.nudge_day(creator.id, day), *inbox_keys(creator.id)],
            args=[sender.id, creator.id, lim.per_creator.ms, lim.per_sender.limit,
                  lim.per_sender.ms, int(moment * 1000), self.retention_s, nid,
                  item_json(nid, Kind.NUDGE, data, moment, group),
                  self._notifications.keep, group, ACTORS_KEPT])
        if result[0] != "ok":
            raise refusal(str(result[0]), int(result[1]), self.limits)
        stored = await self._notifications.get(creator.id, str(result[2]))
        return Nudged(creator, int(result[1]), lim.per_creator.seconds,
                      Added(stored, stored.id != nid))

    # --- reading ----------------------------------------------------------------------

    async def state(self, viewer_id: str, creator_id: str) -> dict[str, Any]:
        """The bell on a creator's profile, as one viewer sees it: whether the creator
        takes nudges (not when they switched them off, or are too young to go LIVE),
        whether the viewer is waiting (nudged since the last live), and the seconds until
        the viewer may nudge again (0: now)."""
        creator = await self._accounts.get(creator_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.nudge_settings(creator_id))
            pipe.zscore(keys.nudge_waiting(creator_id), viewer_id)
            pipe.pttl(keys.nudge_pair(viewer_id, creator_id))
            settings, waiting, pair_ms = await pipe.execute()
        allowed = NudgeSettings.from_hash(settings).allow and self.limits.may_go_live(
            creator.birthdate, utc_today())
        return {"allowed": allowed,
                "nudged": waiting is not None,
                "retry_after": round(_wait_s(pair_ms, self.limits.per_creator.seconds), 3)}

    async def waiting(self, creator_id: str) -> int:
        """Distinct people who nudged the creator since their last live."""
        return int(await self._redis.zcard(keys.nudge_waiting(creator_id)))

    async def attended(self, live: Live, user_id: str) -> bool:
        """A viewer joined: True the first time one of the live's nudgers comes."""
        return bool(await self._attended(
            keys=[keys.live_nudgers(live.live_id), keys.live_came(live.live_id),
                  keys.live_nudge_stats(live.live_id)],
            args=[user_id, self.retention_s]))

    async def live_stats(self, live_id: str) -> dict[str, int]:
        """{nudgers, came} of one live: who nudged before it and how many of them came."""
        stats = await self._redis.hgetall(keys.live_nudge_stats(live_id))
        return {"nudgers": int(stats.get("nudgers", 0)), "came": int(stats.get("came", 0))}

    async def insights(self, creator_id: str, *, now: float | None = None,
                       lives_shown: int = 10) -> dict[str, Any]:
        """Nudges per UTC day over the insight span (oldest first), the recent lives with
        how many nudgers were waiting and how many of them came, and totals."""
        moment = time.time() if now is None else now
        span = self.limits.insight_days
        days = [day_of(moment - (span - 1 - i) * DAY_S) for i in range(span)]
        counts = await self._redis.mget([keys.nudge_day(creator_id, d) for d in days])
        recent = await self._redis.zrevrangebyscore(
            keys.nudge_lives(creator_id), "+inf", moment - span * DAY_S, start=0,
            num=lives_shown)
        async with self._redis.pipeline(transaction=False) as pipe:
            for live_id in recent:
                pipe.hgetall(keys.live_nudge_stats(live_id))
            stats = await pipe.execute()
        lives = [{"live_id": live_id, "title": s.get("title", ""),
                  "started_at": float(s.get("started_at", 0)),
                  "nudgers": int(s.get("nudgers", 0)), "came": int(s.get("came", 0))}
                 for live_id, s in zip(recent, stats, strict=True) if s]
        per_day = [{"day": d, "nudges": int(c or 0)} for d, c in zip(days, counts, strict=True)]
        return {"days": per_day, "lives": lives,
                "totals": {"nudges": sum(d["nudges"] for d in per_day),
                           "nudgers": sum(x["nudgers"] for x in lives),
                           "came": sum(x["came"] for x in lives)},
                "waiting": await self.waiting(creator_id)}


def _wait_s(pttl_ms: int | None, full_s: float) -> float:
    """The seconds left on a window key: PTTL -2 (none) is 0, -1 (no expiry) the full
    window."""
    ms = int(pttl_ms if pttl_ms is not None else -2)
    if ms == -2:
        return 0.0
    if ms == -1:
        return full_s
    return ms / 1000


__all__ = ["Nudged", "Nudges", "actor"]
