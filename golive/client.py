"""golive's Python client: the documented protocol (docs/protocol.md) for bots, integrations,
the bench and `golive broadcast`. Typed, asyncio, one object per signed-in user:

    async with GoliveClient("http://127.0.0.1:8080") as c:
        await c.sign_in("ann", "a-good-password")
        room = await c.join_live(creator_id)
        await room.send("hello")
        async for push in c.pushes():
            ...

HTTP calls go over aiohttp; the socket is python-socketio with the msgpack serializer (the
one the pages use). A refusal raises GoliveError with the server's stable code; a request
that could not be sent raises NotSent, one that got no answer NoAnswer (golive.errors).

Reconnects are the pages': when the socket drops, the client connects again (to the next
of its URLs: several nodes behind no balancer), joins again every live it joined
(membership is per connection), catches each chat up by id (`chat:history {after}`), runs
the `on_connected` hooks (a creator resumes its live there) and yields a `Reconnected`
push. Gifts and purchases carry an idempotency id and are sent again unchanged until a
definite answer: the server moves the coins once.

The client owns its HTTP session, its socket and its reconnect task: `close()` (or leaving
the `async with`) ends all three.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import date
from typing import Any, Protocol

import aiohttp
import msgspec
import socketio

from golive.chat import ChatCatchUp
from golive.errors import GoliveError, LiveRefused, NoAnswer, NotSent, raise_for
from golive.pushes import ChatItem, ChatMessages, Live, Push, Reconnected, UserRef, decode

log = logging.getLogger("golive.client")

CALL_TIMEOUT_S = 30.0
CONNECT_WAIT_S = 5.0     # a Socket.IO handshake on loopback takes ~10 ms; 5 s is a dead node
RETRY_S = 0.25           # between sends of one idempotent operation, and between connects
OP_DEADLINE_S = 60.0     # an operation still without a definite answer is given up
LEAVE_TIMEOUT_S = 2.0    # close() leaves its lives first; a dead node does not hold it longer
PUSH_QUEUE = 1000        # pushes one pushes() iterator holds; past it the oldest go
HISTORY_PAGE = 200       # chat:history's largest page
RETRYABLE = frozenset({"unavailable", "rate_limited"})
# The pages' socket.io-client waits 0.25-0.75 s before its first retry (reconnectionDelay
# 500 ms, randomization 0.5: web/static/socket.js); the client waits the middle of that.
RECONNECT_DELAY_S = 0.5

Ack = Callable[[str, dict[str, Any], float], Awaitable[dict[str, Any]]]
"""Send one event and return its raw ack (ok or not); NotSent or NoAnswer otherwise."""
Hook = Callable[["GoliveClient"], Awaitable[None]]
Observer = Callable[[dict[str, Any] | None], None]
"""Sees each answer of a resent operation (None: sent, no answer came)."""


class Session(msgspec.Struct, kw_only=True):
    """A signed-in session: the public user, the bearer token and when it expires."""
    user: UserRef
    token: str
    expires_at: float = 0.0


class Balances(msgspec.Struct, kw_only=True):
    coins: int = 0
    diamonds: int = 0
    pending_diamonds: int = 0
    paid_diamonds: int = 0
    carry_coins: int = 0


class Receipt(msgspec.Struct, kw_only=True):
    """A gift's receipt (`replayed`: a resend of an id the server had applied)."""
    transfer_id: str
    live_id: str
    gift_id: str
    count: int
    coins: int
    diamonds: int
    sender_coins: int
    replayed: bool = False
    streak: str = ""
    combo: int = 1


class Purchase(msgspec.Struct, kw_only=True):
    payment_id: str
    coins: int
    balance: int = 0
    replayed: bool = False


class Media(Protocol):
    """A creator's peer connection (media.synthetic.HeadlessCreator): an offer out, the
    server's answer in, and `pc.connectionState`."""
    pc: Any

    async def offer(self) -> str: ...

    async def accept_answer(self, sdp: str) -> None: ...


def new_id() -> str:
    """An idempotency id (a transfer or checkout id: 8-64 of A-Z a-z 0-9 _ -)."""
    return uuid.uuid4().hex


