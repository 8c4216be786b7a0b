"""The authorization matrix (tests/support/authz_matrix.py) walked against a real server:
one world (a creator live, viewers, a ban, a block, a minor, another creator live), every
event and route tried by every principal, every cell checked, every miss reported at once.
A second test keeps the table covering every registered event and route; a third keeps
docs/security.md showing the table."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import socketio
from PIL import Image
from redis.asyncio import Redis

from engine import keys
from signaling.app import create_app
from signaling.appkeys import GATEWAY, SERVER, SERVICES
from signaling.config import Settings
from signaling.session_sweep import SessionSweep
from tests.support.authz_matrix import (
    HTTP_ROWS,
    PRINCIPALS,
    ROWS,
    SOCKET_ROWS,
    Row,
    covered_events,
    covered_routes,
    markdown,
)
from tests.support.peers import SocketPeer, User, go_live, refusal, register, sio_connect
from tests.support.poll import poll

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-1"
HTTP_CODES = {400: "invalid", 401: "unauthorized", 402: "insufficient_funds",
              403: "forbidden", 404: "not_found", 409: "conflict", 429: "rate_limited",
              503: "unavailable", 500: "internal"}


def seventeen() -> str:
    """A birthdate 17 and a half years ago."""
    return (dt.date.today() - dt.timedelta(days=int(17.5 * 365.25))).isoformat()


class Fill(dict[str, Any]):
    """The world's values for templates; {uniq} is new on every use."""

    def __missing__(self, key: str) -> Any:
        if key == "uniq":
            return secrets.token_hex(8)
        raise KeyError(key)


def filled(value: Any, world: Fill) -> Any:
    if isinstance(value, str):
        return value.format_map(world)
    if isinstance(value, dict):
        return {k: filled(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [filled(v, world) for v in value]
    return value


@dataclass
class World:
    fill: Fill
    users: dict[str, User]
    sockets: dict[str, socketio.AsyncClient | None] = field(default_factory=dict)
    connects: dict[str, str] = field(default_factory=dict)   # principal -> connect outcome
    tokens: dict[str, str | None] = field(default_factory=dict)  # HTTP bearer per principal
    misses: list[str] = field(default_factory=list)  # cells of the setup that went wrong
    # A value -> the principals who may see it in an answer (leak check of every cell).
    private: dict[str, set[str]] = field(default_factory=dict)
    # Values an owner's answer must show at least once: the leak check can see them.
    must_see: list[str] = field(default_factory=list)


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Settings, redis: Redis) -> Any:
    cfg = dataclasses.replace(settings, anonymous_event_rate=200.0, anonymous_event_burst=500,
                              event_burst=500, payment_webhook_secret="whsec_" + "a" * 32)
    return await aiohttp_client(create_app(cfg))


async def ack(peer: Any, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    reply = await peer.call(event, payload)
    assert reply["ok"], (event, payload, reply)
    return reply  # type: ignore[no-any-return]


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 120, 200)).save(out, "PNG")
    return out.getvalue()


