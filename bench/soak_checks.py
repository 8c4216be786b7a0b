"""The soak's verdicts as plain functions: what "returned to baseline" means for each
measure, which Redis keys a run may legitimately leave behind, and the memory slope.

bench/soak.py samples the server idle after a warm-up (the baseline) and idle again after
the load and a settle period (the end); these rules compare the two. No I/O here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Measures that must come back: the count at the end may exceed the baseline's by at most
# this much. Sockets and peer connections are exact (only the creator's stays). An idle
# server still has a few short-lived tasks (the Redis RTT sampler's PING, the like and
# room-state push loops waking) and fds (a Redis connection taken from the pool for a
# moment), so a sample may catch one or two more than another.
DEFAULT_SLACK: dict[str, int] = {"sockets": 0, "peers": 0, "tasks": 3, "fds": 3}
RETURNING = ("sockets", "peers", "tasks", "fds")

# Families of persistent keys each acknowledged operation of the load writes once. Every
# other family's persistent count must not change: the load touches only users, DM
# conversations and the live that already exist at the baseline (bench/soak.py warms each
# of them up), so anything new there is a leak.
KEYS_PER_GIFT = {"ledger_op": 1}  # the transfer's idempotency record, kept for good
KEYS_PER_NEW_CONVERSATION = {"dm": 1, "dm_meta": 1}  # the stream and its state hash


@dataclass(frozen=True)
class Verdict:
    """One measure, baseline against end: `ok` when within `allowed`."""

    measure: str
    baseline: float
    end: float
    allowed: float  # the end may be at most baseline + allowed
    ok: bool
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"measure": self.measure, "baseline": self.baseline, "end": self.end,
                "allowed": self.allowed, "ok": self.ok, "note": self.note}


def returned(measure: str, baseline: float, end: float, slack: float,
             note: str = "") -> Verdict:
    """`end` came back to `baseline` (at most `slack` above it; below is fine: something
    idle at the baseline closed since)."""
    return Verdict(measure, baseline, end, slack, end <= baseline + slack, note)


def fd_allowance(redis_clients_base: int, redis_clients_end: int) -> int:
    """Fds the server may hold above the baseline without a leak: the Redis connections its
    pool opened under load and keeps idle (redis-py's pool never shrinks; each connection
    is one fd, and Redis lists it in CLIENT LIST, so the bench counts them there)."""
    return max(0, redis_clients_end - redis_clients_base)


def key_family(key: str) -> str:
    """The family of a golive key (engine/keys.py): its name without the hash tag, up to the
    first ':'. "{core}ledger_op:gift:u1:t9" -> "ledger_op", "gift_board:{L1}" ->
    "gift_board", "{core}lives" -> "lives", "{core}ledger:journal" -> "ledger:journal"."""
    for tag in ("{core}", "{dm}"):
        if key.startswith(tag):
            key = key[len(tag):]
            break
    if key == "ledger:journal":
        return key
    return key.split(":", 1)[0]


def family_counts(keys: Iterable[tuple[str, int]]) -> tuple[Counter[str], Counter[str]]:
    """(persistent, volatile) key counts by family from (key, TTL seconds) pairs as Redis
    TTL answers them: -1 is no expiry (persistent), >= 0 expires by itself (volatile),
    -2 (gone between SCAN and TTL) is neither."""
    persistent: Counter[str] = Counter()
    volatile: Counter[str] = Counter()
    for key, ttl in keys:
        if ttl == -1:
            persistent[key_family(key)] += 1
        elif ttl >= 0:
            volatile[key_family(key)] += 1
    return persistent, volatile


def expected_key_growth(gifts_acked: int, new_conversations: int) -> dict[str, int]:
    """Persistent keys by family that the load phase legitimately added."""
    growth: Counter[str] = Counter()
    for family, per in KEYS_PER_GIFT.items():
        growth[family] += per * gifts_acked
    for family, per in KEYS_PER_NEW_CONVERSATION.items():
        growth[family] += per * new_conversations
    return {f: n for f, n in growth.items() if n}


def key_verdicts(baseline: Mapping[str, int], end: Mapping[str, int],
                 expected: Mapping[str, int]) -> list[Verdict]:
    """Per family of persistent keys: end == baseline + expected growth, exactly. Families
    where nothing changed and nothing was expected are left out."""
    out = []
    for family in sorted(set(baseline) | set(end) | set(expected)):
        base, now, grow = baseline.get(family, 0), end.get(family, 0), expected.get(family, 0)
        if base == now and not grow:
            continue
        ok = now == base + grow
        note = "" if ok else f"{now - base - grow:+d} unexpected"
        out.append(Verdict(f"keys {family}", base, now, grow, ok, note))
    return out


def entries_verdict(measure: str, baseline: int, end: int, acked: int,
                    unknown: int = 0) -> Verdict:
    """Stream entries written by the load: at least every acknowledged operation, at most
    those plus the ones whose answer never came (`unknown`: stored or not)."""
    added = end - baseline
    ok = acked <= added <= acked + unknown
    note = f"{added} added, {acked} acknowledged" + (f", {unknown} unanswered" if unknown else "")
    return Verdict(measure, baseline, end, acked, ok, note)


def slope_per_minute(times_s: Sequence[float], values: Sequence[float]) -> float | None:
    """The least-squares slope of `values` over `times_s`, per minute (None under 3 points
    or no spread in time)."""
    n = len(times_s)
    if n < 3 or n != len(values):
        return None
    mean_t = sum(times_s) / n
    mean_v = sum(values) / n
    var = sum((t - mean_t) ** 2 for t in times_s)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in zip(times_s, values, strict=True))
    return cov / var * 60.0


def steady_half(samples: Sequence[Mapping[str, float]], start_s: float, end_s: float
                ) -> list[Mapping[str, float]]:
    """The samples in the second half of [start_s, end_s] (by their "t"): past the load's
    ramp, where a leak shows as a slope rather than as warm-up growth."""
    middle = (start_s + end_s) / 2
    return [s for s in samples if middle <= s["t"] <= end_s]


def leaked(verdicts: Iterable[Verdict]) -> list[str]:
    """The measures that did not come back."""
    return [v.measure for v in verdicts if not v.ok]
