"""Inputs that once reached a traceback: each gets a clear `invalid` (or a correct empty
page) over the real edges, with no traceback in the server log and nothing stored.

A real Socket.IO client and HTTP against the in-process app, and one unauthenticated
flood against a real `golive serve`; tests/test_input_rules.py calls the rules directly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import time
from typing import Any

import msgpack
import pytest
from redis.asyncio import Redis

from engine import keys
from engine.payments import SIGNATURE_HEADER, sign
from engine.stream_ids import SEQ_MAX
from signaling.app import create_app
from tests.support.engineio import raw_ack, raw_socket
from tests.support.http import post
from tests.support.peers import User, go_live, register, sio_connect
from tests.support.servers import ServerProcess
from tests.support.state import snapshot

MAX_ID = f"{SEQ_MAX}-{SEQ_MAX}"
MAX_DEPTH = 32  # engine/nesting.py


def auth(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records that carry a traceback or are errors: there must be none."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if r.exc_info or r.levelno >= logging.ERROR]


# --- over the Socket.IO edge ------------------------------------------------------------

async def test_time_cursors_must_be_finite(client: Any, redis_url: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    ann = await register(client, "ann")
    sio = await sio_connect(client, ann.token)
    before = await snapshot(redis_url)
    try:
        for event in ("dm:list", "dm:requests"):
            for value in (math.inf, -math.inf, math.nan, 1e300):
                ack = await sio.call(event, {"before": value}, timeout=5)
                assert ack["ok"] is False, (event, value, ack)
                assert ack["error"]["code"] == "invalid", (event, value, ack)
                assert ack["error"]["message"].endswith("at `$.before`"), ack
            ok = await sio.call(event, {"before": time.time()}, timeout=5)
            assert ok["ok"] and ok["conversations"] == [], ok
    finally:
        await sio.disconnect()
    assert await snapshot(redis_url) == before
    assert tracebacks(caplog) == []


async def dm_thread(client: Any) -> tuple[Any, Any, str, list[str]]:
    """ann and bob, friends with three messages from ann: (ann's socket, bob's,
    conversation id, message ids oldest first)."""
    ann, bob = await register(client, "ann"), await register(client, "bob")
    await client.post("/api/users/bob/follow", headers=auth(ann))
    await client.post("/api/users/ann/follow", headers=auth(bob))
    a, b = await sio_connect(client, ann.token), await sio_connect(client, bob.token)
    ids = []
    for text in ("one", "two", "three"):
        ack = await a.call("dm:send", {"to": bob.id, "text": text}, timeout=5)
        assert ack["ok"], ack
        ids.append(ack["message"]["id"])
        conversation = ack["conversation_id"]
    return a, b, conversation, ids


async def test_dm_history_cursors_at_the_ends_of_the_id_space(
        client: Any, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    a, b, conv, ids = await dm_thread(client)
    before = await snapshot(redis_url)

    async def page(**cursor: Any) -> Any:
        ack = await a.call("dm:history", {"conversation_id": conv, **cursor}, timeout=5)
        assert ack["ok"], (cursor, ack)
        return [m["id"] for m in ack["messages"]], ack["more"]

    try:
        assert await page(before="0-0") == ([], False)
        assert await page(after=MAX_ID) == ([], False)
        assert await page(before=MAX_ID) == (ids, False)
        assert await page(after="0-0") == (ids, False)
        assert await page(before=ids[0]) == ([], False)
        assert await page(after=ids[-1]) == ([], False)
        ms, seq = ids[2].split("-")
        assert await page(before=f"{int(ms):020d}-{seq}") == (ids[:2], False)  # leading zeros
        assert await page(before=ids[2], limit=1) == (ids[1:2], True)
        for cursor in ({"before": f"{SEQ_MAX + 1}-0"}, {"after": f"0-{SEQ_MAX + 1}"},
                       {"before": "\u0661-\u0661"}, {"after": "1-2\n"}, {"before": 5},
                       {"after": "9" * 5_000}):
            ack = await a.call("dm:history", {"conversation_id": conv, **cursor}, timeout=5)
            assert ack["error"]["code"] == "invalid", (cursor, ack)
            assert "at `$." in ack["error"]["message"], ack
        # dm:read and report:create take the same typed ids
        read = await b.call("dm:read", {"conversation_id": conv, "message_id": "0-0"}, timeout=5)
        assert read["error"]["code"] == "not_found", read
        read = await b.call("dm:read", {"conversation_id": conv, "message_id": MAX_ID},
                            timeout=5)
        assert read["error"]["code"] == "not_found", read
    finally:
        await a.disconnect()
        await b.disconnect()
    assert await snapshot(redis_url) == before
    assert tracebacks(caplog) == []


async def test_chat_history_after_the_greatest_id_is_an_empty_page(
        client: Any, caplog: pytest.LogCaptureFixture) -> None:
    cat = await register(client, "cat")
    sio = await sio_connect(client, cat.token)
    media: list[Any] = []
    try:
        live_id = (await go_live(sio, media, "t", size=(160, 90), fps=15)).live_id
        sent = await sio.call("chat:send", {"live_id": live_id, "text": "hi"}, timeout=5)
        assert sent["ok"], sent
        empty = await sio.call("chat:history", {"live_id": live_id, "after": MAX_ID}, timeout=5)
        assert empty["ok"] and empty["items"] == [] and empty["last"] == MAX_ID, empty
        assert not empty["more"]
        everything = await sio.call("chat:history", {"live_id": live_id, "after": "0-0"},
                                    timeout=5)
        assert [i["id"] for i in everything["items"]][-1] == sent["message"]["id"]
        bad = await sio.call("chat:history", {"live_id": live_id, "after": f"{SEQ_MAX + 1}-0"},
                             timeout=5)
        assert bad["error"]["code"] == "invalid", bad
        deleted = await sio.call("chat:delete", {"live_id": live_id,
                                                 "message_id": sent["message"]["id"]}, timeout=5)
        assert deleted["ok"] and deleted["deleted"] == sent["message"]["id"], deleted
        assert (await sio.call("live:end", {}, timeout=10))["ok"]
    finally:
        await sio.disconnect()
        for creator in media:
            await creator.close()
    assert tracebacks(caplog) == []


async def test_an_event_without_a_payload_is_refused_and_does_nothing(
        client: Any, redis: Redis, caplog: pytest.LogCaptureFixture) -> None:
    cat = await register(client, "cat")
    fan = await register(client, "fan")
    await client.post("/api/users/cat/follow", headers=auth(fan))  # a notification for cat
    sio = await sio_connect(client, cat.token)
    media: list[Any] = []
    try:
        await go_live(sio, media, "t", size=(160, 90), fps=15)
        unread = (await sio.call("notify:unread", {}, timeout=5))
        assert unread["ok"] and unread["unread"] == 1, unread
        for event in ("live:end", "notify:read_all", "session:whoami", "dm:list"):
            ack = await sio.call(event, timeout=5)  # no payload at all
            assert ack["ok"] is False and ack["error"]["code"] == "invalid", (event, ack)
            assert ack["error"]["message"] == ("the payload must be an object: send {} when "
                                               "there is nothing to say"), ack
        assert await redis.exists(keys.live(cat.id)) == 1  # the live goes on
        assert (await sio.call("notify:unread", {}, timeout=5)) == unread
        assert (await sio.call("live:end", {}, timeout=10))["ok"]
        assert await redis.exists(keys.live(cat.id)) == 0
    finally:
        await sio.disconnect()
        for creator in media:
            await creator.close()
    # an explicit nil is no object either
    session, ws = await raw_socket(client, cat.token)
    try:
        nil = msgpack.packb({"type": 2, "nsp": "/", "id": 3, "data": ["session:whoami", None]})
        ack = await raw_ack(ws, nil)
        assert ack["error"] == {"code": "invalid",
                                "message": "the payload must be an object, not NoneType"}
    finally:
        await ws.close()
        await session.close()
    assert tracebacks(caplog) == []


def nested_dict(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_deep_socket_payloads_are_invalid_or_dropped(
        client: Any, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    ann = await register(client, "ann")
    sio = await sio_connect(client, ann.token)
    before = await snapshot(redis_url)
    try:
        ack = await sio.call("profile:update", {"bio": nested_dict(MAX_DEPTH + 5)}, timeout=5)
        assert ack["error"]["code"] == "invalid", ack
        assert ack["error"]["message"] == "nesting too deep (more than 32 levels)"
        deep = nested_dict(400)  # under msgpack's own limits (packing 511, unpacking 1,024)
        ack = await sio.call("profile:update", {"bio": deep}, timeout=5)
        assert ack["error"]["code"] == "invalid", ack
    finally:
        await sio.disconnect()
    # deeper than msgpack's limit: not a packet at all; dropped, the connection stays
    session, ws = await raw_socket(client, ann.token)
    try:
        await ws.send_bytes(b"\x84\xa4type\x02\xa3nsp\xa1/\xa2id\x07\xa4data\x92"
                            b"\xaeprofile:update" + b"\x81\xa1a" * 5_000 + b"\x01")
        good = msgpack.packb({"type": 2, "nsp": "/", "id": 9, "data": ["session:whoami", {}]})
        assert (await raw_ack(ws, good))["ok"] is True
    finally:
        await ws.close()
        await session.close()
    assert await snapshot(redis_url) == before
    assert tracebacks(caplog) == []


# --- over HTTP ----------------------------------------------------------------------------

async def wallet_with_entries(client: Any, n: int) -> User:
    ann = await register(client, "ann")
    for i in range(n):
        resp = await client.post("/api/coins/checkout", headers=auth(ann),
                                 json={"package_id": "coins_70", "checkout_id": f"chk-0000000{i}"})
        assert resp.status == 200, await resp.text()
    return ann


async def wallet_history(client: Any, user: User, query: str) -> tuple[int, Any]:
    resp = await client.get(f"/api/wallet/history?{query}", headers=auth(user))
    return resp.status, await resp.json()


async def test_wallet_history_cursors_at_the_ends_of_the_id_space(
        client: Any, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    ann = await wallet_with_entries(client, 3)
    before = await snapshot(redis_url)
    status, everything = await wallet_history(client, ann, "")
    ids = [i["id"] for i in everything["items"]]
    assert status == 200 and len(ids) == 3
    assert await wallet_history(client, ann, "before=0-0") == (
        200, {"ok": True, "items": [], "more": False})
    status, body = await wallet_history(client, ann, f"before={MAX_ID}")
    assert status == 200 and [i["id"] for i in body["items"]] == ids
    status, body = await wallet_history(client, ann, f"before={ids[-1]}")
    assert status == 200 and body["items"] == []
    for query in (f"before={SEQ_MAX + 1}-0", "before=%D9%A1-%D9%A1", f"before={'9' * 5_000}"):
        status, body = await wallet_history(client, ann, query)
        assert status == 400 and body["error"]["code"] == "invalid", (query, body)
        assert body["error"]["field"] == "before", (query, body)
    assert await snapshot(redis_url) == before
    assert tracebacks(caplog) == []


async def test_wallet_history_limit_is_length_bounded(
        client: Any, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    ann = await wallet_with_entries(client, 1)
    before = await snapshot(redis_url)
    for query in (f"limit={'9' * 5_000}", f"limit={'0' * 5_000}1", "limit=%C2%B2", "limit=0",
                  "limit=51"):
        status, body = await wallet_history(client, ann, query)
        assert status == 400 and body["error"] == {
            "code": "invalid", "message": "limit must be a whole number from 1 to 50",
            "field": "limit"}, (query, body)
    status, body = await wallet_history(client, ann, "limit=50")
    assert status == 200 and len(body["items"]) == 1
    assert await snapshot(redis_url) == before
    assert tracebacks(caplog) == []


DEEP_BODIES = (b"[" * 30_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
               b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))


# Routes that never read a body (the webhook reads its own: the next test).
NO_JSON_BODY = {"/api/signout", "/api/users/{username}/follow", "/api/users/{username}/block",
                "/api/payments/webhook",
                # webhooks' actions on one endpoint take no body (as follow and block)
                "/api/me/webhooks/{endpoint_id}/rotate", "/api/me/webhooks/{endpoint_id}/test",
                "/api/me/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver",
                "/api/me/avatar"}  # the raw image is the body (tests/test_avatars.py)


async def test_deep_json_is_refused_by_every_json_route(
        client: Any, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    ann = await register(client, "ann")
    # Every route that may take a body, from the router itself: a route added later is
    # covered too.
    routes = sorted({(r.method, r.resource.canonical) for r in client.app.router.routes()
                     if r.method in ("POST", "PATCH", "PUT")
                     and r.resource.canonical.startswith("/api/")
                     and r.resource.canonical not in NO_JSON_BODY})
    assert len(routes) >= 5  # register, signin, me, checkout, cashout
    before = await snapshot(redis_url)
    caplog.clear()
    for method, path in routes:
        for raw in DEEP_BODIES:
            resp = await client.request(method, path, data=raw, headers={
                **auth(ann), "Content-Type": "application/json"})
            body = await resp.json()
            assert (resp.status, body["error"]["code"]) == (400, "invalid"), (path, body)
            assert body["error"]["message"] == "the body nests deeper than 32 levels", body
    lines = [r for r in caplog.records if r.getMessage() == "request body nested too deep"]
    assert len(lines) == len(routes) * len(DEEP_BODIES)  # one line each
    assert tracebacks(caplog) == []
    assert await snapshot(redis_url) == before


async def test_deep_json_to_the_configured_webhook_is_invalid(
        aiohttp_client: Any, settings: Any, redis_url: str, redis: Redis,
        caplog: pytest.LogCaptureFixture) -> None:
    secret = "whsec_" + "k" * 32
    client = await aiohttp_client(create_app(dataclasses.replace(
        settings, payment_webhook_secret=secret)))
    before = await snapshot(redis_url)
    for raw in DEEP_BODIES:
        resp = await client.post("/api/payments/webhook", data=raw, headers={
            SIGNATURE_HEADER: sign(secret, raw, int(time.time()))})
        body = await resp.json()
        assert (resp.status, body["error"]["code"]) == (400, "invalid"), body
    assert await snapshot(redis_url) == before
    assert tracebacks(caplog) == []


async def test_signed_webhook_ids_with_lone_surrogates_are_invalid(
        aiohttp_client: Any, settings: Any, redis_url: str, redis: Redis,
        caplog: pytest.LogCaptureFixture) -> None:
    """A signed payment.succeeded whose user_id is "\\ud800..." (JSON reads a lone
    surrogate) was a 500 from the account lookup, which the provider retries for ever
    (found by bench/fuzz.py): `invalid`, nothing stored, no traceback."""
    secret = "whsec_" + "k" * 32
    client = await aiohttp_client(create_app(dataclasses.replace(
        settings, payment_webhook_secret=secret)))
    package = (await (await client.get("/api/coins/packages")).json())["packages"][0]
    before = await snapshot(redis_url)
    for field in ("user_id", "package_id", "currency"):
        data = {"payment_id": "pay_surrogate1", "user_id": "0123456789abcdef",
                "package_id": package["id"], "amount_cents": package["price_cents"],
                "currency": package["currency"], field: "@@"}
        for odd in ('"\\ud800abc"', '"a\\u0000b"', '"\\udfff"'):
            raw = json.dumps({"type": "payment.succeeded", "data": data}).replace(
                '"@@"', odd).encode()
            resp = await client.post("/api/payments/webhook", data=raw, headers={
                SIGNATURE_HEADER: sign(secret, raw, int(time.time()))})
            body = await resp.json()
            assert (resp.status, body["error"]["code"]) == (400, "invalid"), (field, odd, body)
            assert body["error"]["field"] == field
    raw = json.dumps({"type": "payout.paid", "data": {"payout_id": "@@"}}).replace(
        '"@@"', '"\\ud800"').encode()
    resp = await client.post("/api/payments/webhook", data=raw, headers={
        SIGNATURE_HEADER: sign(secret, raw, int(time.time()))})
    assert resp.status == 400
    assert await snapshot(redis_url) == before
    assert tracebacks(caplog) == []


async def test_an_unauthenticated_deep_json_flood_logs_one_line_each(
        live_server: ServerProcess) -> None:
    requests = 0
    for path in ("/api/register", "/api/signin"):
        for raw in DEEP_BODIES:
            status, body = await asyncio.to_thread(post, live_server.url + path, raw)
            assert (status, body["error"]["code"]) == (400, "invalid"), (path, body)
            requests += 1
    status, _ = await asyncio.to_thread(post, live_server.url + "/api/signin",
                                        b'{"username": "nobody", "password": "password-1"}')
    assert status == 401  # still serving
    log = live_server.log()
    assert "Traceback" not in log and "RecursionError" not in log
    lines = [json.loads(line) for line in log.splitlines() if "nested too deep" in line]
    assert len(lines) == requests
    assert all(line["level"] == "warning" and "exc" not in line for line in lines)


def raw_http(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """POST bytes exactly as given (http.client: no encoding of its own); status, body."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


