"""The rules of nudges as plain functions and values: who may nudge whom, and how often.

No I/O here: engine/nudges.py reads the facts from Redis, asks check_may_nudge, and
its write script re-checks the same facts atomically (a refusal there is mapped
back through refusal()).

A nudge is a viewer's "please go live". The sender is signed in (the gateway sees
to that); in order, first match wins:
  1. nudging yourself: `invalid`
  2. a creator who does not exist: `not_found` (the caller looks them up)
  3. a block either way: `forbidden`, reason "blocked"
  3b. a creator too young to go LIVE (under the live age, 18): `forbidden`, reason
     "under_age" (a nudge asks for what they may not do)
  4. a creator who is live now: `conflict`, reason "live" (watch instead)
  5. a creator who switched nudges off: `forbidden`, reason "nudges_off"
  6. the sender nudged this creator within the window (24 h): `rate_limited`,
     reason "already_nudged", retry_after the rest of the window
  7. the sender's hourly cap across creators (20): `rate_limited`, reason
     "hourly_cap", retry_after the rest of that hour
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from engine.accounts import age_on
from engine.errors import DomainError, ErrorCode, invalid, rate_limited
from engine.graph import Relation
from engine.lives import LIVE_MIN_AGE
from engine.throttle import Window

WINDOW_S = 24 * 3600          # one nudge per sender per creator in this time
HOURLY_CAP = 20               # nudges per sender per hour, across creators
INSIGHT_DAYS = 30             # nudges per day kept for the creator's insights


@dataclass(frozen=True, slots=True)
class NudgeLimits:
    """Every limit of nudges; the server builds one from its settings."""

    per_creator: Window = field(default_factory=lambda: Window(1, WINDOW_S))
    per_sender: Window = field(default_factory=lambda: Window(HOURLY_CAP, 3600.0))
    insight_days: int = INSIGHT_DAYS
    live_min_age: int = LIVE_MIN_AGE  # a creator younger than this cannot be nudged

    @classmethod
    def configured(cls, window_s: float = WINDOW_S, hourly_cap: int = HOURLY_CAP,
                   live_min_age: int = LIVE_MIN_AGE) -> NudgeLimits:
        return cls(per_creator=Window(1, window_s), per_sender=Window(hourly_cap, 3600.0),
                   live_min_age=live_min_age)

    def may_go_live(self, birthdate: dt.date, today: dt.date) -> bool:
        """Whether a creator born on `birthdate` is old enough to go LIVE (and be nudged)."""
        return age_on(birthdate, today) >= self.live_min_age


@dataclass(frozen=True, slots=True)
class NudgeSettings:
    """A creator's nudge settings: "Allow viewers to nudge you" (on by default), and
    whether a nudge also shows in Messages, in the thread with the nudger (off)."""

    allow: bool = True
    dm: bool = False

    def as_dict(self) -> dict[str, bool]:
        return {"allow": self.allow, "dm": self.dm}

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> NudgeSettings:
        return cls(allow=fields.get("allow", "1") != "0", dm=fields.get("dm", "0") == "1")


@dataclass(frozen=True, slots=True)
class NudgeFacts:
    """What the rules need to know about one sender and one creator, now."""

    relation: Relation              # how the sender stands to the creator
    creator_live: bool
    settings: NudgeSettings
    pair_wait_s: float = 0.0        # > 0: already nudged this creator; rest of the window
    sent_this_hour: int = 0         # the sender's nudges in the current hourly window
    hour_wait_s: float = 0.0        # the rest of that hourly window
    creator_may_go_live: bool = True  # old enough to go LIVE (NudgeLimits.may_go_live)


def _limited(retry_after: float, reason: str, message: str) -> DomainError:
    error = rate_limited(retry_after)
    error.message = message
    error.details["reason"] = reason
    return error


def check_not_self(sender_id: str, creator_id: str) -> None:
    if sender_id == creator_id:
        raise invalid("you cannot nudge yourself")


def check_may_nudge(sender_id: str, creator_id: str, facts: NudgeFacts,
                    limits: NudgeLimits) -> None:
    """Refuse a nudge that breaks a rule (see the module's list); return when allowed."""
    check_not_self(sender_id, creator_id)
    if facts.relation.blocked_by or facts.relation.blocking:
        raise DomainError(ErrorCode.FORBIDDEN,
                          "unblock this account before you nudge it" if facts.relation.blocking
                          else "you cannot nudge this account", reason="blocked")
    if not facts.creator_may_go_live:
        raise DomainError(ErrorCode.FORBIDDEN, "they cannot go LIVE yet", reason="under_age")
    if facts.creator_live:
        raise DomainError(ErrorCode.CONFLICT, "they are live now: watch instead",
                          reason="live")
    if not facts.settings.allow:
        raise DomainError(ErrorCode.FORBIDDEN, "this creator does not accept nudges",
                          reason="nudges_off")
    if facts.pair_wait_s > 0:
        raise _limited(facts.pair_wait_s, "already_nudged",
                       f"you already nudged them; you can nudge again in "
                       f"{wait_phrase(facts.pair_wait_s)}")
    if facts.sent_this_hour >= limits.per_sender.limit:
        raise _limited(facts.hour_wait_s or limits.per_sender.seconds, "hourly_cap",
                       f"you sent {limits.per_sender.limit} nudges this hour; try again in "
                       f"{wait_phrase(facts.hour_wait_s or limits.per_sender.seconds)}")


def refusal(status: str, wait_ms: int, limits: NudgeLimits) -> DomainError:
    """The error for a refusal the write script found (the state changed between the
    read and the write): the same codes and reasons as check_may_nudge."""
    wait = max(wait_ms, 1) / 1000
    facts = {
        "blocked": NudgeFacts(Relation(blocked_by=True), False, NudgeSettings()),
        "live": NudgeFacts(Relation(), True, NudgeSettings()),
        "off": NudgeFacts(Relation(), False, NudgeSettings(allow=False)),
        "pair": NudgeFacts(Relation(), False, NudgeSettings(), pair_wait_s=wait),
        "cap": NudgeFacts(Relation(), False, NudgeSettings(),
                          sent_this_hour=limits.per_sender.limit, hour_wait_s=wait),
    }[status]
    try:
        check_may_nudge("", "-", facts, limits)
    except DomainError as exc:
        return exc
    raise AssertionError(f"no refusal for {status!r}")  # pragma: no cover


def wait_phrase(seconds: float) -> str:
    """A wait as people say it: "45 s", "12 min", "5 h"."""
    s = max(1, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    return f"{round(s / 3600)} h"


def waiting_phrase(count: int) -> str:
    """The studio's line: "1 person is waiting", "14 people are waiting"."""
    if count == 1:
        return "1 person is waiting"
    return f"{count} people are waiting"


__all__ = ["NudgeFacts", "NudgeLimits", "NudgeSettings", "check_may_nudge", "refusal"]
