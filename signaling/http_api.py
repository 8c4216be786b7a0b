"""The JSON HTTP API under /api/: register, sign in and out, profiles, follow and block.

Errors use the same {ok: false, error: {code, message}} body as Socket.IO
acks, with an HTTP status per code.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from engine.accounts import Account, utc_today
from engine.avatars import UPLOAD_MAX_BYTES
from engine.errors import DomainError, ErrorCode, invalid, rate_limited, unauthorized
from engine.lives import check_may_go_live
from engine.message_rules import check_may_send_messages
from engine.nesting import MAX_DEPTH, json_too_deep
from engine.sessions import Session
from engine.stream_ids import BadStreamId, StreamId
from signaling.appkeys import CHAT, GATEWAY, LIVES, METRICS, NOTIFIER, SERVICES, SETTINGS
from signaling.errors import as_domain_error
from signaling.profiles import people_view, profile_view, relation_view
from signaling.ratelimit import KeyedBuckets
from signaling.schemas import P, ProfileUpdate, Register, SignIn, convert
from signaling.session_cookie import check_same_site, clear_cookie, request_token, set_cookie

log = logging.getLogger("golive.http")

STATUS = {
    ErrorCode.INVALID: 400, ErrorCode.UNAUTHORIZED: 401, ErrorCode.INSUFFICIENT_FUNDS: 402,
    ErrorCode.FORBIDDEN: 403, ErrorCode.NOT_FOUND: 404, ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429, ErrorCode.UNAVAILABLE: 503, ErrorCode.INTERNAL: 500,
}

AUTH_BUCKETS = web.AppKey("auth_buckets", KeyedBuckets)
# Photo uploads per user: each decode is up to ~0.5 s of a core for a 40 MP file, so a
# burst of 10 and then one every 6 s (10 a minute) bounds what one account can cost.
AVATAR_BUCKETS = web.AppKey("avatar_buckets", KeyedBuckets)

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Set on a request whose session cookie the server refused (expired, revoked, forged):
# its answer tells the browser to drop the cookie, which no script of the page can do.
STALE_COOKIE = web.RequestKey("stale_cookie", bool)


def error_response(error: DomainError) -> web.Response:
    headers = {}
    if error.code is ErrorCode.RATE_LIMITED:
        headers["Retry-After"] = str(max(1, round(float(error.details["retry_after"]))))  # type: ignore[arg-type]
    return web.json_response({"ok": False, "error": error.to_payload()},
                             status=STATUS[error.code], headers=headers)


def ok(status: int = 200, **body: Any) -> web.Response:
    return web.json_response({"ok": True, **body}, status=status)


@web.middleware
async def api_errors(request: web.Request, handler: Route) -> web.StreamResponse:
    """Every failure becomes a JSON error body (signaling/errors.py: a bug is a logged
    500 `internal` with an error id, Redis down a 503 `unavailable`)."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource else "?"
    try:
        response = await handler(request)
    except DomainError as exc:
        response = error_response(exc)
    except web.HTTPException as exc:
        if exc.status == 413:
            response = error_response(invalid("the request body is too large"))
        elif exc.status in (404, 405):
            code = ErrorCode.NOT_FOUND if exc.status == 404 else ErrorCode.INVALID
            response = web.json_response(
                {"ok": False, "error": {"code": str(code), "message": exc.reason}},
                status=exc.status)
        else:
            raise
    except web.RequestPayloadError as exc:
        # a body that cannot be read as sent: Content-Encoding gzip over bytes that are
        # not gzip, a broken chunked body. The client's doing, not a bug: one line.
        log.warning("request body unreadable", extra={"fields": {
            "route": route, "remote": request.remote, "cause": str(exc)[:100]}})
        response = error_response(invalid("the request body could not be read "
                                          "(its Content-Encoding or chunking is broken)"))
        response.force_close()
    except Exception as exc:
        response = error_response(as_domain_error(exc, log, "api handler failed", route=route))
    if request.get(STALE_COOKIE):
        clear_cookie(response, secure=request.secure)
    request.app[METRICS].http_requests.labels(route, str(response.status)).inc()
    return response


