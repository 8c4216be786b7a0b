"""Live chat over Redis: one Stream per live session.

XADD assigns each line its id, and that id is the line's place in the room's
one order and its time: delivery reads the stream in id order, and a client
that reconnects asks for everything after its last id (XRANGE with an
exclusive start) and gets exactly what it missed. Messages, system lines
("Alice joined") and deletions (a tombstone naming the deleted id, after an
XDEL of the message itself) share the stream, so they reach everyone in the
same order. The stream is capped (MAXLEN ~) and expires after the live.

Moderation state belongs to the creator, not to one live: the keyword filter,
slow mode, mutes (with an end time), bans and the moderators they appoint carry
over to their next live. A moderator deletes, mutes, bans, unmutes and unbans in
that creator's lives, but never acts on the creator or another moderator.
The rules are plain functions in engine/chat_rules.py; this module reads the
state they need and writes only what they allow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from engine import keys, stream_ids
from engine.accounts import Account
from engine.chat_rules import (
    ChatLimits,
    ChatSettings,
    SenderState,
    check_filter,
    check_may_appoint,
    check_may_moderate,
    check_may_read,
    check_may_send,
    clean_filter_words,
    clean_mute_seconds,
    clean_slow_mode,
    clean_text,
)
from engine.errors import not_found, rate_limited, unavailable
from engine.lives import Live
from engine.stream_ids import StreamId
from engine.throttle import check_window

MESSAGE, SYSTEM, DELETE = "message", "system", "delete"
_KIND_CODES = {"m": MESSAGE, "s": SYSTEM, "d": DELETE}


@dataclass(frozen=True, slots=True)
class ChatItem:
    """One line of a live's chat as the stream holds it."""

    id: str
    kind: str                  # message, system or delete
    user_id: str = ""
    username: str = ""
    display_name: str = ""
    text: str = ""
    event: str = ""            # system lines: joined, ...
    target: str = ""           # delete: the id of the deleted message

    def as_dict(self) -> dict[str, Any]:
        item: dict[str, Any] = {"id": self.id, "kind": self.kind,
                                "at": stream_ids.seconds(self.id)}
        if self.kind == DELETE:
            item["target"] = self.target
            return item
        if self.user_id:
            item["user"] = {"id": self.user_id, "username": self.username,
                            "display_name": self.display_name}
        item["text"] = self.text
        if self.kind == SYSTEM:
            item["event"] = self.event
        return item


def _item(entry_id: str, fields: dict[str, str]) -> ChatItem:
    return ChatItem(entry_id, _KIND_CODES.get(fields.get("k", "m"), MESSAGE),
                    fields.get("u", ""), fields.get("h", ""), fields.get("n", ""),
                    fields.get("t", ""), fields.get("e", ""), fields.get("x", ""))


def _flat(fields: dict[str, str]) -> list[str]:
    return [part for pair in fields.items() for part in pair]


@dataclass(frozen=True, slots=True)
class ChatPage:
    """A chat:history answer: items in order; `last` is the newest id the reader has now
    seen (the stream's newest on a first load), `more` when a catch-up page was full."""

    items: list[ChatItem]
    last: str
    more: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"items": [i.as_dict() for i in self.items], "last": self.last,
                "more": self.more}


# Appends a message after the rules passed, guarding what may have changed since
# they read it: the live still runs; in slow mode, no other message of this user
# landed meanwhile (compare-and-set on their last-sent time); the rate window.
# Validates everything before the first write.
_APPEND = """
if redis.call('HGET', KEYS[1], 'live_id') ~= ARGV[1] then return {'ended'} end
if ARGV[3] ~= '*' and (redis.call('HGET', KEYS[2], ARGV[2]) or '') ~= ARGV[3] then
  return {'raced'}
end
local n = tonumber(redis.call('GET', KEYS[3]) or '0')
if n >= tonumber(ARGV[5]) then return {'rate', tostring(redis.call('PTTL', KEYS[3]))} end
if redis.call('INCR', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[6]) end
local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', unpack(ARGV, 9))
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
redis.call('PEXPIRE', KEYS[4], ARGV[8])
return {'ok', id}
"""

