"""Argument types for the bench's flags, and which URLs are loopback.

parse_size and is_loopback_url mirror signaling/broadcast.py's: bench/ talks to a server
over the network and imports nothing from signaling/ (DESIGN.md: nothing imports
signaling), so the two small functions are repeated here rather than shared.
"""

from __future__ import annotations

import argparse
import ipaddress
from urllib.parse import urlsplit

from bench import stamp

MAX_VIEWERS = 5000  # one bench run; the server's own default room cap is 1000


def parse_size(text: str) -> tuple[int, int]:
    """'640x360' -> (640, 360): up to 3840x2160, width even, height a multiple of 4 (the
    test pattern's chroma planes need it), room for the stamp."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, not {text!r}") from None
    if width > 3840 or height > 2160 or width % 2 or height % 4:
        raise argparse.ArgumentTypeError(
            f"size must be at most 3840x2160, width even, height a multiple of 4: {text!r}")
    try:
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


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
