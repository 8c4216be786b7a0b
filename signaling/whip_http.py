"""WHIP ingest (RFC 9725) and WHEP playback over HTTP, and the stream keys behind them.

    POST   /api/me/stream_key         make or rotate the caller's key: {stream_key, whip_url}
    GET    /api/me/stream_key         whether they have one, and the WHIP URL
    POST   /whip                      Bearer <stream key>, an SDP offer -> 201, the answer
    DELETE /whip/{session}            the live ends
    POST   /whep/{username}           [Bearer <session token>], an SDP offer -> 201, the answer
    DELETE /whep/{username}/{session} the player stops watching

A WHIP publisher goes live through the same LiveRooms.start as the studio's `live:start`
(gifts burned into the video, chat, go-live alerts, the ledger, the grace period when its
media drops); a WHEP player joins through the same LiveRooms.join as a viewer's
`room:join` (bans, blocks, the viewer count, the fan-out), except that the player makes the
offer and the server answers. Both are socketless connections (gateway.Connection): in no
Socket.IO room, pushed nothing.

What the RFC leaves to the server, and golive's choices:
- Trickle ICE and ICE restarts are not supported (aiortc gathers every candidate before
  it answers, and has no ICE restart): PATCH on a session answers 405 Method Not Allowed,
  as RFC 9725 section 4.3.1 asks of such a server. The answer carries all candidates.
- ICE servers (the static ones and a TURN credential for the creator or viewer,
  signaling/turn.py) are `Link: <url>; rel="ice-server"` headers (section 4.6) on the 201,
  and on an OPTIONS that carries a valid Bearer token (a CORS preflight carries none, and
  an anonymous request is handed no TURN credential).
- The session URL (Location) is relative, its id 128 random bits; DELETE needs the same
  Bearer token as the POST (for WHIP the key the session was made with, so a rotation
  does not keep OBS from stopping its stream).
- CORS: any origin may call these routes (they take a Bearer token, never the cookie).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from engine.accounts import UserId, utc_today
from engine.anonymous import new_anonymous_id
from engine.errors import DomainError, ErrorCode, invalid, rate_limited, unauthorized
from engine.lives import check_may_go_live
from engine.sessions import Session
from engine.stream_keys import digest
from media.negotiation import MAX_SDP_BYTES
from signaling.appkeys import GATEWAY, LIVES, METRICS, SERVICES, SETTINGS
from signaling.errors import as_domain_error
from signaling.gateway import Connection
from signaling.http_api import STATUS, bearer, body, ok, signed_in
from signaling.live_rooms import LiveRooms
from signaling.ratelimit import KeyedBuckets, TokenBucket
from signaling.schemas import Empty, LiveStart, convert

log = logging.getLogger("golive.whip")

SDP = "application/sdp"
WHIP_PATH = "/whip"
SESSION_ID_BYTES = 16  # 128 bits: a session URL nobody guesses
# Sessions kept after their live or viewer went without a DELETE (an encoder killed):
# pruned every PRUNE_EVERY new sessions (and when full); this bounds them in between.
MAX_SESSIONS = 20_000
PRUNE_EVERY = 64  # new sessions between two walks over them all
CORS = {"Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Patch, Retry-After"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class WhipSession:
    """One WHIP publish: the creator's live and the key it was made with (its digest)."""

    id: str
    creator_id: str
    live_id: str
    sid: str
    key_digest: str


@dataclass
class WhepSession:
    """One WHEP player watching a live."""

    id: str
    creator_id: str
    live_id: str
    conn: Connection


class HttpMedia:
    """The open WHIP and WHEP sessions of this node, and their rate limits."""

    def __init__(self, lives: LiveRooms) -> None:
        self.lives = lives
        self.whip: dict[str, WhipSession] = {}
        self.whep: dict[str, WhepSession] = {}
        # Key rotations per user: a burst of 5, then one every 12 s (5 a minute).
        self.rotations = KeyedBuckets(1 / 12, 5)
        # Publishes per creator: each is a peer connection and a go-live; an encoder
        # retrying in a loop gets 429 after 10 (then one every 3 s).
        self.publishes = KeyedBuckets(1 / 3, 10)
        # Player sessions per client address: each is a peer connection and a handshake
        # (the node's join admission bounds those running at once); 20, then 2 a second.
        self.plays = KeyedBuckets(2.0, 20)
        self._created = 0

    def prune(self) -> None:
        """Forget sessions whose live or viewer is gone (ended elsewhere, media lost)."""
        for sid, session in list(self.whip.items()):
            hosted = self.lives.hosted.get(session.creator_id)
            if hosted is None or hosted.live.live_id != session.live_id:
                self.drop_whip(sid)
        for sid, play in list(self.whep.items()):
            if not self.lives.is_viewing(play.live_id, play.conn.sid):
                del self.whep[sid]

    def drop_whip(self, session_id: str) -> WhipSession | None:
        """Forget a WHIP session (its publisher no longer counts as live)."""
        session = self.whip.pop(session_id, None)
        if session is not None:
            self.lives.socketless_publishers.discard(session.sid)
        return session

    def check_room(self) -> None:
        """Called before each new session: forget the stale ones every PRUNE_EVERY new
        sessions (a walk over all of them) or when full; `unavailable` if still full."""
        self._created += 1
        if self._created % PRUNE_EVERY == 0 or len(self.whip) + len(self.whep) >= MAX_SESSIONS:
            self.prune()
        if len(self.whip) + len(self.whep) >= MAX_SESSIONS:
            raise DomainError(ErrorCode.UNAVAILABLE, "this server holds too many sessions")


