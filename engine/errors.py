"""Typed domain errors with stable codes: the client sees the code, the log sees the cause."""

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


class DomainError(Exception):
    """An expected failure with a stable code and a message fit for the client."""

    def __init__(self, code: ErrorCode, message: str, **details: object) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details

    def to_payload(self) -> dict[str, object]:
        """The `error` object of an ack: {code, message, ...details}."""
        return {"code": str(self.code), "message": self.message, **self.details}


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
