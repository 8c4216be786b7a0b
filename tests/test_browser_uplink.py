"""The creator's uplink in real Chromium against a real `golive serve`: the studio's
badge from the server's `live:uplink` push, at phone and desktop size."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser import chromium, chromium_path, open_page, screenshot  # noqa: F401 (fixtures)
from tests.support.layout import INTERACTIVE, assert_in_viewport, assert_no_overlaps, within
from tests.support.pages import person, studio_go_live

pytestmark = pytest.mark.browser

BADGE = re.compile(r"^Uplink: (good|fair|poor) · \d+(\.\d)? (Mbps|kbps) · \d+p\d+$")


@pytest.mark.parametrize("viewport", [(390, 844), (1280, 800)], ids=["phone", "desktop"])
async def test_the_studio_shows_the_uplink_the_server_measures(
        chromium, live_server, viewport: tuple[int, int]) -> None:  # noqa: F811
    async with open_page(chromium, live_server.url, viewport=viewport) as studio:
        await person(studio, "alice")
        badge = studio.get_by_test_id("uplink-badge")
        await studio.goto("/studio")
        await expect(badge).to_be_hidden()  # nothing measured before going LIVE
        await studio_go_live(studio, "Uplink check")
        # the first push is ~4 s after the answer (the first window starts at the first
        # 2 s pass); Chromium's fake camera sends 30 fps from the first second
        await expect(badge).to_have_text(BADGE, timeout=15_000)
        await expect(badge).to_have_attribute("data-quality", re.compile("good|fair|poor"))
        text = await badge.text_content()
        assert text is not None and re.search(r" · \d+p(2\d|3\d)$", text), text  # ~30 fps
        # over the preview, inside it, and over no control of the page
        preview = await studio.get_by_test_id("preview-frame").bounding_box()
        box = await badge.bounding_box()
        assert preview is not None and box is not None
        assert preview["x"] <= box["x"] and box["x"] + box["width"] <= preview["x"] + preview["width"]
        assert preview["y"] <= box["y"] and box["y"] + box["height"] <= preview["y"] + preview["height"]
        await assert_no_overlaps(studio, extra=("uplink-badge", "studio-live-badge",
                                                "elapsed-pill", "viewers-pill"),
                                 selector=within(".studio", INTERACTIVE))
        await studio.evaluate("window.scrollTo(0, 0)")
        await assert_in_viewport(studio, "uplink-badge")
        await screenshot(studio, f"studio-uplink-{viewport[0]}")

        await studio.get_by_test_id("end-live").click()
        await expect(studio.get_by_test_id("studio-status")).to_have_text("Ended")
        await expect(badge).to_be_hidden()