def is_retryable(answer: Any) -> bool:
    """An error answer the same request may get past later (protocol, "Conventions")."""
    error = answer.get("error") if isinstance(answer, dict) else None
    return isinstance(error, dict) and (error.get("code") in RETRYABLE
                                        or bool(error.get("retryable")))


async def resend_until_answered(send: Callable[[], Awaitable[dict[str, Any]]], *,
                                deadline_s: float = OP_DEADLINE_S, retry_s: float = RETRY_S,
                                on_answer: Observer | None = None) -> dict[str, Any]:
    """Send an idempotent request (its id inside `send`) until a definite answer: `{ok:
    true}` or a refusal retrying cannot change; the raw answer. Sent again after NotSent,
    NoAnswer and `unavailable`/`rate_limited` (after `retry_after`). `on_answer` sees every
    send that went out (None: no answer came). NoAnswer after `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while True:
        answer: dict[str, Any] | None = None
        wait = retry_s
        try:
            answer = await send()
        except NotSent:
            pass
        except NoAnswer:
            if on_answer is not None:
                on_answer(None)
        else:
            if on_answer is not None:
                on_answer(answer)
            if answer.get("ok") or not is_retryable(answer):
                return answer
            after = (answer.get("error") or {}).get("retry_after")
            if isinstance(after, int | float):
                wait = max(retry_s, float(after))
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoAnswer(f"no definite answer in {deadline_s:g} s")
        await asyncio.sleep(min(wait, left))


async def start_live(call: Ack, media: Media, title: str, timeout: float, *,
                     resume_of: str | None = None, signed_in_only: bool = False,
                     record: bool = False) -> dict[str, Any]:
    """Go live: `live:start` with the creator's offer (resuming the live `resume_of`, as the
    studio does after a reconnect), its answer applied, then wait (at most `timeout` s)
    until the creator's peer connection is up; `record` keeps a replay of it (README
    "Replays"). The `live`; LiveRefused (a GoliveError)
    when refused, RuntimeError when the media connection fails."""
    payload: dict[str, Any] = {"title": title, "offer": await media.offer()}
    if resume_of is not None:
        payload["resume_of"] = resume_of
    if signed_in_only:
        payload["signed_in_only"] = True
    if record:
        payload["record"] = True
    answer = await call("live:start", payload, 30.0)
    if not answer.get("ok"):
        raise LiveRefused(answer.get("error") or {})
    await media.accept_answer(answer["answer"])
    async with asyncio.timeout(timeout):
        while media.pc.connectionState != "connected":
            if media.pc.connectionState in ("failed", "closed"):
                raise RuntimeError("the creator's peer connection failed")
            await asyncio.sleep(0.05)
    return dict(answer["live"])


def bare_socket(http_session: aiohttp.ClientSession | None = None) -> socketio.AsyncClient:
    """A python-socketio client as golive speaks (msgpack, no reconnection of its own: the
    caller decides) that leaves Ctrl-C to the program. python-socketio's default
    (handle_sigint=True) puts its own SIGINT handler on the loop at the first connect, in
    place of the program's: it cancels every task and stops the loop, so a clean stop
    (bench/runner.py's `guarded`, `golive broadcast`) never ran and a second Ctrl-C could
    not kill. GoliveClient's socket and the bench's tabs are made here."""
    return socketio.AsyncClient(serializer="msgpack", reconnection=False,
                                handle_sigint=False, http_session=http_session)


async def leave_lives(sio: socketio.AsyncClient, live_ids: Iterable[str | None],
                      timeout: float = LEAVE_TIMEOUT_S) -> None:
    """`room:leave` each live (None or "": never joined, skipped) while the socket is up,
    before it is disconnected: python-socketio closes the websocket before its goodbye goes
    out, so the server reads a lost network and holds a joined viewer for its resume
    (GOLIVE_VIEWER_RESUME_GRACE, 10 s), counted all that time. Refusals and timeouts are
    ignored: the disconnect comes next anyway."""
    for live_id in live_ids:
        if not live_id or not sio.connected:
            continue
        with contextlib.suppress(Exception):
            await sio.call("room:leave", {"live_id": live_id}, timeout=timeout)


async def close_socket(sio: socketio.AsyncClient, *live_ids: str | None) -> None:
    """Leave `live_ids` (leave_lives), then disconnect, quietly: how a bare socket that
    joined lives ends (the bench's viewers), so that the server counts it gone at once."""
    await leave_lives(sio, live_ids)
    await _quietly(sio.disconnect())


def socket_ack(sio: socketio.AsyncClient) -> Ack:
    """The Ack of a bare python-socketio client (the bench's tabs)."""
    async def ack(event: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        if not sio.connected:
            raise NotSent()
        try:
            return dict(await sio.call(event, payload, timeout=timeout))
        except socketio.exceptions.TimeoutError:
            raise NoAnswer(f"{event}: no answer in {timeout:g} s") from None
        except (socketio.exceptions.SocketIOError, ConnectionError, OSError) as exc:
            raise NoAnswer(f"{event}: {exc}") from None
    return ack


class PushStream:
    """An async iterator of typed pushes (bounded: past PUSH_QUEUE the oldest are dropped
    and counted in `dropped`). Ends when closed or when its client closes."""

    _END = object()

    def __init__(self, client: GoliveClient, events: frozenset[str], size: int) -> None:
        self._client = client
        self.events = events
        self.queue: asyncio.Queue[Any] = asyncio.Queue(size)
        self.dropped = 0
        self.closed = False

    def put(self, push: Any) -> None:
        if self.closed:
            return
        while self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(push)

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events

    def __aiter__(self) -> PushStream:
        return self

    async def __anext__(self) -> Push:
        if self.closed and self.queue.empty():
            raise StopAsyncIteration
        push = await self.queue.get()
        if push is PushStream._END:
            raise StopAsyncIteration
        return push  # type: ignore[no-any-return]

    async def next(self, timeout: float | None = None) -> Push:
        """The next push (TimeoutError after `timeout` s)."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    def close(self) -> None:
        """Stop receiving; an iteration ends after the pushes already queued."""
        if not self.closed:
            self.closed = True
            self._client._streams.discard(self)
            self.put(PushStream._END)

    async def __aenter__(self) -> PushStream:
        return self

    async def __aexit__(self, *_: Any) -> None:
        self.close()


class LiveChat:
    """A live the client joined (`room:join {media: false}`): its exact chat (`chat`, a
    ChatCatchUp), sending lines, and its pushes. Joined again after every reconnect."""

    def __init__(self, client: GoliveClient, creator_id: str) -> None:
        self.client = client
        self.creator_id = creator_id
        self.live: Live | None = None
        self.joined: dict[str, Any] = {}
        self.chat = ChatCatchUp()

    @property
    def live_id(self) -> str:
        assert self.live is not None, "not joined yet"
        return self.live.live_id

    async def _join(self) -> list[dict[str, Any]]:
        self.joined = await self.client.call(
            "room:join", {"user_id": self.creator_id, "media": False})
        self.live = msgspec.convert(self.joined["live"], Live, strict=False)
        self.chat.live_id = self.live.live_id
        return await self.chat.catch_up(self._fetch)

    async def _fetch(self, after: str | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"live_id": self.live_id, "limit": HISTORY_PAGE}
        if after is not None:
            payload["after"] = after
        return await self.client.call("chat:history", payload)

    async def send(self, text: str) -> ChatItem:
        """`chat:send`: the line as stored (its id places it in the room's order). Not sent
        again on NoAnswer: chat:send has no id, a resend could write the line twice."""
        ack = await self.client.call("chat:send", {"live_id": self.live_id, "text": text})
        return msgspec.convert(ack["message"], ChatItem, strict=False)

    async def catch_up(self) -> list[dict[str, Any]]:
        """`chat:history` after the last line shown, to the end; the lines new to us."""
        return await self.chat.catch_up(self._fetch)

    async def board(self) -> dict[str, Any]:
        """`gift:board`: the live's top gifters, coins and diamonds so far."""
        return dict((await self.client.call("gift:board", {"live_id": self.live_id}))["board"])

    async def leave(self) -> None:
        """`room:leave`; no longer joined again on reconnects."""
        self.client._rooms.pop(self.creator_id, None)
        with contextlib.suppress(GoliveError):
            await self.client.call("room:leave", {"live_id": self.live_id})


class GoliveClient:
    """One user's connection to golive (see the module's docstring).

    `url` is a server (or a list of nodes, tried in turn); `token` a session to reuse
    (or sign in/up); `anonymous` connects the socket signed out (watch and read only);
    `call_timeout` bounds every request; `reconnect=False` leaves a dropped socket down.
    """

    def __init__(self, url: str | Sequence[str], *, token: str | None = None,
                 anonymous: bool = False, reconnect: bool = True,
                 call_timeout: float = CALL_TIMEOUT_S, reconnect_delay: float = RECONNECT_DELAY_S,
                 name: str = "") -> None:
        self.urls = [u.rstrip("/") for u in ([url] if isinstance(url, str) else url)]
        if not self.urls:
            raise ValueError("no server URL")
        self.token = token
        self.anonymous = anonymous
        self.reconnect = reconnect
        self.call_timeout = call_timeout
        self.reconnect_delay = reconnect_delay
        self.name = name
        self.user: UserRef | None = None
        self.url_index = 0
        self.reconnects = 0
        self.sio: socketio.AsyncClient | None = None
        self._http: aiohttp.ClientSession | None = None
        self._callbacks: dict[str, list[Callable[[Any], Awaitable[None] | None]]] = {}
        self._hooks: list[Hook] = []
        self._streams: set[PushStream] = set()
        self._rooms: dict[str, LiveChat] = {}
        self._lost = asyncio.Event()
        self._closing = False
        self._keeper: asyncio.Task[None] | None = None
        self._connect_error: Any = None

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server (node) in use now."""
        return self.urls[self.url_index % len(self.urls)]

    @property
    def connected(self) -> bool:
        return self.sio is not None and self.sio.connected and not self._lost.is_set()

    async def __aenter__(self) -> GoliveClient:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop reconnecting, close the socket and the HTTP session, end every push
        iterator. Safe twice."""
        if self.sio is not None and self.connected:
            await leave_lives(self.sio, [room.live.live_id for room in self._rooms.values()
                                         if room.live is not None])
        self._closing = True
        self._lost.set()
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keeper
        sio, self.sio = self.sio, None
        if sio is not None:
            await _quietly(sio.disconnect())
        for stream in list(self._streams):
            stream.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    # --- HTTP ------------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, json: Any = None,
                      params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One HTTP API call (the bearer token when signed in): its `{ok: true}` body, or
        GoliveError; NotSent when no node answers the connect, NoAnswer after it was sent.
        A node that cannot be reached makes the next one current."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        timeout = aiohttp.ClientTimeout(total=self.call_timeout)
        try:
            async with self._session().request(method, self.url + path, json=json,
                                               params=params, headers=headers,
                                               timeout=timeout) as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = {"ok": False, "error": {"code": "internal",
                                                   "message": f"HTTP {resp.status}"}}
        except aiohttp.ClientConnectorError as exc:
            self.url_index += 1
            raise NotSent(f"{method} {path}: {exc}") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.url_index += 1
            raise NoAnswer(f"{method} {path}: {type(exc).__name__} {exc}") from None
        return raise_for(body)

    async def _signed_in(self, body: dict[str, Any], connect: bool) -> Session:
        session = msgspec.convert(body, Session, strict=False)
        self.token, self.user, self.anonymous = session.token, session.user, False
        if connect:
            await self.connect()
        return session

    async def sign_up(self, username: str, password: str, *, display_name: str | None = None,
                      birthdate: date | str = "1990-01-01", connect: bool = True) -> Session:
        """`POST /api/register`: a new account, signed in, its socket open (pushes flow) unless
        `connect=False`. The birthdate makes its age: 18 to go live and buy coins."""
        return await self._signed_in(await self.request("POST", "/api/register", json={
            "username": username, "display_name": display_name or username,
            "password": password, "birthdate": str(birthdate)}), connect)

    async def sign_in(self, username: str, password: str, *, connect: bool = True) -> Session:
        """`POST /api/signin`, then the socket opened with this token (unless
        `connect=False`; it opens on the first event then)."""
        return await self._signed_in(await self.request(
            "POST", "/api/signin", json={"username": username, "password": password}), connect)

    async def sign_out(self) -> None:
        """`POST /api/signout`: the token stops working and the server drops its sockets."""
        await self.request("POST", "/api/signout")
        self.token, self.user = None, None

    async def me(self) -> dict[str, Any]:
        """`GET /api/me`: `{user, go_live}` (go_live: whether `live:start` would pass)."""
        return await self.request("GET", "/api/me")

    async def profile(self, username: str) -> dict[str, Any]:
        """`GET /api/users/{username}`: `{user, counts, relation?, live?}`."""
        return await self.request("GET", f"/api/users/{username}")

    async def follow(self, username: str) -> dict[str, Any]:
        """Follow a user: `{relation, counts}`."""
        return await self.request("POST", f"/api/users/{username}/follow")

    async def unfollow(self, username: str) -> dict[str, Any]:
        return await self.request("DELETE", f"/api/users/{username}/follow")

    async def gift_catalog(self) -> list[dict[str, Any]]:
        """`GET /api/gifts`: the gifts, cheapest first (the server alone sets prices)."""
        return list((await self.request("GET", "/api/gifts"))["gifts"])

    async def coin_packages(self) -> list[dict[str, Any]]:
        """`GET /api/coins/packages`: `[{id, coins, price_cents, currency}]`."""
        return list((await self.request("GET", "/api/coins/packages"))["packages"])

    async def balance(self) -> Balances:
        """`GET /api/wallet`'s balances."""
        wallet = await self.request("GET", "/api/wallet")
        return msgspec.convert(wallet["balances"], Balances, strict=False)

    async def buy_coins(self, package_id: str, *, checkout_id: str | None = None,
                        deadline_s: float = OP_DEADLINE_S, on_answer: Observer | None = None
                        ) -> Purchase:
        """`POST /api/coins/checkout` (18+; the test provider pays at once). The package's
        coins and price are the catalog's. Sent again with the same `checkout_id` until a
        definite answer, so it is bought once (`on_answer`: see resend_until_answered)."""
        body = {"package_id": package_id, "checkout_id": checkout_id or new_id()}
        answer = await resend_until_answered(
            lambda: self._raw_request("POST", "/api/coins/checkout", body),
            deadline_s=deadline_s, on_answer=on_answer)
        return msgspec.convert(raise_for(answer)["purchase"], Purchase, strict=False)

    async def _raw_request(self, method: str, path: str, body: Any) -> dict[str, Any]:
        try:
            return await self.request(method, path, json=body)
        except (NotSent, NoAnswer):
            raise
        except GoliveError as exc:
            return {"ok": False, "error": exc.error}

    # --- the socket ------------------------------------------------------------------------

    async def connect(self, timeout: float = 60.0) -> None:
        """Open the socket (each request opens it when needed): the URLs in turn until one
        takes it, then keep it up. GoliveError when the server refuses the connection
        (`unauthorized`: a bad or revoked token)."""
        if self.sio is not None:
            return
        async with asyncio.timeout(timeout):
            while True:
                if await self._connect_once(first=True):
                    break
                await asyncio.sleep(RETRY_S)
        if self.reconnect and self._keeper is None:
            self._keeper = asyncio.create_task(self._keep(), name=f"golive-{self.name}")

    async def _connect_once(self, *, first: bool = False) -> bool:
        sio = bare_socket(self._session())
        sio.on("*", self._on_push)

        async def on_disconnect(*_: Any) -> None:
            await self._on_disconnect(sio)
        sio.on("disconnect", on_disconnect)
        sio.on("connect_error", self._on_connect_error)
        auth = {"token": self.token} if self.token and not self.anonymous else {
            "anonymous": True}
        url = self.url
        self._connect_error = None
        try:
            await sio.connect(url, auth=auth, transports=["websocket"],
                              wait_timeout=CONNECT_WAIT_S)
        except asyncio.CancelledError:
            await _quietly(sio.disconnect())
            raise
        except Exception as exc:  # refused, node down, Redis away: the next node
            await _quietly(sio.disconnect())
            refusal = self._refusal()
            if refusal is not None and not refusal.retryable:
                raise refusal from None  # a bad token: no other node will take it
            log.debug("%s: connect to %s failed: %s", self.name, url, exc)
            self.url_index += 1
            return False
        self.sio = sio
        self._lost.clear()
        try:
            if not first:
                for room in list(self._rooms.values()):
                    await self._rejoin(room)
            for hook in list(self._hooks):
                await hook(self)
        except BaseException as exc:
            # a half-joined connection is closed: the next attempt starts over
            self.sio = None
            await _quietly(sio.disconnect())
            if first or not isinstance(exc, Exception):
                raise
            log.warning("%s: after reconnecting to %s: %s", self.name, url, exc)
            self.url_index += 1
            return False
        return True

    def _refusal(self) -> GoliveError | None:
        data = self._connect_error
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            return GoliveError.from_error({"message": data.get("message", ""), **data["data"]})
        return None

    async def _on_connect_error(self, data: Any = None) -> None:
        self._connect_error = data

    async def _rejoin(self, room: LiveChat) -> None:
        shown = await room._join()
        if shown:
            self._deliver("chat:messages", ChatMessages(live_id=room.live_id, items=[
                msgspec.convert(i, ChatItem, strict=False) for i in shown]))

    async def _on_disconnect(self, sio: socketio.AsyncClient) -> None:
        if sio is not self.sio or self._closing:
            return  # a connect attempt that failed, or our own close
        self._lost.set()
        for callback in self._callbacks.get("disconnect", ()):
            result = callback(None)
            if result is not None:
                await result

    async def _keep(self) -> None:
        while not self._closing:
            await self._lost.wait()
            if self._closing:
                return
            old, self.sio = self.sio, None
            if old is not None:
                await _quietly(old.disconnect())
            if len(self.urls) > 1:
                self.url_index += 1  # the node we were on is likely down: the next first
            await asyncio.sleep(self.reconnect_delay)
            while not self._closing:
                try:
                    if await self._connect_once():
                        break
                except GoliveError as exc:  # the token was revoked: stay down
                    log.warning("%s: reconnect refused: %s", self.name, exc)
                    return
                await asyncio.sleep(RETRY_S)
            self.reconnects += 1
            self._deliver(Reconnected.event, Reconnected(url=self.url, attempt=self.reconnects))

    def on_connected(self, hook: Hook) -> None:
        """Run `hook(client)` after every connect and reconnect (after the lives joined are
        joined again): a creator resumes its live there, a tab re-reads its state."""
        self._hooks.append(hook)

    def on(self, event: str, callback: Callable[[Any], Awaitable[None] | None]) -> None:
        """Call `callback(payload)` for each push of `event` (its raw payload);
        `"disconnect"`: each time the socket drops (payload None)."""
        self._callbacks.setdefault(event, []).append(callback)

    def pushes(self, *events: str, size: int = PUSH_QUEUE) -> PushStream:
        """Typed pushes from now on (all, or only `events`), for `async for`. The chat of a
        live joined with join_live() comes exact: each line once, none skipped, gaps and
        reconnects caught up by id."""
        stream = PushStream(self, frozenset(events), size)
        self._streams.add(stream)
        return stream

    def _deliver(self, event: str, push: Push) -> None:
        for stream in list(self._streams):
            if stream.wants(event):
                stream.put(push)

    async def _on_push(self, event: str, data: Any = None) -> None:
        for callback in self._callbacks.get(event, ()):
            result = callback(data)
            if result is not None:
                await result
        if event == "chat:messages" and isinstance(data, dict):
            room = next((r for r in self._rooms.values()
                         if r.chat.live_id == data.get("live_id")), None)
            if room is not None:
                try:
                    shown = await room.chat.on_batch(data, room._fetch)
                except GoliveError as exc:  # a dropped catch-up: the next batch retries
                    log.info("%s: chat catch-up failed: %s", self.name, exc)
                    return
                if shown:
                    self._deliver(event, ChatMessages(live_id=room.live_id, items=[
                        msgspec.convert(i, ChatItem, strict=False) for i in shown]))
                return
        if self._streams:
            self._deliver(event, decode(event, data))

    async def ack(self, event: str, payload: dict[str, Any] | None = None,
                  timeout: float | None = None) -> dict[str, Any]:
        """Send one event; its raw ack, `{ok: true, ...}` or `{ok: false, error}`. NotSent
        when there is no connection (after the first, which this opens), NoAnswer when no
        answer came in `timeout` s (default `call_timeout`) or the socket dropped."""
        if self.sio is None and self._keeper is None and not self._closing:
            await self.connect()
        sio = self.sio
        if sio is None or not self.connected:
            raise NotSent(f"{event}: not connected")
        return await socket_ack(sio)(event, {} if payload is None else payload,
                                     self.call_timeout if timeout is None else timeout)

    async def call(self, event: str, payload: dict[str, Any] | None = None,
                   timeout: float | None = None) -> dict[str, Any]:
        """Send one event; its `{ok: true, ...}` ack, else GoliveError (or NotSent,
        NoAnswer as in `ack`)."""
        return raise_for(await self.ack(event, payload, timeout))

    # --- the protocol's events -------------------------------------------------------------

    async def whoami(self) -> UserRef:
        """`session:whoami`: who the socket is signed in as."""
        return msgspec.convert((await self.call("session:whoami"))["user"], UserRef,
                               strict=False)

    async def dm_send(self, to: str, text: str) -> dict[str, Any]:
        """`dm:send` to a user id: `{conversation_id, message, state, route}`."""
        return await self.call("dm:send", {"to": to, "text": text})

    async def dm_history(self, conversation_id: str, *, after: str | None = None,
                         before: str | None = None, limit: int | None = None
                         ) -> dict[str, Any]:
        """`dm:history`: `{messages (oldest first), more, ...}`; `after` catches up."""
        payload: dict[str, Any] = {"conversation_id": conversation_id}
        for key, value in (("after", after), ("before", before), ("limit", limit)):
            if value is not None:
                payload[key] = value
        return await self.call("dm:history", payload)

    async def nudge(self, user_id: str) -> dict[str, Any]:
        """`nudge:send`: ask an offline creator to go live (`retry_after`: when again)."""
        return await self.call("nudge:send", {"user_id": user_id})

    async def join_live(self, creator_id: str) -> LiveChat:
        """`room:join {media: false}` on a creator's live, and its chat so far (the last
        100 lines); joined again after each reconnect until `leave()`."""
        room = LiveChat(self, creator_id)
        self._rooms[creator_id] = room  # before the join: its first batches are held
        try:
            await room._join()
        except BaseException:
            self._rooms.pop(creator_id, None)
            raise
        return room

    async def send_gift(self, creator: str, gift_id: str, count: int = 1, *,
                        transfer_id: str | None = None, deadline_s: float = OP_DEADLINE_S,
                        on_answer: Observer | None = None) -> Receipt:
        """`gift:send` to a live creator (username or id), under `transfer_id` (a new one
        by default), sent again unchanged after a dropped connection, a timeout,
        `unavailable` or `rate_limited`: the coins move once (`replayed` on a resend the
        server had applied). The price is the catalog's. `on_answer` sees every send that
        went out (resend_until_answered)."""
        payload = {"transfer_id": transfer_id or new_id(), "creator": creator,
                   "gift_id": gift_id, "count": count}
        answer = await resend_until_answered(lambda: self.ack("gift:send", payload),
                                             deadline_s=deadline_s, on_answer=on_answer)
        return msgspec.convert(raise_for(answer)["receipt"], Receipt, strict=False)

    async def go_live(self, media: Media, title: str = "", *, timeout: float = 20.0,
                      resume_of: str | None = None, signed_in_only: bool = False,
                      record: bool = False) -> Live:
        """`live:start` with `media`'s offer; returns once its peer connection is up.
        After a reconnect call it again (with new media) within the grace to resume."""
        await self.connect()
        live = await start_live(self.ack, media, title, timeout, resume_of=resume_of,
                                signed_in_only=signed_in_only, record=record)
        return msgspec.convert(live, Live, strict=False)

    async def end_live(self) -> None:
        """`live:end` (`not_found` when not live)."""
        await self.call("live:end", {}, timeout=5.0)


async def _quietly(aw: Awaitable[Any], timeout: float = 5.0) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(aw, timeout)


__all__ = ["Balances", "GoliveClient", "LiveChat", "Media", "Purchase", "PushStream",
           "Receipt", "Session", "close_socket", "is_retryable", "leave_lives", "new_id",
           "resend_until_answered", "socket_ack", "start_live"]
