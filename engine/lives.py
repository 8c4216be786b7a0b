"""Live rooms: one live session per creator, the live directory and viewer counts, over Redis.

The directory (`lives`, scored by distinct viewers) drives Discover; each live
records the node hosting its media so a node restarted after a crash finds the
lives it hosted (their creators get a grace period to resume them).
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import WatchError

from engine import keys
from engine.accounts import check_age
from engine.errors import conflict, invalid, not_found, unauthorized
from engine.text import has_control_chars

TITLE_MAX = 100
# TikTok LIVE's hosts must be 18 (its support pages); GOLIVE_LIVE_MIN_AGE changes it.
LIVE_MIN_AGE = 18


@dataclass(frozen=True, slots=True)
class Live:
    live_id: str
    creator_id: str
    title: str
    started_at: float
    node: str
    # The creator's choice at go-live: signed-out (anonymous) visitors may not watch.
    signed_in_only: bool = False

    def as_dict(self) -> dict[str, object]:
        return {"live_id": self.live_id, "creator_id": self.creator_id, "title": self.title,
                "started_at": self.started_at, "signed_in_only": self.signed_in_only}


def _live_from_hash(fields: dict[str, str]) -> Live:
    return Live(fields["live_id"], fields["creator_id"], fields["title"],
                float(fields["started_at"]), fields["node"],
                fields.get("signed_in_only") == "1")


# --- rules -------------------------------------------------------------------

def clean_title(title: str) -> str:
    """One line, at most 100 characters; empty becomes the default title."""
    cleaned = " ".join(title.split())
    if len(cleaned) > TITLE_MAX:
        raise invalid(f"title must be at most {TITLE_MAX} characters", field="title")
    if has_control_chars(cleaned):
        raise invalid("title holds control characters", field="title")
    return cleaned or "LIVE"


def check_may_go_live(birthdate: dt.date, today: dt.date,
                      min_age: int = LIVE_MIN_AGE) -> None:
    """`forbidden` (reason under_age, with min_age) unless the creator is `min_age`
    or older today: live:start asks it, and /api/me shows its answer to the studio."""
    check_age(birthdate, today, min_age, "go LIVE")


def check_may_watch(viewer_id: str, live: Live | None, *, anonymous: bool = False) -> Live:
    """The live a viewer may join: `not_found` when offline, `invalid` for its creator,
    `unauthorized` (reason signin_required) for a signed-out visitor of a LIVE its
    creator kept for signed-in viewers."""
    if live is None:
        raise not_found("this creator is not live")
    if viewer_id == live.creator_id:
        raise invalid("you are the creator of this live; watch it from the studio")
    if anonymous and live.signed_in_only:
        raise unauthorized("this LIVE is for signed-in viewers: sign in to watch",
                           "signin_required")
    return live


# Starts a live unless the creator already has one: validate, then write.
_START = """
local existing = redis.call('HGET', KEYS[1], 'live_id')
if existing then return {'conflict', existing} end
redis.call('HSET', KEYS[1], 'live_id', ARGV[2], 'creator_id', ARGV[1], 'title', ARGV[3],
           'started_at', ARGV[4], 'node', ARGV[5], 'signed_in_only', ARGV[6])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return {'ok', ARGV[2]}
"""

# Ends the live only if it is still the one named (a late end of an old live
# must not end a newer one) and still hosted by the node ending it (a node cut off from
# Redis whose live another node adopted must not end it).
_END = """
if redis.call('HGET', KEYS[1], 'live_id') ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[3] then return 0 end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
return 1
"""

# A node restarts with the live it hosted: its own viewers are gone (it reaped its share
# of the counts as it started, signaling/presence.py), other nodes' members still count,
# and it is not an orphan any more (the others may have marked it while it was down).
_RESET_VIEWERS = """
if redis.call('HGET', KEYS[1], 'live_id') ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[3], 'XX', redis.call('HLEN', KEYS[2]), ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[3])
return 1
"""

# A live whose node died ends when its orphan entry is due, exactly once across the nodes
# that look (the ZREM decides), unless it was ended, adopted or its node came back: then
# the entry is stale and goes. KEYS: 1 live, 2 orphans, 3 directory, 4 live_viewers,
# 5 node_lives:NODE, 6 node:NODE. ARGV: 1 creator, 2 live id, 3 node, 4 member, 5 now.
_END_ORPHAN = """
local due = redis.call('ZSCORE', KEYS[2], ARGV[4])
if not due then return 0 end
if redis.call('HGET', KEYS[1], 'live_id') ~= ARGV[2] or
   redis.call('HGET', KEYS[1], 'node') ~= ARGV[3] or
   redis.call('PTTL', KEYS[6]) > 0 then
  redis.call('ZREM', KEYS[2], ARGV[4])
  return 0
