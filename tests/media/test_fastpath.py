"""The fan-out's send paths on the wire (media/fastpath.py, media/_fastpath.c), each run
natively and in Python through the `fanout` fixture: real aiortc viewers over loopback."""

from __future__ import annotations

import asyncio
import errno
import fractions
import logging
import socket

import av
import pylibsrtp
import pytest

from media import RoomTimings, aioice_private, aiortc_private
from media.fastpath import LIBSRTP2_PROTECT, choose_path, resolve
from tests.support.lossy import wrap_viewer_srtp

# Sequence numbers start this close below 65,535, so the wrap comes in the first second.
NEAR_WRAP = 40


class LossyInbound:
    """A viewer's inbound SRTP that loses the first arrival of every 7th video packet
    before decrypting it (as a lossy network would), so aiortc's receiver NACKs it and
    only the server's retransmission can fill the gap."""

    def __init__(self, session: pylibsrtp.Session, video_ssrc: int) -> None:
        self._session = session
        self._ssrc = video_ssrc
        self.lost: set[int] = set()
        self.recovered: set[int] = set()

    def unprotect(self, data: bytes) -> bytes:
        seq, ssrc = int.from_bytes(data[2:4], "big"), int.from_bytes(data[8:12], "big")
        if ssrc == self._ssrc:
            if seq % 7 == 3 and seq not in self.lost:
                self.lost.add(seq)
                raise pylibsrtp.Error("lost on purpose")
            if seq in self.lost:
                self.recovered.add(seq)
        return self._session.unprotect(data)

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return self._session.unprotect_rtcp(data)


def _start_near_wrap(room) -> None:
    for stream in room._fanout._streams.values():
        stream._seq = 0xFFFF - NEAR_WRAP


async def test_sequence_wrap_and_nacks_through_one_srtp_session(harness, poll, fanout):
    """Past 65,535 the SRTP rollover counter moves on; packets lost on the way are NACKed
    and resent by the Python retransmit through the same libsrtp session the native path
    protects with: every one decrypts and the viewer keeps decoding."""
    room = harness.room(fanout=fanout)
    _start_near_wrap(room)
    await harness.publish(room)
    viewer = await harness.join(room, "v")
    lossy = await wrap_viewer_srtp(viewer, LossyInbound)
    video = room._fanout._streams["video"]
    await poll(lambda: video.packets > 3 * NEAR_WRAP, timeout=15, what="the video sequence wrap")
    frames = viewer.video_frames
    await poll(lambda: viewer.video_frames >= frames + 30 and viewer.audio_frames >= 50,
               timeout=15, what="30 more decoded frames after the wrap")
    link = room._fanout._feeds["v"].video
    assert link.retransmitted >= 3
    after_wrap = {s for s in lossy.recovered if s < NEAR_WRAP * 3}
    assert after_wrap, f"no packet past the wrap was recovered ({sorted(lossy.recovered)})"
    await poll(lambda: len(lossy.recovered) >= len(lossy.lost) - 3, timeout=5,
               what="the lost packets resent and decrypted")