async def build_world(client: Any, closers: list[Any], redis: Redis) -> World:
    """The one world every cell is tried in (the module docstring of authz_matrix)."""
    users: dict[str, User] = {}
    births: dict[str, str] = {}
    for day, who in enumerate(("creator", "other_creator", "viewer", "banned", "blocked",
                               "minor", "friend", "troll", "signed_out", "blocked_http"), 1):
        # each adult a birthdate of their own: a leak names whose it is
        births[who] = seventeen() if who == "minor" else f"1990-01-{day:02}"
        users[who] = await register(client, f"az_{who}", birthdate=births[who])
    world = World(Fill(), users)
    # What only its owners may be answered: birthdates, tokens and their session ids;
    # password hashes and the password itself, nobody.
    world.private[PASSWORD] = set()
    for who, user in users.items():
        owner = {who} if who in PRINCIPALS else set()
        world.private[births[who]] = owner
        world.private[user.token] = owner
        world.private[jwt.decode(user.token, options={"verify_signature": False})["sid"]] = owner
        world.private[await redis.hget(keys.user(user.id), "password_hash")] = set()

    async def tab(who: str) -> SocketPeer:
        sio = await sio_connect(client, users[who].token)
        closers.append(sio)
        return SocketPeer(sio, users[who])

    # Both creators live; each principal's socket is a second tab.
    creator_studio, other_studio = await tab("creator"), await tab("other_creator")
    on_air = await go_live(creator_studio, closers, "authz", size=(160, 96), fps=5)
    other_air = await go_live(other_studio, closers, "other", size=(160, 96), fps=5)
    peers = {who: await tab(who) for who in ("viewer", "banned", "blocked", "minor", "creator",
                                             "other_creator", "troll", "friend",
                                             "blocked_http")}
    anonymous = await sio_connect(client, None, anonymous=True)
    closers.append(anonymous)
    creator = users["creator"]
    live_id = on_air.live_id

    # Coins for the adults who send gifts; follows; everyone but the troll and the friend
    # joins the live (chat-only); then the ban and the block.
    viewer_checkout = "authz_" + secrets.token_hex(8)
    for who in ("viewer", "other_creator"):
        resp = await client.post("/api/coins/checkout", json={
            "package_id": "coins_70", **({"checkout_id": viewer_checkout}
                                         if who == "viewer" else {})},
            headers={"Authorization": f"Bearer {users[who].token}"})
        assert resp.status == 200, await resp.text()
    for who in ("viewer", "banned", "blocked", "minor", "other_creator"):
        await ack(peers[who], "user:follow", {"user_id": creator.id})
    join = {"user_id": creator.id, "media": False}
    assert (await anonymous.call("room:join", join, timeout=20))["ok"]
    for who in ("viewer", "banned", "blocked", "minor", "other_creator", "troll",
                "blocked_http"):
        await ack(peers[who], "room:join", join)
    line1 = await ack(peers["troll"], "chat:send", {"live_id": live_id, "text": "one"})
    line2 = await ack(peers["troll"], "chat:send", {"live_id": live_id, "text": "two"})
    other_line = await ack(peers["other_creator"], "chat:send",
                           {"live_id": other_air.live_id, "text": "mine"})
    await ack(peers["creator"], "chat:ban", {"user_id": users["banned"].id})
    await ack(peers["creator"], "user:block", {"user_id": users["blocked"].id})
    # The same block through HTTP: the viewer who had joined is out of the live too.
    resp = await client.post(f"/api/users/{users['blocked_http'].username}/block",
                             headers={"Authorization": f"Bearer {creator.token}"})
    assert resp.status == 200, await resp.text()
    for event, payload in (("chat:send", {"live_id": live_id, "text": "x"}),
                           ("live:like", {"live_id": live_id, "count": 1})):
        reply = await peers["blocked_http"].call(event, payload)
        if reply.get("ok") or reply["error"]["code"] != "forbidden":
            world.misses.append(f"{event} x a viewer blocked over HTTP after joining: "
                                f"expected forbidden, got {reply}")

    # The creator's own things the others must not reach: a conversation with a friend,
    # a notification, a photo.
    whisper = "psst-" + secrets.token_hex(6)
    sent = await ack(peers["friend"], "dm:send", {"to": creator.id, "text": whisper})
    world.private[whisper] = {"creator"}
    world.must_see += [whisper, births["viewer"], births["minor"]]
    hidden_word = "zebra" + secrets.token_hex(3)  # the creator's keyword filter is theirs
    await ack(peers["creator"], "chat:settings", {"filter_words": [hidden_word]})
    world.private[hidden_word] = {"creator"}
    world.must_see.append(hidden_word)
    notes = await poll(lambda: _notifications(peers["creator"]), what="a notification")
    resp = await client.put("/api/me/avatar", data=png(),
                            headers={"Authorization": f"Bearer {creator.token}"})
    body = await resp.json()
    assert resp.status == 200, body
    version = body["user"]["avatar"].rsplit("/", 1)[1].removesuffix(".webp")

    # A signed-out token: its open socket is closed, and it connects no more.
    gone = users["signed_out"]
    gone_tab = await sio_connect(client, gone.token)
    closers.append(gone_tab)
    resp = await client.post("/api/signout", headers={"Authorization": f"Bearer {gone.token}"})
    assert resp.status == 200, await resp.text()
    await poll(lambda: not gone_tab.connected, what="the signed-out socket closed")
    refused = await refusal(client, gone.token)
    assert refused["reason"] == "revoked", refused

    world.fill.update(
        live_id=live_id, creator_id=creator.id, creator_name=creator.username,
        troll_id=users["troll"].id, friend_name=users["friend"].username,
        minor_id=users["minor"].id, minor_name=users["minor"].username,
        other_line_id=other_line["message"]["id"],
        line1_id=line1["message"]["id"], line2_id=line2["message"]["id"],
        conv_id=sent["conversation_id"], dm_id=sent["message"]["id"],
        notification_id=notes[0]["id"], avatar_version=version, png=png(),
        sdp="v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",  # no media: invalid
        viewer_checkout=viewer_checkout)
    world.sockets = {"anonymous": anonymous, "signed_out": None,
                     **{who: peers[who].sio for who in PRINCIPALS[2:]}}
    world.connects = {p: "ok" for p in PRINCIPALS} | {"signed_out": str(refused["code"])}
    world.tokens = {"anonymous": None, **{who: users[who].token for who in PRINCIPALS[1:]}}
    return world


