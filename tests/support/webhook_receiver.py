"""A real HTTPS webhook receiver on 127.0.0.1 for the webhook tests: its own CA-less
self-signed certificate (made with openssl), signature checks with golive's own
verify_signature, and switches to be down, to fail, or to hold a request."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.errors import DomainError
from engine.payments import SIGNATURE_HEADER, verify_signature
from engine.webhook_rules import ATTEMPT_HEADER, EVENT_ID_HEADER, EVENT_TYPE_HEADER
from tests.support.servers import free_port


def self_signed(folder: Path) -> tuple[Path, Path]:
    """(cert, key) for 127.0.0.1 and localhost, made with openssl; the cert is also the
    CA file a client trusts (GOLIVE_WEBHOOK_CA_FILE)."""
    cert, key = folder / "receiver.pem", folder / "receiver.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


@dataclass
class Received:
    event_id: str
    type: str
    attempt: int
    body: dict[str, Any]
    signed: bool          # the signature verified with the endpoint's secret
    replay: bool          # this event id was received before


@dataclass
class Receiver:
    """POST /hook: records every request; `status` answers it; `hold` (an Event) keeps
    requests waiting until set. `secret` checks signatures."""

    folder: Path
    port: int = field(default_factory=free_port)
    secret: str = ""
    status: int = 200
    hold: asyncio.Event | None = None
    got: list[Received] = field(default_factory=list)
    arrived: int = 0      # requests that reached the handler (held ones too)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/hook"

    @property
    def ca_file(self) -> Path:
        return self.folder / "receiver.pem"

    def prepare(self) -> None:
        if not self.ca_file.exists():
            self_signed(self.folder)

    async def start(self) -> None:
        self.prepare()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ca_file, self.folder / "receiver.key")
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context,
                          reuse_address=True).start()

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.arrived += 1
        if self.hold is not None:
            await self.hold.wait()
        try:
            verify_signature(self.secret, request.headers.get(SIGNATURE_HEADER), raw,
                             now=time.time())
            signed = True
        except DomainError:
            signed = False
        event_id = request.headers.get(EVENT_ID_HEADER, "")
        replay = any(r.event_id == event_id for r in self.got)
        self.got.append(Received(event_id, request.headers.get(EVENT_TYPE_HEADER, ""),
                                 int(request.headers.get(ATTEMPT_HEADER, "0")),
                                 json.loads(raw), signed, replay))
        return web.json_response({"ok": self.status < 300}, status=self.status)

    def of_type(self, kind: str) -> list[Received]:
        return [r for r in self.got if r.type == kind]
