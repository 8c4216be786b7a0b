"""The test kit stays one: helpers live in tests/support/ and are imported from there,
never from a conftest or another test module, and each exists once."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _sources(*folders: str) -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text()
            for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))}


def test_helpers_are_imported_from_the_kit_not_from_conftest_or_test_modules() -> None:
    # `from tests.test_x import *` is not a helper's import: it runs a suite again
    # (tests/test_browser_workers.py runs the live suite against --workers 2)
    wrong = re.compile(r"^\s*from tests\.(conftest|media\.conftest|test_\w+) import (?!\*)",
                       re.M)
    assert [path for path, text in _sources("tests").items() if wrong.search(text)] == []


def test_one_poll_one_go_live_one_decoding_viewer() -> None:
    sources = _sources("tests", "bench", "golive", "signaling")

    def defining(pattern: str) -> list[str]:
        return [path for path, text in sources.items() if re.search(pattern, text, re.M)]

    assert defining(r"^\s*(async )?def poll\(") == ["tests/support/poll.py"]
    # one go-live through live:start for the tests, one for every other client: golive's
    # (the bench's creators and `golive broadcast` go live through it); the page tests'
    # studio_go_live clicks Go LIVE instead
    assert defining(r"^\s*(async )?def go_live\(\w+: ") == ["tests/support/peers.py"]
    assert [p for p in defining(r'call\("live:start"') if not p.startswith("tests/")] == [
        "golive/client.py"]
    # A client-side viewer that decodes what it is sent: bench.naive_relay's recv() is
    # the baseline server draining its creator's tracks, not a viewer; golive/whip.py's
    # WHEP player is the client library's own (golive imports nothing from the bench).
    decoders = defining(r"await track\.recv\(\)")
    assert sorted(decoders) == ["bench/decoding_viewer.py", "bench/naive_relay.py",
                                "golive/whip.py"]
