"""One room's outgoing RTP stream of one kind, built once for every viewer.

Every viewer of a room receives the same RTP packets: the same SSRC (each viewer's
RTCRtpSender is given the stream's SSRC before the offer is made), the same sequence
numbers, timestamps and payloads. So a frame is packetized once (aiortc's own
Encoder.pack(), e.g. the VP8 payload descriptor with its picture id) and serialized once
per *wire profile*; per viewer only SRTP and the send remain (media/viewer_link.py).

A wire profile is what the negotiation may make differ between viewers: the payload type,
the MID and the header-extension ids. The server makes every offer from the same code, so
in practice a room has one profile; viewers whose answers differ get their own bytes.

Measured (py-spy, 200 viewers of 640x360@30 through stock senders): building RtpPacket
objects, serializing and packetizing per viewer took ~11 us of the ~31 us per
viewer-packet; here they are paid once per packet for the whole room.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import av
from aiortc import clock
from aiortc.codecs.base import Encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from aiortc.utils import random16, random32

# Packets kept for NACK retransmission: ~2.6 s of 360p30 video, ~10 s of Opus.
HISTORY_PACKETS = 256
# A late joiner starts from the latest keyframe and the frames since, when that run is at
# most this long (90 kHz units: 1 s) and this many packets: it then decodes at once, with
# no forced keyframe, and plays at most 1 s of catch-up. Past it, a keyframe is forced
# (throttled) as before. 600 packets is ~6 s of 360p30 at 800 kbit/s: memory per room
# stays under ~0.8 MB per wire profile.
CATCH_UP_TICKS = 90000
MAX_CATCH_UP_PACKETS = 600


@dataclass(frozen=True)
class WireProfile:
    """What one viewer's negotiation fixed about the bytes it receives."""

    payload_type: int
    mid: str | None
    extensions: tuple[tuple[str, int], ...]  # (uri, id), sorted

    @classmethod
    def from_parameters(cls, parameters: RTCRtpParameters) -> WireProfile:
        return cls(
            payload_type=parameters.codecs[0].payloadType,
            mid=parameters.muxId or None,
            extensions=tuple(sorted((ext.uri, ext.id) for ext in parameters.headerExtensions)),
        )

    def extensions_map(self) -> HeaderExtensionsMap:
        extensions_map = HeaderExtensionsMap()
        extensions_map.configure(RTCRtpParameters(headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri) for uri, ext_id in self.extensions
        ]))
        return extensions_map


@dataclass(frozen=True)
class OutFrame:
    """One frame's packets, serialized for each wire profile that asked."""

    timestamp: int  # RTP timestamp
    ntp_time: int  # when it was built, for the senders' RTCP sender reports
    payload_octets: int
    packets: dict[WireProfile, list[bytes]]


class RtpStream:
    """Packetizes and serializes one kind's encoded packets once per room."""

    def __init__(self, packer: Encoder, history: int = HISTORY_PACKETS,
                 catch_up_ticks: int = CATCH_UP_TICKS, ssrc: int | None = None,
                 timestamp_origin: int | None = None) -> None:
        # A room's renditions share one SSRC and timestamp origin (the viewer keeps one
        # track across switches); each has its own sequence numbers.
        self.ssrc = random32() if ssrc is None else ssrc
        self.catch_up_ticks = catch_up_ticks
        self._packer = packer
        # Below 2^15 like aiortc: a low start avoids an early wrap that breaks SRTP's
        # rollover counter guess in some receivers.
        self._seq = random16() % 32768
        self._timestamp_origin = random32() if timestamp_origin is None else timestamp_origin
        self._maps: dict[WireProfile, HeaderExtensionsMap] = {}
        self._history: list[tuple[int, dict[WireProfile, bytes]] | None] = [None] * history
        self.packets = 0
        # Per profile: (the latest keyframe's RTP timestamp, its packets and every packet
        # since), for late joiners; dropped when too long or a frame was not built for it.
        self._since_keyframe: dict[WireProfile, tuple[int, list[bytes]]] = {}

    def frame(self, packet: av.Packet, profiles: Iterable[WireProfile],
              keyframe: bool = False) -> OutFrame:
        """Packetize `packet` and serialize it for each profile (sequence numbers advance once).
        `keyframe` (video): this frame starts a new run for late joiners."""
        payloads, timestamp = self._packer.pack(packet)
        timestamp = (self._timestamp_origin + timestamp) & 0xFFFFFFFF
        ntp = clock.current_ntp_time()
        abs_send_time = (ntp >> 14) & 0x00FFFFFF
        profiles = list(profiles)
        out: dict[WireProfile, list[bytes]] = {profile: [] for profile in profiles}
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            rtp = RtpPacket(payload_type=0, marker=int(i == last), sequence_number=self._seq,
                            timestamp=timestamp, ssrc=self.ssrc, payload=payload)
            rtp.extensions.abs_send_time = abs_send_time
            serialized: dict[WireProfile, bytes] = {}
            for profile in profiles:
                rtp.payload_type = profile.payload_type
                rtp.extensions.mid = profile.mid
                data = rtp.serialize(self._extensions_map(profile))
                serialized[profile] = data
                out[profile].append(data)
            self._history[self._seq % len(self._history)] = (self._seq, serialized)
            self._seq = (self._seq + 1) & 0xFFFF
            self.packets += 1
        self._keep_run(timestamp, out, keyframe)
        return OutFrame(timestamp, ntp, sum(map(len, payloads)), out)

    @property
    def next_seq(self) -> int:
        """The sequence number the next packet will get."""
        return self._seq

    def has_run(self, profile: WireProfile) -> bool:
        """True if a late joiner with `profile` can start from the latest keyframe run."""
        return profile in self._since_keyframe

    def since_keyframe(self, profile: WireProfile) -> list[bytes]:
        """The latest keyframe's packets and every packet since, in sequence, for a viewer
        that starts now; empty if there is no short enough run for `profile`."""
        run = self._since_keyframe.get(profile)
        return list(run[1]) if run is not None else []

    def _keep_run(self, timestamp: int, out: dict[WireProfile, list[bytes]],
                  keyframe: bool) -> None:
        for profile in [p for p in self._since_keyframe if p not in out]:
            del self._since_keyframe[profile]  # it missed this frame: the run has a gap
        for profile, packets in out.items():
            if keyframe:
                self._since_keyframe[profile] = (timestamp, list(packets))
                continue
            run = self._since_keyframe.get(profile)
            if run is None:
                continue
            if ((timestamp - run[0]) & 0xFFFFFFFF > self.catch_up_ticks
                    or len(run[1]) + len(packets) > MAX_CATCH_UP_PACKETS):
                del self._since_keyframe[profile]
            else:
                run[1].extend(packets)

    def forget_run(self) -> None:
        """Drop the keyframe runs: the stream pauses (nobody takes its rendition), and a
        run from before the pause must not start a viewer after it."""
        self._since_keyframe.clear()

    def lookup(self, sequence_number: int, profile: WireProfile) -> bytes | None:
        """A recent packet's bytes for `profile`, for a NACK; None if gone or never built."""
        entry = self._history[sequence_number % len(self._history)]
        if entry is None or entry[0] != sequence_number:
            return None
        return entry[1].get(profile)

    def _extensions_map(self, profile: WireProfile) -> HeaderExtensionsMap:
        extensions_map = self._maps.get(profile)
        if extensions_map is None:
            extensions_map = self._maps[profile] = profile.extensions_map()
        return extensions_map
