"""The JSON HTTP API through a real aiohttp server and Redis."""

from __future__ import annotations

import datetime as dt
from typing import Any

from redis.asyncio import Redis

from tests.support.peers import register


async def test_register_sign_in_me_sign_out(client: Any) -> None:
    alice = await register(client, "alice")
    resp = await client.post("/api/signin", json={"username": "ALICE",
                                                 "password": "correct-horse-1"})
    body = await resp.json()
    assert resp.status == 200 and body["user"]["id"] == alice.id
    token = body["token"]
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert (await me.json())["user"]["birthdate"] == "1990-01-01"
    out = await client.post("/api/signout", headers={"Authorization": f"Bearer {token}"})
    assert out.status == 200
    again = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert again.status == 401
    assert (await again.json())["error"] == {
        "code": "unauthorized", "message": "the session has ended; sign in again",
        "reason": "revoked"}
    # the other session (from registration) still works
    other = await client.get("/api/me", headers={"Authorization": f"Bearer {alice.token}"})
    assert other.status == 200


async def test_wrong_password_and_unknown_user_look_the_same(client: Any) -> None:
    await register(client, "alice")
    bodies = []
    for name, pw in (("alice", "nope-nope-1"), ("ghost", "nope-nope-1")):
        resp = await client.post("/api/signin", json={"username": name, "password": pw})
        assert resp.status == 401
        bodies.append(await resp.json())
    assert bodies[0] == bodies[1]


async def test_bad_registrations(client: Any, redis: Redis) -> None:
    await register(client, "taken")
    keys_before = sorted(await redis.keys("*"))
    good = {"username": "newbie", "display_name": "N", "password": "password-1",
            "birthdate": "1990-01-01"}
    cases: list[tuple[Any, int, str]] = [
        ({**good, "username": "TAKEN"}, 409, "conflict"),
        ({**good, "username": "no spaces"}, 400, "invalid"),
        ({**good, "username": 12345}, 400, "invalid"),
        ({**good, "extra": True}, 400, "invalid"),
        ({k: v for k, v in good.items() if k != "password"}, 400, "invalid"),
        ({**good, "display_name": "x" * 1_000_000}, 400, "invalid"),
        ({**good, "birthdate": "2020-01-01"}, 403, "forbidden"),
        ([1, 2, 3], 400, "invalid"),
    ]
    for payload, status, code in cases:
        resp = await client.post("/api/register", json=payload)
        body = await resp.json()
        assert (resp.status, body["error"]["code"]) == (status, code), (payload, body)
    resp = await client.post("/api/register", data=b"\xff\xfe{not json")
    assert resp.status == 400
    assert sorted(await redis.keys("*")) == keys_before


async def test_profiles_and_graph_over_http(client: Any) -> None:
    alice = await register(client, "alice")
    bob = await register(client, "bob")
    auth = {"Authorization": f"Bearer {bob.token}"}
    anon = await (await client.get("/api/users/Alice")).json()
    assert anon["user"]["username"] == "alice" and "relation" not in anon
    assert "birthdate" not in anon["user"]
    followed = await (await client.post("/api/users/alice/follow", headers=auth)).json()
    assert followed["counts"]["followers"] == 1 and followed["relation"]["following"]
    seen = await (await client.get("/api/users/alice", headers=auth)).json()
    assert seen["relation"]["following"] and not seen["is_self"]
    await client.delete("/api/users/alice/follow", headers=auth)
    blocked = await (await client.post("/api/users/alice/block", headers=auth)).json()
    assert blocked["relation"]["blocking"]
    refused = await client.post("/api/users/bob/follow",
                                headers={"Authorization": f"Bearer {alice.token}"})
    assert refused.status == 403
    missing = await client.get("/api/users/nobody")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
    noauth = await client.post("/api/users/alice/follow")
    assert noauth.status == 401
    patched = await client.patch("/api/me", json={"bio": "hello"}, headers=auth)
    assert (await patched.json())["user"]["bio"] == "hello"


async def test_sign_in_is_rate_limited_per_address(aiohttp_client: Any, settings: Any,
                                                   redis: Redis) -> None:
    from signaling.app import create_app

    settings.auth_rate, settings.auth_burst = 0.01, 3
    client = await aiohttp_client(create_app(settings))
    statuses = []
    for _ in range(5):
        resp = await client.post("/api/signin", json={"username": "x" * 3, "password": "y" * 8})
        statuses.append(resp.status)
    assert statuses == [401, 401, 401, 429, 429]
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await resp.json())["error"]["retry_after"] > 0


async def test_healthz_and_metrics(client: Any) -> None:
    health = await client.get("/healthz")
    assert health.status == 200 and (await health.json())["ok"] is True
    await register(client, "alice")
    text = await (await client.get("/metrics")).text()
    assert "golive_sockets_connected 0.0" in text
    assert "golive_redis_rtt_seconds_count" in text
    assert 'golive_fanout_path{path="native"} 1.0' in text  # the extension is built here
    assert 'golive_http_requests_total{route="/api/register",status="201"} 1.0' in text


async def test_unknown_api_route_is_json(client: Any) -> None:
    resp = await client.get("/api/nope")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"


async def test_an_empty_sign_up_names_the_first_missing_field(client: Any) -> None:
    """A blank form: a sentence a person reads and the field to mark, not the
    validator's `Expected `str` of length >= 1 - at `$.username``."""
    resp = await client.post("/api/register", json={
        "username": "", "display_name": "", "password": "", "birthdate": ""})
    body = await resp.json()
    assert resp.status == 400
    assert body["error"] == {"code": "invalid", "message": "Username is required",
                             "field": "username"}
    resp = await client.post("/api/register", json={
        "username": "ann", "display_name": "", "password": "", "birthdate": ""})
    assert (await resp.json())["error"]["field"] == "display_name"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_me_tells_a_minor_that_messages_need_16(client: Any) -> None:
    kid = await register(client, "kid", birthdate=f"{dt.date.today().year - 15}-01-01")
    adult = await register(client, "ann")
    kid_me = await (await client.get("/api/me", headers=auth(kid.token))).json()
    assert kid_me["messages"] == {"ok": False, "error": {
        "code": "forbidden", "message": "you must be 16 or older to send direct messages",
        "reason": "age"}}
    assert (await (await client.get("/api/me", headers=auth(adult.token))).json())[
        "messages"] == {"ok": True}
