"""Issue 18's Done-when on loopback, by hand: a Chromium creator live at 1280x720 from the
studio, a viewer on Auto and a viewer pinned at 180p (the rung a shaped viewer lands on),
so the server encodes 720p and 180p. Prints each viewer's fps and height (getStats), the
creator's, and the server process's CPU; asserts only that each viewer gets its height.

    GOLIVE_LADDER_PROBE=1 .venv/bin/python -m pytest tests/test_browser_ladder_720.py -s

Measured 2026-12-06 on this 2-core host (load average 6), 20 s once the creator's
Chromium sent 720p (its bandwidth estimate takes 11-17 s to get there): the Auto viewer
720p at 30 fps (min 29; 29.7 decoded a second), the 180p viewer 30 fps, no freezes,
the server 0.31 cores; with the encode path before media/ladder_encoder.py 30 fps (min
27 and 25; 29.2 decoded a second), 0.34 cores. At load 13-19 (earlier runs) the
creator's Chromium was the limit: it sent 180-360p held by its bandwidth estimate, or,
told to keep its resolution, 720p at 3 fps, with the server at 0.11-0.15 cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time

import pytest

from bench.netns_chromium import PC_RECORDER, inbound_video, outbound_video, sending
from bench.processes import cpu_seconds
from tests.browser import chromium, chromium_path, open_page  # noqa: F401 (fixtures)
from tests.support.pages import person, studio_go_live, wait_playing

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(os.environ.get("GOLIVE_LADDER_PROBE") != "1",
                                 reason="a measurement, by hand: GOLIVE_LADDER_PROBE=1")]

WARM_UP_S = 60  # Chromium's uplink estimate climbs to 720p in 11-17 s here
SECONDS = 20


async def test_a_720p_creator_an_auto_viewer_and_a_180p_viewer(chromium, live_server):  # noqa: F811
    async with (open_page(chromium, live_server.url) as studio,
                open_page(chromium, live_server.url) as auto,
                open_page(chromium, live_server.url) as low):
        for page in (studio, auto, low):
            await page.context.add_init_script(PC_RECORDER)
        await person(studio, "alice")
        await person(auto, "bob")
        await person(low, "carol")
        await studio_go_live(studio, "Ladder at 720p")
        for page in (auto, low):
            await page.goto("/@alice")
            await wait_playing(page)
        await low.get_by_test_id("live-quality").select_option("180")
        warm = time.monotonic()
        await sending(studio, 720, WARM_UP_S)
        pid = live_server.proc.pid
        cpu, started = cpu_seconds(pid), time.monotonic()
        first = {"auto": await inbound_video(auto), "low": await inbound_video(low)}
        samples = []
        while time.monotonic() - started < SECONDS:
            await asyncio.sleep(1)
            samples.append({"auto": await inbound_video(auto), "low": await inbound_video(low),
                            "creator": await outbound_video(studio)})
        wall = time.monotonic() - started
        out: dict = {"warm_up_s": round(started - warm, 1), "seconds": round(wall, 1),
                     "server_cores": round((cpu_seconds(pid) - cpu) / wall, 3),
                     "load": os.getloadavg()}
        for role in ("auto", "low"):
            fps = [s[role]["framesPerSecond"] for s in samples]
            out[role] = {"fps_median": statistics.median(fps), "fps_min": min(fps),
                         "heights": sorted({s[role]["frameHeight"] for s in samples}),
                         "decoded_per_s": round((samples[-1][role]["framesDecoded"]
                                                 - first[role]["framesDecoded"]) / wall, 1),
                         "freezes": samples[-1][role]["freezeCount"] - first[role]["freezeCount"]}
        sent = [s["creator"] for s in samples if s["creator"]]
        out["creator"] = {"heights": sorted({s["frameHeight"] for s in sent}),
                          "fps_median": statistics.median(s["framesPerSecond"] for s in sent),
                          "limited_by": sorted({s["qualityLimitationReason"] for s in sent})}
        print("LADDER 720", json.dumps(out))
        assert out["low"]["heights"] == [180]
        if out["creator"]["heights"] == [720]:
            assert out["auto"]["heights"][-1] == 720
