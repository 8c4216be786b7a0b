"""GET /api/openapi.json: an OpenAPI 3.1 document of the JSON HTTP API, built from the
routes the app registered and the msgspec schemas their bodies are read with.

The paths come from walking app.router (every route under /api/ and the JSON routes in
EXTRA_PATHS), so the document cannot list a route the server lacks; what each one
takes (body schema, query, auth) comes from OPERATIONS. A route OPERATIONS does not
describe still appears, marked `x-undescribed`, and tests/test_openapi.py fails on it
(and on an OPERATIONS entry no route matches): the table and the router stay equal.
The document is what schemathesis fuzzes (bench/fuzz.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from engine.avatars import UPLOAD_MAX_BYTES
from engine.errors import ErrorCode
from engine.payments import SIGNATURE_HEADER
from engine.stream_ids import StreamId
from signaling.schemas import (
    CashoutRequest,
    CoinCheckout,
    Empty,
    Payload,
    ProfileUpdate,
    Register,
    SignIn,
    WebhookCreate,
)

# JSON routes outside /api/ that belong in the document (the others serve pages,
# images, static files or Prometheus text).
EXTRA_PATHS = frozenset({"/healthz"})
# HEAD is added by add_get; the document lists the GET.
SKIP_METHODS = frozenset({"HEAD", "OPTIONS", "*"})

# An HTTP status per error code (signaling/http_api.py STATUS), listed on every
# operation: a 500 is never declared, so a fuzzer that meets one reports it.
ERROR_STATUS = {
    ErrorCode.INVALID: 400, ErrorCode.UNAUTHORIZED: 401, ErrorCode.INSUFFICIENT_FUNDS: 402,
    ErrorCode.FORBIDDEN: 403, ErrorCode.NOT_FOUND: 404, ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429, ErrorCode.UNAVAILABLE: 503,
}
STABLE_CODES = [str(code) for code in ERROR_STATUS]

INT_QUERY_MAX = 10**18 - 1  # http_api.INT_DIGITS_MAX digits


@dataclass(frozen=True)
class Operation:
    """What one route takes and answers, as the document states it."""

    summary: str
    auth: str = "none"            # "none", "optional" or "bearer"
    body: type[Payload] | None = None
    raw_body: dict[str, Any] | None = None   # content by media type, for non-schema bodies
    query: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> JSON schema
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: int = 200
    # the JSON route answers {ok: true, ...}; /healthz answers {ok, redis_rtt_ms} / 503
    errors: tuple[int, ...] = tuple(ERROR_STATUS.values())


LIMIT_20 = {"type": "string", "pattern": r"^[0-9]{1,18}$",
            "description": "a whole number; out of its range is answered `invalid`"}
CURSOR = {"type": "string", "description": "a stream id `<ms>-<seq>`"}

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/api/openapi.json"): Operation("This document"),
    ("GET", "/healthz"): Operation("200 when Redis answers, else 503", errors=(503,)),
    ("POST", "/api/register"): Operation("Create an account; a token", body=Register,
                                         status=201),
    ("POST", "/api/signin"): Operation("Sign in; a token", body=SignIn),
    ("POST", "/api/signout"): Operation("Revoke the caller's session", auth="bearer"),
    ("GET", "/api/me"): Operation("The caller's account", auth="bearer"),
    ("PATCH", "/api/me"): Operation("Change display name or bio", auth="bearer",
                                    body=ProfileUpdate),
    ("PUT", "/api/me/avatar"): Operation(
        "Set the profile photo (JPEG, PNG or WebP as the body)", auth="bearer",
        raw_body={kind: {"schema": {"type": "string", "format": "binary",
                                    "maxLength": UPLOAD_MAX_BYTES}}
                  for kind in ("image/jpeg", "image/png", "image/webp")}),
    ("DELETE", "/api/me/avatar"): Operation("Remove the profile photo", auth="bearer"),
    ("POST", "/api/me/stream_key"): Operation(
        "Make or rotate the caller's WHIP stream key (the old one stops working): "
        "{stream_key, whip_url}; 18+ as going LIVE", auth="bearer", body=Empty),
    ("GET", "/api/me/stream_key"): Operation(
        "Whether the caller has a stream key (never the key), and the WHIP URL",
        auth="bearer"),
    ("GET", "/api/users"): Operation(
        "Accounts by username or display-name prefix", auth="optional",
        query={"q": {"type": "string", "maxLength": 200}, "limit": LIMIT_20}),
    ("GET", "/api/users/{username}"): Operation("A profile", auth="optional"),
    ("GET", "/api/lives"): Operation("Live rooms, most viewers first"),
    ("POST", "/api/users/{username}/follow"): Operation("Follow", auth="bearer"),
    ("DELETE", "/api/users/{username}/follow"): Operation("Unfollow", auth="bearer"),
    ("POST", "/api/users/{username}/block"): Operation("Block", auth="bearer"),
    ("DELETE", "/api/users/{username}/block"): Operation("Unblock", auth="bearer"),
    ("GET", "/api/users/{username}/replays"): Operation(
        "A creator's replays the caller may watch, newest first", auth="optional"),
    ("GET", "/api/replays/{replay_id}"): Operation(
        "One replay and its chat (who may watch the live may watch it)", auth="optional"),
    ("DELETE", "/api/replays/{replay_id}"): Operation(
        "Delete a replay (its creator only)", auth="bearer"),
    ("GET", "/api/gifts"): Operation("The gift catalog and the rate"),
    ("GET", "/api/coins/packages"): Operation("Coin packages"),
    ("POST", "/api/coins/checkout"): Operation("Buy a package (test provider, 18+)",
                                               auth="bearer", body=CoinCheckout),
    ("POST", "/api/payments/webhook"): Operation(
        "A payment provider's signed event",
        raw_body={"application/json": {"schema": {"type": "object"}}},
        headers={SIGNATURE_HEADER: {"type": "string"}}),
    ("GET", "/api/wallet"): Operation("Balances, cash-out limits, payouts", auth="bearer"),
    ("GET", "/api/wallet/history"): Operation(
        "Journal entries, newest first", auth="bearer",
        query={"before": CURSOR, "limit": LIMIT_20}),
    ("POST", "/api/wallet/cashout"): Operation("Request a cash-out", auth="bearer",
                                               body=CashoutRequest),
    ("GET", "/api/me/webhooks"): Operation("The caller's webhook endpoints", auth="bearer"),
    ("POST", "/api/me/webhooks"): Operation(
        "Add a webhook endpoint (https); its signing secret, shown once", auth="bearer",
        body=WebhookCreate, status=201),
    ("DELETE", "/api/me/webhooks/{endpoint_id}"): Operation("Remove a webhook endpoint",
                                                            auth="bearer"),
    ("POST", "/api/me/webhooks/{endpoint_id}/rotate"): Operation(
        "A new signing secret, shown once", auth="bearer"),
    ("GET", "/api/me/webhooks/{endpoint_id}/deliveries"): Operation(
        "An endpoint's last deliveries, newest first", auth="bearer"),
    ("POST", "/api/me/webhooks/{endpoint_id}/test"): Operation(
        "Queue a webhook.test event to the endpoint", auth="bearer", status=202),
    ("POST", "/api/me/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver"): Operation(
        "Deliver a past delivery's event again (same event id)", auth="bearer", status=202),
}

_PATH_PARAM = re.compile(r"\{([A-Za-z_]\w*)\}")


def api_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) of every route the document covers, in registration order."""
    found: list[tuple[str, str]] = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in SKIP_METHODS:
            continue
        path = resource.canonical
        if (path.startswith("/api/") or path in EXTRA_PATHS) and (
                (route.method, path) not in found):
            found.append((route.method, path))
    return found


