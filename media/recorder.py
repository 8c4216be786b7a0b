"""Recording a room: its encoded packets, as the viewers get them, into one file.

A Recorder is a room tap (MediaRoom.add_tap): it sees the top rendition's encoded video
(gifts already burnt in) and the room's Opus audio, and writes them as they are - no
second encode. The tap runs on the event loop and only copies the packet's bytes into a
bounded queue (a full queue drops the packet and counts it, never blocking the encode);
one writer thread muxes them with PyAV.

Container by codec (checked with the ffmpeg PyAV 18 bundles, libavformat 62):
- H.264: fragmented MP4 (movflags frag_keyframe+empty_moov+default_base_moof), Opus in
  it too. Each keyframe starts a fragment, so a crash leaves every fragment written
  before it playable.
- VP8: WebM. This ffmpeg's mp4 muxer refuses VP8 ("'mp4' format does not support
  'libvpx' codec": its MP4 tag table has VP9, not VP8), and Chromium plays VP8 in WebM
  natively. The Matroska muxer writes clusters as it goes (a crash leaves them
  playable; only the cues and the duration, written at the end, are missing).

Time: video packets carry the room's 90 kHz timeline, audio packets a 48 kHz sample
count; each is rebased to the first keyframe recorded (audio from the last audio packet
seen before it), so the file starts at 0 with its first keyframe.

Cost (measured here, tests/media/test_recorder.py prints it): the tap takes 2-3 us a
packet on the loop (a copy of its bytes) and the writer thread 0.2-0.3 ms of CPU a video
frame, audio and opening the file included, against 7-10 ms to encode a 720p frame. The
real cost is elsewhere: while a tap listens the room encodes its top rendition even if
every viewer takes a lower one (media/room.py _renditions_wanted).
"""

from __future__ import annotations

import fractions
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import av

from media.encoder import AUDIO_TIME_BASE, VIDEO_TIME_BASE, VideoCodecName

logger = logging.getLogger(__name__)

# 4 s of 30 fps video and 50 audio packets a second, with room: a writer thread stalled
# longer than that (a disk that stopped answering) loses packets rather than memory.
DEFAULT_QUEUE_PACKETS = 512
THUMB_FILE = "thumb.jpg"
THUMB_WIDTH = 320
THUMB_AFTER_S = 1.0  # the first keyframe past this is the thumbnail: past the first frame
FILE_NAMES = {"h264": "video.mp4", "vp8": "video.webm"}
MEDIA_TYPES = {"video.mp4": "video/mp4", "video.webm": "video/webm"}
_MP4_FLAGS = "frag_keyframe+empty_moov+default_base_moof"
_STOP = object()


def file_name(codec: str) -> str:
    """The recording's file name for a room's video codec (see the module docstring)."""
    try:
        return FILE_NAMES[codec]
    except KeyError:
        raise ValueError(f"no container for codec {codec!r}") from None


def over_cap(bytes_written: int, next_packet: int, cap: int) -> bool:
    """True when writing a `next_packet`-byte packet would take a recording past `cap`
    bytes (0: no cap). The container's own overhead is a few percent more."""
    return cap > 0 and bytes_written + next_packet > cap


@dataclass(frozen=True)
class RecordingResult:
    """What a finished recording holds."""

    path: Path
    bytes: int
    duration_s: float
    video_frames: int
    audio_packets: int
    dropped: int            # packets the full queue dropped
    capped: bool            # stopped at the byte cap
    started_at: float       # wall clock (time.time()) of its first keyframe; 0: none came
    # (wall clock, seconds into the file) at each keyframe: how the live's moments map
    # onto the video (engine/replays.py media_time); the file's clock stops while the
    # creator is away (a reconnect), the wall's does not.
    clock: tuple[tuple[float, float], ...] = ()
    failed: str = ""        # why the writer stopped early, if it did
    writer_cpu_s: float = 0.0  # the writer thread's CPU time, muxing included
    thumbnail: bool = False    # THUMB_FILE was written beside the video


