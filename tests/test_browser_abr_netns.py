"""Two Chromium viewers of one live on "auto": one over loopback, one inside a network
namespace whose downlink is limited to 300 kbit/s with 2% loss (tests/support/netns.py:
tbf and iptables, this kernel has no netem). The server's ABR rule moves the shaped one
to a lower rendition, its picture follows and keeps playing, the unlimited one keeps the
top; the limit lifted, the shaped one climbs back.

The creator is bench.creator's synthetic 640x360 at 30 fps on the ladder 360:600,180:100,
with 32 kbit/s Opus (tests/media/test_abr_netem.py says why not 720p on 2 cores, and why
that rung and audio: with 180:150 and 64 kbit/s Opus the link stayed full). Chromium runs in the
namespace through bench/netns_chromium.py's wrapper (`ip netns exec` around the binary
playwright launches), and loads the server at the root end of the veth pair.
The settle times and the getStats freeze counters are printed as figures, not asserted
as times (`python -m bench.chromium_abr` measures them over rounds).

What the test checks, and xfails naming when unmet: smooth play at 180 on the thin link,
the issue's >= 25 fps with no Chromium freeze (its freezeCount, stricter than the issue's
500 ms) over 5 s. Measured by `python -m bench.chromium_abr --rounds 2` after the
smoothness work (180:100, 32 kbit/s Opus, the rule no longer stepping up on reports our
resends made clean): 26.3 and 28.6 fps at 180 once settled, as the unlimited viewer's 27.2
and 28.8; before it, 4.4 and 14.7 fps (2 runs of this test). A loaded host can miss the
goal for both viewers alike.
Fixed on 2026-12-06 from this test's findings (media/viewer.py): Chromium's REMB,
sent unasked, reached the rule (its estimate follows what arrives, so every step up
read as congestion, and a loaded host's dips moved the unlimited viewer with no loss);
Chromium's receiver reports, several a second on a lossy link and alternating 0 and
0.8-0.96 lost, restarted the rule's 2 s of congestion at every 0. Now: moved to 180
after 2.9-6.1 s, back at 360 8.7-9.0 s after the lift, the unlimited viewer never moved.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from bench.netns_chromium import PC_RECORDER, VIDEO_HEIGHT, inbound_video, wrapper
from tests.browser import CHROMIUM_ARGS, EXPECT_TIMEOUT_MS, chromium_path  # noqa: F401
from tests.support import netns
from tests.support.pages import page_register, sign_in_as, wait_playing
from tests.support.poll import poll
from tests.support.servers import REPO, TEST_SECRET

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(netns.unavailable_reason() is not None,
                                 reason=str(netns.unavailable_reason()))]

INDEX = 230  # 10.200.230.0/30: test_abr_netem has 201, `golive bench abr` 210-217
# not golive-230: a clean_stale() of another run (an older copy of netns.py in another
# checkout) deletes every golive-* namespace, and did so mid-test
NAME = "glchrome-230"
LADDER = "360:600,180:100"  # and 32 kbit/s Opus: bench/chromium_abr.py says why
THIN = netns.Shaping(rate_bps=300_000, loss=0.02)
# the video section's feedback and extensions in the page's answer (its local description)
ANSWER_FEEDBACK = """() => {
  const pc = window.__goliveTestPcs.find(p => p.localDescription);
  const video = pc.localDescription.sdp.split('m=video')[1].split('m=')[0];
  return video.split('\\r\\n').filter(l => /^a=(rtcp-fb|extmap)/.test(l));
}"""
MOVE = re.compile(r"viewer (\S+) moves to (\S+) \(")


@pytest.fixture
def namespace():
    with netns.Namespace(INDEX, NAME) as ns:  # open() deletes a stale one of that name
        yield ns


@pytest.fixture
def abr_server(server_factory, redis_url, redis, namespace):
    """`golive serve` on every interface (the namespace reaches it at the veth pair's root
    end), gathering ICE on loopback and that address, with the 360/180 ladder."""
    return server_factory(redis_url=redis_url, env={
        "GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s", "GOLIVE_AUTH_BURST": "200",
        "GOLIVE_HOST": "0.0.0.0", "GOLIVE_RENDITIONS": LADDER, "GOLIVE_LOG_LEVEL": "info",
        "GOLIVE_ICE_ADDRESSES": f"127.0.0.1,{namespace.root_addr}",
        "GOLIVE_AUDIO_BITRATE": "32000"})


@pytest.fixture
def creator(abr_server, tmp_path):
    """bench.creator live at 640x360, 30 fps, as a new account; its username."""
    body = json.dumps({"username": "maker", "display_name": "Maker",
                       "password": "correct-horse-1", "birthdate": "1990-01-01"}).encode()
    request = urllib.request.Request(abr_server.url + "/api/register", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        token = json.loads(resp.read())["token"]
    log = (tmp_path / "creator.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.creator", "--url", abr_server.url, "--size", "640x360",
         "--fps", "30", "--title", "shaped"], cwd=REPO, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=log, env={**os.environ, "GOLIVE_BENCH_TOKEN": token})
    try:
        line = proc.stdout.readline()  # {"event": "ready"...} once live, or its end
        assert json.loads(line or b"{}").get("event") == "ready", (
            f"the creator did not go live: {line!r}\n{(tmp_path / 'creator.log').read_text()}")
        yield "maker"
    finally:
        proc.stdin.close()  # its stop: the live ends
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def viewer_page(browser, base_url: str, username: str):
    """A signed-in page whose peer connections are kept for getStats; (page, user id)."""
    context = await browser.new_context(base_url=base_url)
    await context.add_init_script(PC_RECORDER)
    page = await context.new_page()
    session = await page_register(page, username)
    await sign_in_as(page, session)
    return page, session["user"]["id"]


def moves(log: str, user_id: str) -> list[str]:
    """The renditions the server's ABR rule moved `user_id`'s sockets to, in order (its
    "socket connected" and "viewer SID moves to R (" info lines)."""
    sids, out = set(), []
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") == "socket connected" and record.get("user") == user_id:
            sids.add(record.get("sid"))
        found = MOVE.search(str(record.get("msg", "")))
        if found and found[1] in sids:
            out.append(found[2])
    return out


async def decoding(page, frames: int):
    """True once the page's inbound video decoded more than `frames` frames."""
    stats = await inbound_video(page)
    return stats is not None and stats["framesDecoded"] > frames


