"""ICE restart under a live DTLS/SRTP session (media/ice_restart.py), over loopback: the
viewer's old sockets die (as on a network change), the server offers new ICE, the viewer
answers it the way a browser answers a re-offer, and the same peer connection, DTLS
session and SSRC carry the video again, on both fan-out send paths. The namespaced
versions (a real address change, a link down) are in test_network_changes.py."""

from __future__ import annotations

import asyncio

import pytest

from media import aioice_private, aiortc_private
from media.errors import MediaError
from media.ice_restart import IceRestart, read_ice, with_ice


def go_deaf_and_mute(pc) -> None:
    """A path that died without closing (the peer's address went away): its sockets
    stay open, but nothing arrives on them and nothing they send leaves."""
    ice = aiortc_private.ice_connection(pc.getTransceivers()[0].receiver.transport)
    for protocol in aioice_private.socket_protocols(ice):
        protocol.transport.pause_reading()
        protocol.transport.sendto = lambda data, addr=None: None


def server_pair(room, viewer_id):
    viewer = room._viewers[viewer_id]  # the room's own peer for this viewer
    dtls = viewer.pc.getTransceivers()[0].sender.transport
    return aioice_private.nominated_pair(aiortc_private.ice_connection(dtls), 1)


async def client_restart(client, offer: str) -> tuple[IceRestart, str]:
    """The viewer's side of a restart, as tests/support/netns_viewer.py does it."""
    ice = IceRestart(client.pc.getTransceivers()[0].receiver.transport)
    answer = with_ice(client.pc.localDescription.sdp, await ice.gather())
    return ice, answer


async def test_a_viewer_whose_path_died_restarts_ice_and_decodes_on_the_same_session(
        harness, poll, fanout):
    room = harness.room(fanout=fanout)
    await harness.publish(room)
    client = await harness.join(room, "v1")
    await poll(lambda: client.video_frames >= 10, what="the viewer decoding")
    before = server_pair(room, "v1")
    ssrc = client.video_ssrc()
    dtls = client.pc.getTransceivers()[0].receiver.transport
    srtp = aiortc_private.srtp_inbound(dtls)

    go_deaf_and_mute(client.pc)  # its old path is gone: nothing in or out on it
    offer = await room.restart_viewer_ice("v1")
    assert read_ice(offer).ufrag != read_ice(client.pc.remoteDescription.sdp).ufrag
    ice, answer = await client_restart(client, offer)
    connecting = asyncio.create_task(ice.connect(read_ice(offer)))
    try:
        await room.accept_viewer_answer("v1", answer)
        await connecting
        frames = client.video_frames
        await poll(lambda: client.video_frames >= frames + 15, timeout=10,
                   what="video decoded after the restart")
    finally:
        if not connecting.done():
            connecting.cancel()
    viewer = room._viewers["v1"]
    await poll(lambda: viewer.restarts == 1, what="the server's side handed over")
    after = server_pair(room, "v1")
    assert after.local_candidate.port != before.local_candidate.port
    assert after.remote_addr != before.remote_addr
    # the same session: DTLS never restarted, same SRTP keys and track
    assert client.video_ssrc() == ssrc
    assert aiortc_private.srtp_inbound(dtls) is srtp
    assert dtls.state == "connected"
    assert harness.viewer_gone == []
    assert viewer.pc.connectionState == "connected"
    print(f"restart handed over in {viewer.restart_times_s[0] * 1000:.0f} ms "
          f"(server side, request to hand-over), fan-out {fanout}")


async def test_a_restart_needs_new_credentials_and_a_connected_viewer(harness, poll):
    room = harness.room()
    await harness.publish(room)
    offer = await room.add_viewer("early")
    with pytest.raises(MediaError) as caught:
        await room.restart_viewer_ice("early")  # not answered: nothing to restart
    assert caught.value.code.value == "conflict"
    client = harness.client("early")
    await room.accept_viewer_answer("early", await client.answer(offer))
    await poll(lambda: client.video_frames >= 1, what="the viewer decoding")
    await room.restart_viewer_ice("early")
    # an answer that keeps the old ICE is not a restart
    with pytest.raises(MediaError) as caught:
        await room.accept_viewer_answer("early", client.pc.localDescription.sdp)
    assert caught.value.code.value == "invalid"
    with pytest.raises(MediaError) as caught:
        await room.restart_viewer_ice("nobody")
    assert caught.value.code.value == "not_found"


async def test_a_creator_whose_path_died_restarts_ice_and_the_room_gets_its_frames_again(
        harness, poll):
    """The creator offers the restart (it is the offerer of its connection), the room
    answers it; the same publisher, pc and DTLS session carry its media again."""
    room = harness.room()
    creator = await harness.publish(room)
    client = await harness.join(room, "v1")
    await poll(lambda: client.video_frames >= 10, what="the viewer decoding")
    publisher = room._publisher
    go_deaf_and_mute(creator.pc)
    ice = IceRestart(creator.pc.getTransceivers()[0].sender.transport)
    offer = with_ice(creator.pc.localDescription.sdp, await ice.gather())
    answer = await room.restart_publisher_ice(offer)
    await ice.connect(read_ice(answer))
    frames = room.stats().frames_in
    await poll(lambda: room.stats().frames_in >= frames + 15, timeout=10,
               what="the creator's frames reaching the room again")
    await poll(lambda: publisher.restarts == 1, what="the server's side handed over")
    viewed = client.video_frames
    await poll(lambda: client.video_frames >= viewed + 15, what="the viewer decoding them")
    assert room._publisher is publisher and harness.publisher_gone == []
    print(f"creator restart handed over in {publisher.restart_times_s[0] * 1000:.0f} ms")


