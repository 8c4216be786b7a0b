"""Moderators a creator appoints: the rules as plain functions, then the chat:* events
through the real server (real Socket.IO clients, real Redis, a headless creator live).

A moderator deletes, mutes and bans in the chats of the creator who appointed them,
never acts on that creator or another moderator, and loses every right the moment the
creator dismisses them; every check is the server's, by the ids it holds."""

from __future__ import annotations

from typing import Any

import pytest

from engine.chat_rules import check_may_appoint, check_may_moderate
from engine.errors import DomainError
from tests.support.chat import PUSHES, Member, join, member
from tests.support.peers import go_live
from tests.support.poll import poll
from tests.support.state import snapshot


def outcome(fn: Any, *args: Any, **kw: Any) -> str:
    try:
        fn(*args, **kw)
    except DomainError as exc:
        return f"{exc.code.value}/{exc.details.get('reason', '')}"
    return "ok"


MODS = frozenset({"mod", "mod2"})


@pytest.mark.parametrize(("actor", "target", "expected"), [
    ("creator", "viewer", "ok"), ("creator", "mod", "ok"),      # the creator acts on anyone
    ("creator", "creator", "invalid/"),
    ("mod", None, "ok"), ("mod", "viewer", "ok"),
    ("mod", "creator", "forbidden/moderator"), ("mod", "mod2", "forbidden/moderator"),
    ("mod", "mod", "invalid/"),
    ("viewer", None, "forbidden/"), ("viewer", "other", "forbidden/"),
    ("viewer", "mod", "forbidden/"),
])
def test_who_may_moderate_with_moderators(actor: str, target: str | None,
                                          expected: str) -> None:
    assert outcome(check_may_moderate, actor, "creator", target, moderators=MODS) == expected


def test_only_the_creator_appoints() -> None:
    assert outcome(check_may_appoint, "creator", "creator", "viewer", 0) == "ok"
    assert outcome(check_may_appoint, "mod", "creator", "viewer", 0) == "forbidden/"
    assert outcome(check_may_appoint, "creator", "creator", "creator", 0) == "invalid/"
    assert outcome(check_may_appoint, "creator", "creator", "viewer", 50) == "invalid/"


PUSHES_MOD = (*PUSHES, "chat:moderator", "chat:moderated")


class Mod(Member):
    PUSHES = PUSHES_MOD


