"""The viewer hold rules (signaling/viewer_hold.py), called directly: who may take a
held viewer back, and the registry's token and timer lifecycle (real asyncio timers,
shortened)."""

from __future__ import annotations

import pytest

from engine.errors import DomainError
from signaling.viewer_hold import Hold, ViewerHolds, check_resume, new_token, token_digest
from tests.support.poll import poll

LIVE = "0123456789abcdef"


def held(**kw: object) -> Hold:
    fields: dict[str, object] = {"live_id": LIVE, "sid": "s1", "media_key": "s1",
                                 "user_id": "u1", "anonymous": False, "deadline": 100.0}
    fields.update(kw)
    return Hold(**fields)  # type: ignore[arg-type]


def refusal(hold: Hold | None, **kw: object) -> tuple[str, object]:
    args: dict[str, object] = {"live_id": LIVE, "sid": "s2", "user_id": "u1",
                               "anonymous": False, "live_running": True, "now": 50.0}
    args.update(kw)
    with pytest.raises(DomainError) as caught:
        check_resume(hold, **args)  # type: ignore[arg-type]
    return str(caught.value.code), caught.value.details.get("reason")


def test_the_owner_takes_its_hold_back_before_the_deadline() -> None:
    hold = held()
    assert check_resume(hold, live_id=LIVE, sid="s2", user_id="u1", anonymous=False,
                        live_running=True, now=99.9) is hold
    visitor = held(user_id="anon-1", anonymous=True)
    # a visitor's new socket has a new made-up identity: the token alone binds it
    assert check_resume(visitor, live_id=LIVE, sid="s2", user_id="anon-2", anonymous=True,
                        live_running=True, now=0.0) is visitor
    # the old socket's loss not yet seen by the server (no hold yet): the page's new
    # socket, with the token only that page saw, takes the join all the same
    bound = held(deadline=None)
    assert check_resume(bound, live_id=LIVE, sid="s2", user_id="u1", anonymous=False,
                        live_running=True, now=1e9) is bound


def test_every_misuse_has_its_code_and_reason() -> None:
    assert refusal(None) == ("not_found", "unknown_token")
    assert refusal(held(), sid="s1") == ("conflict", None)  # the socket it is bound to
    assert refusal(held(), live_id="f" * 16) == ("not_found", "unknown_token")
    assert refusal(held(), now=100.0) == ("not_found", "expired")
    assert refusal(held(), live_running=False) == ("not_found", "live_ended")
    assert refusal(held(), user_id="u2") == ("forbidden", "other_user")
    assert refusal(held(), user_id="anon-2", anonymous=True) == ("forbidden", "other_user")
    assert refusal(held(user_id="anon-1", anonymous=True)) == ("forbidden", "other_user")


def test_tokens_are_random_and_only_their_digest_is_kept() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) == 32 for t in tokens)
    token = next(iter(tokens))
    assert token_digest(token) != token and len(token_digest(token)) == 64


async def test_a_hold_is_taken_once_and_its_timer_ends() -> None:
    expired: list[Hold] = []

    async def on_expiry(hold: Hold) -> None:
        expired.append(hold)

    holds = ViewerHolds(30.0, on_expiry)
    try:
        token = holds.issue("s1", LIVE, "s1", "u1", anonymous=False)
        assert token is not None
        assert token not in repr(holds.__dict__)  # the token itself is not stored
        kw = {"live_id": LIVE, "sid": "s9", "user_id": "u1", "anonymous": False,
              "live_running": True}
        with pytest.raises(DomainError) as same:  # from the socket it is bound to
            await holds.take(token, **{**kw, "sid": "s1"})  # type: ignore[arg-type]
        assert same.value.code == "conflict"
        hold = holds.hold("s1", LIVE)
        assert hold is not None and hold.deadline is not None
        assert holds.hold("s2", LIVE) is None  # no token: nothing held
        with pytest.raises(DomainError) as other:  # another user's try leaves it
            await holds.take(token, **{**kw, "user_id": "u2"})  # type: ignore[arg-type]
        assert other.value.details["reason"] == "other_user"
        assert (await holds.take(token, **kw)) == hold  # type: ignore[arg-type]
        assert holds.held() == [] and not holds._timers
        with pytest.raises(DomainError) as again:  # used once
            await holds.take(token, **kw)  # type: ignore[arg-type]
        assert again.value.details["reason"] == "unknown_token"
        assert expired == []
    finally:
        await holds.close()


async def test_an_unclaimed_hold_expires_and_a_left_viewer_is_not_held() -> None:
    expired: list[Hold] = []

    async def on_expiry(hold: Hold) -> None:
        expired.append(hold)

    holds = ViewerHolds(0.05, on_expiry)
    bound = holds.issue("s0", LIVE, "s0", "u0", anonymous=False)
    assert bound is not None
    taken = await holds.take(bound, live_id=LIVE, sid="s5", user_id="u0", anonymous=False,
                             live_running=True)
    assert taken.sid == "s0" and not taken.held
    assert holds.hold("s0", LIVE) is None  # the old socket's late drop holds nothing
    try:
        holds.issue("s1", LIVE, "s1", "u1", anonymous=False)
        holds.hold("s1", LIVE)
        await poll(lambda: len(expired) == 1, timeout=5, what="the hold expired")
        assert expired[0].sid == "s1" and holds.held() == [] and not holds._timers
        # a viewer that left (room:leave) has no token to hold
        holds.issue("s2", LIVE, "s2", "u2", anonymous=False)
        await holds.forget("s2", LIVE)
        assert holds.hold("s2", LIVE) is None
        # a held viewer whose media ended (forget): its timer is cancelled, no expiry
        holds.issue("s3", LIVE, "s3", "u3", anonymous=False)
        holds.hold("s3", LIVE)
        (timer,) = holds._timers.values()
        await holds.forget("s3", LIVE)
        assert timer.cancelled() and not holds._timers and holds.held() == []
        assert [h.sid for h in expired] == ["s1"]
    finally:
        await holds.close()
    # a live that ended: its viewers' tokens go (no leak), a held one stays to say so
    holds = ViewerHolds(30.0, on_expiry)
    try:
        holds.issue("s1", LIVE, "s1", "u1", anonymous=False)
        held_token = holds.issue("s2", LIVE, "s2", "u2", anonymous=False)
        holds.issue("s3", "f" * 16, "s3", "u3", anonymous=False)
        holds.hold("s2", LIVE)
        holds.live_ended(LIVE)
        assert sorted(h.sid for h in holds._tokens.values()) == ["s2", "s3"]
        assert list(holds._bound) == [("s3", "f" * 16)]
        with pytest.raises(DomainError) as ended:
            await holds.take(held_token or "", live_id=LIVE, sid="s9", user_id="u2",
                             anonymous=False, live_running=False)
        assert ended.value.details["reason"] == "live_ended" and holds.held() == []
    finally:
        await holds.close()
    # off (GOLIVE_VIEWER_RESUME_GRACE=0): no tokens at all
    assert ViewerHolds(0, on_expiry).issue("s1", LIVE, "s1", "u1", anonymous=False) is None


async def test_close_cancels_every_timer() -> None:
    async def on_expiry(hold: Hold) -> None:
        raise AssertionError("closed holds never expire")

    holds = ViewerHolds(0.2, on_expiry)
    for n in range(3):
        holds.issue(f"s{n}", LIVE, f"s{n}", "u", anonymous=False)
        holds.hold(f"s{n}", LIVE)
    timers = list(holds._timers.values())
    await holds.close()
    assert all(t.done() for t in timers) and holds.held() == []
    await holds.close()  # idempotent
