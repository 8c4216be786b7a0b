"""The webhooks page in real Chromium against a real `golive serve` and a real local
HTTPS receiver: a creator adds an endpoint (the secret shown once), a follow and a test
event are delivered and listed, a failure while the receiver is down shows with its
error and is delivered after it is back, a redelivery keeps the event id; the page
fits a phone (390x844) and a desktop (1280x800) without overlapping controls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from engine.webhook_rules import FOLLOW
from tests.browser import chromium, chromium_path, open_page, screenshot  # noqa: F401 (fixtures)
from tests.support.http import post
from tests.support.layout import assert_no_overlaps
from tests.support.pages import person
from tests.support.poll import poll
from tests.support.servers import TEST_SECRET
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.browser

SIZES = {"phone": (390, 844), "desktop": (1280, 800)}


@pytest.fixture
async def receiver(tmp_path: Path) -> Any:
    r = Receiver(tmp_path)
    r.prepare()
    yield r
    await r.stop()


async def fits(page: Page) -> None:
    await assert_no_overlaps(page)
    width = await page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert width <= 0, f"the page scrolls sideways by {width} px"


@pytest.mark.parametrize("size", list(SIZES))
async def test_the_webhooks_page_shows_deliveries_and_failures(
        chromium, server_factory: Any, redis_url: str, redis: Any,  # noqa: F811
        receiver: Receiver, size: str) -> None:
    await receiver.start()
    server = server_factory(redis_url=redis_url, env={
        "GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s",
        "GOLIVE_WEBHOOK_ALLOW_PRIVATE": "1", "GOLIVE_WEBHOOK_CA_FILE": str(receiver.ca_file)})
    async with open_page(chromium, server.url, viewport=SIZES[size]) as page:
        me = await person(page, f"hook{size[:2]}")
        await page.goto("/studio")
        await page.get_by_test_id("webhooks-link").click()
        await expect(page).to_have_url(server.url + "/webhooks")
        await expect(page.get_by_test_id("hooks")).to_be_visible()
        await expect(page.get_by_test_id("hooks-empty")).to_be_visible()

        # a URL that would reach a private address is refused when not allowed: here it
        # is allowed (the receiver is on 127.0.0.1), so a plain http URL shows the refusal
        await page.get_by_test_id("hook-url").fill("http://127.0.0.1:9/x")
        await page.get_by_test_id("hook-add").click()
        await expect(page.get_by_test_id("hook-error")).to_contain_text("https")

        await page.get_by_test_id("hook-url").fill(receiver.url)
        await page.get_by_test_id("hook-add").click()
        secret = page.get_by_test_id("hook-secret")
        await expect(secret).to_contain_text("whsec_")
        receiver.secret = (await secret.text_content() or "").strip()
        await expect(page.get_by_test_id("hook")).to_have_count(1)
        await expect(page.get_by_test_id("hook-meta")).to_contain_text(receiver.secret[-4:])

        # a follow over the API, delivered and listed
        _, fan = post(server.url + "/api/register", {
            "username": f"fan{size[:2]}", "display_name": "Fan", "password": "correct-horse-1",
            "birthdate": "1990-01-01"})
        post(server.url + f"/api/users/{me['user']['username']}/follow", {}, fan["token"])
        await poll(lambda: receiver.of_type(FOLLOW), what="the follow delivered")
        assert receiver.got[0].signed
        row = page.get_by_test_id("delivery").first
        await expect(row.get_by_test_id("delivery-status")).to_have_text("delivered",
                                                                         timeout=10_000)
        await fits(page)
        await screenshot(page, f"webhooks-{size}-delivered")

        # the receiver goes down: a test event fails and the failure shows with its error
        await receiver.stop()
        await page.get_by_test_id("hook-test").click()
        failing = page.locator('[data-testid="delivery"][data-status="retrying"]')
        await expect(failing).to_have_count(1, timeout=10_000)
        await expect(failing.get_by_test_id("delivery-status")).to_contain_text("retrying: ")
        await expect(page.get_by_test_id("hook-meta")).to_contain_text("1 failing")
        await fits(page)
        await screenshot(page, f"webhooks-{size}-failing")
        # back up: the retry is delivered, the row turns delivered
        await receiver.start()
        await poll(lambda: receiver.of_type("webhook.test"), timeout=15, what="the retried test")
        await expect(page.locator('[data-testid="delivery"][data-status="retrying"]')
                     ).to_have_count(0, timeout=10_000)

        # a redelivery sends the same event id again: the receiver sees the replay
        first_id = receiver.got[0].event_id
        follow_row = page.locator(f'[data-testid="delivery"][data-event-id="{first_id}"]')
        await follow_row.get_by_test_id("redeliver").click()
        await poll(lambda: len(receiver.of_type(FOLLOW)) == 2, what="the redelivery")
        assert receiver.of_type(FOLLOW)[1].replay

        await page.get_by_test_id("hook-delete").click()
        await expect(page.get_by_test_id("hooks-empty")).to_be_visible()
