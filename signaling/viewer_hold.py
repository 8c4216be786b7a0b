"""Viewer holds: a viewer whose socket dropped keeps its media for a short grace.

A viewer's page loses its Socket.IO connection together with its network (Wi-Fi to
cellular, a tunnel). Without a hold its peer connection, its place in the count and
its quality pin would go with the socket, and the page would rejoin from scratch (a
new peer connection, a viewer-count blip, a new keyframe wait). With one, the media
stays for `seconds` (GOLIVE_VIEWER_RESUME_GRACE, 10 s by default: the media's own
viewer silence timeout, past which a dead path ends the peer connection anyway) and
the page's new socket takes it back with `room:resume` and the resume token its
`room:join` ack gave it.

The token is random (24 bytes) and secret; only its SHA-256 is stored. It is bound to
what the join was made by: the signed-in user (another user's socket is refused), or
for a signed-out visitor, whose new socket gets a new made-up identity, to the token
itself (only that page ever saw it). A token is used once: a resume hands out a new
one. Holds live in this node's memory: a new socket that lands on another node gets
`not_found` and the page joins again.

`check_resume` is the rule, a plain function; `ViewerHolds` keeps the tokens and owns
one expiry task per hold (`close` cancels and awaits them).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from engine.errors import DomainError, ErrorCode
from signaling.tasks import cancel_and_wait

log = logging.getLogger("golive.lives")

TOKEN_BYTES = 24  # 192 bits: never guessed, whatever the event rate
TOKEN_MAX_CHARS = 64  # token_urlsafe(24) is 32 characters; the schema bounds what comes in


def new_token() -> str:
    """A fresh resume token (URL-safe text)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Hold:
    """One viewer's media, waiting for a new socket (or, `deadline` None, still bound to
    its socket: a token issued, nothing held yet)."""

    live_id: str
    sid: str  # the socket it is bound to, or was until it dropped
    media_key: str  # its id in the media room: the sid of the socket that joined
    user_id: str  # the identity counted as watching (viewer_left needs it)
    anonymous: bool
    deadline: float | None = None  # time.monotonic() past which the hold is over

    @property
    def held(self) -> bool:
        """Its socket is gone (not only presumed alive)."""
        return self.deadline is not None


def check_resume(hold: Hold | None, *, live_id: str, sid: str, user_id: str,
                 anonymous: bool, live_running: bool, now: float) -> Hold:
    """The join a new socket (`sid`, `user_id`, `anonymous`) may take back with a token,
    or a DomainError: not_found (reason unknown_token: no such token here, or another
    live's; expired; live_ended), forbidden (reason other_user: the join is another
    user's, or a signed-in user's token from a visitor's socket or the other way round)
    or conflict (the socket sending it is the one the join is bound to).

    A join still bound to its old socket (no hold yet) may be taken too: the server
    learns a connection was lost only from its ping timeout (~20-45 s) or a closed
    transport, and a page on a new network is back long before; the token, which only
    that page saw, says it is the same page."""
    if hold is None or hold.live_id != live_id:
        raise DomainError(ErrorCode.NOT_FOUND, "nothing to resume on this server: join again",
                          reason="unknown_token")
    if hold.sid == sid:
        raise DomainError(ErrorCode.CONFLICT, "this connection already has this join")
    if hold.deadline is not None and now >= hold.deadline:
        raise DomainError(ErrorCode.NOT_FOUND, "the connection was away too long: join again",
                          reason="expired")
    if not live_running:
        raise DomainError(ErrorCode.NOT_FOUND, "this live has ended", reason="live_ended")
    if hold.anonymous != anonymous or (not anonymous and hold.user_id != user_id):
        raise DomainError(ErrorCode.FORBIDDEN, "this resume token is not yours",
                          reason="other_user")
    return hold