end
if tonumber(due) > tonumber(ARGV[5]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[4])
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[5], ARGV[1])
return 1
"""

# A creator resumes, on this node, a live whose node is dead: it becomes this node's.
# KEYS: 1 live, 2 orphans, 3 node_lives:OLD, 4 node_lives:NEW, 5 node:OLD.
# ARGV: 1 creator, 2 live id, 3 old node, 4 new node, 5 member.
_ADOPT = """
if redis.call('HGET', KEYS[1], 'live_id') ~= ARGV[2] or
   redis.call('HGET', KEYS[1], 'node') ~= ARGV[3] then return 0 end
if redis.call('PTTL', KEYS[5]) > 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[5])
redis.call('HSET', KEYS[1], 'node', ARGV[4])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
return 1
"""

# A viewer connection joins (+1) or leaves (-1) through a node; the directory score is the
# number of distinct viewers across nodes, so two tabs (on one node or two) count once.
# The node's own share (KEYS[4]) is what a reaper takes back out if the node dies.
_VIEWER = """
if redis.call('HGET', KEYS[1], 'live_id') ~= ARGV[2] then return -1 end
local delta = tonumber(ARGV[4])
local mine = redis.call('HINCRBY', KEYS[4], ARGV[3], delta)
if mine <= 0 then
  redis.call('HDEL', KEYS[4], ARGV[3])
  if mine < 0 then delta = delta - mine end
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('HSET', KEYS[5], ARGV[2], ARGV[1])
else
  redis.call('HDEL', KEYS[5], ARGV[2])
end
local n = redis.call('HINCRBY', KEYS[2], ARGV[3], delta)
if n <= 0 then redis.call('HDEL', KEYS[2], ARGV[3]) end
local count = redis.call('HLEN', KEYS[2])
redis.call('ZADD', KEYS[3], 'XX', count, ARGV[1])
return count
"""

# A node is gone (dead, or restarted under the same id): its share of one live's viewers
# leaves the totals, and the directory score follows. Idempotent: the share is deleted.
_REAP = """
local share = redis.call('HGETALL', KEYS[4])
for i = 1, #share, 2 do
  local n = redis.call('HINCRBY', KEYS[2], share[i], -tonumber(share[i + 1]))
  if n <= 0 then redis.call('HDEL', KEYS[2], share[i]) end
end
redis.call('DEL', KEYS[4])
redis.call('HDEL', KEYS[5], ARGV[2])
if redis.call('HGET', KEYS[1], 'live_id') == ARGV[2] then
  redis.call('ZADD', KEYS[3], 'XX', redis.call('HLEN', KEYS[2]), ARGV[1])
