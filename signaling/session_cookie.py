"""The browser's session: an HttpOnly cookie instead of a token script can read.

A page signs in with `"cookie": true` in the body of POST /api/register or
/api/signin: the answer sets the `golive_session` cookie (HttpOnly, SameSite=Strict,
Path=/, Secure over https, Max-Age to the token's expiry) and leaves the token out of
the body, so no script on the page, injected or not, ever holds it. The server reads
the cookie where a bearer token is missing: on every HTTP route (http_api.signed_in)
and in the Socket.IO handshake (gateway). API and bot clients keep sending
`Authorization: Bearer <token>`, which wins over a cookie.

Cross-site requests (CSRF): a cookie rides along with requests other sites make,
so a request the cookie signs in must come from golive's own pages. Two locks:
- SameSite=Strict: the browser sends the cookie only on requests a golive page made
  (not on a link, form or fetch from another site).
- `cross_site_refusal` on every state-changing request (POST, PUT, PATCH, DELETE) that
  the cookie signs in, and on a sign-in that asks for the cookie (login CSRF: another
  site signing a visitor into its own account): the Origin header must name this
  host, or, without Origin, Sec-Fetch-Site must say same-origin. A browser sends one
  of them on every such request; a request with neither is refused.
The websocket handshake is checked by Engine.IO itself: an Origin other than this
host is refused (cors_allowed_origins=None, the default: same origin only).
A bearer token needs neither lock: another site cannot make a browser send one.
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from engine.errors import DomainError, forbidden

COOKIE = "golive_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_site_refusal(method: str, host: str, origin: str | None,
                       fetch_site: str | None) -> str | None:
    """Why a cookie-signed request is refused as cross-site, or None when it may go on.

    `host` is the Host header; `origin` the Origin header (absent: None); `fetch_site`
    the Sec-Fetch-Site header. Reads (GET, HEAD, OPTIONS) change nothing and pass.
    """
    if method.upper() in SAFE_METHODS:
        return None
    if origin is not None:
        # "null" (a sandboxed frame, a file: page) has no host and never matches.
        if urlsplit(origin).netloc.lower() == host.lower() and host:
            return None
        return f"Origin {origin} is not this site ({host})"
    if fetch_site == "same-origin":
        return None
    if fetch_site:
        return f"Sec-Fetch-Site: {fetch_site}"
    return "no Origin header: a state change signed in by the cookie must name its origin"


def check_same_site(request: web.Request) -> None:
    """`forbidden` when a cookie-signed request looks cross-site (cross_site_refusal)."""
    why = cross_site_refusal(request.method, request.host, request.headers.get("Origin"),
                             request.headers.get("Sec-Fetch-Site"))
    if why is not None:
        raise cross_site(why)


def cross_site(why: str) -> DomainError:
    error = forbidden(f"refused as a cross-site request: {why}")
    error.details["reason"] = "cross_site"
    return error


def request_token(request: web.Request) -> str | None:
    """The session cookie's token on an HTTP request, or None."""
    return request.cookies.get(COOKIE) or None


def environ_token(environ: dict[str, Any]) -> str | None:
    """The session cookie's token in a Socket.IO handshake's environ, or None."""
    request = environ.get("aiohttp.request")
    if isinstance(request, web.BaseRequest):
        return request.cookies.get(COOKIE) or None
    raw = environ.get("HTTP_COOKIE")
    if not raw:
        return None
    try:
        morsel = SimpleCookie(raw).get(COOKIE)
    except CookieError:
        return None
    return (morsel.value or None) if morsel is not None else None


def set_cookie(response: web.StreamResponse, token: str, *, max_age: int,
               secure: bool) -> None:
    """Keep `token` in the browser for max_age seconds (its remaining lifetime)."""
    response.set_cookie(COOKIE, token, max_age=max(0, max_age), path="/", httponly=True,
                        samesite="Strict", secure=secure)


def clear_cookie(response: web.StreamResponse, *, secure: bool) -> None:
    """Tell the browser to forget the session cookie."""
    response.del_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=secure)


__all__ = ["COOKIE", "check_same_site", "clear_cookie", "cross_site_refusal",
           "environ_token", "request_token", "set_cookie"]
