"""The browser security headers on every response: a Content-Security-Policy with no
inline script or style, and the headers that refuse sniffing, framing and leaking.

`security_headers` is the rule (a plain function of the request's host and scheme,
called by tests); `setup` installs it as an on_response_prepare hook, so every
response the app prepares carries it: pages, /api, /static, the favicon, the errors
aiohttp raises itself (404, 405, 413) and the Socket.IO handshake. A middleware would
miss the last two kinds: a 404 of the router and a websocket upgrade never return
through one as a Response it could touch.

Why each directive (docs/security.md, "Browser security", says the same for people):
- script-src 'self': the pages load only /static/*.js modules and the vendored
  Socket.IO client; no inline <script>, no handler attributes, no eval. Injected
  markup that slips past textContent still cannot run.
- style-src 'self': stylesheets only from /static; no style="" attributes (a script
  may still set element.style through the CSSOM, which CSP allows and the pages use
  for computed colours and bar heights).
- connect-src 'self' plus ws:/wss: of the same host: fetch to /api and the Socket.IO
  websocket; CSP 3 counts same-host ws: as 'self' but older engines do not.
- img-src 'self' data:: avatars and gift art are served here; the stylesheets draw
  their icons as data: SVGs. No blob: (no page makes object URLs).
- media-src 'self': the player and the camera preview take MediaStreams through
  srcObject, which no URL directive governs.
- frame-ancestors 'none' (and X-Frame-Options DENY for older browsers): no page can
  be framed, so no click can be hijacked through an invisible overlay.
- base-uri 'none', form-action 'self', object-src 'none': an injected <base> cannot
  re-point relative URLs, an injected <form> cannot post elsewhere, no plugins.
"""

from __future__ import annotations

import re

from aiohttp import web

CSP_HEADER = "Content-Security-Policy"
# A Host header as a CSP source: a name or IPv4/IPv6 literal and a port. Anything else
# (a client's own "a; frame-ancestors *") is left out, never pasted into the policy.
HOST_SOURCE = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def content_security_policy(host: str) -> str:
    """The CSP for a page served from `host` (the Host header: name[:port])."""
    sockets = f"ws://{host} wss://{host}" if HOST_SOURCE.match(host) else ""
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "media-src": "'self'",
        "font-src": "'self'",
        "connect-src": f"'self' {sockets}".strip(),
        "worker-src": "'none'",
        "manifest-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
        "frame-src": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


# camera and microphone for this origin only (the studio); the rest of what a page
# could ask for, refused to every origin.
PERMISSIONS_POLICY = ", ".join((
    "camera=(self)", "microphone=(self)", "display-capture=()", "geolocation=()",
    "payment=()", "usb=()", "serial=()", "bluetooth=()", "midi=()",
    "accelerometer=()", "gyroscope=()", "magnetometer=()",
))


def security_headers(host: str, *, secure: bool = False) -> dict[str, str]:
    """The headers every response carries; `secure` (an https request) adds HSTS."""
    headers = {
        CSP_HEADER: content_security_policy(host),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        # Links leaving golive carry the origin only: /messages?c=<conversation id>
        # and /@name paths stay in the site.
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Permissions-Policy": PERMISSIONS_POLICY,
        # A page golive opens, or that opens golive, gets no window handle to it.
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if secure:
        # Only over https: on plain http browsers ignore it, and a loopback dev server
        # must not pin itself to https.
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: every response gets security_headers (a handler's own
    value wins, so a route may relax one header on purpose)."""
    for name, value in security_headers(request.host, secure=request.secure).items():
        response.headers.setdefault(name, value)


def setup(app: web.Application) -> None:
    """Put the security headers on every response of `app`."""
    app.on_response_prepare.append(add_security_headers)


__all__ = ["CSP_HEADER", "PERMISSIONS_POLICY", "add_security_headers",
           "content_security_policy", "security_headers", "setup"]
