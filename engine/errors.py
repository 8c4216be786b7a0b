"""Typed domain errors with stable codes: the client sees the code, the log sees the cause.

Two codes say the server, not the request, failed. `unavailable` is retryable: the
server is overloaded or starting, Redis does not answer, the live is hosted on another
node; the same request may succeed later. `internal` is a bug: it is logged with its
traceback under an error id, the client gets the id, and retrying repeats the bug.
web/static/errors.js and media/errors.py name the same codes (tests/test_error_codes.py).
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """The one enum of error codes every ack and HTTP error uses (docs/protocol.md)."""

    INVALID = "invalid"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


# The codes whose request may succeed when sent again unchanged: after `retry_after`
# (rate_limited), or once the server or Redis is back (unavailable).
RETRYABLE = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE})


class DomainError(Exception):
    """An expected failure with a stable code and a message fit for the client."""

    def __init__(self, code: ErrorCode, message: str, **details: object) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed later (RETRYABLE)."""
        return self.code in RETRYABLE

    def to_payload(self) -> dict[str, object]:
        """The `error` object of an ack: {code, message, ...details}, and
        `retryable: true` when the code is retryable (absent means false)."""
        payload: dict[str, object] = {"code": str(self.code), "message": self.message,
                                      **self.details}
        if self.retryable:
            payload["retryable"] = True
        return payload


def invalid(message: str, **details: object) -> DomainError:
    return DomainError(ErrorCode.INVALID, message, **details)


def not_found(message: str) -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, message)


def forbidden(message: str) -> DomainError:
    return DomainError(ErrorCode.FORBIDDEN, message)


def conflict(message: str) -> DomainError:
    return DomainError(ErrorCode.CONFLICT, message)


def unauthorized(message: str, reason: str) -> DomainError:
    return DomainError(ErrorCode.UNAUTHORIZED, message, reason=reason)


def rate_limited(retry_after: float) -> DomainError:
    return DomainError(
        ErrorCode.RATE_LIMITED,
        f"too many requests; retry after {retry_after:.2f} s",
        retry_after=round(retry_after, 3),
    )


def unavailable(message: str, **details: object) -> DomainError:
    return DomainError(ErrorCode.UNAVAILABLE, message, **details)


def internal(error_id: str) -> DomainError:
    """A bug, answered with the id it is logged under."""
    return DomainError(ErrorCode.INTERNAL,
                       f"the server failed on this request (error {error_id}); it is logged",
                       error_id=error_id)
