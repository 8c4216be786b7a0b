"""The gift catalog file and its icons: the committed SVG/PNG are exactly what
engine/gift_icons.py draws, and a bad catalog file is refused with its reason."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from engine.catalog import ICON_DIR, load_catalog
from engine.gift_icons import PNG_SIZE, drawing, png_bytes, render_all, to_rgba, to_svg


def decode_png(data: bytes) -> np.ndarray:
    """Our PNGs: 8-bit RGBA, one IDAT, filter 0 on every row."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4:idat])[0]
    raw = zlib.decompress(data[idat + 4:idat + 4 + length])
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + width * 4)
    assert not rows[:, 0].any()
    return rows[:, 1:].reshape(height, width, 4)


def test_committed_icons_are_the_drawing(tmp_path: Path) -> None:
    written = render_all(tmp_path)
    assert len(written) == 2 * len(load_catalog().gifts())
    for path in written:
        assert path.read_bytes() == (ICON_DIR / path.name).read_bytes(), (
            f"{path.name} differs: run `python -m engine.gift_icons`")


def test_each_icon_shows_its_gift_colour_on_a_transparent_ground() -> None:
    for gift in load_catalog().gifts():
        rgba = decode_png(gift.icon_png.read_bytes())
        assert rgba.shape == (PNG_SIZE, PNG_SIZE, 4)
        assert rgba[0, 0, 3] == 0 or gift.id == "doughnut"    # corners are see-through
        want = np.array([int(gift.color[i:i + 2], 16) for i in (1, 3, 5)])
        solid = rgba[rgba[..., 3] == 255][:, :3].astype(int)
        close = np.abs(solid - want).max(axis=1) <= 2
        assert close.sum() >= 300, f"{gift.id}: its colour covers only {close.sum()} pixels"
        svg = (ICON_DIR / f"{gift.id}.svg").read_text()
        assert svg.startswith("<svg") and gift.color in svg and gift.name in svg


def test_png_round_trip() -> None:
    shapes = drawing("rose", "#ff1e50")
    rgba = to_rgba(shapes, 32)
    assert np.array_equal(decode_png(png_bytes(rgba)), rgba)
    assert "<circle" in to_svg(shapes, "Rose")


@pytest.mark.parametrize("change,message", [
    ({"coins": 0}, "coins 1.."), ({"coins": "5"}, "coins 1.."), ({"id": "Bad Id"}, "bad gift id"),
    ({"style": "huge"}, "style"), ({"color": "red"}, "colour"), ({"name": ""}, "name"),
])
def test_a_bad_catalog_is_refused_with_its_reason(tmp_path: Path, change: dict,
                                                  message: str) -> None:
    gift = {"id": "rose", "name": "Rose", "coins": 1, "style": "small", "color": "#ff0000"}
    path = tmp_path / "gifts.json"
    path.write_text(json.dumps({"gifts": [{**gift, **change}],
                                "packages": [{"id": "p1", "coins": 10, "price_cents": 99}]}))
    with pytest.raises(ValueError, match=message):
        load_catalog(path)


def test_catalog_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "gifts.json"
    for text, message in (("{", "gift catalog"), ("[]", "JSON object"),
                          ('{"gifts": [], "packages": []}', "at least one")):
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_catalog(path)
    with pytest.raises(ValueError):
        load_catalog(tmp_path / "missing.json")
    dup = {"id": "a", "name": "A", "coins": 1}
    path.write_text(json.dumps({"gifts": [dup, dup], "packages": [
        {"id": "p", "coins": 1, "price_cents": 1}]}))
    with pytest.raises(ValueError, match="duplicate"):
        load_catalog(path)


def test_a_catalog_setting_replaces_the_repo_catalog(tmp_path: Path) -> None:
    path = tmp_path / "gifts.json"
    path.write_text(json.dumps({
        "gifts": [{"id": "star", "name": "Star", "coins": 3, "style": "medium"}],
        "packages": [{"id": "p10", "coins": 10, "price_cents": 15, "currency": "EUR"}]}))
    catalog = load_catalog(path)
    assert [g.id for g in catalog.gifts()] == ["star"]
    assert catalog.gift("star").icon == "/static/gifts/star.svg"
    assert catalog.package("p10").currency == "EUR"


def test_the_catalog_runs_from_a_rose_to_the_universe() -> None:
    catalog = load_catalog()
    gifts = catalog.gifts()
    assert 8 <= len(gifts) <= 12
    assert (gifts[0].id, gifts[0].coins) == ("rose", 1)
    assert catalog.gift("lion").coins == 29_999 and catalog.gift("universe").coins == 44_999
    assert [g.coins for g in gifts] == sorted(g.coins for g in gifts)
    for gift in gifts:
        assert gift.icon_png.exists() and gift.icon_png.with_suffix(".svg").exists()
    assert catalog.packages()[0].coins == 70


def test_serve_refuses_a_bad_catalog_or_rate_before_binding(tmp_path: Path) -> None:
    from signaling.cli import _check_ledger_settings
    from signaling.config import Settings

    bad = tmp_path / "gifts.json"
    bad.write_text("{")
    with pytest.raises(SystemExit, match="gift catalog"):
        _check_ledger_settings(Settings(gift_catalog=bad))
    with pytest.raises(SystemExit, match="cashout_min"):
        _check_ledger_settings(Settings(cashout_min=10, cashout_daily_cap=5))
    _check_ledger_settings(Settings())
