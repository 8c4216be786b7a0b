"""Replays through the real server: a creator records a LIVE (live:start record), a
viewer chats and sends a Rose, the live ends; the replay's file decodes with the Rose's
badge after the gift, its chat has the lines with their offsets, the routes answer as
watching does (blocks, bans, signed-in-only), Range requests work, its creator deletes
it; the caps and the expiry as plain rules and as a real sweep."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from engine.catalog import load_catalog
from engine.errors import DomainError
from engine.gift_room import GiftMoment
from engine.replays import (
    Replay,
    chat_for_replay,
    check_may_watch_replay,
    due,
    expires_at,
    media_time,
    over_total_cap,
)
from media.ice import restrict_host_addresses
from media.overlay import overlay_layout
from media.synthetic import HeadlessCreator
from signaling.gifts import gift_overlay, hex_color
from signaling.replays import ABANDONED_AFTER_S, REPLAYS, replay_dir
from tests.support.chat import member
from tests.support.cluster import register as register_at
from tests.support.peers import sio_connect
from tests.support.poll import poll
from tests.support.servers import TEST_SECRET

# ---- rules --------------------------------------------------------------------------


def test_expiry_and_the_creators_total_cap() -> None:
    assert expires_at(1000.0, 30) == 1000.0 + 30 * 86400
    with pytest.raises(DomainError):
        expires_at(1000.0, 0)
    assert due([("a", 10.0), ("b", 20.0), ("c", 30.0)], 20.0) == ["a", "b"]
    replays = [("old", 1.0, 400), ("mid", 2.0, 400), ("new", 3.0, 400)]
    assert over_total_cap(replays, 0) == []
    assert over_total_cap(replays, 1200) == []
    assert over_total_cap(replays, 900) == ["old"]
    assert over_total_cap(replays, 100) == ["mid", "old"]  # the newest stays, alone


def test_chat_for_a_replay_has_offsets_and_no_deleted_lines() -> None:
    user = {"id": "u", "username": "bob", "display_name": "Bob"}
    items = [
        {"id": "1-0", "kind": "system", "at": 99.0, "text": "Bob joined", "user": user,
         "event": "joined"},
        {"id": "2-0", "kind": "message", "at": 101.5, "text": "hello", "user": user},
        {"id": "3-0", "kind": "message", "at": 102.0, "text": "rude", "user": user},
        {"id": "4-0", "kind": "delete", "at": 102.5, "target": "3-0"},
    ]
    lines = chat_for_replay(items, [(100.0, 0.0), (102.0, 2.0)])
    assert [(line["t"], line["text"]) for line in lines] == [(0.0, "Bob joined"),
                                                             (1.5, "hello")]
    assert lines[1]["user"] == {"username": "bob", "display_name": "Bob"}


def test_chat_times_follow_the_video_across_a_creator_away() -> None:
    # keyframes every 2 s; the creator was away from wall 104 to 110 (the video stood
    # at 4.0 s), then the video went on from 4.0
    clock = [(100.0, 0.0), (102.0, 2.0), (104.0, 4.0), (110.0, 4.0), (112.0, 6.0)]
    assert media_time(clock, 99.0) == 0.0
    assert media_time(clock, 101.0) == 1.0
    assert media_time(clock, 107.0) == 4.0  # said while away: shown as the video resumes
    assert media_time(clock, 111.0) == 5.0
    assert media_time(clock, 120.0) == 14.0  # after the last keyframe, with the wall
    assert media_time([], 5.0) == 0.0


def test_a_signed_in_only_replay_refuses_visitors() -> None:
    replay = Replay("a" * 16, "c", "t", 1.0, 2.0, 1.0, 10, "video.webm", True, False, 9.0)
    with pytest.raises(DomainError) as refused:
        check_may_watch_replay(replay, anonymous=True)
    assert refused.value.code == "unauthorized"
    check_may_watch_replay(replay, anonymous=False)


# ---- a real recorded live ------------------------------------------------------------


def rose_badge_in(frame: av.VideoFrame, username: str) -> bool:
    """The Rose's badge colour in its left padding, where the layout puts it."""
    rose = load_catalog().gift("rose")
    icon = rose.icon_png.read_bytes() if rose.icon_png.exists() else None
    overlay = gift_overlay(rose, username, GiftMoment("", "", 1, 0, True), icon)
    [(_, rect)] = overlay_layout([overlay], frame.width, frame.height)
    rgb = frame.to_ndarray(format="rgb24").astype(int)
    pad = 3 * rect.scale
    patch = rgb[rect.y + 2: rect.y + rect.height - 2, rect.x + 2: rect.x + pad - 1]
    return bool(np.all(np.abs(patch.reshape(-1, 3).mean(axis=0) - hex_color(rose.color)) < 30))


