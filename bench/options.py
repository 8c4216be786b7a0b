"""Argument types for the bench's flags (sizes follow media.synthetic.parse_size), and
what every mode's command line shares."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from bench import stamp
from media.synthetic import parse_size as synthetic_size

MAX_VIEWERS = 5000  # one bench run; the server's own default room cap is 1000


def parse_size(text: str) -> tuple[int, int]:
    """media.synthetic.parse_size's rules, plus room for the capture-time stamp."""
    try:
        width, height = synthetic_size(text)
        stamp.check_size(width, height)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return width, height


def parse_rate(text: str) -> float:
    """'50/s', '600/min' or a plain number: events per second."""
    amount, _, unit = text.partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0}.get(unit.strip())
    try:
        value = float(amount) / per if per else -1.0
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"a rate is N/s or N/min with N > 0, not {text!r}")
    return value


def parse_counts(text: str) -> list[int]:
    """'1,10,50' -> [1, 10, 50]: increasing viewer counts, each 1..MAX_VIEWERS."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"viewer counts are N,N,...: {text!r}") from None
    if not counts or any(not 0 < c <= MAX_VIEWERS for c in counts):
        raise argparse.ArgumentTypeError(f"viewer counts must be 1..{MAX_VIEWERS}: {text!r}")
    if counts != sorted(set(counts)):
        raise argparse.ArgumentTypeError(f"viewer counts must increase: {text!r}")
    return counts


def add_out(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Every mode's --out: where its run folder goes."""
    parser.add_argument("--out", type=Path, default=Path("bench-out"),
                        help="folder for the run's folder (bench-out)")


def flags_ok(who: str, checks: Iterable[tuple[object, str]]) -> bool:
    """True when no (bad, message) check is bad; else print the first one's message as
    "WHO: message" on stderr (the caller exits 2)."""
    for bad, message in checks:
        if bad:
            print(f"{who}: {message}", file=sys.stderr)
            return False
    return True


def module_main(module: str, doc: str | None,
                add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable[[argparse.Namespace], int], argv: list[str] | None) -> int:
    """`python -m MODULE`: a mode's own flags, then its run()'s exit status."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return int(run(parser.parse_args(argv)))
