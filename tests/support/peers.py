"""Accounts, signed-in Socket.IO clients and going live, as a browser tab would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import pytest
import socketio

from media.synthetic import HeadlessCreator


@dataclass
class User:
    id: str
    username: str
    token: str


async def register(client: Any, username: str, *, birthdate: str = "1990-01-01",
                   password: str = "correct-horse-1") -> User:
    """Sign up through POST /api/register on an aiohttp test client; the new user."""
    resp = await client.post("/api/register", json={
        "username": username, "display_name": username.title(), "password": password,
        "birthdate": birthdate})
    body = await resp.json()
    assert resp.status == 201, body
    return User(body["user"]["id"], body["user"]["username"], body["token"])


async def sio_connect(server: Any, token: str | None, *, wait_timeout: float = 5,
                      anonymous: bool = False, **kw: Any) -> socketio.AsyncClient:
    """A real Socket.IO client (msgpack, websocket) connected to `server`: an aiohttp test
    client or a base URL; with `anonymous` (and no token), a signed-out socket that asks
    the server for an anonymous identity."""
    sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    url = server if isinstance(server, str) else str(server.make_url("/"))
    auth = {"token": token} if token is not None else {"anonymous": True} if anonymous else None
    await sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=wait_timeout,
                      **kw)
    return sio


class SocketPeer:
    """A signed-in Socket.IO client (one browser tab) that records the pushes it is sent.

    Subclasses name the pushes to record in PUSHES and may react in on_push()."""

    PUSHES: tuple[str, ...] = ()

    def __init__(self, sio: socketio.AsyncClient, user: User) -> None:
        self.sio = sio
        self.user = user
        self.pushes: list[tuple[str, Any]] = []
        for name in self.PUSHES:
            sio.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Any:
        async def record(data: Any) -> None:
            self.pushes.append((name, data))
            self.on_push(name, data)
        return record

    def on_push(self, name: str, data: Any) -> None:
        """Called after a push is recorded."""

    def got(self, name: str) -> list[Any]:
        """The data of every `name` push recorded, oldest first."""
        return [data for event, data in self.pushes if event == name]

    async def call(self, event: str, payload: Any, timeout: float = 20) -> dict[str, Any]:
        """Emit `event` and wait for its ack."""
        return await self.sio.call(event, payload, timeout=timeout)  # type: ignore[no-any-return]


P = TypeVar("P", bound=SocketPeer)


async def open_tab(client: Any, who: str | User, closers: list[Any], *,
                   peer: type[P] = SocketPeer, **register_kw: Any) -> P:  # type: ignore[assignment]
    """A signed-in tab (`peer`, a SocketPeer class) on the test server, its socket closed
    with `closers`: `who` is registered first when it is a name; a User opens another tab."""
    user = who if isinstance(who, User) else await register(client, who, **register_kw)
    sio = await sio_connect(client, user.token)
    closers.append(sio)
    return peer(sio, user)


async def anonymous_tab(client: Any, closers: list[Any], *,
                        peer: type[P] = SocketPeer) -> P:  # type: ignore[assignment]
    """A signed-out tab (`peer`, a SocketPeer class, with an empty User) on the test
    server, its socket closed with `closers`."""
    sio = await sio_connect(client, None, anonymous=True)
    closers.append(sio)
    return peer(sio, User("", "", ""))


class OnAir(NamedTuple):
    """A live that go_live started: the creator's media peer and the live:start ack."""

    creator: HeadlessCreator
    ack: dict[str, Any]

    @property
    def live_id(self) -> str:
        return str(self.ack["live"]["live_id"])


async def go_live(caller: Any, closers: list[Any], title: str = "hello", *,
                  size: tuple[int, int] = (320, 180), fps: float = 30) -> OnAir:
    """Go live through `live:start` from `caller` (a SocketPeer or a socketio.AsyncClient)
    with a synthetic headless creator, closed with `closers`; asserts the ack is ok."""
    creator = HeadlessCreator.synthetic(*size, fps)
    closers.append(creator)
    ack = await caller.call("live:start", {"title": title, "offer": await creator.offer()},
                            timeout=20)
    assert ack["ok"], ack
    await creator.accept_answer(ack["answer"])
    return OnAir(creator, ack)


async def refusal(client: Any, token: Any) -> dict[str, Any]:
    """Connect with `token` and return the connect_error data."""
    sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", errors.append)
    url = str(client.make_url("/"))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(url, auth=token if isinstance(token, dict) else {"token": token},
                          transports=["websocket"], wait_timeout=5)
    await sio.disconnect()
    assert errors, "no connect_error received"
    assert errors[0]["message"]  # a human-readable message beside the code
    return errors[0]["data"]
