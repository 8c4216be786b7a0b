"""What the clients do while faults are injected, and what each one records.

- Money (MoneyClients): each sender sends Roses (`gift:send`) and now and then buys coins
  (`POST /api/coins/checkout`), every operation under its own id, sent again with the
  same id after a timeout, `unavailable`, `rate_limited` or a dropped connection, until
  a definite answer or OP_DEADLINE_S.
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
import contextlib
import itertools
import time
from typing import Any

import aiohttp

from bench.chaos.clients import NOT_SENT, Peer
from bench.chaos.invariants import ACKED, REFUSED, Operation, id_key
from bench.target import Account

CALL_TIMEOUT_S = 2.0     # shorter than a Redis pause: a pause makes timeouts and retries
OP_DEADLINE_S = 60.0     # an operation still without an answer after this is "unknown"
RETRY_S = 0.25
RETRYABLE = frozenset({"unavailable", "rate_limited"})
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
        self.peers: list[Peer] = []
        self.codes: dict[str, int] = {}
        self._http: aiohttp.ClientSession | None = None
        self._urls = itertools.cycle(urls)

    async def open(self) -> None:
        self._http = aiohttp.ClientSession()
        for i, sender in enumerate(self.senders):
            peer = Peer(f"sender{i}", sender.token, self.urls[i % len(self.urls):]
                        + self.urls[: i % len(self.urls)])
            await peer.start()
            self.peers.append(peer)
            await self.purchase(sender, Operation(f"ck{self.tag}s{i}first", "purchase"),
                                FIRST_PACKAGE)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._sender(i, stop) for i in range(len(self.senders))))

    async def _sender(self, i: int, stop: asyncio.Event) -> None:
        sender, peer = self.senders[i], self.peers[i]
        await asyncio.sleep(self.interval_s * i / max(len(self.senders), 1))
        for n in itertools.count(1):
            if stop.is_set():
                return
            if n % PURCHASE_EVERY == 0:
                await self.purchase(sender, Operation(f"ck{self.tag}s{i}n{n}", "purchase"))
            else:
                await self.gift(peer, Operation(f"tr{self.tag}s{i}n{n}", "gift"))
            await asyncio.sleep(self.interval_s)

    def _done(self, op: Operation, answer: dict[str, Any]) -> bool:
        """Record a definite answer; False when the answer says to send it again."""
        if answer.get("ok"):
            op.outcome = ACKED
            body = answer.get("receipt") or answer.get("purchase") or {}
            op.replayed = bool(body.get("replayed"))
            return True
        code = str((answer.get("error") or {}).get("code"))
        self.codes[code] = self.codes.get(code, 0) + 1
        if code in RETRYABLE:
            return False
        op.outcome, op.code = REFUSED, code
        return True

    async def gift(self, peer: Peer, op: Operation) -> None:
        self.operations.append(op)
        deadline = time.monotonic() + OP_DEADLINE_S
        payload = {"transfer_id": op.op_id, "creator": self.creator_id, "gift_id": GIFT,
                   "count": 1}
        while time.monotonic() < deadline:
            answer = await peer.call("gift:send", payload, CALL_TIMEOUT_S)
            if answer is not NOT_SENT:
                op.attempts += 1
                if isinstance(answer, dict) and self._done(op, answer):
                    return
            await asyncio.sleep(RETRY_S)

    async def purchase(self, account: Account, op: Operation, package: str = PACKAGE) -> None:
        self.operations.append(op)
        assert self._http is not None
        deadline = time.monotonic() + OP_DEADLINE_S
        body = {"package_id": package, "checkout_id": op.op_id}
        headers = {"Authorization": f"Bearer {account.token}"}
        while time.monotonic() < deadline:
            url = next(self._urls)
            answer: Any = None
            try:
                async with self._http.post(
                        f"{url}/api/coins/checkout", json=body, headers=headers,
                        timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)) as resp:
                    op.attempts += 1
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                        answer = await resp.json()
            except aiohttp.ClientConnectorError:
                pass  # the node is down: nothing was sent
            except (aiohttp.ClientError, OSError, TimeoutError):
                op.attempts += 1  # sent, and no answer came: it may have been applied
            if isinstance(answer, dict) and self._done(op, answer):
                return
            await asyncio.sleep(RETRY_S)

    async def close(self) -> None:
        for peer in self.peers:
            await peer.close()
        if self._http is not None:
            await self._http.close()


class ChatMember:
    """A member of the live who sends lines and shows what it receives, caught up by id."""

    def __init__(self, name: str, account: Account, creator_id: str, urls: list[str],
                 tag: str) -> None:
        self.name = name
        self.account = account
        self.creator_id = creator_id
        self.tag = tag
        self.live_id: str | None = None
        self.view: list[str] = []            # ids shown, in order
        self.last: str | None = None         # every line up to here was shown
        self.redelivered = 0                 # lines received again (dropped, as pages do)
        self.catch_ups = 0
        self.sent = 0
        self.acked: list[str] = []
        self.texts: set[str] = set()
        self._held: list[dict[str, Any]] | None = None
        self.peer = Peer(name, account.token, urls, pushes={"chat:messages": self._on_batch},
                         on_connected=self._joined)

    async def _joined(self, sio: Any) -> None:
        ack = await sio.call("room:join", {"user_id": self.creator_id, "media": False},
                             timeout=HISTORY_TIMEOUT_S)
        if not ack.get("ok"):
            raise RuntimeError(f"room:join: {ack.get('error')}")
        self.live_id = ack["live"]["live_id"]
        await self.catch_up(sio)

    async def catch_up(self, sio: Any) -> None:
        """chat:history after the last line shown, page by page; then the held batches."""
        self._held = []
        self.catch_ups += 1
        try:
            while True:
                payload: dict[str, Any] = {"live_id": self.live_id, "limit": 200}
                if self.last is not None:
                    payload["after"] = self.last
                reply = await sio.call("chat:history", payload, timeout=HISTORY_TIMEOUT_S)
                if not reply.get("ok"):
                    raise RuntimeError(f"chat:history: {reply.get('error')}")
                self._apply(reply["items"])
                if not reply.get("more"):
                    break
        finally:
            held, self._held = self._held, None
        for batch in held:
            await self._on_batch(batch)

    def _apply(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            if self.last is not None and id_key(item["id"]) <= id_key(self.last):
                self.redelivered += 1
                continue
            self.last = item["id"]
            self.view.append(item["id"])

    async def _on_batch(self, batch: dict[str, Any]) -> None:
        if batch.get("live_id") != self.live_id:
            return
        if self._held is not None:
            self._held.append(batch)
            return
        prev = batch.get("prev")
        if prev and self.last is not None and id_key(prev) > id_key(self.last):
            sio = self.peer.sio
            if sio is not None:  # a gap: the lines between our last and this batch
                with contextlib.suppress(Exception):  # a dropped call: the next batch retries
                    await self.catch_up(sio)
            return
        self._apply(batch.get("items", []))

    async def run(self, stop: asyncio.Event, offset: float) -> None:
        await asyncio.sleep(offset)
        for n in itertools.count(1):
            if stop.is_set():
                return
            text = f"c-{self.tag}-{self.name}-{n}"
            answer = await self.peer.call("chat:send", {"live_id": self.live_id, "text": text},
                                          CALL_TIMEOUT_S)
            if answer is not NOT_SENT:
                self.sent += 1
                self.texts.add(text)
                if isinstance(answer, dict) and answer.get("ok"):
                    self.acked.append(answer["message"]["id"])
            await asyncio.sleep(CHAT_INTERVAL_S)

    async def settle(self) -> None:
        """A last catch-up (the next batch would trigger it on a page)."""
        for _ in range(20):
            sio = self.peer.sio
            if sio is not None and self.peer.connected:
                try:
                    await self.catch_up(sio)
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
        self.peer = Peer(name, account.token, urls, pushes={"dm:message": self._on_message},
                         on_connected=self._connected)

    async def _on_message(self, data: dict[str, Any]) -> None:
        message = data.get("message") or {}
        if (data.get("conversation") or {}).get("id", self.conversation_id) == \
                self.conversation_id and message.get("id"):
            self.seen.add(message["id"])

    async def _connected(self, sio: Any) -> None:
        if self.conversation_id is not None:
            await self.catch_up(sio)

    async def catch_up(self, sio: Any) -> None:
        """dm:history after the newest id shown, page by page."""
        while True:
            payload: dict[str, Any] = {"conversation_id": self.conversation_id, "limit": 100}
            if self.seen:
                payload["after"] = max(self.seen, key=id_key)
            reply = await sio.call("dm:history", payload, timeout=HISTORY_TIMEOUT_S)
            if not reply.get("ok"):
                raise RuntimeError(f"dm:history: {reply.get('error')}")
            self.seen.update(m["id"] for m in reply["messages"])
            if not reply.get("more") or not reply["messages"]:
                return

    async def run(self, stop: asyncio.Event, offset: float) -> None:
        assert self.other is not None
        await asyncio.sleep(offset)
        for n in itertools.count(1):
            if stop.is_set():
                return
            answer = await self.peer.call("dm:send", {"to": self.other.account.id,
                                                      "text": f"d-{self.tag}-{self.name}-{n}"},
                                          CALL_TIMEOUT_S)
            if answer is not NOT_SENT:
                self.sent += 1
                if isinstance(answer, dict) and answer.get("ok"):
                    self.conversation_id = answer["conversation_id"]
                    # ids are per conversation (each is a stream): qualified to compare
                    self.acked.append(f"{self.conversation_id}/{answer['message']['id']}")
            await asyncio.sleep(DM_INTERVAL_S)


async def history_of_chat(peer: Peer, live_id: str) -> list[dict[str, Any]]:
    """Every line the live's chat holds, oldest first (chat:history after 0-0)."""
    items: list[dict[str, Any]] = []
    after = "0-0"
    while True:
        reply = await _call(peer, "chat:history", {"live_id": live_id, "after": after,
                                                   "limit": 200})
        items += reply["items"]
        if not reply.get("more") or not reply["items"]:
            return items
        after = reply["items"][-1]["id"]


async def history_of_dms(peer: Peer, conversation_id: str) -> list[dict[str, Any]]:
    """Every message of a conversation, oldest first (dm:history after 0-0)."""
    messages: list[dict[str, Any]] = []
    after = "0-0"
    while True:
        reply = await _call(peer, "dm:history", {"conversation_id": conversation_id,
                                                 "after": after, "limit": 100})
        messages += reply["messages"]
        if not reply.get("more") or not reply["messages"]:
            return messages
        after = reply["messages"][-1]["id"]


async def _call(peer: Peer, event: str, payload: dict[str, Any], tries: int = 30) -> Any:
    """A read that must answer (after the faults): retried while the peer reconnects."""
    for _ in range(tries):
        answer = await peer.call(event, payload, HISTORY_TIMEOUT_S)
        if isinstance(answer, dict) and answer.get("ok"):
            return answer
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{event} did not answer: {answer}")


__all__ = ["ChatMember", "DmUser", "MoneyClients", "history_of_chat", "history_of_dms"]
