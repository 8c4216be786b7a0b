"""The bench: its pure parts (stamp, keyframe detection, counters, flags), the light viewer
patch against a real MediaRoom, and tiny real runs of `python -m bench fanout|join` whose
JSON must be sane and which must leave no process behind, also when interrupted."""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

from bench import stamp
from bench.creator import StampedVideoTrack
from bench.options import parse_counts, parse_rate, parse_size
from bench.processes import end_by_eof
from bench.rtp_counting import RtpCounters, count_only, h264_has_idr, vp8_starts_keyframe
from media import MediaRoom, RoomTimings, aiortc_private, restrict_host_addresses
from media.ice import rtc_configuration
from media.synthetic import HeadlessCreator
from tests.support.servers import assert_gone, bench_result, interrupt_run, run_bench

RUN_TIMEOUT_S = 90

# --- pure parts ------------------------------------------------------------------


def test_stamp_round_trip_and_crc() -> None:
    luma = np.full((360, 640), 128, np.uint8)
    stamp.draw(luma, stamp.Stamp(capture_ms=0xDEADBEEF, seq=4242))
    assert stamp.read(luma) == stamp.Stamp(0xDEADBEEF, 4242)
    luma[: stamp.CELL, : stamp.CELL] = 255 - luma[: stamp.CELL, : stamp.CELL]  # one bit flips
    assert stamp.read(luma) is None
    with pytest.raises(ValueError):
        stamp.check_size(64, 360)


def test_unwrap_ms_handles_the_32_bit_wrap() -> None:
    now = (5 << 32) + 1000
    assert stamp.unwrap_ms(900, now) == now - 100
    assert stamp.unwrap_ms((1 << 32) - 50, now) == now - 1050  # captured before the wrap
    assert stamp.unwrap_ms(1010, now) == now + 10  # another process's clock read a hair later


def test_stamp_survives_two_vp8_encodes() -> None:
    """Creator encode (aiortc default 500 kbit/s) then the room's (800 kbit/s), as in a run."""
    track = StampedVideoTrack(320, 180, 30)
    first, second = Vp8Encoder(), Vp8Encoder()
    second.target_bitrate = 800_000
    decoders = Vp8Decoder(), Vp8Decoder()

    def through(encoder: Vp8Encoder, decoder: Vp8Decoder, frame: Any, key: bool) -> list[Any]:
        payloads, ts = encoder.encode(frame, force_keyframe=key)
        data = b"".join(vp8_depayload(p) for p in payloads)
        return list(decoder.decode(JitterFrame(data=data, timestamp=ts)))

    read = []
    for n in range(20):
        for once in through(first, decoders[0], track.make_stamped_frame(n, 1e9 + n), n == 0):
            for twice in through(second, decoders[1], once, n == 0):
                plane = twice.planes[0]
                luma = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
                read.append(stamp.read(luma, twice.width))
    assert [r.seq if r else None for r in read] == list(range(20))
    assert read[3] is not None and read[3].capture_ms == (int(1e9 + 3) * 1000) % (1 << 32)


def test_keyframe_detection_on_real_vp8_packets() -> None:
    track = StampedVideoTrack(320, 180, 30)
    encoder = Vp8Encoder()
    key, _ = encoder.encode(track.make_stamped_frame(0, 0.0), force_keyframe=True)
    delta, _ = encoder.encode(track.make_stamped_frame(1, 0.033), force_keyframe=False)
    assert vp8_starts_keyframe(key[0])
    assert not any(vp8_starts_keyframe(p) for p in key[1:])  # only a frame's first packet
    assert not any(vp8_starts_keyframe(p) for p in delta)
    assert not vp8_starts_keyframe(b"") and not vp8_starts_keyframe(b"\x90")


def test_h264_idr_detection() -> None:
    assert h264_has_idr(bytes([0x65, 0x88]))  # single NAL, IDR
    assert not h264_has_idr(bytes([0x41, 0x9A]))  # non-IDR slice
    stap = bytes([0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x65, 0x88])  # STAP-A: SPS, IDR
    assert h264_has_idr(stap)
    assert h264_has_idr(bytes([0x7C, 0x85, 0x00]))  # FU-A start of an IDR
    assert not h264_has_idr(bytes([0x7C, 0x05, 0x00]))  # FU-A middle


