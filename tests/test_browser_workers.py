"""The Chromium live suite (tests/test_browser_live.py) against `golive serve --workers 2`.

Two workers share one port (SO_REUSEPORT): the creator's studio and a viewer's page
may land on different workers, so the viewer watches through the media cascade (a
relay from the live's worker) and Discover, pushes and chat cross through the push
bus. Every test of the live suite runs here again as it is, on two workers.
"""

from __future__ import annotations

import pytest

from tests.test_browser_live import *  # noqa: F403 (the suite's tests and fixtures, again)

pytestmark = pytest.mark.browser


@pytest.fixture
def live_server_workers() -> str:
    return "2"
