"""Fan-out: one room's encoded packets to every viewer, behind a narrow interface.

    add_viewer(id) -> ViewerFeed    remove_viewer(id)
    push_video(packet, keyframe)    push_audio(packet)
    keyframe_wanted (callback the room gives us)

Each viewer gets two PacketTracks (video, audio) whose recv() returns the shared
av.Packet objects, so aiortc's RTCRtpSender only packetizes them (pack()), never encodes.
This is the hot path (measured ~50 us of CPU per viewer-packet through stock aiortc
senders); a leaner implementation (packetize once per frame, per viewer only SRTP and a
send) can replace this module behind the same interface.

Queues are bounded per viewer and per kind. Packets are shared between viewers, so a
queue costs references, not bytes; the bound is about latency:
- video: VIDEO_QUEUE_PACKETS (30 = 1 s at 30 fps, one packet per frame). On overflow the
  viewer's queue is emptied, it drops every delta frame until the next keyframe (a decoder
  cannot use deltas without their reference) and a keyframe is requested (throttled by the
  room). A slow viewer never slows the others or grows memory.
- audio: AUDIO_QUEUE_PACKETS (50 = 1 s of 20 ms Opus). On overflow the oldest packet is
  dropped; Opus packets decode independently.
A feed stays idle (nothing queued, nothing counted) until its sender first calls recv(),
i.e. until the viewer's DTLS is up; the first video recv() asks for a keyframe, and the
first video packet it gets is one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_QUEUE_PACKETS = 30
AUDIO_QUEUE_PACKETS = 50


class PacketTrack(MediaStreamTrack):
    """A track of pre-encoded packets for one viewer's RTCRtpSender."""

    def __init__(self, kind: str, bound: int, on_first_recv: Callable[[PacketTrack], None]) -> None:
        super().__init__()
        self.kind = kind
        self.bound = bound
        self.active = False  # set by the first recv()
        self.awaiting_keyframe = kind == "video"
        self.dropped = 0
        self._queue: deque[av.Packet] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._on_first_recv = on_first_recv

    def offer(self, packet: av.Packet, keyframe: bool) -> bool:
        """Queue `packet` under the overflow policy; False if it was dropped (or idle)."""
        if not self.active or self.readyState != "live":
            return False
        if self.kind == "video":
            if self.awaiting_keyframe and not keyframe:
                self.dropped += 1
                return False
            self.awaiting_keyframe = False
            if len(self._queue) >= self.bound:
                self.dropped += len(self._queue) + 1
                self._queue.clear()
                self.awaiting_keyframe = not keyframe
                if not keyframe:
                    return False
        elif len(self._queue) >= self.bound:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(packet)
        self._wake()
        return True

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def recv(self) -> av.Packet:
        if not self.active:
            self.active = True
            self._on_first_recv(self)
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def stop(self) -> None:
        """End the track: a pending recv() raises MediaStreamError, which ends the sender."""
        self._queue.clear()
        super().stop()
        self._wake()


@dataclass
class ViewerFeed:
    """What a viewer's peer connection sends: one video and one audio PacketTrack."""

    viewer_id: str
    video: PacketTrack
    audio: PacketTrack
    keyframe_requests: int = field(default=0)

    @property
    def dropped_video(self) -> int:
        return self.video.dropped

    @property
    def dropped_audio(self) -> int:
        return self.audio.dropped


class Fanout:
    """Copies each pushed packet into every active viewer's bounded queue."""

    def __init__(
        self,
        keyframe_wanted: Callable[[], None],
        video_queue_packets: int = VIDEO_QUEUE_PACKETS,
        audio_queue_packets: int = AUDIO_QUEUE_PACKETS,
    ) -> None:
        self._keyframe_wanted = keyframe_wanted
        self._video_bound = video_queue_packets
        self._audio_bound = audio_queue_packets
        self._feeds: dict[str, ViewerFeed] = {}

    def __len__(self) -> int:
        return len(self._feeds)

    def add_viewer(self, viewer_id: str) -> ViewerFeed:
        """A new, idle feed for `viewer_id` (ids are unique; the caller checks)."""
        if viewer_id in self._feeds:
            raise KeyError(f"viewer {viewer_id!r} already has a feed")
        feed = ViewerFeed(
            viewer_id,
            video=PacketTrack("video", self._video_bound, self._on_first_recv),
            audio=PacketTrack("audio", self._audio_bound, self._on_first_recv),
        )
        self._feeds[viewer_id] = feed
        return feed

    def remove_viewer(self, viewer_id: str) -> ViewerFeed | None:
        """Forget the viewer and end its tracks. Returns its feed (for final stats), if any."""
        feed = self._feeds.pop(viewer_id, None)
        if feed is not None:
            feed.video.stop()
            feed.audio.stop()
        return feed

    def push_video(self, packet: av.Packet, keyframe: bool) -> None:
        """Fan one encoded video frame out to every active viewer."""
        want = False
        for feed in self._feeds.values():
            track = feed.video
            was_waiting = track.awaiting_keyframe
            if not track.offer(packet, keyframe) and track.active and not was_waiting:
                want = True  # this packet overflowed the queue: the viewer needs a keyframe
        if want:
            self._keyframe_wanted()

    def push_audio(self, packet: av.Packet) -> None:
        """Fan one Opus packet out to every active viewer."""
        for feed in self._feeds.values():
            feed.audio.offer(packet, True)

    def request_keyframe(self, viewer_id: str) -> None:
        """A viewer's PLI/FIR: pass it on to the room (which throttles)."""
        feed = self._feeds.get(viewer_id)
        if feed is not None:
            feed.keyframe_requests += 1
            self._keyframe_wanted()

    def drops(self) -> dict[str, int]:
        """Video frames dropped so far, per viewer."""
        return {vid: feed.video.dropped for vid, feed in self._feeds.items()}

    def close(self) -> None:
        """End every viewer's tracks."""
        for viewer_id in list(self._feeds):
            self.remove_viewer(viewer_id)

    def _on_first_recv(self, track: PacketTrack) -> None:
        if track.kind == "video":
            self._keyframe_wanted()