async def test_a_creator_restart_offer_is_checked(harness, poll):
    room = harness.room()
    creator = await harness.publish(room)
    await poll(lambda: room.stats().frames_in >= 1, what="the creator's frames")
    with pytest.raises(MediaError) as caught:
        await room.restart_publisher_ice("not sdp")
    assert caught.value.code.value == "invalid"
    with pytest.raises(MediaError) as caught:  # the same ICE: not a restart
        await room.restart_publisher_ice(creator.pc.localDescription.sdp)
    assert caught.value.code.value == "invalid"
    ice = IceRestart(creator.pc.getTransceivers()[0].sender.transport)
    restart_offer = with_ice(creator.pc.localDescription.sdp, await ice.gather())
    await ice.close()
    ours = next(line for line in restart_offer.split("\r\n") if line.startswith("a=fingerprint:"))
    # another tab's pc (this process's pcs share one certificate: media/aiortc_private.py)
    forged = restart_offer.replace(ours, ours[:-2] + ("00" if not ours.endswith("00") else "11"))
    with pytest.raises(MediaError) as caught:  # new ICE, but not this session's DTLS
        await room.restart_publisher_ice(forged)
    assert caught.value.code.value == "invalid"
    assert "fingerprint" in caught.value.message
    await room.unpublish()
    with pytest.raises(MediaError) as caught:
        await room.restart_publisher_ice(creator.pc.localDescription.sdp)
    assert caught.value.code.value == "not_found"


# ---- the SDP's ICE, as plain functions ---------------------------------------------------

OFFER = ("v=0\r\no=- 3900 3900 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
         "m=video 9 UDP/TLS/RTP/SAVPF 97\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
         "a=ice-ufrag:old1\r\na=ice-pwd:oldpasswordoldpassword\r\n"
         "a=candidate:1 1 udp 2130706431 10.0.0.1 4000 typ host\r\na=end-of-candidates\r\n"
         "a=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"
         "a=ice-ufrag:old1\r\na=ice-pwd:oldpasswordoldpassword\r\n"
         "a=candidate:1 1 udp 2130706431 10.0.0.1 4000 typ host\r\na=end-of-candidates\r\n"
         "a=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\n")


def test_read_ice_takes_the_bundles_credentials_candidates_and_fingerprint():
    ice = read_ice(OFFER)
    assert (ice.ufrag, ice.pwd, ice.complete) == ("old1", "oldpasswordoldpassword", True)
    assert [(c.host, c.port) for c in ice.candidates] == [("10.0.0.1", 4000)]
    assert ice.fingerprints == frozenset({"sha-256 aa:bb"})
    chromium_like = OFFER.replace("a=end-of-candidates\r\n", "")
    assert read_ice(chromium_like).complete is False  # wait for its peer-reflexive checks


def test_with_ice_puts_new_ice_in_every_section_and_bumps_the_version():
    new = read_ice(OFFER.replace("old1", "new2").replace("10.0.0.1 4000", "10.0.0.6 5000"))
    text = with_ice(OFFER, new)
    assert text.count("a=ice-ufrag:new2") == 2 and "old1" not in text
    assert text.count("a=candidate:") == 2 and "10.0.0.1" not in text
    assert text.count("a=end-of-candidates") == 2
    assert "m=video 5000 " in text and "c=IN IP4 10.0.0.6" in text
    assert "o=- 3900 3901 IN IP4" in text
    assert "a=fingerprint:sha-256 AA:BB" in text and "a=setup:actpass" in text
    assert read_ice(text).ufrag == "new2"


@pytest.mark.parametrize("text", [
    None, "hello", "v=0\r\na=ice-pwd:only",
    "v=0\r\na=ice-ufrag:x\r\na=ice-pwd:y\r\na=candidate:garbage",
    "v=0\r\na=ice-ufrag:x\r\na=ice-pwd:y\r\na=candidate:1 1 udp notint 1.2.3.4 5 typ host",
])
def test_read_ice_refuses_what_is_not_ice(text):
    with pytest.raises(MediaError) as caught:
        read_ice(text)
    assert caught.value.code.value == "invalid"


def test_an_answer_with_a_malformed_candidate_line_is_invalid_not_a_crash():
    """aiortc's SDP parser asserts a candidate line's field count: golive's check turns
    that into `invalid` (a viewer's answer, first or an ICE restart's)."""
    from media.negotiation import check_viewer_answer

    answer = OFFER.replace("a=candidate:1 1 udp 2130706431 10.0.0.1 4000 typ host",
                           "a=candidate:garbage")
    with pytest.raises(MediaError) as caught:
        check_viewer_answer(answer, "vp8")
    assert caught.value.code.value == "invalid"
