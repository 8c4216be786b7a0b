"""The viewer's quality picker in real Chromium against a real `golive serve`: the live's
renditions offered, the picture's height shown under Auto, and a pinned 180p obeyed."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser import chromium, chromium_path, open_page  # noqa: F401 (fixtures)
from tests.support.pages import person, studio_go_live, wait_playing
from tests.support.poll import poll

pytestmark = pytest.mark.browser

VIDEO_HEIGHT = "document.querySelector('[data-testid=live-video]').videoHeight"


async def test_the_viewer_picks_a_quality_and_the_picture_follows(
        chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as studio,
                open_page(chromium, live_server.url) as viewer):
        await person(studio, "alice")
        await person(viewer, "bob")
        await studio_go_live(studio, "Quality check")
        await viewer.goto("/@alice")
        await wait_playing(viewer)

        picker = viewer.get_by_test_id("live-quality")
        await expect(picker).to_be_visible()
        values = await picker.locator("option").evaluate_all("os => os.map(o => o.value)")
        assert values == ["auto", "720", "360", "180"]
        start = await viewer.evaluate(VIDEO_HEIGHT)
        await expect(picker.locator("option").first).to_have_text(f"Auto · {start}p")

        await picker.select_option("180")
        await poll(lambda: viewer.evaluate(f"{VIDEO_HEIGHT} === 180"), timeout=10,
                   what="the picture at 180 lines")
        await expect(picker).to_have_value("180")
        await expect(picker.locator("option").first).to_have_text(re.compile(r"Auto · 180p"))
        # the server's room:rendition push reached the page: the label's source
        await expect(picker).to_have_attribute("data-sent", "180")
        await wait_playing(viewer)  # still playing after the move
