"""The studio runs the show, in real Chromium at phone size against a real `golive serve`.

Alice goes LIVE from her studio on a phone (390x844) and runs it from there alone: the
chat, a moderator she appoints by searching for him, the banned-and-muted list with its
undo, the title changed while live, "Did they come?" counting a nudger who came at once.
Bob, her moderator, moderates from the watch page on his phone: mute for a chosen time,
ban after a second tap; Cat is a viewer on a Socket.IO client. Then finding people from
the landing page, the suggestions while nobody is live, and money with care (no tray
where gifts cannot be received, a confirmation above 1,000 coins). Screenshots land in
/tmp/golive-shots/.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser import chromium, chromium_path, open_page, screenshot  # noqa: F401 (fixtures)
from tests.support.pages import PREVIEW_READY, page_register, person
from tests.support.peers import SocketPeer, User, go_live, sio_connect
from tests.support.poll import poll
from tests.support.servers import TEST_SECRET

pytestmark = pytest.mark.browser

PHONE = (390, 844)

# Interactive elements under `root` that are shown: none may overlap another, and each
# must fit the viewport's width (a phone scrolls down, never sideways).
LAYOUT = """(root) => {
  const scope = document.querySelector(root);
  const nodes = [...scope.querySelectorAll('button, a, input, select, textarea')]
    .filter((n) => n.offsetParent !== null && n.getClientRects().length);
  const boxes = nodes.map((n) => [n, n.getBoundingClientRect()]);
  const name = (n) => n.dataset.testid || n.getAttribute('aria-label') || n.textContent.trim();
  const problems = [];
  for (const [n, r] of boxes) {
    if (r.left < -1 || r.right > window.innerWidth + 1) {
      problems.push(`${name(n)} leaves the screen`);
    }
  }
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const [a, ra] = boxes[i]; const [b, rb] = boxes[j];
      if (a.contains(b) || b.contains(a)) continue;
      const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
      const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
      if (w > 1 && h > 1) problems.push(`${name(a)} overlaps ${name(b)}`);
    }
  }
  return problems;
}"""


async def assert_layout(page: Page, root: str) -> None:
    problems = await page.evaluate(LAYOUT, root)
    assert problems == [], problems


async def in_viewport_width(page: Page, testid: str) -> None:
    box = await page.get_by_test_id(testid).bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE[0] + 1, box


class Viewer(SocketPeer):
    PUSHES = ("chat:muted", "chat:banned", "room:left")


async def socket_viewer(page: Page, base_url: str, name: str, closers: list[Any]) -> Viewer:
    """A viewer on a Socket.IO client (Cat): registered through the page's API."""
    session = await page_register(page, name)
    sio = await sio_connect(base_url, session["token"])
    closers.append(sio)
    return Viewer(sio, User(session["user"]["id"], name, session["token"]))


