"""Every access golive makes to aiohttp's private attributes (aiohttp >=3.9,<3.15).

The room push writes a prepared websocket frame straight to a WebSocketResponse's
transport, which aiohttp keeps on its private writer. Checked at import
(media/library_privates.py); tests/test_library_privates.py checks it on a real
WebSocketResponse.
"""

from __future__ import annotations

import asyncio

from aiohttp.web_ws import WebSocketResponse

from media.library_privates import Private, require

SUPPORTED = ("3.9", "3.15")  # >=, < : keep in step with pyproject.toml

PRIVATES = (
    Private(WebSocketResponse, "_writer", True, "signaling.frames (the socket's transport)"),
)
VERSION = require("aiohttp", *SUPPORTED, PRIVATES)


def websocket_transport(ws: WebSocketResponse) -> asyncio.Transport | None:
    """The transport under a prepared WebSocketResponse (None before prepare or after close)."""
    writer = ws._writer
    return None if writer is None else writer.transport
