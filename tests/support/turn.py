"""A real TURN server for the tests: Debian's coturn on loopback (bench/coturn.py runs it).

Use it from a test module:

    from tests.support.turn import coturn  # noqa: F401 (fixture)

    async def test_x(coturn):
        servers = coturn.ice_servers("user-id")   # a fresh REST credential
        ...
        assert username in coturn.allocated_users()

A fresh coturn per test, stopped on every exit path. Without `turnserver` the tests
skip, except under CI (env CI set), where a missing coturn is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.coturn import TURN_SECRET, TURNSERVER, Coturn, start_coturn, stop_coturn

__all__ = ["TURN_SECRET", "Coturn", "coturn", "need_turnserver", "start_coturn", "stop_coturn"]


def need_turnserver() -> None:
    """Skip the test (fail it under CI) when coturn's turnserver is not installed."""
    if shutil.which(TURNSERVER) is None:
        reason = f"{TURNSERVER} is missing: apt-get install coturn"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so the TURN tests must run")
        pytest.skip(reason)


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    """A real coturn on loopback for one test, stopped whatever the test did."""
    need_turnserver()
    server = start_coturn(tmp_path / "coturn")
    try:
        yield server
    finally:
        stop_coturn(server)
