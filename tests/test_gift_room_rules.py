"""Gift room rules called directly, and the GiftRoom store over a real Redis: combos,
the live's leaderboard, the creator's diamonds this live, idempotency by transfer id."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from engine.gift_room import (
    Combo,
    GiftBoard,
    GiftRoom,
    GiftRoomRules,
    Standing,
    board_view,
    next_combo,
)

LIVE = "00000000000000aa"
ANN, BOB, CAT = "a" * 16, "b" * 16, "c" * 16


# --- rules -------------------------------------------------------------------------------

def test_a_first_send_starts_a_streak_named_by_its_transfer_id() -> None:
    assert next_combo(None, "t-first-1", 3, 10_000, 5.0) == Combo("t-first-1", 3, 10_000)


def test_the_same_gift_within_the_window_continues_the_streak() -> None:
    streak = Combo("t-first-1", 3, 10_000)
    assert next_combo(streak, "t-second", 1, 15_000, 5.0) == Combo("t-first-1", 4, 15_000)
    # The window runs from the streak's last send, not its first.
    later = next_combo(Combo("t-first-1", 4, 15_000), "t-third", 2, 19_000, 5.0)
    assert later == Combo("t-first-1", 6, 19_000)


def test_a_pause_longer_than_the_window_starts_a_new_streak() -> None:
    streak = Combo("t-first-1", 3, 10_000)
    assert next_combo(streak, "t-next-01", 1, 15_001, 5.0) == Combo("t-next-01", 1, 15_001)


def test_a_send_stamped_before_the_last_one_continues_and_keeps_the_time() -> None:
    # Two sends racing, each stamped by its own server task.
    streak = Combo("t-first-1", 3, 10_000)
    assert next_combo(streak, "t-next-01", 1, 9_990, 5.0) == Combo("t-first-1", 4, 10_000)


@pytest.mark.parametrize("kwargs", [{"combo_window_s": 0}, {"leaderboard_size": 0},
                                    {"leaderboard_size": 101}, {"retention_s": 1}])
def test_bad_rules_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        GiftRoomRules(**kwargs)  # type: ignore[arg-type]


def test_board_view_names_users_and_leaves_out_unknown_ones() -> None:
    board = GiftBoard(LIVE, (Standing(ANN, 30), Standing("gone" * 4, 20), Standing(BOB, 5)),
                      coins=55, diamonds=27, seq=4)
    users = {ANN: {"id": ANN, "username": "ann"}, BOB: {"id": BOB, "username": "bob"}}
    assert board_view(board, users) == {
        "live_id": LIVE, "seq": 4, "coins": 55, "diamonds_this_live": 27,
        "leaderboard": [{"user": users[ANN], "coins": 30}, {"user": users[BOB], "coins": 5}]}


# --- the store ---------------------------------------------------------------------------

async def send(room: GiftRoom, transfer: str, sender: str, *, gift: str = "rose",
               count: int = 1, coins: int = 1, diamonds: int = 0, now: float = 1000.0):
    return await room.record(live_id=LIVE, transfer_id=transfer, sender_id=sender,
                             gift_id=gift, count=count, coins=coins, diamonds=diamonds, now=now)


async def test_combos_leaderboard_and_diamonds(redis: Redis) -> None:
    room = GiftRoom(redis)
    first = await send(room, "t-ann-0001", ANN, count=2, coins=2, diamonds=1, now=1000.0)
    assert (first.streak, first.combo, first.seq, first.new) == (f"{ANN}:t-ann-0001", 2, 1, True)
    again = await send(room, "t-ann-0002", ANN, coins=1, now=1003.0)
    assert (again.streak, again.combo, again.seq) == (f"{ANN}:t-ann-0001", 3, 2)
    # Another gift is another streak; another sender too.
    heart = await send(room, "t-ann-0003", ANN, gift="finger_heart", coins=5, diamonds=2,
                       now=1003.5)
    assert (heart.streak, heart.combo) == (f"{ANN}:t-ann-0003", 1)
    lion = await send(room, "t-bob-0001", BOB, gift="lion", coins=29999, diamonds=14999,
                      now=1004.0)
    assert (lion.streak, lion.combo, lion.seq) == (f"{BOB}:t-bob-0001", 1, 4)
    # Past the window: a new streak of roses.
    late = await send(room, "t-ann-0004", ANN, coins=1, now=1003.0 + 5.5)
    assert (late.streak, late.combo) == (f"{ANN}:t-ann-0004", 1)

    board = await room.board(LIVE)
    assert board.top == (Standing(BOB, 29999), Standing(ANN, 9))
    assert (board.coins, board.diamonds, board.seq) == (30008, 15002, 5)
    assert await room.board("ffffffffffffffff") == GiftBoard("ffffffffffffffff")


async def test_a_replayed_transfer_counts_once_and_answers_its_first_combo(redis: Redis) -> None:
    room = GiftRoom(redis)
    await send(room, "t-ann-0001", ANN, now=1000.0)
    first = await send(room, "t-ann-0002", ANN, coins=1, now=1001.0)
    before = await room.board(LIVE)
    replay = await send(room, "t-ann-0002", ANN, coins=1, now=1002.0)
    assert (replay.streak, replay.combo, replay.seq, replay.new) == (
        first.streak, first.combo, first.seq, False)
    assert await room.board(LIVE) == before
    assert await room.moment(LIVE, ANN, "t-ann-0002") == replay
    assert await room.moment(LIVE, ANN, "t-unknown-1") is None
    # Transfer ids are the sender's own: another sender's same id is another gift.
    other = await send(room, "t-ann-0002", BOB, coins=1, now=1002.0)
    assert other.new and other.streak == f"{BOB}:t-ann-0002" and other.combo == 1
    # The streak went on from the last real send, not from the replay.
    nxt = await send(room, "t-ann-0003", ANN, now=1002.5)
    assert (nxt.streak, nxt.combo) == (f"{ANN}:t-ann-0001", 3)


async def test_the_script_applies_the_same_combo_rule(redis: Redis) -> None:
    room = GiftRoom(redis, GiftRoomRules(combo_window_s=2.0))
    expected: Combo | None = None
    gaps = [0, 1.5, 0.2, 2.0, 2.001, 0.5, -0.3, 3.0, 1.99, 0.01]
    now = 1000.0
    for i, gap in enumerate(gaps):
        now += gap
        count = 1 + i % 3
        expected = next_combo(expected, f"{ANN}:t-rule-{i:03d}", count, int(now * 1000), 2.0)
        moment = await send(room, f"t-rule-{i:03d}", ANN, count=count, now=now)
        assert (moment.streak, moment.combo) == (expected.streak, expected.count), i


async def test_concurrent_sends_of_one_streak_each_get_their_own_count(redis: Redis) -> None:
    room = GiftRoom(redis)
    moments = await asyncio.gather(*(send(room, f"t-par-{i:04d}", ANN, now=1000.0 + i / 100)
                                     for i in range(20)))
    assert sorted(m.combo for m in moments) == list(range(1, 21))
    assert len({m.streak for m in moments}) == 1
    assert sorted(m.seq for m in moments) == list(range(1, 21))
    board = await room.board(LIVE)
    assert board.top == (Standing(ANN, 20),) and board.seq == 20


async def test_leaderboard_is_bounded_and_everything_expires(redis: Redis) -> None:
    room = GiftRoom(redis, GiftRoomRules(leaderboard_size=2, retention_s=600))
    for i, sender in enumerate((ANN, BOB, CAT)):
        await send(room, f"t-lead-{i:03d}", sender, coins=10 * (i + 1), now=1000.0 + i)
    board = await room.board(LIVE)
    assert board.top == (Standing(CAT, 30), Standing(BOB, 20))
    assert (await room.board(LIVE, limit=3)).top[-1] == Standing(ANN, 10)
    for key in await redis.keys("gift_*"):
        ttl = await redis.pttl(key)
        assert 0 < ttl <= 600_000, (key, ttl)
