"""The wallet page in real Chromium against a real `golive serve`: a viewer buys coins
with the test provider and sees the balance and history change; a creator sees the
diamonds a gift earned, cashes out (the test provider pays at once) and the audit of
the whole ledger passes afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from playwright.async_api import expect
from redis.asyncio import Redis

from engine.catalog import load_catalog
from engine.ledger import Ledger
from engine.ledger_rules import LedgerRules
from engine.lives import Lives
from tests.browser import chromium, chromium_path, open_page, screenshot  # noqa: F401 (fixtures)
from tests.support.pages import PASSWORD, sign_in, sign_up
from tests.support.servers import TEST_SECRET

pytestmark = pytest.mark.browser


def post(url: str, payload: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


async def test_buy_coins_see_history_earn_and_cash_out(
        chromium, server_factory, redis_url: str, redis: Redis) -> None:  # noqa: F811
    server = server_factory(redis_url=redis_url, env={
        "GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s", "GOLIVE_AUTH_BURST": "200",
        "GOLIVE_CASHOUT_MIN": "1000"})
    creator = post(server.url + "/api/register", {
        "username": "cathy", "display_name": "Cathy", "password": PASSWORD,
        "birthdate": "1991-03-03"})
    async with open_page(chromium, server.url) as page:
        await page.goto("/")
        await sign_up(page, "fanny", "Fanny Fan")
        await expect(page.get_by_test_id("whoami")).to_have_text("@fanny")
        await page.get_by_test_id("wallet-link").click()
        await expect(page).to_have_url(server.url + "/wallet")
        await expect(page.get_by_test_id("coin-balance")).to_have_text("0")
        await expect(page.get_by_test_id("history-empty")).to_be_visible()
        await expect(page.get_by_test_id("provider-note")).to_contain_text("Test payments")
        # buy the 350 package, then the 70 one
        await page.locator('[data-package="coins_350"]').click()
        await expect(page.get_by_test_id("coin-balance")).to_have_text("350")
        await expect(page.get_by_test_id("wallet-notice")).to_have_text("350 coins added.")
        await page.locator('[data-package="coins_70"]').click()
        await expect(page.get_by_test_id("coin-balance")).to_have_text("420")
        items = page.get_by_test_id("history-item")
        await expect(items).to_have_count(2)
        await expect(items.first.get_by_test_id("history-text")).to_have_text("Bought coins")
        await expect(items.first.get_by_test_id("history-amount")).to_have_text("+70 coins")
        await screenshot(page, "wallet-bought")

        # she sends 4 Hand Hearts (400 coins) during the creator's live, through the
        # ledger as gift:send does
        me = json.loads(await page.evaluate("localStorage.getItem('golive.session')"))
        lives = Lives(redis, "browser-test")
        live = await lives.start(creator["user"]["id"], "gifts please")
        ledger = Ledger(redis, load_catalog(), LedgerRules())
        await ledger.send_gift(transfer_id="browser-gift-1", sender_id=me["user"]["id"],
                               creator_id=creator["user"]["id"], live_id=live.live_id,
                               gift_id="hand_hearts", count=4)
        await page.reload()
        await expect(page.get_by_test_id("coin-balance")).to_have_text("20")
        await expect(items).to_have_count(3)
        await expect(items.first.get_by_test_id("history-text")).to_have_text(
            "Sent Hand Hearts x4 to @cathy")
        await expect(items.first.get_by_test_id("history-amount")).to_have_text("-400 coins")
        await expect(items.first.locator("img")).to_have_attribute(
            "src", "/static/gifts/hand_hearts.svg")

    # the creator: 200 diamonds is under the 1,000 threshold; a Lion later is not
    async with open_page(chromium, server.url) as page:
        await page.goto("/")
        await sign_in(page, "cathy", PASSWORD)
        await expect(page.get_by_test_id("whoami")).to_have_text("@cathy")
        await page.goto("/wallet")
        await expect(page.get_by_test_id("diamond-balance")).to_have_text("200")
        await expect(page.get_by_test_id("history-text").first).to_have_text(
            "Hand Hearts x4 from @fanny")
        await page.get_by_test_id("cashout-amount").fill("1000")
        await page.get_by_test_id("cashout-submit").click()
        await expect(page.get_by_test_id("cashout-error")).to_contain_text(
            "You have 200 diamonds")
        await ledger.credit_purchase(payment_id="browser-pay-1", provider="test",
                                     user_id=me["user"]["id"], coins=30_000)
        await ledger.send_gift(transfer_id="browser-gift-2", sender_id=me["user"]["id"],
                               creator_id=creator["user"]["id"], live_id=live.live_id,
                               gift_id="lion", count=1)
        await page.reload()
        await expect(page.get_by_test_id("diamond-balance")).to_have_text("15,199")
        # the Lion's odd coin is Cathy's, carried toward her next diamond
        await expect(page.get_by_test_id("diamond-carry")).to_have_text(
            "+ 1 coin of gifts toward your next diamond (2 make one): nothing is lost to "
            "rounding.")
        await page.get_by_test_id("cashout-amount").fill("5000")
        await page.get_by_test_id("cashout-submit").click()
        await expect(page.get_by_test_id("diamond-paid")).to_have_text("5,000")
        await expect(page.get_by_test_id("diamond-balance")).to_have_text("10,199")
        await expect(page.get_by_test_id("payout-status")).to_have_text(["paid"])
        texts = page.get_by_test_id("history-text")
        await expect(texts.nth(0)).to_have_text("Cash-out paid")
        await expect(texts.nth(1)).to_have_text("Cash-out requested")
        # the payout is money going out, not a green credit
        paid = page.get_by_test_id("history-amount").nth(0)
        await expect(paid).to_have_text("↗ 5,000 diamonds paid out")
        await expect(paid).not_to_have_class(re.compile(r"\bplus\b"))
        await expect(paid).to_have_class(re.compile(r"\bout\b"))
        await expect(page.get_by_test_id("history-amount").nth(1)).to_have_text(
            "-5,000 diamonds")
        await screenshot(page, "wallet-creator")

    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "signaling.cli", "ledger", "audit"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "REDIS_URL": redis_url})
    assert done.returncode == 0, done.stdout + done.stderr