async def _notifications(peer: SocketPeer) -> list[dict[str, Any]]:
    return list((await peer.call("notify:list", {}))["notifications"])


async def event_outcome(world: World, principal: str, r: Row) -> tuple[str, str, str]:
    """(code, detail, the answer as text) of one event sent by one principal."""
    sio = world.sockets[principal]
    if sio is None:
        return world.connects[principal], "refused at connect", ""
    reply = await sio.call(r.name, filled(r.payload, world.fill), timeout=20)
    text = json.dumps(reply)
    if reply.get("ok") and not (r.verdict and reply[r.verdict]):
        return "ok", "", text
    error = reply[r.verdict] if reply.get("ok") else reply["error"]
    return str(error["code"]), f"{error.get('reason', '')} {error['message']}".strip(), text


async def route_outcome(client: Any, world: World, principal: str,
                        r: Row) -> tuple[str, str, str]:
    """(code, detail, the body as text) of one HTTP request with one principal's
    credentials."""
    if r.name == "GET /socket.io/":
        return world.connects[principal], "Socket.IO connect", ""
    method, _, canonical = r.name.partition(" ")
    token = world.tokens[principal]
    if r.fresh_token and principal in world.users and principal != "signed_out":
        resp = await client.post("/api/signin", json={
            "username": world.users[principal].username, "password": PASSWORD})
        token = (await resp.json())["token"]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kw: dict[str, Any] = {}
    if r.raw:
        kw["data"] = world.fill[r.payload]
        if r.content_type:
            headers["Content-Type"] = r.content_type
    elif r.payload is not None:
        kw["json"] = filled(r.payload, world.fill)
    resp = await client.request(method, filled(r.path or canonical, world.fill),
                                headers=headers, **kw)
    text = (await resp.read()).decode(errors="replace")
    if resp.status < 400:
        return "ok", "", text
    if resp.content_type == "application/json":
        error = (await resp.json())["error"]
        return str(error["code"]), str(error.get("message", "")), text
    return HTTP_CODES.get(resp.status, f"http_{resp.status}"), text[:80], text