def decoded(path: Path, *, cut_off: bool = False) -> list[tuple[float, av.VideoFrame]]:
    """(seconds, frame) of every frame PyAV decodes; `cut_off`: the file may end (or
    still be) mid-write, so a broken or missing tail ends the list instead of raising."""
    frames: list[tuple[float, av.VideoFrame]] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                frames.append((float(frame.pts * stream.time_base), frame))
    except (av.FFmpegError, IndexError):
        if not cut_off:
            raise
    return frames


async def record_a_live(client: Any, closers: list[Any], *, size: tuple[int, int] = (640, 360),
                        signed_in_only: bool = False) -> dict[str, Any]:
    """ann records a live; bob joins, chats, sends a Rose; ann ends it. Returns the
    names, the live id and how many frames were recorded before the gift was sent."""
    feature = client.app[REPLAYS]
    ann = await member(client, "ann", closers)
    bob = await member(client, "bob", closers)
    creator = HeadlessCreator.synthetic(*size, 30)
    closers.append(creator)
    ack = await ann.call("live:start", {"title": "recorded", "offer": await creator.offer(),
                                        "record": True, "signed_in_only": signed_in_only})
    assert ack["ok"] and ack["recording"] is True, ack
    await creator.accept_answer(ack["answer"])
    live_id = ack["live"]["live_id"]
    recorder = feature.recordings[live_id].recorder
    await poll(lambda: recorder._video_frames >= 20, timeout=20, what="recorded frames")
    joined = await bob.call("room:join", {"user_id": ann.user.id, "media": False})
    assert joined["ok"], joined
    for text in ("hello ann", "lovely stream"):
        sent = await bob.call("chat:send", {"live_id": live_id, "text": text})
        assert sent["ok"], sent
    resp = await client.post("/api/coins/checkout", json={"package_id": "coins_70"},
                             headers={"Authorization": f"Bearer {bob.user.token}"})
    assert resp.status == 200, await resp.text()
    # Frames written before the gift was sent cannot carry its badge. (Not a time: the
    # recording's clock is the creator's frames', which under load runs behind the wall.)
    before_gift = recorder._video_frames
    sent = await bob.call("gift:send", {"transfer_id": "replay-gift-1", "creator": ann.user.id,
                                        "gift_id": "rose"})
    assert sent["ok"], sent
    await poll(lambda: recorder._video_frames >= before_gift + 45, timeout=20,
               what="1.5 s recorded after the gift")
    ended = await ann.call("live:end", {})
    assert ended["ok"], ended
    assert live_id not in feature.recordings
    return {"ann": ann, "bob": bob, "live_id": live_id,
            "before_gift": before_gift}


