"""The landing and profile pages in real Chromium against a real `golive serve`:
sign up, sign out and in, follow, unfollow, block, edit a profile.

Two browser contexts are two people (separate localStorage). Every wait polls a
condition through playwright's expect(); nothing sleeps. Screenshots of each
page land in /tmp/golive-shots/ for people to look at.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import expect

from signaling.session_cookie import COOKIE
from tests.browser import chromium, chromium_path, open_page, screenshot  # noqa: F401 (fixtures)
from tests.support.pages import PASSWORD, expect_signed_in, session_token, sign_in, sign_up

pytestmark = pytest.mark.browser



# Runs in the page: connectSocket() and ask() as the next pages will use them.
SOCKET_PROBE = """async () => {
  const { connectSocket, ask } = await import('/static/socket.js');
  const { currentUser } = await import('/static/session.js');
  const socket = await connectSocket();
  try {
    const { user } = await ask(socket, 'session:whoami', {});
    const selfFollow = await ask(socket, 'user:follow', { user_id: user.id })
      .then(() => null, (e) => [e.code, e.details.event.split(':')[1]]);
    const badToken = await connectSocket({ token: 'not-a-token' })
      .then(() => null, (e) => [e.code, e.reason]);
    return { whoami: user.username, self_follow: selfFollow, bad_token: badToken,
             still_signed_in: currentUser() !== null,
             token_readable: document.cookie.includes('golive_session') };
  } finally {
    socket.disconnect();
  }
}"""


async def test_sign_up_follow_unfollow_block(chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as alice,
                open_page(chromium, live_server.url) as bob):
        # --- landing, signed out; a refused sign-up shows the server's message
        await alice.goto("/")
        await expect(alice.get_by_test_id("signin-link")).to_be_visible()
        await expect(alice.get_by_test_id("discover")).to_be_visible()
        await screenshot(alice, "landing-signed-out")
        await sign_up(alice, "alice", "Alice Liddell", password="short")
        error = alice.get_by_test_id("signup-error")
        await expect(error).to_have_text("Password must be 8-128 characters")
        await expect(alice.get_by_test_id("signup-password")).to_have_attribute(
            "aria-invalid", "true")
        await screenshot(alice, "landing-signup-error")

        await alice.get_by_test_id("signup-password").fill(PASSWORD)
        await alice.get_by_test_id("signup-submit").click()
        await expect_signed_in(alice, "alice")
        await expect(alice.get_by_test_id("signup-form")).to_be_hidden()
        await screenshot(alice, "landing-signed-in")

        # --- bob signs up, signs out, fails once and signs in with the form
        await bob.goto("/")
        await sign_up(bob, "bob", "Bob <b>Builder</b>")
        await expect_signed_in(bob, "bob")
        # The token is in the HttpOnly cookie only: no script of the page can read it.
        stored = json.loads(await bob.evaluate("localStorage.getItem('golive.session')"))
        assert set(stored) == {"expires_at", "user"}
        assert await bob.evaluate("document.cookie") == ""
        assert len(await session_token(bob)) > 20
        await bob.get_by_test_id("signout-button").click()
        await expect(bob.get_by_test_id("signin-link")).to_be_visible()
        await expect(bob.get_by_test_id("signin-form")).to_be_visible()
        assert await bob.evaluate("localStorage.getItem('golive.session')") is None
        await sign_in(bob, "bob", "wrong-password")
        await expect(bob.get_by_test_id("signin-error")).to_have_text("Wrong username or password")
        await screenshot(bob, "landing-signin-error")
        await sign_in(bob, "bob", PASSWORD)
        await expect_signed_in(bob, "bob")

        # --- bob follows alice; the count comes from the Socket.IO ack
        await bob.get_by_test_id("signed-in").get_by_text("View your profile").wait_for()
        await bob.goto("/@alice")
        followers = bob.get_by_test_id("follower-count")
        follow = bob.get_by_test_id("follow-button")
        await expect(bob.get_by_test_id("profile-display-name")).to_have_text("Alice Liddell")
        await expect(bob.get_by_test_id("profile-username")).to_have_text("@alice")
        await expect(followers).to_have_text("0")
        await expect(follow).to_have_text("Follow")
        await expect(bob.get_by_test_id("edit-profile-button")).to_be_hidden()
        await screenshot(bob, "profile-other")

        await follow.click()
        await expect(followers).to_have_text("1")
        await expect(follow).to_have_text("Unfollow")
        await bob.reload()
        await expect(followers).to_have_text("1")
        await expect(follow).to_have_text("Unfollow")
        await bob.get_by_test_id("followers-stat").click()
        await expect(bob.get_by_test_id("user-list-item")).to_have_text(
            re.compile(r"Bob <b>Builder</b>\s*@bob"))
        await screenshot(bob, "profile-following")

        await follow.click()
        await expect(followers).to_have_text("0")
        await expect(follow).to_have_text("Follow")
        await expect(bob.get_by_test_id("user-list")).to_contain_text("No followers yet.")

        # --- alice has bob's profile open before bob blocks her
        await alice.goto("/@bob")
        await expect(alice.get_by_test_id("profile-display-name")).to_have_text(
            "Bob <b>Builder</b>")  # textContent, not markup
        await expect(alice.get_by_test_id("follow-button")).to_have_text("Follow")

        block = bob.get_by_test_id("block-button")
        await block.click()
        await expect(block).to_have_text("Unblock")
        await expect(follow).to_be_hidden()
        await expect(bob.get_by_test_id("relation-note")).to_have_text(
            "You blocked @alice. Unblock them to follow.")
        await screenshot(bob, "profile-blocking")

        # alice's stale Follow is refused by the server: a visible error, then no button
        await alice.get_by_test_id("follow-button").click()
        await expect(alice.get_by_test_id("action-error")).to_have_text(
            "You cannot follow this account")
        await expect(alice.get_by_test_id("follow-button")).to_be_hidden()
        await expect(alice.get_by_test_id("follower-count")).to_have_text("0")
        await screenshot(alice, "profile-blocked-by")

        await block.click()
        await expect(block).to_have_text("Block")
        await expect(follow).to_have_text("Follow")
        await expect(bob.get_by_test_id("relation-note")).to_be_hidden()

        # --- alice edits her own profile; user text stays text
        await alice.get_by_test_id("whoami").click()
        await expect(alice).to_have_url(re.compile(r"/@alice$"))
        await expect(alice.get_by_test_id("badge-you")).to_be_visible()
        await expect(alice.get_by_test_id("follow-button")).to_be_hidden()
        await expect(alice.get_by_test_id("block-button")).to_be_hidden()
        await alice.get_by_test_id("edit-profile-button").click()
        await alice.get_by_test_id("edit-display-name").fill("Alice in Chains")
        await alice.get_by_test_id("edit-bio").fill("<img src=x onerror=alert(1)> live daily")
        await expect(alice.get_by_test_id("edit-bio-count")).to_have_text("39/200")
        await screenshot(alice, "profile-self-editing")
        await alice.get_by_test_id("edit-save").click()
        await expect(alice.get_by_test_id("profile-display-name")).to_have_text("Alice in Chains")
        await expect(alice.get_by_test_id("profile-bio")).to_have_text(
            "<img src=x onerror=alert(1)> live daily")
        assert await alice.locator("main img").count() == 0
        await screenshot(alice, "profile-self")
        await alice.reload()
        await expect(alice.get_by_test_id("profile-display-name")).to_have_text("Alice in Chains")

        # --- a profile that does not exist
        await alice.goto("/@nobody_here")
        await expect(alice.get_by_test_id("not-found")).to_contain_text("No such user")
        await screenshot(alice, "profile-not-found")
    assert "Traceback" not in live_server.log()


async def test_pages_on_a_phone_and_signed_out(chromium, live_server) -> None:  # noqa: F811
    """A visitor's view of a profile, at phone width, and a stale token."""
    async with open_page(chromium, live_server.url, viewport=(390, 844)) as page:
        await page.goto("/")
        await sign_up(page, "carol.live", "Carol")
        await expect(page.get_by_test_id("whoami")).to_have_text("@carol.live")
        await screenshot(page, "phone-landing-signed-in")
        await page.goto("/@Carol.Live")  # usernames are case-insensitive; the URL settles
        await expect(page.get_by_test_id("edit-profile-button")).to_be_visible()
        await expect(page).to_have_url(re.compile(r"/@carol\.live$"))
        await screenshot(page, "phone-profile-self")

        # The socket helpers the later pages build on, called directly.
        replies = await page.evaluate(SOCKET_PROBE)
        assert replies == {"whoami": "carol.live", "self_follow": ["invalid", "follow"],
                           "bad_token": ["unauthorized", "invalid"], "still_signed_in": True,
                           "token_readable": False}

        # A revoked token (signed out elsewhere) signs this browser out on first use.
        token = await session_token(page)
        resp = await page.request.post("/api/signout", headers={"Authorization": f"Bearer {token}"})
        assert resp.ok
        await page.reload()
        await expect(page.get_by_test_id("signin-link")).to_be_visible()
        # The server dropped the refused cookie too (no script of the page could).
        assert [c for c in await page.context.cookies() if c["name"] == COOKIE] == []
        await expect(page.get_by_test_id("signin-to-follow")).to_be_visible()
        await expect(page.get_by_test_id("edit-profile-button")).to_be_hidden()
        await expect(page.get_by_test_id("follower-count")).to_have_text("0")
        await screenshot(page, "phone-profile-visitor")

        # "Sign in to follow" comes back to the profile after signing in.
        await page.get_by_test_id("signin-to-follow").click()
        await sign_in(page, "carol.live", PASSWORD)
        await expect(page).to_have_url(re.compile(r"/@carol\.live$"))
        await expect(page.get_by_test_id("whoami")).to_have_text("@carol.live")