async def test_the_creator_runs_the_live_from_the_studio_with_a_moderator_at_phone_size(
        chromium, live_server, closers: list[Any]) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url, viewport=PHONE) as studio,
                open_page(chromium, live_server.url, viewport=PHONE) as bob):
        alice = await person(studio, "alice")
        await person(bob, "bob")
        cat = await socket_viewer(studio, live_server.url, "cat", closers)
        # Bob and Cat nudge Alice before her LIVE: two people waiting.
        await bob.goto("/@alice")
        await bob.get_by_test_id("nudge-button").click()
        await expect(bob.get_by_test_id("nudge-status")).to_contain_text("Nudged")
        assert (await cat.call("nudge:send", {"user_id": alice["user"]["id"]}))["ok"]
        # Bob leaves her profile: left open, it would switch to her LIVE by itself when it
        # starts, and joining it is coming (he would count at once).
        await bob.goto("/")

        # Alice goes LIVE from the studio on her phone.
        await studio.goto("/studio")
        await studio.wait_for_function(PREVIEW_READY)
        await expect(studio.get_by_test_id("nudge-waiting")).to_contain_text("2 people are waiting")
        await studio.get_by_test_id("title-input").fill("Morning show")
        await studio.get_by_test_id("go-live").click()
        await expect(studio.get_by_test_id("studio-status")).to_have_text("LIVE")
        await expect(studio.get_by_test_id("chat-panel")).to_be_visible()
        came = studio.get_by_test_id("nudge-live-came").first
        await expect(came).to_have_text("0 of 2 who nudged you came")

        # Bob comes: "Did they come?" counts him at once, no reload.
        await bob.goto("/@alice")
        await expect(bob.get_by_test_id("chat-panel")).to_be_visible()
        await expect(came).to_have_text("1 of 2 who nudged you came")
        await expect(studio.get_by_test_id("chat-system").last).to_have_text("Bob joined")

        # Cat joins and chats; Alice reads it in the studio.
        alice_id = alice["user"]["id"]
        assert (await cat.call("room:join", {"user_id": alice_id, "media": False}))["ok"]
        live_id = (await cat.call("live:watch", {"user_id": alice_id}))["live"]["live_id"]
        sent = await cat.call("chat:send", {"live_id": live_id, "text": "buy followers now"})
        assert sent["ok"], sent
        cat_line = studio.get_by_test_id("chat-message").filter(has_text="buy followers now")
        await expect(cat_line).to_have_count(1)
        # The creator's tools are on the line, not behind a hover (phones have none).
        await expect(cat_line.get_by_test_id("chat-mute")).to_be_visible()
        await expect(cat_line.get_by_test_id("chat-ban")).to_be_visible()

        # Alice makes Bob a moderator by searching for him (any case).
        await studio.get_by_test_id("moderator-search").fill("BO")
        result = studio.get_by_test_id("moderator-result").filter(has_text="Bob")
        await result.get_by_test_id("moderator-result-action").click()
        await expect(studio.get_by_test_id("moderator-row")).to_have_text(re.compile("Bob"))
        await expect(bob.get_by_test_id("chat-notice")).to_have_text(
            "You are now a moderator of this chat.")

        # Bob's phone: the tools on Cat's line, visible; none on Alice's own lines.
        await studio.get_by_test_id("chat-input").fill("Welcome everyone!")
        await studio.get_by_test_id("chat-send").click()
        alice_line = bob.get_by_test_id("chat-message").filter(has_text="Welcome everyone!")
        await expect(alice_line).to_have_count(1)
        await expect(alice_line.get_by_test_id("chat-ban")).to_have_count(0)
        bob_cat = bob.get_by_test_id("chat-message").filter(has_text="buy followers now")
        await expect(bob_cat.get_by_test_id("chat-mute")).to_be_visible()
        await assert_layout(bob, '[data-testid="chat-panel"]')
        await in_viewport_width(bob, "chat-input")
        await screenshot(bob, "studio-moderator-phone")

        # Bob mutes Cat for 5 minutes: Cat is told, the studio's list shows it at once.
        await bob_cat.get_by_test_id("chat-mute").select_option("300")
        await expect(bob.get_by_test_id("chat-notice")).to_have_text("Cat is muted for 5 min.")
        await poll(lambda: cat.got("chat:muted"))
        row = studio.get_by_test_id("restricted-row").filter(has_text="Cat")
        await expect(row.get_by_test_id("restricted-row-status")).to_have_text(
            re.compile(r"^Muted until"))
        refused = await cat.call("chat:send", {"live_id": live_id, "text": "let me talk"})
        assert refused["error"]["reason"] == "muted"

        # Ban asks for a second tap, then bans: Cat leaves; the studio lists Cat as banned.
        ban = bob_cat.get_by_test_id("chat-ban")
        await ban.click()
        await expect(ban).to_have_text("Tap again to ban")
        assert not cat.got("chat:banned")
        await ban.click()
        await poll(lambda: cat.got("chat:banned") and cat.got("room:left"))
        await expect(row.get_by_test_id("restricted-row-status")).to_have_text("Banned")

        # The title changes while live: Bob's page says so at once.
        await studio.get_by_test_id("title-input").fill("Q&A: ask me anything")
        await studio.get_by_test_id("title-save").click()
        await expect(studio.get_by_test_id("studio-notice")).to_contain_text("Title saved")
        await expect(bob.get_by_test_id("live-title")).to_have_text("Q&A: ask me anything")

        # The studio on a phone: nothing overlaps, everything fits the width.
        for root in ('[data-testid="studio-chat"]', '[data-testid="studio-moderation"]',
                     '[data-testid="studio-form"]'):
            await assert_layout(studio, root)
        for testid in ("end-live", "chat-input", "chat-send", "title-save"):
            await in_viewport_width(studio, testid)
        await screenshot(studio, "studio-phone-live")

        # Alice undoes the ban from the list (Cat is still muted), then the mute.
        await row.get_by_test_id("restricted-row-action").click()
        await expect(row.get_by_test_id("restricted-row-status")).to_have_text(
            re.compile(r"^Muted until"))
        await row.get_by_test_id("restricted-row-action").click()
        await expect(studio.get_by_test_id("restricted-row")).to_have_count(0)
        await expect(studio.get_by_test_id("restricted-empty")).to_be_visible()
        assert (await cat.call("room:join", {"user_id": alice["user"]["id"], "media": False}))["ok"]


