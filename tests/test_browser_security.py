"""Browser security in real Chromium against a real `golive serve`: user text with
markup and scripts stays text on every page that shows it, and every page renders
under the Content-Security-Policy (signaling/security_headers.py) with no violation,
at phone and desktop size.

A watch on each browser context fails the test on any of: a dialog (alert()), a
`securitypolicyviolation` event (reported through a binding, so none is lost to a
navigation), a request for the `x` an injected <img src=x> would fetch, and, on each
page checked, `window.__xss` set or an element with an onerror/onload attribute or an
inline <script> in the DOM. open_page also fails on any console error, which is where
Chromium logs a CSP refusal too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.browser import PageErrors, chromium, chromium_path, open_page  # noqa: F401 (fixtures)
from tests.support.pages import (
    PASSWORD,
    PREVIEW_READY,
    expect_signed_in,
    session_token,
    sign_in_as,
    sign_up,
    studio_go_live,
)

pytestmark = pytest.mark.browser

# The attacks, each as short as it can be so they fit the shortest fields together.
IMG = "<img src=x onerror=alert()>"
SCRIPT = "<script>window.__xss=1</script>"
SVG = '"><svg onload=alert()>'
JS_URL = "javascript:alert()"
# Every attack in one line: 99 characters, under the live title's 100.
ALL = IMG + SCRIPT + SVG + JS_URL
# Display names hold at most 40: the creator's breaks out of an attribute into an
# <img>, the viewer's is a <script>.
MAL_NAME = '">' + IMG
VIC_NAME = SCRIPT

# The DOM an injection would leave: a handler attribute, an inline script, the <img>.
INJECTED = "[onerror], [onload], script:not([src]), img[src='x'], a[href^='javascript']"
LISTEN = """document.addEventListener('securitypolicyviolation', (e) =>
  window.__cspViolation(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`));"""


@dataclass
class Watch:
    """What an injection would do, gathered across every page of the contexts watched."""

    dialogs: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)

    async def attach(self, context: BrowserContext) -> None:
        await context.expose_binding(
            "__cspViolation", lambda source, text: self.violations.append(
                f"{source['page'].url}: {text}"))
        await context.add_init_script(LISTEN)

        async def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            await dialog.dismiss()

        def on_page(page: Page) -> None:
            page.on("dialog", on_dialog)

        for page in context.pages:
            on_page(page)
        context.on("page", on_page)
        context.on("request", lambda request: self.stray.append(request.url)
                   if urlsplit(request.url).path in ("/x", "/alert()") else None)

    async def assert_clean(self, page: Page, where: str) -> None:
        """Nothing ran, nothing was refused, nothing was injected on `page` so far."""
        assert self.dialogs == [], where
        assert self.violations == [], where
        assert self.stray == [], where
        assert await page.evaluate("() => window.__xss") is None, where
        injected = await page.evaluate(
            f"() => [...document.querySelectorAll({json.dumps(INJECTED)})].map(n => n.outerHTML)")
        assert injected == [], where


async def register(page: Page, username: str, display_name: str, bio: str) -> dict[str, Any]:
    """A new account with this display name and bio: {token, expires_at, user}."""
    resp = await page.request.post("/api/register", data={
        "username": username, "display_name": display_name, "password": PASSWORD,
        "birthdate": "1990-01-01"})
    body = await resp.json()
    assert resp.status == 201, body
    auth = {"Authorization": f"Bearer {body['token']}"}
    resp = await page.request.patch("/api/me", data={"bio": bio}, headers=auth)
    assert resp.status == 200, await resp.text()
    user = (await resp.json())["user"]
    assert (user["display_name"], user["bio"]) == (display_name, bio)
    return {"token": body["token"], "expires_at": body["expires_at"], "user": user}


async def test_user_text_with_markup_stays_text_on_every_page(chromium, live_server) -> None:  # noqa: F811
    """Display names, bio, live title, chat line, DM, search query and report note, each
    holding the attacks, on the landing page, the profile and watch page, the studio,
    messages and notifications, and in the live toast."""
    watch = Watch()
    async with (open_page(chromium, live_server.url) as mal,
                open_page(chromium, live_server.url) as vic):
        for page in (mal, vic):
            await watch.attach(page.context)
        mal_session = await register(mal, "mal", MAL_NAME, ALL)
        vic_session = await register(vic, "vic", VIC_NAME, ALL)
        resp = await vic.request.post("/api/users/mal/follow", headers={
            "Authorization": f"Bearer {vic_session['token']}"})
        assert resp.status == 200, await resp.text()
        await sign_in_as(mal, mal_session)
        await sign_in_as(vic, vic_session)

        # The offline profile: name and bio; the viewer nudges, and the studio's toast
        # names him.
        await mal.goto("/studio")
        await mal.wait_for_function(PREVIEW_READY)
        await vic.goto("/@mal")
        await expect(vic.get_by_test_id("offline-state")).to_be_visible()
        await expect(vic.get_by_test_id("profile-bio")).to_have_text(ALL)
        await expect(vic.get_by_test_id("profile")).to_contain_text(MAL_NAME)
        await vic.get_by_test_id("nudge-button").click()
        await expect(vic.get_by_test_id("nudge-status")).to_contain_text(MAL_NAME)
        await expect(mal.get_by_test_id("notify-toast")).to_contain_text(
            f"{VIC_NAME} nudged you to go live!")
        await watch.assert_clean(vic, "profile (offline)")
        await watch.assert_clean(mal, "studio (nudged)")

        # The landing page: the viewer waits there for the creator's go-live toast.
        await vic.goto("/")
        await expect(vic.get_by_test_id("signed-in-name")).to_have_text(f"You're in, {VIC_NAME}")
        await expect(vic.get_by_test_id("whoami")).to_have_text("@vic")

        # The studio: the creator goes live with the attacks as the title.
        await studio_go_live(mal, ALL)
        await expect(mal.get_by_test_id("title-input")).to_have_value(ALL)
        await watch.assert_clean(mal, "studio")

        toast = vic.get_by_test_id("notify-toast")
        await expect(toast).to_contain_text(f"{MAL_NAME} is LIVE")
        await expect(vic.get_by_test_id("discover-card")).to_contain_text(MAL_NAME)
        await expect(vic.get_by_test_id("discover-card")).to_contain_text(ALL)
        # The people search echoes the query back; then finds the creator by name.
        for query in (SVG + JS_URL, SCRIPT):  # the box takes 40 characters
            await vic.get_by_test_id("people-query").fill(query)
            await vic.get_by_test_id("people-query").press("Enter")
            await expect(vic.get_by_test_id("people-none")).to_have_text(
                f"No one found for “{query}”.")
        await vic.get_by_test_id("people-query").fill("mal")
        await vic.get_by_test_id("people-query").press("Enter")
        await expect(vic.get_by_test_id("people-results")).to_contain_text(MAL_NAME)
        await watch.assert_clean(vic, "landing")

        # The profile and watch page: name, bio, title; the viewer's chat line.
        await vic.goto("/@mal")
        await expect(vic.get_by_test_id("player-name")).to_have_text(MAL_NAME)
        await expect(vic.get_by_test_id("live-title")).to_have_text(ALL)
        await expect(vic.get_by_test_id("chat-panel")).to_be_visible()
        await vic.get_by_test_id("chat-input").fill(ALL)
        await vic.get_by_test_id("chat-input").press("Enter")
        for page in (vic, mal):  # the studio shows its chat too
            line = page.get_by_test_id("chat-message").last
            await expect(line.get_by_test_id("chat-text")).to_have_text(ALL)
            await expect(line.get_by_test_id("chat-name")).to_have_text(VIC_NAME)
        await watch.assert_clean(vic, "profile")
        await watch.assert_clean(mal, "studio chat")

        # A direct message (a request: the creator does not follow back), then a report
        # of its sender with the attacks as the note.
        await vic.goto("/messages?to=mal")
        await expect(vic.get_by_test_id("conversation-name")).to_have_text(MAL_NAME)
        await vic.get_by_test_id("composer-input").fill(ALL)
        await vic.get_by_test_id("composer-send").click()
        await expect(vic.get_by_test_id("dm-text").last).to_have_text(ALL)
        await vic.get_by_test_id("report-user").click()
        await expect(vic.get_by_test_id("report-title")).to_contain_text(MAL_NAME)
        await vic.get_by_test_id("report-note").fill(ALL)
        await vic.get_by_test_id("report-submit").click()
        await expect(vic.get_by_test_id("pending-note")).to_contain_text("report was sent")
        await watch.assert_clean(vic, "messages")

        # The creator's side: the request, its preview and text; the notifications.
        await mal.goto("/messages")
        await mal.get_by_test_id("tab-requests").click()
        row = mal.get_by_test_id("conversation-row")
        await expect(row).to_contain_text(VIC_NAME)
        await expect(row.get_by_test_id("row-last")).to_have_text(ALL)
        await row.click()
        await expect(mal.get_by_test_id("dm-text").last).to_have_text(ALL)
        await watch.assert_clean(mal, "messages (creator)")
        await mal.goto("/notifications")
        texts = mal.get_by_test_id("notification-text")
        await expect(texts.filter(has_text="started following you")).to_have_text(
            f"{VIC_NAME} started following you")
        await expect(texts.filter(has_text="message request")).to_have_text(
            f"{VIC_NAME} sent you a message request")
        await watch.assert_clean(mal, "notifications (creator)")

        await vic.goto("/notifications")
        await expect(vic.get_by_test_id("notification-text").first).to_have_text(
            f"{MAL_NAME} is LIVE: {ALL}")
        await watch.assert_clean(vic, "notifications")


# Each page, and what shows once its module has drawn it (signed in as "ann").
PAGES = {"/": "signed-in-name", "/@ann": "profile-bio", "/@bea": "profile-bio",
         "/studio": "go-live", "/messages": "messages", "/notifications": "notifications",
         "/wallet": "coin-balance"}
SIGNED_OUT = {"/": "signup-form", "/@ann": "profile-bio", "/studio": "studio-signed-out",
              "/messages": "messages-signed-out", "/wallet": "wallet-signed-out"}
SIZES = {"phone": (390, 844), "desktop": (1280, 800)}


async def test_every_page_renders_under_the_policy(chromium, live_server) -> None:  # noqa: F811
    """Each page at phone and desktop size, signed in and out: drawn, and not one CSP
    violation (nor console error, nor request for a refused resource)."""
    watch = Watch()
    for size, viewport in SIZES.items():
        async with (open_page(chromium, live_server.url, viewport=viewport) as page,
                    open_page(chromium, live_server.url, viewport=viewport) as visitor):
            await watch.attach(page.context)
            await watch.attach(visitor.context)
            if size == "phone":
                await register(page, "bea", "Bea", "Plain bio")
            await sign_in_as(page, await register(page, f"ann{size}", "Ann", "Hi there"))
            for path, drawn in PAGES.items():
                path = path.replace("ann", f"ann{size}")
                await page.goto(path)
                await expect(page.get_by_test_id(drawn)).to_be_visible()
                if path == "/studio":
                    await page.wait_for_function(PREVIEW_READY)
                await watch.assert_clean(page, f"{path} at {size}")
            for path, drawn in SIGNED_OUT.items():
                path = path.replace("ann", f"ann{size}")
                await visitor.goto(path)
                await expect(visitor.get_by_test_id(drawn)).to_be_visible()
                await watch.assert_clean(visitor, f"{path} signed out at {size}")


async def test_a_sign_out_the_server_did_not_hear_is_sent_again(chromium, live_server) -> None:  # noqa: F811
    """The page cannot drop its HttpOnly cookie itself: signed out while offline, the
    next page load sends the sign-out again, and the server revokes and drops it."""
    errors = PageErrors()
    async with open_page(chromium, live_server.url, errors=errors) as page:
        await page.goto("/")
        await sign_up(page, "ola", "Ola")
        await expect_signed_in(page, "ola")
        token = await session_token(page)
        await page.context.set_offline(True)
        await page.get_by_test_id("signout-button").click()
        await expect(page.get_by_test_id("signin-link")).to_be_visible()
        assert await session_token(page) == token  # unheard: the cookie is still there
        await page.context.set_offline(False)
        await page.reload()
        await page.wait_for_function(
            "() => localStorage.getItem('golive.signout_pending') === null")
        assert [c for c in await page.context.cookies() if c["name"] == "golive_session"] == []
        me = await page.request.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status == 401 and (await me.json())["error"]["reason"] == "revoked"
        await expect(page.get_by_test_id("signin-link")).to_be_visible()
        errors.forgive("ERR_INTERNET_DISCONNECTED")
