"""Registration, sign-in and sessions over a real Redis."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
from redis.asyncio import Redis

from engine import keys
from engine.accounts import Accounts
from engine.errors import DomainError, ErrorCode
from engine.passwords import Passwords
from engine.sessions import Sessions

SECRET = b"s" * 40


async def test_register_then_authenticate(redis: Redis) -> None:
    accounts = Accounts(redis, Passwords())
    made = await accounts.register(username="Alice", display_name=" Alice ",
                                   password="password-1", birthdate="1990-01-01")
    assert made.username == "alice" and made.display_name == "Alice"
    stored = await redis.hgetall(keys.user(made.id))
    assert stored["password_hash"].startswith("$argon2id$")
    assert "password-1" not in str(stored)
    assert (await accounts.authenticate("ALICE", "password-1")).id == made.id
    for name, password in (("alice", "wrong-pass"), ("nobody", "password-1"), ("!!", "x")):
        with pytest.raises(DomainError) as err:
            await accounts.authenticate(name, password)
        assert err.value.code is ErrorCode.UNAUTHORIZED


async def test_taken_username_is_a_conflict_and_writes_nothing(redis: Redis) -> None:
    accounts = Accounts(redis, Passwords())
    await accounts.register(username="bob", display_name="Bob", password="password-1",
                            birthdate="1990-01-01")
    before = sorted(await redis.keys("*"))
    with pytest.raises(DomainError) as err:
        await accounts.register(username="BOB", display_name="Other", password="password-2",
                                birthdate="1991-01-01")
    assert err.value.code is ErrorCode.CONFLICT
    assert sorted(await redis.keys("*")) == before


async def test_concurrent_registrations_of_one_name_make_one_account(redis: Redis) -> None:
    accounts = Accounts(redis, Passwords(concurrency=4))
    results = await asyncio.gather(*(
        accounts.register(username="same" if i % 2 else "SAME",
                          display_name=f"n{i}", password="password-1", birthdate="1990-01-01")
        for i in range(6)), return_exceptions=True)
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(made) == 1 and len(refused) == 5
    assert all(r.code is ErrorCode.CONFLICT for r in refused)
    assert len(await redis.keys(keys.user("*"))) == 1


async def test_invalid_registrations_store_nothing(redis: Redis) -> None:
    accounts = Accounts(redis, Passwords())
    cases = [
        dict(username="ab", display_name="x", password="password-1", birthdate="1990-01-01"),
        dict(username="okname", display_name="", password="password-1", birthdate="1990-01-01"),
        dict(username="okname", display_name="x", password="short", birthdate="1990-01-01"),
        dict(username="okname", display_name="x", password="password-1", birthdate="soon"),
        dict(username="okname", display_name="x", password="password-1", birthdate="2020-01-01"),
    ]
    for case in cases:
        with pytest.raises(DomainError):
            await accounts.register(**case)
    assert await redis.dbsize() == 0


async def test_profile_update_validates_before_writing(redis: Redis) -> None:
    accounts = Accounts(redis, Passwords())
    made = await accounts.register(username="carol", display_name="Carol",
                                   password="password-1", birthdate="1990-01-01")
    with pytest.raises(DomainError):
        await accounts.update_profile(made.id, display_name="Fine", bio="x" * 500)
    assert (await accounts.get(made.id)).display_name == "Carol"
    updated = await accounts.update_profile(made.id, display_name="Caz", bio="hi")
    assert (updated.display_name, updated.bio) == ("Caz", "hi")


async def test_tokens_verify_expire_and_revoke(redis: Redis) -> None:
    sessions = Sessions(redis, SECRET, ttl_s=60)
    token, session = await sessions.issue("abc")
    assert (await sessions.verify(token)).user_id == "abc"

    async def reason(tok: object) -> str:
        with pytest.raises(DomainError) as err:
            await sessions.verify(tok)
        assert err.value.code is ErrorCode.UNAUTHORIZED
        return str(err.value.details["reason"])

    assert await reason(None) == "missing"
    assert await reason("") == "missing"
    assert await reason(42) == "invalid"
    assert await reason("not.a.jwt") == "invalid"
    assert await reason("x" * 5000) == "invalid"
    forged = jwt.encode({"sub": "abc", "sid": session.session_id, "exp": int(time.time()) + 60},
                        b"w" * 40, algorithm="HS256")
    assert await reason(forged) == "invalid"
    none_alg = jwt.encode({"sub": "abc", "sid": session.session_id,
                           "exp": int(time.time()) + 60}, None, algorithm="none")
    assert await reason(none_alg) == "invalid"
    old, _ = await sessions.issue("abc", now=time.time() - 120)
    assert await reason(old) == "expired"
    await sessions.revoke(session.session_id)
    assert await reason(token) == "revoked"


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        Sessions(None, b"short")  # type: ignore[arg-type]
