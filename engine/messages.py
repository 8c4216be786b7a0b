"""Direct messages over Redis: conversations of two users, Message Requests, read marks,
unread counts and the per-user setting of who may message them.

A conversation's id is its two user ids, sorted; its messages are a Stream
(the XADD id is the message's id, order and time). A small hash beside it
holds its state (requested or accepted, and who asked), a preview of the last
message, and per user a read mark and a cleared mark (history a user deleted
stays hidden from them). Each user has an inbox and a requests list (sorted
sets scored by the last message's time) and a hash of unread counts.

The rules are plain functions in engine/message_rules.py. A send reads the
state they need, asks them, then writes in one script that re-checks the
conversation state it decided on (two tabs racing a first message cannot both
open a request) and the spam windows, and validates before its first write.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from engine import keys, stream_ids
from engine.accounts import Account, Accounts
from engine.errors import DomainError, ErrorCode, conflict, invalid, not_found, rate_limited
from engine.graph import Graph
from engine.lives import Lives
from engine.message_rules import (
    MessageLimits,
    Policy,
    Route,
    ShareKind,
    State,
    check_may_message,
    check_may_read_receipts,
    check_may_share,
    clean_policy,
    clean_text,
    conversation_id,
    default_policy,
    other_party,
    preview,
    repeat_digest,
)
from engine.stream_ids import StreamId


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    sender: str
    text: str
    card: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        item: dict[str, Any] = {"id": self.id, "from": self.sender, "text": self.text,
                                "at": stream_ids.seconds(self.id)}
        if self.card is not None:
            item["card"] = self.card
        return item


def _message(entry_id: str, fields: dict[str, str]) -> Message:
    card = json.loads(fields["c"]) if fields.get("c") else None
    return Message(entry_id, fields.get("u", ""), fields.get("t", ""), card)


@dataclass(frozen=True, slots=True)
class Summary:
    """One conversation as one of its users sees it in a list."""

    conversation_id: str
    other_id: str
    state: State
    requester: str
    last: dict[str, Any] | None
    unread: int
    seen: str | None          # the other's read mark, in accepted conversations
    updated_at: float

    def as_dict(self, me: str) -> dict[str, Any]:
        return {"conversation_id": self.conversation_id, "with": self.other_id,
                "state": str(self.state),
                "request": self.state is State.REQUESTED and self.requester != me,
                "pending": self.state is State.REQUESTED and self.requester == me,
                "last": self.last, "unread": self.unread, "seen": self.seen,
                "updated_at": self.updated_at}


@dataclass(frozen=True, slots=True)
class Sent:
    message: Message
    conversation_id: str
    recipient: str
    route: Route
    state: State
    new: bool


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[Message]
    more: bool
    seen: str | None
    state: State
    requester: str

    def as_dict(self, me: str) -> dict[str, Any]:
        return {"messages": [m.as_dict() for m in self.messages], "more": self.more,
                "seen": self.seen, "state": str(self.state),
                "request": self.state is State.REQUESTED and self.requester != me,
                "pending": self.state is State.REQUESTED and self.requester == me}


@dataclass(slots=True)
class _Conv:
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> State:
        return State(self.meta.get("state", State.NEW))

    @property
    def requester(self) -> str:
        return self.meta.get("requester", "")


# KEYS: 1 meta, 2 stream, 3 sender inbox, 4 recipient inbox, 5 recipient requests,
# 6 recipient unread, 7 sender rate, 8 sender new-conversations, 9 repeat counter
# (NONE, keys.none(DM), skips a counter: system messages such as nudges count against
# none), 10 sender requests.
# ARGV: 1 sender, 2 recipient, 3 route, 4 expected state, 5 expected requester,
# 6 now ms, 7/8 rate limit/ms, 9/10 new limit/ms, 11/12 repeat limit/ms, 13 maxlen,
# 14 preview, 15 conversation id, 16.. the entry's fields.
_SEND = f"local NONE = '{keys.none(keys.DM)}'" + """
local state = redis.call('HGET', KEYS[1], 'state') or 'new'
local requester = redis.call('HGET', KEYS[1], 'requester') or ''
if state ~= ARGV[4] or requester ~= ARGV[5] then return {'raced'} end
local function over(key, limit)
  if key == NONE then return false end
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= tonumber(limit) then return tostring(redis.call('PTTL', key)) end
  return false
end
local t = over(KEYS[7], ARGV[7])
if t then return {'rate', t} end
if state == 'new' then
  t = over(KEYS[8], ARGV[9])
  if t then return {'new_limit', t} end
