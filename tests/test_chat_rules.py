"""Live chat rules as plain functions: text, keyword filter, who may read and send
(membership, ban, mute, slow mode), who may moderate; stream ids."""

from __future__ import annotations

import itertools

import pytest

from engine import stream_ids
from engine.chat_rules import (
    SenderState,
    check_filter,
    check_may_moderate,
    check_may_read,
    check_may_send,
    clean_filter_words,
    clean_mute_seconds,
    clean_slow_mode,
    clean_text,
    filtered_word,
)
from engine.errors import DomainError
from engine.throttle import Window, check_window

NOW = 1_000_000.0


def outcome(fn, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    """'ok', or 'code/reason' of the DomainError raised."""
    try:
        fn(*args, **kwargs)
    except DomainError as exc:
        return f"{exc.code}/{exc.details.get('reason', '')}"
    return "ok"


# --- text -------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("hello", "hello"),
    ("  padded  ", "padded"),
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),  # text, not markup
    ("émoji 🎉 ok", "émoji 🎉 ok"),
    ("x" * 300, "x" * 300),
])
def test_clean_text_keeps_text_as_typed(text: str, expected: str) -> None:
    assert clean_text(text) == expected


@pytest.mark.parametrize(("text", "words"), [
    ("", "empty"), ("   ", "empty"), ("x" * 301, "at most 300"),
    ("two\nlines", "control"), ("bell\x07", "control"), ("rtl\u202eoverride", "control"),
    ("nul\x00", "control"),
])
def test_clean_text_refuses(text: str, words: str) -> None:
    with pytest.raises(DomainError) as info:
        clean_text(text)
    assert info.value.code == "invalid" and info.value.details["field"] == "text"
    assert words in info.value.message


def test_filter_matches_whole_words_in_any_case() -> None:
    words = clean_filter_words(["Spam", "  buy   now ", "spam"])
    assert words == ("buy now", "spam")
    assert filtered_word("no SPAM here!", words) == "spam"
    assert filtered_word("please Buy Now", words) == "buy now"
    assert filtered_word("spammer and spamming", words) is None  # whole words only
    assert filtered_word("buy nowhere", words) is None
    assert outcome(check_filter, "spam", words) == "invalid/filtered"
    assert outcome(check_filter, "fine", words) == "ok"
    assert outcome(check_filter, "anything", ()) == "ok"


@pytest.mark.parametrize("words", [[""], ["x" * 41], ["a\tb\x01"], ["w"] * 201])
def test_filter_words_are_validated(words: list[str]) -> None:
    assert outcome(clean_filter_words, words) == "invalid/"


def test_slow_mode_and_mute_bounds() -> None:
    assert clean_slow_mode(0) == 0 and clean_slow_mode(3600) == 3600
    assert outcome(clean_slow_mode, -1) == "invalid/"
    assert outcome(clean_slow_mode, 3601) == "invalid/"
    assert clean_mute_seconds(1) == 1
    assert outcome(clean_mute_seconds, 0) == "invalid/"
    assert outcome(clean_mute_seconds, 8 * 24 * 3600) == "invalid/"


# --- who may send: the whole matrix --------------------------------------------------

def expected_send(creator: bool, member: bool, banned: bool, muted: bool, slow: bool,
                  recent: bool) -> str:
    """The decision table, row by row (first match wins)."""
    if creator:
        return "ok"                            # the creator is never refused
    if banned:
        return "forbidden/banned"
    if not member:
        return "forbidden/"                    # join the live first
    if muted:
        return "forbidden/muted"
    if slow and recent:
        return "rate_limited/slow_mode"
    return "ok"


@pytest.mark.parametrize(("creator", "member", "banned", "muted", "slow", "recent"),
                         list(itertools.product([False, True], repeat=6)))
def test_who_may_send(creator: bool, member: bool, banned: bool, muted: bool, slow: bool,
                      recent: bool) -> None:
    state = SenderState(
        is_creator=creator, is_member=member or creator, banned=banned,
        muted_until=NOW + 30 if muted else NOW - 1,   # an expired mute is no mute
        last_sent_at=NOW - 3 if recent else NOW - 60)
    got = outcome(check_may_send, state, 10 if slow else 0, NOW)
    assert got == expected_send(creator, member, banned, muted, slow, recent)