class ViewerHolds:
    """The resume tokens of one node's viewers (by digest), and the held ones' timers.

    `on_expiry(hold)` runs when a hold's grace is over (live rooms then end its media
    and its place in the count) unless it was taken back first."""

    def __init__(self, seconds: float, on_expiry: Callable[[Hold], Awaitable[object]]) -> None:
        self.seconds = seconds
        self.on_expiry = on_expiry
        self._tokens: dict[str, Hold] = {}  # digest -> bound or held viewer
        self._bound: dict[tuple[str, str], str] = {}  # (sid, live id) -> digest
        self._timers: dict[str, asyncio.Task[None]] = {}  # digest -> expiry of a held one

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    def held(self) -> list[Hold]:
        """The holds waiting for a new socket."""
        return [h for h in self._tokens.values() if h.deadline is not None]

    def issue(self, sid: str, live_id: str, media_key: str, user_id: str,
              anonymous: bool) -> str | None:
        """A new token for the viewer `sid` of the live (replacing its previous one);
        None when holds are off (GOLIVE_VIEWER_RESUME_GRACE=0)."""
        if not self.enabled:
            return None
        self._unbind(sid, live_id)
        token = new_token()
        digest = token_digest(token)
        self._tokens[digest] = Hold(live_id, sid, media_key, user_id, anonymous)
        self._bound[(sid, live_id)] = digest
        return token

    def hold(self, sid: str, live_id: str) -> Hold | None:
        """The viewer's socket dropped: hold its media for `seconds`; the hold, or None
        when it has no token (nothing is held: its media ends as before)."""
        digest = self._bound.pop((sid, live_id), None)
        bound = self._tokens.get(digest) if digest is not None else None
        if digest is None or bound is None:
            return None
        held = replace(bound, deadline=time.monotonic() + self.seconds)
        self._tokens[digest] = held
        self._timers[digest] = asyncio.create_task(self._expire(digest, held),
                                                   name=f"viewer-hold-{live_id}")
        return held

    async def take(self, token: str, *, live_id: str, sid: str, user_id: str,
                   anonymous: bool, live_running: bool) -> Hold:
        """Take a viewer's join back for the socket `sid`, held or still bound to its old
        socket (check_resume's rule); its token is spent and its timer cancelled. A
        refusal for someone else's token leaves it to its owner; an expired or ended one
        is dropped."""
        digest = token_digest(token)
        hold = self._tokens.get(digest)
        try:
            check_resume(hold, live_id=live_id, sid=sid, user_id=user_id,
                         anonymous=anonymous, live_running=live_running,
                         now=time.monotonic())
        except DomainError as exc:
            if exc.details.get("reason") in ("expired", "live_ended"):
                await self._drop(digest)
            raise
        assert hold is not None  # check_resume raised otherwise
        await self._drop(digest)
        return hold

    async def forget(self, sid: str, live_id: str) -> None:
        """The viewer left (room:leave, a ban, its media gone): its token is void and
        its hold, if any, ends without on_expiry."""
        digest = self._bound.pop((sid, live_id), None)
        if digest is None:
            digest = next((d for d, h in self._tokens.items()
                           if h.sid == sid and h.live_id == live_id), None)
        if digest is not None:
            await self._drop(digest)

    def live_ended(self, live_id: str) -> None:
        """The live ended: the tokens of its viewers still on their sockets are void (a
        held one stays until its timer, so a page back meanwhile is told `live_ended`)."""
        for key in [k for k in self._bound if k[1] == live_id]:
            self._unbind(*key)

    async def close(self) -> None:
        """Cancel and await every timer; forget every token. Idempotent."""
        timers = list(self._timers.values())
        self._timers.clear()
        self._tokens.clear()
        self._bound.clear()
        await cancel_and_wait(*timers)

    def _unbind(self, sid: str, live_id: str) -> None:
        digest = self._bound.pop((sid, live_id), None)
        if digest is not None and digest not in self._timers:
            self._tokens.pop(digest, None)

    async def _drop(self, digest: str) -> None:
        hold = self._tokens.pop(digest, None)
        if hold is not None and self._bound.get((hold.sid, hold.live_id)) == digest:
            del self._bound[(hold.sid, hold.live_id)]
        await cancel_and_wait(self._timers.pop(digest, None))

    async def _expire(self, digest: str, hold: Hold) -> None:
        await asyncio.sleep(self.seconds)
        if self._tokens.get(digest) is not hold:
            return
        del self._tokens[digest]
        self._timers.pop(digest, None)
        log.info("viewer hold expired", extra={"fields": {"live": hold.live_id,
                                                          "sid": hold.sid}})
        try:
            await self.on_expiry(hold)
        except Exception:
            log.exception("ending an expired viewer hold failed",
                          extra={"fields": {"live": hold.live_id}})


__all__ = ["Hold", "ViewerHolds", "check_resume", "new_token", "token_digest"]