async def test_a_moderator_deletes_mutes_and_bans_within_their_rights(
        app_client: Any, redis_url: str, closers: list[Any]) -> None:
    ann = await member(app_client, "ann", closers, peer=Mod)
    live_id = (await go_live(ann, closers, "moderated", fps=15)).live_id
    dan, eve, bob, cat = [await member(app_client, n, closers, peer=Mod)
                          for n in ("dan", "eve", "bob", "cat")]
    for m in (dan, eve, bob, cat):
        await join(m, ann)
        await m.open_chat(live_id)
    await ann.open_chat(live_id)
    send = lambda m, text: m.call("chat:send", {"live_id": live_id, "text": text})  # noqa: E731
    rude = (await send(bob, "something rude"))["message"]["id"]

    # not yet a moderator: every moderation event is refused and writes nothing
    before = await snapshot(redis_url)
    for event, payload in (
            ("chat:delete", {"live_id": live_id, "message_id": rude}),
            ("chat:mute", {"user_id": bob.user.id, "seconds": 60, "creator_id": ann.user.id}),
            ("chat:ban", {"user_id": bob.user.id, "creator_id": ann.user.id}),
            ("chat:restricted", {"creator_id": ann.user.id}),
            ("chat:moderators", {"creator_id": ann.user.id})):
        ack = await dan.call(event, payload)
        assert ack["error"]["code"] == "forbidden", (event, ack)
    assert await snapshot(redis_url) == before
    assert (await dan.call("chat:history", {"live_id": live_id}))["you"]["moderator"] is False

    # the creator appoints dan and eve; dan is told at once
    for m in (dan, eve):
        ack = await ann.call("chat:moderator", {"user_id": m.user.id})
        assert ack == {"ok": True, "user_id": m.user.id, "moderator": True}, ack
    await poll(lambda: dan.got("chat:moderator"))
    assert dan.got("chat:moderator")[-1] == {"creator_id": ann.user.id, "moderator": True}
    assert (await dan.call("chat:history", {"live_id": live_id}))["you"]["moderator"] is True
    mods = await dan.call("chat:moderators", {"creator_id": ann.user.id})
    assert [u["username"] for u in mods["moderators"]] == ["dan", "eve"]
    assert (await bob.call("chat:moderators", {"creator_id": ann.user.id})
            )["error"]["code"] == "forbidden"
    assert (await dan.call("chat:moderator", {"user_id": cat.user.id}))["ok"]  # dan's own
    assert (await dan.call("chat:moderator", {"user_id": cat.user.id, "on": False}))["ok"]

    # delete: bob's line goes for everyone
    assert (await dan.call("chat:delete", {"live_id": live_id, "message_id": rude}))["ok"]
    await poll(lambda: any(i.get("target") == rude for i in bob.items))
    # mute with a chosen duration, in ann's chats (the creator_id dan names)
    ack = await dan.call("chat:mute", {"user_id": bob.user.id, "seconds": 600,
                                       "creator_id": ann.user.id})
    assert ack["ok"] and ack["until"] > 0
    await poll(lambda: bob.got("chat:muted") and ann.got("chat:moderated"))
    assert bob.got("chat:muted")[-1]["creator_id"] == ann.user.id
    assert ann.got("chat:moderated")[-1] == {"creator_id": ann.user.id, "action": "mute",
                                             "user_id": bob.user.id, "by": dan.user.id}
    muted = await send(bob, "am I muted?")
    assert muted["error"]["reason"] == "muted"
    # ban: cat leaves the live at once
    assert (await dan.call("chat:ban", {"user_id": cat.user.id, "creator_id": ann.user.id}))["ok"]
    await poll(lambda: cat.got("room:left") and cat.got("chat:banned"))
    assert cat.got("chat:banned")[-1]["creator_id"] == ann.user.id

    # the lists: bob muted, cat banned
    listed = await dan.call("chat:restricted", {"creator_id": ann.user.id})
    rows = {r["user"]["username"]: r for r in listed["users"]}
    assert set(rows) == {"bob", "cat"}
    assert rows["cat"]["banned"] and not rows["bob"]["banned"]
    assert rows["bob"]["muted_until"] > 0

    # never the creator or another moderator, and not their lines
    creator_line = (await send(ann, "from the creator"))["message"]["id"]
    eve_line = (await send(eve, "from a moderator"))["message"]["id"]
    before = await snapshot(redis_url)
    for event, payload in (
            ("chat:ban", {"user_id": ann.user.id, "creator_id": ann.user.id}),
            ("chat:mute", {"user_id": eve.user.id, "seconds": 60, "creator_id": ann.user.id}),
            ("chat:ban", {"user_id": eve.user.id, "creator_id": ann.user.id}),
            ("chat:delete", {"live_id": live_id, "message_id": creator_line}),
            ("chat:delete", {"live_id": live_id, "message_id": eve_line})):
        ack = await dan.call(event, payload)
        assert (ack["error"]["code"], ack["error"]["reason"]) == ("forbidden", "moderator"), (
            event, ack)
    # and only in ann's chats: dan naming bob as the creator is refused
    ack = await dan.call("chat:mute", {"user_id": cat.user.id, "seconds": 60,
                                       "creator_id": bob.user.id})
    assert ack["error"]["code"] == "forbidden"
    assert await snapshot(redis_url) == before

    # undo: unmute and unban from the list
    assert (await dan.call("chat:unmute", {"user_id": bob.user.id,
                                           "creator_id": ann.user.id}))["ok"]
    assert (await dan.call("chat:unban", {"user_id": cat.user.id,
                                          "creator_id": ann.user.id}))["ok"]
    assert (await dan.call("chat:restricted", {"creator_id": ann.user.id}))["users"] == []
    assert (await send(bob, "thanks"))["ok"]

    # dismissed: no right left; a creator's ban of a moderator ends the role too
    assert (await ann.call("chat:moderator", {"user_id": dan.user.id, "on": False}))["ok"]
    await poll(lambda: dan.got("chat:moderator")[-1]["moderator"] is False)
    ack = await dan.call("chat:mute", {"user_id": bob.user.id, "seconds": 60,
                                       "creator_id": ann.user.id})
    assert ack["error"]["code"] == "forbidden"
    assert (await ann.call("chat:ban", {"user_id": eve.user.id}))["ok"]
    await poll(lambda: eve.got("chat:moderator"))
    assert (await ann.call("chat:moderators", {}))["moderators"] == []