end
return #share / 2
"""


def orphan_member(live: Live) -> str:
    """A live's entry in the orphans set (creator and live id: a later live of the same
    creator is another entry)."""
    return f"{live.creator_id}/{live.live_id}"


def distinct_viewers(shares: dict[str, dict[str, int]], alive: set[str]) -> int:
    """The viewer count of a live from each node's share (user -> connections): distinct
    users with a connection on a live node; a user on two nodes, or in two tabs, is one."""
    users: set[str] = set()
    for node, share in shares.items():
        if node in alive:
            users.update(user for user, n in share.items() if n > 0)
    return len(users)


# The title of a running live, only while it is the live named (not a later one).
_RETITLE = """
if redis.call('HGET', KEYS[1], 'live_id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'title', ARGV[2])
return 1
"""

RECENT_CREATORS = 500   # kept in keys.recent_creators: Discover shows the latest 20


class Lives:
    """Start and end lives, count viewers, list the directory."""

    def __init__(self, redis: Redis, node_id: str) -> None:
        self._redis = redis
        self.node_id = node_id
        self._start = redis.register_script(_START)
        self._end = redis.register_script(_END)
        self._viewer = redis.register_script(_VIEWER)
        self._reset_viewers = redis.register_script(_RESET_VIEWERS)
        self._reap = redis.register_script(_REAP)
        self._retitle = redis.register_script(_RETITLE)
        self._end_orphan = redis.register_script(_END_ORPHAN)
        self._adopt = redis.register_script(_ADOPT)

    async def start(self, creator_id: str, title: str, *, now: float | None = None,
                    signed_in_only: bool = False) -> Live:
        """A new live for the creator on this node; `conflict` if one is running.
        signed_in_only: anonymous (signed-out) visitors may not watch it."""
        title = clean_title(title)
        live = Live(secrets.token_hex(8), creator_id, title,
                    now if now is not None else time.time(), self.node_id, signed_in_only)
        status, _ = await self._start(
            keys=[keys.live(creator_id), keys.live_directory(), keys.node_lives(self.node_id)],
            args=[creator_id, live.live_id, title, repr(live.started_at), self.node_id,
                  "1" if signed_in_only else "0"])
        if status == "conflict":
            raise conflict("you are already live (in another tab or device)")
        return live

    async def mark_recent(self, live: Live) -> None:
        """The live is on air (its media published): a recent creator for Discover."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.recent_creators(), {live.creator_id: live.started_at})
            pipe.zremrangebyrank(keys.recent_creators(), 0, -RECENT_CREATORS - 1)
            await pipe.execute()

    async def retitle(self, live: Live, title: str) -> Live:
        """A new title for the running live (the creator's, while live); `not_found`
        once it has ended."""
        title = clean_title(title)
        done = await self._retitle(keys=[keys.live(live.creator_id)],
                                   args=[live.live_id, title])
        if not done:
            raise not_found("this live has ended")
        return Live(live.live_id, live.creator_id, title, live.started_at, live.node)

    async def recent_creators(self, *, limit: int = 20) -> list[str]:
        """Creators who went LIVE lately, the latest first."""
        return list(await self._redis.zrevrange(keys.recent_creators(), 0, limit - 1))

    async def end(self, live: Live) -> bool:
        """End the live; False if it had already ended."""
        return bool(await self._end(
            keys=[keys.live(live.creator_id), keys.live_directory(),
                  keys.live_viewers(live.live_id), keys.node_lives(live.node)],
            args=[live.creator_id, live.live_id, live.node]))

    async def current(self, creator_id: str) -> Live | None:
        fields = await self._redis.hgetall(keys.live(creator_id))
        return _live_from_hash(fields) if fields else None

    def _viewer_keys(self, live: Live) -> list[str]:
        return [keys.live(live.creator_id), keys.live_viewers(live.live_id),
                keys.live_directory(), keys.live_viewers_on(live.live_id, self.node_id),
                keys.node_viewing(self.node_id)]

    async def viewer_joined(self, live: Live, viewer_id: str) -> int:
        """Count one more connection of viewer_id through this node; the distinct viewer
        count across nodes, or -1 if ended."""
        return int(await self._viewer(keys=self._viewer_keys(live),
                                      args=[live.creator_id, live.live_id, viewer_id, 1]))

    async def viewer_left(self, live: Live, viewer_id: str) -> int:
        return int(await self._viewer(keys=self._viewer_keys(live),
                                      args=[live.creator_id, live.live_id, viewer_id, -1]))

    async def reap_share(self, live_id: str, creator_id: str) -> None:
        """Drop this node's share of one live's viewers (the live ended)."""
        await self._reap(
            keys=[keys.live(creator_id or "-"), keys.live_viewers(live_id), keys.live_directory(),
                  keys.live_viewers_on(live_id, self.node_id), keys.node_viewing(self.node_id)],
            args=[creator_id or "-", live_id])

    async def reap_node(self, node_id: str) -> list[str]:
        """Take a gone node's viewers out of every live's count; the live ids touched."""
        touched: list[str] = []
        viewing = await self._redis.hgetall(keys.node_viewing(node_id))
        for live_id, creator_id in sorted((str(k), str(v)) for k, v in viewing.items()):
            await self._reap(
                keys=[keys.live(creator_id), keys.live_viewers(live_id), keys.live_directory(),
                      keys.live_viewers_on(live_id, node_id), keys.node_viewing(node_id)],
                args=[creator_id, live_id])
            touched.append(live_id)
        return touched

    async def viewer_count(self, live: Live) -> int:
        return int(await self._redis.hlen(keys.live_viewers(live.live_id)))

    async def directory(self, *, limit: int = 50) -> list[tuple[Live, int]]:
        """Live rooms, most viewers first."""
        ranked = await self._redis.zrevrange(keys.live_directory(), 0, limit - 1,
                                             withscores=True)
        if not ranked:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for creator_id, _ in ranked:
                pipe.hgetall(keys.live(creator_id))
            found = await pipe.execute()
        return [(_live_from_hash(fields), int(score))
                for (_, score), fields in zip(ranked, found, strict=True) if fields]

    async def recover_node(self) -> list[Live]:
        """The lives this node hosted when it stopped without ending them (a crash, a
        kill): still live, their viewer counts without this node's viewers (those
        connections died with it; members on other nodes still count). The caller gives
        each creator a grace period to come back, then ends it."""
        found = []
        for creator_id in sorted(await self._redis.smembers(keys.node_lives(self.node_id))):
            live = await self.current(creator_id)
            if live is None or live.node != self.node_id:
                await self._redis.srem(keys.node_lives(self.node_id), creator_id)
                continue
            await self._rebuild_viewers(live)
            if await self._reset_viewers(
                    keys=[keys.live(creator_id), keys.live_viewers(live.live_id),
                          keys.live_directory(), keys.lives_orphaned()],
                    args=[creator_id, live.live_id, orphan_member(live)]):
                found.append(live)
        return found

    async def _rebuild_viewers(self, live: Live) -> None:
        """A live's viewer totals made again from the other nodes' shares (dead ones too:
        their reaper subtracts them later): what this node counted died with it, and an
        entry no share backs is stale. Optimistic (WATCH): a join on another node
        meanwhile makes it read again."""
        others = sorted(str(n) for n in await self._redis.smembers(keys.nodes())
                        if str(n) != self.node_id)
        share_keys = [keys.live_viewers_on(live.live_id, node) for node in others]
        totals_key = keys.live_viewers(live.live_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(totals_key, *share_keys)
                    totals: dict[str, int] = {}
                    for key in share_keys:
                        for user, n in (await pipe.hgetall(key)).items():
                            if int(n) > 0:
                                totals[str(user)] = totals.get(str(user), 0) + int(n)
                    pipe.multi()
                    pipe.delete(totals_key)
                    if totals:
                        pipe.hset(totals_key, mapping=totals)
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    # --- lives of a dead node -------------------------------------------------------

    async def orphan_node(self, node_id: str, ends_at: float) -> list[Live]:
        """The lives a dead node hosted become orphans that end at `ends_at` unless their
        creator resumes them on another node (adopt). Idempotent: an entry already there
        keeps its time."""
        found = []
        for creator_id in sorted(str(c) for c in
                                 await self._redis.smembers(keys.node_lives(node_id))):
            live = await self.current(creator_id)
            if live is None or live.node != node_id:
                await self._redis.srem(keys.node_lives(node_id), creator_id)
                continue
            await self._redis.zadd(keys.lives_orphaned(), {orphan_member(live): ends_at},
                                   nx=True)
            found.append(live)
        return found

    async def next_orphan_end(self) -> float | None:
        """When the next orphan is due (epoch seconds), None when there is none."""
        first = await self._redis.zrange(keys.lives_orphaned(), 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def end_due_orphans(self, now: float | None = None) -> list[Live]:
        """End every orphan that is due; the lives this call ended (each orphan is ended
        by exactly one caller across nodes; stale entries are dropped)."""
        moment = time.time() if now is None else now
        ended = []
        due = await self._redis.zrangebyscore(keys.lives_orphaned(), "-inf", moment)
        for member in (str(m) for m in due):
            creator_id, _, live_id = member.rpartition("/")
            live = await self.current(creator_id) if creator_id else None
            if live is None or live.live_id != live_id:
                await self._redis.zrem(keys.lives_orphaned(), member)
                continue
            if await self._end_orphan(
                    keys=[keys.live(creator_id), keys.lives_orphaned(), keys.live_directory(),
                          keys.live_viewers(live_id), keys.node_lives(live.node),
                          keys.node(live.node)],
                    args=[creator_id, live_id, live.node, member, repr(moment)]):
                ended.append(live)
        return ended

    async def adopt(self, creator_id: str) -> Live | None:
        """The creator's live, made this node's, when the node hosting it is dead (the
        creator resumes it here); None when there is none to adopt."""
        live = await self.current(creator_id)
        if live is None or live.node == self.node_id:
            return None
        if not await self._adopt(
                keys=[keys.live(creator_id), keys.lives_orphaned(), keys.node_lives(live.node),
                      keys.node_lives(self.node_id), keys.node(live.node)],
                args=[creator_id, live.live_id, live.node, self.node_id, orphan_member(live)]):
            return None
        return Live(live.live_id, live.creator_id, live.title, live.started_at, self.node_id)