# A system line, at most once per `once` key while it lives (PX ARGV[3]; 0: always).
_SYSTEM = """
if redis.call('HGET', KEYS[1], 'live_id') ~= ARGV[1] then return false end
if ARGV[4] ~= '0' then
  if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[4]) then return false end
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return id
"""

# Deletes a message (not a system line or a tombstone) and appends its tombstone.
_DELETE = """
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return false end
local fields = found[1][2]
local kind = 'm'
for i = 1, #fields, 2 do if fields[i] == 'k' then kind = fields[i + 1] end end
if kind ~= 'm' then return false end
redis.call('XDEL', KEYS[1], ARGV[1])
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'k', 'd', 'x', ARGV[1])
"""


# A moderation write (mute, unmute, ban, unban) guarded against what changed since the
# rules read the moderators: the actor still moderates (the creator always does) and
# the target is still no moderator when the actor is one; else 'raced' and the rules
# judge again. A ban by the creator also ends the target's moderator role.
# KEYS: 1 chat_moderators, 2 chat_bans or chat_mutes. ARGV: 1 actor, 2 creator,
# 3 target, 4 op (ban|unban|mute|unmute), 5 mute end ms.
_MODERATE = """
if ARGV[1] ~= ARGV[2] then
  if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 'raced' end
  if redis.call('SISMEMBER', KEYS[1], ARGV[3]) == 1 then return 'raced' end
end
local op = ARGV[4]
if op == 'ban' then
  redis.call('SREM', KEYS[1], ARGV[3])
  return redis.call('SADD', KEYS[2], ARGV[3])
elseif op == 'unban' then
  return redis.call('SREM', KEYS[2], ARGV[3])
elseif op == 'mute' then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[5])
  return 1
end
return redis.call('HDEL', KEYS[2], ARGV[3])
"""


@dataclass(frozen=True, slots=True)
class Standing:
    """A user's place in one creator's chats, for the studio's lists."""

    user_id: str
    muted_until: float = 0.0   # seconds since the epoch; 0 when not muted
    banned: bool = False


