"""Every access golive makes to aiortc's private attributes (aiortc >=1.16,<1.17).

The lean fan-out sends a room's shared RTP through each viewer's own SRTP session and
nominated ICE pair, keeps the idle sender's RTCP reports true and takes PLI/NACK from
it; the ingest swaps in a prompter jitter buffer; the bench's light viewers count RTP
instead of decoding it. None of that has a public API in aiortc, so it lives here and
nowhere else, listed in PRIVATES and checked at import (media/library_privates.py).
tests/test_library_privates.py checks each on real objects.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import aiortc.rtcpeerconnection as peerconnection_module
import aiortc.rtcrtpreceiver as receiver_module
import pylibsrtp
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsTransport,
    SRTPProtectionProfile,
    generate_certificate,
)
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack, RTCRtpReceiver, TimestampMapper
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import AnyRtcpPacket, RtcpSrPacket, RtpPacket
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL
from pylibsrtp import Session

from media import aioice_private
from media.library_privates import Private, require

SUPPORTED = ("1.16", "1.17")  # >=, < : keep in step with pyproject.toml

PRIVATES = (
    Private(RTCDtlsTransport, "_tx_srtp", True, "media.viewer_link (SRTP protect)"),
    Private(RTCDtlsTransport, "_rx_srtp", True, "bench.rtp_counting (SRTP unprotect)"),
    Private(RTCDtlsTransport, "_srtp_profiles", True, "tests/media (force one SRTP profile)"),
    Private(RTCDtlsTransport, "_ssl", True, "tests/media (the SSL context a join used)"),
    Private(RTCDtlsTransport, "_rtp_header_extensions_map", True,
            "media.ingest (parse transport-cc sequence numbers)"),
    Private(RTCCertificate, "_create_ssl_context", False,
            "media.aiortc_private.NodeCertificate (one SSL context per node)"),
    # pylibsrtp is aiortc's SRTP (its range follows aiortc's): the native fan-out calls
    # libsrtp on the very srtp_t this Session holds (media/fastpath.py).
    Private(Session, "_srtp", True, "media.fastpath (the session's srtp_t)"),
    Private(RTCIceTransport, "_connection", True, "media.viewer_link, bench.rtp_counting"),
    Private(RTCIceTransport, "_recv", True, "media.ice_restart (the DTLS reader's source)"),
    Private(RTCIceTransport, "_send", True, "media.ice_restart (the DTLS writer's sink)"),
    Private(RTCIceTransport, "__monitor_task", True, "media.ice_restart (closed-event watch)"),
    Private(RTCIceTransport, "_monitor", False, "media.ice_restart (closed-event watch)"),
    Private(RTCIceGatherer, "_connection", True, "media.ice_restart (stats, candidates)"),
    Private(RTCRtpSender, "_ssrc", True, "media.viewer_link (the room's SSRC)"),
    Private(RTCRtpSender, "__ntp_timestamp", True, "media.viewer_link (sender reports)"),
    Private(RTCRtpSender, "__rtp_timestamp", True, "media.viewer_link (sender reports)"),
    Private(RTCRtpSender, "__packet_count", True, "media.viewer_link (sender reports)"),
    Private(RTCRtpSender, "__octet_count", True, "media.viewer_link (sender reports)"),
    Private(RTCRtpSender, "__encoder", True, "tests (a naive viewer's own encoder)"),
    Private(RTCRtpSender, "_handle_rtcp_packet", False, "media.viewer (PLI/NACK in)"),
    Private(RTCRtpSender, "_send_rtcp", False, "media.viewer (sender reports paced)"),
    Private(RTCRtpReceiver, "__jitter_buffer", True, "media.ingest (prompt jitter buffer)"),
    Private(RTCRtpReceiver, "__codecs", True, "bench.rtp_counting"),
    Private(RTCRtpReceiver, "__remote_bitrate_estimator", True,
            "media.aiortc_private (built at the first packet)"),
    Private(RTCRtpReceiver, "__remote_streams", True, "bench.rtp_counting"),
    Private(RTCRtpReceiver, "__timestamp_mapper", True, "bench.rtp_counting"),
    Private(RTCRtpReceiver, "__stop_decoder", False, "bench.rtp_counting"),
    Private(RTCRtpReceiver, "_handle_rtp_packet", False, "bench.rtp_counting"),
    Private(RTCRtpReceiver, "_send_rtcp_pli", False, "tests (a viewer's PLI)"),
    Private(RTCRtpReceiver, "_send_rtcp_nack", False, "tests (a viewer's NACK)"),
    Private(RTCRtpReceiver, "_send_rtcp", False, "media.ingest (transport-cc feedback)"),
    Private(RTCRtpReceiver, "__rtcp_ssrc", True, "media.ingest (transport-cc feedback)"),
    Private(RTCRtpReceiver, "_data", True, "media.aiortc_private.PromptJitterBuffer"),
    Private(RemoteStreamTrack, "_queue", True, "tests (decoded frames waiting)"),
    Private(TimestampMapper, "_origin", True, "bench.rtp_counting"),
    Private(JitterBuffer, "_remove_frame", False, "media.aiortc_private.PromptJitterBuffer"),
    Private(JitterBuffer, "_packets", True, "media.aiortc_private.PromptJitterBuffer"),
    Private(JitterBuffer, "_origin", True, "media.aiortc_private.PromptJitterBuffer"),
    Private(JitterBuffer, "_is_video", True, "media.aiortc_private.PromptJitterBuffer"),
)
VERSION = require("aiortc", *SUPPORTED, PRIVATES)

RtcpHandler = Callable[[AnyRtcpPacket], Awaitable[None]]
RtpHandler = Callable[[RtpPacket, int], Awaitable[None]]


# ---- transports ------------------------------------------------------------------------

def srtp_protect(dtls: RTCDtlsTransport) -> Callable[[bytes], bytes]:
    """The connected DTLS transport's outbound SRTP protect."""
    return dtls._tx_srtp.protect  # type: ignore[no-any-return]