HTTP_MEDIA = web.AppKey("http_media", HttpMedia)


def new_session_id() -> str:
    return secrets.token_hex(SESSION_ID_BYTES)


def _socketless(kind: str, session_id: str, user_id: str, session: Session | None,
                anonymous: bool = False) -> Connection:
    sid = f"{kind}-{session_id}"
    return Connection(sid=sid, user_id=UserId(user_id),
                      session=session or Session(UserId(user_id), sid, 0),
                      bucket=TokenBucket(1.0, 1), anonymous=anonymous, socketless=True)


def ice_links(servers: list[dict[str, Any]]) -> list[str]:
    """RFC 9725 section 4.6: one `Link` value per ICE server URL."""
    links = []
    for server in servers:
        urls = server.get("urls")
        for url in urls if isinstance(urls, list | tuple) else [urls]:
            link = f'<{url}>; rel="ice-server"'
            if server.get("username") and server.get("credential"):
                link += (f'; username="{server["username"]}"; '
                         f'credential="{server["credential"]}"; credential-type="password"')
            links.append(link)
    return links


def error_response(error: DomainError) -> web.Response:
    headers = dict(CORS)
    if error.code is ErrorCode.UNAUTHORIZED:
        headers["WWW-Authenticate"] = 'Bearer realm="golive"'
    if error.code is ErrorCode.RATE_LIMITED:
        headers["Retry-After"] = str(max(1, round(float(error.details["retry_after"]))))  # type: ignore[arg-type]
    # an offer sent as another Content-Type than application/sdp: 415, code invalid
    status = (415 if error.details.get("reason") == "unsupported_media_type"
              else STATUS[error.code])
    return web.json_response({"ok": False, "error": error.to_payload()},
                             status=status, headers=headers)


def errors(handler: Handler) -> Handler:
    """Every refusal as the API's JSON error body with its HTTP status (and CORS, so a
    browser player can read it); a bug is a logged 500."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route else "?"
        try:
            response = await handler(request)
        except DomainError as exc:
            response = error_response(exc)
        except web.HTTPException:
            raise
        except web.RequestPayloadError:  # a broken chunked or gzip body: the client's doing
            response = error_response(invalid("the request body could not be read"))
            response.force_close()
        except Exception as exc:
            response = error_response(as_domain_error(exc, log, "whip handler failed",
                                                      route=name))
        request.app[METRICS].http_requests.labels(name, str(response.status)).inc()
        return response

    return wrapped


async def read_sdp(request: web.Request) -> str:
    """The body, an SDP offer: Content-Type application/sdp (415 otherwise), at most
    MAX_SDP_BYTES, UTF-8 text; the SDP itself is checked by media/negotiation.py."""
    if request.content_type != SDP:
        raise _unsupported(request.content_type)
    if request.content_length is not None and request.content_length > MAX_SDP_BYTES:
        raise invalid(f"an SDP offer is at most {MAX_SDP_BYTES} bytes", reason="too_large")
    raw = await request.content.read(MAX_SDP_BYTES + 1)
    if len(raw) > MAX_SDP_BYTES:
        raise invalid(f"an SDP offer is at most {MAX_SDP_BYTES} bytes", reason="too_large")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("the SDP offer is not UTF-8 text") from None


def _unsupported(got: str) -> DomainError:
    return DomainError(ErrorCode.INVALID, f"send the offer as {SDP}, not {got or 'nothing'}",
                       reason="unsupported_media_type")


def sdp_created(answer: str, location: str, etag: str,
                ice: list[dict[str, Any]]) -> web.Response:
    """201 Created: the answer, its Location, ETag and ICE servers as Link headers."""
    headers = CIMultiDict(CORS)
    headers["Location"] = location
    headers["ETag"] = f'"{etag}"'
    for link in ice_links(ice):
        headers.add("Link", link)
    return web.Response(status=201, text=answer, content_type=SDP, headers=headers)


# --- stream keys ---------------------------------------------------------------


def whip_url(request: web.Request) -> str:
    """The WHIP endpoint as the caller reached this server (behind a TLS proxy, its
    X-Forwarded-Proto names the scheme the encoder must use)."""
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    return f"{scheme if scheme in ('http', 'https') else request.scheme}://{request.host}" \
           f"{WHIP_PATH}"


async def make_stream_key(request: web.Request) -> web.Response:
    """POST /api/me/stream_key: a new key (the old one stops working); under
    GOLIVE_LIVE_MIN_AGE `forbidden` (reason under_age), as live:start answers."""
    session = await signed_in(request)
    await body(request, Empty)  # nothing to send: {} or no body, anything else `invalid`
    services = request.app[SERVICES]
    account = await services.accounts.get(session.user_id)
    check_may_go_live(account.birthdate, utc_today(), request.app[SETTINGS].live_min_age)
    wait = request.app[HTTP_MEDIA].rotations.take(session.user_id)
    if wait:
        raise rate_limited(wait)
    key = await services.stream_keys.rotate(session.user_id)
    log.info("stream key made", extra={"fields": {"user": session.user_id}})
    return ok(stream_key=key, whip_url=whip_url(request))


async def stream_key_state(request: web.Request) -> web.Response:
    """GET /api/me/stream_key: whether the caller has a key (never the key: only its
    hash is stored), and the WHIP URL."""
    session = await signed_in(request)
    return ok(has_key=await request.app[SERVICES].stream_keys.has_key(session.user_id),
              whip_url=whip_url(request))


# --- WHIP --------------------------------------------------------------------------


async def _key_owner(request: web.Request) -> tuple[str, str]:
    """(the creator's id, the key's digest) for the request's Bearer stream key."""
    key = bearer(request)
    if key is None:
        raise unauthorized("send Authorization: Bearer <your stream key> (the studio shows "
                           "it)", "missing")
    creator_id = await request.app[SERVICES].stream_keys.owner(key)
    if creator_id is None:
        raise unauthorized("this stream key is not valid (mistyped, or replaced by a newer "
                           "one): copy it again from the studio", "invalid")
    return creator_id, digest(key)


