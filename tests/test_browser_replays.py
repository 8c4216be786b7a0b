"""A recorded LIVE replays in real Chromium, its gift badge visible, for both room codecs.

Alice ticks "Record this LIVE" in /studio (the fake camera) and goes live; Bob (a
Socket.IO client) chats and sends a Rose; Alice ends the LIVE. Her profile lists the
replay; its page plays the recorded file (WebM for a VP8 room, fragmented MP4 for
H.264) in a <video>: its time advances, a frame drawn into a canvas shows the Rose's
badge colour where the layout put it, and Bob's chat line appears once the video
reaches it. The page's layout at 390x844 and 1280x800 has no overlapping controls.
Screenshots in /tmp/golive-shots/.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect

from tests.browser import chromium, chromium_path, open_page, screenshot  # noqa: F401 (fixtures)
from tests.support.gift_badge import CANVAS_MEAN, TOLERANCE, badge_patches, gift_colour
from tests.support.layout import assert_no_overlaps
from tests.support.pages import PREVIEW_READY, person, sign_in_as
from tests.support.peers import sio_connect
from tests.support.servers import TEST_SECRET

pytestmark = pytest.mark.browser

# Play the replay muted from its start; resolve when a frame drawn into a canvas shows
# the badge colour at its rect for the frame's size: {t, size, mean, advanced} or null.
PROBE = """async ([rects, colour, tolerance, timeoutMs]) => {
  const video = document.querySelector('[data-testid="replay-video"]');
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  video.muted = true;
  // a replay that does not play (or stops) fails the probe, it does not hang the test
  const gaveUp = new Promise((resolve) => setTimeout(() => resolve('timeout'), timeoutMs));
  if (await Promise.race([video.play().then(() => 'playing'), gaveUp]) === 'timeout') return null;
  const t0 = video.currentTime;
  const started = performance.now();
  return new Promise((resolve) => {
    setTimeout(() => resolve(null), timeoutMs + 2000);
    const check = () => {
      const size = `${video.videoWidth}x${video.videoHeight}`;
      const rect = rects[size];
      if (rect) {
        const mean = (""" + CANVAS_MEAN + """)(video, canvas, ctx, rect);
        if (mean.every((m, c) => Math.abs(m - colour[c]) < tolerance)) {
          resolve({ t: video.currentTime, size, mean, advanced: video.currentTime - t0 });
          return;
        }
      }
      if (performance.now() - started > timeoutMs || video.ended) resolve(null);
      else video.requestVideoFrameCallback(check);
    };
    video.requestVideoFrameCallback(check);
  });
}"""


ELAPSED = """() => {
  const [m, s] = document.querySelector('[data-testid="elapsed"]').textContent.split(':');
  return Number(m) * 60 + Number(s);
}"""


async def on_air(studio: Page) -> int:
    """Seconds the studio's clock shows the live has been on air."""
    return int(await studio.evaluate(ELAPSED))


async def on_air_for(studio: Page, seconds: int) -> None:
    """Wait until the studio's clock shows `seconds` on air."""
    await studio.wait_for_function(f"() => ({ELAPSED})() >= {seconds}")