class Recorder:
    """Tap a room's encoded packets into `directory`/video.{mp4,webm}.

    `tap` is what MediaRoom.add_tap takes. `finish()` (from any thread, once) stops the
    writer, closes the file and returns what it holds. Packets before the first video
    keyframe are skipped; the owner asks the room for one after adding the tap.
    """

    def __init__(self, directory: Path, codec: VideoCodecName, *, max_bytes: int = 0,
                 queue_packets: int = DEFAULT_QUEUE_PACKETS) -> None:
        self.path = Path(directory) / file_name(codec)
        self.codec = codec
        self.max_bytes = max_bytes
        self._queue: queue.Queue[object] = queue.Queue(queue_packets)
        self.dropped = 0
        self._started = False      # the first keyframe was queued (loop side)
        self._video_base: int | None = None
        self._audio_base: int | None = None
        self._last_audio_pts: int | None = None
        self._started_at = 0.0
        self._clock: list[tuple[float, float]] = []
        self._stopped = False
        # written by the thread, read after join
        self._bytes = 0
        self._video_frames = 0
        self._audio_packets = 0
        self._last_video_pts = 0
        self._capped = False
        self._failed = ""
        self._writer_cpu_s = 0.0
        self._thumbnail = False
        self._thumb_tried = False
        self.capped_event = threading.Event()
        self._thread = threading.Thread(target=self._write, name=f"record-{self.path.parent.name}",
                                        daemon=True)
        self._thread.start()

    # ---- loop side ------------------------------------------------------------------

    def tap(self, kind: str, packet: av.Packet, keyframe: bool) -> None:
        """A room's packet (on the event loop): copied and queued, or dropped if full."""
        if self._stopped or packet.pts is None:
            return
        if kind == "audio":
            self._last_audio_pts = packet.pts
            if not self._started:
                return
            assert self._audio_base is not None
            item = ("audio", bytes(packet), packet.pts - self._audio_base, False)
        else:
            if not self._started:
                if not keyframe:
                    return
                self._started = True
                self._started_at = time.time()
                self._video_base = packet.pts
                # audio starts with the packet in flight as the keyframe came
                self._audio_base = self._last_audio_pts if self._last_audio_pts is not None else 0
            assert self._video_base is not None
            if keyframe:  # every 2 s (media/keyframes.py): a few hundred a live-hour
                self._clock.append((time.time(),
                                    float((packet.pts - self._video_base) * VIDEO_TIME_BASE)))
            item = ("video", bytes(packet), packet.pts - self._video_base, keyframe)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    @property
    def capped(self) -> bool:
        """The recording stopped at its byte cap (the thread set it)."""
        return self.capped_event.is_set()

    def finish(self) -> RecordingResult:
        """Stop taking packets, let the writer drain and close the file. Blocks until the
        thread is done: call it off the event loop (asyncio.to_thread). Idempotent."""
        if not self._stopped:
            self._stopped = True
            while True:  # the sentinel must get in; the writer is draining
                try:
                    self._queue.put(_STOP, timeout=0.5)
                    break
                except queue.Full:
                    if not self._thread.is_alive():
                        break
        self._thread.join()
        return RecordingResult(
            path=self.path, bytes=self._bytes,
            duration_s=round(float(self._last_video_pts * VIDEO_TIME_BASE), 3),
            video_frames=self._video_frames, audio_packets=self._audio_packets,
            dropped=self.dropped, capped=self._capped, started_at=self._started_at,
            failed=self._failed, writer_cpu_s=round(self._writer_cpu_s, 4),
            clock=tuple(self._clock), thumbnail=self._thumbnail)

    # ---- writer thread --------------------------------------------------------------

    def _decode_keyframe(self, keyframe: bytes) -> av.VideoFrame | None:
        """One keyframe decoded on its own (~1-2 ms at 720p): VP8 keyframes and H.264
        IDRs with their in-band SPS/PPS need nothing before them."""
        decoder = av.CodecContext.create(self.codec, "r")
        try:
            frames = decoder.decode(av.Packet(keyframe))
            frames += decoder.decode(None)  # flush: a decoder with delay gives it now
        except av.FFmpegError:
            return None
        return frames[0] if frames else None  # type: ignore[return-value]

    def _frame_size(self, keyframe: bytes) -> tuple[int, int]:
        """The first keyframe's size: the container's header states it (the WebM muxer
        would write PyAV's default 640x480 otherwise)."""
        frame = self._decode_keyframe(keyframe)
        return (frame.width, frame.height) if frame is not None else (0, 0)

    def _thumbnail_from(self, keyframe: bytes) -> None:
        """One try at the thumbnail (a decode and an encode, a few ms)."""
        self._thumb_tried = True
        try:
            self._write_thumbnail(keyframe)
        except (av.FFmpegError, OSError, ValueError):
            logger.warning("recording %s: no thumbnail", self.path, exc_info=True)

    def _write_thumbnail(self, keyframe: bytes) -> None:
        """THUMB_FILE: the keyframe, THUMB_WIDTH wide, as a JPEG (temporary file, rename)."""
        frame = self._decode_keyframe(keyframe)
        if frame is None:
            return
        height = max(2, round(frame.height * THUMB_WIDTH / frame.width / 2) * 2)
        small = frame.reformat(width=THUMB_WIDTH, height=height, format="yuvj420p")
        small.pts = 0
        encoder = av.CodecContext.create("mjpeg", "w")
        encoder.width, encoder.height, encoder.pix_fmt = THUMB_WIDTH, height, "yuvj420p"
        encoder.time_base = fractions.Fraction(1, 30)
        data = b"".join(bytes(p) for p in encoder.encode(small) + encoder.encode(None))
        temporary = self.path.parent / f".{THUMB_FILE}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, self.path.parent / THUMB_FILE)
        self._thumbnail = True

    def _open(self, first_keyframe: bytes
              ) -> tuple[av.container.OutputContainer, av.stream.Stream, av.stream.Stream]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        width, height = self._frame_size(first_keyframe)
        if self.codec == "h264":
            container = av.open(str(self.path), "w", format="mp4",
                                options={"movflags": _MP4_FLAGS})
        else:
            container = av.open(str(self.path), "w", format="webm")
        # The streams describe the packets; their encoders are never opened. H.264's
        # SPS/PPS travel in band before every keyframe: the mp4 muxer builds its avcC
        # from the first packet.
        video = container.add_stream("libx264" if self.codec == "h264" else "libvpx", rate=30)
        video.time_base = VIDEO_TIME_BASE
        if width and height:
            video.width, video.height = width, height
        audio = container.add_stream("libopus", rate=48000)
        audio.time_base = AUDIO_TIME_BASE
        return container, video, audio

    def _write(self) -> None:
        container = None
        streams: dict[str, av.stream.Stream] = {}
        first_keyframe: bytes | None = None
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    if not self._thumb_tried and first_keyframe is not None:
                        self._thumbnail_from(first_keyframe)  # shorter than THUMB_AFTER_S
                    return
                if self._capped or self._failed:
                    continue  # drain until told to stop
                kind, data, pts, keyframe = item  # type: ignore[misc]
                if over_cap(self._bytes, len(data), self.max_bytes):
                    self._capped = True
                    self.capped_event.set()
                    logger.info("recording %s stopped at its cap of %d bytes", self.path,
                                self.max_bytes)
                    continue
                if container is None:
                    # the first item is the first keyframe (Recorder.tap starts there)
                    container, streams["video"], streams["audio"] = self._open(data)
                    first_keyframe = data
                packet = av.Packet(data)
                packet.stream = streams[kind]
                packet.time_base = VIDEO_TIME_BASE if kind == "video" else AUDIO_TIME_BASE
                packet.pts = packet.dts = pts
                if keyframe:
                    packet.is_keyframe = True
                container.mux(packet)
                if (keyframe and not self._thumb_tried
                        and pts * VIDEO_TIME_BASE >= THUMB_AFTER_S):
                    self._thumbnail_from(data)
                self._bytes += len(data)
                if kind == "video":
                    self._video_frames += 1
                    self._last_video_pts = max(self._last_video_pts, pts)
                else:
                    self._audio_packets += 1
        except Exception as exc:  # a full disk, a muxer refusal: the rest is dropped
            logger.exception("recording %s failed", self.path)
            self._failed = f"{type(exc).__name__}: {exc}"
            while self._queue.get() is not _STOP:
                pass
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception:
                    logger.exception("recording %s: closing failed", self.path)
            self._writer_cpu_s = time.thread_time()


def remove_tree(directory: Path) -> int:
    """Delete a replay's directory (its files, then itself); the bytes freed."""
    freed = 0
    if not directory.is_dir():
        return 0
    for entry in directory.iterdir():
        try:
            freed += entry.stat().st_size
            entry.unlink()
        except FileNotFoundError:
            pass
    try:
        os.rmdir(directory)
    except OSError:
        pass
    return freed


__all__ = ["MEDIA_TYPES", "THUMB_FILE", "Recorder", "RecordingResult", "file_name", "over_cap",
           "remove_tree"]