class Chat:
    """Send, read and moderate the chat of live sessions."""

    def __init__(self, redis: Redis, limits: ChatLimits | None = None) -> None:
        self._redis = redis
        self.limits = limits or ChatLimits()
        self._append = redis.register_script(_APPEND)
        self._system = redis.register_script(_SYSTEM)
        self._delete = redis.register_script(_DELETE)
        self._moderate = redis.register_script(_MODERATE)

    # --- settings ------------------------------------------------------------------

    async def settings(self, creator_id: str) -> ChatSettings:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.chat_settings(creator_id), "slow_mode")
            pipe.smembers(keys.chat_filter(creator_id))
            slow, words = await pipe.execute()
        return ChatSettings(int(slow or 0), tuple(sorted(words)))

    async def update_settings(self, creator_id: str, *, slow_mode_s: int | None = None,
                              filter_words: list[str] | None = None) -> ChatSettings:
        """Change slow mode and/or replace the keyword list; validates both first."""
        slow = clean_slow_mode(slow_mode_s) if slow_mode_s is not None else None
        words = clean_filter_words(filter_words) if filter_words is not None else None
        async with self._redis.pipeline(transaction=True) as pipe:
            if slow is not None:
                pipe.hset(keys.chat_settings(creator_id), "slow_mode", slow)
            if words is not None:
                pipe.delete(keys.chat_filter(creator_id))
                if words:
                    pipe.sadd(keys.chat_filter(creator_id), *words)
            await pipe.execute()
        return await self.settings(creator_id)

    # --- state the rules read ----------------------------------------------------------

    async def _state(self, live: Live, user_id: str, *, for_send: bool = False
                     ) -> tuple[SenderState, str, ChatSettings, int, int]:
        """In one round trip: the user's standing in this live, their raw last-sent
        mark and, for a send, the creator's settings and the user's rate window."""
        rate_key = keys.chat_rate(live.live_id, user_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hexists(keys.live_viewers(live.live_id), user_id)
            pipe.sismember(keys.chat_bans(live.creator_id), user_id)
            pipe.hget(keys.chat_mutes(live.creator_id), user_id)
            pipe.hget(keys.chat_last_sent(live.live_id), user_id)
            pipe.sismember(keys.blocks(live.creator_id), user_id)
            pipe.sismember(keys.blocks(user_id), live.creator_id)
            if for_send:
                pipe.hget(keys.chat_settings(live.creator_id), "slow_mode")
                pipe.smembers(keys.chat_filter(live.creator_id))
                pipe.get(rate_key)
                pipe.pttl(rate_key)
            viewer, banned, muted, last, blocking, blocked_by, *more = await pipe.execute()
        is_creator = user_id == live.creator_id
        state = SenderState(is_creator=is_creator, is_member=is_creator or bool(viewer),
                            banned=bool(banned), blocked=bool(blocking or blocked_by),
                            muted_until=int(muted or 0) / 1000,
                            last_sent_at=int(last or 0) / 1000)
        if not for_send:
            return state, last or "", ChatSettings(), 0, 0
        slow, words, count, ttl = more
        settings = ChatSettings(int(slow or 0), tuple(sorted(words)))
        return state, last or "", settings, int(count or 0), int(ttl)

    async def check_may_read(self, live: Live, user_id: str) -> None:
        check_may_read((await self._state(live, user_id))[0])

    async def is_banned(self, creator_id: str, user_id: str) -> bool:
        return bool(await self._redis.sismember(keys.chat_bans(creator_id), user_id))

    # --- sending -----------------------------------------------------------------------

    async def send(self, live: Live, sender: Account, text: str, *,
                   now: float | None = None) -> ChatItem:
        """Append a message; every refusal writes nothing.

        invalid (empty, too long, control characters, a filtered word: reason
        `filtered`), forbidden (not a member, banned, muted), rate_limited (the
        per-user rate, or slow mode: reason `slow_mode`), not_found (the live ended).
        """
        text = clean_text(text, self.limits.text_max)
        rate_key = keys.chat_rate(live.live_id, sender.id)
        for _ in range(3):
            moment = time.time() if now is None else now
            state, last_raw, settings, count, ttl = await self._state(live, sender.id,
                                                                      for_send=True)
            check_may_send(state, settings.slow_mode_s, moment)
            check_filter(text, settings.filter_words)
            check_window(count, self.limits.rate, ttl)
            guard = last_raw if settings.slow_mode_s and not state.is_creator else "*"
            fields = {"k": "m", "u": sender.id, "h": sender.username,
                      "n": sender.display_name, "t": text}
            result = await self._append(
                keys=[keys.live(live.creator_id), keys.chat_last_sent(live.live_id), rate_key,
                      keys.chat(live.live_id)],
                args=[live.live_id, sender.id, guard, int(moment * 1000),
                      self.limits.rate.limit, self.limits.rate.ms, self.limits.stream_max,
                      self.limits.retention_s * 1000, *_flat(fields)])
            status = result[0]
            if status == "ok":
                return _item(result[1], fields)
            if status == "ended":
                raise not_found("this live has ended")
            if status == "rate":
                raise rate_limited(max(int(result[1]), 1) / 1000)
            # raced: another message of this user landed meanwhile; judge again.
        raise rate_limited(0.1)

    async def system(self, live: Live, event: str, user: Account | None, text: str, *,
                     once_key: str | None = None, once_s: int = 0) -> ChatItem | None:
        """A system line in the live's order; None when the live ended or `once_key`
        already stands (e.g. one "joined" line per user in joined_every_s)."""
        fields = {"k": "s", "e": event, "t": text}
        if user is not None:
            fields.update({"u": user.id, "h": user.username, "n": user.display_name})
        entry = await self._system(
            keys=[keys.live(live.creator_id), keys.chat(live.live_id),
                  once_key or keys.none(keys.CORE)],
            args=[live.live_id, self.limits.stream_max, self.limits.retention_s * 1000,
                  int(once_s * 1000) if once_key else 0, *_flat(fields)])
        return _item(entry, fields) if entry else None

    async def joined(self, live: Live, user: Account) -> ChatItem | None:
        """"NAME joined", once per user per live in `joined_every_s` (reloads repeat none)."""
        return await self.system(live, "joined", user, f"{user.display_name} joined",
                                 once_key=keys.chat_joined(live.live_id, user.id),
                                 once_s=self.limits.joined_every_s)

    # --- reading -------------------------------------------------------------------------

    async def read(self, live_id: str, *, after: str | StreamId | None = None,
                   limit: int | None = None) -> ChatPage:
        """A page of a live's chat; callers check check_may_read() first.

        Without `after`: the last `history` lines (deletions already applied). With
        `after`: everything after that id, tombstones included, at most `limit`
        (then `more`)."""
        stream = keys.chat(live_id)
        if after is None:
            count = min(limit or self.limits.history, self.limits.history_max)
            entries = await self._redis.xrevrange(stream, "+", "-", count=count)
            items = [_item(i, f) for i, f in reversed(entries)]
            last = entries[0][0] if entries else stream_ids.ZERO
            return ChatPage([i for i in items if i.kind != DELETE], last)
        after = str(stream_ids.parse(after))
        count = min(limit or self.limits.history_max, self.limits.history_max)
        start = stream_ids.after_bound(after)
        entries = [] if start is None else await self._redis.xrange(
            stream, start, "+", count=count + 1)
        items = [_item(i, f) for i, f in entries[:count]]
        return ChatPage(items, items[-1].id if items else after, more=len(entries) > count)

    async def entry(self, live_id: str, item_id: str | StreamId) -> ChatItem:
        """One line of a live's chat (for reports); not_found once deleted or expired."""
        item_id = str(stream_ids.parse(item_id))
        entries = await self._redis.xrange(keys.chat(live_id), item_id, item_id)
        if not entries:
            raise not_found("no such message in this live")
        return _item(*entries[0])

    async def newest_id(self, live_id: str) -> str:
        entries = await self._redis.xrevrange(keys.chat(live_id), "+", "-", count=1)
        return entries[0][0] if entries else stream_ids.ZERO

    async def read_many(self, cursors: dict[str, str], count: int) -> dict[str, list[ChatItem]]:
        """For delivery: up to `count` lines after each live's cursor, in one XREAD."""
        if not cursors:
            return {}
        answer = await self._redis.xread({keys.chat(live): at for live, at in cursors.items()},
                                         count=count)
        found: dict[str, list[ChatItem]] = {}
        if isinstance(answer, dict):  # RESP3: {stream: [[entries]]}
            rows = [(stream, batches[0] if batches else []) for stream, batches in answer.items()]
        else:                         # RESP2 (this pool's): [[stream, [entries]]]
            rows = [(stream, entries) for stream, entries in answer]
        for stream, entries in rows:
            found[str(stream).split(":", 1)[1]] = [_item(i, f) for i, f in entries]
        return found

    # --- moderation --------------------------------------------------------------------

    async def moderators(self, creator_id: str) -> set[str]:
        """The user ids the creator appointed to moderate their chats."""
        return set(await self._redis.smembers(keys.chat_moderators(creator_id)))

    async def is_moderator(self, creator_id: str, user_id: str) -> bool:
        return bool(await self._redis.sismember(keys.chat_moderators(creator_id), user_id))

    async def appoint(self, creator_id: str, actor_id: str, target_id: str) -> bool:
        """The creator makes target a moderator of their chats (False: already one).
        A banned user is unbanned by it: the creator chose to trust them."""
        key = keys.chat_moderators(creator_id)
        count = await self._redis.scard(key)
        if await self._redis.sismember(key, target_id):
            count -= 1
        check_may_appoint(actor_id, creator_id, target_id, count)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(key, target_id)
            pipe.srem(keys.chat_bans(creator_id), target_id)
            added, _ = await pipe.execute()
        return bool(added)

    async def dismiss(self, creator_id: str, actor_id: str, target_id: str) -> bool:
        """The creator takes back a moderator role (False: they had none)."""
        check_may_appoint(actor_id, creator_id, target_id, 0)
        return bool(await self._redis.srem(keys.chat_moderators(creator_id), target_id))

    async def _moderated(self, creator_id: str, actor_id: str, target_id: str, op: str,
                         until_ms: int = 0) -> int:
        """One moderation write after the rules, judged again if the moderators changed."""
        key = keys.chat_bans(creator_id) if op in ("ban", "unban") else keys.chat_mutes(
            creator_id)
        for _ in range(3):
            check_may_moderate(actor_id, creator_id, target_id,
                               moderators=await self.moderators(creator_id))
            done = await self._moderate(keys=[keys.chat_moderators(creator_id), key],
                                        args=[actor_id, creator_id, target_id, op, until_ms])
            if done != "raced":
                return int(done)
        raise unavailable("the moderators changed while you acted; try again")

    async def delete(self, live: Live, actor_id: str,
                     message_id: str | StreamId) -> ChatItem:
        """The creator or one of their moderators deletes a message: gone from history,
        and a tombstone in the order tells everyone watching. not_found for an unknown
        id or a system line. A moderator may not delete the creator's or another
        moderator's line (forbidden, reason `moderator`)."""
        moderators = await self.moderators(live.creator_id)
        check_may_moderate(actor_id, live.creator_id, moderators=moderators)
        message_id = str(stream_ids.parse(message_id))
        if actor_id != live.creator_id:
            author = (await self.entry(live.live_id, message_id)).user_id
            if author != actor_id:
                check_may_moderate(actor_id, live.creator_id, author, moderators=moderators)
        tomb = await self._delete(keys=[keys.chat(live.live_id)],
                                  args=[message_id, self.limits.stream_max])
        if not tomb:
            raise not_found("no such message in this live")
        return ChatItem(tomb, DELETE, target=message_id)

    async def mute(self, creator_id: str, target_id: str, seconds: int, *,
                   actor_id: str | None = None, now: float | None = None) -> float:
        """Mute target in the creator's chats for `seconds`; returns the end time.
        `actor_id`: who mutes (the creator when None), the creator or a moderator."""
        actor_id = creator_id if actor_id is None else actor_id
        check_may_moderate(actor_id, creator_id, target_id,
                           moderators=await self.moderators(creator_id))
        seconds = clean_mute_seconds(seconds, self.limits.mute_max_s)
        moment = time.time() if now is None else now
        until = moment + seconds
        key = keys.chat_mutes(creator_id)
        mutes = await self._redis.hgetall(key)
        expired = [u for u, t in mutes.items() if int(t) <= moment * 1000 and u != target_id]
        if expired:  # keeps the hash as small as the mutes in force
            await self._redis.hdel(key, *expired)
        await self._moderated(creator_id, actor_id, target_id, "mute", int(until * 1000))
        return until

    async def unmute(self, creator_id: str, target_id: str, *,
                     actor_id: str | None = None) -> bool:
        actor_id = creator_id if actor_id is None else actor_id
        return bool(await self._moderated(creator_id, actor_id, target_id, "unmute"))

    async def muted_until(self, creator_id: str, user_id: str) -> float:
        raw = await self._redis.hget(keys.chat_mutes(creator_id), user_id)
        return int(raw or 0) / 1000

    async def ban(self, creator_id: str, target_id: str, *,
                  actor_id: str | None = None) -> bool:
        """Ban target from the creator's lives (this one and later ones) and their chat.
        A ban by the creator ends the target's moderator role too."""
        actor_id = creator_id if actor_id is None else actor_id
        return bool(await self._moderated(creator_id, actor_id, target_id, "ban"))

    async def unban(self, creator_id: str, target_id: str, *,
                    actor_id: str | None = None) -> bool:
        actor_id = creator_id if actor_id is None else actor_id
        return bool(await self._moderated(creator_id, actor_id, target_id, "unban"))

    async def bans(self, creator_id: str) -> list[str]:
        return sorted(await self._redis.smembers(keys.chat_bans(creator_id)))

    async def restricted(self, creator_id: str, *, now: float | None = None
                         ) -> list[Standing]:
        """Everyone banned or muted (a mute in force) in the creator's chats, by id."""
        moment = time.time() if now is None else now
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.chat_bans(creator_id))
            pipe.hgetall(keys.chat_mutes(creator_id))
            banned, mutes = await pipe.execute()
        found = {u: Standing(u, banned=True) for u in banned}
        for user, raw in mutes.items():
            until = int(raw) / 1000
            if until > moment:
                found[user] = Standing(user, until, user in banned)
        return [found[u] for u in sorted(found)]


__all__ = ["DELETE", "MESSAGE", "SYSTEM", "Chat", "ChatItem", "ChatPage", "Standing"]