async def whip_publish(request: web.Request) -> web.Response:
    """POST /whip: go live with the offer; 201 with the answer and the session."""
    media = request.app[HTTP_MEDIA]
    lives = media.lives
    creator_id, key_digest = await _key_owner(request)
    wait = media.publishes.take(creator_id)
    if wait:
        raise rate_limited(wait)
    offer = await read_sdp(request)
    start = convert(LiveStart, {"offer": offer, "title": request.query.get("title", "")})
    hosted = lives.hosted.get(creator_id)
    if hosted is not None and hosted.publisher_sid is not None and (
            hosted.publisher_sid in request.app[GATEWAY].connections
            or hosted.publisher_sid in lives.socketless_publishers):
        raise DomainError(ErrorCode.CONFLICT, "you are already live (from the studio or "
                          "another encoder): end that LIVE first", reason="already_live",
                          live_id=hosted.live.live_id)
    media.check_room()
    session_id = new_session_id()
    conn = _socketless("whip", session_id, creator_id, None)
    ack = await lives.start(conn, start.title, start.offer,
                            signed_in_only=request.query.get("signed_in_only") == "1")
    lives.socketless_publishers.add(conn.sid)
    live_id = ack["live"]["live_id"]
    media.whip[session_id] = WhipSession(session_id, creator_id, live_id, conn.sid, key_digest)
    log.info("whip publish", extra={"fields": {"live": live_id, "creator": creator_id,
                                               "resumed": bool(ack.get("resumed"))}})
    return sdp_created(ack["answer"], f"{WHIP_PATH}/{session_id}", session_id,
                       ack["ice_servers"])


async def whip_end(request: web.Request) -> web.Response:
    """DELETE /whip/{session}: the live ends (200); 404 for a session gone already."""
    media = request.app[HTTP_MEDIA]
    key = bearer(request)
    if key is None:
        raise unauthorized("send Authorization: Bearer <your stream key>", "missing")
    session = media.whip.get(request.match_info["session"])
    if session is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such WHIP session (it ended)")
    if not secrets.compare_digest(digest(key), session.key_digest):
        raise unauthorized("this is not the stream key this session was started with",
                           "invalid")
    media.drop_whip(session.id)
    hosted = media.lives.hosted.get(session.creator_id)
    # A newer session of the same live (the encoder reconnected) owns it now.
    if hosted is not None and hosted.live.live_id == session.live_id and \
            hosted.publisher_sid in (session.sid, None):
        await media.lives.end(session.creator_id, "ended_by_creator")
    log.info("whip end", extra={"fields": {"live": session.live_id}})
    return web.Response(status=200, headers=CORS)