def _schema_hook(kind: type) -> dict[str, Any]:
    if kind is StreamId:
        return {"type": "string", "pattern": r"^[0-9]{1,20}-[0-9]{1,20}$"}
    raise NotImplementedError(kind)


def body_schemas() -> dict[str, Any]:
    """The component schemas of every request body (msgspec's JSON Schema)."""
    bodies = sorted({op.body for op in OPERATIONS.values() if op.body is not None},
                    key=lambda t: t.__name__)
    _, components = msgspec.json.schema_components(
        bodies, schema_hook=_schema_hook, ref_template="#/components/schemas/{name}")
    return components


def _answer_schemas() -> dict[str, Any]:
    return {
        "Ok": {"type": "object", "required": ["ok"],
               "properties": {"ok": {"const": True}}},
        "Error": {"type": "object", "required": ["ok", "error"], "properties": {
            "ok": {"const": False},
            "error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"enum": STABLE_CODES}, "message": {"type": "string"}}}}},
        "Health": {"type": "object", "required": ["ok"],
                   "properties": {"ok": {"type": "boolean"}}},
    }


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def operation_object(method: str, path: str, op: Operation | None) -> dict[str, Any]:
    """One OpenAPI operation; a route without an Operation is marked x-undescribed."""
    if op is None:
        return {"summary": "(not described in signaling/openapi.py)", "x-undescribed": True,
                "responses": {"default": {"description": "anything"}}}
    ok_ref = "Health" if path == "/healthz" else "Ok"
    out: dict[str, Any] = {
        "operationId": f"{method.lower()} {path}",
        "summary": op.summary,
        "responses": {str(op.status): {"description": "done", "content": _json(ok_ref)}},
    }
    for status in op.errors:
        ref = "Health" if path == "/healthz" else "Error"
        out["responses"][str(status)] = {"description": "refused", "content": _json(ref)}
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in _PATH_PARAM.findall(path)]
    params += [{"name": name, "in": "query", "required": False, "schema": schema}
               for name, schema in op.query.items()]
    params += [{"name": name, "in": "header", "required": False, "schema": schema}
               for name, schema in op.headers.items()]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": False, "content": _json(op.body.__name__)}
    elif op.raw_body is not None:
        out["requestBody"] = {"required": True, "content": op.raw_body}
    if op.auth == "bearer":
        out["security"] = [{"bearer": []}]
    elif op.auth == "optional":
        out["security"] = [{"bearer": []}, {}]
    return out


def document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `app`'s JSON routes."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path in api_routes(app):
        paths.setdefault(path, {})[method.lower()] = operation_object(
            method, path, OPERATIONS.get((method, path)))
    return {
        "openapi": "3.1.0",
        "info": {"title": "golive HTTP API", "version": "1",
                 "description": "Errors are {ok: false, error: {code, message}} with a "
                                "stable code; see docs/protocol.md."},
        "paths": paths,
        "components": {
            "schemas": {**body_schemas(), **_answer_schemas()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


# Filled on the first request (the router is frozen by then): {"doc": document}.
OPENAPI = web.AppKey("openapi", dict)


async def openapi_json(request: web.Request) -> web.Response:
    """GET /api/openapi.json, built once per app (the routes are fixed once it runs)."""
    cache = request.app[OPENAPI]
    if "doc" not in cache:
        cache["doc"] = document(request.app)
    return web.json_response(cache["doc"])


def setup(app: web.Application) -> None:
    app[OPENAPI] = {}
    app.router.add_get("/api/openapi.json", openapi_json)
