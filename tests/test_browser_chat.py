"""Live chat and direct messages in real Chromium against a real `golive serve`.

Alice goes live from /studio (the fake camera); Bob watches on her profile and
they chat under the video; Bob messages Alice from her profile, which lands in
her Message Requests; the unread badge in Alice's header appears live and
clears once she reads it. Screenshots land in /tmp/golive-shots/.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser import chromium, chromium_path, open_page, screenshot  # noqa: F401 (fixtures)
from tests.support.pages import person, studio_go_live

pytestmark = pytest.mark.browser

MARKUP = 'Hello <b>Alice</b> <img src=x onerror="window.pwned=1">'


async def test_chat_in_a_live_and_a_direct_message(chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as studio,
                open_page(chromium, live_server.url) as bob):
        await person(studio, "alice")
        await person(bob, "bob")
        await studio_go_live(studio, "Chat with me")

        # Alice follows her chat from her profile in a second tab (moderation there).
        alice = await studio.context.new_page()
        await alice.goto("/@alice")
        await expect(alice.get_by_test_id("chat-panel")).to_be_visible()
        await expect(alice.get_by_test_id("chat-tools")).to_be_visible()

        # Bob watches: the chat opens under the video, with his "joined" line.
        await bob.goto("/@alice")
        await expect(bob.get_by_test_id("chat-panel")).to_be_visible()
        await expect(bob.get_by_test_id("chat-system").last).to_have_text("Bob joined")
        await expect(alice.get_by_test_id("chat-system").last).to_have_text("Bob joined")
        await expect(bob.get_by_test_id("chat-tools")).to_be_hidden()

        # Markup is text, for everyone.
        await bob.get_by_test_id("chat-input").fill(MARKUP)
        await bob.get_by_test_id("chat-send").click()
        for page in (alice, bob):
            line = page.get_by_test_id("chat-message").last
            await expect(line.get_by_test_id("chat-text")).to_have_text(MARKUP)
            await expect(line.get_by_test_id("chat-name")).to_have_text("Bob")
            assert await line.locator("b, img").count() == 0
            assert await page.evaluate("() => window.pwned") is None
        await bob.get_by_test_id("chat-input").press("Escape")
        await alice.get_by_test_id("chat-input").fill("Hi Bob, welcome!")
        await alice.get_by_test_id("chat-input").press("Enter")
        await expect(bob.get_by_test_id("chat-text").last).to_have_text("Hi Bob, welcome!")
        # Viewers report a line; the creator moderates instead.
        hello = bob.get_by_test_id("chat-message").last
        await hello.hover()
        await hello.get_by_test_id("chat-report-reason").select_option("spam")
        await expect(bob.get_by_test_id("chat-notice")).to_contain_text("your report was sent")
        await alice.get_by_test_id("chat-message").first.hover()
        await expect(alice.get_by_test_id("chat-message").first.get_by_test_id(
            "chat-mute")).to_be_visible()
        # The creator sets slow mode; Bob's box says so.
        await alice.get_by_test_id("chat-tools").locator("summary").click()
        await alice.get_by_test_id("chat-slow").select_option("10")
        await expect(bob.get_by_test_id("chat-input")).to_have_attribute(
            "placeholder", "Slow mode: one message every 10 s")
        await bob.get_by_test_id("chat-input").fill("so soon?")  # he wrote seconds ago
        await bob.get_by_test_id("chat-send").click()
        await expect(bob.get_by_test_id("chat-error")).to_contain_text("Slow mode is on: wait")
        await expect(bob.get_by_test_id("chat-input")).to_have_value("so soon?")
        await alice.get_by_test_id("chat-message").last.hover()
        await screenshot(bob, "chat-panel-viewer")
        await screenshot(alice, "chat-panel-creator")

        # Bob messages Alice from her profile: she does not follow him, so it is a request.
        await bob.get_by_test_id("message-button").click()
        await expect(bob).to_have_url(f"{live_server.url}/messages?c=" + "".join(sorted(
            [await bob.evaluate("() => JSON.parse(localStorage.getItem('golive.session')).user.id"),
             await alice.evaluate(
                 "() => JSON.parse(localStorage.getItem('golive.session')).user.id")])))
        await expect(bob.get_by_test_id("conversation-name")).to_have_text("Alice")
        await bob.get_by_test_id("composer-input").fill("Loved the stream!\nSee you next time")
        await bob.get_by_test_id("composer-send").click()
        await expect(bob.get_by_test_id("dm-text").last).to_have_text(
            "Loved the stream!\nSee you next time")
        await expect(bob.get_by_test_id("pending-note")).to_contain_text("Message request sent")

        # Alice's header badge appears live.
        await expect(alice.get_by_test_id("unread-badge")).to_have_text("1")
        await alice.get_by_test_id("messages-link").click()
        await expect(alice.get_by_test_id("requests-count")).to_have_text("1")
        await expect(alice.get_by_test_id("conversations-empty")).to_be_visible()
        await alice.get_by_test_id("tab-requests").click()
        row = alice.get_by_test_id("conversation-row")
        await expect(row).to_have_count(1)
        await expect(row.get_by_test_id("row-last")).to_have_text(
            "Loved the stream! See you next time")
        await row.click()
        await expect(alice.get_by_test_id("request-bar")).to_be_visible()
        await expect(alice.get_by_test_id("composer")).to_be_hidden()
        await screenshot(alice, "messages-request")
        # Opening it reads it: the badge clears.
        await expect(alice.get_by_test_id("unread-badge")).to_be_hidden()
        await alice.get_by_test_id("request-accept").click()
        await expect(alice.get_by_test_id("request-bar")).to_be_hidden()
        await expect(alice.get_by_test_id("tab-requests")).to_be_visible()
        await expect(bob.get_by_test_id("pending-note")).to_be_hidden()

        # Alice answers; Bob, on the conversation, sees it arrive and Alice sees "Seen".
        await alice.get_by_test_id("composer-input").fill("Thanks Bob! <3")
        await alice.get_by_test_id("composer-input").press("Enter")
        await expect(bob.get_by_test_id("dm-text").last).to_have_text("Thanks Bob! <3")
        await expect(alice.get_by_test_id("seen")).to_be_visible()
        await bob.get_by_test_id("composer-input").type("typing…")
        await expect(alice.get_by_test_id("typing")).to_have_text("Bob is typing…")
        await alice.get_by_test_id("tab-inbox").click()
        await expect(alice.get_by_test_id("conversation-row")).to_have_count(1)
        await expect(bob.get_by_test_id("unread-badge")).to_be_hidden()
        await screenshot(alice, "messages-conversation")
        await screenshot(bob, "messages-bob")
        await alice.close()
