"""The creator's uplink in real Chromium against a real `golive serve`: the studio's
badge from the server's `live:uplink` push, at phone and desktop size."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.browser import (  # noqa: F401 (fixtures)
    CHROMIUM_ARGS,
    EXPECT_TIMEOUT_MS,
    chromium,
    chromium_path,
    open_page,
    screenshot,
)
from tests.support import netns
from tests.support.layout import INTERACTIVE, assert_in_viewport, assert_no_overlaps, within
from tests.support.pages import person, studio_go_live
from tests.support.servers import TEST_SECRET

pytestmark = pytest.mark.browser

BADGE = re.compile(r"^Uplink: (good|fair|poor) · \d+(\.\d)? (Mbps|kbps) · \d+p\d+$")


@pytest.mark.parametrize("viewport", [(390, 844), (1280, 800)], ids=["phone", "desktop"])
async def test_the_studio_shows_the_uplink_the_server_measures(
        chromium, live_server, viewport: tuple[int, int]) -> None:  # noqa: F811
    async with open_page(chromium, live_server.url, viewport=viewport) as studio:
        await person(studio, "alice")
        badge = studio.get_by_test_id("uplink-badge")
        await studio.goto("/studio")
        await expect(badge).to_be_hidden()  # nothing measured before going LIVE
        await studio_go_live(studio, "Uplink check")
        # the first push is ~4 s after the answer (the first window starts at the first
        # 2 s pass); Chromium's fake camera sends 30 fps from the first second
        await expect(badge).to_have_text(BADGE, timeout=15_000)
        await expect(badge).to_have_attribute("data-quality", re.compile("good|fair|poor"))
        text = await badge.text_content()
        assert text is not None and re.search(r" · \d+p(2\d|3\d)$", text), text  # ~30 fps
        # over the preview, inside it, and over no control of the page
        preview = await studio.get_by_test_id("preview-frame").bounding_box()
        box = await badge.bounding_box()
        assert preview is not None and box is not None
        assert preview["x"] <= box["x"] <= preview["x"] + preview["width"] - box["width"]
        assert preview["y"] <= box["y"] <= preview["y"] + preview["height"] - box["height"]
        await assert_no_overlaps(studio, extra=("uplink-badge", "studio-live-badge",
                                                "elapsed-pill", "viewers-pill"),
                                 selector=within(".studio", INTERACTIVE))
        await studio.evaluate("window.scrollTo(0, 0)")
        await assert_in_viewport(studio, "uplink-badge")
        await screenshot(studio, f"studio-uplink-{viewport[0]}")

        await studio.get_by_test_id("end-live").click()
        await expect(studio.get_by_test_id("studio-status")).to_have_text("Ended")
        await expect(badge).to_be_hidden()


# ---- a real lossy uplink ----------------------------------------------------------------

UPLINK_NS = 77  # 10.200.77.0/30; test_abr_netem uses 201
# Not "golive-": test_abr_netem deletes every namespace so named when it starts.
UPLINK_PREFIX = "golive_uplink-"

# Every RTCPeerConnection the page makes, for the test to read its stats.
KEEP_PCS = """(() => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__pcs.push(this); }
  };
})();"""

# The studio's video sender, as Chromium itself reports it.
OUTBOUND = """async () => {
  const pc = (window.__pcs || []).filter((p) => p.connectionState === 'connected').at(-1);
  if (!pc) return null;
  let out = null; let pair = null; let remote = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') out = s;
    if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
    if (s.type === 'remote-inbound-rtp' && s.kind === 'video') remote = s;
  });
  return out && { t: out.timestamp, bytes: out.bytesSent, target: out.targetBitrate ?? 0,
    fps: out.framesPerSecond ?? 0, height: out.frameHeight ?? 0,
    limit: out.qualityLimitationReason, nacks: out.nackCount ?? 0,
    available: pair?.availableOutgoingBitrate ?? 0, lost: remote?.fractionLost ?? 0 };
}"""


@pytest.fixture
def uplink_ns() -> Iterator[netns.Namespace]:
    reason = netns.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with netns.Namespace(UPLINK_NS, prefix=UPLINK_PREFIX) as ns:
        yield ns


@asynccontextmanager
async def chromium_in(ns: netns.Namespace, binary: Path, tmp_path: Path,
                      url: str) -> AsyncIterator[Browser]:
    """Chromium running inside the namespace (playwright drives it over its pipe, which
    `ip netns exec` hands down), allowed camera access on the plain-http `url`."""
    wrapper = tmp_path / "chromium-in-namespace"
    wrapper.write_text(f'#!/bin/sh\nexec {" ".join(ns.exec_args(str(binary)))} "$@"\n')
    wrapper.chmod(0o755)
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(wrapper), headless=True,
            args=[*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={url}"])
        try:
            yield browser
        finally:
            await browser.close()


class Sender:
    """Chromium's video sender in the studio, sampled once a second: its send rate, its
    own target (its bandwidth estimate's share for video) and the studio's badge."""

    def __init__(self, studio: Page) -> None:
        self.studio = studio
        self.badge = studio.get_by_test_id("uplink-badge")
        self.t0 = time.monotonic()
        self.rows: list[dict[str, Any]] = []
        self._prev: dict[str, Any] | None = None

    async def sample(self, phase: str) -> dict[str, Any] | None:
        now = await self.studio.evaluate(OUTBOUND)
        prev, self._prev = self._prev, now
        if now is None or prev is None or now["t"] <= prev["t"]:
            return None
        row = {"s": round(time.monotonic() - self.t0, 1), "phase": phase,
               "send_kbps": round((now["bytes"] - prev["bytes"]) * 8 / (now["t"] - prev["t"])),
               "target_kbps": round(now["target"] / 1000), "fps": now["fps"],
               "height": now["height"], "rr_lost": round(now["lost"], 3),
               "badge": await self.badge.text_content(),
               "why": await self.badge.get_attribute("title")}
        self.rows.append(row)
        print(row)
        return row

    async def until(self, phase: str, done: Any, timeout: float) -> dict[str, Any]:
        """Sample every second until done(row); the row, or a failure with the series."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            row = await self.sample(phase)
            if row is not None and done(row):
                return row
        raise AssertionError(f"{phase}: not reached in {timeout} s; samples: {self.rows}")


async def test_a_creator_on_a_lossy_uplink_sends_less_and_recovers(
        chromium_path, uplink_ns, server_factory, redis_url, redis,  # noqa: F811
        tmp_path: Path) -> None:
    """Chromium in a network namespace goes LIVE from the studio; golive's answer takes
    transport-cc (media/twcc.py). Its uplink is then cut to 250 kbit/s with 10% loss
    (tbf and iptables): Chromium's own target bitrate falls to under half, and the
    badge says poor because of the loss; lifted, the target climbs back past twice
    its lowest and the badge says good. The figures are printed, not asserted."""
    server = server_factory(redis_url=redis_url, env={
        "GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s", "GOLIVE_AUTH_BURST": "200",
        "GOLIVE_HOST": "0.0.0.0", "GOLIVE_ICE_ADDRESSES": uplink_ns.root_addr})
    url = server.url.replace("127.0.0.1", uplink_ns.root_addr)
    async with (chromium_in(uplink_ns, chromium_path, tmp_path, url) as browser,
                open_page(browser, url) as studio):
        await studio.context.add_init_script(KEEP_PCS)
        await person(studio, "alice")
        await studio_go_live(studio, "On a train")
        sender = Sender(studio)
        await sender.until("clean", lambda r: r["s"] >= 10
                           and r["badge"].startswith("Uplink: good"), timeout=45)
        before = max(r["target_kbps"] for r in sender.rows[-4:])
        clean_s = sender.rows[-1]["s"]

        uplink_ns.shape_up(netns.Shaping(rate_bps=250_000, loss=0.10))
        await sender.until("loss", lambda r: r["target_kbps"] < before / 2, timeout=40)
        lossy = await sender.until("loss", lambda r: r["badge"].startswith("Uplink: poor")
                                   and "loss" in (r["why"] or ""), timeout=20)
        low = min(r["target_kbps"] for r in sender.rows if r["phase"] == "loss")

        uplink_ns.shape_up(netns.Shaping())
        healed = await sender.until(
            "clean again", lambda r: r["target_kbps"] >= max(2 * low, 300)
            and r["badge"].startswith("Uplink: good"), timeout=60)
        lifted = next(r["s"] for r in sender.rows if r["phase"] == "clean again")
        print(f"figures: target {sender.rows[0]['target_kbps']} kbit/s at "
              f"{sender.rows[0]['s']} s, {before} kbit/s clean after {clean_s} s, "
              f"{low} kbit/s at the lowest on 250 kbit/s with 10% loss, "
              f"{healed['target_kbps']} kbit/s "
              f"{healed['s'] - lifted + 1:.0f} s after it was lifted; "
              f"badge under loss: {lossy['badge']!r} ({lossy['why']})")
