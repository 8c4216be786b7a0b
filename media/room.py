"""MediaRoom: one live room's media, from the creator's tracks to every viewer.

    creator pc -> Publisher readers -> newest-frame slot -> Compositor + LadderEncoder
    (one per room, on the room's encode thread) -> PacketFanout -> each ViewerPeer's senders
    audio: Publisher reader -> AudioEncoder (on the loop; ~0.1 ms per 20 ms) -> PacketFanout

Ownership: the room owns its two tasks (supervisor, encode loop), the encode thread, the
Publisher (which owns its reader tasks) and every ViewerPeer. close() unwinds them all.
The room knows rooms only as an id and overlays as values; it imports no web framework.

An edge room (the cascade, media/relay.py) is the same room without a publisher or an
encoder: `upstream_keyframes` given, it is fed encoded frames by its relay
(feed_frame/feed_video/feed_audio) into the same PacketFanout, and the keyframes its
viewers need and its RTP history cannot give are asked of the origin through that
callback (with the rendition), at most one per keyframe_min_interval_s per rendition
(the same KeyframePolicy that throttles the encoder). Taps (add_tap: the recorder) see
the top rendition's encoded packets; relays (add_relay: the origin's cascade relay) see
each rendition they take, and what they take is encoded as if a viewer took it.

Renditions (media/renditions.py): the room's video is composed once per frame (gifts
burned in) and then scaled (each from the next taller) and encoded once per rendition
some viewer takes, in order on the one encode thread (media/ladder_encoder.py); the top
rendition also while a tap listens or nobody watches. A frame is done at every
rendition before the next starts, and the newest-frame slot drops whole frames while
the encode is behind (each rendition's keyframe is planned on a frame that is encoded).
Each viewer gets one rendition: the one it pinned (`quality`), else what media/abr.py
decides from its receiver reports; it moves at the target's keyframe (media/fanout.py).
An edge room has the origin's ladder; its relay carries the renditions its viewers take
(renditions_taken()), and it switches them as the origin does, at the "f" mark of a
source frame whose target rendition is a keyframe (feed_frame).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import av
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from media.abr import AbrConfig, AbrState, LinkReport, decide
from media.admission import JoinAdmission
from media.compositor import MAX_WAITING_OVERLAYS, Compositor
from media.encoder import (
    DEFAULT_AUDIO_BITRATE,
    DEFAULT_VIDEO_BITRATE,
    VIDEO_TIME_BASE,
    AudioEncoder,
    Timeline,
    VideoCodecName,
)
from media.errors import MediaError, MediaErrorCode, conflict, invalid, not_found, unavailable
from media.fanout import PacketFanout
from media.fastpath import NATIVE, resolve
from media.ice import IceServer
from media.ingest import Publisher
from media.keyframes import DEFAULT_GOP_S, DEFAULT_MIN_INTERVAL_S, KeyframePolicy
from media.ladder_encoder import LadderEncoder
from media.negotiation import check_publisher_offer
from media.overlay import Overlay
from media.peers import GoneReason
from media.relay import PacketTap, RenditionTap
from media.renditions import AUTO, Rendition, check_ladder, rung_for, scaled_size
from media.stats import RoomStats
from media.uplink import UplinkReport
from media.viewer import ViewerPeer, ViewerState

logger = logging.getLogger(__name__)

MAX_VIEWER_ID_CHARS = 128
DEFAULT_MAX_VIEWERS = 1000
# Media counts as flowing while packets were pushed within this window; a viewer is only
# judged silent while media flows (an idle room gives viewers nothing to report on).
_FLOWING_WINDOW_S = 1.0

ViewerGoneCallback = Callable[[str, str], None]
PublisherGoneCallback = Callable[[str], None]
# (viewer id, its quality as viewer_quality() gives it + the picture's "height"), when a
# viewer's move is done
RenditionCallback = Callable[[str, dict[str, str | int | None]], None]


@dataclass(frozen=True)
class RoomTimings:
    """Timers, all in seconds. Tests shorten them instead of sleeping through them."""

    keyframe_min_interval_s: float = DEFAULT_MIN_INTERVAL_S
    gop_s: float = DEFAULT_GOP_S
    # aiortc sends receiver reports every 0.5-1.5 s, Chromium about every 1 s. A link that
    # drops for up to 5 s (issue 18: a viewer resumes without rejoining) is silent for
    # the drop plus up to 1.5 s before it and 1.5 s after: 8 s; 10 s leaves margin for a
    # loaded loop. (A killed viewer is served until then, against ~30 s of ICE consent.)
    viewer_silence_timeout_s: float = 10.0
    # The creator's packets come ~50 a second: its silence is the drop itself, so 8 s
    # keeps a 5 s drop; longer ones end the publisher and start the live's grace period.
    publisher_silence_timeout_s: float = 8.0
    # 400 simultaneous joins took ~3.3 s to connect on one process (measured).
    connect_timeout_s: float = 15.0
    # A joining viewer starts from the latest keyframe and the frames since when that run
    # is at most this long (it decodes at once, no forced keyframe; it plays at most this
    # much catch-up); 0: only when the latest frame is itself a keyframe.
    catch_up_s: float = 1.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            least_ok = 0.0 if name in ("keyframe_min_interval_s", "catch_up_s") else 1e-3
            if not isinstance(value, (int, float)) or not value >= least_ok:
                raise invalid(f"{name} must be a number >= {least_ok:g}, got {value!r}")

    @property
    def check_interval_s(self) -> float:
        """How often the supervisor checks liveness: a quarter of the shortest timeout."""
        shortest = min(self.viewer_silence_timeout_s, self.connect_timeout_s)
        return min(1.0, max(0.02, shortest / 4))


class MediaRoom:
    """One room's media. Create it inside a running event loop; close() it when done.

    `on_viewer_gone(viewer_id, reason)` and `on_publisher_gone(reason)` report peers the
    room removed on its own (reasons from GoneReason); they are not called for
    remove_viewer() or close(). They run on the room's supervisor task and must not block.
    After on_publisher_gone the room stays open and a new publish() may follow; the owner
    usually ends the room with close(), which ends every viewer.
    `on_viewer_rendition(viewer_id, quality)` tells when a viewer now gets another
    rendition (at its keyframe; the rule's move or a pin), with viewer_quality()'s dict
    and the picture's `height`; it runs on the encode loop and must not block.
    """

    def __init__(
        self,
        room_id: str,
        *,
        codec: VideoCodecName = "vp8",
        video_bitrate: int = DEFAULT_VIDEO_BITRATE,
        audio_bitrate: int = DEFAULT_AUDIO_BITRATE,
        ice_servers: Sequence[IceServer] = (),
        on_viewer_gone: ViewerGoneCallback | None = None,
        on_publisher_gone: PublisherGoneCallback | None = None,
        timings: RoomTimings | None = None,
        max_viewers: int = DEFAULT_MAX_VIEWERS,
        fanout: str = NATIVE,
        admission: JoinAdmission | None = None,
        upstream_keyframes: Callable[[int], None] | None = None,
        renditions: Sequence[Rendition] | None = None,
        abr: AbrConfig | None = None,
        viewer_remb: bool = False,
        on_viewer_rendition: RenditionCallback | None = None,
    ) -> None:
        if codec not in ("vp8", "h264"):
            raise invalid(f"codec must be 'vp8' or 'h264', got {codec!r}")
        if not isinstance(video_bitrate, int) or not 50_000 <= video_bitrate <= 20_000_000:
            raise invalid(f"video_bitrate must be 50000-20000000 bit/s, got {video_bitrate!r}")
        if not isinstance(audio_bitrate, int) or not 6_000 <= audio_bitrate <= 510_000:
            raise invalid(f"audio_bitrate must be 6000-510000 bit/s (Opus), got {audio_bitrate!r}")
        self.room_id = room_id
        self.codec: VideoCodecName = codec
        # Without a ladder: one rendition, the creator's picture (up to 720p) at
        # video_bitrate. An edge room's ladder is its origin's (its relay's "stream").
        ladder = check_ladder(renditions) if renditions else (Rendition(720, video_bitrate),)
        self.ladder: tuple[Rendition, ...] = ladder
        self._bitrates = [rung.bitrate for rung in self.ladder]
        self._abr_config = abr or AbrConfig()
        self._abr: dict[str, AbrState] = {}  # viewers on "auto" (pinned ones are not here)
        # Ask viewers for REMB on video (a bandwidth estimate for the rule; each viewer then
        # sends RTCP more often: see media/negotiation.py). Only with renditions to choose.
        self._viewer_remb = viewer_remb and len(self.ladder) > 1
        self.timings = timings or RoomTimings()
        self.max_viewers = max_viewers
        # An edge room: fed by a relay, keyframes asked upstream (see the module docstring).
        self._upstream_keyframes = upstream_keyframes
        self._taps: list[PacketTap] = []
        self._relays: list[RenditionTap] = []
        self._ice_servers = tuple(ice_servers)
        self._on_viewer_gone = on_viewer_gone
        self._on_publisher_gone = on_publisher_gone
        self._on_viewer_rendition = on_viewer_rendition
        # Joins' handshakes, bounded (media/admission.py); a node shares one across rooms.
        self.admission = admission or JoinAdmission()
        self._owns_admission = admission is None

        # One policy per rendition: each encoder has its own keyframes.
        self._keyframe_policies = [
            KeyframePolicy(self.timings.keyframe_min_interval_s, self.timings.gop_s)
            for _ in self.ladder]
        self._keyframes = self._keyframe_policies[0]
        # "native" falls back to "python" when the extension is not built (media/fastpath.py)
        try:
            self.fanout_path, native = resolve(fanout)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        self._fanout = PacketFanout(self._keyframe_wanted, codec, native,
                                    self._viewer_send_failed,
                                    catch_up_s=self.timings.catch_up_s,
                                    renditions=len(self.ladder))
        # Gifts: a few badges stack, more wait their turn (bounded; see media.compositor).
        self._compositor = Compositor(max_waiting=MAX_WAITING_OVERLAYS)
        # The renditions share one timeline: a frame has one RTP timestamp in each.
        self._timeline = Timeline(VIDEO_TIME_BASE, step=3000)
        # Composes once, scales each rendition from the next taller with a kept scaler
        # and encodes them in order: 9.6 ms a 720p frame for the default ladder, where
        # scaling each from the 720p (and libvpx's denoiser) took 14.0 (README, bench.
        # renditions --offline; one lane: a second one beside it did not raise the
        # frame rate on a loaded 2-core host, media/ladder_encoder.py).
        self._ladder_encoder = LadderEncoder(codec, self.ladder, name=room_id)
        self._video_encoders = self._ladder_encoder.encoders
        self._encoded_last: frozenset[int] = frozenset()  # renditions of the last frame
        # One Opus stream for every viewer, whatever its rendition: on a 300 kbit/s link
        # 64 kbit/s Opus is ~95-105 kbit/s on the wire (20 ms packets, ~70 B of headers
        # each; measured 104 kbit/s), a third of the link (GOLIVE_AUDIO_BITRATE).
        self._audio_encoder = AudioEncoder(audio_bitrate)
        # One thread: encodes stay in order and one room never takes more than one core.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"encode-{room_id}")

        self._publisher: Publisher | None = None
        self._viewers: dict[str, ViewerPeer] = {}
        self._closing: set[ViewerPeer] = set()  # removed, pc close still in progress
        # One event per peer at most (each reports once), so this queue is bounded by the
        # number of peers.
        self._events: asyncio.Queue[tuple[object | None, GoneReason]] = asyncio.Queue()
        self._pending_frame: VideoFrame | None = None
        self._frame_ready = asyncio.Event()
        self._stopping = False
        self._closed = False
        self._close_done = asyncio.Event()
        self._last_push: float | None = None
        self._flowing_since: float | None = None

        self._frames_in = 0
        self._frames_skipped = 0
        self._frames_encoded = 0
        self._keyframes_out = 0
        self._audio_packets = 0

        self._encode_task = asyncio.create_task(self._encode_loop(), name=f"encode-{room_id}")
        self._supervisor = asyncio.create_task(self._supervise(), name=f"supervise-{room_id}")

    # ---- public API ------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def has_publisher(self) -> bool:
        return self._publisher is not None

    @property
    def is_edge(self) -> bool:
        """True for an edge room (fed by a relay, no publisher)."""
        return self._upstream_keyframes is not None

    @property
    def viewer_ids(self) -> list[str]:
        return list(self._viewers)

    async def publish(self, offer_sdp: str) -> str:
        """Accept the creator's offer (one video, one audio, sendonly); return the answer SDP.

        Raises MediaError: invalid (not SDP, no VP8/H.264 video or Opus audio), conflict
        (a publisher is already active), unavailable (room closed).
        """
        self._check_open()
        if self.is_edge:
            raise conflict(f"room {self.room_id!r} is an edge room, fed by its origin")
        if self._publisher is not None:
            raise conflict(f"room {self.room_id!r} already has a publisher")
        publisher = Publisher(
            self._ice_servers,
            on_video=self._accept_video,
            on_audio=self._accept_audio,
            on_gone=lambda reason: self._events.put_nowait((publisher, reason)),
            connect_timeout_s=self.timings.connect_timeout_s,
            silence_timeout_s=self.timings.publisher_silence_timeout_s,
        )
        self._publisher = publisher  # claimed before the first await: a racing publish conflicts
        try:
            answer = await publisher.accept_offer(offer_sdp)
        except BaseException:
            if self._publisher is publisher:
                self._publisher = None
            raise
        if self._closed:
            await publisher.close()
            raise unavailable(f"room {self.room_id!r} closed")
        return answer

    async def restart_publisher_ice(self, offer_sdp: object) -> str:
        """The creator's ICE restart (its network path changed): its offer carries new ICE
        credentials and candidates; the answer carries the server's. The creator's pc,
        DTLS session and tracks stay; its frames come on the new path once a pair is
        nominated. Raises MediaError: not_found (no publisher), invalid (bad offer, or
        one without new ICE), conflict (not connected yet)."""
        self._check_open()
        check_publisher_offer(offer_sdp)
        if self._publisher is None:
            raise not_found(f"room {self.room_id!r} has no publisher")
        return await self._publisher.restart_ice(offer_sdp)

    async def unpublish(self) -> bool:
        """Close the current publisher, if any, so a new publish() may follow: a creator
        coming back on a new connection. Viewers stay and get the new publisher's frames
        through the same encoder; on_publisher_gone is not called. False if none."""
        publisher, self._publisher = self._publisher, None
        if publisher is None:
            return False
        await publisher.close()
        return True

    async def add_viewer(self, viewer_id: str, quality: str = AUTO,
                         offer: str | None = None) -> str:
        """Create the viewer's peer connection and return the server's offer SDP; with
        the viewer's own `offer` (a WHEP player), the server's answer to it instead.

        `quality`: "auto" (its link decides) or a rendition's height ("720", "360"...; the
        tallest rendition no taller than it). Waits for a place in the room's join
        admission (media/admission.py) first. Raises MediaError: invalid (bad id or
        quality), conflict (id taken), unavailable (closed/full; or joins busy, with
        `retry_after` seconds: the same call may succeed then).
        """
        pinned = rung_for(self.ladder, quality)
        self._check_join(viewer_id)
        place = await self.admission.admit()
        try:
            self._check_join(viewer_id)  # the room may have changed while this join waited
        except BaseException:
            place.release()
            raise
        feed = self._fanout.add_viewer(viewer_id)
        viewer = ViewerPeer(
            viewer_id,
            feed,
            self.codec,
            self._ice_servers,
            on_keyframe_request=lambda: self._fanout.request_keyframe(viewer_id),
            on_nack=lambda kind, seqs: self._fanout.retransmit(viewer_id, kind, seqs),
            on_failed=lambda reason: self._events.put_nowait((viewer, reason)),
            handshake=place,
            # one rendition: nothing to choose, no report parsed (~5 us each)
            on_report=((lambda report: self._link_report(viewer_id, report))
                       if len(self.ladder) > 1 else None),
            bandwidth_feedback=self._viewer_remb,
            on_route_changed=lambda: self._viewer_route_changed(viewer_id),
        )
        self._viewers[viewer_id] = viewer
        self._pin(viewer_id, pinned)
        try:
            sdp = (await viewer.answer_offer(offer) if offer is not None
                   else await viewer.create_offer())
        except MediaError:  # the player's offer was refused
            await self._drop_viewer(viewer)
            raise
        except Exception as exc:  # e.g. the pc was closed by close()/remove_viewer() meanwhile
            await self._drop_viewer(viewer)
            raise unavailable(f"no offer for viewer {viewer_id!r}: {exc}") from exc
        except BaseException:
            await self._drop_viewer(viewer)
            raise
        if self._viewers.get(viewer_id) is not viewer:
            raise unavailable(f"viewer {viewer_id!r} was removed while its offer was made")
        return sdp

    async def accept_viewer_answer(self, viewer_id: str, answer_sdp: str) -> None:
        """Apply a viewer's answer to the offer from add_viewer().

        Raises MediaError: not_found (unknown viewer), conflict (already answered; the
        viewer is kept), invalid (bad answer; the viewer is removed and its pc closed).
        """
        self._check_open()
        viewer = self._viewers.get(viewer_id)
        if viewer is None:
            raise not_found(f"no viewer {viewer_id!r} in room {self.room_id!r}")
        try:
            await viewer.accept_answer(answer_sdp)
        except MediaError as exc:
            if exc.code is not MediaErrorCode.CONFLICT:
                await self._drop_viewer(viewer)
            raise

    async def restart_viewer_ice(self, viewer_id: str) -> str:
        """An ICE restart for a connected viewer whose network changed: the server's
        offer with new ICE credentials and candidates; the viewer's answer goes to
        accept_viewer_answer(). Its DTLS session, tracks, rendition and place stay.
        Raises MediaError: not_found (unknown viewer), conflict (not connected yet)."""
        self._check_open()
        viewer = self._viewers.get(viewer_id)
        if viewer is None:
            raise not_found(f"no viewer {viewer_id!r} in room {self.room_id!r}")
        return await viewer.restart_ice()

    def _viewer_route_changed(self, viewer_id: str) -> None:
        """A viewer's ICE restart handed over: the native path's sends follow its new
        socket and address, and its decoder gets a keyframe (packets were lost)."""
        self._fanout.route_changed()
        self._fanout.request_keyframe(viewer_id)

    async def remove_viewer(self, viewer_id: str) -> bool:
        """Close the viewer's peer connection; False if there was no such viewer."""
        viewer = self._viewers.get(viewer_id)
        if viewer is None:
            return False
        await self._drop_viewer(viewer)
        return True

    def set_quality(self, viewer_id: str, quality: str) -> str:
        """Pin the viewer to a rendition ("720", "360"...) or give it back to its link
        ("auto"); it moves at that rendition's next keyframe. Returns the rendition's name
        it is moving to (or gets). Raises MediaError: invalid (quality), not_found."""
        rung = rung_for(self.ladder, quality)
        if viewer_id not in self._viewers:
            raise not_found(f"no viewer {viewer_id!r} in room {self.room_id!r}")
        self._pin(viewer_id, rung)
        now = self._fanout.rendition_of(viewer_id)
        assert now is not None
        return self.ladder[now[1] if now[1] is not None else now[0]].name

    def viewer_quality(self, viewer_id: str) -> dict[str, str | None]:
        """{quality: "auto" or the pinned height, rendition: what it gets, switching_to:
        the rendition it waits for a keyframe of, or None}. Raises MediaError not_found."""
        now = self._fanout.rendition_of(viewer_id)
        if now is None or viewer_id not in self._viewers:
            raise not_found(f"no viewer {viewer_id!r} in room {self.room_id!r}")
        pinned = viewer_id not in self._abr
        return {"quality": self.ladder[now[1] if now[1] is not None else now[0]].name
                if pinned else AUTO,
                "rendition": self.ladder[now[0]].name,
                "switching_to": None if now[1] is None else self.ladder[now[1]].name}

    def add_overlay(self, overlay: Overlay) -> None:
        """Burn `overlay` into the room's video from the next frame, for its duration."""
        self._check_open()
        if not isinstance(overlay, Overlay):
            raise invalid(f"expected an Overlay, got {type(overlay).__name__}")
        self._compositor.add(overlay)

    def request_keyframe(self, rendition: int = 0) -> None:
        """Ask a rendition's encoder (the top one's by default) for a keyframe (throttled
        like a viewer's PLI); an edge room asks its origin."""
        if 0 <= rendition < len(self._keyframe_policies):
            self._keyframe_policies[rendition].request()

    def add_tap(self, tap: PacketTap) -> None:
        """Call `tap(kind, packet, keyframe)` with every encoded packet the room fans out
        (on the event loop; it must not block)."""
        self._taps.append(tap)

    def remove_tap(self, tap: PacketTap) -> None:
        if tap in self._taps:
            self._taps.remove(tap)

    def add_relay(self, relay: RenditionTap) -> None:
        """The cascade's relay of this room (media/relay.py): the renditions it takes are
        encoded, and it sees each source frame's start and their packets (on the event
        loop; it must not block)."""
        self._relays.append(relay)

    def remove_relay(self, relay: RenditionTap) -> None:
        if relay in self._relays:
            self._relays.remove(relay)

    def renditions_taken(self) -> frozenset[int]:
        """The renditions this room's viewers get or are switching to (an edge room's
        relay subscribes to them)."""
        return frozenset(self._fanout.renditions_taken())

    def rendition_dropped(self, rendition: int) -> None:
        """An edge room's relay no longer carries `rendition`: its keyframe run ends (a
        viewer starting on it later waits for its next keyframe, not a stale run)."""
        if 0 <= rendition < len(self.ladder):
            self._fanout.rendition_paused(rendition)

    def feed_frame(self, keyed: frozenset[int], width: int, height: int) -> None:
        """An edge room's source frame begins (its relay's "f" mark): viewers waiting to
        switch to a rendition in `keyed` move now, as the origin's do (media/fanout.py)."""
        if self._closed:
            return
        self._frames_in += 1  # a source frame, counted once whatever its renditions
        self._frames_encoded += 1
        moved = self._fanout.begin_frame(r for r in keyed if r < len(self.ladder))
        if moved:
            self._tell_moved(moved, width, height)

    def feed_video(self, packet: av.Packet, keyframe: bool, rendition: int = 0) -> None:
        """An edge room's video frame of `rendition` from its relay (encoded at the origin)."""
        if self._closed or not 0 <= rendition < len(self.ladder):
            return
        assert self._upstream_keyframes is not None
        for wanted, policy in enumerate(self._keyframe_policies):
            if policy.pending and policy.should_force():
                self._upstream_keyframes(wanted)  # at most one per keyframe_min_interval_s
        self._push_video(packet, keyframe, rendition)

    def feed_audio(self, packet: av.Packet) -> None:
        """An edge room's audio packet from its relay."""
        if not self._closed:
            self._push_audio(packet)

    def stats(self) -> RoomStats:
        """A snapshot of the room's counters."""
        return RoomStats(
            room_id=self.room_id,
            codec=self.codec,
            viewers=len(self._viewers),
            publishing=self._publisher is not None,
            frames_in=self._frames_in,
            frames_skipped=self._frames_skipped,
            frames_encoded=self._frames_encoded,
            keyframes=self._keyframes_out,
            keyframe_requests=self._keyframes.requests,
            audio_packets=self._audio_packets,
            viewer_drops=self._fanout.drops(),
            rendition_frames={rung.name: encoder.frames for rung, encoder
                              in zip(self.ladder, self._video_encoders, strict=True)},
        )

    def uplink_report(self) -> UplinkReport | None:
        """The creator's uplink since the previous call (media/uplink.py); None without a
        publisher and at a new publisher's first call (its window starts then)."""
        return self._publisher.uplink_report() if self._publisher is not None else None

    async def close(self) -> None:
        """End the publisher, every viewer, the tasks and the encode thread. Idempotent."""
        if self._closed:
            await self._close_done.wait()
            return
        self._closed = True
        try:
            # Not cancelled: the supervisor may be half-way through closing a pc. It sees
            # _closed at its next event or tick (<= check_interval_s) and returns.
            self._events.put_nowait((None, GoneReason.CLOSED))
            await self._supervisor
            if self._publisher is not None:
                publisher, self._publisher = self._publisher, None
                await publisher.close()
            # Let the encode loop finish the frame in hand, so the thread is idle when joined.
            self._stopping = True
            self._frame_ready.set()
            for result in await asyncio.gather(self._encode_task, return_exceptions=True):
                if isinstance(result, BaseException):
                    logger.error("room %s: encode loop had died", self.room_id, exc_info=result)
            viewers = [*self._viewers.values(), *self._closing]
            self._viewers.clear()
            self._fanout.close()
            await asyncio.gather(*(v.close() for v in viewers), return_exceptions=True)
            self._executor.shutdown(wait=True)
            self._ladder_encoder.close()
            if self._owns_admission:
                self.admission.close()
        finally:
            self._close_done.set()

    # ---- internals --------------------------------------------------------------------

    def _pin(self, viewer_id: str, rung: int | None) -> None:
        """Pin the viewer to `rung`, or (None) let its link decide from the top down."""
        if rung is None:
            if viewer_id not in self._abr:
                now = self._fanout.rendition_of(viewer_id)
                self._abr[viewer_id] = AbrState(rung=0 if now is None else now[0])
            return
        self._abr.pop(viewer_id, None)
        self._fanout.switch(viewer_id, rung)

    def _link_report(self, viewer_id: str, report: LinkReport) -> None:
        """A viewer's receiver report: an "auto" viewer may move (media/abr.py)."""
        state = self._abr.get(viewer_id)
        if state is None or len(self.ladder) == 1:
            return
        new = decide(state, report, time.monotonic(), self._bitrates, self._abr_config)
        self._abr[viewer_id] = new
        if new.rung != state.rung:
            logger.info("room %s: viewer %s moves to %s (loss %.3f, rtt %s, nacked %s)",
                        self.room_id, viewer_id, self.ladder[new.rung].name, report.loss,
                        report.rtt_s, report.nacked)
            self._fanout.switch(viewer_id, new.rung)

    def _keyframe_wanted(self, rendition: int) -> None:
        self._keyframe_policies[rendition].request()

    def _renditions_wanted(self) -> list[int]:
        """The renditions to encode now: those viewers or relays (edges) take, and the top
        one while a tap listens or nobody watches (the next viewer starts from its run)."""
        wanted = set(self._fanout.renditions_taken())
        for relay in self._relays:
            wanted.update(r for r in relay.renditions() if r < len(self.ladder))
        if self._taps or not wanted:
            wanted.add(0)
        return sorted(wanted)

    def _viewer_send_failed(self, viewer_id: str) -> None:
        """A viewer's socket erred (the fan-out sends it nothing more): remove it as failed."""
        viewer = self._viewers.get(viewer_id)
        if viewer is not None and viewer.state is not ViewerState.CLOSED:
            viewer.state = ViewerState.CLOSED  # reported once, as its pc's own failure is
            self._events.put_nowait((viewer, GoneReason.FAILED))

    def _check_join(self, viewer_id: object) -> None:
        self._check_open()
        if not isinstance(viewer_id, str) or not 0 < len(viewer_id) <= MAX_VIEWER_ID_CHARS:
            raise invalid(f"viewer id must be 1-{MAX_VIEWER_ID_CHARS} characters: {viewer_id!r}")
        if viewer_id in self._viewers:
            raise conflict(f"viewer {viewer_id!r} is already in room {self.room_id!r}")
        if len(self._viewers) >= self.max_viewers:
            raise unavailable(f"room {self.room_id!r} is full ({self.max_viewers} viewers)")

    def _check_open(self) -> None:
        if self._closed:
            raise unavailable(f"room {self.room_id!r} is closed")

    async def _drop_viewer(self, viewer: ViewerPeer) -> None:
        if self._viewers.get(viewer.viewer_id) is viewer:
            del self._viewers[viewer.viewer_id]
            self._abr.pop(viewer.viewer_id, None)
            self._fanout.remove_viewer(viewer.viewer_id)
        self._closing.add(viewer)
        try:
            await viewer.close()
        finally:
            if viewer.pc.connectionState == "closed":
                self._closing.discard(viewer)

    def _accept_video(self, frame: VideoFrame) -> None:
        # Newest-frame slot (bound 1): if the encoder is still busy with the previous frame,
        # the older waiting one is replaced, so a slow encode lowers the frame rate instead
        # of queueing decoded frames (~1.4 MB each at 720p).
        self._frames_in += 1
        if self._pending_frame is not None:
            self._frames_skipped += 1
        self._pending_frame = frame
        self._frame_ready.set()

    def _accept_audio(self, frame: AudioFrame) -> None:
        try:
            packets = self._audio_encoder.encode(frame)
        except (av.FFmpegError, ValueError) as exc:
            logger.warning("room %s: audio frame not encoded: %s", self.room_id, exc)
            return
        for packet in packets:
            self._push_audio(packet)

    def _push_audio(self, packet: av.Packet) -> None:
        self._audio_packets += 1
        self._fanout.push_audio(packet)
        for tap in self._taps:
            tap("audio", packet, False)
        for relay in self._relays:
            relay.audio(packet)

    def _push_video(self, packet: av.Packet, keyframe: bool, rendition: int) -> None:
        """One encoded video frame of `rendition` to its viewers and (the top one) the
        taps (from the encoder or the relay)."""
        now = time.monotonic()
        if self._last_push is None or now - self._last_push > _FLOWING_WINDOW_S:
            self._flowing_since = now
        self._last_push = now
        if keyframe:
            self._keyframes_out += 1
            self._keyframe_policies[rendition].produced()
        self._fanout.push_video(packet, keyframe, rendition)
        if rendition == 0:
            for tap in self._taps:
                tap("video", packet, keyframe)
        for relay in self._relays:
            relay.video(packet, keyframe, rendition)

    async def _encode_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._frame_ready.wait()
            self._frame_ready.clear()
            if self._stopping:
                return
            frame, self._pending_frame = self._pending_frame, None
            if frame is None:
                continue
            frame.pts = self._timeline.map(frame.pts, frame.time_base)
            frame.time_base = VIDEO_TIME_BASE
            wanted = self._renditions_wanted()
            # A rendition that was idle restarts with a keyframe: its viewers' decoders
            # (and its catch-up run) need one.
            plan = [(r, self._keyframe_policies[r].should_force() or r not in self._encoded_last)
                    for r in wanted]
            for paused in self._encoded_last.difference(wanted):
                self._fanout.rendition_paused(paused)
            self._encoded_last = frozenset(wanted)
            try:
                packets = await loop.run_in_executor(
                    self._executor, self._ladder_encoder.encode, frame,
                    self._compositor.active(), plan
                )
            except Exception:
                # One bad frame (odd size, corrupt data) must not end the room's video.
                logger.exception("room %s: video frame not encoded", self.room_id)
                continue
            if packets:
                self._frames_encoded += 1
            # Viewers waiting to switch move before any rendition of this frame is sent.
            keyed = frozenset(r for r, packet in packets if packet.is_keyframe)
            moved = self._fanout.begin_frame(keyed)
            if moved:
                self._tell_moved(moved, frame.width, frame.height)
            for relay in self._relays:
                relay.begin_frame(keyed, frame.width, frame.height)
            for rendition, packet in packets:
                self._push_video(packet, packet.is_keyframe, rendition)

    async def _supervise(self) -> None:
        interval = self.timings.check_interval_s
        next_check = time.monotonic() + interval
        while not self._closed:
            event = None
            try:
                # asyncio.timeout, not wait_for: see ingest.Publisher._read_video.
                async with asyncio.timeout(max(0.0, next_check - time.monotonic())):
                    event = await self._events.get()
            except TimeoutError:
                pass
            if self._closed:
                return
            if event is not None:
                try:
                    await self._remove_gone(*event)
                except Exception:
                    # The supervisor must outlive any one peer's failure to close.
                    logger.exception("room %s: removing %r failed", self.room_id, event[0])
            if time.monotonic() >= next_check:
                self._check_liveness()
                next_check = time.monotonic() + interval

    async def _remove_gone(self, peer: object, reason: GoneReason) -> None:
        if isinstance(peer, ViewerPeer):
            if self._viewers.get(peer.viewer_id) is peer:
                await self._drop_viewer(peer)
                self._notify(self._on_viewer_gone, peer.viewer_id, str(reason))
        elif isinstance(peer, Publisher) and self._publisher is peer:
            self._publisher = None
            await peer.close()
            self._notify(self._on_publisher_gone, str(reason))

    def _check_liveness(self) -> None:
        now = time.monotonic()
        flowing = self._last_push is not None and now - self._last_push <= _FLOWING_WINDOW_S
        for viewer in list(self._viewers.values()):
            if viewer.state is ViewerState.CLOSED:
                continue
            silent = viewer.silent_for(now)
            if silent is None:
                if now - viewer.created_at > self.timings.connect_timeout_s:
                    viewer.state = ViewerState.CLOSED  # reported once
                    self._events.put_nowait((viewer, GoneReason.CONNECT_TIMEOUT))
            elif flowing and self._flowing_since is not None:
                silent = min(silent, now - self._flowing_since)
                if silent > self.timings.viewer_silence_timeout_s:
                    viewer.state = ViewerState.CLOSED
                    self._events.put_nowait((viewer, GoneReason.SILENT))

    def _tell_moved(self, viewer_ids: list[str], width: int, height: int) -> None:
        """on_viewer_rendition for each viewer that moved, with its picture's height (the
        top rung of a smaller creator is the creator's own size, not the rung's name)."""
        if self._on_viewer_rendition is None:
            return
        for viewer_id in viewer_ids:
            now = self._fanout.rendition_of(viewer_id)
            if now is None or viewer_id not in self._viewers:
                continue
            quality: dict[str, str | int | None] = {**self.viewer_quality(viewer_id)}
            quality["height"] = scaled_size(width, height, self.ladder[now[0]].height)[1]
            self._notify(self._on_viewer_rendition, viewer_id, quality)

    def _notify(self, callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            logger.exception("room %s: callback %r failed", self.room_id, callback)