async def test_bodies_that_cannot_be_decoded_are_invalid_in_one_line(
        live_server: ServerProcess) -> None:
    """Content-Encoding: gzip over bytes that are not gzip was a 500 with two tracebacks
    (golive's "api handler failed", then aiohttp's "Unhandled exception" as it drained
    the body); an encoding aiohttp cannot decode at all was its own traceback at ERROR.
    Anyone could fill the log that way (found by bench/fuzz.py): a 400, one warning line."""
    json_type = {"Content-Type": "application/json"}
    for path, encoding in (("/api/signin", "gzip"), ("/api/register", "deflate"),
                           ("/api/payments/webhook", "gzip")):
        status, body = await asyncio.to_thread(
            raw_http, live_server.url, path, b"not compressed at all",
            {**json_type, "Content-Encoding": encoding})
        assert status == 400, (path, body)
        assert json.loads(body)["error"]["code"] == "invalid", body
    status, body = await asyncio.to_thread(
        raw_http, live_server.url, "/api/signin", b"x", {**json_type, "Content-Encoding": "br"})
    assert status == 400, body  # aiohttp's own answer: it has no brotli decoder
    assert (await asyncio.to_thread(post, live_server.url + "/api/signin", {
        "username": "nobody", "password": "wrong-password"}))[0] == 401
    lines = [json.loads(line) for line in live_server.log().splitlines()
             if line.startswith("{")]
    assert [x for x in lines if "exc" in x or x["level"] in ("error", "critical")] == []
    unreadable = [x for x in lines if x["msg"] == "request body unreadable"]
    assert len(unreadable) == 3



