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

Two send paths (media/fastpath.py, chosen at start): the Python one above, per
viewer-packet; and the native one, where each frame is ONE C call per wire profile for
every link in steady state (started, keyframe seen, nothing queued in asyncio): a _Plan
of their (srtp_t, socket, sockaddr), rebuilt only when a link joins, leaves, becomes ready
or errs. Links not ready (awaiting a keyframe, backlogged) keep the Python path's gating
until they are. Their counters and RTCP sender reports are brought up to date every
REPORT_EVERY_S rather than per frame (the NTP/RTP pair is always one frame's, so
lip-sync stays exact; the counts lag by at most that).

Renditions (media/renditions.py): the room encodes its video once per rendition a viewer
takes, and each rendition has its own RtpStream; all share one SSRC and RTP timestamp
origin, and each has its own sequence numbers. A viewer gets one rendition's packets.
switch() moves it at the target rendition's next keyframe (asked for at once):
begin_frame() runs before any rendition's packets of a source frame are sent, so the
viewer gets the old rendition's frames up to the previous source frame and the new one's
from its keyframe on, with the same SSRC and timestamps, and its sequence numbers
continued through a per-viewer offset (applied in C on the native path, in Python on the
other; a viewer that never switched has offset 0 and costs nothing more).

A viewer whose receiver may wait on a packet that will never come (it NACKed lately, or
named one gone from the history) gets its numbering jumped forward by SEQ_JUMP at the
keyframe it moves to, so its jitter buffer lets go of what it holds and that keyframe
decodes at once (media/viewer_link.py says why 512 and how Chromium takes it). Without a
switch, such a NACK makes it "resync": the same jump at its own rendition's next
keyframe, asked for at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import av
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.utils import random32

from media.fastpath import TRANSIENT, WOULD_BLOCK, NativeSender, Target
from media.rtp_stream import CATCH_UP_TICKS, OutFrame, RtpStream, WireProfile
from media.viewer_link import AGAIN_WITHIN, ViewerLink, renumber_jump

# How often the native path refreshes its links' counters and sender-report figures
# (aiortc sends a sender report every 0.5-1.5 s). NTP time units: 1/2^32 s.
REPORT_EVERY_S = 0.1
_REPORT_EVERY_NTP = int(REPORT_EVERY_S * (1 << 32))

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


class _Plan:
    """The links of one kind and wire profile the native path serves, and what it sent
    them since the plan was made (every link in a plan gets every frame)."""

    def __init__(self, native: NativeSender, links: list[ViewerLink]) -> None:
        self.links: list[ViewerLink] = []  # served natively, in targets' order
        self.others: list[ViewerLink] = []  # not ready: the Python path's gating serves them
        self.targets: list[Target] = []
        self._sessions: list[object] = []  # keeps each srtp_t alive while the plan lives
        for link in links:
            made = link.native_target(native)
            if made is None:
                self.others.append(link)
            else:
                self.links.append(link)
                self.targets.append(made[0])
                self._sessions.append(made[1])
        self._base = [(link.sent_packets, link.sent_octets) for link in self.links]
        self.packets = 0
        self.octets = 0
        self._last: tuple[int, int] | None = None  # (ntp, rtp timestamp) of the last frame
        self._reported_ntp = 0

    def sent(self, frame: OutFrame, packets: int) -> None:
        self.packets += packets
        self.octets += frame.payload_octets
        self._last = (frame.ntp_time, frame.timestamp)
        if frame.ntp_time - self._reported_ntp >= _REPORT_EVERY_NTP:
            self.report()

    def report(self) -> None:
        """Bring every link's counters and sender-report figures up to date."""
        if self._last is None:
            return
        self._reported_ntp = self._last[0]
        for link, (packets, octets) in zip(self.links, self._base, strict=True):
            link.count_sent(packets + self.packets, octets + self.octets, *self._last)