end
if KEYS[9] ~= NONE then
  t = over(KEYS[9], ARGV[11])
  if t then return {'repeat', t} end
end
local function hit(key, ms)
  if key == NONE then return end
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ms) end
end
hit(KEYS[7], ARGV[8])
if state == 'new' then hit(KEYS[8], ARGV[10]) end
hit(KEYS[9], ARGV[12])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[13], '*', unpack(ARGV, 16))
local next_state = 'accepted'
if ARGV[3] == 'request' then next_state = 'requested' end
if state == 'new' then redis.call('HSET', KEYS[1], 'created', ARGV[6]) end
redis.call('HSET', KEYS[1], 'state', next_state, 'last_id', id, 'last_from', ARGV[1],
           'last_text', ARGV[14], 'read:' .. ARGV[1], id)
if next_state == 'requested' then
  redis.call('HSET', KEYS[1], 'requester', ARGV[1])
else
  redis.call('HDEL', KEYS[1], 'requester')
end
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[15])
redis.call('ZREM', KEYS[10], ARGV[15])
if next_state == 'requested' then
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[15])
else
  redis.call('ZREM', KEYS[5], ARGV[15])
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[15])
end
redis.call('HINCRBY', KEYS[6], ARGV[15], 1)
return {'ok', id, next_state}
"""

# Moves the read mark forward (never back) and recounts what is left unread.
# KEYS: 1 meta, 2 stream, 3 reader's unread; ARGV: 1 reader, 2 id, 3 conversation.
_READ = """
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
if #redis.call('XRANGE', KEYS[2], ARGV[2], ARGV[2]) == 0 then return {'not_found'} end
local mark = redis.call('HGET', KEYS[1], 'read:' .. ARGV[1])
if not mark or older(mark, ARGV[2]) then
  redis.call('HSET', KEYS[1], 'read:' .. ARGV[1], ARGV[2])
  mark = ARGV[2]
end
local after = redis.call('XRANGE', KEYS[2], '(' .. mark, '+', 'COUNT', 1000)
local n = 0
for _, entry in ipairs(after) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'u' and fields[i + 1] ~= ARGV[1] then n = n + 1 end
  end
