"""Reports for moderation: a user, a direct message or a live chat message, stored with
a copy of the reported content (a message may be deleted later; the report keeps
what was said) in one Redis Stream, the moderation queue."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from engine import keys, stream_ids
from engine.errors import invalid
from engine.text import has_control_chars
from engine.throttle import Window, WindowCounter

NOTE_MAX = 500
REPORTS_KEPT = 100_000   # the queue's bound (XADD MAXLEN ~); moderation tools read it sooner


class Reason(enum.StrEnum):
    SPAM = "spam"
    HARASSMENT = "harassment"
    HATE = "hate"
    NUDITY = "nudity"
    VIOLENCE = "violence"
    SCAM = "scam"
    SELF_HARM = "self_harm"
    OTHER = "other"


class Kind(enum.StrEnum):
    USER = "user"
    MESSAGE = "message"     # a direct message
    CHAT = "chat"           # a line of a live's chat


def clean_reason(value: str) -> Reason:
    try:
        return Reason(value)
    except ValueError:
        shown = ", ".join(r.value for r in Reason)
        raise invalid(f"reason is one of {shown}", field="reason") from None


def clean_note(note: str) -> str:
    cleaned = note.strip()
    if len(cleaned) > NOTE_MAX:
        raise invalid(f"a note must be at most {NOTE_MAX} characters", field="note")
    if has_control_chars(cleaned.replace("\n", " ")):
        raise invalid("a note cannot hold control characters", field="note")
    return cleaned


def check_not_self(reporter: str, target: str) -> None:
    if reporter == target:
        raise invalid("you cannot report yourself")


@dataclass(frozen=True, slots=True)
class Report:
    id: str
    reporter: str
    kind: Kind
    target: str              # the reported user
    reason: Reason
    note: str
    content: dict[str, Any]  # what was said: {text, card?, message_id, ...}

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "reporter": self.reporter, "kind": str(self.kind),
                "target": self.target, "reason": str(self.reason), "note": self.note,
                "content": self.content, "at": stream_ids.seconds(self.id)}


class Reports:
    """File reports (rate-limited per reporter) and read the queue."""

    def __init__(self, redis: Redis, *, window: Window | None = None,
                 kept: int = REPORTS_KEPT) -> None:
        self._redis = redis
        self._counter = WindowCounter(redis, window or Window(20, 3600.0))
        self._kept = kept

    async def create(self, reporter: str, kind: Kind, target: str, reason: str, note: str = "",
                     content: dict[str, Any] | None = None) -> Report:
        """Validate, count against the reporter's window, then store."""
        check_not_self(reporter, target)
        why = clean_reason(reason)
        cleaned = clean_note(note)
        await self._counter.hit(keys.report_rate(reporter))
        body = content or {}
        report_id = await self._redis.xadd(
            keys.reports(),
            {"reporter": reporter, "kind": str(kind), "target": target, "reason": str(why),
             "note": cleaned, "content": json.dumps(body, separators=(",", ":"))},
            maxlen=self._kept, approximate=True)
        return Report(report_id, reporter, kind, target, why, cleaned, body)

    async def latest(self, count: int = 50) -> list[Report]:
        """The newest reports first (moderation tools and tests)."""
        rows = await self._redis.xrevrange(keys.reports(), "+", "-", count=count)
        return [Report(i, f["reporter"], Kind(f["kind"]), f["target"], Reason(f["reason"]),
                       f["note"], json.loads(f["content"])) for i, f in rows]