def srtp_outbound(dtls: RTCDtlsTransport) -> Session | None:
    """The outbound pylibsrtp Session, or None before DTLS is up."""
    return dtls._tx_srtp  # type: ignore[no-any-return]


def srtp_context(session: Session) -> int:
    """The address of the libsrtp srtp_t `session` holds (valid while `session` lives:
    pylibsrtp frees it when the Session is collected)."""
    return int(pylibsrtp.ffi.cast("uintptr_t", session._srtp[0]))


def srtp_protect_function() -> tuple[int, str]:
    """The address of the srtp_protect pylibsrtp's bundled libsrtp exports, and its C
    signature as pylibsrtp's cffi declares it (libsrtp 2 and 3 differ)."""
    ffi, lib = pylibsrtp.ffi, pylibsrtp.lib
    return (int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))),
            ffi.getctype(ffi.typeof(lib.srtp_protect)))


def force_srtp_profiles(dtls: RTCDtlsTransport, openssl_names: list[bytes]) -> None:
    """Offer only these DTLS-SRTP profiles (e.g. [b"SRTP_AES128_CM_SHA1_80"]) on this
    transport, in this order, before its handshake starts."""
    from aiortc import rtcdtlstransport

    by_name = {p.openssl_profile: p for p in rtcdtlstransport.SRTP_PROFILES}
    dtls._srtp_profiles = [by_name[name] for name in openssl_names]


def srtp_profile_names() -> list[bytes]:
    """The DTLS-SRTP profiles aiortc offers, in its order of preference."""
    from aiortc import rtcdtlstransport

    return [p.openssl_profile for p in rtcdtlstransport.SRTP_PROFILES]


def set_srtp_inbound(dtls: RTCDtlsTransport, session: Any) -> None:
    """Replace the inbound SRTP session (tests: a viewer that loses chosen packets)."""
    dtls._rx_srtp = session


def srtp_inbound(dtls: RTCDtlsTransport) -> Any:
    """The inbound pylibsrtp Session, or None before DTLS is up."""
    return dtls._rx_srtp


def ice_connection(dtls: RTCDtlsTransport) -> Any:
    """The aioice Connection under a DTLS transport (see media/aioice_private.py)."""
    return dtls.transport._connection