def polling(url: str, method: str, sid: str | None, body: bytes | None = None
            ) -> tuple[int, bytes]:
    """One Engine.IO long-polling request, as curl would send it."""
    import urllib.error
    import urllib.request

    query = "EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")
    request = urllib.request.Request(f"{url}/socket.io/?{query}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


async def test_long_polling_garbage_and_closed_sessions_log_no_traceback(
        live_server: ServerProcess) -> None:
    """A long-polling POST engineio cannot decode was "post request handler error" with a
    traceback at ERROR, each request, for anyone (a GET hands out a session); a request
    for a session its client had just closed was a 500 (KeyError in engineio). Now: the
    payload dropped in one warning line; 400 "Invalid session" (found by bench/fuzz.py)."""
    status, opened = await asyncio.to_thread(polling, live_server.url, "GET", None)
    assert status == 200 and opened.startswith(b"0"), opened
    sid = json.loads(opened[1:])["sid"]
    for garbage in (b"garbage", b"4\x00\xff", b"\x1e\x1e", b"7x"):
        status, _ = await asyncio.to_thread(polling, live_server.url, "POST", sid, garbage)
        assert status in (200, 400)
    status, _ = await asyncio.to_thread(polling, live_server.url, "POST", sid, b"1")  # close
    for method, body in (("POST", b"2"), ("GET", None), ("POST", b"40")):
        status, answer = await asyncio.to_thread(polling, live_server.url, method, sid, body)
        assert status == 400, (method, status, answer)
    lines = [json.loads(line) for line in live_server.log().splitlines()
             if line.startswith("{")]
    assert [x for x in lines if "exc" in x] == []
    assert len([x for x in lines if x["msg"].startswith("undecodable polling payload")]) == 4
