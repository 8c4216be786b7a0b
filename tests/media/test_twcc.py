"""Transport-cc feedback (media/twcc.py), read back by a parser written from the draft
(draft-holmer-rmcat-transport-wide-cc-extensions-01, section 3.1), and the answer the
ingest gives an offer that has transport-cc."""

from __future__ import annotations

import struct

from media.negotiation import offered_extension_id, with_transport_cc, without_bandwidth_feedback
from media.twcc import MAX_PER_FEEDBACK, TWCC_URI, TwccRecorder


def parse(packet: bytes) -> dict[str, object]:
    """A transport feedback packet: its fields, and each sequence number's arrival (in
    microseconds from the reference time's origin) or None when reported lost."""
    first, pt, length = struct.unpack("!BBH", packet[:4])
    assert first >> 6 == 2 and first & 0x1F == 15 and pt == 205
    assert (length + 1) * 4 == len(packet)
    end = len(packet) - (packet[-1] if first & 0x20 else 0)
    sender, media, base, count, ref_and_count = struct.unpack("!IIHHI", packet[4:20])
    reference, fb_count = ref_and_count >> 8, ref_and_count & 0xFF
    symbols: list[int] = []
    pos = 20
    while len(symbols) < count:
        (chunk,) = struct.unpack("!H", packet[pos:pos + 2])
        pos += 2
        if chunk >> 15 == 0:  # run length
            symbols += [(chunk >> 13) & 3] * (chunk & 0x1FFF)
        elif (chunk >> 14) & 1:  # two-bit vector
            symbols += [(chunk >> (12 - 2 * i)) & 3 for i in range(7)]
        else:  # one-bit vector
            symbols += [(chunk >> (13 - i)) & 1 for i in range(14)]
    symbols = symbols[:count]
    arrivals: dict[int, int | None] = {}
    time_us = reference * 64_000
    for i, symbol in enumerate(symbols):
        seq = (base + i) & 0xFFFF
        if symbol == 0:
            arrivals[seq] = None
            continue
        if symbol == 1:
            delta = packet[pos]
            pos += 1
        else:
            (delta,) = struct.unpack("!h", packet[pos:pos + 2])
            pos += 2
        time_us += delta * 250
        arrivals[seq] = time_us
    assert pos <= end, "deltas run into the padding"
    return {"sender": sender, "media": media, "base": base, "count": count,
            "fb_count": fb_count, "arrivals": arrivals}


def test_arrivals_and_losses_come_back_to_the_quarter_millisecond() -> None:
    twcc = TwccRecorder(origin_s=100.0)
    sent = {10: 100.0105, 11: 100.0112, 13: 100.0301, 12: 100.0299, 15: 100.0350}
    for seq, at in sent.items():
        twcc.record(seq, at)
    packet = twcc.feedback(sender_ssrc=1, media_ssrc=2)
    assert packet is not None and len(packet) % 4 == 0
    got = parse(packet)
    assert (got["sender"], got["media"], got["base"], got["count"]) == (1, 2, 10, 6)
    arrivals = got["arrivals"]
    assert isinstance(arrivals, dict)
    assert arrivals[14] is None  # never came: reported lost
    for seq, at in sent.items():
        assert abs(arrivals[seq] - (at - 100.0) * 1e6) <= 125, seq  # nearest 250 us
    assert twcc.feedback(1, 2) is None  # each arrival is reported once
    twcc.record(14, 100.2)  # too late: already reported lost
    assert twcc.feedback(1, 2) is None


def test_reordering_is_a_negative_delta_and_counts_go_on() -> None:
    twcc = TwccRecorder(origin_s=0.0)
    twcc.record(1, 5.000)
    twcc.record(0, 5.020)  # sequence 0 arrived 20 ms after 1
    first = parse(twcc.feedback(9, 9) or b"")
    assert first["arrivals"] == {0: 5_020_000, 1: 5_000_000}
    twcc.record(2, 5.030)
    twcc.record(3, 9.000)  # ~4 s later: a large delta
    second = parse(twcc.feedback(9, 9) or b"")
    assert second["fb_count"] == first["fb_count"] + 1  # type: ignore[operator]
    assert second["arrivals"] == {2: 5_030_000, 3: 9_000_000}


def test_sequence_numbers_wrap_and_a_burst_is_split() -> None:
    twcc = TwccRecorder(origin_s=0.0)
    for i in range(MAX_PER_FEEDBACK + 20):
        twcc.record((65_530 + i) & 0xFFFF, 1.0 + i * 0.001)
    first = parse(twcc.feedback(1, 1) or b"")
    assert first["base"] == 65_530 and first["count"] == MAX_PER_FEEDBACK
    second = parse(twcc.feedback(1, 1) or b"")
    assert second["base"] == (65_530 + MAX_PER_FEEDBACK) & 0xFFFF and second["count"] == 20
    assert all(v is not None for v in second["arrivals"].values())  # type: ignore[union-attr]


# The video section of Chromium 14x's offer, cut to what the answer depends on.
OFFER = "\r\n".join([
    "v=0", "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    f"a=extmap:4 {TWCC_URI}", "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 transport-cc",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", f"a=extmap:5 {TWCC_URI}", ""])
ANSWER = "\r\n".join([
    "v=0", "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid", "a=mid:0",
    "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack", "a=rtcp-fb:96 goog-remb",
    "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=rtpmap:111 opus/48000/2", ""])


def test_the_answer_takes_transport_cc_in_the_video_section_instead_of_remb() -> None:
    assert offered_extension_id(OFFER, "video", TWCC_URI) == 4
    assert offered_extension_id(OFFER, "audio", TWCC_URI) == 5
    assert offered_extension_id(ANSWER, "video", TWCC_URI) is None
    answer = with_transport_cc(without_bandwidth_feedback(ANSWER), 4, TWCC_URI)
    video, audio = answer.split("m=audio")
    assert f"a=extmap:4 {TWCC_URI}" in video.split("\r\n")
    assert "a=rtcp-fb:96 transport-cc" in video.split("\r\n")
    assert "a=rtcp-fb:97 transport-cc" not in video  # not on RTX
    assert "goog-remb" not in answer and "abs-send-time" not in answer
    assert "transport-cc" not in audio and TWCC_URI not in audio