async def swap_ice_connection(dtls: RTCDtlsTransport, new: Any,
                              on_moved: Callable[[], None] | None = None) -> None:
    """Move a connected DTLS transport onto `new`, a nominated aioice Connection (an ICE
    restart, media/ice_restart.py), then close the old connection.

    The ICE transport's recv/send are rebound (the DTLS transport reads and writes only
    through them), the reader blocked on the old connection is woken to read from the
    new one, and the task that turns the connection's close into state "failed" is
    restarted on the new one first: closing the old connection must not fail the pc.
    Its gatherer follows (candidates and stats). `on_moved()` runs once the transport
    reads and writes through `new` and before the old sockets close (the native fan-out
    must drop them first: a send on a closed socket ends the viewer)."""
    ice = dtls.transport
    old = ice._connection
    if old is new:
        return
    monitor = ice._RTCIceTransport__monitor_task  # type: ignore[attr-defined]
    ice._connection = new
    ice.iceGatherer._connection = new
    ice._recv = new.recv
    ice._send = new.send
    if on_moved is not None:
        on_moved()
    if monitor is not None:
        monitor.cancel()
        await asyncio.wait([monitor])  # its CancelledError stays in it, not raised here
        ice._RTCIceTransport__monitor_task = asyncio.ensure_future(  # type: ignore[attr-defined]
            ice._monitor())
    aioice_private.wake_reader(old)
    await old.close()


# ---- senders ---------------------------------------------------------------------------

def set_sender_ssrc(sender: RTCRtpSender, ssrc: int) -> None:
    """Give the sender an SSRC of ours, before the offer is made."""
    sender._ssrc = ssrc


def record_sent(
    sender: RTCRtpSender, ntp_time: int, rtp_timestamp: int, packets: int, octets: int
) -> None:
    """Keep the sender's RTCP sender reports true: its own RTP path is idle, so these are
    the figures its SR carries (the NTP/RTP pair lets the browser sync audio and video)."""
    sender._RTCRtpSender__ntp_timestamp = ntp_time  # type: ignore[attr-defined]
    sender._RTCRtpSender__rtp_timestamp = rtp_timestamp  # type: ignore[attr-defined]
    sender._RTCRtpSender__packet_count = packets  # type: ignore[attr-defined]
    sender._RTCRtpSender__octet_count = octets  # type: ignore[attr-defined]


def sender_encoder(sender: RTCRtpSender) -> Any:
    """The sender's own encoder (None until it encodes, or on the packet path)."""
    return sender._RTCRtpSender__encoder  # type: ignore[attr-defined]


def intercept_sender_rtcp(sender: RTCRtpSender,
                          make: Callable[[RtcpHandler], RtcpHandler]) -> None:
    """Route the RTCP aiortc hands `sender` through make(aiortc's own handler).

    An instance attribute shadows the method: aiortc's RTP router calls
    recipient._handle_rtcp_packet(packet) on this very sender."""
    sender._handle_rtcp_packet = make(sender._handle_rtcp_packet)  # type: ignore[method-assign]


# ---- receivers -------------------------------------------------------------------------

def gate_sender_reports(sender: RTCRtpSender, allow: Callable[[int], bool]) -> None:
    """Send the sender's RTCP sender reports only when allow(packet count) says so (other
    RTCP, e.g. its BYE, goes out as before). An instance attribute shadows the method:
    aiortc's RTCP loop calls self._send_rtcp([SR, SDES])."""
    original = sender._send_rtcp

    async def send_rtcp(packets: list[AnyRtcpPacket]) -> None:
        if packets and isinstance(packets[0], RtcpSrPacket) and not allow(
                packets[0].sender_info.packet_count):
            return
        await original(packets)

    sender._send_rtcp = send_rtcp  # type: ignore[method-assign]


def receiver_codecs(receiver: RTCRtpReceiver) -> dict[int, Any]:
    """Payload type -> RTCRtpCodecParameters, as negotiated."""
    return receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined, no-any-return]


def receiver_streams(receiver: RTCRtpReceiver) -> dict[int, Any]:
    """SSRC -> StreamStatistics, what the receiver's RTCP receiver reports are made of."""
    return receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined, no-any-return]


def stop_decoder(receiver: RTCRtpReceiver) -> None:
    """End the receiver's decoder thread."""
    receiver._RTCRtpReceiver__stop_decoder()  # type: ignore[attr-defined]


def timestamp_origin(receiver: RTCRtpReceiver) -> int | None:
    """The first RTP timestamp aiortc rebased the track's pts on (None before one)."""
    return receiver._RTCRtpReceiver__timestamp_mapper._origin  # type: ignore[attr-defined, no-any-return]


