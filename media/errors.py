"""Typed media errors with stable codes.

The codes are the same strings as the project's one error enum (engine.errors.ErrorCode),
so signaling can put `err.code` straight into an ack without media importing the engine.
"""

from __future__ import annotations

import enum


class MediaErrorCode(enum.StrEnum):
    """The subset of the project's error codes that media can raise."""

    INVALID = "invalid"  # the input (SDP, overlay, id) is malformed or unusable
    CONFLICT = "conflict"  # the call clashes with the room's state (second publish, answer twice)
    NOT_FOUND = "not_found"  # the viewer id is unknown
    UNAVAILABLE = "unavailable"  # the room is closed or full, or joins are busy (retryable)


class MediaError(Exception):
    """An expected media failure: `code` for the client, `message` for humans and logs."""

    def __init__(self, code: MediaErrorCode, message: str, **details: object) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details  # e.g. retry_after (seconds) on a busy `unavailable`


def invalid(message: str) -> MediaError:
    return MediaError(MediaErrorCode.INVALID, message)


def conflict(message: str) -> MediaError:
    return MediaError(MediaErrorCode.CONFLICT, message)


def not_found(message: str) -> MediaError:
    return MediaError(MediaErrorCode.NOT_FOUND, message)


def unavailable(message: str, **details: object) -> MediaError:
    return MediaError(MediaErrorCode.UNAVAILABLE, message, **details)
