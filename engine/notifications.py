"""A generic notifications inbox per user over Redis: add, aggregate, unread count, mark
read, pages of history.

    await notifications.add(user_id, "gift", {"user": sender, "gift": {"name": "Rose"}})

Each user has a sorted set of notification ids scored by the ms of their latest
activity (newest first in a page), a hash of id -> JSON, a set of unread ids and a
hash of aggregation groups. At most `keep` (500) notifications are kept per user;
adding past that drops the oldest, so a user's inbox is bounded whatever happens.

Aggregation: an add with a `group` ("nudge:2024-05-01", one per kind and UTC day)
merges into the notification that group already has, instead of adding one: its
`data.actors` gets the new actor first (the 3 newest are kept, for the names shown),
`data.count` grows by one (unless the actor is among those 3 already: a follow,
unfollow, follow again counts once), and it moves to the top, unread again. So 14 nudges in
a day are one line: "Ann, Bob and 12 others nudged you to go live".

Exactly once: an add with an explicit `id` that the inbox already holds writes
nothing (the go-live fan-out uses the live's id, so a job that is resumed after a
crash, or a user who is both a nudger and an alert follower, is told once).

The write is one Lua function (LUA_NOTIFY) that other scripts include, so a nudge
and its inbox entry are written in one atomic step (engine/nudges.py) and the
go-live fan-out writes hundreds of inboxes in one call (engine/live_alerts.py).

Kinds the pages render (describe()): nudge, live, follow, message_request, gift.
Another kind still shows, with data["text"] if given. A gift is added as
    add(creator_id, "gift", {"user": {id, username, display_name},
                              "gift": {"name": "Rose", ...}, "count": 1})
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from engine import keys
from engine.errors import invalid, not_found

KEEP = 500            # notifications kept per user; older ones are dropped
ACTORS_KEPT = 3       # newest actors kept on an aggregated notification (names shown)
PAGE_MAX = 100
ID_RE = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class Kind(enum.StrEnum):
    NUDGE = "nudge"
    LIVE = "live"
    FOLLOW = "follow"
    MESSAGE_REQUEST = "message_request"
    GIFT = "gift"


# --- rules: wording and links, plain functions ------------------------------------------

def names_phrase(names: list[str], count: int) -> str:
    """"Ann", "Ann and Bob", "Ann, Bob and Cy", "Ann, Bob and 12 others" for `count`
    actors of whom `names` are the newest (newest first)."""
    shown = [n for n in names if n][:3]
    if not shown:
        return f"{count} people" if count != 1 else "Someone"
    count = max(count, len(shown))
    if count == len(shown):
        if count == 1:
            return shown[0]
        return f"{', '.join(shown[:-1])} and {shown[-1]}"
    first = shown[:2]
    others = count - len(first)
    return f"{', '.join(first)} and {others} other{'s' if others != 1 else ''}"


def day_of(now: float) -> str:
    """The UTC day (YYYY-MM-DD) a moment falls on: the aggregation and insight unit."""
    return dt.datetime.fromtimestamp(now, dt.UTC).date().isoformat()


def _name(user: Any) -> str:
    if isinstance(user, dict):
        return str(user.get("display_name") or user.get("username") or "Someone")
    return "Someone"


def _username(user: Any) -> str:
    return str(user.get("username", "")) if isinstance(user, dict) else ""


def describe(kind: str, data: dict[str, Any]) -> tuple[str, str | None]:
    """(the line a person reads, the page it opens) for a notification."""
    actors = data.get("actors") or ([data["user"]] if "user" in data else [])
    count = int(data.get("count") or len(actors) or 1)
    names = [_name(a) for a in actors]
    first = actors[0] if actors else {}
    profile = f"/@{_username(first)}" if _username(first) else None
    if kind == Kind.NUDGE:
        return f"{names_phrase(names, count)} nudged you to go live", "/studio"
    if kind == Kind.LIVE:
        title = str((data.get("live") or {}).get("title") or "LIVE")
        return f"{_name(first)} is LIVE: {title}", profile
    if kind == Kind.FOLLOW:
        return f"{names_phrase(names, count)} started following you", profile
    if kind == Kind.MESSAGE_REQUEST:
        conv = data.get("conversation_id")
        return (f"{_name(first)} sent you a message request",
                f"/messages?c={conv}" if conv else "/messages")
    if kind == Kind.GIFT:
        gift = data.get("gift") or {}
        gift_name = str(gift.get("name") or "a gift") if isinstance(gift, dict) else "a gift"
        n = int(data.get("count") or 1)
        what = f"{n} x {gift_name}" if n > 1 else gift_name
        return f"{_name(first)} sent you {what}", data.get("link") or "/studio"
    return str(data.get("text") or kind), data.get("link")


def alert_text(kind: str, data: dict[str, Any]) -> str:
    """The real-time alert for one new event (not the aggregate): "Ann nudged you to go
    live!" even when the inbox line says "Ann, Bob and 12 others..."."""
    actors = data.get("actors") or ([data["user"]] if "user" in data else [])
    if kind == Kind.NUDGE:
        return f"{_name(actors[0] if actors else None)} nudged you to go live!"
    if kind == Kind.FOLLOW:
        return f"{_name(actors[0] if actors else None)} started following you"
    return describe(kind, data)[0]


