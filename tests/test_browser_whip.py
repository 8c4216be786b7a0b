"""The studio's "Stream from OBS" card in real Chromium against a real `golive serve`, at
phone and desktop sizes: make a key, reveal it, publish with it as an encoder would (the
WHIP client, golive/whip.py), rotate it and see the old one refused. Screenshots land in
/tmp/golive-shots/whip-*.png."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from playwright.async_api import Page, expect

from golive.whip import WhepClient, WhipClient, WhipError, pattern_source
from tests.browser import chromium, chromium_path, open_page, screenshot  # noqa: F401 (fixtures)
from tests.support.layout import assert_no_overlaps
from tests.support.pages import person

pytestmark = pytest.mark.browser

SIZES = {"phone": (390, 844), "desktop": (1280, 800)}


def live_of(base_url: str, username: str) -> Any:
    with urllib.request.urlopen(f"{base_url}/api/users/{username}", timeout=10) as resp:
        return json.loads(resp.read())["live"]


async def revealed_key(page: Page) -> str:
    key = page.get_by_test_id("stream-key")
    await expect(key).to_have_attribute("type", "password")
    await page.get_by_test_id("stream-key-reveal").click()
    await expect(key).to_have_attribute("type", "text")
    value = await key.input_value()
    assert value.startswith("gls_"), value
    return value


@pytest.mark.parametrize("size", list(SIZES))
async def test_the_studio_makes_a_key_obs_streams_with_and_a_rotation_revokes(
        chromium, live_server, closers: list[Any], size: str) -> None:  # noqa: F811
    async with open_page(chromium, live_server.url, viewport=SIZES[size]) as page:
        me = await person(page, f"obs{size[:2]}")
        username = me["user"]["username"]
        await page.goto("/studio")
        card = page.get_by_test_id("stream-key-panel")
        await expect(card).to_be_visible()
        await expect(page.get_by_test_id("whip-url")).to_have_value(f"{live_server.url}/whip")
        await expect(page.get_by_test_id("stream-key")).to_be_hidden()
        await page.get_by_test_id("stream-key-rotate").click()
        first = await revealed_key(page)
        await page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top
        await assert_no_overlaps(page)
        await screenshot(page, f"whip-{size}-studio-key")

        # An encoder publishes with the key: the creator is live.
        url = await page.get_by_test_id("whip-url").input_value()
        encoder = WhipClient(url, first, *pattern_source(320, 180, 15))
        closers.append(encoder)
        await encoder.publish()
        assert live_of(live_server.url, username) is not None
        assert await encoder.close() == 200
        assert live_of(live_server.url, username) is None

        # A new key (after the confirmation) replaces it: the old one is refused.
        page.once("dialog", lambda dialog: dialog.accept())
        await expect(page.get_by_test_id("stream-key-rotate")).to_have_text("New key")
        await page.get_by_test_id("stream-key-rotate").click()
        await expect(page.get_by_test_id("stream-key")).to_have_attribute("type", "password")
        second = await revealed_key(page)
        assert second != first
        stale = WhipClient(url, first, *pattern_source(320, 180, 15))
        closers.append(stale)
        with pytest.raises(WhipError) as refused:
            await stale.publish()
        assert refused.value.status == 401

        # After a reload the key is not shown again (the server keeps only its hash).
        await page.reload()
        state = page.get_by_test_id("stream-key-state")
        await expect(state).to_contain_text("You have a stream key")
        await expect(page.get_by_test_id("stream-key")).to_be_hidden()
        await page.evaluate("window.scrollTo(0, 0)")
        await assert_no_overlaps(page)


async def test_an_open_studio_runs_the_live_an_encoder_publishes(
        chromium, live_server, closers: list[Any]) -> None:  # noqa: F811
    """OBS goes live: the open studio turns on air "via WHIP/OBS" (the live:started push),
    and after a reload (live:watch), with the viewer count and chat; End ends the live."""
    async with open_page(chromium, live_server.url, viewport=SIZES["desktop"]) as page:
        me = await person(page, "obsrun")
        username = me["user"]["username"]
        await page.goto("/studio")
        status = page.get_by_test_id("studio-status")
        await expect(status).to_have_text("Offline")
        await page.get_by_test_id("stream-key-rotate").click()
        key = await revealed_key(page)

        encoder = WhipClient(f"{live_server.url}/whip", key, *pattern_source(320, 180, 15))
        closers.append(encoder)
        await encoder.publish()
        await expect(status).to_have_text("LIVE via WHIP/OBS")  # the push, no reload
        await expect(page.get_by_test_id("end-live")).to_be_visible()
        await expect(page.get_by_test_id("go-live")).to_be_hidden()
        await expect(page.get_by_test_id("studio-chat")).to_be_visible()
        await expect(page.get_by_test_id("camera-status")).to_contain_text("encoder")

        player = WhepClient(f"{live_server.url}/whep/{username}")
        closers.append(player)
        await player.play()
        await expect(page.get_by_test_id("studio-viewers")).to_have_text("1")
        # the encoder's uplink as the server receives it (live:uplink to the creator's tabs)
        await expect(page.get_by_test_id("uplink-badge")).to_be_visible(timeout=10_000)

        await page.reload()  # on load: the studio finds the encoder's live (live:watch)
        await expect(status).to_have_text("LIVE via WHIP/OBS")
        await expect(page.get_by_test_id("studio-viewers")).to_have_text("1")
        await screenshot(page, "whip-desktop-studio-encoder-live")

        await page.get_by_test_id("end-live").click()
        await expect(status).to_have_text("Ended")
        await expect(page.get_by_test_id("studio-notice")).to_contain_text("You ended your LIVE")
        assert live_of(live_server.url, username) is None
        # The server ended it: the encoder's DELETE ends nothing more (404, or 200 when
        # it came before the session was forgotten).
        assert await encoder.close() in (200, 404)
        await expect(page.get_by_test_id("go-live")).to_be_visible()
