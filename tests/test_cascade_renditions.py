"""The cascade carries every rendition a remote viewer takes: two `golive serve` processes
on one real redis-server, a creator on A (a real headless aiortc creator, 640x360, so
the default ladder's "720" and "360" are 640x360 and "180" is 320x180), real aiortc
viewers decoding frames on A and on B.

A viewer on B pinned to 180 decodes 320x180 frames while A's own viewer watches 720;
B's relay subscribes to 180 alone once its first rendition lingered out; B's viewer
re-pinned to 360 moves at a keyframe (one size change, frames go on, the move pushed to
its page); A stops encoding 180 once B let go of it (no viewer takes it any more)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.cluster import Tab, nodes_on_one_redis, register
from tests.support.peers import go_live, sio_connect
from tests.support.poll import poll
from tests.support.servers import ServerProcess
from tests.support.viewer import DecodingViewer


class ViewerTab(Tab):
    PUSHES = (*Tab.PUSHES, "room:rendition")


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    with nodes_on_one_redis(tmp_path, ("node-a", "node-b")) as (_, servers):
        yield servers


async def metrics(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
        return await resp.text()


def sample(text: str, name: str, labels: str) -> float:
    """One sample of a /metrics text (0 when absent)."""
    found = re.search(re.escape(f"{name}{{{labels}}}") + r" ([0-9.e+-]+)", text)
    return float(found.group(1)) if found else 0.0


async def taking(url: str, side: str, rendition: str) -> float:
    return sample(await metrics(url), "golive_relay_renditions",
                  f'rendition="{rendition}",side="{side}"')


async def encoded(url: str, rendition: str) -> float:
    return sample(await metrics(url), "golive_rendition_frames_total",
                  f'rendition="{rendition}"')


async def viewer_tab(url: str, name: str, closers: list[Any]) -> ViewerTab:
    user = await register(url, name)
    sio = await sio_connect(url, user.token)
    closers.append(sio)
    return ViewerTab(sio, user)


async def watch(peer: Tab, creator_id: str, quality: str, closers: list[Any],
                sizes: list[tuple[int, int]]) -> tuple[dict[str, Any], DecodingViewer]:
    ack = await peer.call("room:join", {"user_id": creator_id, "quality": quality})
    assert ack["ok"] and ack["offer"], ack
    viewer = DecodingViewer(peer.user.username,
                            on_video=lambda frame: sizes.append((frame.width, frame.height)))
    closers.append(viewer)
    answer = await viewer.answer(ack["offer"])
    assert (await peer.call("rtc:answer", {"live_id": ack["live"]["live_id"],
                                           "sdp": answer}))["ok"]
    return ack, viewer


async def test_an_edge_viewer_takes_any_rendition_and_the_origin_encodes_only_what_is_taken(
        two_nodes: list[ServerProcess], closers: list[Any]) -> None:
    a, b = two_nodes
    carol = await viewer_tab(a.url, "carol", closers)
    onair = await go_live(carol, closers, "ladder", size=(640, 360), fps=15)

    # A's own viewer on auto: the top rendition, 640x360
    ann_sizes: list[tuple[int, int]] = []
    ann = await viewer_tab(a.url, "ann", closers)
    _, ann_view = await watch(ann, carol.user.id, "auto", closers, ann_sizes)
    # B's viewer pinned to 180: B's edge room has A's ladder and its relay carries 180
    dan_sizes: list[tuple[int, int]] = []
    dan = await viewer_tab(b.url, "dan", closers)
    ack, dan_view = await watch(dan, carol.user.id, "180", closers, dan_sizes)
    assert ack["renditions"] == ["720", "360", "180"], ack
    assert (ack["quality"], ack["rendition"]) == ("180", "180"), ack
    await poll(lambda: len(dan_sizes) >= 10 and ann_view.video_frames >= 10, timeout=20,
               what="decoded video on A and B")
    assert set(dan_sizes) == {(320, 180)}, set(dan_sizes)
    assert ann_sizes[-1] == (640, 360)
    assert await taking(a.url, "origin", "180") == 1

    # B took the top rendition only while it had no viewer of its own: that lingers out
    async def only_180() -> bool:
        return (await taking(a.url, "origin", "720") == 0
                and await taking(b.url, "edge", "180") == 1)

    await poll(only_180, timeout=15, what="B's relay subscribed to 180 alone")
    assert await encoded(a.url, "180") > 0

    # B's viewer re-pinned to 360: it moves at 360's keyframe and keeps decoding
    moved = await dan.call("room:quality", {"live_id": onair.live_id, "quality": "360"})
    assert moved["ok"] and moved["quality"] == "360", moved
    await poll(lambda: dan_sizes[-1] == (640, 360), timeout=10, what="B's viewer at 360")
    at_move = len(dan_sizes)
    await poll(lambda: len(dan_sizes) >= at_move + 20, timeout=10,
               what="B's viewer decoding on after its move")
    changes = [i for i in range(1, len(dan_sizes)) if dan_sizes[i] != dan_sizes[i - 1]]
    assert len(changes) == 1, f"one move, never back: {changes}"
    assert not dan_view.ended and ann_view.video_frames > 20
    await poll(lambda: dan.got("room:rendition"), timeout=5, what="the move pushed on B")
    assert dan.got("room:rendition")[-1] == {"live_id": onair.live_id, "quality": "360",
                                             "rendition": "360", "height": 360}

    # B let go of 180 (after its linger): A encodes it no more, 720 and 360 go on
    async def released() -> bool:
        return await taking(a.url, "origin", "180") == 0

    await poll(released, timeout=15, what="B unsubscribed from 180")
    low, mid = await encoded(a.url, "180"), await encoded(a.url, "360")

    async def more_360() -> bool:
        return await encoded(a.url, "360") >= mid + 30

    await poll(more_360, timeout=15, what="360 encoded on (for B)")
    assert await encoded(a.url, "180") <= low + 1, "180 still encoded with nobody taking it"
    assert await taking(a.url, "origin", "360") == 1 and ann_sizes[-1] == (640, 360)
