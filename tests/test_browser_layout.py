"""Every page at phone and desktop sizes in real Chromium: nothing a person could tap
sits on another, and the header's controls are inside the window.

The watch page (a profile while its creator is live) has its own, deeper layout tests
in tests/test_browser_watch.py; this walks every page of web_pages.PAGES as a signed-in
person and as a visitor. Screenshots land in /tmp/golive-shots/layout-*.png.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from signaling.web_pages import PAGES
from tests.browser import (  # noqa: F401 (fixtures)
    PageErrors,
    chromium,
    chromium_path,
    open_page,
    screenshot,
)
from tests.support.layout import assert_no_overlaps
from tests.support.pages import page_register, person

pytestmark = pytest.mark.browser

SIZES = {"phone": (390, 844), "desktop": (1280, 800)}
SIGNED_IN = ("/", "/@{other}", "/@{me}", "/studio", "/messages", "/notifications", "/wallet",
             "/webhooks", "/replay/{replay_id}")
NO_REPLAY = "0123456789abcdef"  # the replay page's refusal (tests/test_browser_replays.py
                                # lays out a real one)
SIGNED_OUT = ("/", "/@{other}")


def test_the_walk_covers_every_page() -> None:
    """A page added to web_pages.PAGES is walked here too."""
    routes = {path.replace("{other}", "{username}").replace("{me}", "{username}")
              for path in SIGNED_IN}
    assert routes == set(PAGES)


async def settled(page: Page, path: str) -> None:
    """The page is loaded and its header drawn (the pages fill in after their fetches)."""
    await page.goto(path)
    await expect(page.get_by_test_id("site-header")).not_to_be_empty()
    await page.wait_for_load_state("networkidle")


@pytest.mark.parametrize("size", list(SIZES))
async def test_no_page_has_overlapping_controls(chromium, live_server, size: str) -> None:  # noqa: F811
    viewport = SIZES[size]
    async with open_page(chromium, live_server.url, viewport=viewport) as other_page:
        other = await page_register(other_page, f"ola{size[:2]}")
    async with open_page(chromium, live_server.url, viewport=viewport) as page:
        me = await person(page, f"mia{size[:2]}")
        for template in SIGNED_IN:
            path = template.format(other=other["user"]["username"], me=me["user"]["username"],
                                   replay_id=NO_REPLAY)
            await settled(page, path)
            await assert_no_overlaps(page)
            name = "home" if path == "/" else path.strip("/@").replace("/", "-")
            await screenshot(page, f"layout-{size}-{name}")
    async with open_page(chromium, live_server.url, viewport=viewport) as visitor:
        for template in SIGNED_OUT:
            await settled(visitor, template.format(other=other["user"]["username"]))
            await assert_no_overlaps(visitor)