async def test_find_people_and_suggestions_when_nobody_is_live(
        chromium, live_server, closers: list[Any]) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url, viewport=PHONE) as anon,
                open_page(chromium, live_server.url) as ann):
        for username, display in (("zoe", "Zoë Saldaña"), ("zoltan", "Zoltán Kovács")):
            resp = await anon.request.post("/api/register", data={
                "username": username, "display_name": display, "password": "correct-horse-1",
                "birthdate": "1990-01-01"})
            assert resp.status == 201
        # Signed out, on a phone: by a later word of the name, without its accents.
        await anon.goto("/")
        await anon.get_by_test_id("people-query").fill("saldana")
        results = anon.get_by_test_id("people-result")
        await expect(results).to_have_count(1)
        await expect(results.get_by_test_id("people-result-name")).to_have_text("Zoë Saldaña")
        await anon.get_by_test_id("people-query").fill("ZO")
        await expect(results).to_have_count(2)
        await anon.get_by_test_id("people-query").fill("nobody-here")
        await expect(anon.get_by_test_id("people-none")).to_have_text(
            "No one found for “nobody-here”.")
        await assert_layout(anon, "main")
        await screenshot(anon, "people-search-phone")

        # Signed in, nobody live: people her follows follow, and who went LIVE lately.
        me = await person(ann, "ann")
        bob = await page_register(ann, "bob")
        cara = await page_register(ann, "cara")
        for token, target in ((bob["token"], "zoe"), (me["token"], "bob")):  # ann -> bob -> zoe
            resp = await ann.request.post(f"/api/users/{target}/follow",
                                          headers={"Authorization": f"Bearer {token}"})
            assert resp.status == 200
        # Cara went LIVE and ended it: a recent creator.
        cara_sio = await sio_connect(live_server.url, cara["token"])
        closers.append(cara_sio)
        await go_live(cara_sio, closers, "quick one", fps=15)
        assert (await cara_sio.call("live:end", {}))["ok"]
        await ann.goto("/")
        suggestions = ann.get_by_test_id("suggestions")
        await expect(suggestions).to_be_visible()
        await expect(ann.get_by_test_id("suggested-person-name")).to_have_text(["Zoë Saldaña"])
        recent = ann.get_by_test_id("recent-creator").filter(has_text="Cara")
        await recent.get_by_test_id("recent-creator-nudge").click()
        await expect(recent.get_by_test_id("recent-creator-nudge")).to_have_text("Nudged")
        await screenshot(ann, "suggestions-desktop")


async def open_gift_sheet(page: Page) -> None:
    """Tap the rail's Gift button once gift:status has answered (before, the button is
    hidden and the tray is being asked for), and wait for the tray in the sheet."""
    await expect(page.get_by_test_id("gift-tray")).to_have_attribute("data-state", "open")
    await page.get_by_test_id("gift-toggle").click()
    await expect(page.get_by_test_id("gift-tray")).to_be_visible()


