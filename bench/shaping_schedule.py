"""A shaping schedule as one flag: when each shaped viewer's downlink changes, and to what.

    0:300kbit/2%,20:off      shaped from the round's start, lifted at 20 s
    0:off,10:500kbit,25:200kbit/5%,40:off

Each step is AT:SPEC, AT seconds from the round's start (increasing, the first >= 0);
SPEC is `off` (no limit) or one or more of RATE (`300kbit`, `1.5mbit`, `64000bit`),
LOSS (`2%`, random loss of the downlink's packets) and DELAY (`40ms`, needs the
kernel's netem: this one has none, bench/netns.py) joined by `/`. Before the first
step the link is unshaped.

A step is a drop when it makes the link worse in some way and better in none (a lower
rate, more loss or delay), a recovery when it makes it better in some way and worse in
none, a change when both; the settle times (bench/abr_figures.py) are grouped by kind.
Plain functions; the bench (bench/abr.py) applies the steps.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bench.netns import Shaping

_RATE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)$")
_UNITS = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000}
MIN_RATE_BPS = 8_000  # below this tbf's burst (3000 B) is most of a second of traffic
MAX_STEPS = 100


@dataclass(frozen=True)
class Step:
    """One change of the shaped links: at `at_s` into the round, to `shaping`."""

    at_s: float
    shaping: Shaping
    text: str  # the SPEC as given, for tables and plots


def parse_spec(text: str) -> Shaping:
    """`off` or RATE/LOSS%/DELAYms parts -> a Shaping; ValueError says what is wrong."""
    spec = text.strip().lower()
    if spec == "off":
        return Shaping()
    rate: int | None = None
    loss = delay = 0.0
    seen: set[str] = set()
    for part in (p.strip() for p in spec.split("/")):
        if not part:
            raise ValueError(f"an empty part in {text!r}")
        if part.endswith("%"):
            kind = "loss"
            loss = _number(part[:-1], text) / 100
            if not 0 < loss < 1:
                raise ValueError(f"loss must be in (0%, 100%): {text!r}")
        elif part.endswith("ms"):
            kind = "delay"
            delay = _number(part[:-2], text)
            if not 0 < delay <= 10_000:
                raise ValueError(f"delay must be in (0, 10000] ms: {text!r}")
        elif match := _RATE.match(part):
            kind = "rate"
            rate = int(float(match[1]) * _UNITS[match[2]])
            if rate < MIN_RATE_BPS:
                raise ValueError(f"rate must be >= {MIN_RATE_BPS}bit: {text!r}")
        else:
            raise ValueError(f"{part!r} in {text!r} is not a rate (300kbit), a loss (2%), "
                             "a delay (40ms) or `off`")
        if kind in seen:
            raise ValueError(f"two {kind}s in {text!r}")
        seen.add(kind)
    return Shaping(rate_bps=rate, loss=loss, delay_ms=delay)


def _number(text: str, whole: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r} in {whole!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"not a number: {text!r} in {whole!r}")
    return value


def parse_schedule(text: str) -> list[Step]:
    """'0:300kbit/2%,20:off' -> [Step(0, ...), Step(20, off)]; ValueError when it is
    malformed, out of order, or has no step."""
    steps: list[Step] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        at, sep, spec = item.partition(":")
        if not sep:
            raise ValueError(f"a step is AT:SPEC (e.g. 20:off), not {item!r}")
        at_s = _number(at, item)
        if at_s < 0:
            raise ValueError(f"a step's time must be >= 0: {item!r}")
        if steps and at_s <= steps[-1].at_s:
            raise ValueError(f"step times must increase: {item!r} after {steps[-1].at_s:g}")
        steps.append(Step(at_s, parse_spec(spec), spec.strip().lower()))
    if not steps:
        raise ValueError("the schedule has no step")
    if len(steps) > MAX_STEPS:
        raise ValueError(f"at most {MAX_STEPS} steps")
    return steps


def _worse(a: Shaping, b: Shaping) -> tuple[bool, bool]:
    """(b worse than a in some way, b better than a in some way)."""
    rate_a = math.inf if a.rate_bps is None else a.rate_bps
    rate_b = math.inf if b.rate_bps is None else b.rate_bps
    worse = rate_b < rate_a or b.loss > a.loss or b.delay_ms > a.delay_ms
    better = rate_b > rate_a or b.loss < a.loss or b.delay_ms < a.delay_ms
    return worse, better


def step_kind(before: Shaping, after: Shaping) -> str:
    """"drop", "recovery", "change" (worse and better at once) or "same"."""
    worse, better = _worse(before, after)
    if worse and better:
        return "change"
    return "drop" if worse else "recovery" if better else "same"


def kinds(steps: list[Step]) -> list[str]:
    """Each step's kind, the link before the first being unshaped."""
    before = Shaping()
    out = []
    for step in steps:
        out.append(step_kind(before, step.shaping))
        before = step.shaping
    return out


def needs_netem(steps: list[Step]) -> bool:
    return any(step.shaping.delay_ms for step in steps)
