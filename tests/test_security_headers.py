"""Every response carries the browser security headers (signaling/security_headers.py):
the rule's values, then a walk of every route of the real app (each method, signed in
and not, success or refusal), the static files, the router's own 404 and 405, and the
Socket.IO handshake."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web

from signaling.security_headers import (
    CSP_HEADER,
    content_security_policy,
    security_headers,
)
from signaling.web_pages import PAGES


def directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        name, *values = part.split()
        assert name not in out, f"{name} twice"
        out[name] = values
    return out


def test_the_policy_allows_no_inline_code_and_no_framing() -> None:
    csp = directives(content_security_policy("golive.example:8080"))
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["default-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    # Only this host's sockets, never any ws: anywhere.
    assert csp["connect-src"] == ["'self'", "ws://golive.example:8080",
                                  "wss://golive.example:8080"]
    assert csp["img-src"] == ["'self'", "data:"]
    every_value = [v for values in csp.values() for v in values]
    assert not [v for v in every_value if v.startswith("'unsafe") or v in ("*", "http:",
                                                                            "https:")]


@pytest.mark.parametrize("host", ["a; frame-ancestors *", "x y", "h'", "", "h:1/x"])
def test_a_host_header_never_writes_into_the_policy(host: str) -> None:
    csp = directives(content_security_policy(host))
    assert csp["connect-src"] == ["'self'"] and csp["frame-ancestors"] == ["'none'"]
    assert directives(content_security_policy("[::1]:8080"))["connect-src"] == [
        "'self'", "ws://[::1]:8080", "wss://[::1]:8080"]


def test_the_rule_names_every_header_and_hsts_only_over_https() -> None:
    plain = security_headers("h")
    assert plain["X-Content-Type-Options"] == "nosniff"
    assert plain["X-Frame-Options"] == "DENY"
    assert plain["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert plain["Cross-Origin-Opener-Policy"] == "same-origin"
    permissions = dict(item.split("=") for item in plain["Permissions-Policy"].split(", "))
    assert permissions["camera"] == permissions["microphone"] == "(self)"
    assert {v for k, v in permissions.items() if k not in ("camera", "microphone")} == {"()"}
    assert "Strict-Transport-Security" not in plain
    assert security_headers("h", secure=True)["Strict-Transport-Security"].startswith("max-age=")


def assert_secured(resp: Any, what: str) -> None:
    expected = security_headers(resp.url.raw_authority)
    got = {name: resp.headers.get(name) for name in expected}
    assert got == expected, f"{what} -> {resp.status}"


# A value for each route placeholder, so every route is reached.
PLACEHOLDERS = {"username": "nobody", "user_id": "0" * 16, "version": "0" * 16,
                "filename": "golive.css", "endpoint_id": "we_" + "0" * 16,
                "delivery_id": "wd_" + "0" * 20, "replay_id": "0" * 16,
                "session": "0" * 32}  # a WHIP or WHEP session


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PLACEHOLDERS[m.group(1)], path)


def walk(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) for every route the app serves; a static prefix gets one file."""
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        if "prefix" in info:  # add_static
            out.append((route.method, f"{info['prefix']}/golive.css"))
        else:
            path = info.get("path") or info.get("formatter")
            assert path, f"a route the walk cannot place: {route}"
            out.append((route.method, concrete(path)))
    return sorted(set(out))


async def test_every_route_answers_with_the_headers(client: Any) -> None:
    routes = walk(client.app)
    methods = {method for method, _ in routes}
    assert {"GET", "POST", "PATCH", "PUT", "DELETE"} <= methods
    paths = {path for _, path in routes}
    assert {concrete(page) for page in PAGES} <= paths and "/api/me" in paths
    reg = await client.post("/api/register", json={
        "username": "hdr", "display_name": "H", "password": "correct-horse-1",
        "birthdate": "1990-01-01"})
    assert_secured(reg, "POST /api/register")
    token = (await reg.json())["token"]
    for method, path in routes:
        if method == "HEAD" or path == "/api/signout":
            continue  # signing out would end the walk's session; it is walked last
        for headers in ({}, {"Authorization": f"Bearer {token}"}):
            resp = await client.request(method, path, headers=headers, json={})
            await resp.read()
            assert_secured(resp, f"{method} {path}")
    resp = await client.post("/api/signout", headers={"Authorization": f"Bearer {token}"})
    assert_secured(resp, "POST /api/signout")


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/no/such/page"),           # the router's 404
    ("DELETE", "/wallet"),              # the router's 405
    ("GET", "/static/../README.md"),    # a path the static route refuses
    ("GET", "/socket.io/?EIO=4&transport=polling"),  # Engine.IO's own answers
    ("GET", "/socket.io/?EIO=4&transport=websocket"),
])
async def test_answers_the_app_did_not_write_carry_them_too(client: Any, method: str,
                                                             path: str) -> None:
    resp = await client.request(method, path)
    await resp.read()
    assert_secured(resp, f"{method} {path}")


async def test_the_socket_io_websocket_upgrade_carries_them(client: Any) -> None:
    ws = await client.ws_connect("/socket.io/?EIO=4&transport=websocket")
    try:
        assert_secured(ws._response, "websocket upgrade")
    finally:
        await ws.close()


async def test_a_page_is_refused_inside_a_frame(client: Any) -> None:
    resp = await client.get("/")
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers[CSP_HEADER]
