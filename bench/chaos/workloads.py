"""What the clients do while faults are injected, and what each one records.

Every client is a golive.client.GoliveClient (its reconnects to the next node, its
rejoins and catch-ups are the library's).

- Money (MoneyClients): each sender sends Roses (`gift:send`) and now and then buys coins
  (`POST /api/coins/checkout`), every operation under its own id, sent again with the
  same id after a timeout, `unavailable`, `rate_limited` or a dropped connection, until
  a definite answer or OP_DEADLINE_S (golive.client.resend_until_answered).
- Chat (ChatMember): members of the live send lines (each text unique) and show what
  they receive; a batch whose `prev` is past their last line, and every reconnect,
  catches up with `chat:history {after: last}`. A send without an answer is not sent
  again (chat:send has no id: a retry could write the line twice).
- DMs (DmUser): pairs of friends write to each other; pushes and catch-ups after a
  reconnect (`dm:history {after}`) make what each shows.

Rates stay under the server's per-user limits (5 chat lines in 5 s, 10 DMs in 10 s).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from bench.chaos.invariants import ACKED, REFUSED, Operation
from bench.target import Account
from golive.chat import chat_id
from golive.client import GoliveClient, LiveChat, Observer, Purchase, Receipt
from golive.errors import GoliveError, NoAnswer, NotSent

CALL_TIMEOUT_S = 2.0     # shorter than a Redis pause: a pause makes timeouts and retries
OP_DEADLINE_S = 60.0     # an operation still without an answer after this is "unknown"
NOT_SENT: Any = object()  # a send without a connection: nothing went out, nothing counted
GIFT = "rose"            # 1 coin
PACKAGE = "coins_70"
FIRST_PACKAGE = "coins_3500"
PURCHASE_EVERY = 10      # every 10th money operation is a purchase
CHAT_INTERVAL_S = 2.5    # 2 lines in 5 s per member, under the 5-in-5-s limit
DM_INTERVAL_S = 2.0      # 5 in 10 s per sender, under the 10-in-10-s limit
HISTORY_TIMEOUT_S = 10.0


class MoneyClients:
    """Gift senders who also buy coins; `operations` is every id they used."""

    def __init__(self, tag: str, senders: list[Account], creator_id: str, urls: list[str],
                 *, interval_s: float) -> None:
        self.tag = tag
        self.senders = senders
        self.creator_id = creator_id
        self.urls = urls
        self.interval_s = interval_s
        self.operations: list[Operation] = []
        self.clients: list[GoliveClient] = []
        self.codes: dict[str, int] = {}

    async def open(self) -> None:
        for i, sender in enumerate(self.senders):
            client = GoliveClient(self.urls[i % len(self.urls):] + self.urls[: i % len(self.urls)],
                                  token=sender.token, call_timeout=CALL_TIMEOUT_S,
                                  reconnect_delay=0.0, name=f"sender{i}")
            self.clients.append(client)
            await client.connect()
            await self.purchase(client, Operation(f"ck{self.tag}s{i}first", "purchase"),
                                FIRST_PACKAGE)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._sender(i, stop) for i in range(len(self.senders))))

    async def _sender(self, i: int, stop: asyncio.Event) -> None:
        client = self.clients[i]
        await asyncio.sleep(self.interval_s * i / max(len(self.senders), 1))
        for n in itertools.count(1):
            if stop.is_set():
                return
            if n % PURCHASE_EVERY == 0:
                await self.purchase(client, Operation(f"ck{self.tag}s{i}n{n}", "purchase"))
            else:
                await self.gift(client, Operation(f"tr{self.tag}s{i}n{n}", "gift"))
            await asyncio.sleep(self.interval_s)

    def _observer(self, op: Operation) -> Observer:
        """Counts each send that went out, and each error code answered (retried or not)."""
        def seen(answer: dict[str, Any] | None) -> None:
            op.attempts += 1
            if answer is not None and not answer.get("ok"):
                code = str((answer.get("error") or {}).get("code"))
                self.codes[code] = self.codes.get(code, 0) + 1
        return seen

    async def _record(self, op: Operation,
                      operation: Callable[[Observer], Awaitable[Receipt | Purchase]]) -> None:
        """Run an operation that golive.client resends under its id until a definite
        answer; record that answer (none after OP_DEADLINE_S: the outcome stays unknown)."""
        self.operations.append(op)
        try:
            result = await operation(self._observer(op))
        except NoAnswer:
            return
        except GoliveError as exc:
            op.outcome, op.code = REFUSED, exc.code
            return
        op.outcome, op.replayed = ACKED, result.replayed

    async def gift(self, client: GoliveClient, op: Operation) -> None:
        await self._record(op, lambda seen: client.send_gift(
            self.creator_id, GIFT, 1, transfer_id=op.op_id, deadline_s=OP_DEADLINE_S,
            on_answer=seen))

    async def purchase(self, client: GoliveClient, op: Operation, package: str = PACKAGE
                       ) -> None:
        await self._record(op, lambda seen: client.buy_coins(
            package, checkout_id=op.op_id, deadline_s=OP_DEADLINE_S, on_answer=seen))

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


class ChatMember:
    """A member of the live who sends lines and shows what it receives, caught up by id
    (golive.client's LiveChat: joined again and caught up after every reconnect)."""

    def __init__(self, name: str, account: Account, creator_id: str, urls: list[str],
                 tag: str) -> None:
        self.name = name
        self.account = account
        self.creator_id = creator_id
        self.tag = tag
        self.sent = 0
        self.acked: list[str] = []
        self.texts: set[str] = set()
        self.room: LiveChat | None = None
        self.client = GoliveClient(urls, token=account.token, call_timeout=HISTORY_TIMEOUT_S,
                                   reconnect_delay=0.0, name=name)

    async def start(self) -> None:
        await self.client.connect()
        self.room = await self.client.join_live(self.creator_id)

    @property
    def live_id(self) -> str | None:
        return None if self.room is None else self.room.live_id

    @property
    def view(self) -> list[str]:
        """The ids shown, in order."""
        return [] if self.room is None else [item["id"] for item in self.room.chat.items]

    @property
    def redelivered(self) -> int:
        """Lines received again (dropped, as pages do)."""
        return 0 if self.room is None else self.room.chat.duplicates

    @property
    def catch_ups(self) -> int:
        return 0 if self.room is None else self.room.chat.catch_ups

    async def run(self, stop: asyncio.Event, offset: float) -> None:
        await asyncio.sleep(offset)
        for n in itertools.count(1):
            if stop.is_set():
                return
            text = f"c-{self.tag}-{self.name}-{n}"
            try:
                answer: dict[str, Any] | None = await self.client.ack(
                    "chat:send", {"live_id": self.live_id, "text": text}, CALL_TIMEOUT_S)
            except NotSent:
                answer = NOT_SENT
            except NoAnswer:
                answer = None
            if answer is not NOT_SENT:
                self.sent += 1
                self.texts.add(text)
                if answer is not None and answer.get("ok"):
                    self.acked.append(answer["message"]["id"])
            await asyncio.sleep(CHAT_INTERVAL_S)

    async def settle(self) -> None:
        """A last catch-up (the next batch would trigger it on a page)."""
        for _ in range(20):
            if self.room is not None and self.client.connected:
                try:
                    await self.room.catch_up()
                    return
                except Exception:
                    pass
            await asyncio.sleep(0.5)


class DmUser:
    """One of a pair of friends writing to each other."""

    def __init__(self, name: str, account: Account, urls: list[str], tag: str) -> None:
        self.name = name
        self.account = account
        self.tag = tag
        self.other: DmUser | None = None
        self.conversation_id: str | None = None
        self.seen: set[str] = set()
        self.sent = 0
        self.acked: list[str] = []
        self.client = GoliveClient(urls, token=account.token, call_timeout=HISTORY_TIMEOUT_S,
                                   reconnect_delay=0.0, name=name)
        self.client.on("dm:message", self._on_message)
        self.client.on_connected(self._connected)

    async def start(self) -> None:
        await self.client.connect()

    async def _on_message(self, data: dict[str, Any]) -> None:
        message = data.get("message") or {}
        if (data.get("conversation") or {}).get("conversation_id", self.conversation_id) == \
                self.conversation_id and message.get("id"):
            self.seen.add(message["id"])

    async def _connected(self, _: GoliveClient) -> None:
        if self.conversation_id is not None:
            await self.catch_up()

    async def catch_up(self) -> None:
        """dm:history after the newest id shown, page by page."""
        assert self.conversation_id is not None
        while True:
            after = max(self.seen, key=chat_id) if self.seen else None
            reply = await self.client.dm_history(self.conversation_id, after=after, limit=100)
            self.seen.update(m["id"] for m in reply["messages"])
            if not reply.get("more") or not reply["messages"]:
                return

    async def run(self, stop: asyncio.Event, offset: float) -> None:
        assert self.other is not None
        await asyncio.sleep(offset)
        for n in itertools.count(1):
            if stop.is_set():
                return
            payload = {"to": self.other.account.id, "text": f"d-{self.tag}-{self.name}-{n}"}
            try:
                answer: dict[str, Any] | None = await self.client.ack(
                    "dm:send", payload, CALL_TIMEOUT_S)
            except NotSent:
                answer = NOT_SENT
            except NoAnswer:
                answer = None
            if answer is not NOT_SENT:
                self.sent += 1
                if answer is not None and answer.get("ok"):
                    self.conversation_id = answer["conversation_id"]
                    # ids are per conversation (each is a stream): qualified to compare
                    self.acked.append(f"{self.conversation_id}/{answer['message']['id']}")
            await asyncio.sleep(DM_INTERVAL_S)


async def history_of_chat(client: GoliveClient, live_id: str) -> list[dict[str, Any]]:
    """Every line the live's chat holds, oldest first (chat:history after 0-0)."""
    items: list[dict[str, Any]] = []
    after = "0-0"
    while True:
        reply = await _call(client, "chat:history", {"live_id": live_id, "after": after,
                                                     "limit": 200})
        items += reply["items"]
        if not reply.get("more") or not reply["items"]:
            return items
        after = reply["items"][-1]["id"]


async def history_of_dms(client: GoliveClient, conversation_id: str) -> list[dict[str, Any]]:
    """Every message of a conversation, oldest first (dm:history after 0-0)."""
    messages: list[dict[str, Any]] = []
    after = "0-0"
    while True:
        reply = await _call(client, "dm:history", {"conversation_id": conversation_id,
                                                   "after": after, "limit": 100})
        messages += reply["messages"]
        if not reply.get("more") or not reply["messages"]:
            return messages
        after = reply["messages"][-1]["id"]


async def _call(client: GoliveClient, event: str, payload: dict[str, Any],
                tries: int = 30) -> dict[str, Any]:
    """A read that must answer (after the faults): retried while the client reconnects."""
    answer: Any = None
    for _ in range(tries):
        try:
            answer = await client.ack(event, payload, HISTORY_TIMEOUT_S)
        except (NotSent, NoAnswer) as exc:
            answer = exc
        if isinstance(answer, dict) and answer.get("ok"):
            return answer
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{event} did not answer: {answer}")


__all__ = ["ChatMember", "DmUser", "MoneyClients", "history_of_chat", "history_of_dms"]
