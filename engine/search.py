"""Finding people: prefix search over usernames and display names, in Redis.

Each account is indexed under a few terms: its username, its display name and each
later word of the display name ("Zoë Martín" is found by "zoe", "zoë m" and "mart").
A term is folded (fold()): Unicode-decomposed, accents (combining marks) dropped,
case-folded, spaces collapsed, so "ZOE", "zoë" and "Zoe" are one term. Each term is a
member "term\\x00user id" of a sorted set whose scores are all 0, so Redis keeps the
members in byte order and a prefix is one ZRANGE BYLEX: O(log N + found) however many
users there are (`golive bench search --users 1000000`: p50 0.95 ms, p99 8.7 ms a
search with its 20 accounts read, 58 us of it inside Redis, on a 2-core host).

The set is sharded by the term's first character (keys.user_search), so no single
key holds every user and one query reads one key.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

from engine import keys
from engine.errors import invalid

QUERY_MAX = 40          # longer than any username (24) or display name (40) term
RESULTS_MAX = 50
DISPLAY_WORDS = 4       # words of a display name indexed on their own (after the first)
_SEP = "\x00"           # sorts before every character a term holds
_TOP = "\U0010ffff"     # sorts after every character a term holds


def fold(text: str) -> str:
    """Text as the index compares it: no accents, no case, single spaces.

    "Zoë" -> "zoe", "ÅSA" -> "asa", "Straße" -> "strasse"; control characters go."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed
                   if not unicodedata.combining(c) and unicodedata.category(c)[0] != "C")
    return " ".join(kept.casefold().split())


def search_terms(username: str, display_name: str) -> set[str]:
    """The terms an account is found under (each a prefix target)."""
    terms = {fold(username)}
    name = fold(display_name)
    if name:
        terms.add(name)
        words = name.split(" ")
        terms.update(" ".join(words[i:]) for i in range(1, min(len(words), DISPLAY_WORDS + 1)))
    terms.discard("")
    return terms


def clean_query(query: str) -> str:
    """A search prefix: folded, 1-40 characters (a leading '@' is the username's)."""
    folded = fold(query.strip().removeprefix("@"))
    if not folded:
        raise invalid("type at least one letter to search", field="q")
    if len(folded) > QUERY_MAX:
        raise invalid(f"a search is at most {QUERY_MAX} characters", field="q")
    return folded


def _shard(term: str) -> str:
    return keys.user_search(term[0])


def _members(user_id: str, terms: Iterable[str]) -> dict[str, list[str]]:
    """The index members of an account, by key."""
    by_key: dict[str, list[str]] = {}
    for term in terms:
        by_key.setdefault(_shard(term), []).append(f"{term}{_SEP}{user_id}")
    return by_key


class UserSearch:
    """The people index: kept by engine.accounts.Accounts, read by search()."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def add(self, user_id: str, username: str, display_name: str) -> None:
        """Index an account (again: idempotent)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            self.queue_add(pipe, user_id, username, display_name)
            await pipe.execute()

    @staticmethod
    def queue_add(pipe: Any, user_id: str, username: str, display_name: str) -> None:
        """add()'s writes, queued on a pipeline the caller runs (bulk loads)."""
        for key, members in _members(user_id, search_terms(username, display_name)).items():
            pipe.zadd(key, dict.fromkeys(members, 0))

    async def rename(self, user_id: str, username: str, old_display: str,
                     new_display: str) -> None:
        """The display name changed: the old terms go, the new ones come."""
        old = search_terms(username, old_display)
        new = search_terms(username, new_display)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, members in _members(user_id, old - new).items():
                pipe.zrem(key, *members)
            for key, members in _members(user_id, new - old).items():
                pipe.zadd(key, dict.fromkeys(members, 0))
            await pipe.execute()

    async def search(self, query: str, limit: int = 20) -> list[str]:
        """User ids whose username or display name (or a later word of it) starts with
        `query`, ignoring case and accents: exact username first, then term order."""
        prefix = clean_query(query)
        limit = max(1, min(limit, RESULTS_MAX))
        # An account has at most 2 + DISPLAY_WORDS terms: read enough members to fill
        # `limit` distinct accounts in the common case (one term matching each).
        rows = await self._redis.zrange(_shard(prefix), f"[{prefix}", f"[{prefix}{_TOP}",
                                        bylex=True, offset=0, num=limit * 3)
        found: dict[str, int] = {}
        for row in rows:
            term, _, user_id = row.rpartition(_SEP)
            rank = 0 if term == prefix else 1
            if user_id not in found or rank < found[user_id]:
                found[user_id] = rank
        ordered = sorted(found, key=lambda u: found[u])  # stable: term order within a rank
        return ordered[:limit]


__all__ = ["UserSearch", "clean_query", "fold", "search_terms"]
