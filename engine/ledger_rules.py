"""The ledger's rules as plain values and functions: rates, limits, ages, ids.

Everything here is integer arithmetic the tests call directly; engine/ledger.py
does the Redis I/O and engine/audit.py re-checks the journal with these same
functions.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from engine.errors import invalid

OP_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
GIFT_MIN_AGE = 18
# 200 diamonds = 1 USD (TikTok's, as third parties publish it): others cite a 2,000-diamond
# minimum for withdrawals and a 1,000 USD (200,000 diamonds) daily cap.
CASHOUT_MIN = 2_000
CASHOUT_DAILY_CAP = 200_000
MAX_CASHOUT = 100_000_000


@dataclass(frozen=True, slots=True)
class LedgerRules:
    """The configurable money rules (signaling/config.py sets them from flags)."""

    coins_per_diamond: int = 2      # 2 coins become 1 diamond for the creator
    commission_pct: int = 0         # platform commission on top, in whole percent
    min_followers: int = 0          # followers a creator needs to receive gifts
    max_count: int = 99             # gifts of one kind in one send
    min_age: int = GIFT_MIN_AGE     # sender and creator
    cashout_min: int = CASHOUT_MIN
    cashout_daily_cap: int = CASHOUT_DAILY_CAP

    def __post_init__(self) -> None:
        if self.coins_per_diamond < 1:
            raise ValueError("coins_per_diamond must be at least 1")
        if not 0 <= self.commission_pct <= 100:
            raise ValueError("commission_pct must be 0..100")
        if self.max_count < 1 or self.min_followers < 0 or self.min_age < 0:
            raise ValueError("max_count >= 1, min_followers >= 0, min_age >= 0")
        if not 1 <= self.cashout_min <= self.cashout_daily_cap:
            raise ValueError("need 1 <= cashout_min <= cashout_daily_cap")

    @property
    def rate(self) -> str:
        """The rate in force as the journal records it: 'coins_per_diamond:commission_pct'."""
        return f"{self.coins_per_diamond}:{self.commission_pct}"


def parse_rate(text: str) -> tuple[int, int]:
    """('2:0') -> (coins_per_diamond, commission_pct); ValueError when malformed."""
    left, sep, right = text.partition(":")
    per, pct = int(left), int(right)
    if not sep or per < 1 or not 0 <= pct <= 100:
        raise ValueError(f"bad rate {text!r}")
    return per, pct


def split_gift(coins: int, coins_per_diamond: int, commission_pct: int) -> tuple[int, int]:
    """(creator diamonds, platform coins) for `coins` spent, the rule before the carry
    (carry_gift): the audit still proves the journal's older gifts with it.

    The commission comes off first (rounded down, in the creator's favour),
    the rest converts at coins_per_diamond, and whatever does not make a whole
    diamond is the platform's too, so diamonds * coins_per_diamond + platform
    == coins exactly. 1 Rose at 2:1 is 0 diamonds and 1 platform coin.
    """
    if coins < 0:
        raise ValueError("coins must not be negative")
    convertible = coins - coins * commission_pct // 100
    diamonds = convertible // coins_per_diamond
    return diamonds, coins - diamonds * coins_per_diamond


def commission(coins: int, commission_pct: int) -> int:
    """The platform's commission on `coins` spent, rounded down (in the creator's favour)."""
    if coins < 0:
        raise ValueError("coins must not be negative")
    return coins * commission_pct // 100


def carry_gift(coins: int, carry: int, coins_per_diamond: int,
               commission_pct: int) -> tuple[int, int, int]:
    """(creator diamonds, platform coins, creator carry after) for `coins` spent on a
    creator whose carry (coins toward their next diamond) is `carry`.

    The rule gifts follow since the carry: nothing is lost to rounding. The commission
    comes off first (rounded down, in the creator's favour); the rest joins the carry
    and every whole coins_per_diamond of it becomes a diamond; what does not make a
    whole diamond stays in the creator's account as carry, in coins (a finer unit than
    the diamond), for their next gift. So diamonds * coins_per_diamond + platform +
    (carry after - carry) == coins exactly, and two 1-coin Roses at 2:0 make one
    diamond. A carry left from an older, larger rate converts at the new one.
    """
    if carry < 0:
        raise ValueError("carry must not be negative")
    platform = commission(coins, commission_pct)
    total = carry + coins - platform
    diamonds = total // coins_per_diamond
    return diamonds, platform, total - diamonds * coins_per_diamond


def adult_cutoff(today: dt.date, age: int) -> str:
    """The latest ISO birthdate of someone `age` or older today.

    ISO dates compare as strings, so the Lua script checks `birthdate <=
    cutoff`. Same rule as engine.accounts.age_on: a 29 February birthday counts
    on 1 March in other years.
    """
    try:
        return today.replace(year=today.year - age).isoformat()
    except ValueError:  # today is 29 February, `age` years ago was not a leap year
        return today.replace(year=today.year - age, day=28).isoformat()


def standing_refusal(*, banned: bool, blocking: bool, blocked_by: bool) -> str | None:
    """Why no gift can go from a sender to a creator between whom a ban or a block
    stands, as the gift script names it ('banned', 'blocking', 'blocked_by'), in the
    script's order, or None."""
    if banned:
        return "banned"
    if blocking:
        return "blocking"
    if blocked_by:
        return "blocked_by"
    return None


def gift_refusal(sender_birthdate: str, creator_birthdate: str, creator_followers: int,
                 rules: LedgerRules, today: dt.date) -> str | None:
    """Why no gift can go from this sender to this creator whatever they pick, as the
    gift script names it ('sender_minor', 'creator_minor', 'followers'), or None.
    Birthdates are ISO dates (the script's own comparison): the tray is not offered
    where every gift would be refused."""
    cutoff = adult_cutoff(today, rules.min_age)
    if creator_birthdate > cutoff:
        return "creator_minor"
    if creator_followers < rules.min_followers:
        return "followers"
    if sender_birthdate > cutoff:
        return "sender_minor"
    return None


def check_op_id(op_id: object, field: str = "transfer_id") -> str:
    """A client-generated idempotency id: 8-64 characters of A-Z a-z 0-9 _ -."""
    if not isinstance(op_id, str) or not OP_ID_RE.fullmatch(op_id):
        raise invalid(f"{field} must be 8-64 characters of A-Z, a-z, 0-9, '_' or '-'",
                      field=field)
    return op_id


def check_coins(coins: object, field: str = "coins") -> int:
    if not isinstance(coins, int) or isinstance(coins, bool) or not 1 <= coins <= 10**9:
        raise invalid(f"{field} must be a whole number from 1 to 1000000000", field=field)
    return coins


def check_cashout(diamonds: object, rules: LedgerRules) -> int:
    """A cash-out amount: whole diamonds, at least the threshold, at most the daily cap."""
    if not isinstance(diamonds, int) or isinstance(diamonds, bool) or diamonds < 1 \
            or diamonds > MAX_CASHOUT:
        raise invalid("diamonds must be a positive whole number", field="diamonds")
    if diamonds < rules.cashout_min:
        raise invalid(f"the smallest cash-out is {rules.cashout_min} diamonds",
                      field="diamonds", minimum=rules.cashout_min)
    if diamonds > rules.cashout_daily_cap:
        raise invalid(f"at most {rules.cashout_daily_cap} diamonds can be cashed out a day",
                      field="diamonds", daily_cap=rules.cashout_daily_cap)
    return diamonds
