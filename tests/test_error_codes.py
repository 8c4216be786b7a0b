"""One error model: one code enum (engine/errors.py) that media/errors.py and
web/static/errors.js name alike; `internal` (a bug, logged under an error id) apart
from `unavailable` (retryable); one translation of every failure (signaling/errors.py)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError

from engine.errors import RETRYABLE, DomainError, ErrorCode
from media.errors import MediaErrorCode
from media.errors import unavailable as media_unavailable
from signaling.app import create_app
from signaling.appkeys import GATEWAY
from signaling.config import Settings
from signaling.errors import MEDIA_CODES, as_domain_error
from signaling.gateway import EventContext
from signaling.http_api import STATUS
from signaling.schemas import Empty
from tests.support.peers import register, sio_connect

ROOT = Path(__file__).resolve().parent.parent


def js_error_codes() -> dict[str, str]:
    text = (ROOT / "web" / "static" / "errors.js").read_text()
    block = re.search(r"export const ErrorCode = Object\.freeze\(\{(.*?)\}\);", text, re.S)
    assert block, "web/static/errors.js has no ErrorCode = Object.freeze({...})"
    return dict(re.findall(r"^\s*(\w+): '(\w+)',?\s*$", block.group(1), re.M))


def test_the_pages_name_exactly_the_engine_codes() -> None:
    assert js_error_codes() == {code.name: code.value for code in ErrorCode}


def test_every_media_code_is_the_engine_code_of_its_name() -> None:
    for code in MediaErrorCode:
        assert ErrorCode[code.name].value == code.value
        assert MEDIA_CODES[code] is ErrorCode[code.name]


def test_every_code_has_an_http_status() -> None:
    assert set(STATUS) == set(ErrorCode)
    assert STATUS[ErrorCode.INTERNAL] == 500 and STATUS[ErrorCode.UNAVAILABLE] == 503


def test_retryable_is_in_the_payload_exactly_for_retryable_codes() -> None:
    assert RETRYABLE == {ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE}
    for code in ErrorCode:
        payload = DomainError(code, "x").to_payload()
        assert payload.get("retryable", False) is (code in RETRYABLE), code
    assert DomainError(ErrorCode.INVALID, "bad", field="f").to_payload() == {
        "code": "invalid", "message": "bad", "field": "f"}


def test_translation_of_each_kind_of_failure(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("golive.test")
    refusal = DomainError(ErrorCode.CONFLICT, "taken")
    with caplog.at_level(logging.INFO, logger="golive.test"):
        assert as_domain_error(refusal, log, "step") is refusal
        media = as_domain_error(media_unavailable("the room is full"), log, "step")
        down = as_domain_error(RedisConnectionError("refused"), log, "step")
    assert (media.code, media.message) == (ErrorCode.UNAVAILABLE, "the room is full")
    assert down.code is ErrorCode.UNAVAILABLE and down.retryable
    assert [r.levelno for r in caplog.records] == [logging.WARNING]  # Redis down: one line
    assert not caplog.records[0].exc_info


def app_with_failures(settings: Settings) -> web.Application:
    """The real app plus three Socket.IO events and one route that fail on purpose."""
    app = create_app(settings)
    gateway = app[GATEWAY]

    @gateway.event("test:bug", Empty)
    async def bug(ctx: EventContext, _: Empty) -> dict[str, Any]:
        raise KeyError("a bug")

    @gateway.event("test:redis_down", Empty)
    async def redis_down(ctx: EventContext, _: Empty) -> dict[str, Any]:
        raise RedisConnectionError("Connection refused")

    @gateway.event("test:media", Empty)
    async def media(ctx: EventContext, _: Empty) -> dict[str, Any]:
        raise media_unavailable("the room is closed")

    async def http_bug(request: web.Request) -> web.Response:
        raise ZeroDivisionError("a bug")

    app.router.add_get("/api/test-bug", http_bug)
    return app


def logged_error_ids(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """(error id, exception type) of every log record that carries a traceback."""
    return [(r.fields["error_id"], r.exc_info[1].__class__.__name__)  # type: ignore[attr-defined,index]
            for r in caplog.records if r.exc_info]


async def test_a_bug_is_internal_with_its_logged_id_and_redis_down_is_unavailable(
        aiohttp_client: Any, settings: Settings, redis: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    client = await aiohttp_client(app_with_failures(settings))
    ann = await register(client, "ann")
    sio = await sio_connect(client, ann.token)
    try:
        with caplog.at_level(logging.INFO, logger="golive"):
            bug = (await sio.call("test:bug", {}, timeout=5))["error"]
            down = (await sio.call("test:redis_down", {}, timeout=5))["error"]
            media = (await sio.call("test:media", {}, timeout=5))["error"]
            resp = await client.get("/api/test-bug")
            http_bug = (await resp.json())["error"]
    finally:
        await sio.disconnect()
    assert bug["code"] == "internal" and "retryable" not in bug
    assert re.fullmatch(r"[0-9a-f]{12}", bug["error_id"]) and bug["error_id"] in bug["message"]
    assert down == {"code": "unavailable", "retryable": True,
                    "message": "the server could not handle this request now; try again shortly"}
    assert media == {"code": "unavailable", "message": "the room is closed", "retryable": True}
    assert resp.status == 500 and http_bug["code"] == "internal"
    # each bug is logged once, with its traceback, under the id its caller was given
    assert logged_error_ids(caplog) == [(bug["error_id"], "KeyError"),
                                        (http_bug["error_id"], "ZeroDivisionError")]
