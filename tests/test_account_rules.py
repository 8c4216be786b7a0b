"""The account rules as plain functions."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.accounts import (
    age_on,
    check_password,
    clean_bio,
    clean_display_name,
    normalize_username,
    parse_birthdate,
)
from engine.errors import DomainError, ErrorCode

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
