"""Direct-message rules as plain functions: who may message whom under each setting,
follow state, age, block and conversation state, and where the message lands."""

from __future__ import annotations

import itertools

import pytest

from engine.errors import DomainError
from engine.graph import Relation
from engine.message_rules import (
    Policy,
    Route,
    ShareKind,
    State,
    check_may_message,
    check_may_read_receipts,
    check_may_share,
    clean_policy,
    clean_text,
    conversation_id,
    default_policy,
    other_party,
    preview,
    repeat_digest,
)

A, B = "a" * 16, "b" * 16

RELATIONS = {
    "strangers": Relation(),
    "sender_follows": Relation(following=True),
    "recipient_follows": Relation(followed_by=True),
    "friends": Relation(following=True, followed_by=True),
    "sender_blocked": Relation(blocking=True),
    "recipient_blocked": Relation(blocked_by=True),
}
# The conversation so far: (state, the sender is the one who asked).
CONVERSATIONS = {
    "new": (State.NEW, False),
    "my_request": (State.REQUESTED, True),
    "their_request": (State.REQUESTED, False),
    "accepted": (State.ACCEPTED, False),
}
AGES = [13, 15, 16, 17, 18, 40]


def expected(sender_age: int, recipient_age: int, relation: str, policy: Policy,
             conversation: str) -> str:
    """The decision table, first match wins: 'inbox', 'request' or 'forbidden/<reason>'."""
    if sender_age < 16 or recipient_age < 16:
        return "forbidden/age"
    if relation in ("sender_blocked", "recipient_blocked"):
        return "forbidden/blocked"
    if policy is Policy.NO_ONE:
        return "forbidden/no_one"
    opened_by_recipient = conversation in ("their_request", "accepted")
    if policy is Policy.FRIENDS and relation != "friends" and not opened_by_recipient:
        return "forbidden/friends_only"
    if opened_by_recipient or relation in ("recipient_follows", "friends"):
        return "inbox"
    if conversation == "my_request":
        return "forbidden/request_pending"
    return "request"


def decide(sender_age: int, recipient_age: int, relation: str, policy: Policy,
           conversation: str) -> str:
    state, mine = CONVERSATIONS[conversation]
    try:
        route = check_may_message(sender_age=sender_age, recipient_age=recipient_age,
                                  relation=RELATIONS[relation], policy=policy, state=state,
                                  requester_is_sender=mine)
    except DomainError as exc:
        assert exc.code == "forbidden"
        return f"forbidden/{exc.details['reason']}"
    return str(route)


@pytest.mark.parametrize(("relation", "policy", "conversation"),
                         list(itertools.product(RELATIONS, Policy, CONVERSATIONS)))
def test_who_may_message_whom(relation: str, policy: Policy, conversation: str) -> None:
    for sender_age, recipient_age in itertools.product(AGES, AGES):
        got = decide(sender_age, recipient_age, relation, policy, conversation)
        assert got == expected(sender_age, recipient_age, relation, policy, conversation), \
            (sender_age, recipient_age)


@pytest.mark.parametrize(("relation", "policy", "route"), [
    # adults open to everyone: strangers and fans land in requests, people they follow in
    # the inbox
    ("strangers", Policy.EVERYONE, "request"),
    ("sender_follows", Policy.EVERYONE, "request"),
    ("recipient_follows", Policy.EVERYONE, "inbox"),
    ("friends", Policy.EVERYONE, "inbox"),
    # friends only: mutual follows, and only them
    ("recipient_follows", Policy.FRIENDS, "forbidden/friends_only"),
    ("friends", Policy.FRIENDS, "inbox"),
    # no one: not even friends
    ("friends", Policy.NO_ONE, "forbidden/no_one"),
])
def test_first_messages_between_adults(relation: str, policy: Policy, route: str) -> None:
    assert decide(30, 30, relation, policy, "new") == route


def test_ages_at_the_edges() -> None:
    assert decide(16, 16, "friends", Policy.EVERYONE, "new") == "inbox"
    assert decide(15, 30, "friends", Policy.EVERYONE, "accepted") == "forbidden/age"
    assert decide(30, 15, "friends", Policy.EVERYONE, "accepted") == "forbidden/age"


