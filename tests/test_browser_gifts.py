"""Gifts in real Chromium against a real `golive serve`.

Alice goes live from /studio (the fake camera). Bob watches on her profile, finds he has
no coins, buys some with the built-in test provider, sends two Roses and sees the Rose's
badge burnt into the video he receives: his page draws the <video> into a canvas and
samples the badge's own colour where the server's layout puts it. His balance, the board
of top gifters, the gift line with its combo and Alice's diamonds change on both pages.
Screenshots land in /tmp/golive-shots/.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from engine.catalog import load_catalog
from tests.browser import chromium, chromium_path, open_page, screenshot  # noqa: F401 (fixtures)
from tests.support.gift_badge import CANVAS_MEAN, TOLERANCE, badge_patches, gift_colour
from tests.support.pages import person, session_token, studio_go_live, wait_playing

pytestmark = pytest.mark.browser

# Click a gift button and time, in the page, until a decoded video frame drawn into a
# canvas shows the badge's colour at its rect for the frame's size. Returns
# {ms, size, mean} or null after timeoutMs.
PROBE = """async ([selector, rects, colour, tolerance, timeoutMs]) => {
  const video = document.querySelector('[data-testid="live-video"]');
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const button = document.querySelector(selector);
  return new Promise((resolve) => {
    let started = null;
    const check = () => {
      const now = performance.now();
      const size = `${video.videoWidth}x${video.videoHeight}`;
      const rect = rects[size];
      if (rect) {
        const mean = (""" + CANVAS_MEAN + """)(video, canvas, ctx, rect);
        if (mean.every((m, c) => Math.abs(m - colour[c]) < tolerance)) {
          resolve({ ms: now - started, size, mean });
          return;
        }
      }
      if (now - started > timeoutMs) resolve(null);
      else video.requestVideoFrameCallback(check);
    };
    started = performance.now();
    // a video whose frames stopped calls check() no more: fail, do not hang
    setTimeout(() => resolve(null), timeoutMs + 2000);
    button.click();
    video.requestVideoFrameCallback(check);
  });
}"""


async def send_and_watch(page: Page, gift_id: str, username: str, combo: int) -> dict[str, Any]:
    seen = await page.evaluate(PROBE, [
        f'[data-testid="gift-button"][data-gift="{gift_id}"]',
        badge_patches(username, gift_id, combo), gift_colour(gift_id), TOLERANCE, 8000])
    assert seen is not None, "the gift's badge never showed in the viewer's video"
    return seen  # type: ignore[no-any-return]


async def test_buy_coins_send_a_rose_and_see_it_in_the_video(chromium, live_server) -> None:  # noqa: F811
    async with (open_page(chromium, live_server.url) as studio,
                open_page(chromium, live_server.url) as viewer):
        await person(studio, "alice")
        await person(viewer, "bob")
        await studio_go_live(studio, "Gifts welcome")
        await expect(studio.get_by_test_id("studio-gifts")).to_be_visible()

        await viewer.goto("/@alice")
        await wait_playing(viewer)
        tray = viewer.get_by_test_id("gift-tray")
        await expect(tray).to_be_visible()
        rose = tray.locator('[data-testid="gift-button"][data-gift="rose"]')
        await expect(rose.get_by_test_id("gift-price")).to_have_text("1 coins")
        await expect(tray.get_by_test_id("gift-button")).to_have_count(len(load_catalog().gifts()))
        await expect(viewer.get_by_test_id("gift-coins")).to_have_text("0")

        # No coins yet: the server refuses, nothing moves, and the coin packages open.
        await rose.click()
        await expect(viewer.get_by_test_id("gift-error")).to_contain_text("Not enough coins")
        packages = viewer.get_by_test_id("coin-packages")
        await expect(packages).to_be_visible()
        await screenshot(viewer, "gifts-no-coins")

        # Buy 70 coins with the test provider (it pays at once).
        await packages.locator('[data-package="coins_70"]').click()
        await expect(viewer.get_by_test_id("gift-coins")).to_have_text("70")
        await expect(viewer.get_by_test_id("gift-notice")).to_have_text("70 coins added.")

        # A Rose: its badge shows in the video Bob receives.
        first = await send_and_watch(viewer, "rose", "bob", 1)
        print(f"click -> Rose badge in the viewer's canvas: {first['ms']:.0f} ms "
              f"at {first['size']} (colour {[round(c) for c in first['mean']]})")
        await expect(viewer.get_by_test_id("gift-coins")).to_have_text("69")
        await screenshot(viewer, "gifts-rose-in-video")

        # Another within the combo window: one line, x2, on both pages.
        await rose.click()
        await expect(viewer.get_by_test_id("gift-coins")).to_have_text("68")
        for page in (viewer, studio):
            line = page.get_by_test_id("gift-line")
            await expect(line).to_have_count(1)
            await expect(line.get_by_test_id("gift-combo")).to_have_text("x2")
            await expect(line.get_by_test_id("gift-line-name")).to_have_text("Bob")
            rank = page.get_by_test_id("gift-rank")
            await expect(rank).to_have_count(1)
            await expect(rank.get_by_test_id("gift-rank-name")).to_have_text("Bob")
            await expect(rank.get_by_test_id("gift-rank-coins")).to_have_text("2")
            # Two 1-coin Roses make one diamond (2 coins a diamond): the first one's coin
            # was carried in Alice's account, not lost to rounding.
            await expect(page.get_by_test_id("gift-diamonds")).to_have_text("1")

        # A Finger Heart (5 coins): 2 more diamonds for Alice (1 coin carried), a second
        # line, Bob at 7 coins.
        await tray.locator('[data-testid="gift-button"][data-gift="finger_heart"]').click()
        await expect(viewer.get_by_test_id("gift-coins")).to_have_text("63")
        for page in (viewer, studio):
            await expect(page.get_by_test_id("gift-line")).to_have_count(2)
            await expect(page.get_by_test_id("gift-rank-coins")).to_have_text("7")
            await expect(page.get_by_test_id("gift-diamonds")).to_have_text("3")
        wallet = await studio.request.get("/api/wallet", headers={
            "Authorization": f"Bearer {await session_token(studio)}"})
        assert (await wallet.json())["balances"]["diamonds"] == 3
        assert (await wallet.json())["balances"]["carry_coins"] == 1
        await screenshot(viewer, "gifts-viewer-combo")
        await screenshot(studio, "gifts-studio")

