"""What a golive call can fail with.

`GoliveError` is the server's answer `{ok: false, error: {code, message, ...details}}`
(docs/protocol.md, "Conventions"): `code` and `details` are stable, `message` is for people.
`NotSent` and `NoAnswer` are the client's own: nothing went out (no connection), or the
request went out and no answer came (a timeout, the connection dropped while waiting), so
the server may have applied it. Both are `retryable`: an operation with an id (a gift's
`transfer_id`, a checkout's `checkout_id`) is sent again unchanged; one without (a chat
line) is not, or it may be written twice.
"""

from __future__ import annotations

from typing import Any

CODES = frozenset({"invalid", "unauthorized", "forbidden", "not_found", "rate_limited",
                   "insufficient_funds", "conflict", "unavailable", "internal"})


class GoliveError(Exception):
    """A refusal with the server's stable `code` (one of CODES) and its `details`
    (`reason`, `retry_after`, `field`, `need`/`have`...); `error` is the whole object."""

    def __init__(self, code: str, message: str = "", details: dict[str, Any] | None = None
                 ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.details = dict(details or {})

    @classmethod
    def from_error(cls, error: Any) -> GoliveError:
        """The exception for an answer's `error` object (anything else is `internal`)."""
        if not isinstance(error, dict):
            return cls("internal", f"not an error object: {error!r}")
        details = {k: v for k, v in error.items() if k not in ("code", "message")}
        return cls(str(error.get("code", "internal")), str(error.get("message", "")), details)

    @property
    def error(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}

    @property
    def reason(self) -> str | None:
        reason = self.details.get("reason")
        return None if reason is None else str(reason)

    @property
    def retryable(self) -> bool:
        """The same request, unchanged, may succeed later (`rate_limited`, `unavailable`)."""
        return bool(self.details.get("retryable"))

    @property
    def retry_after(self) -> float | None:
        value = self.details.get("retry_after")
        return float(value) if isinstance(value, int | float) else None


class NotSent(GoliveError):
    """No connection: the request was not sent (safe to send again)."""

    def __init__(self, message: str = "not connected") -> None:
        super().__init__("not_sent", message, {"retryable": True})


class NoAnswer(GoliveError):
    """The request was sent and no answer came in time: it may have been applied."""

    def __init__(self, message: str = "no answer") -> None:
        super().__init__("no_answer", message, {"retryable": True})


class LiveRefused(GoliveError):
    """`live:start` answered an error (an age, a second live, a resume too late)."""

    def __init__(self, error: dict[str, Any]) -> None:
        refused = GoliveError.from_error(error)
        super().__init__(refused.code, refused.message, refused.details)
        self.args = (f"live:start refused: {refused.message}",)


def raise_for(answer: Any) -> dict[str, Any]:
    """The answer when it is `{ok: true, ...}`; else its GoliveError."""
    if isinstance(answer, dict) and answer.get("ok"):
        return answer
    raise GoliveError.from_error(answer.get("error") if isinstance(answer, dict) else answer)


__all__ = ["CODES", "GoliveError", "LiveRefused", "NoAnswer", "NotSent", "raise_for"]