def negotiated(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The SRTP profiles the server's DTLS transports (role server) negotiated."""
    return [r.getMessage().rsplit(" ", 1)[-1] for r in caplog.records
            if "RTCDtlsTransport(server) x DTLS handshake negotiated" in r.getMessage()]


async def test_a_viewer_offering_gcm_gets_aes_gcm(harness, poll, caplog):
    """The server is the DTLS server (viewers answer setup:active) and OpenSSL picks by the
    server's order, aiortc's AES-256-GCM first: a viewer that offers GCM (aiortc; Chromium
    with its default GCM suites) gets it."""
    caplog.set_level(logging.DEBUG, logger="aiortc.rtcdtlstransport")
    room = harness.room()
    await harness.publish(room)
    viewer = await harness.join(room, "v")
    await poll(lambda: viewer.video_frames >= 5, what="decoded video")
    assert "SRTP_AEAD_AES_256_GCM" in negotiated(caplog)


@pytest.mark.parametrize("profile", [b"SRTP_AEAD_AES_128_GCM", b"SRTP_AES128_CM_SHA1_80"])
async def test_aes_gcm_and_aes_cm_viewers_both_decode(harness, poll, fanout, profile, caplog):
    """aiortc offers AES-256-GCM, AES-128-GCM, then AES-CM-HMAC (GCM first, as the server
    side of DTLS it picks the first the viewer offers too); a viewer offering only one
    profile still decodes, on either path."""
    assert aiortc_private.srtp_profile_names()[-1] == b"SRTP_AES128_CM_SHA1_80"
    caplog.set_level(logging.DEBUG, logger="aiortc.rtcdtlstransport")
    room = harness.room(fanout=fanout)
    await harness.publish(room)
    offer = await room.add_viewer("v")
    client = harness.client("v")
    from aiortc import RTCSessionDescription

    await client.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    for transceiver in client.pc.getTransceivers():
        aiortc_private.force_srtp_profiles(transceiver.receiver.transport, [profile])
    await client.pc.setLocalDescription(await client.pc.createAnswer())
    await room.accept_viewer_answer("v", client.pc.localDescription.sdp)
    await poll(lambda: client.video_frames >= 10 and client.audio_frames >= 10, timeout=15,
               what=f"decoded video and audio over {profile.decode()}")
    assert profile.decode() in negotiated(caplog)


async def test_a_viewer_whose_socket_errs_is_dropped_and_the_others_stay(harness, poll, fanout):
    """Its socket refuses to send (EPIPE) but still receives: the viewer's RTCP keeps it
    'alive', so only the send error can tell the room it gets nothing (natively from
    send_frame; in Python from asyncio, which swallows it into error_received)."""
    # A silence timeout far beyond the test: only the send failure can remove the viewer.
    room = harness.room(fanout=fanout, timings=RoomTimings(viewer_silence_timeout_s=60.0))
    await harness.publish(room)
    bad = await harness.join(room, "bad")
    good = await harness.join(room, "good")
    await poll(lambda: bad.video_frames > 0 and good.video_frames > 0, what="video at both")

    server_pc = room._viewers["bad"].pc
    ice = aiortc_private.ice_connection(server_pc.getTransceivers()[0].sender.transport)
    pair = aioice_private.nominated_pair(ice, 1)
    sock = pair.protocol.transport.get_extra_info("socket")
    # Connected to the viewer (its packets still arrive), then shut for writing: every
    # send on it now fails with EPIPE.
    sock._sock.connect(pair.remote_addr)
    sock.shutdown(socket.SHUT_WR)

    await poll(lambda: harness.viewer_gone, timeout=5, what="the viewer reported gone")
    assert harness.viewer_gone == [("bad", "failed")]
    assert room.viewer_ids == ["good"]
    frames = good.video_frames
    await poll(lambda: good.video_frames > frames + 10, what="the other viewer still served")


async def test_a_frame_beyond_the_native_bounds_goes_the_python_way(harness, poll):
    """Over 512 packets in one frame (a ~700 KB encoded frame): the C function refuses it
    and the fan-out sends that frame through the Python path, counted, nothing raised."""
    room = harness.room(fanout="native")
    await harness.publish(room)
    viewer = await harness.join(room, "v")
    await poll(lambda: viewer.video_frames >= 5, what="decoded video")
    link = room._fanout._feeds["v"].video
    huge = av.Packet(bytes(700_000))
    huge.pts, huge.time_base = 0, fractions.Fraction(1, 90000)
    sent = link.sent_packets
    room._fanout.push_video(huge, keyframe=False)
    assert link.sent_packets - sent > 512
    frames = viewer.video_frames
    await poll(lambda: viewer.video_frames > frames + 5, what="video going on natively")


def test_the_path_is_chosen_with_its_reason():
    path, native = choose_path("python")
    assert (path.name, native) == ("python", None) and "GOLIVE_FANOUT=python" in path.reason
    path, native = resolve("native")
    assert path.name == "native" and native is not None, path.reason
    assert aiortc_private.srtp_protect_function()[1] == LIBSRTP2_PROTECT
    with pytest.raises(ValueError, match="native, python"):
        choose_path("rust")


async def test_gso_and_sendmmsg_both_deliver(harness, poll):
    """A keyframe is several equal-size packets: one GSO send; with GSO off, sendmmsg."""
    native = resolve("native")[1]
    assert native is not None
    for gso in (True, False):
        native.set_gso(gso)
        try:
            room = harness.room(f"room-{gso}", fanout="native")
            await harness.publish(room)
            viewer = await harness.join(room, f"v-{gso}")
            before = native.counters()
            await poll(lambda v=viewer: v.video_frames >= 20, timeout=15, what="decoded video")
            after = native.counters()
            kind = "gso_sends" if gso else "sendmmsg_sends"
            assert after[kind] > before[kind]
            if not gso:
                assert after["gso_sends"] == before["gso_sends"]
        finally:
            native.set_gso(True)
    await asyncio.sleep(0)


# ---- the C function alone: real sockets, real libsrtp sessions ---------------------------

KEY = bytes(range(30))  # AES-128-CM master key (16) + salt (14)


def _rtp(seq: int, size: int, ssrc: int = 0x1234) -> bytes:
    header = bytes([0x80, 96]) + seq.to_bytes(2, "big") + (seq * 3000).to_bytes(4, "big")
    return header + ssrc.to_bytes(4, "big") + bytes([seq & 0xFF]) * (size - 12)


def _sessions() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    tx = pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    tx.allow_repeat_tx = True  # as aiortc sets it: NACKs protect a sequence number again
    rx = pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
    return pylibsrtp.Session(tx), pylibsrtp.Session(rx)


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "sendmmsg"])
def test_send_frame_protects_on_the_sessions_own_state_across_the_wrap(gso):
    """60 equal 1,200-byte packets a frame (a big keyframe: more than one GSO send) across
    sequence 65,535: every datagram arrives and decrypts with the receiver's ROC, and a
    Python protect of the next packet on the same session continues the same state."""
    native = resolve("native")[1]
    assert native is not None
    tx, rx = _sessions()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    receiver.settimeout(2)
    target = (aiortc_private.srtp_context(tx), sender, native.sockaddr(receiver.getsockname()))
    native.set_gso(gso)
    try:
        before = native.counters()
        seq = 0xFFFF - 70
        for _ in range(3):
            frame = [_rtp((seq + i) & 0xFFFF, 1200) for i in range(60)]
            frame[-1] = frame[-1][:700]  # the last packet of a frame is shorter
            assert native.send(frame, [target]) == []
            for packet in frame:
                assert rx.unprotect(receiver.recv(2048)) == packet
            seq += 60
        after = native.counters()
        kind = "gso_sends" if gso else "sendmmsg_sends"
        assert after[kind] > before[kind]
        # the Python path (a NACK's retransmit) on the same session, after the wrap
        nxt = _rtp(seq & 0xFFFF, 300)
        sender.sendto(tx.protect(nxt), receiver.getsockname())
        assert rx.unprotect(receiver.recv(2048)) == nxt
    finally:
        native.set_gso(True)
        sender.close()
        receiver.close()


def test_send_frame_reports_a_closed_socket_and_sends_nothing():
    native = resolve("native")[1]
    assert native is not None
    tx, _ = _sessions()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = (aiortc_private.srtp_context(tx), sender, native.sockaddr(("127.0.0.1", 9)))
    sender.close()
    assert native.send([_rtp(1, 100)], [target]) == [(0, 0, errno.EBADF)]
    with pytest.raises(ValueError):
        native.sockaddr(("not-an-address", 1))
