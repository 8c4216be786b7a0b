"""Rules for user-written text shared by names, titles, chat and messages."""

from __future__ import annotations

import unicodedata


def has_control_chars(text: str) -> bool:
    """True when text holds control, format (bidi overrides), surrogate or private-use
    code points."""
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") for ch in text)
