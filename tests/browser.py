"""Real Chromium for the page tests: Debian's browser driven by playwright's async API.

Use it from a test module:

    from tests.browser import chromium, chromium_path, open_page  # noqa: F401 (fixtures)

    @pytest.mark.browser
    async def test_x(chromium, live_server):
        async with open_page(chromium, live_server.url) as page:
            ...

`playwright install` cannot download browsers here, so the fixture launches
/usr/bin/chromium (GOLIVE_CHROMIUM overrides). Without it the browser tests
skip, except under CI (env CI set), where a missing browser is a failure.
Playwright's expect() waits up to EXPECT_TIMEOUT_MS in these tests.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

CHROMIUM = Path(os.environ.get("GOLIVE_CHROMIUM", "/usr/bin/chromium"))
SHOTS_DIR = Path(os.environ.get("GOLIVE_SHOTS_DIR", "/tmp/golive-shots"))
EXPECT_TIMEOUT_MS = 10_000

# Flags that work headless as root on a 2-core loopback-only host (Debian's chromium).
BASE_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
# The creator and viewer pages need a camera and WebRTC on loopback: a fake
# camera at 30 fps (20 by default), no permission prompt, autoplay without a
# gesture, and loopback ICE candidates, which this host needs to connect at all.
MEDIA_ARGS = (
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream=fps=30",
    "--autoplay-policy=no-user-gesture-required", "--allow-loopback-in-peer-connection",
)
CHROMIUM_ARGS = BASE_ARGS + MEDIA_ARGS

# Chromium logs every 4xx/5xx response as a console error; the pages show
# those errors themselves, and the tests provoke some on purpose.
RESOURCE_STATUS = re.compile(r"^Failed to load resource: the server responded with a status of")


@pytest.fixture
def chromium_path() -> Path:
    """The Chromium binary; skips (fails under CI) when it is not installed."""
    if not CHROMIUM.exists():
        reason = (f"{CHROMIUM} is missing: apt-get install chromium "
                  "(or set GOLIVE_CHROMIUM to a Chromium binary)")
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so the browser tests must run")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
async def chromium(chromium_path: Path) -> AsyncIterator[Browser]:
    """A headless Chromium Browser (playwright.async_api), closed after the test."""
    # Twice playwright's default 5 s: Chromium, the server, Redis and argon2
    # hashing share this host's 2 cores.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium_path), headless=True,
                                           args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class PageErrors:
    """Uncaught exceptions and console errors a page produced."""

    items: list[str] = field(default_factory=list)

    def forgive(self, pattern: str) -> None:
        """Drop the errors matching `pattern` (a regex), provoked on purpose by the test."""
        self.items = [item for item in self.items if not re.search(pattern, item)]

    def assert_none(self) -> None:
        assert not self.items, "the page reported errors:\n" + "\n".join(self.items)


_failures = itertools.count(1)


@asynccontextmanager
async def open_page(browser: Browser, base_url: str, *, viewport: tuple[int, int] = (1280, 800),
                    errors: PageErrors | None = None) -> AsyncIterator[Page]:
    """A page in a fresh browser context (its own cookies and localStorage: one person).

    Uncaught exceptions and console errors (bar HTTP error statuses, which the
    pages show themselves) are collected into `errors` and fail the test when
    the block ends. If the block raises, the page is saved as
    SHOTS_DIR/failed-N.png first.
    """
    errors = errors if errors is not None else PageErrors()
    context = await browser.new_context(
        base_url=base_url, viewport={"width": viewport[0], "height": viewport[1]})
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.items.append(f"pageerror: {exc}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not RESOURCE_STATUS.match(message.text):
            errors.items.append(f"console: {message.text}")

    page.on("console", on_console)
    try:
        yield page
    except BaseException:
        try:
            await screenshot(page, f"failed-{next(_failures)}")
        except Exception:
            pass  # the original failure matters more
        raise
    finally:
        await context.close()
    errors.assert_none()


def shot_path(name: str) -> Path:
    """SHOTS_DIR/name.png, creating the folder."""
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    return SHOTS_DIR / f"{name}.png"


async def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG as SHOTS_DIR/name.png (for people to look at)."""
    path = shot_path(name)
    # From the top: a full-page shot of a scrolled page paints the sticky
    # header mid-page.
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(path), full_page=True)
    return path
