"""The cascade's relay: a live's encoded stream from its origin node to each edge node.

A live is ingested, composed and encoded once, on its origin (media/room.py). An edge
node with viewers of it opens one relay: a TCP connection to the origin's relay port
(advertised in the origin's node record), authenticates, subscribes to the live, and
from then on receives every encoded frame once: video (codec named at subscribe, pts,
time base, keyframe flag) and Opus audio. The edge feeds them into its own MediaRoom
(an edge room: no publisher, no encoder), whose PacketFanout gives each edge viewer its
own SRTP, NACKs answered from the edge's own RTP history and late joiners' keyframe
catch-up. The one message an edge sends back is a keyframe request it could not answer
itself (throttled by the edge room).

Wire: every message is a 4-byte big-endian length and a msgpack list whose first item
names it (at most MAX_MESSAGE_BYTES; a keyframe of 720p VP8 is ~100 KB):

    origin -> edge   ["hello", VERSION, nonce]
    edge -> origin   ["auth", edge_node_id, nonce, mac]       mac = HMAC(key, "edge" ...)
    origin -> edge   ["welcome", mac]                          mac = HMAC(key, "origin" ...)
    edge -> origin   ["subscribe", live_id, [rendition...]]    indexes into the ladder
    origin -> edge   ["stream", video_codec, [[height, bitrate]...]]  or ["refused", code, text]
    origin -> edge   ["f", [rendition...], width, height]      a source frame begins; its
                                                               keyframes among this edge's
    origin -> edge   ["v", data, pts, tb_num, tb_den, keyframe, sent_at, rendition]
    origin -> edge   ["a", data, pts, tb_num, tb_den, sent_at]             audio packet
    origin -> edge   ["end", reason]                           the live ended
    origin -> edge   ["ping"]                                  after PING_S without a frame
    edge -> origin   ["keyframe", rendition]                   the back channel (["keyframe"]:
                                                               the top rendition's)
    edge -> origin   ["want", [rendition...]]                  the renditions it takes now

An edge's ["subscribe", live_id] without renditions gets the top rendition only, the
first protocol: ["stream", video_codec], no "f" marks, "v" frames of rendition 0.

Authentication: both sides prove they hold the cluster's relay key (relay_key(), derived
from the token secret every node already shares) by an HMAC over both fresh nonces, so a
recorded handshake cannot be replayed and a client without the secret (a browser, a
port scanner) never gets past "hello". The stream itself is not encrypted: run the relay
port on a private network (it carries the same media every viewer receives).

Backpressure: the origin never waits for an edge. Each edge has a bounded queue
(EDGE_QUEUE_FRAMES messages) drained by its own writer task; when it is full, the queue
is emptied and each of that edge's renditions skips to its next keyframe (requested,
throttled by the room), counting the whole frames it dropped. A slow edge costs its own
viewers a frozen picture for a moment, never the origin's other edges or viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import hashlib
import hmac
import logging
import os
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import av
import msgpack

from media.renditions import Rendition, check_ladder

log = logging.getLogger("golive.relay")

VERSION = 1
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
NONCE_BYTES = 32
HANDSHAKE_TIMEOUT_S = 5.0
# Messages: ~3 s of a live with three renditions subscribed (3 x 30 video frames, 30
# "f" marks, 50 Opus packets: 170 messages/s); ~1 MB at the default ladder's 2.6 Mbit/s.
EDGE_QUEUE_FRAMES = 480
# An edge keeps a rendition subscribed this long after its last viewer of it left or
# moved: an ABR viewer's move back (media/abr.py holds a rung ~4-8 s) then finds it
# flowing, and the origin is not made to force a keyframe for each move.
UNSUBSCRIBE_AFTER_S = 3.0
MAX_RENDITIONS = 8  # a "want" or "subscribe" list longer than this is garbage (MAX_RUNGS 4)
# Back-channel messages an edge may send before the origin reads the next: a keyframe
# request is 13 bytes and the edge throttles them; anything else is a protocol error.
BACK_CHANNEL_MAX_BYTES = 1024
# Hop latencies kept at the edge for the bench (seconds, origin send -> edge receive).
LATENCY_SAMPLES = 4096
# A quiet relay (the creator in their grace period: no frames) carries a ping every
# PING_S, so an edge that hears nothing for SILENCE_S knows its origin is gone (a
# machine that vanished sends no FIN) and ends its viewers' media.
PING_S = 2.0
SILENCE_S = 10.0
# An edge whose socket takes no bytes for this long (its machine vanished, its loop is
# stuck) is dropped: its queue already dropped frames; this frees the origin's handler.
STALL_S = 10.0

_HEADER = struct.Struct(">I")
PacketTap = Callable[[str, av.Packet, bool], None]


class RenditionTap(Protocol):
    """What MediaRoom.add_relay takes: the origin's relay of one live. The room encodes
    every rendition in renditions() (besides its own viewers'), calls begin_frame()
    before each source frame's packets and video()/audio() with each packet."""

    def renditions(self) -> frozenset[int]: ...
    def begin_frame(self, keyed: frozenset[int], width: int, height: int) -> None: ...
    def video(self, packet: av.Packet, keyframe: bool, rendition: int) -> None: ...
    def audio(self, packet: av.Packet) -> None: ...


class RelayError(Exception):
    """A relay refused or failed; `code` is one of the API's stable codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- the rules: keys, proofs, messages -------------------------------------------------

def relay_key(secret: bytes) -> bytes:
    """The nodes' relay key: derived from the shared token secret, never the secret itself
    (a relay proof then says nothing about tokens)."""
    return hmac.new(secret, b"golive relay key v1", hashlib.sha256).digest()


def proof(key: bytes, role: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 of `role` and `parts` (length-prefixed, so no two inputs collide)."""
    mac = hmac.new(key, role, hashlib.sha256)
    for part in parts:
        mac.update(_HEADER.pack(len(part)))
        mac.update(part)
    return mac.digest()


def pack(message: list[Any]) -> bytes:
    """One wire message: length and msgpack body."""
    body: bytes = msgpack.packb(message, use_bin_type=True)
    if len(body) > MAX_MESSAGE_BYTES:
        raise ValueError(f"relay message of {len(body)} bytes is over {MAX_MESSAGE_BYTES}")
    return _HEADER.pack(len(body)) + body


def unpack(body: bytes) -> list[Any]:
    """A message body; RelayError(invalid) for anything that is not a named msgpack list."""
    try:
        message = msgpack.unpackb(body, raw=False)
    except Exception as exc:
        raise RelayError("invalid", f"undecodable relay message ({type(exc).__name__})") from None
    if not isinstance(message, list) or not message or not isinstance(message[0], str):
        raise RelayError("invalid", "a relay message is a list starting with its name")
    return message


async def read_message(reader: asyncio.StreamReader,
                       limit: int = MAX_MESSAGE_BYTES) -> list[Any]:
    """The next message; RelayError(invalid) when too long or garbage, EOF errors as is."""
    (length,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if length > limit:
        raise RelayError("invalid", f"relay message of {length} bytes is over {limit}")
    return unpack(await reader.readexactly(length))


def video_message(packet: av.Packet, keyframe: bool, rendition: int = 0) -> list[Any]:
    tb = packet.time_base
    return ["v", bytes(packet), packet.pts, tb.numerator, tb.denominator, bool(keyframe),
            time.time(), rendition]


def renditions_of(value: object, rungs: int = MAX_RENDITIONS) -> frozenset[int]:
    """A "subscribe"/"want" list of rendition indexes, each below `rungs`;
    RelayError(invalid) for anything else."""
    if (not isinstance(value, list) or len(value) > MAX_RENDITIONS
            or not all(type(r) is int and 0 <= r < rungs for r in value)):
        raise RelayError("invalid", f"renditions are a list of indexes below {rungs}")
    return frozenset(value)


def subscription(taken: frozenset[int] | set[int], last_taken: dict[int, float], now: float,
                 linger_s: float = UNSUBSCRIBE_AFTER_S) -> frozenset[int]:
    """The renditions an edge subscribes to: each its viewers take (`taken`; the top one
    while that is empty) and each taken within `linger_s`. `last_taken` (rendition ->
    when last taken) is the edge's memory of it, updated here."""
    for rendition in taken or (0,):
        last_taken[rendition] = now
    for rendition in [r for r, at in last_taken.items() if now - at > linger_s]:
        del last_taken[rendition]
    return frozenset(last_taken)


def audio_message(packet: av.Packet) -> list[Any]:
    tb = packet.time_base
    return ["a", bytes(packet), packet.pts, tb.numerator, tb.denominator, time.time()]


@dataclass(frozen=True)
class RelayedFrame:
    """One frame as the edge gets it."""

    kind: str  # "video" or "audio"
    packet: av.Packet
    keyframe: bool
    sent_at: float  # the origin's wall clock when it was queued
    rendition: int = 0


def frame_of(message: list[Any]) -> RelayedFrame:
    """An av.Packet back from a "v" or "a" message; RelayError(invalid) if malformed."""
    name = message[0]
    rendition = 0
    if name == "v" and len(message) in (7, 8):
        _, data, pts, num, den, keyframe, sent_at, *rest = message
        kind = "video"
        rendition = rest[0] if rest else 0
        if type(rendition) is not int or not 0 <= rendition < MAX_RENDITIONS:
            raise RelayError("invalid", "malformed frame")
    elif name == "a" and len(message) == 6:
        _, data, pts, num, den, sent_at = message
        keyframe, kind = False, "audio"
    else:
        raise RelayError("invalid", f"not a frame: {name[:20]!r}")
    if not (isinstance(data, bytes) and data and isinstance(pts, int)
            and isinstance(num, int) and isinstance(den, int) and num > 0 and den > 0
            and isinstance(keyframe, bool) and isinstance(sent_at, int | float)):
        raise RelayError("invalid", "malformed frame")
    packet = av.Packet(data)
    packet.pts = pts
    packet.time_base = fractions.Fraction(num, den)
    return RelayedFrame(kind, packet, keyframe, float(sent_at), rendition)


# --- the origin ------------------------------------------------------------------------

class RelaySource(Protocol):
    """What the origin relays (a MediaRoom): its codec and ladder, its relays (each gets
    the encoded packets of the renditions it asks for) and a throttled keyframe
    request per rendition."""

    @property
    def codec(self) -> str: ...

    @property
    def ladder(self) -> tuple[Rendition, ...]: ...

    def add_relay(self, relay: RenditionTap) -> None: ...
    def remove_relay(self, relay: RenditionTap) -> None: ...
    def request_keyframe(self, rendition: int = 0) -> None: ...


class EdgeLink:
    """One subscribed edge on the origin: its renditions, its bounded queue and its
    writer task."""

    def __init__(self, edge: str, live_id: str, source: RelaySource,
                 writer: asyncio.StreamWriter, bound: int = EDGE_QUEUE_FRAMES, *,
                 ping_s: float = PING_S, stall_s: float = STALL_S,
                 renditions: frozenset[int] = frozenset({0}), marks: bool = False) -> None:
        self.edge = edge
        self.ping_s = ping_s
        self.stall_s = stall_s
        self.live_id = live_id
        self.source = source
        self.bound = bound
        self.renditions = renditions  # what this edge takes
        self.marks = marks  # sends "f" marks (an edge that subscribed with renditions)
        self._writer = writer
        self._queue: deque[tuple[bytes, bool]] = deque()  # (message, is a frame)
        self._ready = asyncio.Event()
        self.awaiting: set[int] = set()  # renditions skipping to their next keyframe
        self.relayed = 0  # frames written to the edge's socket
        self.dropped = 0  # frames skipped for it (a full queue, then up to a keyframe)
        self.ending: str | None = None

    @property
    def awaiting_keyframe(self) -> bool:
        return bool(self.awaiting)

    def want(self, renditions: frozenset[int]) -> None:
        """The edge takes `renditions` from the next source frame on; one it did not take
        starts at its keyframe (asked for now)."""
        added = renditions - self.renditions
        self.renditions = renditions
        self.awaiting &= renditions
        self.awaiting |= added
        for rendition in sorted(added):
            self.source.request_keyframe(rendition)

    def mark(self, keyed: frozenset[int], width: int, height: int) -> None:
        """A source frame begins: its keyframes among this edge's renditions."""
        if self.marks and self.ending is None:
            self._append(pack(["f", sorted(keyed & self.renditions), width, height]), False)

    def offer(self, data: bytes, video: bool, keyframe: bool, rendition: int = 0) -> None:
        """Queue one encoded frame for this edge; never blocks. A full queue is emptied and
        each rendition resumes at its next keyframe."""
        if self.ending is not None:
            return
        if video and rendition in self.awaiting:
            if not keyframe:
                self.dropped += 1
                return
            self.awaiting.discard(rendition)
        if len(self._queue) >= self.bound:
            self.dropped += sum(1 for _, frame in self._queue if frame)
            self._queue.clear()
            self.awaiting = set(self.renditions)
            if video and keyframe:
                self.awaiting.discard(rendition)
            for wanted in sorted(self.awaiting):
                self.source.request_keyframe(wanted)
            log.warning("relay edge too slow; skipping to the next keyframe",
                        extra={"fields": {"edge": self.edge, "live": self.live_id,
                                          "dropped": self.dropped}})
            if not (video and keyframe):
                self.dropped += 1
                return
        self._append(data, True)

    def _append(self, data: bytes, frame: bool) -> None:
        if len(self._queue) < self.bound or frame:  # a mark never overflows the queue
            self._queue.append((data, frame))
            self._ready.set()

    def end(self, reason: str) -> None:
        """Send ["end", reason] after what is queued, then close."""
        if self.ending is None:
            self.ending = reason
            self._ready.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def write_loop(self) -> None:
        """Drain the queue into the socket; returns after an "end" was written, or when
        the edge took nothing for `stall_s` (ending "edge_stalled")."""
        try:
            while True:
                try:
                    async with asyncio.timeout(self.ping_s):
                        await self._ready.wait()
                except TimeoutError:
                    self._writer.write(pack(["ping"]))  # nothing to send: say we are here
                self._ready.clear()
                while self._queue:
                    batch = list(self._queue)
                    self._queue.clear()
                    self._writer.write(b"".join(data for data, _ in batch))
                    self.relayed += sum(1 for _, frame in batch if frame)
                    await self._drain()
                if self.ending is not None:
                    self._writer.write(pack(["end", self.ending]))
                    await self._drain()
                    return
                await self._drain()  # a ping, too, must leave in time
        except TimeoutError:
            self.ending = "edge_stalled"
            log.warning("relay edge stalled; dropped", extra={"fields": {
                "edge": self.edge, "live": self.live_id, "seconds": self.stall_s}})


    async def _drain(self) -> None:
        # Each wait for the socket on its own: a busy but moving edge never times out.
        async with asyncio.timeout(self.stall_s):
            await self._writer.drain()


@dataclass
class EdgeTotals:
    relayed: int = 0
    dropped: int = 0


class _RoomRelay:
    """One live's relay on its room (a RenditionTap): each frame is packed once for all
    the edges that take its rendition."""

    def __init__(self, source: RelaySource) -> None:
        self.source = source
        self.links: set[EdgeLink] = set()

    def renditions(self) -> frozenset[int]:
        return frozenset().union(*(link.renditions for link in self.links))

    def begin_frame(self, keyed: frozenset[int], width: int, height: int) -> None:
        for link in self.links:
            link.mark(keyed, width, height)

    def video(self, packet: av.Packet, keyframe: bool, rendition: int) -> None:
        data = None
        for link in self.links:
            if rendition in link.renditions:
                if data is None:
                    data = pack(video_message(packet, keyframe, rendition))
                link.offer(data, True, keyframe, rendition)

    def audio(self, packet: av.Packet) -> None:
        data = pack(audio_message(packet))
        for link in self.links:
            link.offer(data, False, False)


class RelayServer:
    """The origin's relay listener. `lookup(live_id)` gives the hosted room to relay, or
    None (the subscribe is refused with not_found); `known(edge_node_id)`, when given,
    says whether the authenticated edge is a node of the cluster (else `forbidden`)."""

    def __init__(self, key: bytes, node_id: str,
                 lookup: Callable[[str], RelaySource | None], *,
                 known: Callable[[str], Awaitable[bool]] | None = None,
                 queue_frames: int = EDGE_QUEUE_FRAMES,
                 handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
                 ping_s: float = PING_S, stall_s: float = STALL_S) -> None:
        self._key = key
        self.ping_s = ping_s
        self.stall_s = stall_s
        self._known = known
        self.node_id = node_id
        self._lookup = lookup
        self.queue_frames = queue_frames
        self.handshake_timeout_s = handshake_timeout_s
        self._server: asyncio.Server | None = None
        self._rooms: dict[str, _RoomRelay] = {}
        self._links: set[EdgeLink] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.totals: dict[str, EdgeTotals] = {}  # per edge node, links closed so far
        self.refused: dict[str, int] = {}  # by reason
        self.port = 0

    async def start(self, host: str, port: int = 0) -> int:
        """Listen; returns the bound port."""
        self._server = await asyncio.start_server(self._accept, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop listening, end every edge ("server_shutdown"), await every handler."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self._links):
            link.end("server_shutdown")
        if self._handlers:
            _, pending = await asyncio.wait(set(self._handlers), timeout=2.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def end_live(self, live_id: str, reason: str) -> int:
        """The live ended: tell each of its edges (they close their viewers' media)."""
        relay = self._rooms.get(live_id)
        if relay is None:
            return 0
        for link in relay.links:
            link.end(reason)
        return len(relay.links)

    @property
    def links(self) -> list[EdgeLink]:
        return list(self._links)

    def edge_counts(self) -> dict[str, EdgeTotals]:
        """Frames relayed and dropped per edge node, closed links and open ones."""
        counts = {edge: EdgeTotals(t.relayed, t.dropped) for edge, t in self.totals.items()}
        for link in self._links:
            total = counts.setdefault(link.edge, EdgeTotals())
            total.relayed += link.relayed
            total.dropped += link.dropped
        return counts

    def _refuse(self, reason: str, peer: Any, detail: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        log.warning("relay client refused", extra={"fields": {
            "reason": reason, "peer": str(peer), "detail": detail[:200]}})

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        peer = writer.get_extra_info("peername")
        try:
            await self._serve(reader, writer, peer)
        except RelayError as exc:
            self._refuse(exc.code, peer, exc.message)
            with contextlib.suppress(Exception):
                writer.write(pack(["refused", exc.code, exc.message]))
        except TimeoutError:
            self._refuse("timeout", peer, "no handshake in time")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self._refuse("disconnected", peer, type(exc).__name__)
        except Exception:
            log.exception("relay connection failed", extra={"fields": {"peer": str(peer)}})
        finally:
            await _close_writer(writer)
            self._handlers.discard(task)

    async def _handshake(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter
                         ) -> tuple[str, str, frozenset[int] | None]:
        nonce = os.urandom(NONCE_BYTES)
        writer.write(pack(["hello", VERSION, nonce]))
        message = await read_message(reader, BACK_CHANNEL_MAX_BYTES)
        if message[0] != "auth" or len(message) != 4:
            raise RelayError("unauthorized", f"expected auth, got {message[0][:20]!r}")
        _, edge, edge_nonce, mac = message
        if not (isinstance(edge, str) and 0 < len(edge) <= 200
                and isinstance(edge_nonce, bytes) and len(edge_nonce) == NONCE_BYTES
                and isinstance(mac, bytes)):
            raise RelayError("unauthorized", "malformed auth")
        if not hmac.compare_digest(mac, proof(self._key, b"edge", nonce, edge_nonce,
                                              edge.encode())):
            raise RelayError("unauthorized", f"bad relay proof from {edge[:80]!r}")
        writer.write(pack(["welcome", proof(self._key, b"origin", edge_nonce, nonce)]))
        message = await read_message(reader, BACK_CHANNEL_MAX_BYTES)
        if (message[0] != "subscribe" or len(message) not in (2, 3)
                or not isinstance(message[1], str)):
            raise RelayError("invalid", "expected subscribe")
        renditions = renditions_of(message[2]) if len(message) == 3 else None
        if renditions is not None and not renditions:
            raise RelayError("invalid", "a subscribe names at least one rendition")
        return edge, message[1], renditions

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: Any) -> None:
        async with asyncio.timeout(self.handshake_timeout_s):
            edge, live_id, renditions = await self._handshake(reader, writer)
            if self._known is not None and not await self._known(edge):
                raise RelayError("forbidden", f"{edge[:80]!r} is no node of this cluster")
        source = self._lookup(live_id)
        if source is None:
            raise RelayError("not_found", f"no live {live_id[:80]!r} on {self.node_id}")
        if renditions is not None and max(renditions) >= len(source.ladder):
            raise RelayError("invalid", f"live {live_id[:80]!r} has "
                                        f"{len(source.ladder)} renditions")
        link = EdgeLink(edge, live_id, source, writer, self.queue_frames,
                        ping_s=self.ping_s, stall_s=self.stall_s,
                        renditions=renditions or frozenset({0}),
                        marks=renditions is not None)
        relay = self._rooms.get(live_id)
        if relay is None or relay.source is not source:
            relay = self._rooms[live_id] = _RoomRelay(source)
            source.add_relay(relay)
        writer.write(pack(["stream", source.codec] if renditions is None else
                          ["stream", source.codec,
                           [[rung.height, rung.bitrate] for rung in source.ladder]]))
        relay.links.add(link)
        self._links.add(link)
        log.info("relay opened", extra={"fields": {"edge": edge, "live": live_id,
                                                   "renditions": sorted(link.renditions)}})
        for rendition in sorted(link.renditions):  # the edge's first viewers start from
            source.request_keyframe(rendition)    # a fresh keyframe
        writer_task = asyncio.create_task(link.write_loop(), name=f"relay-out-{edge}")
        try:
            await self._read_back_channel(reader, link, writer_task)
        finally:
            await _cancel(writer_task)
            relay.links.discard(link)
            self._links.discard(link)
            if not relay.links and self._rooms.get(live_id) is relay:
                del self._rooms[live_id]
                source.remove_relay(relay)
            total = self.totals.setdefault(edge, EdgeTotals())
            total.relayed += link.relayed
            total.dropped += link.dropped
            log.info("relay closed", extra={"fields": {
                "edge": edge, "live": live_id, "relayed": link.relayed,
                "dropped": link.dropped, "reason": link.ending or "edge_left"}})

    async def _read_back_channel(self, reader: asyncio.StreamReader, link: EdgeLink,
                                 writer_task: asyncio.Task[None]) -> None:
        """Keyframe requests and "want"s until the edge hangs up (or the writer ended the
        link)."""
        while True:
            read = asyncio.ensure_future(read_message(reader, BACK_CHANNEL_MAX_BYTES))
            done, _ = await asyncio.wait({read, writer_task},
                                         return_when=asyncio.FIRST_COMPLETED)
            if read not in done:
                await _cancel(read)
                writer_task.result()  # a write error surfaces here
                return  # "end" sent
            try:
                message = read.result()
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the edge closed its relay (its last viewer left)
            rungs = len(link.source.ladder)
            if message[0] == "keyframe" and len(message) in (1, 2):
                rendition = message[1] if len(message) == 2 else 0
                if type(rendition) is not int or not 0 <= rendition < rungs:
                    raise RelayError("invalid", "a keyframe request for no rendition")
                if rendition in link.renditions:
                    link.source.request_keyframe(rendition)
            elif message[0] == "want" and len(message) == 2 and link.marks:
                wanted = renditions_of(message[1], rungs)
                if not wanted:
                    raise RelayError("invalid", "an edge wants at least one rendition")
                link.want(wanted)
            else:
                raise RelayError("invalid", f"unexpected {message[0][:20]!r} from an edge")


def _mark_of(message: list[Any]) -> tuple[frozenset[int], int, int]:
    """An "f" mark's (keyframe renditions, width, height); RelayError(invalid)."""
    if (len(message) != 4 or type(message[2]) is not int or type(message[3]) is not int
            or not 0 < message[2] <= 16384 or not 0 < message[3] <= 16384):
        raise RelayError("invalid", "malformed frame mark")
    return renditions_of(message[1]), message[2], message[3]


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    """Close, flushing for at most 1 s; a peer that takes nothing more is aborted (a
    plain close would wait for it to read what is buffered, forever)."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except Exception:  # TimeoutError included
        writer.transport.abort()


async def _cancel(task: asyncio.Future[Any]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


# --- the edge --------------------------------------------------------------------------

class RelaySink(Protocol):
    """Where an edge's relay delivers (an edge MediaRoom): frames, the start of each
    source frame, and (asked) the renditions its viewers take."""

    def feed_video(self, packet: av.Packet, keyframe: bool, rendition: int = 0) -> None: ...
    def feed_audio(self, packet: av.Packet) -> None: ...
    def feed_frame(self, keyed: frozenset[int], width: int, height: int) -> None: ...
    def renditions_taken(self) -> frozenset[int]: ...
    def rendition_dropped(self, rendition: int) -> None: ...


class RelayClient:
    """An edge's relay of one live: open() connects, authenticates and subscribes (to the
    top rendition); a reader task then feeds `sink` until close() or the stream ends,
    when `on_end(reason)` is called once ("end"'s reason, or "relay_lost"). After each
    message it asks the sink which renditions its viewers take and tells the origin
    when what it subscribes to (subscription()) changed."""

    def __init__(self, address: str, key: bytes, node_id: str, live_id: str,
                 sink: RelaySink | None = None,
                 on_end: Callable[[str], None] | None = None, *,
                 silence_s: float = SILENCE_S,
                 unsubscribe_after_s: float = UNSUBSCRIBE_AFTER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.silence_s = silence_s
        self.unsubscribe_after_s = unsubscribe_after_s
        self._clock = clock
        self.ladder: tuple[Rendition, ...] = ()  # the origin's, from "stream"
        self.subscribed: frozenset[int] = frozenset({0})
        self._last_taken: dict[int, float] = {}
        self.wants_sent = 0
        self.address = address
        self.live_id = live_id
        self.node_id = node_id
        self._key = key
        self.sink = sink  # set it before the first await after open(): frames feed it
        self.on_end = on_end
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.codec: str | None = None
        self.frames = 0
        self.keyframe_requests = 0
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.ended: str | None = None

    async def open(self, timeout: float = HANDSHAKE_TIMEOUT_S) -> None:
        """Connect and subscribe; RelayError (unavailable, unauthorized, not_found...)."""
        host, _, port = self.address.rpartition(":")
        try:
            async with asyncio.timeout(timeout):
                self._reader, self._writer = await asyncio.open_connection(
                    host.strip("[]"), int(port))
                self.codec = await self._subscribe(self._reader, self._writer)
        except RelayError:
            await self._close_socket()
            raise
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError) as exc:
            await self._close_socket()
            raise RelayError("unavailable", f"relay {self.address} unreachable: "
                                            f"{type(exc).__name__}") from None
        self._task = asyncio.create_task(self._read_loop(), name=f"relay-in-{self.live_id}")

    async def _subscribe(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> str:
        hello = await read_message(reader)
        if hello[0] != "hello" or len(hello) != 3 or not isinstance(hello[2], bytes):
            raise RelayError("invalid", "the origin did not say hello")
        if hello[1] != VERSION:
            raise RelayError("invalid", f"relay version {hello[1]!r}, expected {VERSION}")
        nonce = os.urandom(NONCE_BYTES)
        writer.write(pack(["auth", self.node_id, nonce,
                           proof(self._key, b"edge", hello[2], nonce, self.node_id.encode())]))
        welcome = await read_message(reader)
        if welcome[0] == "refused":
            raise RelayError(str(welcome[1]), str(welcome[2]))
        if (welcome[0] != "welcome" or len(welcome) != 2 or not isinstance(welcome[1], bytes)
                or not hmac.compare_digest(welcome[1],
                                           proof(self._key, b"origin", nonce, hello[2]))):
            raise RelayError("unauthorized", "the origin's relay proof is wrong")
        writer.write(pack(["subscribe", self.live_id, sorted(self.subscribed)]))
        stream = await read_message(reader)
        if stream[0] == "refused" and len(stream) == 3:
            raise RelayError(str(stream[1]), str(stream[2]))
        if stream[0] != "stream" or len(stream) != 3 or stream[1] not in ("vp8", "h264"):
            raise RelayError("invalid", "expected the stream's codec and ladder")
        try:
            self.ladder = check_ladder([Rendition(int(height), int(bitrate))
                                        for height, bitrate in stream[2]])
        except Exception:
            raise RelayError("invalid", "the stream's ladder is malformed") from None
        self._last_taken = {0: self._clock()}
        return str(stream[1])

    def request_keyframe(self, rendition: int = 0) -> None:
        """Ask the origin for a keyframe of `rendition` (the caller throttles); dropped if
        the socket is backed up or closed, or the rendition is not subscribed (its
        subscription brings one)."""
        if rendition in self.subscribed and self._send(["keyframe", rendition]):
            self.keyframe_requests += 1

    def _send(self, message: list[Any]) -> bool:
        writer = self._writer
        if writer is None or writer.is_closing() or self.ended is not None:
            return False
        if writer.transport.get_write_buffer_size() > BACK_CHANNEL_MAX_BYTES:
            return False
        writer.write(pack(message))
        return True

    def _resubscribe(self) -> None:
        """Tell the origin the renditions the sink's viewers take, when that changed; a
        rendition dropped ends its keyframe run at the sink."""
        if self.sink is None:
            return
        wanted = subscription(self.sink.renditions_taken(), self._last_taken, self._clock(),
                              self.unsubscribe_after_s)
        wanted = frozenset(r for r in wanted if r < max(1, len(self.ladder)))
        if wanted == self.subscribed or not wanted:
            return
        if not self._send(["want", sorted(wanted)]):
            return  # backed up: tried again after the next message
        self.wants_sent += 1
        dropped, self.subscribed = self.subscribed - wanted, wanted
        log.info("relay renditions", extra={"fields": {
            "live": self.live_id, "renditions": sorted(wanted)}})
        for rendition in sorted(dropped):
            self.sink.rendition_dropped(rendition)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        reason = "relay_lost"
        try:
            while True:
                try:
                    async with asyncio.timeout(self.silence_s):
                        message = await read_message(self._reader)
                except TimeoutError:
                    log.warning("relay silent; origin lost", extra={"fields": {
                        "live": self.live_id, "origin": self.address,
                        "seconds": self.silence_s}})
                    return
                self._resubscribe()
                if message[0] == "ping":
                    continue
                if message[0] == "end":
                    reason = str(message[1]) if len(message) > 1 else "ended"
                    return
                if message[0] == "f":
                    keyed, width, height = _mark_of(message)
                    if self.sink is not None:
                        self.sink.feed_frame(keyed, width, height)
                    continue
                frame = frame_of(message)
                self.frames += 1
                self.latencies.append(time.time() - frame.sent_at)
                if self.sink is None:
                    continue
                if frame.kind == "video":
                    self.sink.feed_video(frame.packet, frame.keyframe, frame.rendition)
                else:
                    self.sink.feed_audio(frame.packet)
        except RelayError as exc:
            log.warning("relay stream refused: %s", exc.message,
                        extra={"fields": {"live": self.live_id, "origin": self.address}})
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except Exception:
            log.exception("relay feed failed", extra={"fields": {"live": self.live_id}})
        finally:
            self.ended = reason
            await self._close_socket()
            if self.on_end is not None:
                try:
                    self.on_end(reason)
                except Exception:
                    log.exception("relay end callback failed")

    async def close(self) -> None:
        """Hang up (the origin drops this edge); on_end is not called. Idempotent."""
        self.on_end = None
        if self._task is not None:
            await _cancel(self._task)
        await self._close_socket()

    async def _close_socket(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await _close_writer(writer)


__all__ = ["EDGE_QUEUE_FRAMES", "UNSUBSCRIBE_AFTER_S", "EdgeLink", "RelayClient",
           "RelayError", "RelayServer", "RelaySink", "RelaySource", "RelayedFrame",
           "RenditionTap", "frame_of", "pack", "proof", "read_message", "relay_key",
           "renditions_of", "subscription", "unpack"]
