"""Frames and event names a Socket.IO client would never send: the catch-all's own name
"*", and websocket text frames that are no Engine.IO packet. Each is refused or dropped
with the caller's own identity; the connection stays open; no traceback."""

from __future__ import annotations

import logging
from typing import Any

import msgpack
import pytest

from signaling.socketio_private import is_odd_event_name
from tests.support.engineio import raw_ack, raw_socket
from tests.support.peers import register, sio_connect


def test_odd_event_names_are_named_by_one_rule() -> None:
    reserved = ["connect", "disconnect"]
    for odd in ("*", "connect", "disconnect", 7, None, [1], {"a": 1}):
        assert is_odd_event_name(odd, reserved), odd
    for fine in ("chat:send", "x:y", "**", "connect:me"):
        assert not is_odd_event_name(fine, reserved), fine


def _event(ack_id: int, *data: Any) -> bytes:
    return msgpack.packb({"type": 2, "nsp": "/", "id": ack_id, "data": list(data)})


async def test_the_catch_all_name_cannot_spend_another_connections_bucket(
        aiohttp_client: Any, settings: Any, redis: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    from signaling.app import create_app

    settings.event_rate, settings.event_burst = 0.5, 6  # (`redis` flushed the store)
    client = await aiohttp_client(create_app(settings))
    alice = await register(client, "alice")
    bob = await register(client, "bob")
    victim = await sio_connect(client, bob.token)
    session, ws = await raw_socket(client, alice.token)
    try:
        victim_sid = victim.get_sid()
        acks = [await raw_ack(ws, _event(10 + i, "*", victim_sid)) for i in range(8)]
        codes = [a["error"]["code"] for a in acks]
        # answered as an unknown event of the CALLER: invalid, then the caller's own limit
        assert codes[0] == "invalid" and codes[-1] == "rate_limited", codes
        assert (await victim.call("session:whoami", {}, timeout=5))["ok"]
        # odd shapes of the same name: an ack each, never unavailable
        assert (await raw_ack(ws, _event(30, "*", {})))["error"]["code"] in (
            "invalid", "rate_limited")
        assert (await raw_ack(ws, _event(31, "*")))["error"]["code"] in (
            "invalid", "rate_limited")
    finally:
        await ws.close()
        await session.close()
        await victim.disconnect()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_the_catch_all_name_is_answered_invalid(client: Any) -> None:
    alice = await register(client, "alice")
    sio = await sio_connect(client, alice.token)
    try:
        for args in ({}, "someone-else", None):
            ack = await sio.call("*", args, timeout=5)
            assert ack["ok"] is False and ack["error"]["code"] == "invalid", ack
        assert (await sio.call("session:whoami", {}, timeout=5))["ok"]
    finally:
        await sio.disconnect()


async def test_text_frames_that_are_no_engineio_packet_are_dropped(
        client: Any, caplog: pytest.LogCaptureFixture) -> None:
    alice = await register(client, "alice")
    session, ws = await raw_socket(client, alice.token)
    try:
        for text in ("zzz", "", "b!!!not-base64", "x42[]"):
            await ws.send_str(text)
        ack = await raw_ack(ws, _event(9, "session:whoami", {}))
        assert ack["ok"] is True  # the connection is still open and served
        assert not ws.closed
    finally:
        await ws.close()
        await session.close()
    metrics = await (await client.get("/metrics")).text()
    assert "golive_undecodable_frames_total 4.0" in metrics
    assert sum("undecodable websocket frame" in r.getMessage() for r in caplog.records) == 4
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