def test_slow_mode_says_when_to_retry() -> None:
    state = SenderState(is_creator=False, is_member=True, last_sent_at=NOW - 3)
    with pytest.raises(DomainError) as info:
        check_may_send(state, 10, NOW)
    assert info.value.details["retry_after"] == pytest.approx(7.0)
    # exactly slow_mode seconds later it is allowed; a first message always is
    check_may_send(state, 10, NOW + 7)
    check_may_send(SenderState(is_creator=False, is_member=True), 10, NOW)


def test_mute_reports_its_end() -> None:
    state = SenderState(is_creator=False, is_member=True, muted_until=NOW + 30)
    with pytest.raises(DomainError) as info:
        check_may_send(state, 0, NOW)
    assert info.value.details == {"reason": "muted", "until": NOW + 30}
    check_may_send(state, 0, NOW + 30)  # the mute is over at `until`


@pytest.mark.parametrize(("creator", "member", "banned", "expected"), [
    (True, True, False, "ok"), (True, True, True, "ok"),
    (False, True, False, "ok"), (False, True, True, "forbidden/banned"),
    (False, False, False, "forbidden/"), (False, False, True, "forbidden/banned"),
])
def test_who_may_read(creator: bool, member: bool, banned: bool, expected: str) -> None:
    state = SenderState(is_creator=creator, is_member=member, banned=banned)
    assert outcome(check_may_read, state) == expected


def test_a_block_stops_a_member_reading_and_sending() -> None:
    """A member a block stands with (joined before it) reads and sends nothing; a ban
    is named first; the creator's own chat is theirs whatever they blocked."""
    blocked = SenderState(is_creator=False, is_member=True, blocked=True)
    assert outcome(check_may_read, blocked) == "forbidden/blocked"
    assert outcome(check_may_send, blocked, 0, NOW) == "forbidden/blocked"
    both = SenderState(is_creator=False, is_member=True, banned=True, blocked=True)
    assert outcome(check_may_read, both) == "forbidden/banned"
    creator = SenderState(is_creator=True, is_member=True, blocked=True)
    assert outcome(check_may_read, creator) == outcome(check_may_send, creator, 0, NOW) == "ok"


@pytest.mark.parametrize(("actor", "target", "expected"), [
    ("creator", None, "ok"), ("creator", "viewer", "ok"),
    ("creator", "creator", "invalid/"),      # not yourself
    ("viewer", None, "forbidden/"), ("viewer", "other", "forbidden/"),
])
def test_only_the_creator_moderates(actor: str, target: str | None, expected: str) -> None:
    assert outcome(check_may_moderate, actor, "creator", target) == expected


def test_rate_window() -> None:
    window = Window(5, 5.0)
    assert outcome(check_window, 4, window, 1000) == "ok"
    with pytest.raises(DomainError) as info:
        check_window(5, window, 1500)
    assert info.value.code == "rate_limited" and info.value.details["retry_after"] == 1.5
    with pytest.raises(ValueError):
        Window(0, 1.0)


# --- stream ids -------------------------------------------------------------------------

def test_stream_ids_order_and_step_back() -> None:
    assert stream_ids.newer("2-0", "1-99") and not stream_ids.newer("1-1", "1-1")
    assert stream_ids.newer("10-0", "9-5")  # numeric, not text, order
    assert stream_ids.before("5-3") == "5-2"
    assert stream_ids.before("5-0") == f"4-{2**64 - 1}"
    assert stream_ids.before("0-0") == "0-0"
    assert stream_ids.seconds("1700000000123-0") == 1700000000.123
    for bad in ("", "1", "a-b", "1-2-3", "-1-0", "1-" + "9" * 21):
        assert not stream_ids.is_valid(bad)
        assert outcome(stream_ids.parse, bad) == "invalid/"