end
if n > 0 then redis.call('HSET', KEYS[3], ARGV[3], n) else redis.call('HDEL', KEYS[3], ARGV[3]) end
return {'ok', mark, n}
"""

# The recipient accepts a request: it moves from their requests to their inbox.
# KEYS: 1 meta, 2 their requests, 3 their inbox; ARGV: 1 me, 2 conversation.
_ACCEPT = """
if redis.call('HGET', KEYS[1], 'state') ~= 'requested' then return 'not_requested' end
if redis.call('HGET', KEYS[1], 'requester') == ARGV[1] then return 'own' end
local score = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not score then return 'deleted' end
redis.call('HSET', KEYS[1], 'state', 'accepted')
redis.call('HDEL', KEYS[1], 'requester')
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], score, ARGV[2])
return 'ok'
"""


class Messages:
    """Send, list, read, accept and delete direct messages; the who-may-message setting."""

    def __init__(self, redis: Redis, accounts: Accounts, graph: Graph, lives: Lives,
                 limits: MessageLimits | None = None) -> None:
        self._redis = redis
        self._accounts = accounts
        self._graph = graph
        self._lives = lives
        self.limits = limits or MessageLimits()
        self._send = redis.register_script(_SEND)
        self._read = redis.register_script(_READ)
        self._accept = redis.register_script(_ACCEPT)

    # --- settings ------------------------------------------------------------------------

    async def policy(self, user: Account, today: dt.date | None = None) -> Policy:
        stored = await self._redis.hget(keys.dm_settings(user.id), "policy")
        return Policy(stored) if stored else default_policy(user.age(today or dt.date.today()))

    async def set_policy(self, user_id: str, value: str) -> Policy:
        policy = clean_policy(value)
        await self._redis.hset(keys.dm_settings(user_id), "policy", str(policy))
        return policy

    # --- sending -------------------------------------------------------------------------

    async def _card(self, sender: Account, kind: str, user_id: str) -> dict[str, Any]:
        share = ShareKind(kind)
        shared = await self._accounts.get(user_id)
        relation = await self._graph.relation(sender.id, shared.id)
        live = await self._lives.current(shared.id) if share is ShareKind.LIVE else None
        check_may_share(share, relation_to_sharer=relation, live_running=live is not None)
        card: dict[str, Any] = {"kind": str(share), "user": {
            "id": shared.id, "username": shared.username, "display_name": shared.display_name}}
        if live is not None:
            card["live"] = {"live_id": live.live_id, "title": live.title}
        return card

    async def send(self, sender: Account, recipient_id: str, text: str | None = None, *,
                   share: tuple[str, str] | None = None, today: dt.date | None = None,
                   now: float | None = None) -> Sent:
        """Send text and/or a shared card (kind, user id) to a user.

        invalid (no content, bad text, yourself), not_found (no such user),
        forbidden (age, blocked, no_one, friends_only, request_pending: see
        message_rules), rate_limited (reason rate, new_conversations, repeated).
        A refusal writes nothing.
        """
        conv = conversation_id(sender.id, recipient_id)
        body = clean_text(text, self.limits.text_max) if text is not None and (
            text.strip() or share is None) else ""
        if not body and share is None:
            raise invalid("a message needs text or something to share", field="text")
        recipient = await self._accounts.get(recipient_id)
        card = await self._card(sender, *share) if share is not None else None
        day = today or dt.date.today()
        fields = {"u": sender.id, "t": body}
        if card is not None:
            fields["c"] = json.dumps(card, separators=(",", ":"))
        digest = repeat_digest(body) if body else None
        shared_live = card is not None and card["kind"] == "live"
        shown = preview(body) if body else f"Shared {'a LIVE' if shared_live else 'a profile'}"
        for _ in range(3):
            conversation = await self._conversation(conv)
            relation = await self._graph.relation(sender.id, recipient.id)
            route = check_may_message(
                sender_age=sender.age(day), recipient_age=recipient.age(day),
                relation=relation, policy=await self.policy(recipient, day),
                state=conversation.state,
                requester_is_sender=conversation.requester == sender.id)
            moment = int((time.time() if now is None else now) * 1000)
            lim = self.limits
            result = await self._send(
                keys=[keys.dm_meta(conv), keys.dm(conv), keys.dm_inbox(sender.id),
                      keys.dm_inbox(recipient.id), keys.dm_requests(recipient.id),
                      keys.dm_unread(recipient.id), keys.dm_rate(sender.id),
                      keys.dm_new(sender.id),
                      keys.dm_repeat(sender.id, digest) if digest else keys.none(keys.DM),
                      keys.dm_requests(sender.id)],
                args=[sender.id, recipient.id, str(route), str(conversation.state),
                      conversation.requester, moment, lim.rate.limit, lim.rate.ms,
                      lim.new_conversations.limit, lim.new_conversations.ms,
                      lim.repeats.limit, lim.repeats.ms, lim.stream_max, shown, conv,
                      *[part for pair in fields.items() for part in pair]])
            status = result[0]
            if status == "ok":
                return Sent(_message(result[1], fields), conv, recipient.id, route,
                            State(result[2]), conversation.state is State.NEW)
            if status != "raced":
                retry = max(int(result[1]), 1) / 1000
                error = rate_limited(retry)
                error.details["reason"] = {"rate": "rate", "new_limit": "new_conversations",
                                           "repeat": "repeated"}[status]
                if status == "repeat":
                    error.message = "you sent this same message too often; write something new"
                elif status == "new_limit":
                    error.message = "you started too many new conversations; try again later"
                raise error
        raise rate_limited(0.1)

    async def post_nudge(self, sender: Account, recipient_id: str, *,
                         today: dt.date | None = None, now: float | None = None) -> Sent | None:
        """A nudge shown as a line in the thread of sender and recipient (a creator
        setting): a card {kind: "nudge", user}, counted against none of the sender's
        message limits. Only where it lands in the recipient's inbox (they follow the
        sender, or opened the conversation): a nudge never opens a Message Request, so it
        cannot be a way around the messaging rules and limits. None when it is not posted
        (the nudge itself stands either way)."""
        conv = conversation_id(sender.id, recipient_id)
        recipient = await self._accounts.get(recipient_id)
        day = today or dt.date.today()
        card = {"kind": "nudge", "user": {"id": sender.id, "username": sender.username,
                                          "display_name": sender.display_name}}
        fields = {"u": sender.id, "t": "", "c": json.dumps(card, separators=(",", ":"))}
        for _ in range(3):
            conversation = await self._conversation(conv)
            relation = await self._graph.relation(sender.id, recipient.id)
            try:
                route = check_may_message(
                    sender_age=sender.age(day), recipient_age=recipient.age(day),
                    relation=relation, policy=await self.policy(recipient, day),
                    state=conversation.state,
                    requester_is_sender=conversation.requester == sender.id)
            except DomainError:
                return None
            if route is not Route.INBOX:
                return None
            moment = int((time.time() if now is None else now) * 1000)
            result = await self._send(
                keys=[keys.dm_meta(conv), keys.dm(conv), keys.dm_inbox(sender.id),
                      keys.dm_inbox(recipient.id), keys.dm_requests(recipient.id),
                      keys.dm_unread(recipient.id), *[keys.none(keys.DM)] * 3,
                      keys.dm_requests(sender.id)],
                args=[sender.id, recipient.id, str(route), str(conversation.state),
                      conversation.requester, moment, 0, 0, 0, 0, 0, 0,
                      self.limits.stream_max, "Nudged you to go live", conv,
                      *[part for pair in fields.items() for part in pair]])
            if result[0] == "ok":
                return Sent(_message(result[1], fields), conv, recipient.id, route,
                            State(result[2]), conversation.state is State.NEW)
        return None

    # --- reading -------------------------------------------------------------------------

    async def _conversation(self, conv: str) -> _Conv:
        return _Conv(await self._redis.hgetall(keys.dm_meta(conv)))

    async def _existing(self, me: str, conv: str) -> tuple[str, _Conv]:
        other = other_party(conv, me)
        conversation = await self._conversation(conv)
        if not conversation.meta:
            raise not_found("no such conversation")
        return other, conversation

    async def history(self, me: str, conv: str, *, before: str | StreamId | None = None,
                      after: str | StreamId | None = None, limit: int | None = None) -> Page:
        """A page of a conversation, oldest first: the newest `limit` before `before`
        (default: the newest), or everything after `after` (a catch-up). History the
        reader deleted stays hidden. A conversation with no messages yet, with a user
        who exists, is an empty page."""
        other = other_party(conv, me)
        count = min(limit or self.limits.page_max, self.limits.page_max)
        after = None if after is None else stream_ids.parse(after)
        before = None if before is None else stream_ids.parse(before)
        conversation = await self._conversation(conv)
        if not conversation.meta:
            if before is None and after is None and await self._accounts.exists(other):
                return Page([], False, None, State.NEW, "")
            raise not_found("no such conversation")
        cleared = conversation.meta.get(f"cleared:{me}")
        # What the reader deleted ends at `cleared`: every page starts after it.
        floor = stream_ids.after_bound(cleared) if cleared else "-"
        stream = keys.dm(conv)
        entries: list[tuple[str, dict[str, str]]] = []
        if after is not None:
            start = after if not cleared or stream_ids.newer(after, cleared) else cleared
            first = stream_ids.after_bound(start)
            if first is not None:
                entries = await self._redis.xrange(stream, first, "+", count=count + 1)
            messages = [_message(i, f) for i, f in entries[:count]]
        else:
            top = "+" if before is None else stream_ids.before_bound(before)
            if top is not None and floor is not None:
                entries = await self._redis.xrevrange(stream, top, floor, count=count + 1)
            messages = [_message(i, f) for i, f in reversed(entries[:count])]
        seen = (conversation.meta.get(f"read:{other}")
                if await self._receipts(me, other, conversation.state) else None)
        return Page(messages, len(entries) > count, seen, conversation.state,
                    conversation.requester)

    async def message(self, me: str, conv: str, message_id: str | StreamId) -> Message:
        """One message of a conversation the reader is in (for reports)."""
        other_party(conv, me)
        message_id = str(stream_ids.parse(message_id))
        entries = await self._redis.xrange(keys.dm(conv), message_id, message_id)
        if not entries:
            raise not_found("no such message")
        return _message(*entries[0])

    async def _summaries(self, me: str, convs: list[tuple[str, float]]) -> list[Summary]:
        if not convs:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for conv, _ in convs:
                pipe.hgetall(keys.dm_meta(conv))
            pipe.hmget(keys.dm_unread(me), [c for c, _ in convs])
            *metas, unread = await pipe.execute()
        accepted = [other_party(c, me) for (c, _), meta in zip(convs, metas, strict=True)
                    if check_may_read_receipts(State(meta.get("state", State.NEW)))]
        hidden = await self._graph.hidden_from(me, accepted) if accepted else set()
        rows = []
        for (conv, score), meta, count in zip(convs, metas, unread, strict=True):
            if not meta:
                continue
            other = other_party(conv, me)
            state = State(meta.get("state", State.NEW))
            last = None
            if meta.get("last_id") and meta["last_id"] != meta.get(f"cleared:{me}"):
                last = {"id": meta["last_id"], "from": meta.get("last_from", ""),
                        "text": meta.get("last_text", ""),
                        "at": stream_ids.seconds(meta["last_id"])}
            rows.append(Summary(conv, other, state, meta.get("requester", ""), last,
                                int(count or 0),
                                meta.get(f"read:{other}")
                                if check_may_read_receipts(state, blocked=other in hidden)
                                else None, score / 1000))
        return rows

    async def conversations(self, me: str, *, requests: bool = False,
                            before: float | None = None, limit: int | None = None
                            ) -> tuple[list[Summary], bool]:
        """The inbox (or Message Requests), newest activity first; `before` is an
        updated_at from the previous page. Returns (page, more)."""
        count = min(limit or self.limits.list_max, self.limits.list_max)
        key = keys.dm_requests(me) if requests else keys.dm_inbox(me)
        top = f"({int(before * 1000)}" if before is not None else "+inf"
        found = await self._redis.zrevrangebyscore(key, top, "-inf", start=0, num=count + 1,
                                                   withscores=True)
        return await self._summaries(me, found[:count]), len(found) > count

    async def summary(self, me: str, conv: str) -> Summary | None:
        other_party(conv, me)
        score = await self._redis.zscore(keys.dm_inbox(me), conv)
        if score is None:
            score = await self._redis.zscore(keys.dm_requests(me), conv)
        rows = await self._summaries(me, [(conv, score or 0.0)])
        return rows[0] if rows else None

    async def unread(self, me: str) -> dict[str, int]:
        """For the header badge: unread messages in all, and requests waiting."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hvals(keys.dm_unread(me))
            pipe.zcard(keys.dm_requests(me))
            counts, requests = await pipe.execute()
        return {"total": sum(int(c) for c in counts), "requests": int(requests)}

    # --- read marks, requests, deletion -----------------------------------------------------

    async def mark_read(self, me: str, conv: str,
                        message_id: str | StreamId) -> tuple[str, int, bool]:
        """Move my read mark up to message_id; (mark, still unread, receipts shown)."""
        other, conversation = await self._existing(me, conv)
        message_id = str(stream_ids.parse(message_id))
        status, *rest = await self._read(
            keys=[keys.dm_meta(conv), keys.dm(conv), keys.dm_unread(me)],
            args=[me, message_id, conv])
        if status != "ok":
            raise not_found("no such message in this conversation")
        return rest[0], int(rest[1]), await self._receipts(me, other, conversation.state)

    async def accept(self, me: str, conv: str) -> None:
        """Accept a message request sent to me: it moves to my inbox and its sender may
        write again. not_found for no request; conflict once accepted."""
        other_party(conv, me)
        status = await self._accept(
            keys=[keys.dm_meta(conv), keys.dm_requests(me), keys.dm_inbox(me)], args=[me, conv])
        if status == "not_requested":
            if (await self._conversation(conv)).state is State.ACCEPTED:
                raise conflict("this conversation is already accepted")
            raise not_found("no such message request")
        if status in ("own", "deleted"):
            raise not_found("no such message request")

    async def delete(self, me: str, conv: str) -> None:
        """Delete a conversation (or decline a request) for me: it leaves my lists and its
        history so far is hidden from me. A declined request stays pending for its sender,
        who cannot write again until I accept, answer or follow them."""
        _, conversation = await self._existing(me, conv)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.dm_meta(conv), f"cleared:{me}", conversation.meta.get("last_id", "0-0"))
            pipe.zrem(keys.dm_inbox(me), conv)
            pipe.zrem(keys.dm_requests(me), conv)
            pipe.hdel(keys.dm_unread(me), conv)
            await pipe.execute()

    async def check_may_type(self, me: str, conv: str) -> str | None:
        """The user to tell that I am typing, or None (not an accepted conversation, or a
        block stands)."""
        other = other_party(conv, me)
        conversation = await self._conversation(conv)
        return other if await self._receipts(me, other, conversation.state) else None

    async def _receipts(self, me: str, other: str, state: State) -> bool:
        """Whether read marks and typing are told between the two now
        (check_may_read_receipts); the graph is read only for an accepted conversation."""
        if not check_may_read_receipts(state):
            return False
        relation = await self._graph.relation(me, other)
        return check_may_read_receipts(state, blocked=relation.blocking or relation.blocked_by)


__all__ = ["DomainError", "ErrorCode", "Message", "Messages", "Page", "Sent", "Summary"]
