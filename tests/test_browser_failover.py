"""A watch page in real Chromium whose node is killed with kill -9: it shows
"Reconnecting…", its socket comes back by itself (to the same URL: the node restarted
there under its id, as a supervisor or systemd would), the page joins the live again
and plays, and the chat shows the lines said meanwhile on another node exactly once
(caught up by the last id it showed)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from media.synthetic import HeadlessCreator
from tests.browser import (  # noqa: F401 (fixtures)
    PageErrors,
    chromium,
    chromium_path,
    open_page,
    screenshot,
)
from tests.support.cluster import NODE_ENV, RedisProcess, register, tab
from tests.support.pages import person, wait_playing
from tests.support.poll import poll
from tests.support.servers import free_port

pytestmark = pytest.mark.browser

# What Chromium logs while the page's node is down.
DOWN = r"WebSocket connection to .* failed"


def start_node(tmp: Path, redis_url: str, name: str, port: int) -> subprocess.Popen[bytes]:
    """`golive serve` as node `name` on a fixed port, once /healthz answers."""
    env = {**os.environ, **NODE_ENV, "GOLIVE_LIVE_GRACE": "60", "GOLIVE_WORKERS": "1",
           "GOLIVE_PORT": str(port), "GOLIVE_NODE_ID": name, "REDIS_URL": redis_url,
           "GOLIVE_DATA_DIR": str(tmp / name)}
    log = (tmp / f"{name}.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "signaling.cli", "serve"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    for _ in range(400):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError("golive serve did not start:\n" + (tmp / f"{name}.log").read_text())


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_a_watch_page_comes_back_after_its_node_is_killed(
        chromium, tmp_path: Path, closers: list[Any]) -> None:  # noqa: F811
    redis = RedisProcess(tmp_path)
    redis.start()
    port_a, port_b = free_port(), free_port()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    a_url, b_url = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    errors = PageErrors()
    try:
        procs["a"] = start_node(tmp_path, redis.url, "node-a", port_a)
        procs["b"] = start_node(tmp_path, redis.url, "node-b", port_b)
        creator = await register(a_url, "cleo")
        cleo = await tab(a_url, creator, closers)
        publisher = HeadlessCreator.synthetic(160, 96, 15)
        closers.append(publisher)
        ack = await cleo.call("live:start", {"title": "stay with me",
                                             "offer": await publisher.offer()})
        assert ack["ok"], ack
        await publisher.accept_answer(ack["answer"])
        sam = await tab(b_url, await register(b_url, "sam"), closers)  # a member on node B
        assert (await sam.call("room:join", {"user_id": creator.id, "media": False}))["ok"]

        async with open_page(chromium, a_url, errors=errors) as page:
            await person(page, "pia")
            await page.goto("/@cleo")
            await wait_playing(page)
            live_id = ack["live"]["live_id"]
            assert (await sam.call("chat:send", {"live_id": live_id, "text": "before"}))["ok"]
            texts = page.get_by_test_id("chat-text")
            await expect(texts).to_have_text(["before"])

            os.kill(procs["a"].pid, signal.SIGKILL)
            procs["a"].wait()
            await expect(page.get_by_test_id("live-status")).to_have_text("Reconnecting…")
            await expect(page.get_by_test_id("live-overlay")).to_be_visible()
            await screenshot(page, "viewer-reconnecting")
            for text in ("while A was down", "still down"):  # said on B meanwhile
                assert (await sam.call("chat:send", {"live_id": live_id, "text": text}))["ok"]

            # node A again, same id and port: it takes its id back and waits for the creator
            procs["a"] = await asyncio.to_thread(start_node, tmp_path, redis.url, "node-a",
                                                 port_a)
            back = await tab(a_url, creator, closers)
            again = HeadlessCreator.synthetic(160, 96, 15)
            closers.append(again)
            offer = await again.offer()

            async def resumed() -> dict[str, Any] | None:
                reply = await back.call("live:start", {"title": "stay with me", "offer": offer})
                return reply if reply["ok"] else None
            reply = await poll(resumed, timeout=20, interval=0.5, what="the creator back")
            assert reply["resumed"] and reply["live"]["live_id"] == live_id
            await again.accept_answer(reply["answer"])

            await wait_playing(page)
            await expect(page.get_by_test_id("live-overlay")).to_be_hidden()
            said = await sam.call("chat:send", {"live_id": live_id, "text": "after"})
            assert said["ok"], said
            # every line once, in order: the gap caught up by id, nothing shown twice
            await expect(texts).to_have_text(["before", "while A was down", "still down",
                                              "after"])
            await expect(page.get_by_test_id("live-ended")).to_be_hidden()
            await screenshot(page, "viewer-back")
            errors.forgive(DOWN)
    finally:
        for proc in procs.values():
            stop(proc)
        redis.stop()

