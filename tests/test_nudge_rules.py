"""The nudge rules, the alert rules and the notification wording as plain functions."""

from __future__ import annotations

import pytest

from engine.errors import DomainError, ErrorCode
from engine.graph import Relation
from engine.live_alerts import check_may_set_alerts
from engine.notifications import alert_text, day_of, describe, names_phrase, parse_cursor
from engine.nudge_rules import (
    NudgeFacts,
    NudgeLimits,
    NudgeSettings,
    check_may_nudge,
    refusal,
    wait_phrase,
    waiting_phrase,
)
from engine.throttle import Window

LIMITS = NudgeLimits()
OK = NudgeFacts(Relation(), creator_live=False, settings=NudgeSettings())


def refused(facts: NudgeFacts, sender: str = "a", creator: str = "b",
            limits: NudgeLimits = LIMITS) -> DomainError:
    with pytest.raises(DomainError) as caught:
        check_may_nudge(sender, creator, facts, limits)
    return caught.value


def test_a_plain_nudge_is_allowed() -> None:
    check_may_nudge("a", "b", OK, LIMITS)
    check_may_nudge("a", "b", NudgeFacts(Relation(following=True, followed_by=True), False,
                                         NudgeSettings(allow=True, dm=True),
                                         sent_this_hour=LIMITS.per_sender.limit - 1), LIMITS)


def test_each_rule_and_its_code() -> None:
    assert refused(OK, "a", "a").code is ErrorCode.INVALID
    for relation in (Relation(blocked_by=True), Relation(blocking=True)):
        error = refused(NudgeFacts(relation, False, NudgeSettings()))
        assert error.code is ErrorCode.FORBIDDEN and error.details["reason"] == "blocked"
    live = refused(NudgeFacts(Relation(), True, NudgeSettings()))
    assert live.code is ErrorCode.CONFLICT and live.details["reason"] == "live"
    off = refused(NudgeFacts(Relation(), False, NudgeSettings(allow=False)))
    assert off.code is ErrorCode.FORBIDDEN and off.details["reason"] == "nudges_off"
    pair = refused(NudgeFacts(Relation(), False, NudgeSettings(), pair_wait_s=3600.5))
    assert pair.code is ErrorCode.RATE_LIMITED and pair.details["reason"] == "already_nudged"
    assert pair.details["retry_after"] == 3600.5 and "1 h" in pair.message
    cap = refused(NudgeFacts(Relation(), False, NudgeSettings(),
                             sent_this_hour=LIMITS.per_sender.limit, hour_wait_s=120))
    assert cap.code is ErrorCode.RATE_LIMITED and cap.details["reason"] == "hourly_cap"
    assert cap.details["retry_after"] == 120


def test_a_creator_under_the_live_age_cannot_be_nudged() -> None:
    import datetime as dt

    young = refused(NudgeFacts(Relation(), False, NudgeSettings(), creator_may_go_live=False))
    assert young.code is ErrorCode.FORBIDDEN and young.details["reason"] == "under_age"
    today = dt.date(2026, 12, 6)
    assert LIMITS.may_go_live(dt.date(2008, 12, 6), today)  # 18 today
    assert not LIMITS.may_go_live(dt.date(2008, 12, 7), today)
    assert NudgeLimits.configured(live_min_age=16).may_go_live(dt.date(2010, 12, 6), today)


def test_first_matching_rule_wins() -> None:
    everything = NudgeFacts(Relation(blocked_by=True), True, NudgeSettings(allow=False),
                            pair_wait_s=10, sent_this_hour=99, hour_wait_s=10)
    assert refused(everything, "a", "a").code is ErrorCode.INVALID
    assert refused(everything).details["reason"] == "blocked"
    no_block = NudgeFacts(Relation(), True, NudgeSettings(allow=False), pair_wait_s=10,
                          sent_this_hour=99, hour_wait_s=10)
    assert refused(no_block).details["reason"] == "live"
    offline = NudgeFacts(Relation(), False, NudgeSettings(allow=False), pair_wait_s=10,
                         sent_this_hour=99, hour_wait_s=10)
    assert refused(offline).details["reason"] == "nudges_off"
    allowed = NudgeFacts(Relation(), False, NudgeSettings(), pair_wait_s=10,
                         sent_this_hour=99, hour_wait_s=10)
    assert refused(allowed).details["reason"] == "already_nudged"


def test_limits_are_configurable() -> None:
    tight = NudgeLimits.configured(window_s=60, hourly_cap=2)
    assert tight.per_creator == Window(1, 60) and tight.per_sender == Window(2, 3600.0)
    facts = NudgeFacts(Relation(), False, NudgeSettings(), sent_this_hour=2, hour_wait_s=5)
    assert refused(facts, limits=tight).details["reason"] == "hourly_cap"
    check_may_nudge("a", "b", facts, NudgeLimits.configured(hourly_cap=3))
    with pytest.raises(ValueError):
        NudgeLimits.configured(window_s=0)


