"""The pages' session in an HttpOnly cookie (signaling/session_cookie.py): set on a
sign-in that asks for it, read on HTTP and in the Socket.IO handshake, refused on a
cross-site state change, dropped on sign-out and when stale; bearer clients as before."""

from __future__ import annotations

from typing import Any

import pytest
import socketio

from signaling.session_cookie import COOKIE, cross_site_refusal
from tests.support.peers import sio_connect

PASSWORD = "correct-horse-1"


@pytest.mark.parametrize(("method", "origin", "fetch_site", "refused"), [
    ("GET", None, None, False),                       # reads change nothing
    ("HEAD", "https://evil.example", "cross-site", False),
    ("POST", "http://golive.test:8080", None, False),  # our own page
    ("PATCH", "https://golive.test:8080", None, False),  # https ended at a proxy
    ("POST", "http://evil.example", None, True),
    ("POST", "http://golive.test:8080.evil.example", None, True),
    ("POST", "http://golive.test", None, True),        # another port is another origin
    ("DELETE", "null", None, True),                    # a sandboxed frame or a file: page
    ("POST", None, "same-origin", False),
    ("PUT", None, "same-site", True),                  # a sibling subdomain
    ("POST", None, "cross-site", True),
    ("POST", None, None, True),                        # says nothing about where it is from
])
def test_the_cross_site_rule(method: str, origin: str | None, fetch_site: str | None,
                             refused: bool) -> None:
    why = cross_site_refusal(method, "golive.test:8080", origin, fetch_site)
    assert (why is not None) == refused, why


async def register(client: Any, username: str, **extra: Any) -> Any:
    return await client.post("/api/register", json={
        "username": username, "display_name": username.title(), "password": PASSWORD,
        "birthdate": "1990-01-01", **extra}, headers={"Origin": origin_of(client)})


def origin_of(client: Any) -> str:
    return str(client.make_url("/")).rstrip("/")


def cookie_of(resp: Any) -> Any:
    morsel = resp.cookies.get(COOKIE)
    assert morsel is not None, resp.headers.getall("Set-Cookie", [])
    return morsel


async def test_a_sign_in_for_the_pages_keeps_the_token_out_of_reach(client: Any) -> None:
    resp = await register(client, "ann", cookie=True)
    body = await resp.json()
    assert resp.status == 201 and "token" not in body and body["expires_at"] > 0
    morsel = cookie_of(resp)
    assert morsel["httponly"] is True and morsel["samesite"] == "Strict"
    assert morsel["path"] == "/" and not morsel["secure"]  # plain http: loopback dev
    assert 0 < int(morsel["max-age"]) <= 30 * 24 * 3600
    token = morsel.value
    # The cookie signs in reads; a state change needs this site's Origin.
    client.session.cookie_jar.clear()
    jar = {"Cookie": f"{COOKIE}={token}"}
    me = await client.get("/api/me", headers=jar)
    assert me.status == 200 and (await me.json())["user"]["username"] == "ann"
    for headers in ({}, {"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        resp = await client.patch("/api/me", json={"bio": "pwned"}, headers={**jar, **headers})
        error = (await resp.json())["error"]
        assert (resp.status, error["code"], error["reason"]) == (403, "forbidden",
                                                                 "cross_site"), headers
    for headers in ({"Origin": origin_of(client)}, {"Sec-Fetch-Site": "same-origin"}):
        resp = await client.patch("/api/me", json={"bio": "mine"}, headers={**jar, **headers})
        assert resp.status == 200, headers
    assert (await (await client.get("/api/me", headers=jar)).json())["user"]["bio"] == "mine"


async def test_bearer_clients_are_unchanged(client: Any) -> None:
    resp = await client.post("/api/register", json={
        "username": "bot", "display_name": "Bot", "password": PASSWORD,
        "birthdate": "1990-01-01"})
    body = await resp.json()
    assert resp.status == 201 and body["token"] and COOKIE not in resp.cookies
    auth = {"Authorization": f"Bearer {body['token']}"}
    # No Origin, as a script or a bot sends: a bearer token is no cookie to ride along.
    assert (await client.patch("/api/me", json={"bio": "beep"}, headers=auth)).status == 200
    # The bearer wins over a cookie of someone else.
    other = cookie_of(await register(client, "ann", cookie=True)).value
    client.session.cookie_jar.clear()
    me = await client.get("/api/me", headers={**auth, "Cookie": f"{COOKIE}={other}"})
    assert (await me.json())["user"]["username"] == "bot"


async def test_no_other_site_signs_a_visitor_in(client: Any) -> None:
    await register(client, "ann")
    client.session.cookie_jar.clear()
    for path, extra in (("/api/signin", {}), ("/api/register", {
            "display_name": "X", "birthdate": "1990-01-01"})):
        resp = await client.post(path, json={
            "username": "ann" if path == "/api/signin" else "zed", "password": PASSWORD,
            "cookie": True, **extra}, headers={"Origin": "http://evil.example"})
        assert resp.status == 403 and COOKIE not in resp.cookies, path
    resp = await client.post("/api/signin", json={
        "username": "ann", "password": PASSWORD, "cookie": True},
        headers={"Origin": origin_of(client)})
    assert resp.status == 200 and cookie_of(resp).value


async def test_sign_out_by_the_cookie_revokes_it_and_drops_it(client: Any) -> None:
    token = cookie_of(await register(client, "ann", cookie=True)).value
    client.session.cookie_jar.clear()
    jar = {"Cookie": f"{COOKIE}={token}"}
    resp = await client.post("/api/signout", headers={**jar, "Origin": origin_of(client)})
    assert resp.status == 200
    assert cookie_of(resp).value == "" and cookie_of(resp)["max-age"] == "0"
    # Replayed, the cookie is refused, and dropped again; a profile still reads as a visitor.
    me = await client.get("/api/me", headers=jar)
    assert me.status == 401 and (await me.json())["error"]["reason"] == "revoked"
    assert cookie_of(me)["max-age"] == "0"
    profile = await client.get("/api/users/ann", headers=jar)
    assert profile.status == 200 and cookie_of(profile)["max-age"] == "0"


async def test_the_socket_handshake_reads_the_cookie(client: Any, closers: list[Any]) -> None:
    token = cookie_of(await register(client, "ann", cookie=True)).value
    client.session.cookie_jar.clear()
    url = str(client.make_url("/"))
    sio = await sio_connect(url, None, headers={"Cookie": f"{COOKIE}={token}",
                                                "Origin": origin_of(client)})
    closers.append(sio)
    whoami = await sio.call("session:whoami", {}, timeout=5)
    assert whoami["user"]["username"] == "ann"
    # From another site's page, Engine.IO refuses the handshake before any cookie is read.
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio_connect(url, None, headers={"Cookie": f"{COOKIE}={token}",
                                              "Origin": "http://evil.example"})
    # Without a cookie or a token: missing, as before.
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio_connect(url, None)
