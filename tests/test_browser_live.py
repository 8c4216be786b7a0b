"""Going live and watching in real Chromium against a real `golive serve`.

The creator's page sends Chromium's fake camera (MEDIA_ARGS) to the server's
media pipeline; the viewer's page plays what the server sends back. Each
browser context is one person; accounts are made through the HTTP API and the
context signed in with their session cookie (tests/support/pages.py). Every wait polls a condition;
nothing sleeps. Screenshots land in /tmp/golive-shots/.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.async_api import expect

from tests.browser import (  # noqa: F401 (fixtures)
    PageErrors,
    chromium,
    chromium_path,
    open_page,
    screenshot,
)
from tests.support.pages import PREVIEW_READY, person, sign_in_as, studio_go_live, wait_playing

pytestmark = pytest.mark.browser

CONFLICT = "You are already live (in another tab or device)"
# What Chromium logs while a test holds a context offline.
OFFLINE = r"WebSocket connection to .* failed: .*ERR_INTERNET_DISCONNECTED"


async def test_go_live_watch_and_end(chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as studio,
                open_page(chromium, live_server.url) as viewer):
        await person(studio, "alice")
        await person(viewer, "bob")

        await studio_go_live(studio, "Cooking with Alice")
        cameras = studio.get_by_test_id("camera-select").locator("option")
        assert await cameras.count() >= 1
        assert await studio.get_by_test_id("mic-select").locator("option").count() >= 1
        await expect(studio.get_by_test_id("end-live")).to_be_visible()
        await expect(studio.get_by_test_id("go-live")).to_be_hidden()

        await viewer.goto("/@alice")
        await wait_playing(viewer)
        await expect(viewer.get_by_test_id("live-badge")).to_be_visible()
        await expect(viewer.get_by_test_id("live-title")).to_have_text("Cooking with Alice")
        await expect(viewer.get_by_test_id("live-viewers")).to_have_text("1")
        await expect(studio.get_by_test_id("studio-viewers")).to_have_text("1")
        await expect(studio.get_by_test_id("elapsed")).to_have_text(re.compile(r"^\d\d:\d\d$"))
        # Sound arrives too; the video starts muted (autoplay) and Unmute unmutes it.
        audio = await viewer.evaluate(
            "() => document.querySelector('[data-testid=live-video]').srcObject"
            ".getAudioTracks().length")
        assert audio == 1
        video = viewer.get_by_test_id("live-video")
        assert await video.evaluate("v => v.muted") is True
        await viewer.get_by_test_id("unmute").click()
        await expect(viewer.get_by_test_id("unmute")).to_have_text("Mute")
        assert await video.evaluate("v => v.muted") is False
        await screenshot(studio, "studio-live")
        await screenshot(viewer, "viewer-watching")

        await studio.get_by_test_id("end-live").click()
        await expect(studio.get_by_test_id("studio-status")).to_have_text("Ended")
        await expect(viewer.get_by_test_id("live-ended")).to_be_visible()
        await expect(viewer.get_by_test_id("live-player")).to_be_hidden()
        assert await video.evaluate("v => v.srcObject") is None
        await expect(studio.get_by_test_id("studio-notice")).to_contain_text("You ended your LIVE")
        await expect(studio.get_by_test_id("go-live")).to_be_visible()
        await screenshot(studio, "studio-ended")
        await screenshot(viewer, "viewer-ended")


async def test_the_studio_tells_a_minor_why_before_go_live(chromium, live_server) -> None:  # noqa: F811
    async with open_page(chromium, live_server.url) as studio:
        await person(studio, "kid", f"{time.gmtime().tm_year - 15}-01-01")
        await studio.goto("/studio")
        refusal = studio.get_by_test_id("studio-refusal")
        await expect(refusal).to_have_text("You must be 18 or older to go LIVE")
        for control in ("go-live", "title-input", "camera-select", "mic-select"):
            await expect(studio.get_by_test_id(control)).to_be_disabled()
        # no camera is opened for a LIVE that cannot start
        await expect(studio.get_by_test_id("camera-status")).to_have_text("Camera off")
        assert await studio.evaluate(
            "() => document.querySelector('[data-testid=preview]').srcObject") is None
        await screenshot(studio, "studio-too-young")


async def test_offline_profile_switches_to_the_live_by_itself(chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as studio,
                open_page(chromium, live_server.url) as viewer):
        await person(studio, "alice")
        await person(viewer, "bob")

        await viewer.goto("/@alice")
        await expect(viewer.get_by_test_id("offline-state")).to_be_visible()
        await expect(viewer.get_by_test_id("live-player")).to_be_hidden()
        await screenshot(viewer, "viewer-offline")

        await studio_go_live(studio, "Surprise stream")
        await wait_playing(viewer)
        await expect(viewer.get_by_test_id("offline-state")).to_be_hidden()
        await expect(viewer.get_by_test_id("live-title")).to_have_text("Surprise stream")

        # The creator on their own profile gets their studio, not a player.
        await studio.goto("/@alice")
        await expect(studio.get_by_test_id("studio-link")).to_be_visible()
        await expect(studio.get_by_test_id("live-badge")).to_be_visible()
        assert await studio.get_by_test_id("live-video").evaluate("v => v.srcObject") is None
        await screenshot(studio, "profile-self-live")


async def test_second_studio_tab_gets_a_conflict(chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as first,
                open_page(chromium, live_server.url) as second):
        session = await person(first, "alice")
        await sign_in_as(second, session)

        await studio_go_live(first, "First tab")
        await second.goto("/studio")
        await second.wait_for_function(PREVIEW_READY)
        notice = second.get_by_test_id("studio-notice")
        await expect(notice).to_contain_text("LIVE from another tab")
        await second.get_by_test_id("go-live").click()
        await expect(second.get_by_test_id("studio-error")).to_have_text(CONFLICT)
        await expect(second.get_by_test_id("studio-status")).to_have_text("Offline")
        await expect(first.get_by_test_id("studio-status")).to_have_text("LIVE")
        await screenshot(second, "studio-conflict")


async def test_discover_lists_the_live_while_it_runs(chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as studio,
                open_page(chromium, live_server.url) as visitor,
                open_page(chromium, live_server.url, viewport=(390, 844)) as guest):
        await person(studio, "alice")
        await person(visitor, "carol")

        await visitor.goto("/")
        await expect(visitor.get_by_test_id("discover-empty")).to_be_visible()

        await studio_go_live(studio, "Live from the kitchen")
        cards = visitor.get_by_test_id("discover-card")
        await expect(cards).to_have_count(1)
        card = cards.first
        await expect(card).to_have_attribute("href", "/@alice")
        await expect(card.get_by_test_id("discover-card-title")).to_have_text(
            "Live from the kitchen")
        await expect(card.get_by_test_id("discover-card-name")).to_have_text("Alice")
        await expect(card.get_by_test_id("discover-card-viewers")).to_have_text("0")
        await expect(visitor.get_by_test_id("discover-empty")).to_be_hidden()

        # Signed out (on a phone): the list comes from GET /api/lives, and the
        # public LIVE plays (an anonymous socket); chatting asks to sign in.
        await guest.goto("/")
        await expect(guest.get_by_test_id("discover-card")).to_have_count(1)
        await screenshot(visitor, "discover")
        await screenshot(guest, "phone-discover-signed-out")
        await guest.get_by_test_id("discover-card").click()
        await wait_playing(guest)
        await expect(guest.get_by_test_id("signin-to-watch")).to_be_hidden()
        await expect(guest.get_by_test_id("chat-signin")).to_have_attribute(
            "href", "/?next=%2F%40alice#signin")
        await expect(guest.get_by_test_id("live-title")).to_have_text("Live from the kitchen")
        await screenshot(guest, "phone-profile-live-signed-out")
        await guest.goto("/")  # leaves the live: the counts below are the visitor's

        # A viewer joins through the card: the count follows.
        await card.click()
        await expect(visitor).to_have_url(re.compile(r"/@alice$"))
        await wait_playing(visitor)
        await visitor.go_back()
        await expect(visitor.get_by_test_id("discover-card")).to_have_count(1)

        await studio.get_by_test_id("end-live").click()
        await expect(visitor.get_by_test_id("discover-empty")).to_be_visible()
        await expect(visitor.get_by_test_id("discover-card")).to_have_count(0)


async def test_reload_and_network_drops_keep_the_same_live(chromium, live_server) -> None:  # noqa: F811
    studio_errors, viewer_errors = PageErrors(), PageErrors()
    async with (open_page(chromium, live_server.url, errors=studio_errors) as studio,
                open_page(chromium, live_server.url, viewport=(390, 844),
                          errors=viewer_errors) as viewer):
        await person(studio, "alice")
        await person(viewer, "bob")
        await studio_go_live(studio, "Do not go away")
        live = (await (await studio.request.get("/api/users/alice")).json())["live"]
        assert live is not None
        await viewer.goto("/@alice")
        await wait_playing(viewer)
        await screenshot(viewer, "phone-viewer-watching")

        # The reload drops the socket and the peer connection: the live waits out
        # its grace period, and the reloaded tab takes it back with a new offer.
        await studio.reload()
        await expect(studio.get_by_test_id("studio-status")).to_have_text("LIVE")
        await expect(studio.get_by_test_id("title-input")).to_have_value("Do not go away")
        after = (await (await studio.request.get("/api/users/alice")).json())["live"]
        assert after["live_id"] == live["live_id"]
        # The viewer never saw it end, and frames flow again from the new connection.
        await wait_playing(viewer)
        await expect(viewer.get_by_test_id("live-ended")).to_be_hidden()
        await expect(studio.get_by_test_id("studio-viewers")).to_have_text("1")

        # Offline closes the creator's socket (the loopback media keeps going): the
        # reconnected socket calls live:start again and the server resumes the live.
        await studio.context.set_offline(True)
        try:
            await expect(studio.get_by_test_id("studio-status")).to_have_text("Reconnecting…")
        finally:
            await studio.context.set_offline(False)
        await expect(studio.get_by_test_id("studio-status")).to_have_text("LIVE")
        again = (await (await studio.request.get("/api/users/alice")).json())["live"]
        assert again["live_id"] == live["live_id"]
        await wait_playing(viewer)

        # A viewer's socket drop: the server holds its join (GOLIVE_VIEWER_RESUME_GRACE)
        # and the page's new socket takes it back (room:resume): the count never moves
        # (tests/test_browser_viewer_resume.py: the same peer connection, no push).
        await viewer.context.set_offline(True)
        await expect(viewer.get_by_test_id("live-reconnecting")).to_be_visible()
        await expect(studio.get_by_test_id("studio-viewers")).to_have_text("1")
        await viewer.context.set_offline(False)
        await wait_playing(viewer)
        await expect(viewer.get_by_test_id("live-reconnecting")).to_be_hidden()
        await expect(studio.get_by_test_id("studio-viewers")).to_have_text("1")
        await expect(viewer.get_by_test_id("live-viewers")).to_have_text("1")
        studio_errors.forgive(OFFLINE)
        viewer_errors.forgive(OFFLINE)
