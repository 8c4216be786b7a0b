"""A playwright browser context signed in as the golive pages sign in: the session token
as the HttpOnly cookie the server sets (signaling/session_cookie.py), and session.js's
record of who is signed in (`golive.session` in localStorage, set before any page
script runs). The bench's Chromium pages and tests/support/pages.py both use it."""

from __future__ import annotations

import json
from typing import Any


async def sign_in_context(context: Any, base_url: str, token: str, user: dict[str, Any],
                          expires_at: float | None = None) -> None:
    """Every page `context` opens from now on starts signed in as `user` (its `token`)."""
    from signaling.session_cookie import COOKIE

    stored: dict[str, Any] = {"user": user}
    if expires_at is not None:
        stored = {"expires_at": expires_at, **stored}
    value = json.dumps(json.dumps(stored))  # a JS string literal holding the JSON
    await context.add_cookies([{"name": COOKIE, "value": token, "url": base_url,
                                "httpOnly": True, "sameSite": "Strict"}])
    await context.add_init_script(
        f"try {{ localStorage.setItem('golive.session', {value}); }} catch {{}}")
