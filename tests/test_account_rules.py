"""The account rules as plain functions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from engine.accounts import (
    UNDER_AGE,
    age_on,
    check_password,
    clean_bio,
    clean_display_name,
    normalize_username,
    parse_birthdate,
)
from engine.errors import DomainError, ErrorCode
from engine.lives import check_may_go_live
from engine.payments import check_may_buy_coins

TODAY = dt.date(2026, 11, 22)


@pytest.mark.parametrize("name,canonical", [
    ("alice", "alice"), ("Alice", "alice"), ("  BOB_1 ", "bob_1"), ("a.b.c", "a.b.c"),
    ("x9_", "x9_"), ("a" * 24, "a" * 24), ("007", "007"),
])
def test_valid_usernames(name: str, canonical: str) -> None:
    assert normalize_username(name) == canonical


@pytest.mark.parametrize("name", [
    "", "ab", "a" * 25, "_alice", ".alice", "alice.", "a..b", "al ice", "alice!", "ålice",
    "admin", "API", "studio", "al\x00ice", "<script>",
])
def test_invalid_usernames(name: str) -> None:
    with pytest.raises(DomainError) as err:
        normalize_username(name)
    assert err.value.code is ErrorCode.INVALID
    assert err.value.details["field"] == "username"


def test_display_name_is_trimmed_and_bounded() -> None:
    assert clean_display_name("  Alice   Liddell ") == "Alice Liddell"
    assert clean_display_name("Zoë 🎥") == "Zoë 🎥"
    for bad in ("", "   ", "x" * 41, "a\u202eb", "bell\x07"):
        with pytest.raises(DomainError):
            clean_display_name(bad)


def test_bio_allows_newlines_but_not_controls() -> None:
    assert clean_bio(" line one\nline two ") == "line one\nline two"
    with pytest.raises(DomainError):
        clean_bio("x" * 201)
    with pytest.raises(DomainError):
        clean_bio("esc\x1b[31m")


def test_password_length() -> None:
    check_password("12345678")
    check_password("x" * 128)
    for bad in ("1234567", "x" * 129):
        with pytest.raises(DomainError):
            check_password(bad)


@pytest.mark.parametrize("born,today,age", [
    (dt.date(2000, 11, 22), TODAY, 26),
    (dt.date(2000, 11, 23), TODAY, 25),
    (dt.date(2000, 2, 29), dt.date(2026, 2, 28), 25),
    (dt.date(2000, 2, 29), dt.date(2026, 3, 1), 26),
    (dt.date(2026, 11, 22), TODAY, 0),
])
def test_age_on(born: dt.date, today: dt.date, age: int) -> None:
    assert age_on(born, today) == age


def test_birthdate_rules() -> None:
    assert parse_birthdate("2013-11-22", TODAY) == dt.date(2013, 11, 22)  # 13 today
    with pytest.raises(DomainError) as young:
        parse_birthdate("2013-11-23", TODAY)  # 13 tomorrow
    assert young.value.code is ErrorCode.FORBIDDEN
    for bad in ("2030-01-01", "1800-01-01", "22/11/2000", "2000-02-30", ""):
        with pytest.raises(DomainError) as err:
            parse_birthdate(bad, TODAY)
        assert err.value.code is ErrorCode.INVALID
    assert parse_birthdate("2008-01-01", TODAY, min_age=18) == dt.date(2008, 1, 1)


@pytest.mark.parametrize("rule,doing,default_age", [
    (check_may_go_live, "go LIVE", 18),
    (check_may_buy_coins, "buy coins", 18),
])
def test_age_rules_for_going_live_and_buying_coins(rule: Any, doing: str,
                                                   default_age: int) -> None:
    rule(dt.date(2008, 11, 22), TODAY)          # 18 today
    rule(dt.date(1990, 1, 1), TODAY)
    for born in (dt.date(2008, 11, 23), dt.date(2011, 6, 1)):   # 18 tomorrow; 15
        with pytest.raises(DomainError) as young:
            rule(born, TODAY)
        assert young.value.code is ErrorCode.FORBIDDEN
        assert young.value.to_payload() == {
            "code": "forbidden", "message": f"you must be {default_age} or older to {doing}",
            "reason": UNDER_AGE, "min_age": default_age}
    # a 29 February birthday counts on 1 March in other years (age_on)
    with pytest.raises(DomainError):
        rule(dt.date(2008, 2, 29), dt.date(2026, 2, 28))
    rule(dt.date(2008, 2, 29), dt.date(2026, 3, 1))
    # the age is the configuration's
    rule(dt.date(2010, 11, 22), TODAY, 16)
    with pytest.raises(DomainError) as young:
        rule(dt.date(2010, 11, 23), TODAY, 16)
    assert young.value.details == {"reason": UNDER_AGE, "min_age": 16}
    assert young.value.message == f"you must be 16 or older to {doing}"