def intercept_receiver_rtp(receiver: RTCRtpReceiver,
                           make: Callable[[RtpHandler], RtpHandler]) -> None:
    """Route the RTP the DTLS transport hands `receiver` through make(aiortc's handler).

    An instance attribute shadows the method: the DTLS transport calls
    receiver._handle_rtp_packet(...) on this very object."""
    receiver._handle_rtp_packet = make(receiver._handle_rtp_packet)  # type: ignore[method-assign]


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send a Picture Loss Indication for `media_ssrc`, as a browser does on a gap."""
    await receiver._send_rtcp_pli(media_ssrc)


async def send_nack(receiver: RTCRtpReceiver, media_ssrc: int, lost: list[int]) -> None:
    """Send a generic NACK for the sequence numbers `lost`."""
    await receiver._send_rtcp_nack(media_ssrc, lost)


def parse_extension(dtls: RTCDtlsTransport, extension_id: int, uri: str) -> None:
    """Make the transport parse header extension `uri` under `extension_id` (one aiortc
    knows by its uri but did not negotiate): a packet's extensions then carry it."""
    dtls._rtp_header_extensions_map.configure(
        RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(extension_id, uri)]))


def receiver_rtcp_ssrc(receiver: RTCRtpReceiver) -> int | None:
    """The SSRC the receiver's own RTCP (receiver reports, NACK, PLI) goes out with."""
    return receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined, no-any-return]


async def send_rtcp_bytes(receiver: RTCRtpReceiver, packet: bytes) -> None:
    """Send a ready-made RTCP packet on the receiver's transport (aiortc's own send:
    SRTCP protection, and a closed transport is no error)."""
    await receiver._send_rtcp(packet)  # type: ignore[arg-type]


def set_depayloaded(packet: RtpPacket, data: bytes) -> None:
    """What aiortc's receiver sets on a packet after depayloading (what the jitter
    buffer joins into a frame)."""
    packet._data = data  # type: ignore[attr-defined]


def frames_waiting(track: RemoteStreamTrack) -> int:
    """Decoded frames queued on a remote track and not yet read."""
    return track._queue.qsize()


# ---- the ingest's jitter buffer --------------------------------------------------------

_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"  # set in RTCRtpReceiver.__init__


# A hole (a packet neither arrived nor retransmitted) older than this is given up on.
# aiortc's own buffer waits until 512 packets have passed it: at a lossy creator's
# 250 kbit/s (~30 packets a second) the room's picture froze for ~17 s. 0.5 s leaves
# NACK two round trips of a 100-200 ms uplink; then a keyframe is asked for (PLI) and
# frames are dropped until it comes, as a browser's receiver does.
HOLE_GIVE_UP_S = 0.5
# While waiting for that keyframe, the PLI is repeated this often (the first may be lost).
KEYFRAME_ASK_S = 0.5


def is_keyframe(data: bytes) -> bool:
    """A depayloaded frame that decodes on its own: an H.264 access unit (Annex B, as
    aiortc depayloads it) with an IDR slice or a sequence parameter set; otherwise a VP8
    key frame (its frame tag's type bit 0, then the start code 9d 01 2a, RFC 6386 9.1)."""
    if data.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01")):
        # each NAL unit's header byte follows a 00 00 01 (a 4-byte start code ends so too)
        return any(nal and nal[0] & 0x1F in (5, 7) for nal in data.split(b"\x00\x00\x01")[1:])
    return len(data) >= 6 and data[0] & 1 == 0 and data[3:6] == b"\x9d\x01\x2a"


