"""The node's webhook delivery worker and the one call every event site makes.

`WebhookDelivery` is a feature: one owned task claims due deliveries from the queue
in Redis (engine/webhooks.py) whenever an emit on this node wakes it and at least every
POLL_S (deliveries other nodes queued, retries falling due, leases of a dead node run
out), and sends each on its own task, at most CONCURRENCY at once, through one aiohttp
ClientSession closed on close. Every node runs one: a delivery is sent by whichever
claims it first.

An attempt is one POST with the signed body (engine/webhook_rules.py), redirects not
followed, GOLIVE_WEBHOOK_TIMEOUT in all; any 2xx is delivered, anything else (a
status, a refused connection, a timeout, a bad certificate) retried on the schedule.
A user's endpoint connects only to public addresses (GuardedResolver; IP literals are
checked by check_url) unless GOLIVE_WEBHOOK_ALLOW_PRIVATE; the operator's may be private.

`emit_safely` is what the sites call: a webhook never fails the action it reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from engine.accounts import Accounts
from engine.catalog import Gift
from engine.errors import DomainError
from engine.ledger import GiftReceipt
from engine.webhook_rules import check_address, check_url, delivery_headers
from engine.webhooks import OPERATOR, Delivery, EventData, Webhooks
from signaling.errors import UNAVAILABLE_CAUSES
from signaling.feature import Feature
from signaling.metrics import Metrics
from signaling.tasks import OwnedTask, cancel_and_wait

log = logging.getLogger("golive.webhooks")

POLL_S = 0.5
# Deliveries sent at once by one node: receivers are slow far more often than many;
# 16 in flight at a 10 s timeout is still 1.6 a second per node when all hang.
CONCURRENCY = 16
LEASE_MARGIN_S = 5.0   # a claim's lease: the attempt's timeout plus this
RESPONSE_READ_MAX = 4096
RESOLVE_TIMEOUT_S = 3.0  # a name checked when an endpoint is added (the request waits)


class GuardedResolver(ThreadedResolver):
    """Resolves a name and refuses it when any of its addresses is not public (a name
    pointing at 127.0.0.1 or 169.254.169.254): the connection goes to the addresses
    checked here, so a DNS answer cannot change between the check and the connect."""

    def __init__(self, *, allow_private: bool) -> None:
        super().__init__()
        self.allow_private = allow_private

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        hosts = await super().resolve(host, port, family)
        for entry in hosts:
            try:
                check_address(entry["host"], allow_private=self.allow_private)
            except DomainError as exc:
                raise OSError(f"{host} resolves to a refused address: {exc.message}") from None
        return hosts


async def resolve_addresses(host: str, timeout_s: float = RESOLVE_TIMEOUT_S) -> list[str]:
    """The addresses `host` resolves to now; [] when it does not resolve in `timeout_s`
    (a name that resolves later is still checked on every connection)."""
    try:
        async with asyncio.timeout(timeout_s):
            infos = await asyncio.get_running_loop().getaddrinfo(host, 443,
                                                                 type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, TimeoutError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system's CAs, plus `ca_file` when set (GOLIVE_WEBHOOK_CA_FILE)."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


async def emit_safely(webhooks: Webhooks, kind: str, user_id: str, data: EventData,
                      *, key: str | None = None) -> None:
    """webhooks.emit, logged instead of raised: the follow, gift or live it reports
    happened whatever becomes of its webhook."""
    try:
        await webhooks.emit(kind, user_id, data, key=key)
    except Exception as exc:
        log.warning("webhook event not queued", extra={"fields": {
            "type": kind, "user": user_id, "cause": f"{type(exc).__name__}: {exc}"[:200]}})


def gift_data(accounts: Accounts, receipt: GiftReceipt, gift: Gift) -> EventData:
    """gift.received's data (for the creator): the gift, its figures, the sender's
    public profile (looked up only when some endpoint wants the event)."""
    async def data() -> dict[str, Any]:
        sender = (await accounts.get_many([receipt.sender_id])).get(receipt.sender_id)
        return {"live_id": receipt.live_id, "transfer_id": receipt.transfer_id,
                "gift": {"id": gift.id, "name": gift.name}, "count": receipt.count,
                "coins": receipt.coins, "diamonds": receipt.diamonds,
                "user": sender.public() if sender is not None else {"id": receipt.sender_id}}
    return data


class WebhookDelivery(Feature):
    """Sends the queued deliveries: one owned claiming task, a bounded set of sends."""

    def __init__(self, webhooks: Webhooks, *, timeout_s: float, ca_file: Path | None,
                 node: str, metrics: Metrics | None = None, poll_s: float = POLL_S,
                 concurrency: int = CONCURRENCY) -> None:
        super().__init__()
        self.metrics = metrics
        self.webhooks = webhooks
        self.timeout_s = timeout_s
        self.lease_s = timeout_s + LEASE_MARGIN_S
        self.ca_file = ca_file
        self.node = node
        self.poll_s = poll_s
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()
        self._task = OwnedTask(self._run, "webhook-delivery")
        self._users: aiohttp.ClientSession | None = None      # guarded resolver
        self._operator: aiohttp.ClientSession | None = None   # the operator's endpoints
        webhooks.on_queued = self._wake.set

    async def on_open(self) -> None:
        context = ssl_context(self.ca_file)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        self._users = aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(
                ssl=context, limit=self.concurrency,
                resolver=GuardedResolver(allow_private=self.webhooks.allow_private)))
        self._operator = aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(ssl=context,
                                                            limit=self.concurrency))
        self._task.start()

    async def on_close(self) -> None:
        await self._task.stop()
        await cancel_and_wait(*self._sends)  # their leases run out: another node retries
        self._sends.clear()
        for session in (self._users, self._operator):
            if session is not None:
                await session.close()
        self._users = self._operator = None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.run_once()
            except UNAVAILABLE_CAUSES as exc:
                log.warning("webhook queue: Redis away; the next pass tries again",
                            extra={"fields": {"cause": f"{type(exc).__name__}: {exc}"[:200]}})
            except Exception:
                log.exception("webhook queue pass failed")

    async def run_once(self) -> int:
        """Claim as many due deliveries as there is room for and start sending them."""
        room = self.concurrency - len(self._sends)
        if room <= 0:
            return 0
        claimed = await self.webhooks.claim(room, lease_s=self.lease_s)
        for delivery in claimed:
            task = asyncio.create_task(self._send(delivery), name=f"webhook-{delivery.id}")
            self._sends.add(task)
            task.add_done_callback(self._sent)
        return len(claimed)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook send failed", exc_info=task.exception())
        self._wake.set()  # room for one more

    def _count(self, status: str) -> None:
        if self.metrics is not None:
            self.metrics.webhook_attempts.labels(status).inc()

    async def _send(self, delivery: Delivery) -> None:
        secret = await self.webhooks.secret_of(delivery.owner, delivery.endpoint_id)
        if secret is None:
            status = await self.webhooks.finish(delivery, ok=False, final=True,
                                                error="the endpoint was deleted or turned off")
            self._count(status)
            return
        session = self._operator if delivery.owner == OPERATOR else self._users
        assert session is not None
        code: int | None = None
        error = ""
        started = time.perf_counter()
        try:
            if delivery.owner != OPERATOR:  # an IP literal never reaches the resolver
                check_url(delivery.url, allow_private=self.webhooks.allow_private)
            headers = delivery_headers(secret, delivery.body, eid=delivery.event_id,
                                       kind=delivery.type, attempt=delivery.attempt,
                                       timestamp=int(time.time()))
            async with session.post(delivery.url, data=delivery.body, headers=headers,
                                    allow_redirects=False) as response:
                code = response.status
                await response.content.read(RESPONSE_READ_MAX)
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except DomainError as exc:
            error = exc.message
        except TimeoutError:
            error = f"no answer in {self.timeout_s:g} s"
        except aiohttp.ClientConnectorCertificateError as exc:
            error = f"the certificate was refused: {exc.certificate_error}"
        except aiohttp.ClientConnectorError as exc:
            error = f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc}"
        except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency = (time.perf_counter() - started) * 1000
        status = await self.webhooks.finish(delivery, ok=not error, code=code, error=error,
                                            latency_ms=latency)
        self._count(status)
        log.info("webhook delivery", extra={"fields": {
            "delivery": delivery.id, "event": delivery.event_id, "type": delivery.type,
            "attempt": delivery.attempt, "status": status, "code": code,
            "error": error[:200] or None, "ms": round(latency, 1)}})