async def test_a_recorded_live_replays_with_its_gift_and_chat(client: Any,
                                                              closers: list[Any]) -> None:
    world = await record_a_live(client, closers)
    ann, bob, live_id = world["ann"], world["bob"], world["live_id"]

    listed = await (await client.get("/api/users/ann/replays")).json()
    assert listed["ok"] and [r["replay_id"] for r in listed["replays"]] == [live_id]
    replay = listed["replays"][0]
    assert replay["title"] == "recorded" and replay["video_url"] == f"/replays/{live_id}/video"
    assert 1.5 < replay["duration_s"] < 60 and replay["bytes"] > 10_000
    assert replay["file"] == "video.webm"  # vp8 rooms: WebM (media/recorder.py)

    one = await (await client.get(f"/api/replays/{live_id}")).json()
    texts = [(line["text"], line["t"]) for line in one["chat"] if line["kind"] == "message"]
    assert [t for t, _ in texts] == ["hello ann", "lovely stream"]
    # sent before the gift: their seconds in the video are before its badge (below)
    assert all(0 < offset < replay["duration_s"] for _, offset in texts)
    assert one["creator"]["username"] == "ann"
    thumb = await client.get(replay["thumbnail_url"])
    assert thumb.status == 200 and thumb.headers["Content-Type"] == "image/jpeg"
    assert (await thumb.read())[:2] == b"\xff\xd8"

    # The file, whole and in a Range; PyAV decodes it: plausible duration, the badge
    # in the frames after the gift and not before.
    video = await client.get(f"/replays/{live_id}/video")
    assert video.status == 200 and video.headers["Content-Type"] == "video/webm"
    data = await video.read()
    assert len(data) == replay["bytes"]
    part = await client.get(f"/replays/{live_id}/video", headers={"Range": "bytes=100-199"})
    assert part.status == 206 and await part.read() == data[100:200]
    path = replay_dir(client.app[REPLAYS].settings.data_dir, live_id) / "video.webm"
    frames = decoded(path)
    assert len(frames) >= 60 and frames[0][0] == 0.0
    assert abs(frames[-1][0] - replay["duration_s"]) < 0.5
    badged = [index for index, (_, frame) in enumerate(frames) if rose_badge_in(frame, "bob")]
    assert badged, "the Rose's badge is in no recorded frame"
    assert min(badged) >= world["before_gift"]
    badge_at = frames[min(badged)][0]
    assert all(offset <= badge_at for _, offset in texts), (texts, badge_at)
    assert not rose_badge_in(frames[0][1], "bob")
    with av.open(str(path)) as container:
        assert container.streams.audio and container.streams.audio[0].codec_context.name == "opus"

    # Who may watch: as for the live. bob (a viewer) may; blocked by ann, he may not.
    headers = {"Authorization": f"Bearer {bob.user.token}"}
    assert (await client.get(f"/api/replays/{live_id}", headers=headers)).status == 200
    assert (await ann.call("user:block", {"user_id": bob.user.id}))["ok"]
    refused = await client.get(f"/replays/{live_id}/video", headers=headers)
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "forbidden"
    hidden = await (await client.get("/api/users/ann/replays", headers=headers)).json()
    assert hidden["replays"] == []
    assert (await ann.call("user:unblock", {"user_id": bob.user.id}))["ok"]

    # Only ann deletes it; then its files and its metadata are gone.
    no = await client.delete(f"/api/replays/{live_id}", headers=headers)
    assert no.status == 403
    yes = await client.delete(f"/api/replays/{live_id}",
                              headers={"Authorization": f"Bearer {ann.user.token}"})
    assert yes.status == 200, await yes.text()
    assert not path.parent.exists()
    assert (await client.get(f"/api/replays/{live_id}")).status == 404
    assert (await (await client.get("/api/users/ann/replays")).json())["replays"] == []


async def test_a_signed_in_only_replay_and_a_ban(client: Any, closers: list[Any]) -> None:
    world = await record_a_live(client, closers, size=(320, 180), signed_in_only=True)
    ann, bob, live_id = world["ann"], world["bob"], world["live_id"]
    anonymous = await client.get(f"/api/replays/{live_id}")
    assert anonymous.status == 401
    assert (await (await client.get("/api/users/ann/replays")).json())["replays"] == []
    headers = {"Authorization": f"Bearer {bob.user.token}"}
    assert (await client.get(f"/replays/{live_id}/video", headers=headers)).status == 200
    assert (await ann.call("chat:ban", {"user_id": bob.user.id,
                                        "creator_id": ann.user.id}))["ok"]
    banned = await client.get(f"/api/replays/{live_id}", headers=headers)
    assert banned.status == 403 and (await banned.json())["error"]["reason"] == "banned"
    assert (await client.get("/api/replays/not-an-id")).status == 404


async def test_a_live_not_recorded_has_no_replay(client: Any, closers: list[Any]) -> None:
    ann = await member(client, "ann", closers)
    creator = HeadlessCreator.synthetic(320, 180, 30)
    closers.append(creator)
    ack = await ann.call("live:start", {"title": "plain", "offer": await creator.offer()})
    assert ack["ok"] and ack["recording"] is False
    await creator.accept_answer(ack["answer"])
    assert (await ann.call("live:end", {}))["ok"]
    assert (await (await client.get("/api/users/ann/replays")).json())["replays"] == []
    assert not (client.app[REPLAYS].root / ack["live"]["live_id"]).exists()


# ---- the sweep and the caps, on real files and Redis ----------------------------------


def fake_replay(feature: Any, replay_id: str, creator_id: str, ended_at: float,
                size: int) -> Replay:
    directory = replay_dir(feature.settings.data_dir, replay_id)
    directory.mkdir(parents=True)
    (directory / "video.webm").write_bytes(b"\0" * size)
    (directory / "chat.json").write_text('{"lines": []}')
    return Replay(replay_id, creator_id, "t", ended_at - 10, ended_at, 10.0, size, "video.webm",
                  False, False, expires_at(ended_at, feature.settings.replay_days))


