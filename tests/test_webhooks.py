"""Webhooks end to end: a real local HTTPS receiver (a self-signed certificate made with
openssl, trusted through GOLIVE_WEBHOOK_CA_FILE) gets signed deliveries of every event
from a real server; a receiver that was down gets them later with the same event id; a
node SIGKILLed mid-delivery has it delivered by the next node (at-least-once); a replay
of one event id is detectable; URLs that would reach private addresses are refused."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.webhook_rules import (
    EVENTS,
    FOLLOW,
    GIFT_RECEIVED,
    LIVE_ENDED,
    LIVE_STARTED,
    MESSAGE_REQUEST,
    NUDGE_RECEIVED,
)
from signaling.app import create_app
from signaling.config import Settings
from tests.support.peers import go_live, open_tab, register
from tests.support.poll import poll
from tests.support.servers import TEST_SECRET
from tests.support.webhook_receiver import Receiver


def hook_settings(settings: Settings, receiver: Receiver, **kw: Any) -> Settings:
    return dataclasses.replace(settings, webhook_allow_private=True,
                               webhook_ca_file=receiver.ca_file, **kw)


@pytest.fixture
async def receiver(tmp_path: Path) -> Any:
    r = Receiver(tmp_path)
    r.prepare()
    yield r
    await r.stop()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def add_endpoint(client: Any, token: str, url: str, **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/me/webhooks", json={"url": url, **body}, headers=auth(token))
    answer = await resp.json()
    assert resp.status == 201, answer
    return answer  # type: ignore[no-any-return]


async def deliveries(client: Any, token: str, endpoint_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/me/webhooks/{endpoint_id}/deliveries", headers=auth(token))
    answer = await resp.json()
    assert resp.status == 200, answer
    return answer["deliveries"]  # type: ignore[no-any-return]


async def test_every_event_reaches_the_receiver_signed_and_with_nothing_private(
        aiohttp_client: Any, settings: Settings, redis: Any, receiver: Receiver,
        closers: list[Any]) -> None:
    await receiver.start()
    client = await aiohttp_client(create_app(hook_settings(settings, receiver)))
    carol = await open_tab(client, "carol", closers)
    made = await add_endpoint(client, carol.user.token, receiver.url)
    receiver.secret = made["secret"]
    assert made["endpoint"]["events"] == list(EVENTS)
    assert made["secret"] not in json.dumps(made["endpoint"])
    listed = await (await client.get("/api/me/webhooks", headers=auth(carol.user.token))).json()
    assert [e["id"] for e in listed["endpoints"]] == [made["endpoint"]["id"]]
    assert made["secret"] not in json.dumps(listed)

    bob = await open_tab(client, "bob", closers, birthdate="1991-02-03")
    # a follow, over HTTP
    resp = await client.post("/api/users/carol/follow", headers=auth(bob.user.token))
    assert resp.status == 200
    # a message request: dave follows nobody and nobody follows dave
    dave = await open_tab(client, "dave", closers)
    sent = await dave.call("dm:send", {"to": carol.user.id, "text": "hello there"})
    assert sent["ok"] and sent["route"] == "request", sent
    # a nudge (carol is not live)
    nudged = await bob.call("nudge:send", {"user_id": carol.user.id})
    assert nudged["ok"], nudged
    # live started, a gift, live ended
    onair = await go_live(carol, closers)
    resp = await client.post("/api/coins/checkout", json={"package_id": "coins_70"},
                             headers=auth(bob.user.token))
    assert resp.status == 200, await resp.text()
    gift = {"transfer_id": "webhook-gift-1", "creator": carol.user.id, "gift_id": "rose"}
    assert (await bob.call("gift:send", gift))["ok"]
    assert (await bob.call("gift:send", gift))["ok"]  # a retried gift: one event
    assert (await carol.call("live:end", {}))["ok"]

    await poll(lambda: {r.type for r in receiver.got} >= set(EVENTS), timeout=20,
               what="one delivery of every event")
    assert all(r.signed for r in receiver.got), [(r.type, r.signed) for r in receiver.got]
    assert all(r.body["user_id"] == carol.user.id for r in receiver.got)
    assert all(r.body["id"] == r.event_id for r in receiver.got)
    by_type = {r.type: r.body["data"] for r in receiver.got}
    assert by_type[FOLLOW]["user"]["username"] == "bob"
    assert by_type[MESSAGE_REQUEST]["user"]["username"] == "dave"
    assert by_type[MESSAGE_REQUEST]["conversation_id"] == sent["conversation_id"]
    assert by_type[NUDGE_RECEIVED]["user"]["username"] == "bob"
    assert by_type[LIVE_STARTED]["live"]["live_id"] == onair.live_id
    assert by_type[LIVE_ENDED]["live"]["live_id"] == onair.live_id
    assert by_type[LIVE_ENDED]["reason"]
    gift_data = by_type[GIFT_RECEIVED]
    assert (gift_data["gift"]["id"], gift_data["count"], gift_data["user"]["username"],
            gift_data["transfer_id"]) == ("rose", 1, "bob", "webhook-gift-1")
    await asyncio.sleep(0)  # let a duplicate gift delivery, were there one, be seen
    assert len(receiver.of_type(GIFT_RECEIVED)) == 1
    text = json.dumps([r.body for r in receiver.got])
    for private in ("1991-02-03", "birthdate", "password", "token", bob.user.token):
        assert private not in text
    rows = await deliveries(client, carol.user.token, made["endpoint"]["id"])
    await poll(lambda: deliveries(client, carol.user.token, made["endpoint"]["id"]),
               what="history")
    rows = await deliveries(client, carol.user.token, made["endpoint"]["id"])
    assert {r["type"] for r in rows} == set(EVENTS)
    assert all(r["status"] == "delivered" and r["response_status"] == 200 for r in rows)


async def test_a_receiver_that_was_down_gets_the_event_later_with_the_same_id(
        aiohttp_client: Any, settings: Settings, redis: Any, receiver: Receiver,
        closers: list[Any]) -> None:
    client = await aiohttp_client(create_app(hook_settings(settings, receiver)))
    carol = await register(client, "carol")
    bob = await register(client, "bob")
    made = await add_endpoint(client, carol.token, receiver.url, events=[FOLLOW])
    receiver.secret = made["secret"]
    endpoint_id = made["endpoint"]["id"]
    # the receiver is down: nothing listens on its port
    assert (await client.post("/api/users/carol/follow", headers=auth(bob.token))).status == 200

    async def failed_once() -> Any:
        rows = await deliveries(client, carol.token, endpoint_id)
        return rows and rows[0]["status"] == "retrying" and rows[0]
    row = await poll(failed_once, what="a failed first attempt")
    assert row["attempts"] == 1 and row["error"] and row["response_status"] is None
    assert row["next_attempt_at"] > row["updated_at"]

    await receiver.start()  # back up: the retry (1 s +-20 % later) is delivered
    await poll(lambda: receiver.got, what="the retried delivery")
    [got] = receiver.got
    assert (got.event_id, got.attempt, got.signed, got.replay) == (row["event_id"], 2, True,
                                                                  False)

    async def delivered() -> Any:
        rows = await deliveries(client, carol.token, endpoint_id)
        return rows[0]["status"] == "delivered" and rows[0]
    row = await poll(delivered, what="delivered in the history")
    assert row["attempts"] == 2 and row["error"] is None
    metrics = await (await client.get("/metrics")).text()
    assert 'golive_webhook_attempts_total{outcome="retrying"} 1.0' in metrics
    assert 'golive_webhook_attempts_total{outcome="delivered"} 1.0' in metrics

    # a redelivery (the page's button) sends the same event id: the receiver sees a replay
    resp = await client.post(f"/api/me/webhooks/{endpoint_id}/deliveries/{row['id']}/redeliver",
                             headers=auth(carol.token))
    assert resp.status == 202, await resp.text()
    await poll(lambda: len(receiver.got) == 2, what="the redelivery")
    assert (receiver.got[1].event_id, receiver.got[1].replay) == (got.event_id, True)

    # a receiver answering 500 is retried too; a test event goes to one endpoint
    receiver.status = 500
    resp = await client.post(f"/api/me/webhooks/{endpoint_id}/test", headers=auth(carol.token))
    assert resp.status == 202
    test_id = (await resp.json())["delivery_id"]

    async def test_failed() -> Any:
        rows = {r["id"]: r for r in await deliveries(client, carol.token, endpoint_id)}
        return rows.get(test_id, {}).get("response_status") == 500 and rows[test_id]
    row = await poll(test_failed, what="the test event's HTTP 500")
    assert row["status"] == "retrying" and row["error"] == "HTTP 500"

    # rotating the secret: the retry is signed with the new one
    resp = await client.post(f"/api/me/webhooks/{endpoint_id}/rotate", headers=auth(carol.token))
    rotated = await resp.json()
    assert rotated["secret"] != made["secret"]
    receiver.secret, receiver.status = rotated["secret"], 200
    await poll(lambda: any(r.type == "webhook.test" and r.signed and r.attempt >= 2
                           for r in receiver.got), what="the retried test event, re-signed")
    resp = await client.delete(f"/api/me/webhooks/{endpoint_id}", headers=auth(carol.token))
    assert resp.status == 200
    assert (await (await client.get("/api/me/webhooks", headers=auth(carol.token))).json()
            )["endpoints"] == []


async def test_private_addresses_are_refused_unless_the_operator_allows_them(
        client: Any, closers: list[Any]) -> None:
    carol = await register(client, "carol")
    for url, reason in (("https://127.0.0.1:8443/hook", "private_address"),
                        ("https://localhost/hook", "private_address"),
                        ("https://169.254.169.254/latest", "private_address"),
                        ("https://[::1]/hook", "private_address"),
                        ("http://hooks.example.com/hook", "not_https")):
        resp = await client.post("/api/me/webhooks", json={"url": url},
                                 headers=auth(carol.token))
        answer = await resp.json()
        assert resp.status == 400, (url, answer)
        assert (answer["error"]["code"], answer["error"]["reason"]) == ("invalid", reason), url
    resp = await client.post("/api/me/webhooks", json={"url": "https://93.184.215.14/h",
                                                       "events": ["live.paused"]},
                             headers=auth(carol.token))
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "events"
    assert (await (await client.get("/api/me/webhooks", headers=auth(carol.token))).json()
            )["endpoints"] == []


async def test_a_node_killed_mid_delivery_leaves_it_to_the_next_node(
        server_factory: Any, redis_url: str, redis: Any, receiver: Receiver) -> None:
    await receiver.start()
    receiver.hold = asyncio.Event()
    env = {"GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s",
           "GOLIVE_WEBHOOK_ALLOW_PRIVATE": "1", "GOLIVE_WEBHOOK_CA_FILE": str(receiver.ca_file),
           "GOLIVE_WEBHOOK_TIMEOUT": "2"}
    first = server_factory(redis_url=redis_url, env=env)
    async with aiohttp.ClientSession(first.url) as http:
        carol = await register(http, "carol")
        bob = await register(http, "bob")
        resp = await http.post("/api/me/webhooks", json={"url": receiver.url},
                               headers=auth(carol.token))
        receiver.secret = (await resp.json())["secret"]
        assert (await http.post("/api/users/carol/follow", headers=auth(bob.token))).status == 200
    await poll(lambda: receiver.arrived == 1, what="the delivery reaching the receiver")
    first.proc.send_signal(signal.SIGKILL)  # mid-delivery: the receiver holds the request
    first.proc.wait(timeout=10)
    assert receiver.got == []
    receiver.hold.set()
    second = server_factory(redis_url=redis_url, env=env)
    # the lease (timeout 2 s + 5 s) runs out and the next node sends it again
    await poll(lambda: [r for r in receiver.got if r.signed and r.attempt == 2], timeout=20,
               what="the delivery retried by the next node")
    follow = receiver.of_type(FOLLOW)
    assert follow[-1].attempt == 2 and follow[-1].body["data"]["user"]["username"] == "bob"
    assert len({r.event_id for r in follow}) == 1  # at-least-once: one event id
    assert second.proc.poll() is None


def readme_receiver() -> str:
    """The receiver example of the README's "Webhooks" section."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Webhooks\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_readmes_receiver_verifies_real_deliveries(
        aiohttp_client: Any, settings: Settings, redis: Any, receiver: Receiver) -> None:
    import ssl

    from aiohttp import web

    client = await aiohttp_client(create_app(hook_settings(settings, receiver)))
    carol = await register(client, "carol")
    bob = await register(client, "bob")
    example: dict[str, Any] = {}
    exec(compile(readme_receiver(), "README.md", "exec"), example)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(receiver.ca_file, receiver.folder / "receiver.key")
    runner = web.AppRunner(example["app"], shutdown_timeout=0.5)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", receiver.port, ssl_context=context).start()
        url = f"https://127.0.0.1:{receiver.port}/golive-webhook"
        made = await add_endpoint(client, carol.token, url, events=[FOLLOW])
        # the example's placeholder secret: golive's signature is refused (401), retried
        resp = await client.post("/api/users/carol/follow", headers=auth(bob.token))
        assert resp.status == 200

        async def refused() -> Any:
            rows = await deliveries(client, carol.token, made["endpoint"]["id"])
            return rows and rows[0]["response_status"] == 401 and rows[0]
        row = await poll(refused, what="the wrong secret refused")
        assert example["seen"] == set()
        # with the endpoint's secret, the retry is accepted, once per event id
        example["SECRET"] = made["secret"].encode()
        await poll(lambda: example["seen"] == {row["event_id"]}, what="the retry accepted")
        resp = await client.post(f"/api/me/webhooks/{made['endpoint']['id']}/deliveries/"
                                 f"{row['id']}/redeliver", headers=auth(carol.token))
        assert resp.status == 202

        async def both_delivered() -> bool:
            rows = await deliveries(client, carol.token, made["endpoint"]["id"])
            return len(rows) == 2 and all(r["response_status"] == 204 for r in rows)
        await poll(both_delivered, what="the redelivery answered 204")
        assert example["seen"] == {row["event_id"]}
    finally:
        await runner.cleanup()
