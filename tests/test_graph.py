"""Follows, friends and blocks over a real Redis."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from engine import keys
from engine.accounts import Accounts
from engine.errors import DomainError, ErrorCode
from engine.graph import Graph, Relation, check_may_interact
from engine.passwords import Passwords


@pytest.fixture
async def people(redis: Redis) -> dict[str, str]:
    accounts = Accounts(redis, Passwords())
    ids = {}
    for name in ("ann", "ben", "cat"):
        account = await accounts.register(username=name, display_name=name,
                                          password="password-1", birthdate="1990-05-05")
        ids[name] = account.id
    return ids


async def test_follow_unfollow_and_counts(redis: Redis, people: dict[str, str]) -> None:
    graph = Graph(redis)
    ann, ben = people["ann"], people["ben"]
    assert await graph.follow(ann, ben) is True
    assert await graph.follow(ann, ben) is False  # already following: no change
    assert await graph.counts(ben) == {"followers": 1, "following": 0}
    assert await graph.counts(ann) == {"followers": 0, "following": 1}
    assert (await graph.relation(ann, ben)).following
    assert (await graph.relation(ben, ann)).followed_by
    assert await graph.unfollow(ann, ben) is True
    assert await graph.unfollow(ann, ben) is False
    assert await graph.counts(ben) == {"followers": 0, "following": 0}


async def test_friends_are_mutual_follows(redis: Redis, people: dict[str, str]) -> None:
    graph = Graph(redis)
    ann, ben, cat = people["ann"], people["ben"], people["cat"]
    await graph.follow(ann, ben)
    await graph.follow(ann, cat)
    await graph.follow(ben, ann)
    assert await graph.are_friends(ann, ben)
    assert not await graph.are_friends(ann, cat)
    assert await graph.friends(ann) == [ben]
    assert sorted(await graph.following(ann)) == sorted([ben, cat])
    assert await graph.followers(ann) == [ben]


async def test_block_removes_follows_both_ways_and_stops_following(
        redis: Redis, people: dict[str, str]) -> None:
    graph = Graph(redis)
    ann, ben = people["ann"], people["ben"]
    await graph.follow(ann, ben)
    await graph.follow(ben, ann)
    await graph.block(ann, ben)
    assert await graph.counts(ann) == {"followers": 0, "following": 0}
    assert await graph.counts(ben) == {"followers": 0, "following": 0}
    relation = await graph.relation(ben, ann)
    assert relation.blocked_by and not relation.blocking
    for actor, target in ((ben, ann), (ann, ben)):
        with pytest.raises(DomainError) as err:
            await graph.follow(actor, target)
        assert err.value.code is ErrorCode.FORBIDDEN
    assert await graph.counts(ann) == {"followers": 0, "following": 0}
    assert await graph.unblock(ann, ben) is True
    assert await graph.follow(ben, ann) is True


async def test_self_and_unknown_targets(redis: Redis, people: dict[str, str]) -> None:
    graph = Graph(redis)
    for op in (graph.follow, graph.block, graph.unfollow, graph.unblock):
        with pytest.raises(DomainError) as err:
            await op(people["ann"], people["ann"])
        assert err.value.code is ErrorCode.INVALID
    for op in (graph.follow, graph.block):
        with pytest.raises(DomainError) as err:
            await op(people["ann"], "0000000000000000")
        assert err.value.code is ErrorCode.NOT_FOUND
    assert await redis.exists(keys.blocks(people["ann"])) == 0


@pytest.mark.parametrize("relation,allowed", [
    (Relation(), True),
    (Relation(following=True, followed_by=True), True),
    (Relation(blocking=True), False),
    (Relation(blocked_by=True), False),
])
def test_block_rule(relation: Relation, allowed: bool) -> None:
    if allowed:
        check_may_interact(relation, "message")
    else:
        with pytest.raises(DomainError) as err:
            check_may_interact(relation, "message")
        assert err.value.code is ErrorCode.FORBIDDEN
