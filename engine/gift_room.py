"""Gifts in the live room: combos, the live's leaderboard of gifters and the creator's
diamonds earned this live, over Redis.

The ledger (engine/ledger.py) moves the money; this module only keeps what the room shows
about gifts that the ledger already accepted, keyed by the live session:

- a combo: the same sender sending the same gift again within `combo_window_s` continues
  their streak, shown as xN (N counts gifts, so a send of 5 Roses is x5 and one more x6);
  a streak's id is "sender:transfer id" of the send that started it (transfer ids are
  each sender's own, as in the ledger), so a client (and the video overlay) updates one
  line instead of adding one per send;
- the leaderboard: coins each sender spent in this live (a sorted set);
- the totals: coins spent and diamonds the creator earned in this live, and `seq`, which
  counts the gifts recorded, so a client can drop a push older than one it has applied.

Recording is idempotent by transfer id: the ledger replays a known id (a client retry, or a
retry after a crash between the ledger and the room), and `record` then answers the first
recording's combo without counting it again. The combo rule is the plain function
next_combo; the recording script applies the same rule inside Redis, so sends of one
streak racing from two tabs each get their own xN (a read-then-compare-and-set version
gave up after 5 retries with 20 sends in flight). Everything expires `retention_s` after
the live's last gift.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from engine import keys

# TikTok-style combos continue while the same gift comes again within a few seconds.
COMBO_WINDOW_S = 5.0
LEADERBOARD_SIZE = 5
RETENTION_S = 2 * 24 * 3600  # like the live's chat stream


@dataclass(frozen=True, slots=True)
class GiftRoomRules:
    combo_window_s: float = COMBO_WINDOW_S
    leaderboard_size: int = LEADERBOARD_SIZE
    retention_s: int = RETENTION_S

    def __post_init__(self) -> None:
        if not 0 < self.combo_window_s <= 600:
            raise ValueError("combo_window_s must be in (0, 600]")
        if not 1 <= self.leaderboard_size <= 100:
            raise ValueError("leaderboard_size must be 1..100")
        if self.retention_s < 60:
            raise ValueError("retention_s must be at least 60")


# --- rules ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Combo:
    """A sender's streak of one gift in one live."""

    streak: str    # "sender:transfer id" of the send that started it: the combo's stable id
    count: int     # gifts in the streak so far: the xN shown
    last_ms: int   # when the streak's last send was recorded


def next_combo(previous: Combo | None, send_id: str, count: int, now_ms: int,
               window_s: float) -> Combo:
    """The streak after a send of `count` gifts at now_ms: the previous one continued when
    its last send is at most window_s old, else a new streak named by `send_id`.

    A send stamped before the streak's last one (two sends racing, each stamped by its own
    server task) continues the streak and leaves its time where it was."""
    if previous is not None and now_ms - previous.last_ms <= window_s * 1000:
        return Combo(previous.streak, previous.count + count, max(now_ms, previous.last_ms))
    return Combo(send_id, count, now_ms)


@dataclass(frozen=True, slots=True)
class Standing:
    user_id: str
    coins: int


@dataclass(frozen=True, slots=True)
class GiftBoard:
    """The room's gift state: top gifters (most coins first; ties by user id, descending),
    coins spent and diamonds the creator earned in this live, and `seq` (gifts recorded)."""

    live_id: str
    top: tuple[Standing, ...] = ()
    coins: int = 0
    diamonds: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class GiftMoment:
    """One recorded gift as the room shows it."""

    transfer_id: str
    streak: str
    combo: int     # xN
    seq: int       # the room's gift counter after this gift
    new: bool      # False: this transfer id was recorded before (nothing counted now)


def _moment(transfer_id: str, stored: str, new: bool) -> GiftMoment:
    streak, combo, seq = stored.split(" ")
    return GiftMoment(transfer_id, streak, int(combo), int(seq), new)