async def bob_sends_a_rose(url: str, creator_id: str, closers: list[Any]) -> None:
    """Bob signs up, buys coins, joins Alice's live (chat only), chats, sends a Rose."""
    async with aiohttp.ClientSession() as http:
        resp = await http.post(url + "/api/register", json={
            "username": "bob", "display_name": "Bob", "password": "correct-horse-1",
            "birthdate": "1990-01-01"})
        token = (await resp.json())["token"]
        resp = await http.post(url + "/api/coins/checkout", json={"package_id": "coins_70"},
                               headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200, await resp.text()
    bob = await sio_connect(url, token)
    closers.append(bob)
    joined = await bob.call("room:join", {"user_id": creator_id, "media": False}, timeout=20)
    assert joined["ok"], joined
    live_id = joined["live"]["live_id"]
    said = await bob.call("chat:send", {"live_id": live_id, "text": "what a stream"}, timeout=20)
    assert said["ok"], said
    sent = await bob.call("gift:send", {"transfer_id": "replay-browser-1", "creator": creator_id,
                                        "gift_id": "rose"}, timeout=20)
    assert sent["ok"], sent


@pytest.fixture(params=["vp8", "h264"])
def replay_server(request: pytest.FixtureRequest, server_factory: Any, redis_url: str,
                  redis: Any) -> Any:
    """`golive serve` (as live_server) with its rooms in VP8 (recorded as WebM) or H.264
    (fragmented MP4)."""
    server = server_factory(redis_url=redis_url, env={
        "GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s", "GOLIVE_AUTH_BURST": "200",
        "GOLIVE_VIDEO_CODEC": request.param})
    return server, request.param


async def test_a_recorded_live_replays_with_its_gift_badge(chromium, replay_server,  # noqa: F811
                                                           closers: list[Any]) -> None:
    live_server, codec = replay_server
    async with open_page(chromium, live_server.url) as studio:
        alice = await person(studio, "alice")
        await studio.goto("/studio")
        await studio.wait_for_function(PREVIEW_READY)
        record = studio.get_by_test_id("record-live")
        await record.check()
        await studio.get_by_test_id("title-input").fill("Recorded with a Rose")
        await studio.get_by_test_id("go-live").click()
        await expect(studio.get_by_test_id("studio-status")).to_have_text("LIVE")
        await expect(studio.get_by_test_id("recording-notice")).to_contain_text("Recording")
        await on_air_for(studio, 2)  # frames before the gift
        await bob_sends_a_rose(live_server.url, alice["user"]["id"], closers)
        await studio.get_by_test_id("gift-line").first.wait_for()
        await on_air_for(studio, await on_air(studio) + 3)  # the badge's seconds recorded
        await studio.get_by_test_id("end-live").click()
        await expect(studio.get_by_test_id("studio-status")).to_have_text("Ended")
        # the box stays ticked for her next LIVE (this browser remembers it)
        await studio.reload()
        await expect(studio.get_by_test_id("record-live")).to_be_checked()

    async with aiohttp.ClientSession() as http:  # saved as the live:end ack came back
        async with http.get(live_server.url + "/api/users/alice/replays") as resp:
            listed = (await resp.json())["replays"]
    assert [r["title"] for r in listed] == ["Recorded with a Rose"], listed
    assert listed[0]["file"] == {"vp8": "video.webm", "h264": "video.mp4"}[codec], listed
    assert listed[0]["duration_s"] > 3, listed

    for name, viewport in (("phone", (390, 844)), ("desktop", (1280, 800))):
        async with open_page(chromium, live_server.url, viewport=viewport) as page:
            await page.goto("/@alice")
            item = page.get_by_test_id("replay-item")
            await expect(item).to_have_count(1, timeout=15_000)
            await expect(item.get_by_test_id("replay-title")).to_have_text("Recorded with a Rose")
            thumb = item.get_by_test_id("replay-thumb")
            await expect(thumb).to_be_visible()
            # visible is not loaded: wait for the image itself (a 0 read before it came)
            await thumb.evaluate("img => img.complete && img.naturalWidth ? null : "
                                 "new Promise(r => { img.onload = img.onerror = r; })")
            assert await thumb.evaluate("img => img.naturalWidth") == 320
            await screenshot(page, f"replays-profile-{codec}-{name}")
            await item.get_by_test_id("replay-link").click()
            await expect(page.get_by_test_id("replay-title")).to_have_text("Recorded with a Rose")
            await expect(page.get_by_test_id("replay-creator")).to_contain_text("@alice")
            await expect(page.get_by_test_id("replay-delete")).to_be_hidden()  # not hers
            seen = await page.evaluate(PROBE, [badge_patches("bob", "rose"), gift_colour("rose"),
                                               TOLERANCE, 20_000])
            assert seen is not None, "the Rose's badge never showed in the replay's video"
            assert seen["advanced"] > 0.5 and seen["t"] > 1.0, seen
            print(f"{codec} {name}: badge at {seen['t']:.2f} s of the replay, {seen['size']}, "
                  f"colour {[round(c) for c in seen['mean']]}")
            line = page.get_by_test_id("replay-chat-line").filter(has_text="what a stream")
            await expect(line).to_be_visible()  # the video passed its offset
            await screenshot(page, f"replays-page-{codec}-{name}")
            await assert_no_overlaps(page)

    # Alice deletes it from its page: back on her profile, no replay is listed.
    async with open_page(chromium, live_server.url) as page:
        await sign_in_as(page, alice)
        await page.goto(listed[0]["page_url"])
        delete = page.get_by_test_id("replay-delete")
        await expect(delete).to_be_visible()
        page.once("dialog", lambda dialog: dialog.accept())
        await delete.click()
        await page.wait_for_url("**/@alice")
        await expect(page.get_by_test_id("profile-display-name")).to_have_text("Alice")
        await expect(page.get_by_test_id("replays")).to_be_hidden()
    async with aiohttp.ClientSession() as http:
        async with http.get(live_server.url + listed[0]["video_url"]) as resp:
            assert resp.status == 404
