"""Every failure at the edge becomes one DomainError here, and only here.

The gateway (Socket.IO acks) and the HTTP API answer with `as_domain_error(exc)`;
live rooms translate the media errors they catch with `from_media`. So:
  DomainError                   itself (an expected refusal, not logged)
  MediaError                    the engine code of the same name (MEDIA_CODES)
  Redis or the network failing  `unavailable` (retryable), one warning line
  anything else                 `internal`: a bug, logged with its traceback under
                                an error id the client is answered with
"""

from __future__ import annotations

import logging
import secrets

from redis.exceptions import RedisError

from engine.errors import DomainError, ErrorCode, internal, unavailable
from media.errors import MediaError, MediaErrorCode

# media names its codes after the engine's without importing it; tests/test_error_codes.py
# keeps every media code's value equal to the engine code of the same name.
MEDIA_CODES: dict[MediaErrorCode, ErrorCode] = {code: ErrorCode[code.name]
                                                for code in MediaErrorCode}

# Failures of what the server depends on, not of its code: Redis (connection, timeout,
# a node loading its AOF), sockets, and timeouts (builtin TimeoutError is an OSError).
UNAVAILABLE_CAUSES: tuple[type[BaseException], ...] = (RedisError, OSError)


def from_media(exc: MediaError) -> DomainError:
    """A media failure as the domain error the client is answered with."""
    return DomainError(MEDIA_CODES[exc.code], exc.message, **exc.details)


def new_error_id() -> str:
    """12 hex digits: short enough to read out, unique enough to grep a log for."""
    return secrets.token_hex(6)


def as_domain_error(exc: Exception, log: logging.Logger, what: str,
                    **fields: object) -> DomainError:
    """The one answer for any failure of a request; logs what needs logging.

    `what` names the failing step in the log line ("event handler failed"), `fields`
    add to it (event, route, sid)."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, MediaError):
        return from_media(exc)
    if isinstance(exc, UNAVAILABLE_CAUSES):
        log.warning(f"{what}: a dependency is unavailable", extra={"fields": {
            **fields, "cause": f"{type(exc).__name__}: {exc}"[:200]}})
        return unavailable("the server could not handle this request now; try again shortly")
    error_id = new_error_id()
    log.error(what, exc_info=exc, extra={"fields": {**fields, "error_id": error_id}})
    return internal(error_id)


__all__ = ["MEDIA_CODES", "UNAVAILABLE_CAUSES", "as_domain_error", "from_media",
           "new_error_id"]
