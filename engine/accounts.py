"""Accounts: the rules for names, passwords and ages, and the account store over Redis."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from dataclasses import dataclass
from typing import NewType

from redis.asyncio import Redis

from engine import keys
from engine.errors import DomainError, ErrorCode, conflict, invalid, not_found
from engine.passwords import Passwords, dummy_hash
from engine.search import UserSearch
from engine.text import has_control_chars

UserId = NewType("UserId", str)

USERNAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_]|\.(?!\.)){1,22}[a-z0-9_]$")
RESERVED_USERNAMES = frozenset(
    {"admin", "api", "golive", "studio", "static", "vendor", "discover", "messages",
     "inbox", "settings", "support", "system", "root", "moderator", "healthz", "metrics"}
)
DISPLAY_NAME_MAX = 40
BIO_MAX = 200
PASSWORD_MIN = 8
PASSWORD_MAX = 128
MIN_SIGNUP_AGE = 13
MAX_AGE = 120
UNDER_AGE = "under_age"  # the `reason` of every age refusal but sign-up's


# --- rules: plain functions the tests call directly -------------------------

def normalize_username(name: str) -> str:
    """Validate a username and return its canonical (lower-case) form.

    3-24 characters of a-z, 0-9, '_' and '.', starting with a letter or digit,
    not ending with '.', no '..'; uniqueness is case-insensitive.
    """
    canonical = name.strip().lower()
    if not USERNAME_RE.fullmatch(canonical):
        raise invalid(
            "username must be 3-24 characters of a-z, 0-9, '_' or '.', starting with a "
            "letter or digit, with no '..' and not ending in '.'",
            field="username",
        )
    if canonical in RESERVED_USERNAMES:
        raise invalid(f"username {canonical!r} is reserved", field="username")
    return canonical


def clean_display_name(name: str) -> str:
    """Trim and validate a display name: 1-40 printable characters."""
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > DISPLAY_NAME_MAX:
        raise invalid(f"display name must be 1-{DISPLAY_NAME_MAX} characters", field="display_name")
    if has_control_chars(cleaned):
        raise invalid("display name holds control characters", field="display_name")
    return cleaned


def clean_bio(bio: str) -> str:
    cleaned = bio.strip()
    if len(cleaned) > BIO_MAX:
        raise invalid(f"bio must be at most {BIO_MAX} characters", field="bio")
    if has_control_chars(cleaned.replace("\n", " ")):
        raise invalid("bio holds control characters", field="bio")
    return cleaned


def check_password(password: str) -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise invalid(
            f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters", field="password"
        )


def age_on(birthdate: dt.date, today: dt.date) -> int:
    """Whole years from birthdate to today (a 29 February birthday counts on 1 March)."""
    years = today.year - birthdate.year
    if (today.month, today.day) < (birthdate.month, birthdate.day):
        years -= 1
    return years


def check_age(birthdate: dt.date, today: dt.date, min_age: int, doing: str) -> None:
    """`forbidden` with reason under_age and `min_age` unless the person born on
    `birthdate` is `min_age` or older on `today`; `doing` ends the message
    ("you must be 18 or older to go LIVE"). Going live and buying coins use it."""
    if age_on(birthdate, today) < min_age:
        raise DomainError(ErrorCode.FORBIDDEN, f"you must be {min_age} or older to {doing}",
                          reason=UNDER_AGE, min_age=min_age)


def utc_today() -> dt.date:
    """Today's date in UTC: the day every age rule counts from."""
    return dt.datetime.now(dt.UTC).date()


def parse_birthdate(text: str, today: dt.date, min_age: int = MIN_SIGNUP_AGE) -> dt.date:
    """Parse an ISO date and check the person is between min_age and 120 years old."""
    try:
        born = dt.date.fromisoformat(text)
    except ValueError:
        raise invalid("birthdate must be a date as YYYY-MM-DD", field="birthdate") from None
    age = age_on(born, today)
    if born > today or age > MAX_AGE:
        raise invalid("birthdate is not plausible", field="birthdate")
    if age < min_age:
        raise DomainError(
            ErrorCode.FORBIDDEN, f"you must be {min_age} or older to sign up", field="birthdate"
        )
    return born


# --- the store ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Account:
    id: UserId
    username: str
    display_name: str
    birthdate: dt.date
    bio: str
    created_at: float
    avatar: str = ""     # the profile photo's version (engine/avatars.py); "" for none

    def public(self) -> dict[str, object]:
        """What anyone may see (the birthdate is private); `avatar`, the photo's URL,
        only when there is one."""
        view: dict[str, object] = {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "bio": self.bio,
            "created_at": self.created_at,
        }
        if self.avatar:
            view["avatar"] = avatar_url(self.id, self.avatar)
        return view

    def age(self, today: dt.date) -> int:
        return age_on(self.birthdate, today)


