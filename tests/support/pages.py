"""What a person does in a page: accounts, signing in, going live in the studio and
watching (playwright Pages; the browser itself is tests/browser.py's fixtures)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from playwright.async_api import Browser, Page, expect

from bench.page_session import sign_in_context
from signaling.session_cookie import COOKIE
from tests.browser import open_page

PASSWORD = "correct-horse-1"

# The live <video> once it shows frames: its current time, else 0.
VIDEO_TIME = """() => {
  const video = document.querySelector('[data-testid="live-video"]');
  return video && video.videoWidth > 0 && video.currentTime > 0 ? video.currentTime : 0;
}"""
# Frames the live <video> has shown so far.
VIDEO_FRAMES = """() => document.querySelector('[data-testid="live-video"]')
  .getVideoPlaybackQuality().totalVideoFrames"""
VIDEO_ADVANCED = """([t0, frames]) => {
  const video = document.querySelector('[data-testid="live-video"]');
  return video.currentTime > t0 + 0.5
    && video.getVideoPlaybackQuality().totalVideoFrames > frames + 10;
}"""
PREVIEW_READY = """() => document.querySelector('[data-testid="preview"]').videoWidth > 0"""


async def page_register(page: Page, username: str, birthdate: str = "1990-01-01") -> dict[str, Any]:
    """A new account through the API: {token, expires_at, user}."""
    resp = await page.request.post("/api/register", data={
        "username": username, "display_name": username.title(), "password": PASSWORD,
        "birthdate": birthdate})
    body = await resp.json()
    assert resp.status == 201, body
    return {key: body[key] for key in ("token", "expires_at", "user")}


async def sign_in_as(page: Page, session: dict[str, Any]) -> None:
    """Every page of this context starts signed in as `session`: its token as the HttpOnly
    cookie the server sets for the pages (signaling/session_cookie.py), and session.js's
    storage of who is signed in."""
    resp = await page.request.get("/api/me", headers={
        "Authorization": f"Bearer {session['token']}"})
    assert resp.ok, await resp.text()
    await sign_in_context(page.context, resp.url.removesuffix("/api/me"), session["token"],
                          session["user"], session["expires_at"])


async def session_token(page: Page) -> str:
    """The token of the session this page's context is signed in with (the HttpOnly
    cookie: the page's own scripts cannot read it, the test can)."""
    cookies = [c for c in await page.context.cookies() if c["name"] == COOKIE]
    assert len(cookies) == 1, cookies
    return cookies[0]["value"]


async def person(page: Page, username: str, birthdate: str = "1990-01-01") -> dict[str, Any]:
    """A new account, and this page's context signed in as it."""
    session = await page_register(page, username, birthdate)
    await sign_in_as(page, session)
    return session


async def studio_go_live(studio: Page, title: str) -> None:
    """Open /studio, wait for the camera preview, Go LIVE, and wait until on air."""
    await studio.goto("/studio")
    await studio.wait_for_function(PREVIEW_READY)
    await studio.get_by_test_id("title-input").fill(title)
    await studio.get_by_test_id("go-live").click()
    await expect(studio.get_by_test_id("studio-status")).to_have_text("LIVE")


async def wait_playing(viewer: Page) -> float:
    """Wait until the live video shows frames and keeps showing new ones (time and frame
    count advance); returns the seconds until the first frame."""
    started = time.monotonic()
    handle = await viewer.wait_for_function(VIDEO_TIME)
    waited = time.monotonic() - started
    frames = await viewer.evaluate(VIDEO_FRAMES)
    await viewer.wait_for_function(VIDEO_ADVANCED, arg=[await handle.json_value(), frames])
    return waited


async def sign_up(page: Page, username: str, display_name: str, *,
                  password: str = PASSWORD) -> None:
    """Fill in and submit the landing page's sign-up form."""
    form = page.get_by_test_id("signup-form")
    await form.get_by_test_id("signup-username").fill(username)
    await form.get_by_test_id("signup-display-name").fill(display_name)
    await form.get_by_test_id("signup-birthdate").fill("1994-05-17")
    await form.get_by_test_id("signup-password").fill(password)
    await form.get_by_test_id("signup-submit").click()


async def sign_in(page: Page, username: str, password: str) -> None:
    """Fill in and submit the landing page's sign-in form."""
    form = page.get_by_test_id("signin-form")
    await form.get_by_test_id("signin-username").fill(username)
    await form.get_by_test_id("signin-password").fill(password)
    await form.get_by_test_id("signin-submit").click()


async def expect_signed_in(page: Page, username: str) -> None:
    """The header shows `username` signed in."""
    whoami = page.get_by_test_id("whoami")
    await expect(whoami).to_have_text(f"@{username}")
    await expect(whoami).to_have_attribute("href", f"/@{username}")
    await expect(page.get_by_test_id("signed-in")).to_be_visible()
    await expect(page.get_by_test_id("my-profile-link")).to_have_attribute("href", f"/@{username}")


# Every RTCPeerConnection the page makes, in window.__peers (add_init_script it).
RECORD_PEERS = """(() => {
  const Original = window.RTCPeerConnection;
  window.__peers = [];
  window.RTCPeerConnection = function (config) {
    const pc = new Original(config);
    window.__peers.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
})();"""

# The latest peer connection: how many the page made, its state, both sides' ICE ufrags
# and the server's port on the selected pair.
PATH = """async () => {
  const pc = window.__peers[window.__peers.length - 1];
  const ufrag = (sdp) => /a=ice-ufrag:(\\S+)/.exec(sdp ?? '')?.[1] ?? null;
  const stats = await pc.getStats();
  let port = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const pair = stats.get(s.selectedCandidatePairId);
      port = stats.get(pair.remoteCandidateId).port;
    }
  });
  return { peers: window.__peers.length, state: pc.connectionState,
           local: ufrag(pc.localDescription?.sdp), remote: ufrag(pc.remoteDescription?.sdp),
           port };
}"""


@contextlib.asynccontextmanager
async def alice_live_bob_watching(browser: Browser, url: str, title: str,
                                  scripts: Sequence[str] = (RECORD_PEERS,)
                                  ) -> AsyncIterator[tuple[Page, Page]]:
    """Alice's studio LIVE (titled `title`) and Bob's watch page playing it, each page with
    `scripts` added as init scripts (RECORD_PEERS by default): (studio, viewer)."""
    async with open_page(browser, url) as studio, open_page(browser, url) as viewer:
        for page in (studio, viewer):
            for script in scripts:
                await page.add_init_script(script)
        await person(studio, "alice")
        await person(viewer, "bob")
        await studio_go_live(studio, title)
        await viewer.goto("/@alice")
        await wait_playing(viewer)
        yield studio, viewer