async def body(request: web.Request, schema: type[P]) -> P:
    """The JSON body as `schema` (an empty body is {}); `invalid` for anything else.

    Every JSON route reads its body here. The nesting bound is checked on the raw
    bytes first: the decoder recurses per level, and 30,000 levels fit in 64 KiB."""
    raw = await request.read()
    if json_too_deep(raw):
        # One line, no traceback: this is cheap to send and reaches us unauthenticated.
        log.warning("request body nested too deep", extra={"fields": {
            "route": request.path[:100], "remote": request.remote, "bytes": len(raw)}})
        raise invalid(f"the body nests deeper than {MAX_DEPTH} levels")
    try:
        data = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError:
        raise invalid("the body must be a JSON object") from None
    return convert(schema, data)


# A query integer longer than this is refused before int(): int() of 5,000 digits
# raises ValueError (Python's 4,300-digit limit) and costs quadratic time below it.
# 18 digits hold every bound golive states and stay under 2**63.
INT_DIGITS_MAX = 18

USER_ID = re.compile(r"[0-9a-f]{16}")
VERSION = re.compile(r"[0-9a-f]{16}")


def parse_int(raw: str | None, name: str, *, default: int, low: int, high: int) -> int:
    """A whole number from query text, `default` when absent; `invalid` naming `name`
    unless it is ASCII digits (at most INT_DIGITS_MAX) with low <= value <= high."""
    if raw is None:
        return default
    problem = f"{name} must be a whole number from {low} to {high}"
    # isascii first: str.isdigit() is true for "²" or "٣", which int() refuses or reads
    if not (raw.isascii() and raw.isdigit() and len(raw) <= INT_DIGITS_MAX):
        raise invalid(problem, field=name)
    value = int(raw)
    if not low <= value <= high:
        raise invalid(problem, field=name)
    return value


def query_int(request: web.Request, name: str, *, default: int, low: int, high: int) -> int:
    """The query parameter `name` as a whole number (parse_int): every route that
    reads an integer from the query reads it here."""
    return parse_int(request.query.get(name), name, default=default, low=low, high=high)


def parse_stream_id(raw: str | None, name: str) -> StreamId | None:
    """A stream-id cursor from query text ("<ms>-<seq>"), None when absent or empty;
    `invalid` naming `name` otherwise."""
    if not raw:
        return None
    try:
        return StreamId.from_text(raw)
    except BadStreamId as exc:
        raise invalid(f"{exc} - at `{name}`", field=name) from None


def query_stream_id(request: web.Request, name: str) -> StreamId | None:
    """The query parameter `name` as a stream id (parse_stream_id)."""
    return parse_stream_id(request.query.get(name), name)


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def signed_in(request: web.Request) -> Session:
    """The caller's session: from `Authorization: Bearer`, else from the session cookie
    (signaling/session_cookie.py), whose state changes must come from this site."""
    token = bearer(request)
    if token is not None:
        return await request.app[SERVICES].sessions.verify(token)
    token = request_token(request)
    if token is None:
        raise unauthorized("send Authorization: Bearer <token> (or sign in on the site)",
                           "missing")
    check_same_site(request)
    try:
        return await request.app[SERVICES].sessions.verify(token)
    except DomainError as exc:
        if exc.code == ErrorCode.UNAUTHORIZED:
            request[STALE_COOKIE] = True
        raise


async def optional_session(request: web.Request) -> Session | None:
    if bearer(request):
        return await signed_in(request)
    if request_token(request) is None:
        return None
    try:
        return await signed_in(request)
    except DomainError as exc:
        # A page whose cookie went stale (signed out on another device) still reads
        # profiles as a visitor; the answer drops the cookie (STALE_COOKIE).
        if exc.code == ErrorCode.UNAUTHORIZED:
            return None
        raise


def throttle_auth(request: web.Request) -> None:
    """Per-address limit on sign-ups and sign-ins (password guessing, hash cost)."""
    wait = request.app[AUTH_BUCKETS].take(request.remote or "?")
    if wait:
        raise rate_limited(wait)


