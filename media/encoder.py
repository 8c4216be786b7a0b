"""The room's one video encoder and one audio encoder.

Packets come out ready for aiortc's `Encoder.pack()`: pts and time_base set, H.264 in
Annex-B with SPS/PPS in front of every keyframe (libx264 repeats headers when the codec
has no global header), so each viewer's sender only packetizes.

Timestamps are the room's own: each encoder keeps a monotonic timeline, so a creator who
reconnects (whose new tracks start again at pts 0) does not send viewers' RTP timestamps
backwards.

Measured encode cost on these machines (fps per core): libx264 veryfast 566 at 360p / 156
at 720p; libvpx realtime cpu-used -6 about 600 at 360p (1.6 ms/frame) / 105 at 720p with
the denoiser, which is now off (5.8 ms a 720p frame: see the options below).
"""

from __future__ import annotations

import fractions
from typing import Literal, cast

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType, VideoFrame

VideoCodecName = Literal["vp8", "h264"]
VIDEO_CODECS: tuple[VideoCodecName, ...] = ("vp8", "h264")

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)  # RTP video clock
AUDIO_RATE = 48000
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE)
OPUS_FRAME_SAMPLES = 960  # 20 ms, what browsers send and expect

DEFAULT_VIDEO_BITRATE = 800_000
# 32 kbit/s: what a browser creator sends (libwebrtc's Opus default for mono, kOpusBitrateFb),
# so re-encoding at more adds bits and no sound; and on a 300 kbit/s link 64 kbit/s Opus was
# ~100 kbit/s on the wire, which with the 180p rung filled the link (bench abr: 7.2 fps
# settled at 64, 26.4 fps and no freeze over 500 ms at 32; README "abr"). Music streams from
# an encoder that sends more may raise it (GOLIVE_AUDIO_BITRATE).
DEFAULT_AUDIO_BITRATE = 32_000
# Keyframes are forced by KeyframePolicy on a clock; the codec's own GOP is only a backstop.
_CODEC_GOP_FRAMES = 3000
# A frame gap larger than this (or pts going backwards) means a new source: continue the
# timeline one nominal frame after the last output instead of jumping.
_MAX_GAP_S = 5


class Timeline:
    """Maps input pts (any time base) onto one strictly increasing output clock."""

    def __init__(self, time_base: fractions.Fraction, step: int) -> None:
        self.time_base = time_base
        self._step = step  # nominal frame duration in output ticks
        self._offset: int | None = None
        self._last_in: int | None = None
        self._last_out: int | None = None

    def map(self, pts: int | None, time_base: fractions.Fraction | None) -> int:
        if pts is None or time_base is None:
            ticks = None
        else:
            ticks = int(pts * fractions.Fraction(time_base) / self.time_base)
        if self._last_out is None:
            out = 0
            self._offset = 0 if ticks is None else -ticks
        elif ticks is None:
            out = self._last_out + self._step
        else:
            assert self._last_in is not None and self._offset is not None
            jump = ticks - self._last_in
            if jump <= 0 or jump > _MAX_GAP_S / self.time_base:
                self._offset = self._last_out + self._step - ticks
            out = max(ticks + self._offset, self._last_out + 1)
        if ticks is not None:
            self._last_in = ticks
        self._last_out = out
        return out


