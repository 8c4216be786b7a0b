"""ICE restarts in real Chromium against a real `golive serve`: a network change (the
`online` event the pages listen to) makes the watch page and the studio restart ICE on
their own peer connection (rtc:restart, live:restart) instead of rejoining: new ICE
credentials on both sides, a new server socket on the selected pair, the same single
peer connection, and the picture keeps playing."""

from __future__ import annotations

import pytest

from tests.browser import chromium, chromium_path  # noqa: F401 (fixtures)
from tests.support.pages import PATH, alice_live_bob_watching, wait_playing
from tests.support.poll import poll

pytestmark = pytest.mark.browser

# Keeps every RTCPeerConnection a page makes, for the test to read.
NETWORK_CHANGED = "window.dispatchEvent(new Event('online'))"


async def _is(locator, text: str) -> bool:
    return await locator.text_content() == text


async def restarted(page, before: dict) -> bool:
    now = await page.evaluate(PATH)
    return (now["state"] == "connected" and now["local"] != before["local"]
            and now["remote"] != before["remote"] and now["port"] not in (None, before["port"]))


async def test_viewer_and_studio_restart_ice_on_a_network_change(
        chromium, live_server) -> None:  # noqa: F811
    async with alice_live_bob_watching(chromium, live_server.url, "Moving networks") as (
            studio, viewer):
        watching = studio.get_by_test_id("studio-viewers")
        await poll(lambda: watching.text_content(), what="the studio's viewer count")
        await poll(lambda: _is(watching, "1"), what="the studio counting bob")

        before = await viewer.evaluate(PATH)
        assert before["state"] == "connected" and before["peers"] == 1
        await viewer.evaluate(NETWORK_CHANGED)
        await poll(lambda: restarted(viewer, before), timeout=15,
                   what="the viewer's connection on new ICE credentials and a new server port")
        assert (await viewer.evaluate(PATH))["peers"] == 1  # the same connection: no rejoin
        await wait_playing(viewer)

        before = await studio.evaluate(PATH)
        await studio.evaluate(NETWORK_CHANGED)
        await poll(lambda: restarted(studio, before), timeout=15,
                   what="the studio's connection on new ICE credentials and a new server port")
        assert (await studio.evaluate(PATH))["peers"] == before["peers"]
        await wait_playing(viewer)  # the creator's picture still reaches the viewer
        assert await watching.text_content() == "1"  # no rejoin: no count change