def _account_from_hash(fields: dict[str, str]) -> Account:
    return Account(
        id=UserId(fields["id"]),
        username=fields["username"],
        display_name=fields["display_name"],
        birthdate=dt.date.fromisoformat(fields["birthdate"]),
        bio=fields.get("bio", ""),
        created_at=float(fields["created_at"]),
        avatar=fields.get("avatar", ""),
    )


def avatar_url(user_id: str, version: str) -> str:
    """Where a profile photo is served (signaling/http_api.py): a new photo, a new URL."""
    return f"/avatars/{user_id}/{version}.webp"


# Claims the username and writes the account in one step: a taken name
# writes nothing, and no half-made account is ever visible.
_REGISTER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
return 1
"""


class Accounts:
    """Registration, sign-in checks and profiles, over Redis."""

    def __init__(self, redis: Redis, passwords: Passwords, *, min_signup_age: int = MIN_SIGNUP_AGE):
        self._redis = redis
        self._passwords = passwords
        self._min_age = min_signup_age
        self._register = redis.register_script(_REGISTER)
        self._dummy_hash = dummy_hash()
        self.search = UserSearch(redis)  # kept here: every name written is indexed

    async def register(
        self, *, username: str, display_name: str, password: str, birthdate: str,
        today: dt.date | None = None,
    ) -> Account:
        """Create an account; `conflict` when the username is taken (case-insensitive)."""
        canonical = normalize_username(username)
        name = clean_display_name(display_name)
        check_password(password)
        born = parse_birthdate(birthdate, today or dt.date.today(), self._min_age)
        # Cheap pre-check so a taken name does not cost a 50 ms hash; the
        # script below is what makes the claim atomic.
        if await self._redis.exists(keys.username(canonical)):
            raise conflict(f"username {canonical!r} is taken")
        password_hash = await self._passwords.hash(password)
        user_id = UserId(secrets.token_hex(8))
        created = time.time()
        fields = {
            "id": user_id, "username": canonical, "display_name": name,
            "birthdate": born.isoformat(), "bio": "", "created_at": repr(created),
            "password_hash": password_hash,
        }
        flat = [item for pair in fields.items() for item in pair]
        ok = await self._register(keys=[keys.username(canonical), keys.user(user_id)],
                                  args=[user_id, *flat])
        if not ok:
            raise conflict(f"username {canonical!r} is taken")
        await self.search.add(user_id, canonical, name)
        return Account(user_id, canonical, name, born, "", created)

    async def authenticate(self, username: str, password: str) -> Account:
        """Check a username and password; the same `unauthorized` for either being wrong."""
        user_id = None
        try:
            user_id = await self._redis.get(keys.username(normalize_username(username)))
        except DomainError:
            pass
        stored = await self._redis.hgetall(keys.user(user_id)) if user_id else {}
        ok = await self._passwords.verify(stored.get("password_hash", self._dummy_hash), password)
        if not stored or not ok:
            raise DomainError(ErrorCode.UNAUTHORIZED, "wrong username or password",
                              reason="credentials")
        return _account_from_hash(stored)

    async def get(self, user_id: str) -> Account:
        fields = await self._redis.hgetall(keys.user(user_id))
        if not fields:
            raise not_found("no such user")
        return _account_from_hash(fields)

    async def get_many(self, user_ids: list[str]) -> dict[str, Account]:
        """The accounts that exist among user_ids, in one pipelined round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hgetall(keys.user(user_id))
            found = await pipe.execute()
        return {uid: _account_from_hash(fields)
                for uid, fields in zip(user_ids, found, strict=True) if fields}

    async def find(self, username: str) -> Account:
        """The account for a username (any case); `not_found` otherwise."""
        try:
            canonical = normalize_username(username)
        except DomainError:
            raise not_found(f"no user {username[:40]!r}") from None
        user_id = await self._redis.get(keys.username(canonical))
        if user_id is None:
            raise not_found(f"no user {canonical!r}")
        return await self.get(user_id)

    async def exists(self, user_id: str) -> bool:
        return bool(await self._redis.exists(keys.user(user_id)))

    async def update_profile(
        self, user_id: str, *, display_name: str | None = None, bio: str | None = None
    ) -> Account:
        """Change the display name and/or bio; validates everything before writing."""
        changes: dict[str, str] = {}
        if display_name is not None:
            changes["display_name"] = clean_display_name(display_name)
        if bio is not None:
            changes["bio"] = clean_bio(bio)
        before = await self.get(user_id)
        if changes:
            await self._redis.hset(keys.user(user_id), mapping=changes)
        after = await self.get(user_id)
        if after.display_name != before.display_name:
            await self.search.rename(user_id, after.username, before.display_name,
                                     after.display_name)
        return after

    async def find_people(self, query: str, limit: int = 20) -> list[Account]:
        """Accounts whose username or display name starts with `query` (any case, any
        accents; engine/search.py), best first."""
        ids = await self.search.search(query, limit)
        found = await self.get_many(ids)
        return [found[i] for i in ids if i in found]