def check_id(notification_id: str) -> str:
    if not ID_RE.fullmatch(notification_id):
        raise invalid("not a notification id", field="id")
    return notification_id


def parse_cursor(cursor: str) -> tuple[int, str]:
    """A page cursor "<ms>:<id>" (the last item of the previous page)."""
    ms, _, nid = cursor.partition(":")
    if not ms.isdigit() or len(ms) > 15 or not ID_RE.fullmatch(nid):
        raise invalid("not a notifications cursor", field="before")
    return int(ms), nid


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    kind: str
    at: float           # seconds of the latest activity
    data: dict[str, Any]
    read: bool
    ms: int = 0         # the index score: the page cursor

    def as_dict(self) -> dict[str, Any]:
        text, link = describe(self.kind, self.data)
        return {"id": self.id, "kind": self.kind, "at": self.at, "read": self.read,
                "data": self.data, "text": text, "link": link}

    @property
    def cursor(self) -> str:
        return f"{self.ms}:{self.id}"


def _notification(raw: str, read: bool, ms: int) -> Notification:
    item = json.loads(raw)
    return Notification(item["id"], item["kind"], float(item["at"]), item.get("data") or {},
                        read, ms)


def item_json(nid: str, kind: str, data: dict[str, Any], at: float, group: str = "") -> str:
    item: dict[str, Any] = {"id": nid, "kind": kind, "at": at, "data": data}
    if group:
        item["g"] = group
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False)


# One inbox write, as a Lua function other scripts include.
# notify(index, data, unread, groups, id, item json, ms, keep, group or '', actors kept)
# returns {1, id} added, {2, id} merged into the group's notification, {0, id} already held.
LUA_NOTIFY = """
local function notify(kindex, kdata, kunread, kgroups, id, item, ms, keep, group, actors_max)
  if group ~= '' then
    local gid = redis.call('HGET', kgroups, group)
    local old = gid and redis.call('HGET', kdata, gid)
    if old then
      local o = cjson.decode(old)
      local n = cjson.decode(item)
      local newest = n.data.actors[1]
      local actors = {newest}
      for _, a in ipairs(o.data.actors or {}) do
        if #actors >= actors_max then break end
        if a.id ~= newest.id then actors[#actors + 1] = a end
      end
      local seen = false
      for _, a in ipairs(o.data.actors or {}) do
        if a.id == newest.id then seen = true end
      end
      o.data.actors = actors
      if not seen then o.data.count = (tonumber(o.data.count) or 1) + 1 end
      o.at = n.at
      redis.call('HSET', kdata, gid, cjson.encode(o))
      redis.call('ZADD', kindex, ms, gid)
      redis.call('SADD', kunread, gid)
      return {2, gid}
    end
  end
  if redis.call('HEXISTS', kdata, id) == 1 then return {0, id} end
  redis.call('HSET', kdata, id, item)
  redis.call('ZADD', kindex, ms, id)
  redis.call('SADD', kunread, id)
  if group ~= '' then redis.call('HSET', kgroups, group, id) end
  local over = redis.call('ZCARD', kindex) - keep
  if over > 0 then
    local dropped = redis.call('ZPOPMIN', kindex, over)
    for i = 1, #dropped, 2 do
      local did = dropped[i]
      local raw = redis.call('HGET', kdata, did)
      redis.call('HDEL', kdata, did)
      redis.call('SREM', kunread, did)
      if raw then
        local g = cjson.decode(raw).g
        if g and redis.call('HGET', kgroups, g) == did then redis.call('HDEL', kgroups, g) end
      end
    end
  end
  return {1, id}
end
"""

_ADD = LUA_NOTIFY + """
return notify(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3],
              tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]))
"""

