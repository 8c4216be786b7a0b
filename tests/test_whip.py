"""WHIP ingest and WHEP playback through the real server (HTTP over loopback, real Redis,
real aiortc peers on both sides): golive/whip.py's clients, written against RFC 9725 and
the WHEP draft, against signaling/whip_http.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from redis.asyncio import Redis

from engine.catalog import load_catalog
from engine.gift_room import GiftMoment
from golive.whip import (
    WhepClient,
    WhipClient,
    WhipError,
    file_source,
    parse_ice_links,
    pattern_source,
)
from media.overlay import overlay_layout
from media.synthetic import HeadlessCreator
from signaling.app import create_app
from signaling.appkeys import LIVES, SERVICES
from signaling.gifts import gift_overlay, hex_color
from signaling.whip_http import HTTP_MEDIA
from tests.support.peers import SocketPeer, User, go_live, open_tab, register
from tests.support.poll import poll
from tests.support.viewer import DecodingViewer

CATALOG = load_catalog()
ROOT = Path(__file__).resolve().parent.parent


class Peer(SocketPeer):
    PUSHES = ("live:ended", "gift:received", "notify:new", "chat:message")


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Any, redis: Redis) -> Any:
    settings.live_grace = 0.6
    client = await aiohttp_client(create_app(settings))
    return client


def auth(user: User | str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token if isinstance(user, User) else user}"}


async def stream_key(client: Any, user: User) -> dict[str, Any]:
    resp = await client.post("/api/me/stream_key", headers=auth(user))
    body = await resp.json()
    assert resp.status == 200, body
    return dict(body)


async def whip(client: Any, user: User, closers: list[Any], size: tuple[int, int] = (640, 360),
               fps: float = 30, codec: str | None = None) -> WhipClient:
    """The creator live through WHIP with the test pattern; closed (DELETE) by closers."""
    made = await stream_key(client, user)
    publisher = WhipClient(made["whip_url"], made["stream_key"], *pattern_source(*size, fps),
                           video_codec=codec)
    closers.append(publisher)
    await publisher.publish()
    return publisher


def badge_colour_at(frame: Any, rect: Any, colour: tuple[int, int, int]) -> bool:
    if frame is None or (frame.width, frame.height) != (640, 360):
        return False
    rgb = frame.to_ndarray(format="rgb24").astype(int)
    pad = 3 * rect.scale
    patch = rgb[rect.y + 2 : rect.y + rect.height - 2, rect.x + 2 : rect.x + pad - 1]
    return bool(np.all(np.abs(patch.reshape(-1, 3).mean(axis=0) - colour) < 30))


async def test_whip_goes_live_as_the_studio_does_and_delete_ends_it(
        app_client: Any, closers: list[Any]) -> None:
    client = app_client
    ann = await open_tab(client, "ann", closers, peer=Peer)
    bob = await open_tab(client, "bob", closers, peer=Peer)
    cat = await open_tab(client, "cat", closers, peer=Peer)
    assert (await cat.call("user:follow", {"user_id": ann.user.id}))["ok"]
    assert (await cat.call("alerts:set", {"user_id": ann.user.id, "on": True}))["on"]

    made = await stream_key(client, ann.user)
    assert made["whip_url"] == str(client.make_url("/whip"))
    assert made["stream_key"].startswith("gls_")
    publisher = WhipClient(made["whip_url"], made["stream_key"],
                           *pattern_source(640, 360, 30))
    closers.append(publisher)
    await publisher.publish()
    assert publisher.location is not None and publisher.etag
    assert publisher.location.startswith(str(client.make_url("/whip/")))
    live = await client.app[SERVICES].lives.current(ann.user.id)
    assert live is not None and live.node

    # A follower with alerts on is told, as when the studio goes live.
    async def alerted() -> bool:
        notes = (await cat.call("notify:list", {}))["notifications"]
        return any(n["kind"] == "live" and n["id"] == live.live_id for n in notes)
    await poll(alerted, timeout=10)

    # A Socket.IO viewer decodes the WHIP publisher's video; chat works.
    joined = await bob.call("room:join", {"user_id": ann.user.id, "media": True})
    assert joined["ok"], joined
    viewer = DecodingViewer("bob")
    closers.append(viewer)
    answer = await viewer.answer(joined["offer"])
    assert (await bob.call("rtc:answer", {"live_id": live.live_id, "sdp": answer}))["ok"]
    await poll(lambda: viewer.video_frames >= 3, timeout=15)
    said = await bob.call("chat:send", {"live_id": live.live_id, "text": "hi from bob"})
    assert said["ok"], said

    # A gift: the ledger moves the coin and the badge is burned into the video.
    await client.app[SERVICES].ledger.credit_purchase(
        payment_id=f"pay-{uuid.uuid4().hex}", provider="test", user_id=bob.user.id, coins=10)
    sent = await bob.call("gift:send", {"transfer_id": uuid.uuid4().hex, "creator": "ann",
                                        "gift_id": "rose", "count": 1})
    assert sent["ok"], sent
    assert sent["receipt"]["sender_coins"] == 9
    await poll(lambda: bob.got("gift:received"))
    push = bob.got("gift:received")[0]
    rose = CATALOG.gift("rose")
    icon = rose.icon_png.read_bytes() if rose.icon_png.exists() else None
    overlay = gift_overlay(rose, "bob", GiftMoment("", push["streak"], 1, 1, True), icon)
    [(_, rect)] = overlay_layout([overlay], 640, 360)
    await poll(lambda: badge_colour_at(viewer.last_video, rect, hex_color(rose.color)),
               timeout=10)

    # DELETE on the Location ends the live: viewers are told, Redis has no live.
    assert await publisher.close() == 200
    await poll(lambda: bob.got("live:ended"))
    assert bob.got("live:ended")[0]["reason"] == "ended_by_creator"
    assert await client.app[SERVICES].lives.current(ann.user.id) is None
    assert client.app[LIVES].socketless_publishers == set()


async def test_whep_player_decodes_counts_as_a_viewer_and_delete_leaves(
        app_client: Any, closers: list[Any]) -> None:
    client = app_client
    ann = await register(client, "ann")
    publisher = await whip(client, ann, closers, size=(320, 180), fps=15, codec="h264")
    # H.264 only, as OBS offers it: the ingest decodes it, the room re-encodes
    assert publisher.pc is not None
    assert "H264/90000" in publisher.pc.remoteDescription.sdp
    assert "VP8/90000" not in publisher.pc.remoteDescription.sdp
    live = await client.app[SERVICES].lives.current(ann.id)
    assert live is not None

    anonymous = WhepClient(str(client.make_url("/whep/ann")))
    closers.append(anonymous)
    await anonymous.play()
    assert anonymous.location is not None and "/whep/ann/" in anonymous.location
    bob = await register(client, "bob")
    signed_in = WhepClient(str(client.make_url("/whep/ANN")), bob.token)
    closers.append(signed_in)
    await signed_in.play()
    for player in (anonymous, signed_in):
        await poll(lambda p=player: p.video_frames >= 3 and p.audio_frames >= 3, timeout=15)
    lives = client.app[SERVICES].lives
    assert await lives.viewer_count(live) == 2

    assert await signed_in.close() == 200
    async def viewers(n: int) -> bool:
        return await lives.viewer_count(live) == n
    await poll(lambda: viewers(1))
    # its session is gone: another DELETE is 404
    assert (await client.delete("/whep/ann/" + "0" * 32)).status == 404
    assert await anonymous.close() == 200
    await poll(lambda: viewers(0))


async def test_refusals_are_clear_http_errors(app_client: Any, closers: list[Any]) -> None:
    client = app_client
    ann = await register(client, "ann")
    url = str(client.make_url("/whip"))
    offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"

    async def post(headers: dict[str, str], body: str = offer,
                   content_type: str = "application/sdp", path: str = "/whip") -> Any:
        resp = await client.post(path, data=body.encode(),
                                 headers={**headers, "Content-Type": content_type})
        return resp.status, dict(resp.headers), await resp.json()

    status, headers, body = await post({})
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert body["error"]["code"] == "unauthorized"
    assert headers["Access-Control-Allow-Origin"] == "*"
    status, _, body = await post(auth("gls_not-a-key"))
    assert (status, body["error"]["reason"]) == (401, "invalid")
    status, _, body = await post(auth(ann))  # a session token is no stream key
    assert status == 401

    first = (await stream_key(client, ann))["stream_key"]
    status, _, body = await post(auth(first), content_type="text/plain")
    assert (status, body["error"]["code"]) == (415, "invalid")
    status, _, body = await post(auth(first))  # SDP without media
    assert (status, body["error"]["code"]) == (400, "invalid"), body
    assert "media" in body["error"]["message"]
    status, _, body = await post(auth(first), body="hello")
    assert status == 400 and "SDP" in body["error"]["message"]

    # Rotating revokes the old key at once; the new one publishes.
    second = (await stream_key(client, ann))["stream_key"]
    assert second != first
    status, _, body = await post(auth(first))
    assert (status, body["error"]["reason"]) == (401, "invalid")
    publisher = WhipClient(url, second, *pattern_source(320, 180, 15))
    closers.append(publisher)
    await publisher.publish()

    # Already live: a second encoder is refused (409), the first keeps the live.
    again = WhipClient(url, second, *pattern_source(320, 180, 15))
    closers.append(again)
    with pytest.raises(WhipError) as refused:
        await again.publish()
    assert (refused.value.status, refused.value.code) == (409, "conflict")
    assert publisher.location is not None
    # ... and so is the studio: the WHIP session owns the live as a studio tab would.
    studio = await open_tab(client, ann, closers)
    creator = HeadlessCreator.synthetic(160, 96, 10)
    closers.append(creator)
    taken = await studio.call("live:start", {"title": "tab", "offer": await creator.offer()})
    assert taken["error"]["code"] == "conflict", taken

    # No trickle ICE, no ICE restart: PATCH is 405 (RFC 9725 4.3.1).
    session = "/whip/" + publisher.location.rsplit("/", 1)[1]
    resp = await client.patch(session, data=b"a=ice-ufrag:x\r\n",
                              headers={**auth(second),
                                       "Content-Type": "application/trickle-ice-sdpfrag"})
    assert resp.status == 405 and "DELETE" in resp.headers["Allow"]
    # DELETE needs the key the session was made with.
    assert (await client.delete(session)).status == 401
    assert (await client.delete(session, headers=auth("gls_other"))).status == 401
    assert (await client.delete("/whip/" + "0" * 32, headers=auth(second))).status == 404

    # OPTIONS: the CORS preflight, and the ICE servers for a valid key.
    resp = await client.options("/whip", headers={
        "Origin": "https://player.example", "Access-Control-Request-Method": "POST"})
    assert resp.status == 204
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]

    # Under GOLIVE_LIVE_MIN_AGE: no key, as no Go LIVE.
    kid = await register(client, "kid", birthdate=f"{dt.date.today().year - 17}-01-01")
    resp = await client.post("/api/me/stream_key", headers=auth(kid))
    assert resp.status == 403 and (await resp.json())["error"]["reason"] == "under_age"
    state = await (await client.get("/api/me/stream_key", headers=auth(ann))).json()
    assert state["has_key"] is True and state["whip_url"].endswith("/whip")


async def test_key_rotation_is_rate_limited(app_client: Any) -> None:
    ann = await register(app_client, "ann")
    codes = []
    for _ in range(7):
        resp = await app_client.post("/api/me/stream_key", headers=auth(ann))
        codes.append(resp.status)
    assert codes[:5] == [200] * 5 and codes[-1] == 429
    assert "Retry-After" in resp.headers


async def test_whep_refuses_the_banned_and_the_blocked(app_client: Any,
                                                       closers: list[Any]) -> None:
    client = app_client
    ann = await open_tab(client, "ann", closers, peer=Peer)
    await go_live(ann, closers, "studio", size=(160, 96), fps=10)
    url = str(client.make_url("/whep/ann"))
    bob = await register(client, "bob")
    dan = await register(client, "dan")
    assert (await ann.call("chat:ban", {"user_id": bob.id}))["ok"]
    assert (await ann.call("user:block", {"user_id": dan.id}))["ok"]
    for who in (bob, dan):
        player = WhepClient(url, who.token)
        closers.append(player)
        with pytest.raises(WhipError) as refused:
            await player.play()
        assert (refused.value.status, refused.value.code) == (403, "forbidden"), who
    # a stale or forged session token is told, not treated as anonymous
    with pytest.raises(WhipError) as refused:
        player = WhepClient(url, "not-a-token")
        closers.append(player)
        await player.play()
    assert refused.value.status == 401
    # the creator's own live, a creator not live, nobody by that name
    for path, token, status in (("/whep/ann", None, 201), ("/whep/bob", None, 404),
                                ("/whep/nobody", None, 404)):
        player = WhepClient(str(client.make_url(path)), token)
        closers.append(player)
        if status == 201:
            await player.play()
            await poll(lambda p=player: p.video_frames >= 1, timeout=15)
        else:
            with pytest.raises(WhipError) as refused:
                await player.play()
            assert refused.value.status == status


async def test_whep_anonymous_off(aiohttp_client: Any, settings: Any, redis: Redis,
                                  closers: list[Any]) -> None:
    settings.whep_anonymous = False
    client = await aiohttp_client(create_app(settings))
    ann = await open_tab(client, "ann", closers, peer=Peer)
    await go_live(ann, closers, "studio", size=(160, 96), fps=10)
    player = WhepClient(str(client.make_url("/whep/ann")))
    closers.append(player)
    with pytest.raises(WhipError) as refused:
        await player.play()
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")
    bob = await register(client, "bob")
    player = WhepClient(str(client.make_url("/whep/ann")), bob.token)
    closers.append(player)
    await player.play()
    await poll(lambda: player.video_frames >= 1, timeout=15)


def test_ice_links_parse_as_the_rfc_writes_them() -> None:
    links = parse_ice_links([
        '<stun:stun.example.net>; rel="ice-server"',
        '<turn:turn.example.net?transport=udp>; rel="ice-server"; username="1700:ab"; '
        'credential="pw=="; credential-type="password", <https://x>; rel="next"'])
    assert [(link.url, link.username, link.credential) for link in links] == [
        ("stun:stun.example.net", None, None),
        ("turn:turn.example.net?transport=udp", "1700:ab", "pw==")]


async def test_golive_whip_command_publishes_until_stopped(app_client: Any,
                                                           closers: list[Any]) -> None:
    """`golive whip --url --key --source testsrc` in its own process: live until SIGINT,
    then its DELETE ends the live."""
    client = app_client
    ann = await register(client, "ann")
    made = await stream_key(client, ann)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signaling.cli", "whip", "--url", made["whip_url"],
        "--key", made["stream_key"], "--source", "testsrc", "--size", "320x180",
        "--fps", "15", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT)
    try:
        lives = client.app[SERVICES].lives
        live = await poll(lambda: lives.current(ann.id), timeout=30, what="live over WHIP")
        player = WhepClient(str(client.make_url("/whep/ann")))
        closers.append(player)
        await player.play()
        await poll(lambda: player.video_frames >= 3, timeout=15)
        # `golive whep` plays it for 3 s and says how many frames it decoded
        whep = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "signaling.cli", "whep", "--url",
            str(client.make_url("/whep/ann")), "--duration", "3",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT)
        try:
            played, _ = await asyncio.wait_for(whep.communicate(), 60)
        finally:
            if whep.returncode is None:
                whep.kill()
                await whep.wait()
        assert whep.returncode == 0, played.decode()
        frames = re.search(rb"stopping: done; video frames (\d+)", played)
        assert frames is not None and int(frames.group(1)) > 0, played.decode()
        proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, out.decode()
        assert b"LIVE over WHIP" in out
        assert await lives.current(ann.id) is None
        assert live.live_id
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_an_encoder_that_drops_resumes_in_the_grace_period_or_the_live_ends(
        aiohttp_client: Any, settings: Any, redis: Redis, closers: list[Any]) -> None:
    """OBS's connection drops (its pc closes without a DELETE): the live waits
    GOLIVE_LIVE_GRACE for it; a new POST /whip in that time resumes the same live (the old
    session's DELETE then ends nothing); past it, the live ends as a studio's would."""
    settings.live_grace = 30.0
    client = await aiohttp_client(create_app(settings))
    lives_here = client.app[LIVES]
    ann = await register(client, "ann")
    bob = await open_tab(client, "bob", closers, peer=Peer)
    made = await stream_key(client, ann)
    first = WhipClient(made["whip_url"], made["stream_key"], *pattern_source(320, 180, 15))
    closers.append(first)
    await first.publish()
    live = await client.app[SERVICES].lives.current(ann.id)
    assert live is not None
    assert (await bob.call("room:join", {"user_id": ann.id, "media": False}))["ok"]
    player = WhepClient(str(client.make_url("/whep/ann")))
    closers.append(player)
    await player.play()
    await poll(lambda: player.video_frames >= 3, timeout=15)  # the ingest flows

    assert first.pc is not None
    await first.pc.close()  # killed: no DELETE
    await poll(lambda: lives_here.hosted[ann.id].publisher_sid is None, timeout=15,
               what="the grace period")
    again = WhipClient(made["whip_url"], made["stream_key"], *pattern_source(320, 180, 15))
    closers.append(again)
    await again.publish()
    resumed = await client.app[SERVICES].lives.current(ann.id)
    assert resumed is not None and resumed.live_id == live.live_id
    # the player stayed: the new encoder's frames reach it
    seen = player.video_frames
    await poll(lambda: player.video_frames >= seen + 10, timeout=15)

    assert await first.close() == 200  # the old session: forgotten, the live goes on
    assert (await client.app[SERVICES].lives.current(ann.id)) is not None
    assert bob.got("live:ended") == []

    # Past the grace period the live ends, as a studio's does.
    lives_here.grace.seconds = 0.3
    assert again.pc is not None
    await again.pc.close()
    await poll(lambda: bob.got("live:ended"), timeout=20)
    assert bob.got("live:ended")[0]["reason"] == "creator_left"
    assert await client.app[SERVICES].lives.current(ann.id) is None
    # the sessions nobody DELETEd (the encoder's, the player's) are pruned
    sessions = client.app[HTTP_MEDIA]
    assert len(sessions.whip) == 1 and len(sessions.whep) == 1
    sessions.prune()
    assert sessions.whip == {} and sessions.whep == {}
    assert lives_here.socketless_publishers == set()


async def test_a_player_offer_keeps_only_the_rooms_codecs() -> None:
    """An answering aiortc peer takes the offer's first codec it knows: an offer listing
    H.264 before VP8 keeps only VP8 (and its RTX) for a VP8 room; one without it is
    refused. (negotiation.offer_for_codec, a plain function.)"""
    from aiortc import RTCPeerConnection, RTCRtpSender

    from media.errors import MediaError
    from media.negotiation import check_player_offer, offer_for_codec

    pc = RTCPeerConnection()
    try:
        video = pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        caps = RTCRtpSender.getCapabilities("video").codecs
        h264_first = sorted(caps, key=lambda c: c.mimeType.lower() != "video/h264")
        video.setCodecPreferences(h264_first)
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
    finally:
        await pc.close()
    check_player_offer(offer)
    video_section = offer.split("m=video", 1)[1].split("m=audio", 1)[0]
    assert video_section.index("H264/90000") < video_section.index("VP8/90000")
    kept = offer_for_codec(offer, "vp8")
    video_kept = kept.split("m=video", 1)[1].split("m=audio", 1)[0]
    assert "VP8/90000" in video_kept and "H264" not in video_kept
    assert "rtx/90000" in video_kept and kept.endswith("\r\n")
    assert "opus/48000" in kept
    only_h264 = offer_for_codec(offer, "h264")
    with pytest.raises(MediaError) as refused:
        offer_for_codec(only_h264, "vp8")
    assert "video/vp8" in refused.value.message


async def test_ice_servers_are_link_headers_for_a_valid_token_only(
        aiohttp_client: Any, settings: Any, redis: Redis) -> None:
    """RFC 9725 4.6: the ICE servers (a TURN credential made for the caller, as the
    studio's) as Link headers on OPTIONS with a valid Bearer token; a CORS preflight, a
    wrong key or an anonymous player gets none."""
    settings.turn_url = "turn:turn.example.net:3478"
    settings.turn_secret = "s" * 32
    client = await aiohttp_client(create_app(settings))
    ann = await register(client, "ann")
    key = (await stream_key(client, ann))["stream_key"]

    async def links(path: str, token: str | None) -> list[Any]:
        resp = await client.options(path, headers=auth(token) if token else {})
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        return parse_ice_links(resp.headers.getall("Link", []))

    [turn] = await links("/whip", key)
    assert turn.url == "turn:turn.example.net:3478"
    assert turn.username is not None and turn.username.endswith(f":{ann.id}")
    assert turn.credential
    assert await links("/whip", None) == []
    assert await links("/whip", "gls_wrong") == []
    bob = await register(client, "bob")
    [turn] = await links("/whep/ann", bob.token)
    assert turn.username is not None and turn.username.endswith(f":{bob.id}")
    assert await links("/whep/ann", None) == []


def write_clip(path: Path, seconds: float = 2.0) -> None:
    """A small Matroska file, VP8 video (the test pattern) and Opus audio (a tone)."""
    import av

    from media.synthetic import SyntheticVideoTrack

    pattern = SyntheticVideoTrack(320, 180, 15)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libvpx", rate=15)
        video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
        audio = out.add_stream("libopus", rate=48000)
        audio.layout = "mono"
        for n in range(int(seconds * 15)):
            frame = pattern.make_frame(n)
            frame.pts = None
            out.mux(video.encode(frame))
        out.mux(video.encode())
        samples = np.zeros((1, 960), dtype=np.int16)
        for n in range(int(seconds * 50)):
            tone = (np.sin(2 * np.pi * 440 * (np.arange(960) + n * 960) / 48000) * 6000)
            samples[0] = tone.astype(np.int16)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = 48000
            frame.pts = n * 960
            out.mux(audio.encode(frame))
        out.mux(audio.encode())


async def test_whip_publishes_a_file(app_client: Any, closers: list[Any],
                                     tmp_path: Path) -> None:
    """The issue's case: a WHIP client publishing a media file (looped) goes live and a
    WHEP player decodes it."""
    clip = tmp_path / "clip.mkv"
    write_clip(clip)
    client = app_client
    ann = await register(client, "ann")
    made = await stream_key(client, ann)
    publisher = WhipClient(made["whip_url"], made["stream_key"], *file_source(str(clip)))
    closers.append(publisher)
    await publisher.publish()
    player = WhepClient(str(client.make_url("/whep/ann")))
    closers.append(player)
    await player.play()
    await poll(lambda: player.video_frames >= 20 and player.audio_frames >= 20, timeout=20)
    assert await publisher.close() == 200
    assert await client.app[SERVICES].lives.current(ann.id) is None


async def test_a_whep_player_on_another_node_is_served_by_its_edge(
        tmp_path: Path, closers: list[Any]) -> None:
    """Two `golive serve` nodes on one redis-server: the creator publishes over WHIP to A,
    a WHEP player asks B, whose edge room (a relay from A, as for a Socket.IO viewer on B)
    serves it; DELETE on A ends the live and B's player with it."""
    from tests.support.cluster import NODE_ENV, RedisProcess
    from tests.support.cluster import register as register_at
    from tests.support.servers import start_server, stop_or_kill

    redis_server = RedisProcess(tmp_path)
    redis_server.start()
    servers = []
    try:
        for name in ("node-a", "node-b"):
            servers.append(start_server(tmp_path, redis_url=redis_server.url,
                                        data_dir=tmp_path / name,
                                        env={**NODE_ENV, "GOLIVE_NODE_ID": name}))
        origin, edge = servers
        ann = await register_at(origin.url, "ann")
        async with aiohttp.ClientSession() as http:
            resp = await http.post(origin.url + "/api/me/stream_key", headers=auth(ann.token))
            made = await resp.json()
        publisher = WhipClient(made["whip_url"], made["stream_key"],
                               *pattern_source(320, 180, 15))
        closers.append(publisher)
        await publisher.publish()
        player = WhepClient(edge.url + "/whep/ann")
        closers.append(player)
        await player.play()
        assert player.location is not None and player.location.startswith(edge.url)
        await poll(lambda: player.video_frames >= 5, timeout=20)
        assert await publisher.close() == 200
        await poll(lambda: "video" in player.ended, timeout=20, what="the edge's media ended")
    finally:
        for server in servers:
            stop_or_kill(server)
        redis_server.stop()


def test_golive_whip_and_whep_commands_undo_the_loopback_restriction_on_every_exit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file source that is not there (exit 2) and a server that is not there (exit 1): each
    says why and leaves the host lookup as it found it (on main the whip one left
    127.0.0.1-only gathering behind)."""
    import argparse
    import socket

    from media import ice
    from signaling import whip_cli

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    before = ice._active  # another in-process test's restriction may be in place: kept
    whip = argparse.Namespace(url=f"{url}/whip", key="gls_x", source=str(tmp_path / "no.mp4"),
                              size=(320, 180), fps=15.0, codec=None, duration=1.0)
    assert whip_cli.run_whip(whip) == 2
    assert "golive whip: " in capsys.readouterr().out
    assert ice._active is before
    whep = argparse.Namespace(url=f"{url}/whep/ann", token=None, duration=1.0)
    assert whip_cli.run_whep(whep) == 1
    assert "golive whep: " in capsys.readouterr().out
    assert ice._active is before