class VideoEncoder:
    """Encodes composed frames into VP8 or H.264 packets. Not thread-safe: one caller at a time.

    The codec is (re)opened on the first frame and whenever the frame size changes (a
    browser adapts its capture resolution); a reopened codec starts with a keyframe.
    """

    def __init__(
        self,
        codec: VideoCodecName = "vp8",
        bitrate: int = DEFAULT_VIDEO_BITRATE,
        h264_preset: str = "veryfast",
        own_timeline: bool = True,
    ) -> None:
        if codec not in VIDEO_CODECS:
            raise ValueError(f"video codec must be one of {VIDEO_CODECS}: {codec!r}")
        if bitrate <= 0:
            raise ValueError("bitrate must be positive")
        self.codec_name = codec
        self.bitrate = bitrate
        self.h264_preset = h264_preset
        self._ctx: VideoCodecContext | None = None
        # 3000 ticks = one 30 fps frame. Without its own timeline the encoder takes the
        # frames' pts as they come (90 kHz, increasing): a room's renditions share one
        # timeline so a frame has the same RTP timestamp in each (media/renditions.py).
        self._timeline = Timeline(VIDEO_TIME_BASE, step=3000) if own_timeline else None
        self.frames = 0  # frames encoded (the rendition bench and tests count them)
        # libvpx options over the ones _open() sets (bench.renditions --stages tries some)
        self.extra_options: dict[str, str] = {}

    def _open(self, width: int, height: int) -> VideoCodecContext:
        name = "libvpx" if self.codec_name == "vp8" else "libx264"
        ctx = cast(VideoCodecContext, av.CodecContext.create(name, "w"))
        ctx.width = width
        ctx.height = height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = VIDEO_TIME_BASE
        ctx.framerate = fractions.Fraction(30, 1)
        ctx.bit_rate = self.bitrate
        ctx.gop_size = _CODEC_GOP_FRAMES
        # x264: one thread up to 640x480, two above (these hosts have 2 cores and also
        # decode the creator's stream and send to every viewer). libvpx: always one. Its
        # two threads cost 5-10x the CPU of one at 720p on these hosts under load (79.8
        # vs 7.2 ms a frame with libvpx's denoiser, 37.5 vs 5.8 without it as below:
        # they spin-wait for each other), where x264's two cost what one does (8.9 vs
        # 8.4 ms); measured with the test pattern, bench.renditions --offline.
        ctx.thread_count = (1 if self.codec_name == "vp8" or width * height <= 640 * 480
                            else 2)
        if self.codec_name == "vp8":
            ctx.qmin = 2
            # 63, not 56 (libvpx's and aiortc's cap): a rung whose content needs more than
            # its bitrate at q56 holds the bitrate with a coarser picture instead of going
            # over it. The test pattern at 320x180 and 150 kbit/s sent 193 kbit/s at q56,
            # 148 at q63; over a 300 kbit/s link with the audio that overshoot filled the
            # queue and the resends of what it dropped never got through.
            ctx.qmax = 63
            ctx.options = {
                # aiortc's realtime CBR settings (rc_buf_sz = 1000 ms of the bitrate).
                "bufsize": str(self.bitrate),
                "minrate": str(self.bitrate),
                "maxrate": str(self.bitrate),
                "cpu-used": "-6",
                "deadline": "realtime",
                "lag-in-frames": "0",  # one packet out per frame in: no added latency
                "auto-alt-ref": "0",
                # No denoiser (aiortc's is 4): the room encodes a decoded stream the
                # creator's own encoder already cleaned, and libvpx's denoiser was a
                # quarter of the encode: 720p 7.85 -> 5.79 ms a frame, 360p 2.06 ->
                # 1.51 (bench.renditions --stages, 3 interleaved rounds, load 12-15),
                # at the same bitrate and closer to its input (test pattern, PSNR of
                # the decoded output: 720p 40.8 -> 41.3 dB, 360p 39.5 -> 39.8).
                "noise-sensitivity": "0",
                "overshoot-pct": "15",
                "undershoot-pct": "100",
                "static-thresh": "1",
                "partitions": "0",
                **self.extra_options,
            }
        else:
            ctx.profile = "Baseline"  # what every browser decodes (42e01f / 42001f)
            ctx.options = {
                "preset": self.h264_preset,
                "tune": "zerolatency",  # no B-frames, no lookahead: one packet per frame
                "forced-idr": "1",  # a forced keyframe must be an IDR to start a decoder
                "maxrate": str(self.bitrate),
                "bufsize": str(self.bitrate),
            }
        ctx.open()
        return ctx

    def encode(self, frame: VideoFrame, keyframe: bool = False) -> list[av.Packet]:
        """Encode one frame; `keyframe` forces an IDR/key frame. Returns 0..n packets."""
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        if self._ctx is None or (self._ctx.width, self._ctx.height) != (frame.width, frame.height):
            self._ctx = self._open(frame.width, frame.height)
        if self._timeline is not None:
            frame.pts = self._timeline.map(frame.pts, frame.time_base)
            frame.time_base = VIDEO_TIME_BASE
        self.frames += 1
        frame.pict_type = PictureType.I if keyframe else PictureType.NONE
        packets = self._ctx.encode(frame)
        for packet in packets:
            packet.time_base = VIDEO_TIME_BASE
            if packet.pts is None:
                packet.pts = frame.pts
        return packets


class AudioEncoder:
    """Encodes decoded audio into 20 ms Opus packets with a sample-count timeline."""

    def __init__(self, bitrate: int = DEFAULT_AUDIO_BITRATE) -> None:
        self._ctx = cast(AudioCodecContext, av.CodecContext.create("libopus", "w"))
        self._ctx.bit_rate = bitrate
        self._ctx.sample_rate = AUDIO_RATE
        self._ctx.layout = "stereo"
        self._ctx.format = "s16"
        self._ctx.time_base = AUDIO_TIME_BASE
        self._ctx.options = {"application": "voip"}
        self._resampler = av.AudioResampler(
            format="s16", layout="stereo", rate=AUDIO_RATE, frame_size=OPUS_FRAME_SAMPLES
        )
        self._samples_in = 0
        self._packets_out = 0

    def encode(self, frame: AudioFrame) -> list[av.Packet]:
        """Encode one decoded frame; returns the Opus packets completed by it (often 1)."""
        frame.pts = None  # the resampler re-times from sample counts
        packets: list[av.Packet] = []
        for chunk in self._resampler.resample(frame):
            chunk.pts = self._samples_in
            chunk.time_base = AUDIO_TIME_BASE
            self._samples_in += chunk.samples
            packets.extend(self._ctx.encode(chunk))
        for packet in packets:
            # libopus starts at a negative pts (encoder delay): number packets ourselves.
            packet.pts = self._packets_out * OPUS_FRAME_SAMPLES
            packet.time_base = AUDIO_TIME_BASE
            self._packets_out += 1
        return packets