# A page: ids and scores from the top (or at/below a cursor's score), with their JSON
# and unread flags. ARGV: max score ('+inf' or ms), ties to skip past, count.
_PAGE = """
local extra = 0
if ARGV[2] == '1' then extra = redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[1]) end
local rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], '-inf', 'WITHSCORES',
                        'LIMIT', 0, tonumber(ARGV[3]) + extra)
local out = {}
for i = 1, #rows, 2 do
  out[#out + 1] = rows[i]
  out[#out + 1] = rows[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], rows[i]) or ''
  out[#out + 1] = redis.call('SISMEMBER', KEYS[3], rows[i])
end
return out
"""

# Mark one read: not_found unless the user holds it. Returns the unread count.
_READ = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return -1 end
redis.call('SREM', KEYS[3], ARGV[1])
return redis.call('SCARD', KEYS[3])
"""


def inbox_keys(user_id: str) -> list[str]:
    """The four keys LUA_NOTIFY takes for one user, in its order."""
    return [keys.notifications(user_id), keys.notification_data(user_id),
            keys.notifications_unread(user_id), keys.notification_groups(user_id)]


@dataclass(frozen=True, slots=True)
class Added:
    notification: Notification
    merged: bool    # merged into an aggregated notification rather than a new one


class Notifications:
    """Every user's notifications inbox."""

    def __init__(self, redis: Redis, *, keep: int = KEEP, page_max: int = PAGE_MAX) -> None:
        self._redis = redis
        self.keep = keep
        self.page_max = page_max
        self._add = redis.register_script(_ADD)
        self._page = redis.register_script(_PAGE)
        self._read = redis.register_script(_READ)

    async def add(self, user_id: str, kind: str, data: dict[str, Any], *,
                  id: str | None = None, group: str | None = None,
                  now: float | None = None) -> Added | None:
        """Add a notification (or merge it into `group`'s, which needs data["actors"]
        with the new actor); None when `id` is already in the inbox."""
        nid = check_id(id) if id is not None else secrets.token_hex(8)
        if group and not data.get("actors"):
            raise ValueError("an aggregated notification needs data['actors']")
        at = time.time() if now is None else now
        ms = int(at * 1000)
        status, got = await self._add(
            keys=inbox_keys(user_id),
            args=[nid, item_json(nid, kind, data, at, group or ""), ms, self.keep,
                  group or "", ACTORS_KEPT])
        if int(status) == 0:
            return None
        stored = await self.get(user_id, str(got))
        return Added(stored, int(status) == 2)

    async def get(self, user_id: str, notification_id: str) -> Notification:
        check_id(notification_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.notification_data(user_id), notification_id)
            pipe.sismember(keys.notifications_unread(user_id), notification_id)
            pipe.zscore(keys.notifications(user_id), notification_id)
            raw, unread, score = await pipe.execute()
        if raw is None:
            raise not_found("no such notification")
        return _notification(raw, not unread, int(score or 0))

    async def unread(self, user_id: str) -> int:
        return int(await self._redis.scard(keys.notifications_unread(user_id)))

    async def unread_many(self, user_ids: list[str]) -> list[int]:
        """Unread counts of several users in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.scard(keys.notifications_unread(user_id))
            return [int(n) for n in await pipe.execute()]

    async def page(self, user_id: str, *, before: str | None = None,
                   limit: int | None = None) -> tuple[list[Notification], str | None]:
        """Newest first: `limit` notifications after the cursor `before` (the previous
        page's `next`). Returns (items, next cursor or None at the end)."""
        count = min(limit or self.page_max, self.page_max)
        top, after_id = "+inf", None
        if before is not None:
            ms, after_id = parse_cursor(before)
            top = str(ms)
        rows = await self._page(keys=inbox_keys(user_id)[:3],
                                args=[top, "1" if after_id else "0", count + 1])
        items: list[Notification] = []
        for i in range(0, len(rows), 4):
            nid, score, raw, unread = rows[i], int(float(rows[i + 1])), rows[i + 2], rows[i + 3]
            # Equal scores come in reverse id order: those at the cursor's ms with an id
            # at or above the cursor's were on the previous page.
            if after_id is not None and str(score) == top and nid >= after_id:
                continue
            if raw:
                items.append(_notification(raw, not unread, score))
        more = len(items) > count
        items = items[:count]
        return items, (items[-1].cursor if more and items else None)

    async def mark_read(self, user_id: str, notification_id: str) -> int:
        """Mark one notification read; the unread count left. not_found if not theirs."""
        check_id(notification_id)
        left = int(await self._read(keys=inbox_keys(user_id)[:3], args=[notification_id]))
        if left < 0:
            raise not_found("no such notification")
        return left

    async def mark_all_read(self, user_id: str) -> int:
        await self._redis.delete(keys.notifications_unread(user_id))
        return 0


__all__ = ["LUA_NOTIFY", "Added", "Kind", "Notification", "Notifications", "describe"]