async def session_patch(request: web.Request) -> web.Response:
    """PATCH on a WHIP or WHEP session: no trickle ICE, no ICE restart (405)."""
    return web.Response(status=405, headers={**CORS, "Allow": "DELETE, OPTIONS"},
                        text="trickle ICE and ICE restarts are not supported: the answer "
                             "carries every candidate")


# --- WHEP --------------------------------------------------------------------------


async def _viewer(request: web.Request) -> tuple[str, Session | None]:
    """(the viewer's user id, their session) from a Bearer session token; a fresh
    anonymous identity without one (GOLIVE_WHEP_ANONYMOUS), else `unauthorized`."""
    token = bearer(request)
    if token is not None:
        session = await request.app[SERVICES].sessions.verify(token)
        return session.user_id, session
    if not request.app[SETTINGS].whep_anonymous:
        raise unauthorized("sign in to watch: send Authorization: Bearer <session token>",
                           "signin_required")
    return new_anonymous_id(), None


async def whep_play(request: web.Request) -> web.Response:
    """POST /whep/{username}: watch the creator's live; 201 with the answer."""
    media = request.app[HTTP_MEDIA]
    services = request.app[SERVICES]
    user_id, session = await _viewer(request)
    wait = media.plays.take(request.remote or "?")
    if wait:
        raise rate_limited(wait)
    account = await services.accounts.find(request.match_info["username"])
    offer = await read_sdp(request)
    media.check_room()
    session_id = new_session_id()
    conn = _socketless("whep", session_id, user_id, session, anonymous=session is None)
    ack = await media.lives.join(conn, account.id, media=True, offer=offer)
    live_id = ack["live"]["live_id"]
    media.whep[session_id] = WhepSession(session_id, account.id, live_id, conn)
    return sdp_created(ack["answer"], f"/whep/{account.username}/{session_id}", session_id,
                       ack["ice_servers"])


async def whep_stop(request: web.Request) -> web.Response:
    """DELETE /whep/{username}/{session}: the player stops watching (200)."""
    media = request.app[HTTP_MEDIA]
    play = media.whep.get(request.match_info["session"])
    if play is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such WHEP session (it ended)")
    if not play.conn.anonymous:
        user_id, _ = await _viewer(request)
        if user_id != play.conn.user_id:
            raise DomainError(ErrorCode.FORBIDDEN, "this is another viewer's session")
    del media.whep[play.id]
    await media.lives.leave(play.conn, play.live_id)
    return web.Response(status=200, headers=CORS)


# --- OPTIONS -----------------------------------------------------------------------


def preflight(methods: str, *, accept_post: bool) -> Handler:
    """OPTIONS: CORS preflight (section 4.1 of RFC 9725 allows any origin), and the ICE
    servers as Link headers for a caller whose Bearer token is valid."""

    async def handle(request: web.Request) -> web.Response:
        headers = CIMultiDict(CORS)
        headers["Access-Control-Allow-Methods"] = methods
        headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, If-Match"
        headers["Access-Control-Max-Age"] = "86400"
        headers["Allow"] = methods
        if accept_post:
            headers["Accept-Post"] = SDP
        user_id = await _options_user(request)
        if user_id is not None:
            for link in ice_links(request.app[LIVES].client_ice.for_user(user_id)):
                headers.add("Link", link)
        return web.Response(status=204, headers=headers)

    return handle


async def _options_user(request: web.Request) -> str | None:
    token = bearer(request)
    if token is None:
        return None
    services = request.app[SERVICES]
    if request.path == WHIP_PATH:
        return await services.stream_keys.owner(token)
    try:
        return (await services.sessions.verify(token)).user_id
    except DomainError:
        return None


def setup(app: web.Application) -> None:
    app[HTTP_MEDIA] = HttpMedia(app[LIVES])
    app.router.add_post("/api/me/stream_key", make_stream_key)
    app.router.add_get("/api/me/stream_key", stream_key_state)
    app.router.add_post(WHIP_PATH, errors(whip_publish))
    app.router.add_options(WHIP_PATH, errors(preflight("POST, OPTIONS", accept_post=True)))
    session = WHIP_PATH + "/{session}"
    app.router.add_delete(session, errors(whip_end))
    app.router.add_patch(session, errors(session_patch))
    app.router.add_options(session, errors(preflight("DELETE, OPTIONS", accept_post=False)))
    app.router.add_post("/whep/{username}", errors(whep_play))
    app.router.add_options("/whep/{username}",
                           errors(preflight("POST, OPTIONS", accept_post=True)))
    play = "/whep/{username}/{session}"
    app.router.add_delete(play, errors(whep_stop))
    app.router.add_patch(play, errors(session_patch))
    app.router.add_options(play, errors(preflight("DELETE, OPTIONS", accept_post=False)))
