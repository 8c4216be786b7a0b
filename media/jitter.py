"""A prompter jitter buffer for the creator's ingest.

aiortc's JitterBuffer hands a frame to the decoder only when a packet of the NEXT frame
arrives (a new RTP timestamp), and holds audio for 4 packets (prefetch=4). On a live
ingest that is pure added latency: one frame interval of video (33 ms at 30 fps, more at
lower rates) and 80 ms of audio, paid before the room encodes anything.

PromptJitterBuffer emits a frame as soon as it is complete: a video frame at its marker
bit (the last packet of a frame, RFC 3550/7741/6184), an Opus packet on arrival, each only
when every packet from the buffer's origin up to it is present (so nothing partial goes to
the decoder). Otherwise aiortc's own rules apply unchanged (loss, reordering, overflow).
"""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver

_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"  # aiortc 1.16 creates it in __init__


class PromptJitterBuffer(JitterBuffer):
    def __init__(self, capacity: int, is_video: bool) -> None:
        super().__init__(capacity=capacity, prefetch=0, is_video=is_video)

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
    current = getattr(receiver, _ATTRIBUTE, None)
    if not isinstance(current, JitterBuffer):
        raise RuntimeError(f"aiortc's RTCRtpReceiver has no {_ATTRIBUTE} (written for 1.16)")
    setattr(receiver, _ATTRIBUTE, PromptJitterBuffer(current.capacity, is_video=kind == "video"))
