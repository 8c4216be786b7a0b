"""A small ledger world over the test Redis for the ledger, audit and property tests:
real accounts (engine.accounts), a real live, the repo's catalog."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from argon2 import PasswordHasher
from redis.asyncio import Redis

from engine.accounts import Accounts
from engine.catalog import load_catalog
from engine.graph import Graph
from engine.ledger import Ledger
from engine.ledger_rules import LedgerRules
from engine.lives import Live, Lives
from engine.passwords import Passwords

TODAY = dt.date(2026, 6, 15)


@dataclass
class World:
    redis: Redis
    ledger: Ledger
    accounts: Accounts
    graph: Graph
    lives: Lives
    ids: dict[str, str]
    live: Live

    def gift_args(self, sender: str = "ann", creator: str = "cat", **kw: object) -> dict:
        args: dict = {"sender_id": self.ids[sender], "creator_id": self.ids[creator],
                      "live_id": self.live.live_id, "gift_id": "rose", "count": 1,
                      "today": TODAY}
        args.update(kw)
        return args


async def make_world(redis: Redis, *, rules: LedgerRules | None = None,
                     people: dict[str, str] | None = None) -> World:
    """Users (name -> birthdate) and cat live; ann adult sender, cat adult creator,
    kid 16 today, teen turns 18 tomorrow."""
    people = people or {"ann": "1990-05-05", "cat": "1992-02-29", "ben": "1988-01-01",
                        "kid": "2010-01-01", "teen": "2008-06-16"}
    # real argon2id, at its cheapest: these tests are about money, not passwords
    fast = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    accounts = Accounts(redis, Passwords(hasher=fast), min_signup_age=13)
    ids = {}
    for name, born in people.items():
        account = await accounts.register(username=name, display_name=name.title(),
                                          password="password-1", birthdate=born, today=TODAY)
        ids[name] = account.id
    lives = Lives(redis, "node-a")
    live = await lives.start(ids["cat"], "gifts") if "cat" in ids else None
    ledger = Ledger(redis, load_catalog(), rules or LedgerRules())
    return World(redis, ledger, accounts, Graph(redis), lives, ids, live)  # type: ignore[arg-type]