class PacketFanout:
    """Sends each pushed packet to every active viewer, built once for all of them.

    `native` (media/fastpath.py) selects the native send path; None runs the Python one.
    `link_failed(viewer_id)` is told once when a viewer's socket errs (it gets nothing more).
    """

    def __init__(
        self,
        keyframe_wanted: Callable[[int], None],
        video_codec: str = "vp8",
        native: NativeSender | None = None,
        link_failed: Callable[[str], None] | None = None,
        catch_up_s: float = CATCH_UP_TICKS / 90000,
        renditions: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keyframe_wanted = keyframe_wanted  # called with the rendition's index
        self._clock = clock
        self._link_failed = link_failed
        self._native = native
        ssrc, origin = random32(), random32()
        self._video = [RtpStream(make_packer(video_codec), ssrc=ssrc, timestamp_origin=origin,
                                 catch_up_ticks=int(catch_up_s * 90000))
                       for _ in range(renditions)]
        self._streams = {"video": self._video[0], "audio": RtpStream(make_packer("opus"))}
        self._feeds: dict[str, ViewerFeed] = {}
        # Active links per kind, by rendition (audio: 0) and wire profile; rebuilt when a
        # link starts, leaves or switches.
        self._groups: dict[str, dict[int, dict[WireProfile, list[ViewerLink]]]] | None = None
        # The native path's plans, per kind, rendition and profile; dropped with _groups.
        self._plans: dict[str, dict[tuple[int, WireProfile], _Plan]] = {"video": {}, "audio": {}}
        # The video profiles served last, per rendition: while nobody watches, frames are
        # still built for them (not sent), so the next viewer into the quiet room starts
        # from the latest keyframe run instead of waiting for a forced keyframe (up to the
        # 0.5 s throttle).
        self._recent_video_profiles: list[tuple[WireProfile, ...]] = [() for _ in self._video]
        # Video links just started, given the room's latest keyframe run at the next frame.
        self._starting: list[ViewerLink] = []
        self._pending: set[str] = set()  # viewers waiting for a keyframe to switch or resync
        # viewers with a second copy of a resent video packet due (ViewerLink.again_due)
        self._again: set[str] = set()
        self._taken: set[int] | None = None  # renditions some viewer takes; None: recount

    @property
    def native(self) -> bool:
        """True if this fan-out sends through the native path."""
        return self._native is not None

    def __len__(self) -> int:
        return len(self._feeds)

    def add_viewer(self, viewer_id: str) -> ViewerFeed:
        """A new, idle feed for `viewer_id` (ids are unique; the caller checks)."""
        if viewer_id in self._feeds:
            raise KeyError(f"viewer {viewer_id!r} already has a feed")
        def failed(link: ViewerLink) -> None:
            self._on_failed(viewer_id, link)

        feed = ViewerFeed(
            viewer_id,
            video=ViewerLink("video", self._streams["video"].ssrc, self._on_active, failed),
            audio=ViewerLink("audio", self._streams["audio"].ssrc, self._on_active, failed),
        )
        self._feeds[viewer_id] = feed
        self._taken = None
        return feed

    def remove_viewer(self, viewer_id: str) -> ViewerFeed | None:
        """Forget the viewer and end its tracks. Returns its feed (for final stats), if any."""
        feed = self._feeds.pop(viewer_id, None)
        self._pending.discard(viewer_id)
        self._taken = None
        if feed is not None:
            self._invalidate()  # settles the plans' counters first
            for link in feed.links():
                link.close()
        return feed

    def push_video(self, packet: av.Packet, keyframe: bool, rendition: int = 0) -> None:
        """Send one encoded video frame of `rendition` to every active viewer of it."""
        if self._again:
            self._resend_again()
        want = self._start_links(rendition) if self._starting else False
        stream = self._video[rendition]
        groups = self._active("video").get(rendition)
        recent = self._recent_video_profiles[rendition]
        if not groups:
            if recent:  # nobody watches: keep the run current
                stream.frame(packet, recent, keyframe)
            return
        if len(groups) != len(recent) or any(p not in groups for p in recent):
            self._recent_video_profiles[rendition] = tuple(groups)
        frame = stream.frame(packet, groups, keyframe)
        if self._native is not None:
            want = self._push_native("video", rendition, frame, groups, keyframe) or want
        else:
            for links in groups.values():
                for link in links:
                    if link.deliver_video(frame, keyframe):
                        want = True
        if want:
            self._keyframe_wanted(rendition)

    def switch(self, viewer_id: str, rendition: int) -> bool:
        """Move the viewer to `rendition` at its next keyframe (asked for now); at once if
        its video has not started. False if there is no such viewer or rendition."""
        feed = self._feeds.get(viewer_id)
        if feed is None or not 0 <= rendition < len(self._video):
            return False
        link = feed.video
        self._taken = None
        if rendition == link.rendition or not link.started:
            link.rendition, link.pending = rendition, None
            if not link.resync:
                self._pending.discard(viewer_id)
            return True
        link.pending = rendition
        self._pending.add(viewer_id)
        self._keyframe_wanted(rendition)
        return True

    def begin_frame(self, keyframes: Iterable[int]) -> list[str]:
        """Before a source frame's renditions are pushed: the viewers waiting to switch to
        (or resync on) a rendition whose packet of this frame is a keyframe move now
        (module doc). Returns the viewers that moved to another rendition."""
        if not self._pending:
            return []
        keyed = set(keyframes)
        if not keyed:
            return []
        moved: list[str] = []
        now = self._clock()
        for viewer_id in list(self._pending):
            link = self._feeds[viewer_id].video
            target = link.rendition if link.pending is None else link.pending
            if target not in keyed:
                continue
            old, new = self._video[link.rendition], self._video[target]
            jump = renumber_jump(link.resync, link.nacked_at, now)
            first = (old.next_seq + link.seq_offset + jump) & 0xFFFF  # the viewer's next number
            link.seq_offset = (first - new.next_seq) & 0xFFFF
            link.switch_seq, link.switch_jumped = first, jump > 0
            if jump:
                link.jumps.append((first, jump))
                link.nacked_at = None  # the holes before the jump no longer hold it up
            if link.resync:
                link.resync = False
                link.resyncs += 1
            if target != link.rendition:
                link.switches += 1
                moved.append(viewer_id)
            link.rendition, link.pending = target, None
            self._pending.discard(viewer_id)
            self._taken = None
            self._invalidate()
        return moved

    def route_changed(self) -> None:
        """A viewer's socket or address changed (an ICE restart): plans are rebuilt."""
        self._invalidate()

    def rendition_paused(self, rendition: int) -> None:
        """The room stops encoding `rendition` (nobody takes it): its keyframe run ends."""
        self._video[rendition].forget_run()
        self._recent_video_profiles[rendition] = ()

    def renditions_taken(self) -> set[int]:
        """The renditions some viewer gets or is switching to."""
        if self._taken is None:
            taken: set[int] = set()
            for feed in self._feeds.values():
                link = feed.video
                if link.failed is None and link.track.readyState == "live":
                    taken.add(link.rendition)
                    if link.pending is not None:
                        taken.add(link.pending)
            self._taken = taken
        return self._taken

    def rendition_of(self, viewer_id: str) -> tuple[int, int | None] | None:
        """(the rendition the viewer gets, the one it switches to or None); None if unknown."""
        feed = self._feeds.get(viewer_id)
        return None if feed is None else (feed.video.rendition, feed.video.pending)

    def _start_links(self, rendition: int) -> bool:
        """Send each link of `rendition` started since its last frame the rendition's
        latest keyframe run (before this frame is built: the run ends with the frame
        before it). True if one had none after all (it waits for a keyframe: forced,
        throttled)."""
        starting = [link for link in self._starting if link.rendition == rendition]
        if not starting:
            return False
        self._starting = [link for link in self._starting if link.rendition != rendition]
        want = False
        for link in starting:
            if link.active and link.profile is not None and not link.start_from(
                    self._video[rendition].since_keyframe(link.profile)):
                want = True
        return want

    def push_audio(self, packet: av.Packet) -> None:
        """Send one Opus packet to every active viewer."""
        groups = self._active("audio").get(0)
        if not groups:
            return
        frame = self._streams["audio"].frame(packet, groups)
        if self._native is not None:
            self._push_native("audio", 0, frame, groups, False)
            return
        for links in groups.values():
            for link in links:
                link.deliver_audio(frame)

    def retransmit(self, viewer_id: str, kind: str, sequence_numbers: Iterable[int]) -> int:
        """A viewer's NACK: resend what the stream still holds. Returns packets resent.
        A video packet it cannot have (gone from the history, sent before a switch that
        did not jump, or still NACKed STUCK_AFTER_S after its first NACK) makes it
        resync (module doc)."""
        feed = self._feeds.get(viewer_id)
        if feed is None or kind not in self._streams:
            return 0
        link = feed.video if kind == "video" else feed.audio
        if link.profile is None:
            return 0
        now = self._clock()
        if kind == "audio":
            stream = self._streams["audio"]
            found = [data for seq in sequence_numbers if link.resend_due(seq, now)
                     and (data := stream.lookup(seq, link.profile)) is not None]
            link.retransmit(found)
            return len(found)
        stream = self._video[link.rendition]
        found = []
        lost = False  # a packet its receiver waits for and will never get
        asked = False  # a packet from after its latest switch
        for seq in sequence_numbers:
            if link.before_switch(seq):
                # before a jump: its receiver dropped those already; before a plain
                # switch: another rendition's packet, which it may still wait on
                lost = lost or not link.switch_jumped
                continue
            asked = True
            data = stream.lookup((seq - link.seq_offset) & 0xFFFF, link.profile)
            if data is None or link.stuck_on(seq, now):
                lost = True
            elif link.resend_due(seq, now):
                found.append(data)
                link.send_again(seq, now)
        if asked:
            link.nacked_at = now
        link.retransmit(found)
        if found:
            self._again.add(viewer_id)
        if lost and not link.resync and link.started:
            link.resync = True
            self._pending.add(viewer_id)
            self._keyframe_wanted(link.rendition if link.pending is None else link.pending)
        return len(found)

    def _resend_again(self) -> None:
        """The second copies of resent video packets now due (ViewerLink.send_again)."""
        now = self._clock()
        for viewer_id in list(self._again):
            feed = self._feeds.get(viewer_id)
            if feed is None:
                self._again.discard(viewer_id)
                continue
            link = feed.video
            seqs, more = link.again_due(now)
            if not more:
                self._again.discard(viewer_id)
            if not seqs or link.profile is None:
                continue
            stream = self._video[link.rendition]
            newest = stream.next_seq - 1
            found = []
            for seq in seqs:
                ours = (seq - link.seq_offset) & 0xFFFF
                if (link.before_switch(seq) or (newest - ours) & 0xFFFF > AGAIN_WITHIN
                        or (data := stream.lookup(ours, link.profile)) is None):
                    continue
                found.append(data)
            link.retransmit(found)

    def request_keyframe(self, viewer_id: str) -> None:
        """A viewer's PLI/FIR: pass it on to the room (which throttles)."""
        feed = self._feeds.get(viewer_id)
        if feed is None:
            return
        feed.keyframe_requests += 1
        link = feed.video
        # Not ignored even right after our own jump (aiortc answers every jump with a
        # PLI): when the keyframe's first packet is lost the jump lands aiortc's buffer
        # on its second, the keyframe never decodes and only the next one helps.
        self._keyframe_wanted(link.pending if link.pending is not None else link.rendition)

    def drops(self) -> dict[str, int]:
        """Video frames not sent so far, per viewer."""
        return {vid: feed.video.dropped for vid, feed in self._feeds.items()}

    def close(self) -> None:
        """End every viewer's tracks."""
        for viewer_id in list(self._feeds):
            self.remove_viewer(viewer_id)

    def _push_native(self, kind: str, rendition: int, frame: OutFrame,
                     groups: dict[WireProfile, list[ViewerLink]], keyframe: bool) -> bool:
        """One C call per profile for the ready links; the Python path's gating for the
        others. True if one of them fell behind (wants a keyframe)."""
        assert self._native is not None
        plans = self._plans[kind]
        want = changed = False
        for profile, links in groups.items():
            plan = plans.get((rendition, profile))
            if plan is None:
                plan = plans[rendition, profile] = _Plan(self._native, links)
            packets = frame.packets[profile]
            if plan.targets:
                try:
                    failures = self._native.send(packets, plan.targets)
                except ValueError:
                    # beyond the C path's bounds (over 512 packets a frame, or one over
                    # 1,500 bytes): this frame goes the Python way, link by link; the plan
                    # is settled and dropped first (the Python path counts for itself)
                    plan.report()
                    del plans[rendition, profile]
                    for link in plan.links + plan.others:
                        want = self._deliver(link, frame, keyframe) or want
                    continue
                plan.sent(frame, len(packets))
                for index, sent, error in failures:
                    link = plan.links[index]
                    if error in TRANSIENT:
                        link.dropped += 1  # this frame only; the link stays in the plan
                        continue
                    changed = True
                    if error in WOULD_BLOCK:
                        link.send_rest(packets[sent:])  # queued in asyncio; leaves the plan
                    else:
                        link.fail(f"send failed: {_describe(error)}")
            for link in plan.others:
                want = self._deliver(link, frame, keyframe) or want
                if link.native_target(self._native) is not None:
                    changed = True  # ready now: the next frame's plan serves it natively
        if changed:
            self._invalidate()
        return want

    @staticmethod
    def _deliver(link: ViewerLink, frame: OutFrame, keyframe: bool) -> bool:
        """The Python path for one link; True if it fell behind (wants a keyframe)."""
        if link.kind == "video":
            return link.deliver_video(frame, keyframe)
        link.deliver_audio(frame)
        return False

    def _invalidate(self) -> None:
        """Forget the groups and plans (settling the plans' counters first)."""
        for plans in self._plans.values():
            for plan in plans.values():
                plan.report()
            plans.clear()
        self._groups = None

    def _on_failed(self, viewer_id: str, link: ViewerLink) -> None:
        self._invalidate()
        self._taken = None
        feed = self._feeds.get(viewer_id)
        if feed is None:
            return
        other = feed.audio if link is feed.video else feed.video
        first = other.failed is None  # tell once per viewer
        other.fail(link.failed or "failed")  # a viewer without its socket is gone for both
        if first and self._link_failed is not None:
            self._link_failed(viewer_id)

    def _active(self, kind: str) -> dict[int, dict[WireProfile, list[ViewerLink]]]:
        if self._groups is None:
            groups: dict[str, dict[int, dict[WireProfile, list[ViewerLink]]]] = {
                "video": {}, "audio": {}}
            for feed in self._feeds.values():
                for link in feed.links():
                    if link.active:
                        assert link.profile is not None  # active implies a profile
                        rendition = link.rendition if link.kind == "video" else 0
                        groups[link.kind].setdefault(rendition, {}).setdefault(
                            link.profile, []).append(link)
            self._groups = groups
        return self._groups[kind]

    def _on_active(self, link: ViewerLink) -> None:
        self._invalidate()
        if link.kind != "video":
            return
        # Instant start: the latest keyframe and the frames since, if that run is short
        # (media/rtp_stream.py); only without one is a keyframe forced (throttled). Sent
        # with the next frame, not now: an aiortc peer registers its receivers only after
        # its DTLS handshake is done and drops the SRTP that comes first, which the run
        # did when sent right behind the server's last DTLS flight (issue 14: 6 of 20 joins
        # into a quiet room then waited 0.3-0.5 s for a keyframe).
        assert link.profile is not None
        if self._video[link.rendition].has_run(link.profile):
            self._starting.append(link)
        else:
            self._keyframe_wanted(link.rendition)


def _describe(error: int) -> str:
    if error < 0:
        return f"SRTP protect failed (libsrtp status {-error})"
    return os.strerror(error)