class PromptJitterBuffer(JitterBuffer):
    """A prompter jitter buffer for the creator's ingest.

    aiortc's JitterBuffer hands a frame to the decoder only when a packet of the NEXT
    frame arrives (a new RTP timestamp), and holds audio for 4 packets (prefetch=4). On
    a live ingest that is pure added latency: one frame interval of video (33 ms at
    30 fps, more at lower rates) and 80 ms of audio, paid before the room encodes.

    This one emits a frame as soon as it is complete: a video frame at its marker bit
    (the last packet of a frame, RFC 3550/7741/6184), an Opus packet on arrival, each
    only when every packet from the buffer's origin up to it is present (so nothing
    partial goes to the decoder). Otherwise aiortc's own rules apply unchanged (loss,
    reordering, overflow), but for one: video held behind a hole for HOLE_GIVE_UP_S is
    let go, and frames are then dropped until a keyframe (asked for with a PLI). It
    overrides aiortc's private _remove_frame, hence lives here.
    """

    def __init__(self, capacity: int, is_video: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(capacity=capacity, prefetch=0, is_video=is_video)
        self._clock = clock
        self._hole: tuple[int, float] | None = None  # the first hole's sequence, since when
        self._waiting = False  # for a keyframe, after a hole was given up
        self._keyframe_asked: float | None = None  # the last PLI while waiting
        self.holes_given_up = 0  # tests and figures

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli, frame = super().add(packet)
        if not self._is_video:
            return pli, frame
        now = self._clock()
        gap = self._first_gap(packet)
        if gap is None:
            self._hole = None
        elif self._hole is None or self._hole[0] != gap:
            self._hole = (gap, now)  # a new first hole: NACK has its time from now
        elif now - self._hole[1] >= HOLE_GIVE_UP_S:
            self._skip_hole()
            self.holes_given_up += 1
            self._keyframe_asked = None  # ask at once
            frame = frame or self._remove_frame(packet.sequence_number)
        if self._waiting:
            # drop every complete frame held (those behind the hole too) up to a keyframe
            while frame is not None and not is_keyframe(frame.data):
                frame = self._remove_frame(packet.sequence_number)
            if frame is not None:
                self._waiting = False
            else:
                if self._keyframe_asked is None or now - self._keyframe_asked >= KEYFRAME_ASK_S:
                    self._keyframe_asked = now
                    pli = True
        return pli, frame

    def _first_gap(self, packet: RtpPacket) -> int | None:
        """The sequence number of the first packet missing between the origin and
        `packet`, when `packet` is held behind it; else None. Scans the packets held
        (those of the frame in progress: a few, unless something is missing)."""
        if self._origin is None or self._packets[packet.sequence_number % self.capacity] \
                is not packet:
            return None
        span = (packet.sequence_number - self._origin) & 0xFFFF
        for count in range(min(span, self.capacity)):
            if self._packets[(self._origin + count) % self.capacity] is None:
                return (self._origin + count) & 0xFFFF
        return None

    def _skip_hole(self) -> None:
        """Drop what is held before the first hole, and move the origin past it to the
        next packet present (the hole is given up)."""
        assert self._hole is not None and self._origin is not None
        self.remove((self._hole[0] - self._origin) & 0xFFFF)
        for _ in range(self.capacity):
            if self._packets[self._origin % self.capacity] is not None:
                break
            self._origin = (self._origin + 1) & 0xFFFF
        self._hole = None
        self._waiting = True

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        packets = []
        timestamp = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None or (timestamp is not None and packet.timestamp != timestamp):
                break  # a gap, or a frame without its marker: aiortc's rule decides
            timestamp = packet.timestamp
            packets.append(packet)
            if packet.marker or not self._is_video:  # an Opus packet is a whole frame
                self.remove(count + 1)
                return JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)
        return super()._remove_frame(sequence_number)


def use_prompt_jitter_buffer(receiver: RTCRtpReceiver, kind: str) -> None:
    """Swap the receiver's jitter buffer before any packet arrives."""
    capacity = getattr(receiver, _JITTER_BUFFER).capacity
    setattr(receiver, _JITTER_BUFFER, PromptJitterBuffer(capacity, is_video=kind == "video"))


# ---- receivers that never receive ------------------------------------------------------

class LazyBitrateEstimator:
    """aiortc's RemoteBitrateEstimator (REMB), built when the first packet comes.

    Every video RTCRtpReceiver builds one in its constructor, and it builds a RateCounter
    of 1,000 bucket objects: ~0.13 ms and ~100 KB (measured), also for each viewer's
    receiver, which a sendonly transceiver has and which never gets a packet. The
    receiver only calls add(), on a packet, so this builds the real one then."""

    __slots__ = ("_real",)

    def __init__(self) -> None:
        self._real: RemoteBitrateEstimator | None = None

    @property
    def built(self) -> bool:
        return self._real is not None

    def add(self, arrival_time_ms: int, abs_send_time: int, payload_size: int,
            ssrc: int) -> tuple[int, list[int]] | None:
        if self._real is None:
            self._real = RemoteBitrateEstimator()
        return self._real.add(arrival_time_ms, abs_send_time, payload_size, ssrc)