async def signed_in_answer(request: web.Request, status: int, account: Account,
                           cookie: bool) -> web.Response:
    """A new session for `account`: its token in the body (API clients), or, when the page
    asked with "cookie": true, in the HttpOnly session cookie and not in the body."""
    token, session = await request.app[SERVICES].sessions.issue(account.id)
    if not cookie:
        return ok(status, user=account.public(), token=token, expires_at=session.expires_at)
    response = ok(status, user=account.public(), expires_at=session.expires_at)
    set_cookie(response, token, max_age=session.expires_at - int(time.time()),
               secure=request.secure)
    return response


async def register(request: web.Request) -> web.Response:
    throttle_auth(request)
    p = await body(request, Register)
    if p.cookie:
        check_same_site(request)  # no other site signs a visitor in (login CSRF)
    account = await request.app[SERVICES].accounts.register(
        username=p.username, display_name=p.display_name, password=p.password,
        birthdate=p.birthdate)
    log.info("account registered", extra={"fields": {"user": account.id,
                                                     "username": account.username}})
    return await signed_in_answer(request, 201, account, p.cookie)


async def sign_in(request: web.Request) -> web.Response:
    throttle_auth(request)
    p = await body(request, SignIn)
    if p.cookie:
        check_same_site(request)
    account = await request.app[SERVICES].accounts.authenticate(p.username, p.password)
    log.info("signed in", extra={"fields": {"user": account.id}})
    return await signed_in_answer(request, 200, account, p.cookie)


async def sign_out(request: web.Request) -> web.Response:
    session = await signed_in(request)
    await request.app[SERVICES].sessions.revoke(session.session_id)
    await request.app[GATEWAY].end_session(session.session_id, session.user_id)
    log.info("signed out", extra={"fields": {"user": session.user_id}})
    response = ok()
    if bearer(request) is None:  # signed out by the page's own cookie: drop it
        clear_cookie(response, secure=request.secure)
    return response


def verdict(rule: Callable[[], None]) -> dict[str, Any]:
    """A rule's answer as the pages read it: {ok: true} or {ok: false, error}."""
    try:
        rule()
    except DomainError as refusal:
        return {"ok": False, "error": refusal.to_payload()}
    return {"ok": True}


async def me(request: web.Request) -> web.Response:
    """The caller's account, `go_live`: what live:start would answer them on age, so
    the studio says why before Go LIVE, and `messages`: whether they may send direct
    messages (age), so the Messages page offers no composer it would refuse."""
    session = await signed_in(request)
    account = await request.app[SERVICES].accounts.get(session.user_id)
    today = utc_today()
    min_age = request.app[SETTINGS].live_min_age
    return ok(user={**account.public(), "birthdate": account.birthdate.isoformat()},
              go_live=verdict(lambda: check_may_go_live(account.birthdate, today, min_age)),
              messages=verdict(lambda: check_may_send_messages(account.age(today))))


async def update_me(request: web.Request) -> web.Response:
    session = await signed_in(request)
    p = await body(request, ProfileUpdate)
    account = await request.app[SERVICES].accounts.update_profile(
        session.user_id, display_name=p.display_name, bio=p.bio)
    return ok(user=account.public())


async def upload_avatar(request: web.Request) -> web.Response:
    """PUT /api/me/avatar: the raw image as the body (JPEG, PNG or WebP); the account
    with its new photo. The body is read only up to the limit: a larger one is refused
    from its Content-Length, or as soon as it passes the limit, without reading the rest."""
    session = await signed_in(request)
    wait = request.app[AVATAR_BUCKETS].take(session.user_id)
    if wait:
        raise rate_limited(wait)
    limit = UPLOAD_MAX_BYTES
    if request.content_length is not None and request.content_length > limit:
        raise check_too_large(limit)
    data = await request.content.read(limit + 1)
    if len(data) > limit:
        raise check_too_large(limit)
    services = request.app[SERVICES]
    await services.avatars.set(session.user_id, data)
    account = await services.accounts.get(session.user_id)
    log.info("avatar set", extra={"fields": {"user": account.id, "bytes": len(data)}})
    return ok(user=account.public())