async def test_every_cell_of_the_authorization_matrix(app_client: Any, closers: list[Any],
                                                      redis: Redis) -> None:
    world = await build_world(app_client, closers, redis)
    misses = world.misses
    seen: set[str] = set()
    cells = 0
    for r in SOCKET_ROWS + HTTP_ROWS:
        for principal in PRINCIPALS:
            if r.is_route:
                got, detail, text = await route_outcome(app_client, world, principal, r)
            else:
                got, detail, text = await event_outcome(world, principal, r)
            cells += 1
            want = r.expected(principal)
            if got != want:
                misses.append(f"{r.key} x {principal}: expected {want}, got {got} ({detail})")
            leaked = [value for value, owners in world.private.items()
                      if principal not in owners and value in text]
            seen.update(value for value in world.must_see if value in text)
            if leaked:
                misses.append(f"{r.key} x {principal}: the answer holds another's private "
                              f"data {leaked}")
    assert cells == len(SOCKET_ROWS + HTTP_ROWS) * len(PRINCIPALS)
    assert sorted(set(world.must_see) - seen) == [], "the leak check never saw these"
    # The checkout cell sent coins: 10**9 and price_cents: 0; the catalog's 70 coins were
    # credited (70 in the setup, 70 in the cell, 1 spent on a rose).
    resp = await app_client.get("/api/wallet", headers={
        "Authorization": f"Bearer {world.users['viewer'].token}"})
    balances = (await resp.json())["balances"]
    if balances["coins"] != 70 + 70 - 1:
        misses.append(f"the viewer's coins are {balances['coins']}, not 139")
    assert not misses, f"{len(misses)} of {cells} cells differ:\n" + "\n".join(misses)


async def test_a_socket_whose_session_ended_elsewhere_is_closed(client: Any,
                                                                closers: list[Any]) -> None:
    """The signed-out token's open socket when the sign-out's word never reached its node
    (the session record deleted, no END_SESSION): the session sweep closes it, and no
    other socket."""
    gone, kept = await register(client, "gone"), await register(client, "kept")
    gone_tab, kept_tab = await sio_connect(client, gone.token), await sio_connect(client,
                                                                                 kept.token)
    anonymous = await sio_connect(client, None, anonymous=True)
    closers.extend([gone_tab, kept_tab, anonymous])
    session_id = jwt.decode(gone.token, options={"verify_signature": False})["sid"]
    await client.app[SERVICES].sessions.revoke(session_id)
    sweep = next(f for f in client.app[SERVER].features if isinstance(f, SessionSweep))
    assert await sweep.sweep_once() == [session_id]
    await poll(lambda: not gone_tab.connected, what="the revoked session's socket closed")
    assert (await kept_tab.call("session:whoami", {}))["ok"]
    assert (await anonymous.call("discover:watch", {}))["ok"]
    assert await sweep.sweep_once() == []


def test_the_matrix_covers_every_event_and_route() -> None:
    app = create_app(Settings(secret="x" * 40))
    sio = app[GATEWAY].sio
    # Socket.IO reaches the app only through the gateway's connect check and its one
    # dispatcher ("*": auth, rate, schema, then the registered event): a handler put on
    # the server directly would skip them, and has no row.
    assert {ns: sorted(h) for ns, h in sio.handlers.items()} == {
        "/": ["*", "connect", "disconnect"]}
    assert not sio.namespace_handlers
    events = set(app[GATEWAY].event_names)
    routes = {f"{route.method} {route.resource.canonical}" for route in app.router.routes()
              if route.method != "HEAD" and route.resource is not None}
    assert sorted(events - covered_events()) == [], "events with no row in the matrix"
    assert sorted(covered_events() - events) == [], "rows for events the server lacks"
    assert sorted(routes - covered_routes()) == [], "routes with no row in the matrix"
    assert sorted(covered_routes() - routes) == [], "rows for routes the server lacks"


def test_docs_security_shows_the_matrix() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    section = text.split("## Authorization", 1)[1].split("\n## ", 1)[0]
    cells = f"{len(ROWS)} rows x {len(PRINCIPALS)} principals = {len(ROWS) * len(PRINCIPALS)} cells"
    assert cells in section, f"docs/security.md should say: {cells}"
    assert markdown() in section, ("docs/security.md's table differs from the test table: "
                                   "run `python -m tests.support.authz_matrix docs/security.md`")