def test_counters_count_frames_keyframes_and_gaps() -> None:
    firsts: list[bool] = []
    counters = RtpCounters("vp8", on_first_keyframe=lambda: firsts.append(True))

    def video(seq: int, ts: int, marker: bool, payload: bytes) -> None:
        counters.on_rtp(RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts,
                                  marker=marker, payload=payload), "video/VP8")

    video(65534, 3000, False, bytes([0x10, 0x00, 0, 0]))  # keyframe start
    video(65535, 3000, True, bytes([0x00, 0x00]))
    counters.on_rtp(RtpPacket(payload_type=111, sequence_number=7, payload=b"op"), "audio/opus")
    counters.mark()
    video(0, 6000, True, bytes([0x10, 0x01]))  # a delta frame across the wrap
    video(2, 9000, True, bytes([0x10, 0x01]))  # seq 1 lost
    window = counters.window()
    assert (counters.frames, counters.keyframes, firsts) == (3, 1, [True])
    assert window["frames"] == 2 and window["keyframes"] == 0
    assert (window["video_packets"], window["video_expected"], window["lost"]) == (2, 3, 1)
    assert counters.audio_packets == 1
    assert len(counters.delays) == 2 and counters.arrivals.keys() >= {6000, 9000}


def test_flag_parsers() -> None:
    assert parse_size("640x360") == (640, 360)
    assert parse_rate("50/s") == 50 and parse_rate("600/min") == 10
    assert parse_counts("1,10,50") == [1, 10, 50]
    for parser, bad in ((parse_size, "640x362"), (parse_size, "64x64"), (parse_rate, "0/s"),
                        (parse_rate, "x"), (parse_counts, "10,5"), (parse_counts, "0")):
        with pytest.raises(argparse.ArgumentTypeError):
            parser(bad)


# --- the light viewer patch against a real room ------------------------------------


async def test_light_viewer_counts_and_keeps_reporting() -> None:
    """A count_only viewer receives frames and keyframes and is NOT dropped as silent: its
    Receiver Reports keep coming (the room's silence timeout is 2 s here; we wait 5 s;
    aiortc reports every 0.5-1.5 s)."""
    with restrict_host_addresses(["127.0.0.1"]):
        gone: list[tuple[str, str]] = []
        room = MediaRoom("bench-room", timings=RoomTimings(
            keyframe_min_interval_s=0.2, gop_s=2.0, viewer_silence_timeout_s=2.0,
            publisher_silence_timeout_s=2.0, connect_timeout_s=5.0),
            on_viewer_gone=lambda vid, why: gone.append((vid, why)))
        creator = HeadlessCreator.synthetic(320, 240)
        viewer = RTCPeerConnection(rtc_configuration())
        keyframe = asyncio.Event()
        counters = RtpCounters("vp8", on_first_keyframe=keyframe.set)
        try:
            await creator.accept_answer(await room.publish(await creator.offer()))
            offer = await room.add_viewer("light")
            await viewer.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            for transceiver in viewer.getTransceivers():
                count_only(transceiver.receiver, counters)
            await viewer.setLocalDescription(await viewer.createAnswer())
            await room.accept_viewer_answer("light", viewer.localDescription.sdp)
            await asyncio.wait_for(keyframe.wait(), 10)
            frames_then = counters.frames
            await asyncio.sleep(5.0)
            assert counters.keyframes >= 1 and counters.frames > frames_then + 100
            assert counters.audio_packets > 150
            assert gone == [] and room.viewer_ids == ["light"]
            # the decoder thread was stopped: nothing decoded piles up
            assert all(t.receiver.track is None
                       or aiortc_private.frames_waiting(t.receiver.track) <= 1
                       for t in viewer.getTransceivers())
        finally:
            for close in (viewer.close, room.close, creator.close):
                await asyncio.wait_for(close(), 10)


