"""The fuzzer (bench/fuzz.py) against a real `golive serve`: every Socket.IO event, every
route of /api/openapi.json (schemathesis), signed webhook bodies and raw Engine.IO frames,
with 0 crashes, 0 tracebacks in the server's log, 0 half-written refusals and the
bystander served between every two cases.

GOLIVE_FUZZ_CASES (default 1200, about 30 s here) and GOLIVE_FUZZ_SEED (default 17) make a
longer or another run: `GOLIVE_FUZZ_CASES=20000 pytest tests/test_fuzz.py -s`; or run
`python -m bench.fuzz --url ...` against any server (README, "Fuzzing").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from bench import fuzz
from tests.support.servers import TEST_SECRET, ServerProcess

CASES = int(os.environ.get("GOLIVE_FUZZ_CASES", "1200"))
SEED = int(os.environ.get("GOLIVE_FUZZ_SEED", "17"))
WEBHOOK_SECRET = "whsec-fuzz-" + "y" * 20


@pytest.fixture
def fuzz_server(server_factory: Any, redis_url: str, redis: Redis) -> ServerProcess:
    """A real server whose per-connection event rate lets the fuzzer's cases through (the
    rate limit itself is tests/test_socket_edge.py's), with the payment webhook on."""
    return server_factory(redis_url=redis_url, env={  # type: ignore[no-any-return]
        "GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s", "GOLIVE_AUTH_BURST": "200",
        "GOLIVE_EVENT_RATE": "1000/s", "GOLIVE_EVENT_BURST": "1000",
        "GOLIVE_ANONYMOUS_EVENT_RATE": "1000/s", "GOLIVE_ANONYMOUS_EVENT_BURST": "1000",
        "GOLIVE_PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET})


@pytest.mark.timeout(300 + CASES // 10)   # a longer run by hand gets its time
async def test_fuzz_every_event_route_and_frame(fuzz_server: ServerProcess,
                                                redis_url: str) -> None:
    summary = await fuzz.run(fuzz_server.url, CASES, redis_url=redis_url,
                             log_path=fuzz_server.log_path, webhook_secret=WEBHOOK_SECRET,
                             run_seed=SEED)
    print("\n".join(fuzz.table(summary)))
    failures = json.dumps(summary["failures"][:10], indent=1, default=str)
    assert summary["crashes"] == 0, failures
    assert summary["tracebacks"] == 0, failures
    assert summary["half_written"] == 0, failures
    assert not [f for f in summary["failures"] if f["target"] == "fuzzer"], failures
    # every event and every documented operation was driven
    ran = {name for name, stats in summary["by_target"].items() if stats["cases"] > 0}
    events = {f"sio:{name}" for name in fuzz.event_schemas()}
    assert events - ran == set()
    assert {"raw:frames", "raw:connect", "raw:polling", "sio:unknown-event",
            "http:webhook-signed"} <= ran
    assert len([t for t in ran if t.startswith("http:") and " /" in t]) >= 20
    assert summary["cases"] >= CASES * 0.6


# --- the checks themselves, as plain functions -------------------------------------------

def test_acks_are_classified() -> None:
    assert fuzz.classify_ack({"ok": True, "x": 1}).code is None
    assert fuzz.classify_ack({"ok": False, "error": {"code": "not_found"}}).code == "not_found"
    assert fuzz.classify_ack({"ok": False, "error": {"code": "internal"}}).crash
    assert fuzz.classify_ack(None).crash
    assert fuzz.classify_ack({"ok": False}).crash


def test_http_answers_are_classified() -> None:
    body = json.dumps({"ok": False, "error": {"code": "invalid", "message": "x"}}).encode()
    assert fuzz.classify_http(400, body, "application/json").code == "invalid"
    assert fuzz.classify_http(404, body, "application/json").crash  # wrong status for code
    assert fuzz.classify_http(500, b"{}", "application/json").crash
    assert fuzz.classify_http(400, b"<html>", "text/html").crash
    assert fuzz.classify_http(400, b"Can not decode", "text/plain").code == "invalid"
    assert fuzz.classify_http(200, b'{"ok": true}', "application/json").crash is None


def test_volatile_keys_are_only_the_listed_ones() -> None:
    assert fuzz.volatile("session:abc")
    assert fuzz.volatile("{core}node:n1")
    assert not fuzz.volatile("{core}chat_rate:live:user")
    assert not fuzz.volatile("{core}user:abc")
    assert not fuzz.volatile("{core}wallet:abc")
    assert not fuzz.volatile("{core}ledger:journal")
    assert not fuzz.volatile("{dm}dm:abc")


def test_log_lines_with_tracebacks_are_counted(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    log.write_text('{"level": "info", "msg": "old"}\n')
    reader = fuzz.LogReader(log)
    with log.open("a") as f:
        f.write('{"level": "info", "msg": "fine"}\n')
        f.write('{"level": "warning", "msg": "x", "exc": "Traceback ..."}\n')
        f.write('{"level": "error", "msg": "y"}\n')
        f.write("Traceback (most recent call last):\n")
        f.write('{"level": "error", "msg": "half a li')
    assert len(reader.new_tracebacks()) == 3
    with log.open("a") as f:
        f.write('ne"}\n')
    assert len(reader.new_tracebacks()) == 1
