"""Fan-out: one room's encoded packets to every viewer, behind a narrow interface.

    add_viewer(id) -> ViewerFeed    remove_viewer(id)
    push_video(packet, keyframe)    push_audio(packet)
    retransmit(id, kind, seqs)      request_keyframe(id)
    keyframe_wanted (callback the room gives us)

Each encoded packet is packetized and serialized once for the room (media/rtp_stream.py)
and then, in the same loop iteration, SRTP-protected and sent to every active viewer
(media/viewer_link.py). There is no per-viewer queue or task: a frame reaches the last
viewer a few milliseconds after the first, and nothing waits in Python for a slow viewer.

Measured on this 2-core machine, 640x360@30 ~800 kbit/s + Opus, server process alone
(`golive bench fanout --viewers 1,10,50,100,200`): stock aiortc senders (one per
viewer, each packetizing and serializing, a task per sender) held 100 viewers at 30 fps
and saturated at 200 (14 fps, ~38-46 us per viewer-packet); see README's benchmark table
for this path's figures.

A slow viewer: its socket's asyncio send buffer is the only place data can wait; past
MAX_BACKLOG_BYTES its video skips to the next keyframe (and asks for one) and its audio
packets are dropped, so it never slows the others or grows memory.
A link stays idle (nothing sent, nothing counted) until its sender starts, i.e. until the
viewer's DTLS is up; then it asks for a keyframe, and the first video it gets is one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import av
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media.rtp_stream import RtpStream, WireProfile
from media.viewer_link import ViewerLink

_PACKERS: dict[str, str] = {"vp8": "video/VP8", "h264": "video/H264", "opus": "audio/opus"}


def make_packer(codec: str) -> Encoder:
    """aiortc's packetizer for `codec` (vp8, h264, opus): only its pack() is used."""
    mime = _PACKERS[codec]
    kind = mime.split("/")[0]
    clock_rate = 90000 if kind == "video" else 48000
    return get_encoder(RTCRtpCodecParameters(mimeType=mime, clockRate=clock_rate))


@dataclass
class ViewerFeed:
    """A viewer's two links; the peer connection sends their IdleTracks."""

    viewer_id: str
    video: ViewerLink
    audio: ViewerLink
    keyframe_requests: int = field(default=0)

    @property
    def dropped_video(self) -> int:
        return self.video.dropped

    @property
    def dropped_audio(self) -> int:
        return self.audio.dropped

    def links(self) -> tuple[ViewerLink, ViewerLink]:
        return self.video, self.audio


class Fanout:
    """Sends each pushed packet to every active viewer, built once for all of them."""

    def __init__(
        self,
        keyframe_wanted: Callable[[], None],
        video_codec: str = "vp8",
    ) -> None:
        self._keyframe_wanted = keyframe_wanted
        self._streams = {"video": RtpStream(make_packer(video_codec)),
                         "audio": RtpStream(make_packer("opus"))}
        self._feeds: dict[str, ViewerFeed] = {}
        # Active links per kind, grouped by wire profile; rebuilt when a link starts or leaves.
        self._groups: dict[str, dict[WireProfile, list[ViewerLink]]] | None = None

    def __len__(self) -> int:
        return len(self._feeds)

    def add_viewer(self, viewer_id: str) -> ViewerFeed:
        """A new, idle feed for `viewer_id` (ids are unique; the caller checks)."""
        if viewer_id in self._feeds:
            raise KeyError(f"viewer {viewer_id!r} already has a feed")
        feed = ViewerFeed(
            viewer_id,
            video=ViewerLink("video", self._streams["video"].ssrc, self._on_active),
            audio=ViewerLink("audio", self._streams["audio"].ssrc, self._on_active),
        )
        self._feeds[viewer_id] = feed
        return feed

    def remove_viewer(self, viewer_id: str) -> ViewerFeed | None:
        """Forget the viewer and end its tracks. Returns its feed (for final stats), if any."""
        feed = self._feeds.pop(viewer_id, None)
        if feed is not None:
            for link in feed.links():
                link.close()
            self._groups = None
        return feed

    def push_video(self, packet: av.Packet, keyframe: bool) -> None:
        """Send one encoded video frame to every active viewer."""
        groups = self._active("video")
        if not groups:
            return
        frame = self._streams["video"].frame(packet, groups)
        want = False
        for links in groups.values():
            for link in links:
                if link.deliver_video(frame, keyframe):
                    want = True
        if want:
            self._keyframe_wanted()

    def push_audio(self, packet: av.Packet) -> None:
        """Send one Opus packet to every active viewer."""
        groups = self._active("audio")
        if not groups:
            return
        frame = self._streams["audio"].frame(packet, groups)
        for links in groups.values():
            for link in links:
                link.deliver_audio(frame)

    def retransmit(self, viewer_id: str, kind: str, sequence_numbers: Iterable[int]) -> int:
        """A viewer's NACK: resend what the stream still holds. Returns packets resent."""
        feed = self._feeds.get(viewer_id)
        if feed is None or kind not in self._streams:
            return 0
        link = feed.video if kind == "video" else feed.audio
        if link.profile is None:
            return 0
        stream = self._streams[kind]
        found = [data for seq in sequence_numbers
                 if (data := stream.lookup(seq, link.profile)) is not None]
        link.retransmit(found)
        return len(found)

    def request_keyframe(self, viewer_id: str) -> None:
        """A viewer's PLI/FIR: pass it on to the room (which throttles)."""
        feed = self._feeds.get(viewer_id)
        if feed is not None:
            feed.keyframe_requests += 1
            self._keyframe_wanted()

    def drops(self) -> dict[str, int]:
        """Video frames not sent so far, per viewer."""
        return {vid: feed.video.dropped for vid, feed in self._feeds.items()}

    def close(self) -> None:
        """End every viewer's tracks."""
        for viewer_id in list(self._feeds):
            self.remove_viewer(viewer_id)

    def _active(self, kind: str) -> dict[WireProfile, list[ViewerLink]]:
        if self._groups is None:
            groups: dict[str, dict[WireProfile, list[ViewerLink]]] = {"video": {}, "audio": {}}
            for feed in self._feeds.values():
                for link in feed.links():
                    if link.active:
                        assert link.profile is not None  # active implies a profile
                        groups[link.kind].setdefault(link.profile, []).append(link)
            self._groups = groups
        return self._groups[kind]

    def _on_active(self, link: ViewerLink) -> None:
        self._groups = None
        if link.kind == "video":
            self._keyframe_wanted()