class CountingInbound:
    """A viewer's inbound SRTP session that counts the packets it decrypts."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.unprotected = 0

    def unprotect(self, data: bytes) -> bytes:
        self.unprotected += 1
        return self._session.unprotect(data)

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return self._session.unprotect_rtcp(data)


async def test_light_viewer_decrypts_only_the_first_packet_of_each_frame() -> None:
    """After its first keyframe a light viewer reads sizes, sequence numbers, timestamps
    and markers from the SRTP header in the clear; it decrypts only each video frame's
    first packet (its keyframe bits): a load generator, not a decoder (issue 14)."""
    with restrict_host_addresses(["127.0.0.1"]):
        room = MediaRoom("bench-room", timings=RoomTimings(keyframe_min_interval_s=0.2,
                                                           gop_s=1.0))
        creator = HeadlessCreator.synthetic(320, 240)
        viewer = RTCPeerConnection(rtc_configuration())
        keyframe = asyncio.Event()
        counters = RtpCounters("vp8", on_first_keyframe=keyframe.set)
        try:
            await creator.accept_answer(await room.publish(await creator.offer()))
            offer = await room.add_viewer("light")
            await viewer.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            for transceiver in viewer.getTransceivers():
                count_only(transceiver.receiver, counters)
            await viewer.setLocalDescription(await viewer.createAnswer())
            await room.accept_viewer_answer("light", viewer.localDescription.sdp)
            await asyncio.wait_for(keyframe.wait(), 10)
            dtls = viewer.getTransceivers()[0].receiver.transport
            inbound = CountingInbound(aiortc_private.srtp_inbound(dtls))
            aiortc_private.set_srtp_inbound(dtls, inbound)
            before = dict(counters.window(), audio=counters.audio_packets)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if counters.keyframes >= before["keyframes"] + 2:
                    break
            frames = counters.frames - before["frames"]
            packets = (counters.video_packets - before["video_packets"]
                       + counters.audio_packets - before["audio"])
            assert frames > 30 and counters.keyframes >= before["keyframes"] + 2
            assert inbound.unprotected <= frames + 2  # one per frame (and the one in hand)
            assert packets > 2 * inbound.unprotected
            assert counters.window()["lost"] == 0
        finally:
            for close in (viewer.close, room.close, creator.close):
                await asyncio.wait_for(close(), 10)


async def test_join_cost_measures_the_servers_cpu_per_join() -> None:
    from bench import join_cost

    figures = await join_cost.run(joins=4, batch=2)
    assert figures["joins"] == 4 and figures["seconds"] > 0
    assert 0 < figures["server_ms_per_join"] < 1000


# --- real runs ------------------------------------------------------------------------








def test_fanout_tiny_run(tmp_path: Path) -> None:
    proc = run_bench("fanout", "--viewers", "2", "--duration", "3", "--out", str(tmp_path),
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, err + out
    result = bench_result(tmp_path)
    assert result["errors"] == [] and not result["interrupted"]
    (step,) = result["steps"]
    assert step["viewers"] == step["watching"] == 2 and step["not_watching"] == {}
    assert step["joins"]["ok"] == 2 and step["joins"]["connected_s"]["p50"] > 0
    assert step["joins"]["first_keyframe_s"]["p50"] > 0
    assert step["fps"]["min"] > 10  # frames received by both viewers
    assert step["delivered"]["video_packets_per_s"] > 0 and step["loss"]["lost"] == 0
    assert 0 < step["latency_ms"]["arrival"]["p50"] < 2000
    assert step["latency_ms"]["decoded"]["p50"] >= step["latency_ms"]["arrival"]["min"]
    assert step["probes"]["count"] == 1 and step["probes"]["stamp_errors"] == 0
    assert step["cpu"]["server"] > 0 and step["server_rss_mb"] > 0
    assert "srv cpu" in out and "JSON:" in out
    assert_gone(list(result["processes"].values()))


def test_join_tiny_run(tmp_path: Path) -> None:
    proc = run_bench("join", "--viewers", "3", "--rate", "20/s", "--duration", "1",
                  "--out", str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, err + out
    result = bench_result(tmp_path)
    assert result["errors"] == []
    storm = result["storm"]
    assert storm["ok"] == 3 and storm["failed"] == 0
    assert 0 < storm["connected_s"]["p50"] <= storm["first_keyframe_s"]["p50"]
    assert storm["first_decoded_s"]["n"] == 1  # the probe
    assert result["steady"]["fps"]["min"] > 10
    assert result["steady"]["latency_ms"]["arrival"]["n"] > 0
    assert_gone(list(result["processes"].values()))


def test_join_storm_past_the_admission_bound_retries_and_measures_running_viewers(
        tmp_path: Path) -> None:
    """One handshake at a time and no queue: the storm's joins are refused with
    retry_after, come back and all get in; the viewers watching before it are measured."""
    proc = run_bench("join", "--viewers", "4", "--rate", "40/s", "--running", "2",
                     "--duration", "0", "--after", "1",
                     "--server-env", "GOLIVE_JOIN_HANDSHAKES=1",
                     "--server-env", "GOLIVE_JOIN_QUEUE=0",
                     "--out", str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, err + out
    result = bench_result(tmp_path)
    assert result["errors"] == []
    storm = result["storm"]
    assert storm["ok"] == 4 and storm["failed"] == 0
    assert storm["refusals"]["total"] > 0
    assert result["running"] == {"n": 2, "ok": 2}
    assert storm["running_fps"]["n"] == 2 and storm["running_fps"]["min"] > 0
    assert result["after"]["running_fps"]["n"] == 2 and result["after"]["all_fps"]["n"] == 6
    assert "running viewers' fps" in out
    assert_gone(list(result["processes"].values()))


def test_join_rounds_one_viewer_into_a_quiet_room(tmp_path: Path) -> None:
    """`--viewers 1 --rounds 3`: one decoding viewer joins, is timed to its first decoded
    frame and leaves, three times; the figures pool the rounds and give each's."""
    proc = run_bench("join", "--viewers", "1", "--rounds", "3", "--duration", "0",
                     "--after", "0.5", "--settle", "0.2",
                     "--out", str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, err + out
    result = bench_result(tmp_path)
    assert result["errors"] == []
    assert [r["ok"] for r in result["rounds"]] == [1, 1, 1]
    assert all(r["first_decoded_s"]["n"] == 1 for r in result["rounds"])  # each a probe
    storm = result["storm"]
    assert storm["ok"] == 3 and storm["first_decoded_s"]["n"] == 3
    assert 0 < storm["first_frame_s"]["p50"] <= storm["first_decoded_s"]["p50"]
    assert result["after"]["all_fps"]["n"] == 1  # the earlier rounds' viewers left
    assert "first decoded per round" in out
    assert_gone(list(result["processes"].values()))


def test_interrupted_run_leaves_no_process(tmp_path: Path) -> None:
    proc = run_bench("fanout", "--viewers", "2", "--duration", "60", "--out", str(tmp_path),
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, started = interrupt_run(proc, "measuring", tmp_path, RUN_TIMEOUT_S)
    assert len(started) >= 4  # server, its redis, the creator, a worker


async def test_end_by_eof_closes_stdin_then_kills_a_child_that_stays() -> None:
    """bench.processes.end_by_eof, the stop of the namespaced viewer and creator: a child
    that exits on EOF exits by itself; one that stays past the grace is SIGKILLed."""
    async def child(code: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdin=asyncio.subprocess.PIPE)

    leaves = await child("import sys; sys.stdin.read()")
    await end_by_eof(leaves)
    assert leaves.returncode == 0
    stays = await child("import sys, time; sys.stdin.read(); time.sleep(60)")
    await end_by_eof(stays, grace=0.5)
    assert stays.returncode == -signal.SIGKILL
    await end_by_eof(stays)  # already ended, and None: nothing to do
    await end_by_eof(None)
