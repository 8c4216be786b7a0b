"""Money with care: whether gifts can go from a viewer to a creator at all (the tray is
offered only then), as a plain rule and through gift:status on the real server; and the
price above which the tray asks to confirm."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from engine.ledger_rules import LedgerRules, gift_refusal, standing_refusal
from tests.support.peers import open_tab

TODAY = dt.date(2027, 6, 1)
ADULT, MINOR = "1990-01-01", "2012-01-01"


@pytest.mark.parametrize(("sender", "creator", "followers", "expected"), [
    (ADULT, ADULT, 0, None),
    (ADULT, MINOR, 0, "creator_minor"),
    (MINOR, ADULT, 0, "sender_minor"),
    (MINOR, MINOR, 0, "creator_minor"),       # the creator's reason comes first: no tray
    (ADULT, ADULT, 9, "followers"),
    (ADULT, ADULT, 10, None),
    (ADULT, "2009-06-01", 10, None),          # 18 today
    (ADULT, "2009-06-02", 10, "creator_minor"),
])
def test_gift_refusal(sender: str, creator: str, followers: int, expected: str | None) -> None:
    rules = LedgerRules(min_followers=10 if followers else 0)
    assert gift_refusal(sender, creator, followers, rules, TODAY) == expected


def test_a_ban_or_a_block_refuses_every_gift_in_the_scripts_order() -> None:
    assert standing_refusal(banned=False, blocking=False, blocked_by=False) is None
    assert standing_refusal(banned=True, blocking=True, blocked_by=True) == "banned"
    assert standing_refusal(banned=False, blocking=True, blocked_by=True) == "blocking"
    assert standing_refusal(banned=False, blocking=False, blocked_by=True) == "blocked_by"


def years_old(n: int) -> str:
    today = dt.date.today()
    return today.replace(year=today.year - n, day=1).isoformat()


async def test_gift_status_over_socketio(client: Any, closers: list[Any]) -> None:
    ann = await open_tab(client, "ann", closers)
    kid = await open_tab(client, "kid", closers, birthdate=years_old(15))
    teen = await open_tab(client, "teen", closers, birthdate=years_old(16))
    ack = await ann.call("gift:status", {"creator": "teen"})
    assert ack["ok"] and ack["can_send"] is False, ack
    assert ack["refusal"]["code"] == "forbidden" and ack["refusal"]["reason"] == "creator_minor"
    assert ack["confirm_above"] == 1000
    ack = await kid.call("gift:status", {"creator": ann.user.id})
    assert ack["can_send"] is False and ack["refusal"]["reason"] == "sender_minor"
    assert "18 or older" in ack["refusal"]["message"]
    ack = await teen.call("gift:status", {"creator": "ann"})
    assert ack["refusal"]["reason"] == "sender_minor"
    ack = await ann.call("gift:status", {"creator": "ann"})
    assert ack["can_send"] is False and ack["refusal"]["code"] == "invalid"
    bob = await open_tab(client, "bob", closers)
    ack = await bob.call("gift:status", {"creator": "ann"})
    assert ack == {"ok": True, "creator_id": ann.user.id, "can_send": True, "refusal": None,
                   "confirm_above": 1000}
    assert (await bob.call("gift:status", {"creator": "nobody"}))["error"]["code"] == "not_found"
    assert (await bob.call("gift:status", {}))["error"]["code"] == "invalid"
    gifts = await (await client.get("/api/gifts")).json()
    assert gifts["confirm_above"] == 1000