async def settled(condition, timeout: float) -> bool:
    """True once `condition` holds, False after `timeout` s (an unmet goal is recorded,
    not raised: see the xfail at the test's end)."""
    try:
        await poll(condition, timeout=timeout)
    except AssertionError:
        return False
    return True


async def test_a_shaped_chromium_viewer_goes_lower_keeps_playing_and_climbs_back(
        chromium_path: Path, abr_server, creator, namespace, tmp_path) -> None:  # noqa: F811
    """Asserted: the server moves the shaped viewer to 180 on its own reports, its picture
    and picker follow, and it keeps decoding. Checked, and an xfail naming what is unmet
    (the module's docstring has the figures): smooth play at 180 on the thin link (>= 25
    fps, no freeze), the unlimited viewer never moved, the climb back to 360 within 20 s
    of the lift."""
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    inside_url = abr_server.url.replace("127.0.0.1", namespace.root_addr)
    # http://10.200.x.1 is not a secure context by itself, loopback is
    args = [*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={inside_url}"]
    unmet = []
    async with async_playwright() as pw:
        wide_browser = await pw.chromium.launch(executable_path=str(chromium_path),
                                                headless=True, args=list(CHROMIUM_ARGS))
        thin_browser = await pw.chromium.launch(
            executable_path=str(wrapper(namespace, tmp_path, chromium_path)), headless=True,
            args=args)
        try:
            wide, wide_id = await viewer_page(wide_browser, abr_server.url, "wide")
            thin, thin_id = await viewer_page(thin_browser, inside_url, "thin")
            for page in (wide, thin):
                await page.goto(f"/@{creator}")
                await wait_playing(page)
                await poll(lambda p=page: p.evaluate(f"({VIDEO_HEIGHT})() === 360"), timeout=10,
                           what="the top rung (360) on both pictures")
            # the shaped page reached the server by the veth pair only: it is in the namespace
            assert (await inbound_video(thin))["connectionState"] == "connected"
            before = len(moves(abr_server.log(), wide_id))
            feedback = await thin.evaluate(ANSWER_FEEDBACK)
            print(f"\nthe shaped page's answer (video): {feedback}")

            namespace.shape(THIN)
            shaped_at = time.monotonic()
            await poll(lambda: "180" in moves(abr_server.log(), thin_id), timeout=20,
                       what="the server moving the shaped viewer to 180")
            moved_s = time.monotonic() - shaped_at
            await poll(lambda: thin.evaluate(f"({VIDEO_HEIGHT})() === 180"), timeout=20,
                       what="the shaped picture at 180 lines")
            shown_s = time.monotonic() - shaped_at
            picker = thin.get_by_test_id("live-quality")
            await expect(picker.locator("option").first).to_have_text("Auto · 180p")
            await expect(picker).to_have_value("auto")

            # it keeps playing on the thin link: decoded frames advance at 180, measured
            # from 2 s after the picture got there (the queue the top rung filled drains,
            # as bench abr's "settled" span)
            await poll(lambda: time.monotonic() > shaped_at + shown_s + 2, timeout=10)
            at_180, t_180 = await inbound_video(thin), time.monotonic()
            await poll(lambda: decoding(thin, at_180["framesDecoded"]), timeout=20,
                       what="the shaped viewer decoding more frames at 180")
            await poll(lambda: time.monotonic() > t_180 + 5, timeout=10)  # a 5 s window
            on_thin = await inbound_video(thin)
            assert on_thin["frameHeight"] == 180
            fps = (on_thin["framesDecoded"] - at_180["framesDecoded"]) / (time.monotonic() - t_180)
            print(f"\nshaped 300 kbit/s 2%: server moved it after {moved_s:.2f} s, picture at "
                  f"180 after {shown_s:.2f} s; then {fps:.1f} fps decoded (getStats "
                  f"framesPerSecond {on_thin['framesPerSecond']}), freezes "
                  f"{on_thin['freezeCount'] - at_180['freezeCount']} for "
                  f"{on_thin['totalFreezesDuration'] - at_180['totalFreezesDuration']:.2f} s, "
                  f"packets lost {on_thin['packetsLost']}, keyframes {on_thin['keyFramesDecoded']}")
            froze = on_thin["freezeCount"] - at_180["freezeCount"]
            if fps < 25 or froze:
                unmet.append(f"the shaped viewer decoded {fps:.1f} fps at 180 (>= 25 asked) "
                             f"with {froze} freezes (none asked), load average "
                             f"{os.getloadavg()[0]:.1f}")

            namespace.unshape()
            lifted_at = time.monotonic()
            if await settled(lambda: thin.evaluate(f"({VIDEO_HEIGHT})() === 360"), 20):
                print(f"lifted: picture back at 360 after {time.monotonic() - lifted_at:.2f} s")
                await expect(picker.locator("option").first).to_have_text("Auto · 360p")
                back = await inbound_video(thin)
                await poll(lambda: decoding(thin, back["framesDecoded"] + 30), timeout=10,
                           what="the viewer decoding at 360 again")
            else:
                unmet.append("the shaped viewer was not back at 360 20 s after the lift")
            wide_moves = moves(abr_server.log(), wide_id)
            wide_stats = await inbound_video(wide)
            print(f"server moves: shaped {moves(abr_server.log(), thin_id)}, unlimited "
                  f"{wide_moves} ({before} before the shaping); unlimited viewer: "
                  f"{wide_stats['framesPerSecond']} fps, freezes {wide_stats['freezeCount']} "
                  f"for {wide_stats['totalFreezesDuration']:.2f} s")
            if wide_moves:
                unmet.append(f"the unlimited viewer was moved too: {wide_moves}")
        finally:
            await thin_browser.close()
            await wide_browser.close()
    if unmet:
        pytest.xfail("; ".join(unmet))