async def test_money_with_care_no_tray_where_gifts_cannot_go_and_a_confirmation(
        chromium, server_factory, redis_url: str, redis: Any,  # noqa: F811
        closers: list[Any]) -> None:
    """`redis`: a flushed database for this server."""
    server = server_factory(redis_url=redis_url, env={
        "GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s", "GOLIVE_AUTH_BURST": "200",
        "GOLIVE_GIFT_MIN_FOLLOWERS": "1"})
    async with (open_page(chromium, server.url) as studio,
                open_page(chromium, server.url, viewport=PHONE) as bob):
        await person(studio, "alice")
        session = await person(bob, "bob")
        await studio.goto("/studio")
        await studio.wait_for_function(PREVIEW_READY)
        await studio.get_by_test_id("go-live").click()
        await expect(studio.get_by_test_id("studio-status")).to_have_text("LIVE")

        # Alice has no follower yet: gifts cannot reach her, so no tray at all, nor the
        # phone's Gift button that slides it up.
        await bob.goto("/@alice")
        await expect(bob.get_by_test_id("chat-panel")).to_be_visible()
        await expect(bob.get_by_test_id("like-button")).to_be_visible()  # the rail is up
        gift_button = bob.get_by_test_id("gift-toggle")
        await expect(bob.get_by_test_id("gift-tray")).to_have_attribute("data-state", "refused")
        await expect(gift_button).to_be_hidden()
        await expect(bob.get_by_test_id("gift-tray")).to_be_hidden()
        auth = {"Authorization": f"Bearer {session['token']}"}
        assert (await bob.request.post("/api/users/alice/follow", headers=auth)).status == 200
        await bob.reload()
        tray = bob.get_by_test_id("gift-tray")
        await open_gift_sheet(bob)

        # A 5,000-coin Drama Queen asks first; Cancel spends nothing, Send sends it.
        resp = await bob.request.post("/api/coins/checkout", headers=auth,
                                      data={"package_id": "coins_7000"})
        assert resp.status == 200, await resp.text()
        await bob.reload()
        await open_gift_sheet(bob)
        await expect(bob.get_by_test_id("gift-coins")).to_have_text("7,000")
        dear = tray.locator('[data-testid="gift-button"][data-gift="drama_queen"]')
        await expect(dear).to_be_visible()
        await dear.click()
        confirm = bob.get_by_test_id("gift-confirm")
        await expect(confirm).to_be_visible()
        await expect(bob.get_by_test_id("gift-confirm-text")).to_have_text(
            "Send Drama Queen for 5,000 coins?")
        await screenshot(bob, "gift-confirm-phone")
        await bob.get_by_test_id("gift-confirm-cancel").click()
        await expect(confirm).to_be_hidden()
        await expect(bob.get_by_test_id("gift-coins")).to_have_text("7,000")
        await dear.click()
        await bob.get_by_test_id("gift-confirm-send").click()
        await expect(bob.get_by_test_id("gift-coins")).to_have_text("2,000")
        # a cheap gift goes on one tap
        await tray.locator('[data-testid="gift-button"][data-gift="rose"]').click()
        await expect(bob.get_by_test_id("gift-coins")).to_have_text("1,999")
        await expect(confirm).to_be_hidden()


async def test_the_nudge_bell_goes_with_a_block_without_a_reload(
        chromium, live_server) -> None:  # noqa: F811
    async with open_page(chromium, live_server.url, viewport=PHONE) as bob:
        await page_register(bob, "alice")
        await person(bob, "bob")
        await bob.goto("/@alice")
        bell = bob.get_by_test_id("nudge-button")
        await expect(bell).to_be_visible()
        await bob.get_by_test_id("block-button").click()
        await expect(bob.get_by_test_id("block-button")).to_have_text("Unblock")
        await expect(bell).to_be_hidden()
        await expect(bob.get_by_test_id("nudge-status")).to_be_hidden()
        # unblocked, the bell is back (the server is asked again)
        await bob.get_by_test_id("block-button").click()
        await expect(bob.get_by_test_id("block-button")).to_have_text("Block")
        await expect(bell).to_be_visible()


async def test_a_profile_photo_shows_where_the_letter_was(
        chromium, live_server, tmp_path: Any) -> None:  # noqa: F811
    from tests.support.images import jpeg_with_gps

    photo = tmp_path / "me.jpg"
    photo.write_bytes(jpeg_with_gps())
    async with open_page(chromium, live_server.url, viewport=PHONE) as page:
        await person(page, "ann")
        await page.goto("/")
        mine = page.get_by_test_id("signed-in-avatar")
        await expect(mine).not_to_have_class(re.compile("has-photo"))
        await page.get_by_test_id("avatar-file").set_input_files(str(photo))
        await expect(mine).to_have_class(re.compile("has-photo"))
        url = await mine.get_attribute("data-photo")
        assert url and url.startswith("/avatars/")
        # a bad file: a clear error, the photo stays
        svg = tmp_path / "evil.png"
        svg.write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
        await page.get_by_test_id("avatar-file").set_input_files(str(svg))
        await expect(page.get_by_test_id("avatar-error")).to_have_text(
            "A photo must be a JPEG, PNG or WebP image")
        await expect(mine).to_have_attribute("data-photo", url)
        # everywhere a letter circle was: the profile page too
        await page.goto("/@ann")
        await expect(page.get_by_test_id("profile-avatar")).to_have_class(re.compile("has-photo"))
        await screenshot(page, "avatar-profile-phone")