def test_a_request_blocks_more_until_accepted_or_answered() -> None:
    assert decide(30, 30, "strangers", Policy.EVERYONE, "new") == "request"
    assert decide(30, 30, "strangers", Policy.EVERYONE, "my_request") == \
        "forbidden/request_pending"
    # they follow me back meanwhile: my next message goes to their inbox
    assert decide(30, 30, "recipient_follows", Policy.EVERYONE, "my_request") == "inbox"
    # the recipient answers a request: that accepts it, even under friends-only
    assert decide(30, 30, "strangers", Policy.FRIENDS, "their_request") == "inbox"
    assert decide(30, 30, "strangers", Policy.FRIENDS, "accepted") == "inbox"
    # a block ends even an accepted conversation, both ways
    assert decide(30, 30, "recipient_blocked", Policy.EVERYONE, "accepted") == \
        "forbidden/blocked"
    assert decide(30, 30, "sender_blocked", Policy.EVERYONE, "accepted") == "forbidden/blocked"


@pytest.mark.parametrize(("age", "policy"), [
    (13, Policy.FRIENDS), (16, Policy.FRIENDS), (17, Policy.FRIENDS),
    (18, Policy.EVERYONE), (70, Policy.EVERYONE)])
def test_minors_default_to_friends(age: int, policy: Policy) -> None:
    assert default_policy(age) is policy


def test_policy_values() -> None:
    assert clean_policy("none") is Policy.NO_ONE
    with pytest.raises(DomainError) as info:
        clean_policy("nobody")
    assert info.value.code == "invalid" and info.value.details["field"] == "dm_policy"


def test_receipts_only_in_accepted_conversations() -> None:
    assert check_may_read_receipts(State.ACCEPTED)
    assert not check_may_read_receipts(State.REQUESTED)
    assert not check_may_read_receipts(State.NEW)
    assert not check_may_read_receipts(State.ACCEPTED, blocked=True)


def test_conversation_ids() -> None:
    conv = conversation_id(B, A)
    assert conv == A + B == conversation_id(A, B)
    assert other_party(conv, A) == B and other_party(conv, B) == A
    for bad, me in ((conv, "c" * 16), (A + A, A), ("short", A)):
        with pytest.raises(DomainError) as info:
            other_party(bad, me)
        assert info.value.code == "not_found"
    with pytest.raises(DomainError) as info:
        conversation_id(A, A)
    assert info.value.code == "invalid"


@pytest.mark.parametrize(("text", "ok"), [
    ("hi", True), ("two\nlines", True), ("<b>bold</b>", True), ("x" * 1000, True),
    ("", False), ("  \n ", False), ("x" * 1001, False), ("tab\tstop", False),
    ("bidi\u202e", False), ("esc\x1b[31m", False),
])
def test_message_text(text: str, ok: bool) -> None:
    if ok:
        assert clean_text(text) == text.strip()
    else:
        with pytest.raises(DomainError) as info:
            clean_text(text)
        assert info.value.code == "invalid"


def test_repeats_and_previews() -> None:
    assert repeat_digest("Buy  NOW") == repeat_digest("buy now") != repeat_digest("buy now!")
    assert preview("a\nb") == "a b"
    assert len(preview("x" * 500)) == 120 and preview("x" * 500).endswith("…")


def test_shares() -> None:
    check_may_share(ShareKind.PROFILE, relation_to_sharer=Relation(), live_running=False)
    check_may_share(ShareKind.LIVE, relation_to_sharer=Relation(), live_running=True)
    for relation, running, code in ((Relation(), False, "not_found"),
                                    (Relation(blocked_by=True), True, "forbidden"),
                                    (Relation(blocking=True), True, "forbidden")):
        with pytest.raises(DomainError) as info:
            check_may_share(ShareKind.LIVE, relation_to_sharer=relation, live_running=running)
        assert info.value.code == code
    assert Route.INBOX == "inbox"
