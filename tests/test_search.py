"""Finding people: the folding rules as plain functions, the index over a real Redis,
and GET /api/users?q= and user:search through the real server."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from engine.accounts import Accounts
from engine.errors import DomainError, ErrorCode
from engine.passwords import Passwords
from engine.search import clean_query, fold, search_terms
from tests.support.peers import open_tab, register


def test_fold_drops_case_and_accents() -> None:
    assert fold("Zoë") == fold("ZOE") == fold("zoe") == "zoe"
    assert fold("ÅSA  Ångström") == "asa angstrom"
    assert fold("Straße") == "strasse"
    assert fold("\uff26\uff55\uff4c\uff4c") == "full"  # full-width letters too
    assert fold("a\u202eb") == "ab"            # a bidi override is no part of a name


def test_terms_are_the_username_the_name_and_its_later_words() -> None:
    assert search_terms("zoe.m", "Zoë Martín") == {"zoe.m", "zoe martin", "martin"}
    assert search_terms("bob", "Bob") == {"bob"}
    many = search_terms("x", "a b c d e f g")
    assert "g" not in many and "b c d e f g" in many  # at most 4 later words


@pytest.mark.parametrize("bad", ["", "   ", "@", "\u200f", "x" * 41])
def test_a_search_needs_one_to_forty_characters(bad: str) -> None:
    with pytest.raises(DomainError) as err:
        clean_query(bad)
    assert err.value.code is ErrorCode.INVALID and err.value.details["field"] == "q"


async def test_the_index_finds_by_prefix_any_case_any_accent(redis: Redis) -> None:
    accounts = Accounts(redis, Passwords())
    made = {}
    for username, display in (("zoe.m", "Zoë Martín"), ("zoltan", "Zoltán"),
                              ("amartin", "Ann Martin"), ("bob", "Bob")):
        made[username] = (await accounts.register(
            username=username, display_name=display, password="password-1",
            birthdate="1990-01-01")).id

    async def names(q: str, limit: int = 20) -> list[str]:
        return [a.username for a in await accounts.find_people(q, limit)]

    assert await names("ZO") == ["zoe.m", "zoltan"]
    assert await names("zoë") == ["zoe.m"] and await names("ZOLTÁN") == ["zoltan"]
    assert sorted(await names("mart")) == ["amartin", "zoe.m"]   # a later word of the name
    assert await names("@bob") == ["bob"] and await names("bobby") == []
    assert len(await names("z", limit=1)) == 1
    # a new display name: found by the new one, no longer by the old
    await accounts.update_profile(made["bob"], display_name="Robert Émile")
    assert await names("emile") == ["bob"] and await names("rob") == ["bob"]
    await accounts.update_profile(made["bob"], display_name="Bobby")
    assert await names("emile") == [] and await names("bobby") == ["bob"]


async def test_search_over_http_and_socketio(client: Any, closers: list[Any]) -> None:
    resp = await client.post("/api/register", json={
        "username": "zoe", "display_name": "Zoë Saldaña", "password": "correct-horse-1",
        "birthdate": "1990-01-01"})
    assert resp.status == 201
    ann = await register(client, "ann")
    # signed out: anyone can find people
    resp = await client.get("/api/users", params={"q": "SALDANA"})
    body = await resp.json()
    assert resp.status == 200, body
    assert [u["username"] for u in body["users"]] == ["zoe"]
    assert set(body["users"][0]) == {"id", "username", "display_name", "bio", "created_at"}
    for params, field in (({"q": ""}, "q"), ({}, "q"), ({"q": "z", "limit": "0"}, "limit"),
                          ({"q": "z", "limit": "x"}, "limit"), ({"q": "z" * 300}, "q")):
        resp = await client.get("/api/users", params=params)
        error = (await resp.json())["error"]
        assert resp.status == 400 and (error["code"], error["field"]) == ("invalid", field)
    # the Socket.IO event answers the same; a block hides people either way
    tab = await open_tab(client, ann, closers)
    ack = await tab.call("user:search", {"q": "zo"})
    assert ack["ok"] and [u["username"] for u in ack["users"]] == ["zoe"]
    assert (await tab.call("user:search", {"q": ""}))["error"]["code"] == "invalid"
    assert (await tab.call("user:search", {"q": "zo", "limit": 99}))["error"]["code"] == "invalid"
    zoe = (await (await client.get("/api/users", params={"q": "zoe"})).json())["users"][0]
    assert (await tab.call("user:block", {"user_id": zoe["id"]}))["ok"]
    assert (await tab.call("user:search", {"q": "zo"}))["users"] == []