async def test_the_sweep_expires_replays_and_removes_abandoned_recordings(
        client: Any) -> None:
    feature = client.app[REPLAYS]
    now = time.time()
    old = fake_replay(feature, "a" * 16, "c1", now - 31 * 86400, 1000)
    fresh = fake_replay(feature, "b" * 16, "c1", now - 86400, 1000)
    for replay in (old, fresh):
        await feature.store.save(replay)
    # a recording a crash left: files, no metadata, untouched for over an hour
    crashed = replay_dir(feature.settings.data_dir, "c" * 16)
    crashed.mkdir(parents=True)
    (crashed / "video.webm").write_bytes(b"\0" * 10)
    stale = now - ABANDONED_AFTER_S - 60
    os.utime(crashed / "video.webm", (stale, stale))
    # one being written now (another worker's): kept
    writing = replay_dir(feature.settings.data_dir, "d" * 16)
    writing.mkdir(parents=True)
    (writing / "video.webm").write_bytes(b"\0" * 10)

    removed = await feature.sweep(now)
    assert sorted(removed) == ["a" * 16, "c" * 16]
    assert not replay_dir(feature.settings.data_dir, old.replay_id).exists()
    assert not crashed.exists() and writing.exists()
    assert [r.replay_id for r in await feature.store.of_creator("c1")] == [fresh.replay_id]
    with pytest.raises(DomainError):
        await feature.store.get(old.replay_id)


async def test_a_new_replay_evicts_the_creators_oldest_past_the_total_cap(client: Any) -> None:
    feature = client.app[REPLAYS]
    feature.settings.replay_creator_max_bytes = 2500
    now = time.time()
    for index, replay_id in enumerate(("1" * 16, "2" * 16, "3" * 16)):
        await feature.store.save(fake_replay(feature, replay_id, "c2", now + index, 1000))
    assert await feature.enforce_total_cap("c2") == ["1" * 16]
    assert [r.replay_id for r in await feature.store.of_creator("c2")] == ["3" * 16, "2" * 16]
    assert not replay_dir(feature.settings.data_dir, "1" * 16).exists()


async def test_the_byte_cap_stops_a_recording_and_tells_the_creator(
        client: Any, closers: list[Any]) -> None:
    feature = client.app[REPLAYS]
    feature.settings.replay_max_bytes = 40_000  # ~0.5 s of the 320x180 pattern
    ann = await member(client, "ann", closers)
    told: list[dict[str, Any]] = []
    ann.sio.on("live:recording", told.append)
    creator = HeadlessCreator.synthetic(320, 180, 30)
    closers.append(creator)
    ack = await ann.call("live:start", {"title": "long", "offer": await creator.offer(),
                                        "record": True})
    assert ack["ok"] and ack["recording"], ack
    await creator.accept_answer(ack["answer"])
    await poll(lambda: told, timeout=20, what="live:recording at the cap")
    assert told == [{"live_id": ack["live"]["live_id"], "recording": False,
                     "reason": "size_cap", "max_bytes": 40_000}]
    assert (await ann.call("live:end", {}))["ok"]
    [replay] = (await (await client.get("/api/users/ann/replays")).json())["replays"]
    assert replay["capped"] is True and 0 < replay["bytes"] <= 40_000 * 1.1
    path = replay_dir(feature.settings.data_dir, replay["replay_id"]) / replay["file"]
    assert decoded(path), "the capped replay plays up to its cap"


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_a_sigkilled_server_leaves_a_playable_prefix_and_no_metadata(
        server_factory: Any, redis_url: str, redis: Any, tmp_path: Path, closers: list[Any],
        codec: str) -> None:
    server = server_factory(redis_url=redis_url, env={
        "GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s", "GOLIVE_AUTH_BURST": "200",
        "GOLIVE_VIDEO_CODEC": codec})
    ann = await register_at(server.url, "ann")
    sio = await sio_connect(server.url, ann.token)
    closers.append(sio)
    with restrict_host_addresses(["127.0.0.1"]):
        creator = HeadlessCreator.synthetic(320, 180, 30)
        closers.append(creator)
        ack = await sio.call("live:start", {"title": "cut short", "offer": await creator.offer(),
                                            "record": True}, timeout=20)
        assert ack["ok"] and ack["recording"], ack
        await creator.accept_answer(ack["answer"])
        live_id = ack["live"]["live_id"]
        video = tmp_path / "data" / "replays" / live_id / {"vp8": "video.webm",
                                                           "h264": "video.mp4"}[codec]

        def frames_on_disk() -> int:
            return len(decoded(video, cut_off=True)) if video.exists() else 0

        # the first fragments (a keyframe every 2 s) or clusters reached the disk
        await poll(lambda: frames_on_disk() >= 60, timeout=30, what="frames on disk")
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
    frames = decoded(video, cut_off=True)
    assert len(frames) >= 60 and frames[0][0] == 0.0
    assert await redis.exists(f"{{replays}}replay:{live_id}") == 0  # finalized replays only
