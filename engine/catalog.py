"""The gift catalog and the coin packages: what a gift costs and how it looks.

The catalog is data (engine/data/gifts.json, or the file named by
GOLIVE_GIFT_CATALOG): the server's catalog alone decides a gift's price, never
the client. Each gift has an icon of our own in two forms drawn from the same
shapes (scripts/gift_icons.py): an SVG for the pages
(web/static/gifts/<id>.svg) and a PNG with alpha for the video compositor
(web/static/gifts/<id>.png), plus a colour and an overlay style so media can
draw it without reading either file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import invalid, not_found

DEFAULT_CATALOG = Path(__file__).resolve().parent / "data" / "gifts.json"
ICON_DIR = Path(__file__).resolve().parent.parent / "web" / "static" / "gifts"

ID_RE = re.compile(r"^[a-z0-9_]{1,32}$")
COLOR_RE = re.compile(r"^#[0-9a-f]{6}$")
# Overlay styles, smallest to biggest: media draws bigger gifts bigger and longer.
STYLES = ("small", "medium", "large", "full")
MAX_GIFT_COINS = 1_000_000
MAX_PACKAGE_COINS = 10_000_000


@dataclass(frozen=True, slots=True)
class Gift:
    """One gift: its price in coins is the only price the server uses."""

    id: str
    name: str
    coins: int
    icon: str          # URL path of the SVG, e.g. /static/gifts/rose.svg
    style: str         # overlay style, one of STYLES
    color: str = "#ffffff"   # the gift's own overlay colour (#rrggbb)
    glyph: str = ""          # one or two characters media may draw when it has no icon

    @property
    def icon_png(self) -> Path:
        """The PNG (RGBA, 128x128) of the icon, for the video compositor."""
        return ICON_DIR / f"{self.id}.png"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "coins": self.coins, "icon": self.icon,
                "style": self.style, "color": self.color, "glyph": self.glyph}


@dataclass(frozen=True, slots=True)
class Package:
    """A coin package: `coins` for `price_cents` of `currency`."""

    id: str
    coins: int
    price_cents: int
    currency: str = "USD"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "coins": self.coins, "price_cents": self.price_cents,
                "currency": self.currency}


class Catalog:
    """Gifts by id (cheapest first) and coin packages by id."""

    def __init__(self, gifts: list[Gift], packages: list[Package]) -> None:
        self._gifts = {g.id: g for g in sorted(gifts, key=lambda g: (g.coins, g.id))}
        self._packages = {p.id: p for p in sorted(packages, key=lambda p: (p.coins, p.id))}
        if len(self._gifts) != len(gifts) or len(self._packages) != len(packages):
            raise ValueError("gift catalog: duplicate gift or package id")
        if not gifts or not packages:
            raise ValueError("gift catalog: needs at least one gift and one package")

    def gift(self, gift_id: str) -> Gift:
        """The gift, or `not_found` naming the id."""
        try:
            return self._gifts[gift_id]
        except (KeyError, TypeError):
            raise not_found(f"no gift {str(gift_id)[:40]!r}") from None

    def gifts(self) -> list[Gift]:
        return list(self._gifts.values())

    def package(self, package_id: str) -> Package:
        try:
            return self._packages[package_id]
        except (KeyError, TypeError):
            raise not_found(f"no coin package {str(package_id)[:40]!r}") from None

    def packages(self) -> list[Package]:
        return list(self._packages.values())


def _gift(raw: dict[str, Any]) -> Gift:
    gift_id = str(raw.get("id", ""))
    coins = raw.get("coins")
    style = raw.get("style", "small")
    color = str(raw.get("color", "#ffffff")).lower()
    if not ID_RE.fullmatch(gift_id):
        raise ValueError(f"gift catalog: bad gift id {gift_id!r}")
    if not isinstance(coins, int) or isinstance(coins, bool) or not 1 <= coins <= MAX_GIFT_COINS:
        raise ValueError(f"gift catalog: gift {gift_id!r} needs coins 1..{MAX_GIFT_COINS}")
    if style not in STYLES:
        raise ValueError(f"gift catalog: gift {gift_id!r} style must be one of {STYLES}")
    if not COLOR_RE.fullmatch(color):
        raise ValueError(f"gift catalog: gift {gift_id!r} colour must be #rrggbb")
    name = str(raw.get("name", "")).strip()
    if not 1 <= len(name) <= 40:
        raise ValueError(f"gift catalog: gift {gift_id!r} needs a name of 1-40 characters")
    return Gift(gift_id, name, coins, str(raw.get("icon") or f"/static/gifts/{gift_id}.svg"),
                style, color, str(raw.get("glyph", ""))[:2])


def _package(raw: dict[str, Any]) -> Package:
    package_id = str(raw.get("id", ""))
    coins, cents = raw.get("coins"), raw.get("price_cents")
    if not ID_RE.fullmatch(package_id):
        raise ValueError(f"gift catalog: bad package id {package_id!r}")
    for value in (coins, cents):
        if not isinstance(value, int) or isinstance(value, bool) or not \
                1 <= value <= MAX_PACKAGE_COINS:
            raise ValueError(f"gift catalog: package {package_id!r} needs positive integer "
                             "coins and price_cents")
    return Package(package_id, coins, cents, str(raw.get("currency", "USD")))  # type: ignore[arg-type]


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Read a catalog file (JSON: {gifts: [...], packages: [...]}); None: the repo's own.

    A bad file raises ValueError naming the entry, so a server never starts on it."""
    source = Path(path) if path else DEFAULT_CATALOG
    try:
        data = json.loads(source.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"gift catalog {source}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"gift catalog {source}: must be a JSON object")
    return Catalog([_gift(g) for g in data.get("gifts", [])],
                   [_package(p) for p in data.get("packages", [])])


def check_count(count: object, max_count: int) -> int:
    """A gift count: a whole number 1..max_count (bools and floats refused)."""
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= max_count:
        raise invalid(f"count must be a whole number from 1 to {max_count}", field="count")
    return count
