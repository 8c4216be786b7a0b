"""Structured log lines: one JSON object a line, fields from `extra={"fields": {...}}`.

Callers never pass passwords or tokens; `REDACTED_KEYS` is a second guard for
field names that would carry them.
"""

from __future__ import annotations

import json
import logging
import sys
import time

REDACTED_KEYS = frozenset({"password", "token", "secret", "authorization", "auth"})


class JsonFormatter(logging.Formatter):
    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.node is not None:  # a worker's lines say which worker wrote them
            line["node"] = self.node
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line[key] = "[redacted]" if key.lower() in REDACTED_KEYS else value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class ClientErrorFilter(logging.Filter):
    """aiohttp logs a malformed request (a header it cannot parse, a Content-Encoding it
    cannot decode, gzip that is not gzip) at ERROR with a traceback, twice for a body it
    could not read ("Unhandled exception" after the answer): anyone could fill the log
    with tracebacks, one request each (found by bench/fuzz.py). The client's error, so
    one warning line naming it. Attached to the "aiohttp.server" logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError
        from aiohttp.web import RequestPayloadError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError | RequestPayloadError):
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {str(exc).strip()[:200]}"
            record.args = ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


class PollingGarbageFilter(logging.Filter):
    """python-engineio logs a long-polling POST it cannot decode (not UTF-8, an empty
    packet, a packet type it has no name for) with logger.exception, "post request
    handler error", a traceback at ERROR for each such request of anyone holding a
    session (which a GET hands out); it then answers 200 and drops the payload. The
    websocket path drops undecodable frames in one warning line (gateway); the same here
    (found by bench/fuzz.py). Attached to the "engineio.server" logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        # ValueError: not UTF-8, an empty packet, no packet type; IndexError: a packet type
        # past engineio's table ("7"); the rest of that handler only queues the packets
        if record.msg == "post request handler error" and isinstance(
                exc, ValueError | IndexError | KeyError | TypeError):
            record.msg = f"undecodable polling payload dropped: {type(exc).__name__}: " \
                         f"{str(exc)[:120]}"
            record.args = ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def configure(level: str = "info", *, node: str | None = None) -> None:
    """Send golive's structured lines to stderr, each naming `node` when given (the
    workers of `golive serve --workers N` share one stderr); quiet the libraries' chatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "engineio.server", "socketio.server", "aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name, kind in (("aiohttp.server", ClientErrorFilter),
                       ("engineio.server", PollingGarbageFilter)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())
    # A library's warnings.warn() (redis-py 8.2 added one) would print plain text on
    # stderr between the JSON lines; routed through logging they become one JSON line
    # each, logger "py.warnings".
    logging.captureWarnings(True)
    logging.Formatter.converter = time.gmtime
