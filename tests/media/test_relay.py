"""The cascade's relay (media/relay.py): a real RelayServer on loopback, real RelayClients
and raw sockets, an origin MediaRoom with a real headless creator and an edge MediaRoom
fed by the relay with real decoding viewers.

Rules: keys and proofs, messages and frames round-trip, garbage is refused.
Faults: a client without the secret, a forged proof, garbage, an oversized message, a
silent client and an unknown live are each refused and logged, and the origin keeps
serving; a slow edge skips to the next keyframe while the origin and a fast edge go on.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import os
import socket
from typing import Any

import av
import msgpack
import pytest

from media import aiortc_private
from media.errors import MediaError, MediaErrorCode
from media.relay import (
    NONCE_BYTES,
    RelayClient,
    RelayError,
    RelayServer,
    RenditionTap,
    frame_of,
    pack,
    proof,
    read_message,
    relay_key,
    renditions_of,
    subscription,
    unpack,
)
from media.renditions import Rendition
from tests.support.poll import poll as poll_for

KEY = relay_key(b"a test secret of more than thirty-two bytes")
LIVE = "live-1"


# ---- the rules ------------------------------------------------------------------------


def test_keys_and_proofs() -> None:
    assert relay_key(b"s") == relay_key(b"s") != relay_key(b"t")
    assert relay_key(b"s") != b"s" and len(relay_key(b"s")) == 32
    a, b = os.urandom(32), os.urandom(32)
    assert proof(KEY, b"edge", a, b) != proof(KEY, b"origin", a, b)  # roles differ
    assert proof(KEY, b"edge", a, b) != proof(KEY, b"edge", b, a)  # nonces ordered
    assert proof(KEY, b"edge", b"ab", b"c") != proof(KEY, b"edge", b"a", b"bc")


def test_messages_and_frames_round_trip_and_garbage_is_refused() -> None:
    assert unpack(pack(["keyframe"])[4:]) == ["keyframe"]
    for bad in (b"", b"\xc1", msgpack.packb({"a": 1}), msgpack.packb([]), msgpack.packb([1])):
        with pytest.raises(RelayError) as caught:
            unpack(bad)
        assert caught.value.code == "invalid"
    packet = av.Packet(b"\x10\x02\x00")
    packet.pts = 3000
    packet.time_base = fractions.Fraction(1, 90000)
    from media.relay import audio_message, video_message
    frame = frame_of(unpack(pack(video_message(packet, True))[4:]))
    assert (frame.kind, bytes(frame.packet), frame.packet.pts, frame.keyframe) == (
        "video", b"\x10\x02\x00", 3000, True)
    assert frame.packet.time_base == fractions.Fraction(1, 90000)
    assert frame_of(audio_message(packet)).kind == "audio"
    for bad_frame in (["v", b"x", 1, 1, 0, True, 0.0], ["v", "text", 1, 1, 9, True, 0.0],
                      ["a", b"x", None, 1, 48000, 0.0], ["v"], ["zz", b"x"]):
        with pytest.raises(RelayError):
            frame_of(bad_frame)


# ---- a synthetic source (a real producer of packets, for the backpressure test) --------


class PacketSource:
    """A RelaySource that makes 32 KB frames with pts = their index; every 30th is a
    keyframe, and so is the next one after a keyframe request."""

    codec = "vp8"
    ladder = (Rendition(720, 1_800_000),)

    def __init__(self, size: int = 32 * 1024) -> None:
        self.taps: list[RenditionTap] = []
        self.size = size
        self.index = 0
        self.wanted = False
        self.keyframe_requests = 0

    def add_relay(self, tap: RenditionTap) -> None:
        self.taps.append(tap)

    def remove_relay(self, tap: RenditionTap) -> None:
        self.taps.remove(tap)

    def request_keyframe(self, rendition: int = 0) -> None:
        self.keyframe_requests += 1
        self.wanted = True

    def push(self) -> bool:
        keyframe = self.index % 30 == 0 or self.wanted
        self.wanted = False
        packet = av.Packet(bytes([self.index % 256]) * self.size)
        packet.pts = self.index
        packet.time_base = fractions.Fraction(1, 90000)
        for tap in list(self.taps):
            tap.video(packet, keyframe, 0)
        self.index += 1
        return keyframe


class Collect:
    """A RelaySink that keeps (pts, keyframe) of what it is fed."""

    def __init__(self) -> None:
        self.video: list[tuple[int, bool]] = []
        self.audio = 0

    def feed_video(self, packet: av.Packet, keyframe: bool, rendition: int = 0) -> None:
        self.video.append((int(packet.pts or 0), keyframe))

    def feed_audio(self, packet: av.Packet) -> None:
        self.audio += 1

    def feed_frame(self, keyed: frozenset[int], width: int, height: int) -> None:
        pass

    def renditions_taken(self) -> frozenset[int]:
        return frozenset({0})

    def rendition_dropped(self, rendition: int) -> None:
        raise AssertionError("the top rendition is never dropped here")


async def raw_subscribe(port: int, live_id: str, key: bytes = KEY, *,
                        rcvbuf: int | None = None, renditions: list[int] | None = None
                        ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, list[Any]]:
    """A hand-made edge (the protocol from the module's docstring), to misbehave with."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    hello = await read_message(reader)
    nonce = os.urandom(NONCE_BYTES)
    writer.write(pack(["auth", "raw-edge", nonce,
                       proof(key, b"edge", hello[2], nonce, b"raw-edge")]))
    welcome = await read_message(reader)
    if welcome[0] != "welcome":
        return reader, writer, welcome
    writer.write(pack(["subscribe", live_id] if renditions is None else
                      ["subscribe", live_id, renditions]))
    return reader, writer, await read_message(reader)


async def read_while_pushing(reader: asyncio.StreamReader, source: Any) -> list[Any]:
    """Every message a hand-made edge reads while `source` pushes 40 more frames, up to the
    last frame pushed (an edge that fell behind, reading again)."""
    messages: list[Any] = []

    async def read_all() -> None:
        while True:
            messages.append(await read_message(reader))

    def caught_up() -> bool:
        frames = [m for m in messages if m[0] == "v"]
        return bool(frames) and frames[-1][2] == source.index - 1

    drain = asyncio.create_task(read_all())
    try:
        for _ in range(40):
            source.push()
            await asyncio.sleep(0.005)
        await poll_for(caught_up, what="the slow edge")
    finally:
        drain.cancel()
        await asyncio.gather(drain, return_exceptions=True)
    return messages


def skips(frames: list[tuple[int, bool]]) -> list[int]:
    """The indexes in (pts, keyframe) frames where the pts jumps past the next one."""
    return [i for i in range(1, len(frames)) if frames[i][0] != frames[i - 1][0] + 1]


@pytest.fixture
async def relay_server() -> Any:
    sources: dict[str, Any] = {}
    server = RelayServer(KEY, "origin-node", sources.get, queue_frames=64,
                         handshake_timeout_s=0.5)
    await server.start("127.0.0.1", 0)
    server.sources = sources  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        await server.close()


# ---- faults ---------------------------------------------------------------------------


async def test_clients_without_the_secret_garbage_and_unknown_lives_are_refused(
        relay_server: RelayServer, poll: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="golive.relay")
    source = PacketSource(size=100)
    relay_server.sources[LIVE] = source  # type: ignore[attr-defined]
    address = f"127.0.0.1:{relay_server.port}"

    # no secret (another key), then a forged proof
    with pytest.raises(RelayError) as caught:
        await RelayClient(address, relay_key(b"not the cluster's secret"), "evil", LIVE).open()
    assert caught.value.code == "unauthorized"
    reader, writer = await asyncio.open_connection("127.0.0.1", relay_server.port)
    hello = await read_message(reader)
    assert hello[0] == "hello"
    writer.write(pack(["auth", "evil", os.urandom(NONCE_BYTES), os.urandom(32)]))
    assert (await read_message(reader))[:2] == ["refused", "unauthorized"]
    writer.close()
    # garbage, an oversized length, and a client that never speaks (handshake timeout)
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\xff\xff\xff\xff", b""):
        reader, writer = await asyncio.open_connection("127.0.0.1", relay_server.port)
        await read_message(reader)
        writer.write(junk)
        assert await reader.read() is not None  # the origin hangs up
        writer.close()
    # an unknown live, with the right secret
    with pytest.raises(RelayError) as caught:
        await RelayClient(address, KEY, "edge-b", "no-such-live").open()
    assert caught.value.code == "not_found"
    await poll(lambda: sum(relay_server.refused.values()) >= 6, what="every refusal counted")
    assert relay_server.refused == {"unauthorized": 2, "invalid": 2, "timeout": 1,
                                    "not_found": 1}
    assert "relay client refused" in caplog.text and "Traceback" not in caplog.text

    # and the origin keeps serving a real edge
    sink = Collect()
    client = RelayClient(address, KEY, "edge-b", LIVE, sink)
    await client.open()
    try:
        assert client.codec == "vp8"
        for _ in range(5):
            source.push()
            await asyncio.sleep(0.01)
        await poll(lambda: len(sink.video) == 5, what="frames at the good edge")
    finally:
        await client.close()


async def test_a_slow_edge_skips_to_the_next_keyframe_and_the_origin_never_waits(
        relay_server: RelayServer, poll: Any) -> None:
    source = PacketSource()
    relay_server.sources[LIVE] = source  # type: ignore[attr-defined]
    fast = Collect()
    client = RelayClient(f"127.0.0.1:{relay_server.port}", KEY, "edge-fast", LIVE, fast)
    await client.open()
    reader, writer, stream = await raw_subscribe(relay_server.port, LIVE, rcvbuf=4096)
    assert stream == ["stream", "vp8"]
    await poll(lambda: len(relay_server.links) == 2, what="both edges subscribed")
    slow = next(link for link in relay_server.links if link.edge == "raw-edge")
    try:
        # ~19 MB while the slow edge reads nothing: far beyond its queue and the sockets'
        # buffers. Each push returns at once (a blocked origin would never get through).
        for _ in range(600):
            source.push()
            assert slow.queued <= slow.bound
            await asyncio.sleep(0.002)
        await poll(lambda: len(fast.video) == 600, what="every frame at the fast edge")
        assert [pts for pts, _ in fast.video] == list(range(600))
        assert slow.dropped > 0
        assert source.keyframe_requests >= 2  # the subscribe's and the slow edge's

        # the slow edge reads again: past the gap, its stream resumes at a keyframe
        got = [(m[2], m[5]) for m in await read_while_pushing(reader, source) if m[0] == "v"]
        gaps = skips(got)
        assert gaps, "the slow edge must have skipped frames"
        assert all(got[i][1] for i in gaps), "after each gap, a keyframe"
        counts = relay_server.edge_counts()
        assert counts["raw-edge"].dropped == slow.dropped > 0
        assert counts["edge-fast"].dropped == 0 and counts["edge-fast"].relayed >= 640
    finally:
        writer.close()
        await client.close()
    await poll(lambda: not relay_server.links and not source.taps,
               what="both relays closed, the tap removed")


async def test_a_stalled_edge_is_dropped_and_a_silent_origin_is_noticed(poll: Any) -> None:
    source = PacketSource()
    server = RelayServer(KEY, "origin-node", {LIVE: source}.get, queue_frames=16,
                         ping_s=0.1, stall_s=0.3)
    await server.start("127.0.0.1", 0)
    quiet = RelayServer(KEY, "quiet-origin", {LIVE: PacketSource()}.get, ping_s=60)
    await quiet.start("127.0.0.1", 0)
    ended: list[str] = []
    listener = RelayClient(f"127.0.0.1:{quiet.port}", KEY, "edge-b", LIVE,
                           on_end=ended.append, silence_s=0.3)
    try:
        _, writer, stream = await raw_subscribe(server.port, LIVE, rcvbuf=4096)
        assert stream == ["stream", "vp8"]
        # the edge reads nothing: once its socket takes no bytes for 0.3 s, it is dropped
        for _ in range(5000):  # ~10 s at most
            if not server.links:
                break
            source.push()
            await asyncio.sleep(0.002)
        assert not server.links, "the stalled edge was never dropped"
        assert server.edge_counts()["raw-edge"].dropped > 0 and not source.taps
        writer.close()
        # an origin that sends nothing (no frame, no ping) is noticed by its edge
        await listener.open()
        await poll(lambda: ended == ["relay_lost"], what="the silent origin noticed")
    finally:
        await listener.close()
        await server.close()
        await quiet.close()


# ---- an edge room: a real origin room, a relay and decoding viewers at the edge --------


async def test_an_edge_room_fed_by_a_relay_serves_its_own_viewers(harness: Any,
                                                                  poll: Any) -> None:
    origin = harness.room("origin")
    await harness.publish(origin, width=320, height=240)
    server = RelayServer(KEY, "origin-node", {LIVE: origin}.get)
    await server.start("127.0.0.1", 0)
    ended: list[str] = []
    client = RelayClient(f"127.0.0.1:{server.port}", KEY, "edge-b", LIVE,
                         on_end=ended.append)
    try:
        await client.open()
        edge = harness.room("edge", codec=client.codec,
                            upstream_keyframes=client.request_keyframe)
        client.sink = edge
        assert edge.is_edge and not edge.has_publisher
        with pytest.raises(MediaError) as refused:
            await edge.publish("v=0")
        assert refused.value.code is MediaErrorCode.CONFLICT
        first = await harness.join(edge, "v1")
        second = await harness.join(edge, "v2")
        await poll(lambda: first.video_frames >= 5 and second.video_frames >= 5,
                   timeout=15, what="decoded video at both edge viewers")
        await poll(lambda: first.audio_frames >= 5, what="audio at the edge")
        # a NACK is answered from the edge's own RTP history
        receiver = next(r for r in first.pc.getReceivers()
                        if r.track and r.track.kind == "video")
        link = edge._fanout._feeds["v1"].video
        newest = edge._fanout._streams["video"]._seq
        await aiortc_private.send_nack(receiver, first.video_ssrc(),
                                       [(newest - i) & 0xFFFF for i in (3, 2, 1)])
        await poll(lambda: link.retransmitted >= 3, what="3 packets resent by the edge")
        assert origin._fanout._feeds == {}  # the origin has no viewer to resend to
        # a late joiner at the edge starts from the edge's own keyframe run
        late = await harness.join(edge, "v3")
        await poll(lambda: late.video_frames >= 3, timeout=10, what="the late joiner")
        # a PLI the edge cannot answer goes upstream, throttled
        asked = client.keyframe_requests
        origin_requests = origin.stats().keyframe_requests
        for _ in range(5):
            await first.send_pli()
        await poll(lambda: client.keyframe_requests > asked, what="the PLI forwarded")
        await poll(lambda: origin.stats().keyframe_requests > origin_requests,
                   what="the origin asked")
        assert client.keyframe_requests - asked <= 2  # 5 PLIs, one (or two) requests
        assert origin.viewer_ids == [] and len(server.links) == 1  # one relay, no viewers
        assert max(client.latencies) < 5
        # the live ends: the origin tells the edge with its reason
        assert server.end_live(LIVE, "ended_by_creator") == 1
        await poll(lambda: ended == ["ended_by_creator"], what="the end at the edge")
        await poll(lambda: not server.links, what="the relay closed at the origin")
        assert origin._taps == [] and origin._relays == []
    finally:
        await client.close()
        await server.close()


# ---- renditions through the relay ------------------------------------------------------


def test_an_edge_subscribes_to_what_its_viewers_take_and_lets_go_after_a_linger() -> None:
    last: dict[int, float] = {}
    assert subscription(frozenset(), last, 0.0, 3.0) == {0}  # no viewer yet: the top one
    assert subscription(frozenset({2}), last, 1.0, 3.0) == {0, 2}  # 0 lingers
    assert subscription(frozenset({2}), last, 3.5, 3.0) == {2}  # 0 let go after 3 s
    assert subscription(frozenset({1}), last, 4.0, 3.0) == {1, 2}  # a move down, 2 kept
    assert subscription(frozenset({2}), last, 5.0, 3.0) == {1, 2}  # and back: no resubscribe
    assert subscription(frozenset({2}), last, 8.5, 3.0) == {2}
    assert renditions_of([0, 2], 3) == {0, 2}
    for bad in (None, [3], [-1], ["0"], [True], [0.0], list(range(9)), {"0": 1}):
        with pytest.raises(RelayError) as caught:
            renditions_of(bad, 3)
        assert caught.value.code == "invalid", bad
    packet = av.Packet(b"\x10\x02\x00")
    packet.pts, packet.time_base = 3000, fractions.Fraction(1, 90000)
    from media.relay import video_message
    assert frame_of(unpack(pack(video_message(packet, False, 2))[4:])).rendition == 2
    with pytest.raises(RelayError):
        frame_of(["v", b"x", 1, 1, 90000, True, 0.0, 99])


class LadderSource(PacketSource):
    """A PacketSource with three renditions: each push is one source frame, a mark and a
    packet of each rendition its relays take (keyframes on request, per rendition)."""

    ladder = (Rendition(720, 1_800_000), Rendition(360, 600_000), Rendition(180, 200_000))

    def __init__(self) -> None:
        super().__init__(size=1024)
        self.asked: list[int] = []
        self.wanted_renditions: set[int] = set()

    def request_keyframe(self, rendition: int = 0) -> None:
        self.asked.append(rendition)
        self.wanted_renditions.add(rendition)

    def push(self) -> bool:
        taken = frozenset().union(*(tap.renditions() for tap in self.taps))
        keyed = frozenset(r for r in taken if self.index % 30 == 0 or r in self.wanted_renditions)
        self.wanted_renditions -= keyed
        for tap in list(self.taps):
            tap.begin_frame(keyed, 640, 360)
        for rendition in sorted(taken):
            packet = av.Packet(bytes([rendition]) * self.size)
            packet.pts, packet.time_base = self.index, fractions.Fraction(1, 90000)
            for tap in list(self.taps):
                tap.video(packet, rendition in keyed, rendition)
        self.index += 1
        return bool(keyed)


class LadderSink(Collect):
    """A sink whose viewers take `taken`; it keeps (pts, keyframe, rendition) and marks."""

    def __init__(self) -> None:
        super().__init__()
        self.taken = frozenset({0})
        self.frames: list[tuple[int, bool, int]] = []
        self.marks: list[frozenset[int]] = []
        self.dropped: list[int] = []

    def feed_video(self, packet: av.Packet, keyframe: bool, rendition: int = 0) -> None:
        self.frames.append((int(packet.pts or 0), keyframe, rendition))

    def feed_frame(self, keyed: frozenset[int], width: int, height: int) -> None:
        self.marks.append(keyed)

    def renditions_taken(self) -> frozenset[int]:
        return self.taken

    def rendition_dropped(self, rendition: int) -> None:
        self.dropped.append(rendition)


async def test_the_relay_carries_the_renditions_an_edge_wants_each_from_its_keyframe(
        relay_server: RelayServer, poll: Any) -> None:
    source = LadderSource()
    relay_server.sources[LIVE] = source  # type: ignore[attr-defined]
    sink = LadderSink()
    client = RelayClient(f"127.0.0.1:{relay_server.port}", KEY, "edge-b", LIVE, sink,
                         unsubscribe_after_s=0.2)
    await client.open()
    try:
        assert client.ladder == source.ladder and client.subscribed == {0}
        await poll(lambda: relay_server.links, what="subscribed")
        [link] = relay_server.links
        for _ in range(3):
            source.push()
            await asyncio.sleep(0.01)
        await poll(lambda: len(sink.frames) == 3, what="the top rendition")
        assert {r for _, _, r in sink.frames} == {0} and sink.marks[0] == {0}

        # the edge's viewers move to 180: it subscribes, 180 starts at its keyframe and,
        # the top one lingered out, the relay carries 180 alone
        sink.taken = frozenset({2})
        asked = len(source.asked)
        for _ in range(40):
            source.push()
            await asyncio.sleep(0.01)
            if link.renditions == {2}:
                break
        assert link.renditions == {2} and sink.dropped == [0]
        assert 2 in source.asked[asked:]
        low = [(pts, key) for pts, key, r in sink.frames if r == 2]
        assert low and low[0][1], "180 starts at a keyframe"
        marked = [keyed for keyed in sink.marks if 2 in keyed]
        assert marked, "the keyframe's mark names 180 (the edge moves its viewers there)"
        assert client.request_keyframe(1) is None and client.keyframe_requests == 0
        client.request_keyframe(2)
        await poll(lambda: source.asked[-1] == 2 and client.keyframe_requests == 1,
                   what="a keyframe of 180 asked")

        # a garbage "want" ends this edge's relay alone
        _reader, writer, stream = await raw_subscribe(relay_server.port, LIVE, renditions=[1])
        assert stream[0] == "stream" and stream[2] == [[720, 1_800_000], [360, 600_000],
                                                       [180, 200_000]]
        writer.write(pack(["want", [7]]))
        await poll(lambda: relay_server.refused.get("invalid"), what="the bad want refused")
        writer.close()
        _, bad_writer, refused = await raw_subscribe(relay_server.port, LIVE, renditions=[5])
        assert refused[:2] == ["refused", "invalid"]
        bad_writer.close()
        assert link in relay_server.links
    finally:
        await client.close()
    await poll(lambda: not relay_server.links and not source.taps, what="closed")


async def test_an_edge_viewer_moved_by_its_link_switches_at_a_keyframe_through_the_relay(
        harness: Any, poll: Any) -> None:
    """An origin room with the ladder, a relay and an edge room with its ladder: the edge's
    auto viewer loses packets, ABR moves it down at the edge (a rendition the edge then
    subscribes to, started at its keyframe), it keeps decoding, and pinned back to the
    top; the origin stops encoding the lower rendition when the edge let go of it."""
    from media.abr import AbrConfig
    from media.renditions import parse_ladder
    from tests.support.lossy import wrap_viewer_srtp

    origin = harness.room("origin", renditions=parse_ladder("720:1800,360:600,180:200"))
    await harness.publish(origin, width=640, height=360)
    server = RelayServer(KEY, "origin-node", {LIVE: origin}.get)
    await server.start("127.0.0.1", 0)
    client = RelayClient(f"127.0.0.1:{server.port}", KEY, "edge-b", LIVE,
                         unsubscribe_after_s=0.5)
    try:
        await client.open()
        edge = harness.room("edge", codec=client.codec, renditions=client.ladder,
                            upstream_keyframes=client.request_keyframe,
                            abr=AbrConfig(down_after_s=0.5, up_after_s=1.5))
        client.sink = edge
        assert edge.ladder == origin.ladder
        viewer = await harness.join(edge, "v")
        await poll(lambda: viewer.video_frames >= 5, timeout=15, what="video at the edge")
        lossy = await wrap_viewer_srtp(viewer)
        await poll(lambda: edge.viewer_quality("v")["rendition"] != "720", timeout=15,
                   what="a step down at the edge")
        lower = next(i for i, rung in enumerate(edge.ladder)
                 if rung.name == edge.viewer_quality("v")["rendition"])
        assert lower in client.subscribed and lower in server.links[0].renditions
        assert edge._fanout._feeds["v"].video.switches >= 1
        lossy.dropping = False
        frames = viewer.video_frames
        await poll(lambda: viewer.video_frames >= frames + 10, timeout=10,
                   what="decoding on after the move")
        # pinned back to the top (ABR's climb back is media/abr.py's, and slow under load)
        assert edge.set_quality("v", "720") == "720"
        await poll(lambda: edge.viewer_quality("v")["rendition"] == "720", timeout=10,
                   what="back to the top at its keyframe")
        await poll(lambda: client.subscribed == {0} and server.links[0].renditions == {0},
                   timeout=10, what="the lower renditions let go")
        name = edge.ladder[lower].name
        encoded = origin.stats().rendition_frames[name]
        top = origin.stats().rendition_frames["720"]
        await poll(lambda: origin.stats().rendition_frames["720"] >= top + 15,
                   timeout=10, what="the top rendition encoded on")
        assert origin.stats().rendition_frames[name] <= encoded + 1
        frames = viewer.video_frames
        await poll(lambda: viewer.video_frames >= frames + 10, what="decoding at the top")
        assert not viewer.ended
    finally:
        await client.close()
        await server.close()


async def test_a_slow_edge_drops_whole_frames_and_each_rendition_resumes_at_its_keyframe(
        relay_server: RelayServer, poll: Any) -> None:
    source = LadderSource()
    source.size = 16 * 1024
    relay_server.sources[LIVE] = source  # type: ignore[attr-defined]
    reader, writer, stream = await raw_subscribe(relay_server.port, LIVE, rcvbuf=4096,
                                                 renditions=[0, 2])
    assert stream[0] == "stream"
    await poll(lambda: relay_server.links, what="subscribed")
    [slow] = relay_server.links
    try:
        for _ in range(400):  # ~13 MB the edge does not read: far beyond its queue
            source.push()
            assert slow.queued <= slow.bound
            await asyncio.sleep(0.002)
        assert slow.dropped > 0 and {0, 2} <= set(source.asked)
        messages = await read_while_pushing(reader, source)
        got = [(m[2], m[5], m[7]) for m in messages if m[0] == "v"]
        marks = [m[1] for m in messages if m[0] == "f"]
        for rendition in (0, 2):
            mine = [(pts, key) for pts, key, r in got if r == rendition]
            gaps = skips(mine)
            assert gaps, f"rendition {rendition} skipped frames"
            assert all(mine[i][1] for i in gaps), f"{rendition}: after each gap, a keyframe"
        assert marks and all(set(m) <= {0, 2} for m in marks)
    finally:
        writer.close()
    await poll(lambda: not relay_server.links, what="the relay closed")
