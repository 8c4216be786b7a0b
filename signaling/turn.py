"""TURN for clients behind firewalls: the ICE servers each client is handed, with TURN
credentials golive makes per user.

The scheme is the TURN REST API's (draft-uberti-behave-turn-rest), which coturn checks
with `use-auth-secret` + `static-auth-secret`: golive and the TURN server share one
secret; a credential is

    username   = "<expiry, unix seconds>:<user id>"
    credential = base64(HMAC-SHA1(secret, username))

so coturn verifies it with no call to golive, and refuses it once the expiry has passed.
coturn checks the expiry only when a client makes an allocation: a relay already running
outlives its credential (its refreshes keep succeeding; tests/test_turn.py pins that). And
every join, go-live and `rtc:config` hands out a fresh credential. So one only has to
last from its ack to the client's Allocate (milliseconds to seconds), plus any new
allocation the same peer connection makes without a new ack (the browser re-gathering
after a network change). Hence 1 h by default: ample for that, while a credential copied
out of a page opens relays for at most an hour.

Signed-out viewers have a server-made per-socket id (`anon-` + 12 hex digits,
engine/anonymous.py): their credential names that socket, so coturn's log tells their
relays apart, and a new socket gets a new one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_TTL_S = 3600
MIN_TTL_S = 60  # shorter would expire between a join's ack and its Allocate on a slow page
TRANSPORT_POLICIES = ("all", "relay")


@dataclass(frozen=True)
class TurnCredential:
    """One TURN REST credential: what the browser puts in its RTCIceServer."""

    username: str
    credential: str
    expires_at: int  # unix seconds


def rest_credential(secret: bytes, user_id: str, now: float, ttl_s: int) -> TurnCredential:
    """The TURN REST credential for `user_id`, valid `ttl_s` seconds from `now`.

    coturn reads the expiry from the digits before the first ':' of the username, so a
    user id may hold any characters (golive's are hex, or `anon-` + hex)."""
    if not secret:
        raise ValueError("the TURN secret is empty")
    if not user_id:
        raise ValueError("a TURN credential needs a user id")
    if ttl_s < 1:
        raise ValueError("a TURN credential needs a positive lifetime")
    expires_at = int(now) + int(ttl_s)
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return TurnCredential(username, base64.b64encode(digest).decode("ascii"), expires_at)


def parse_turn_urls(text: str) -> tuple[str, ...]:
    """TURN URLs from a comma-separated list: turn:HOST[:PORT][?transport=udp|tcp] or
    turns:HOST[:PORT][?transport=tcp] (TLS over TCP). Raises ValueError naming the bad one."""
    urls = tuple(u.strip() for u in text.split(",") if u.strip())
    for url in urls:
        scheme, _, rest = url.partition(":")
        if scheme not in ("turn", "turns") or not rest or rest.startswith("//"):
            raise ValueError(f"not a TURN URL: {url!r} (turn:HOST:PORT or turns:HOST:PORT)")
        # urlsplit reads the host and port only after '//'
        parts = urlsplit("//" + rest)
        try:
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise ValueError(f"bad port in TURN URL: {url!r}") from None
        if not parts.hostname:
            raise ValueError(f"no host in TURN URL: {url!r}")
        query = parse_qs(parts.query)
        if set(query) - {"transport"}:
            raise ValueError(f"TURN URL {url!r}: only ?transport= is understood")
        transport = query.get("transport", ["udp" if scheme == "turn" else "tcp"])
        if transport not in (["udp"], ["tcp"]) or (scheme == "turns" and transport != ["tcp"]):
            raise ValueError(f"TURN URL {url!r}: transport must be udp or tcp (turns: tcp)")
    return urls


class IceServers:
    """The ICE configuration clients are handed: the static servers (GOLIVE_ICE_SERVERS,
    shared by everyone) and, with TURN configured, one TURN entry whose credential is
    made for the asking user at that moment."""

    def __init__(self, static: Sequence[dict[str, Any]], turn_urls: Sequence[str] = (),
                 secret: bytes | None = None, ttl_s: int = DEFAULT_TTL_S,
                 transport_policy: str = "all",
                 clock: Callable[[], float] = time.time) -> None:
        if turn_urls and not secret:
            raise ValueError("TURN URLs are configured without GOLIVE_TURN_SECRET")
        if transport_policy not in TRANSPORT_POLICIES:
            raise ValueError(f"ICE transport policy must be all or relay: {transport_policy!r}")
        if transport_policy == "relay" and not turn_urls and not any(
                str(u).startswith(("turn:", "turns:"))
                for s in static for u in _as_list(s.get("urls"))):
            raise ValueError("the relay ICE transport policy needs a TURN server")
        self.static = [dict(s) for s in static]
        self.turn_urls = tuple(turn_urls)
        self._secret = secret
        self.ttl_s = ttl_s
        self.transport_policy = transport_policy
        self._clock = clock

    def for_user(self, user_id: str) -> list[dict[str, Any]]:
        """The `ice_servers` for one client (the browser's RTCIceServer shape)."""
        servers = [dict(s) for s in self.static]
        if self.turn_urls and self._secret:
            made = rest_credential(self._secret, user_id, self._clock(), self.ttl_s)
            servers.append({"urls": list(self.turn_urls), "username": made.username,
                            "credential": made.credential})
        return servers

    def for_client(self, user_id: str) -> dict[str, Any]:
        """What an ack carries: `ice_servers` and `ice_transport_policy` (all or relay)."""
        return {"ice_servers": self.for_user(user_id),
                "ice_transport_policy": self.transport_policy}

    def __repr__(self) -> str:  # the secret never reaches a log line
        return (f"IceServers(static={len(self.static)}, turn_urls={self.turn_urls!r}, "
                f"ttl_s={self.ttl_s}, transport_policy={self.transport_policy!r})")


def _as_list(urls: Any) -> list[Any]:
    return list(urls) if isinstance(urls, list | tuple) else [urls]