# Records one gift the ledger accepted: next_combo (above) and the counters in one step,
# so concurrent sends of one streak each get their own xN without retries.
# KEYS: seen, combo, board, totals. ARGV: send id ("sender:transfer id": transfer ids are
# each sender's own, as in the ledger), count, now ms, window ms, combo ttl ms, sender,
# coins, diamonds, retention ms.
_RECORD = """
local seen = redis.call('HGET', KEYS[1], ARGV[1])
if seen then return seen end
local now = tonumber(ARGV[3])
local combo = redis.call('HMGET', KEYS[2], 'streak', 'count', 'at')
local streak, count, at = ARGV[1], tonumber(ARGV[2]), now
if combo[1] and now - tonumber(combo[3]) <= tonumber(ARGV[4]) then
  streak = combo[1]
  count = tonumber(combo[2]) + count
  at = math.max(now, tonumber(combo[3]))
end
redis.call('HSET', KEYS[2], 'streak', streak, 'count', count, 'at', at)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('ZINCRBY', KEYS[3], ARGV[7], ARGV[6])
local seq = redis.call('HINCRBY', KEYS[4], 'seq', 1)
redis.call('HINCRBY', KEYS[4], 'coins', ARGV[7])
redis.call('HINCRBY', KEYS[4], 'diamonds', ARGV[8])
local result = streak .. ' ' .. count .. ' ' .. seq
redis.call('HSET', KEYS[1], ARGV[1], result)
redis.call('PEXPIRE', KEYS[1], ARGV[9])
redis.call('PEXPIRE', KEYS[3], ARGV[9])
redis.call('PEXPIRE', KEYS[4], ARGV[9])
return result .. ' new'
"""


class GiftRoom:
    """Combos, the leaderboard and the totals of each live's gifts."""

    def __init__(self, redis: Redis, rules: GiftRoomRules | None = None) -> None:
        self._redis = redis
        self.rules = rules or GiftRoomRules()
        self._record = redis.register_script(_RECORD)

    async def record(self, *, live_id: str, transfer_id: str, sender_id: str, gift_id: str,
                     count: int, coins: int, diamonds: int,
                     now: float | None = None) -> GiftMoment:
        """Count a gift the ledger accepted (once per transfer id) and continue or start
        the sender's combo. A replayed id answers its first moment with new=False."""
        window_ms = int(self.rules.combo_window_s * 1000)
        now_ms = int((time.time() if now is None else now) * 1000)
        stored = await self._record(
            keys=[keys.gift_seen(live_id), keys.gift_combo(live_id, sender_id, gift_id),
                  keys.gift_board(live_id), keys.gift_totals(live_id)],
            args=[f"{sender_id}:{transfer_id}", count, now_ms, window_ms, window_ms + 1000,
                  sender_id, coins, diamonds, self.rules.retention_s * 1000])
        new = stored.endswith(" new")
        return _moment(transfer_id, stored.removesuffix(" new"), new=new)

    async def board(self, live_id: str, limit: int | None = None) -> GiftBoard:
        """The live's leaderboard and totals in one round trip."""
        size = min(limit or self.rules.leaderboard_size, 100)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(keys.gift_board(live_id), 0, size - 1, withscores=True)
            pipe.hmget(keys.gift_totals(live_id), "coins", "diamonds", "seq")
            ranked, (coins, diamonds, seq) = await pipe.execute()
        return GiftBoard(live_id, tuple(Standing(user, int(score)) for user, score in ranked),
                         int(coins or 0), int(diamonds or 0), int(seq or 0))

    async def moment(self, live_id: str, sender_id: str, transfer_id: str) -> GiftMoment | None:
        """How a sender's recorded transfer showed (its streak and xN), or None."""
        stored = await self._redis.hget(keys.gift_seen(live_id), f"{sender_id}:{transfer_id}")
        return _moment(transfer_id, stored, new=False) if stored else None


def board_view(board: GiftBoard, users: dict[str, Any]) -> dict[str, Any]:
    """The board as clients get it; `users` maps ids to public user dicts (unknown ids,
    e.g. deleted accounts, are left out)."""
    return {"live_id": board.live_id, "seq": board.seq, "coins": board.coins,
            "diamonds_this_live": board.diamonds,
            "leaderboard": [{"user": users[s.user_id], "coins": s.coins}
                            for s in board.top if s.user_id in users]}


__all__ = ["Combo", "GiftBoard", "GiftMoment", "GiftRoom", "GiftRoomRules", "Standing",
           "board_view", "next_combo"]