def test_script_refusals_map_to_the_same_errors() -> None:
    for status, code, reason in (("blocked", ErrorCode.FORBIDDEN, "blocked"),
                                 ("live", ErrorCode.CONFLICT, "live"),
                                 ("off", ErrorCode.FORBIDDEN, "nudges_off"),
                                 ("pair", ErrorCode.RATE_LIMITED, "already_nudged"),
                                 ("cap", ErrorCode.RATE_LIMITED, "hourly_cap")):
        error = refusal(status, 2500, LIMITS)
        assert (error.code, error.details["reason"]) == (code, reason)
    assert refusal("pair", 2500, LIMITS).details["retry_after"] == 2.5


def test_settings_default_on_and_parse() -> None:
    assert NudgeSettings.from_hash({}) == NudgeSettings(allow=True, dm=False)
    assert NudgeSettings.from_hash({"allow": "0", "dm": "1"}).as_dict() == {"allow": False,
                                                                          "dm": True}


def test_alert_rules() -> None:
    follower = Relation(following=True)
    check_may_set_alerts("a", "b", follower, True)
    check_may_set_alerts("a", "b", Relation(), False)  # turning off needs nothing
    with pytest.raises(DomainError) as caught:
        check_may_set_alerts("a", "a", follower, True)
    assert caught.value.code is ErrorCode.INVALID
    with pytest.raises(DomainError) as caught:
        check_may_set_alerts("a", "b", Relation(), True)
    assert caught.value.details["reason"] == "not_following"
    with pytest.raises(DomainError) as caught:
        check_may_set_alerts("a", "b", Relation(following=True, blocked_by=True), True)
    assert caught.value.details["reason"] == "blocked"


def test_names_phrase() -> None:
    assert names_phrase(["Ann"], 1) == "Ann"
    assert names_phrase(["Ann", "Bob"], 2) == "Ann and Bob"
    assert names_phrase(["Ann", "Bob", "Cy"], 3) == "Ann, Bob and Cy"
    assert names_phrase(["Ann", "Bob", "Cy"], 14) == "Ann, Bob and 12 others"
    assert names_phrase(["Ann", "Bob", "Cy"], 4) == "Ann, Bob and 2 others"
    assert names_phrase(["Ann", "Bob"], 3) == "Ann, Bob and 1 other"
    assert names_phrase([], 5) == "5 people"


def test_describe_every_kind() -> None:
    ann = {"id": "1", "username": "ann", "display_name": "Ann"}
    bob = {"id": "2", "username": "bob", "display_name": "Bob"}
    cy = {"id": "3", "username": "cy", "display_name": "Cy"}
    assert describe("nudge", {"actors": [ann, bob, cy], "count": 14}) == (
        "Ann, Bob and 12 others nudged you to go live", "/studio")
    assert alert_text("nudge", {"actors": [ann, bob, cy], "count": 14}) == \
        "Ann nudged you to go live!"
    assert describe("live", {"user": ann, "live": {"title": "Cooking"}}) == (
        "Ann is LIVE: Cooking", "/@ann")
    assert describe("follow", {"actors": [bob, ann], "count": 2}) == (
        "Bob and Ann started following you", "/@bob")
    assert describe("message_request", {"user": cy, "conversation_id": "ab"}) == (
        "Cy sent you a message request", "/messages?c=ab")
    assert describe("gift", {"user": ann, "gift": {"name": "Rose"}, "count": 5}) == (
        "Ann sent you 5 x Rose", "/studio")
    assert describe("gift", {"user": ann, "gift": {"name": "Lion"}})[0] == "Ann sent you Lion"
    assert describe("something_new", {"text": "Hello", "link": "/x"}) == ("Hello", "/x")


def test_small_phrases_and_cursors() -> None:
    assert waiting_phrase(1) == "1 person is waiting"
    assert waiting_phrase(14) == "14 people are waiting"
    assert [wait_phrase(s) for s in (0.2, 59, 61, 3600 * 5 + 100)] == ["1 s", "59 s", "1 min",
                                                                       "5 h"]
    assert day_of(0) == "1970-01-01" and day_of(86399.9) == "1970-01-01"
    assert parse_cursor("1716900000123:abc") == (1716900000123, "abc")
    for bad in ("", "12", "x:abc", "12:", "1:a b", "1" * 16 + ":a"):
        with pytest.raises(DomainError):
            parse_cursor(bad)