def check_too_large(limit: int) -> DomainError:
    return invalid(f"a photo is at most {limit // (1024 * 1024)} MB", field="avatar",
                   reason="too_large", max_bytes=limit)


async def remove_avatar(request: web.Request) -> web.Response:
    session = await signed_in(request)
    services = request.app[SERVICES]
    await services.avatars.remove(session.user_id)
    return ok(user=(await services.accounts.get(session.user_id)).public())


async def avatar_image(request: web.Request) -> web.StreamResponse:
    """GET /avatars/{user_id}/{version}.webp: the photo, cached for good (a new photo has
    a new version, so a new URL); 404 for any other version."""
    user_id, version = request.match_info["user_id"], request.match_info["version"]
    if not (USER_ID.fullmatch(user_id) and VERSION.fullmatch(version)):
        raise web.HTTPNotFound()
    try:
        data = await request.app[SERVICES].avatars.get(user_id, version)
    except DomainError:
        raise web.HTTPNotFound() from None
    etag = f'"{version}"'
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": etag,
               "X-Content-Type-Options": "nosniff"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=data, content_type="image/webp", headers=headers)


async def profile(request: web.Request) -> web.Response:
    session = await optional_session(request)
    services = request.app[SERVICES]
    account = await services.accounts.find(request.match_info["username"])
    return ok(**await profile_view(services, account, session.user_id if session else None))


async def people(request: web.Request) -> web.Response:
    """GET /api/users?q=PREFIX[&limit=N]: accounts by username or display name prefix,
    any case, any accents (engine/search.py); for everyone, signed in or not."""
    session = await optional_session(request)
    query = request.query.get("q", "")
    if len(query) > 200:
        raise invalid("a search is at most 40 characters", field="q")
    limit = query_int(request, "limit", default=20, low=1, high=50)
    return ok(**await people_view(request.app[SERVICES], query, limit,
                                  session.user_id if session else None))


async def lives(request: web.Request) -> web.Response:
    """Discover for everyone, signed in or not: live rooms, most viewers first."""
    return ok(lives=await request.app[LIVES].directory())


def graph_route(verb: str) -> Route:
    """POST/DELETE /api/users/{username}/{follow|block}."""

    async def handle(request: web.Request) -> web.Response:
        session = await signed_in(request)
        services = request.app[SERVICES]
        target = await services.accounts.find(request.match_info["username"])
        undo = request.method == "DELETE"
        action = {
            ("follow", False): services.graph.follow, ("follow", True): services.graph.unfollow,
            ("block", False): services.graph.block, ("block", True): services.graph.unblock,
        }[(verb, undo)]
        if await action(session.user_id, target.id) and (verb, undo) == ("follow", False):
            await request.app[NOTIFIER].followed(
                await services.accounts.get(session.user_id), target.id)
        if (verb, undo) == ("block", False):  # who joined the other's live leaves it
            await request.app[CHAT].blocked(session.user_id, target.id)
        return ok(**await relation_view(services, session.user_id, target.id))

    return handle


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[AUTH_BUCKETS] = KeyedBuckets(settings.auth_rate, settings.auth_burst)
    app[AVATAR_BUCKETS] = KeyedBuckets(1 / 6, 10)
    app.middlewares.append(api_errors)
    app.router.add_post("/api/register", register)
    app.router.add_post("/api/signin", sign_in)
    app.router.add_post("/api/signout", sign_out)
    app.router.add_get("/api/me", me)
    app.router.add_patch("/api/me", update_me)
    app.router.add_put("/api/me/avatar", upload_avatar)
    app.router.add_delete("/api/me/avatar", remove_avatar)
    app.router.add_get("/avatars/{user_id}/{version}.webp", avatar_image)
    app.router.add_get("/api/users", people)
    app.router.add_get("/api/users/{username}", profile)
    app.router.add_get("/api/lives", lives)
    for verb in ("follow", "block"):
        handler = graph_route(verb)
        app.router.add_post(f"/api/users/{{username}}/{verb}", handler)
        app.router.add_delete(f"/api/users/{{username}}/{verb}", handler)
