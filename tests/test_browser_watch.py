"""Watching a LIVE on a phone and a desktop, signed in and signed out, in real Chromium
against a real `golive serve`.

Phone sizes are 390x844 (portrait) and 844x390 (landscape); the desktop is 1280x800.
The layout is asserted, not only looked at: no two visible interactive elements
overlap (bounding boxes) and the controls a viewer needs are inside the window with
the page unscrolled. Screenshots land in /tmp/golive-shots/ (watch-*.png).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser import (  # noqa: F401 (fixtures)
    PageErrors,
    chromium,
    chromium_path,
    open_page,
    screenshot,
)
from tests.support.layout import assert_in_viewport, assert_no_overlaps, within
from tests.support.pages import PREVIEW_READY, person, studio_go_live, wait_playing
from tests.support.servers import TEST_SECRET

pytestmark = pytest.mark.browser

README = Path(__file__).resolve().parents[1] / "README.md"
PHONE = (390, 844)
LANDSCAPE = (844, 390)
DESKTOP = (1280, 800)
# What Chromium logs while a test holds a context offline.
OFFLINE = r"WebSocket connection to .* failed: .*ERR_INTERNET_DISCONNECTED"
# The parts over the video that must not collide with the controls (not interactive).
OVER_VIDEO = ("live-badge", "player-avatar", "player-name", "live-reconnecting")
# The header's targets; the avatar, not its link, is what the Sign out pill covered.
HEADER = within("[data-testid=site-header]", "a:not(.whoami), button, .whoami .avatar")
# Full screen, the watch layer covers the page: what is under it is no target.
WATCH = within("[data-testid=watch]")


# Counts every toast a page ever shows (one could come and go between two looks).
TOAST_COUNTER = """
window.toastsShown = 0;
new MutationObserver((changes) => {
  for (const change of changes) for (const node of change.addedNodes) {
    if (node.dataset?.testid === 'notify-toast') window.toastsShown += 1;
    window.toastsShown += node.querySelectorAll?.('[data-testid="notify-toast"]').length ?? 0;
  }
}).observe(document, { childList: true, subtree: true });
"""


async def window_shot(page: Page, name: str) -> None:
    """The window as a person sees it (a full-page shot of a fixed layout adds nothing)."""
    from tests.browser import shot_path
    await page.screenshot(path=str(shot_path(name)))


async def test_a_phone_viewer_watches_chats_likes_and_gifts_full_screen(
        chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as studio,
                open_page(chromium, live_server.url, viewport=PHONE) as phone,
                open_page(chromium, live_server.url, viewport=DESKTOP) as desk):
        await person(studio, "alice")
        await person(phone, "bob")
        await person(desk, "dan")
        await studio_go_live(studio, "Cooking with Alice tonight")

        await phone.goto("/@alice")
        await wait_playing(phone)
        # Full screen: the video fills the window; the chat input, the like, gift and
        # share buttons and Follow are in reach without scrolling, and nothing overlaps.
        video = await phone.get_by_test_id("live-video").bounding_box()
        assert video == {"x": 0, "y": 0, "width": PHONE[0], "height": PHONE[1]}
        await assert_in_viewport(phone, "chat-input", "chat-send", "like-button", "gift-toggle",
                                 "live-share", "live-follow", "viewers-button", "live-badge")
        assert await phone.evaluate("window.scrollY") == 0
        await assert_no_overlaps(phone, OVER_VIDEO, selector=WATCH)
        await expect(phone.get_by_test_id("live-title-top")).to_have_text(
            "Cooking with Alice tonight")

        # Follow from the video: the button goes, the profile under it counts her.
        await phone.get_by_test_id("live-follow").click()
        await expect(phone.get_by_test_id("live-follow")).to_be_hidden()
        await expect(phone.get_by_test_id("follower-count")).to_have_text("1")

        # Chat from the phone, over the video.
        await phone.get_by_test_id("chat-input").fill("hello from the phone")
        await phone.get_by_test_id("chat-send").click()
        line = phone.get_by_test_id("chat-list").get_by_text("hello from the phone")
        await expect(line).to_be_visible()
        chat_box = await line.bounding_box()
        assert chat_box is not None and chat_box["y"] > PHONE[1] / 2  # the bottom half

        # Likes: taps count once signed in; the desktop viewer sees the total pushed.
        await desk.goto("/@alice")
        await wait_playing(desk)
        for _ in range(6):
            await phone.get_by_test_id("like-button").click()
        await expect(phone.get_by_test_id("like-count")).to_have_attribute("data-count", "6")
        await expect(desk.get_by_test_id("like-count")).to_have_attribute("data-count", "6")
        await expect(phone.get_by_test_id("live-viewers")).to_have_text("2")
        await window_shot(phone, "watch-phone-portrait")

        # The gift tray slides up; with no coins, the refusal is in view at once.
        await phone.get_by_test_id("gift-toggle").click()
        await expect(phone.get_by_test_id("gift-panel")).to_have_attribute("data-open", "true")
        rose = phone.get_by_test_id("gift-button").first
        await expect(rose).to_be_visible()
        await rose.click()
        await expect(phone.get_by_test_id("gift-error")).to_have_text(
            re.compile("Not enough coins"))
        await assert_in_viewport(phone, "gift-error", "get-coins", "gift-close")
        await assert_no_overlaps(phone, selector=within("[data-testid=gift-panel]"))
        await window_shot(phone, "watch-phone-gift-sheet")
        await phone.get_by_test_id("gift-close").click()
        await expect(rose).to_be_hidden()

        # The viewer list: signed-in viewers, top gifters first.
        await phone.get_by_test_id("viewers-button").click()
        names = phone.get_by_test_id("viewer-name")
        await expect(names).to_have_count(2)
        assert sorted(await names.all_text_contents()) == ["Bob", "Dan"]
        await assert_in_viewport(phone, "viewer-list-close")
        await phone.get_by_test_id("viewer-list-close").click()

        # Share copies the link (no account needed to watch it).
        await phone.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await phone.get_by_test_id("live-share").click()
        await expect(phone.get_by_test_id("watch-toast-text")).to_have_text("Link copied.")
        copied = await phone.evaluate("navigator.clipboard.readText()")
        assert copied == f"{live_server.url}/@alice"

        # Landscape: still full screen, the chat on the left, nothing overlapping.
        await phone.set_viewport_size({"width": LANDSCAPE[0], "height": LANDSCAPE[1]})
        await expect(phone.get_by_test_id("watch-toast")).to_be_hidden()
        await assert_in_viewport(phone, "chat-input", "like-button", "gift-toggle", "live-share")
        await assert_no_overlaps(phone, OVER_VIDEO, selector=WATCH)
        chat = await phone.get_by_test_id("chat-panel").bounding_box()
        assert chat is not None and chat["x"] + chat["width"] <= LANDSCAPE[0] / 2 + 1
        await window_shot(phone, "watch-phone-landscape")

        # Desktop keeps the video and the chat side by side.
        player = await desk.get_by_test_id("live-player").bounding_box()
        chat = await desk.get_by_test_id("chat-panel").bounding_box()
        assert player is not None and chat is not None
        assert chat["x"] >= player["x"] + player["width"]
        assert abs(chat["y"] - player["y"]) < 2
        await assert_in_viewport(desk, "chat-input", "like-button", "live-share")
        await assert_no_overlaps(desk, OVER_VIDEO)
        await expect(desk.get_by_test_id("gift-toggle")).to_be_hidden()  # the tray is in view
        await window_shot(desk, "watch-desktop")


async def test_signed_out_visitors_watch_a_public_live_and_sign_in_to_act(
        chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as studio,
                open_page(chromium, live_server.url, viewport=PHONE) as guest):
        await person(studio, "alice")
        await studio_go_live(studio, "Open to everyone")
        # Alice says hello in her own chat (from her profile page, in another tab).
        own = await studio.context.new_page()
        await own.goto("/@alice")
        await own.get_by_test_id("chat-input").fill("welcome, everyone")
        await own.get_by_test_id("chat-send").click()
        await expect(own.get_by_test_id("chat-list")).to_contain_text("welcome, everyone")

        await guest.goto("/@alice")
        await wait_playing(guest)
        await expect(guest.get_by_test_id("live-viewers")).to_have_text("1")
        await expect(guest.get_by_test_id("chat-list")).to_contain_text("welcome, everyone")
        # Read-only: sign in to chat, to like, to gift, to follow.
        await expect(guest.get_by_test_id("chat-form")).to_be_hidden()
        await expect(guest.get_by_test_id("chat-signin")).to_have_attribute(
            "href", "/?next=%2F%40alice#signin")
        await guest.get_by_test_id("like-button").click()
        await expect(guest.get_by_test_id("watch-toast-signin")).to_be_visible()
        await expect(guest.get_by_test_id("like-count")).to_have_attribute("data-count", "0")
        await guest.get_by_test_id("gift-toggle").click()
        await expect(guest.get_by_test_id("gift-signin")).to_be_visible()
        await expect(guest.get_by_test_id("gift-tray")).to_be_hidden()
        await guest.get_by_test_id("gift-close").click()
        await expect(guest.get_by_test_id("gift-close")).to_be_hidden()  # slid away
        await assert_in_viewport(guest, "chat-signin", "like-button", "live-follow")
        await assert_no_overlaps(guest, OVER_VIDEO, selector=WATCH)
        await window_shot(guest, "watch-phone-signed-out")


async def test_a_live_kept_for_signed_in_viewers_asks_visitors_to_sign_in(
        chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as studio,
                open_page(chromium, live_server.url, viewport=PHONE) as guest):
        await person(studio, "alice")
        await studio.goto("/studio")
        await studio.wait_for_function(PREVIEW_READY)
        await studio.get_by_test_id("title-input").fill("Members only")
        await studio.get_by_test_id("signed-in-only").check()
        await studio.get_by_test_id("go-live").click()
        await expect(studio.get_by_test_id("studio-status")).to_have_text("LIVE")
        await expect(studio.get_by_test_id("signed-in-only")).to_be_disabled()

        await guest.goto("/@alice")
        await expect(guest.get_by_test_id("signin-to-watch")).to_be_visible()
        await expect(guest.get_by_test_id("live-status")).to_have_text(
            "Alice keeps this LIVE for signed-in viewers.")
        await expect(guest.get_by_test_id("live-title")).to_have_text("Members only")
        assert await guest.get_by_test_id("live-video").evaluate("v => v.srcObject") is None
        await assert_no_overlaps(guest, ("live-badge", "live-status", "live-title"))
        # Signed in, the same link plays.
        await person(guest, "bob")
        await guest.reload()
        await wait_playing(guest)


async def test_the_viewer_sees_reconnecting_and_recovers_by_itself(
        chromium, live_server) -> None:  # noqa: F811
    viewer_errors = PageErrors()
    async with (open_page(chromium, live_server.url) as studio,
                open_page(chromium, live_server.url, viewport=PHONE,
                          errors=viewer_errors) as viewer):
        await person(studio, "alice")
        await person(viewer, "bob")
        await studio_go_live(studio, "Stay with me")
        await viewer.goto("/@alice")
        await wait_playing(viewer)
        badge = viewer.get_by_test_id("live-reconnecting")
        await expect(badge).to_be_hidden()

        await viewer.context.set_offline(True)
        try:
            await expect(badge).to_be_visible()
            await expect(badge).to_have_text("Reconnecting…")
            await window_shot(viewer, "watch-phone-reconnecting")
        finally:
            await viewer.context.set_offline(False)
        await wait_playing(viewer)
        await expect(badge).to_be_hidden()
        await expect(viewer.get_by_test_id("live-ended")).to_be_hidden()
        viewer_errors.forgive(OFFLINE)


async def test_a_creator_back_after_the_grace_period_is_told_and_offered_a_new_live(
        chromium, server_factory, redis_url, redis) -> None:  # noqa: F811
    server = server_factory(redis_url=redis_url, env={
        "GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s", "GOLIVE_AUTH_BURST": "200",
        "GOLIVE_LIVE_GRACE": "1"})
    studio_errors = PageErrors()
    async with (open_page(chromium, server.url, errors=studio_errors) as studio,
                open_page(chromium, server.url) as viewer):
        await person(studio, "alice")
        await studio_go_live(studio, "Before the drop")
        first = (await (await viewer.request.get("/api/users/alice")).json())["live"]

        await studio.context.set_offline(True)
        try:
            deadline = time.monotonic() + 20
            while (await (await viewer.request.get("/api/users/alice")).json())["live"]:
                assert time.monotonic() < deadline, "the live did not end after its grace"
                await viewer.wait_for_timeout(100)
        finally:
            await studio.context.set_offline(False)
        notice = studio.get_by_test_id("studio-notice")
        await expect(notice).to_contain_text("Your LIVE ended while you were away")
        await expect(studio.get_by_test_id("studio-status")).to_have_text("Ended")
        await expect(studio.get_by_test_id("go-live")).to_be_visible()
        # Not silently a new LIVE: nothing is live until she says so.
        assert (await (await viewer.request.get("/api/users/alice")).json())["live"] is None
        await screenshot(studio, "studio-ended-while-away")

        await studio.get_by_test_id("go-live").click()
        await expect(studio.get_by_test_id("studio-status")).to_have_text("LIVE")
        second = (await (await viewer.request.get("/api/users/alice")).json())["live"]
        assert second["live_id"] != first["live_id"]
        studio_errors.forgive(OFFLINE)


async def test_arrows_go_to_the_next_and_previous_live(chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as ann,
                open_page(chromium, live_server.url) as cat,
                open_page(chromium, live_server.url, viewport=PHONE) as viewer):
        await person(ann, "ann")
        await person(cat, "cat")
        await person(viewer, "bob")
        await studio_go_live(ann, "Ann's LIVE")
        await viewer.goto("/@ann")
        await wait_playing(viewer)
        await expect(viewer.get_by_test_id("next-live")).to_be_hidden()  # nobody else is live

        await studio_go_live(cat, "Cat's LIVE")
        await viewer.reload()
        await wait_playing(viewer)
        await expect(viewer.get_by_test_id("next-live")).to_be_visible()
        await assert_no_overlaps(viewer, OVER_VIDEO, selector=WATCH)
        await viewer.get_by_test_id("next-live").click()
        await expect(viewer).to_have_url(re.compile(r"/@cat$"))
        await wait_playing(viewer)
        await expect(viewer.get_by_test_id("live-title-top")).to_have_text("Cat's LIVE")
        await viewer.keyboard.press("ArrowUp")
        await expect(viewer).to_have_url(re.compile(r"/@ann$"))


async def test_the_phone_header_keeps_sign_out_off_the_avatar(chromium, live_server) -> None:  # noqa: F811
    async with open_page(chromium, live_server.url, viewport=PHONE) as bob:
        await person(bob, "bob")
        await person(bob, "alice")
        for path in ("/", "/@bob", "/messages", "/wallet"):
            await bob.goto(path)
            await expect(bob.get_by_test_id("signout-button")).to_be_visible()
            await expect(bob.get_by_test_id("whoami")).to_be_visible()
            await assert_in_viewport(bob, "whoami", "signout-button")
            await assert_no_overlaps(bob, selector=HEADER)
        await screenshot(bob, "phone-header-signed-in")


async def test_the_header_links_the_studio_as_the_readme_says(chromium, live_server) -> None:  # noqa: F811
    assert "open **/studio** (the header's **Go LIVE** links it)" in README.read_text()
    async with open_page(chromium, live_server.url, viewport=PHONE) as bob:
        await person(bob, "bob")
        await bob.goto("/")
        link = bob.get_by_test_id("header-studio-link")
        await expect(link).to_have_attribute("href", "/studio")
        await assert_in_viewport(bob, "header-studio-link")
        await link.click()
        await expect(bob).to_have_url(re.compile(r"/studio$"))


async def test_no_is_live_toast_covers_the_live_being_watched(chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as studio,
                open_page(chromium, live_server.url, viewport=PHONE) as bob):
        await person(studio, "alice")
        await person(bob, "bob")
        await bob.context.add_init_script(TOAST_COUNTER)
        # Bob nudges Alice from her profile and stays there; she goes live: the page
        # plays it and no "Alice is LIVE" toast covers it (the bell still counts it).
        await bob.goto("/@alice")
        await bob.get_by_test_id("nudge-button").click()
        await expect(bob.get_by_test_id("nudge-status")).to_contain_text("Nudged")
        await studio_go_live(studio, "Morning show")
        await wait_playing(bob)
        await expect(bob.get_by_test_id("notify-badge")).to_have_text("1")
        assert await bob.evaluate("window.toastsShown") == 0


async def test_the_creators_own_live_page_keeps_its_parts_apart_on_a_phone(
        chromium, live_server) -> None:  # noqa: F811
    async with open_page(chromium, live_server.url) as studio:
        await person(studio, "alice")
        await studio_go_live(studio, "Morning show")
        own = await studio.context.new_page()  # the studio tab stays on air
        await own.set_viewport_size({"width": PHONE[0], "height": PHONE[1]})
        await own.goto("/@alice")
        await expect(own.get_by_test_id("studio-link")).to_be_visible()
        await assert_no_overlaps(own, ("live-badge", "live-status", "live-title"))
        await screenshot(own, "phone-profile-self-live")


async def test_an_empty_sign_up_form_names_the_field(chromium, live_server) -> None:  # noqa: F811
    async with open_page(chromium, live_server.url, viewport=PHONE) as page:
        await page.goto("/#signup")
        await page.get_by_test_id("signup-submit").click()
        error = page.get_by_test_id("signup-error")
        await expect(error).to_have_text("Username is required")
        await expect(page.get_by_test_id("signup-username")).to_have_attribute(
            "aria-invalid", "true")
        await expect(page.get_by_test_id("signup-username")).to_be_focused()


async def test_a_minor_is_told_before_typing_that_messages_need_16(
        chromium, live_server) -> None:  # noqa: F811
    async with open_page(chromium, live_server.url, viewport=PHONE) as page:
        await person(page, "alice")
        await person(page, "kid", f"{time.gmtime().tm_year - 15}-01-01")
        await page.goto("/messages?to=alice")
        refusal = page.get_by_test_id("dm-refusal")
        await expect(refusal).to_contain_text("You must be 16 or older to send direct messages")
        await expect(page.get_by_test_id("conversation-name")).to_have_text("Alice")
        await expect(page.get_by_test_id("composer")).to_be_hidden()
