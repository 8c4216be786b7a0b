"""The nudge-to-live loop in real Chromium against a real `golive serve`.

Bob nudges Alice from her offline profile (the bell stays "Nudged" across a
reload); Alice's studio shows the alert and "1 person is waiting"; Alice goes
live from the studio (fake camera); Bob, on another page, gets "Alice is LIVE:
TITLE", clicks it and the stream plays. Both inboxes (/notifications) show what
happened. Screenshots land in /tmp/golive-shots/.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser import chromium, chromium_path, open_page, screenshot  # noqa: F401 (fixtures)
from tests.support.pages import person, studio_go_live, wait_playing

pytestmark = pytest.mark.browser

TITLE = "Nudge night"


async def test_nudge_an_offline_creator_then_watch_when_she_goes_live(
        chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as studio,
                open_page(chromium, live_server.url) as bob):
        await person(studio, "alice")
        await person(bob, "bob")
        await studio.goto("/studio")
        await expect(studio.get_by_test_id("nudge-waiting")).to_contain_text("No one is waiting")
        await expect(studio.get_by_test_id("nudge-allow")).to_be_checked()

        # Bob, on Alice's offline profile, rings the bell.
        await bob.goto("/@alice")
        await expect(bob.get_by_test_id("offline-state")).to_be_visible()
        bell = bob.get_by_test_id("nudge-button")
        await expect(bell).to_have_text("Nudge")
        await bell.click()
        status = bob.get_by_test_id("nudge-status")
        await expect(status).to_have_text("Nudged: we'll tell you when Alice goes live")
        await expect(bell).to_have_attribute("aria-pressed", "true")
        await expect(bell).to_be_disabled()
        await bob.reload()
        await expect(status).to_have_text("Nudged: we'll tell you when Alice goes live")
        await expect(bob.get_by_test_id("nudge-button")).to_have_text("Nudged")
        await screenshot(bob, "nudge-bell-nudged")

        # Alice's studio: the alert, the waiting count and the badge, at once.
        toast = studio.get_by_test_id("notify-toast")
        await expect(toast).to_have_text(re.compile("Bob nudged you to go live!"))
        await expect(studio.get_by_test_id("nudge-waiting")).to_have_text(
            re.compile(r"^1 person is waiting"))
        await expect(studio.get_by_test_id("notify-badge")).to_have_text("1")
        await expect(studio.get_by_test_id("nudge-bar").last).to_have_attribute("data-count", "1")
        await screenshot(studio, "nudge-studio-waiting")

        # Bob browses elsewhere; Alice goes live; Bob is told and opens the stream.
        await bob.goto("/")
        await expect(bob.get_by_test_id("notify-badge")).to_be_hidden()
        await studio_go_live(studio, TITLE)
        await expect(studio.get_by_test_id("nudge-waiting")).to_contain_text("No one is waiting")
        live_toast = bob.get_by_test_id("notify-toast")
        await expect(live_toast).to_have_text(re.compile(f"Alice is LIVE: {TITLE}"))
        await expect(bob.get_by_test_id("notify-badge")).to_have_text("1")
        await screenshot(bob, "nudge-live-toast")
        await bob.get_by_test_id("notify-toast-link").click()
        await expect(bob).to_have_url(re.compile(r"/@alice$"))
        await wait_playing(bob)
        await expect(bob.get_by_test_id("live-title")).to_have_text(TITLE)
        await expect(bob.get_by_test_id("notify-badge")).to_be_hidden()  # opened = read

        # The inboxes: Bob's LIVE (read), Alice's nudge; Alice marks hers read.
        await bob.goto("/notifications")
        first = bob.get_by_test_id("notification").first
        await expect(first.get_by_test_id("notification-text")).to_have_text(
            f"Alice is LIVE: {TITLE}")
        await expect(first.get_by_test_id("unread-dot")).to_have_count(0)
        inbox = await studio.context.new_page()
        await inbox.goto("/notifications")
        item = inbox.get_by_test_id("notification").first
        await expect(item.get_by_test_id("notification-text")).to_have_text(
            "Bob nudged you to go live")
        await expect(item).to_have_attribute("data-kind", "nudge")
        await expect(item.get_by_test_id("unread-dot")).to_have_count(1)
        await screenshot(inbox, "notifications-inbox")
        await inbox.get_by_test_id("mark-all-read").click()
        await expect(item.get_by_test_id("unread-dot")).to_have_count(0)
        await expect(inbox.get_by_test_id("notify-badge")).to_be_hidden()
        await expect(studio.get_by_test_id("notify-badge")).to_be_hidden()  # every tab
        await inbox.close()