def build_bitrate_estimators_lazily() -> None:
    """Make every RTCRtpReceiver made from now on build its estimator lazily (idempotent).
    aiortc's receiver module names the class it builds; that name is what is replaced."""
    current = getattr(receiver_module, "RemoteBitrateEstimator", None)
    if current not in (RemoteBitrateEstimator, LazyBitrateEstimator):
        raise ImportError("aiortc.rtcrtpreceiver no longer builds RemoteBitrateEstimator "
                          "by that name; update media/aiortc_private.py")
    receiver_module.RemoteBitrateEstimator = LazyBitrateEstimator  # type: ignore[misc]


def bitrate_estimator(receiver: RTCRtpReceiver) -> Any:
    """The receiver's REMB estimator (None for audio)."""
    return receiver._RTCRtpReceiver__remote_bitrate_estimator  # type: ignore[attr-defined]


# ---- one DTLS certificate per node -----------------------------------------------------

class NodeCertificate(RTCCertificate):
    """The process's one DTLS certificate, with its SSL contexts and fingerprints made once.

    aiortc makes a certificate for every RTCPeerConnection (an EC P-256 key and a signed
    X.509: ~0.4 ms), a fresh OpenSSL context for every DTLS transport from it (~0.65 ms:
    the key and certificate are converted and loaded each time) and hashes the
    certificate three ways whenever it writes a description (~0.13 ms): ~1.2 ms of the
    event loop per join, measured on this machine, all of it the same work each time.
    WebRTC does not ask for a certificate per connection (the fingerprint in the SDP
    authenticates the handshake; the keys come from each handshake's ECDHE), and C SFUs
    keep one per process too. Installed by share_certificate().

    The session cache of the shared context is off: a handshake never resumes a session
    made by another peer connection (aiortc's own per-transport contexts never could).
    The certificate is renewed a day before it expires (aiortc signs it for 30 days);
    connections made before keep theirs.
    """

    RENEW_BEFORE: ClassVar[datetime.timedelta] = datetime.timedelta(days=1)
    _current: ClassVar[NodeCertificate | None] = None

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: Any) -> None:
        super().__init__(key=key, cert=cert)
        self._contexts: dict[tuple[bytes, ...], SSL.Context] = {}
        self._fingerprints: list[Any] | None = None
        self.contexts_made = 0  # tests: one per SRTP profile list, not one per join

    @classmethod
    def generateCertificate(cls) -> NodeCertificate:
        """The node's certificate: made at the first call, renewed near its expiry."""
        current = cls._current
        now = datetime.datetime.now(tz=datetime.UTC)
        if current is None or current.expires - now < cls.RENEW_BEFORE:
            key = ec.generate_private_key(ec.SECP256R1())
            current = cls._current = cls(key, generate_certificate(key))
        return current

    def getFingerprints(self) -> list[Any]:
        if self._fingerprints is None:
            self._fingerprints = super().getFingerprints()
        return list(self._fingerprints)

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        key = tuple(p.openssl_profile for p in srtp_profiles)
        context = self._contexts.get(key)
        if context is None:
            context = super()._create_ssl_context(srtp_profiles)
            context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
            self._contexts[key] = context
            self.contexts_made += 1
        return context


def share_certificate() -> None:
    """Make every RTCPeerConnection made from now on use the node's one certificate
    (NodeCertificate; idempotent). aiortc's peer connection module names the class whose
    generateCertificate() it calls: that name is what is replaced."""
    current = getattr(peerconnection_module, "RTCCertificate", None)
    if current not in (RTCCertificate, NodeCertificate):
        raise ImportError("aiortc.rtcpeerconnection no longer makes its certificate through "
                          "RTCCertificate; update media/aiortc_private.py")
    peerconnection_module.RTCCertificate = NodeCertificate  # type: ignore[misc]


def dtls_context(dtls: RTCDtlsTransport) -> SSL.Context | None:
    """The OpenSSL context a started DTLS transport's connection was made from."""
    return None if dtls._ssl is None else dtls._ssl.get_context()
