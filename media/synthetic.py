"""A headless creator: test-pattern video and a tone, or a media file, sent from an aiortc pc.

Used by the tests and by `golive broadcast`. The video is a moving colour pattern with the
frame number drawn in the corner, so a viewer can tell frames apart and see motion.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Sequence

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from media.font import text_mask
from media.ice import IceServer, rtc_configuration
from media.peers import PeerCloser

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AUDIO_PTIME_S = 0.020  # 20 ms frames, what browsers send


class _Pacer:
    """Sleeps so that frame n is returned at start + n * period (wall clock)."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.count = 0
        self._start: float | None = None

    async def next(self) -> int:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self.count += 1
            delay = self._start + self.count * self.period_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return self.count


class SyntheticVideoTrack(MediaStreamTrack):
    """Moving diagonal colour bands with a frame counter, at `fps` frames per second."""

    kind = "video"

    def __init__(self, width: int = 640, height: int = 360, fps: float = 30.0) -> None:
        super().__init__()
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError("width and height must be even and at least 16")
        if not 0 < fps <= 120:
            raise ValueError("fps must be in (0, 120]")
        self.width, self.height, self.fps = width, height, fps
        self._pacer = _Pacer(1 / fps)
        ys, xs = np.mgrid[0:height, 0:width]
        self._diag = (xs + ys).astype(np.int32)
        cys, cxs = np.mgrid[0 : height // 2, 0 : width // 2]
        self._cdiag = (cxs + cys).astype(np.int32)

    def make_frame(self, n: int) -> VideoFrame:
        """The pattern's frame number `n` (a pure function of n and the size)."""
        y = ((self._diag + 4 * n) % 256 // 2 + 64).astype(np.uint8)
        u = ((self._cdiag + 2 * n) % 128 + 64).astype(np.uint8)
        v = ((self._cdiag * 3 - 3 * n) % 128 + 64).astype(np.uint8)
        scale = max(1, self.height // 180)
        mask = text_mask(str(n), scale)
        h, w = mask.shape
        if h + 4 <= self.height and w + 4 <= self.width:
            y[2 : 2 + h, 2 : 2 + w][mask] = 235
        frame = VideoFrame.from_ndarray(
            np.concatenate([y, u.reshape(-1, self.width), v.reshape(-1, self.width)]),
            format="yuv420p",
        )
        frame.pts = int(n * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        return self.make_frame(await self._pacer.next())


def pattern_frames(width: int, height: int, count: int, fps: float = 30.0) -> list[VideoFrame]:
    """The synthetic pattern's first `count` frames at once (for encoding offline): frame n
    has pts n * 90000 / fps on the 1/90000 clock (n * 3000 at 30 fps)."""
    track = SyntheticVideoTrack(width, height, fps)
    return [track.make_frame(n) for n in range(count)]


class ToneAudioTrack(MediaStreamTrack):
    """A sine tone, mono s16 at 48 kHz in 20 ms frames."""

    kind = "audio"

    def __init__(self, frequency_hz: float = 440.0, amplitude: float = 0.2) -> None:
        super().__init__()
        self.frequency_hz = frequency_hz
        self.amplitude = amplitude
        self._pacer = _Pacer(AUDIO_PTIME_S)
        self._samples = int(AUDIO_RATE * AUDIO_PTIME_S)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = await self._pacer.next()
        t = (np.arange(self._samples) + n * self._samples) / AUDIO_RATE
        wave = self.amplitude * 32767 * np.sin(2 * math.pi * self.frequency_hz * t)
        samples = wave.astype(np.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = n * self._samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


class HeadlessCreator:
    """A creator without a browser: an aiortc pc sending one video and one audio track.

    creator = HeadlessCreator.synthetic()
    answer = await room.publish(await creator.offer())
    await creator.accept_answer(answer)
    ...
    await creator.close()
    """

    def __init__(
        self,
        video: MediaStreamTrack,
        audio: MediaStreamTrack,
        ice_servers: Sequence[IceServer] = (),
        video_codec: str | None = None,
        player: MediaPlayer | None = None,
    ) -> None:
        self.video = video
        self.audio = audio
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self._closer = PeerCloser(self.pc)
        self._player = player
        video_tx = self.pc.addTransceiver(video, direction="sendonly")
        self.pc.addTransceiver(audio, direction="sendonly")
        if video_codec is not None:
            mime = f"video/{video_codec}".lower()
            caps = RTCRtpSender.getCapabilities("video").codecs
            prefs = [c for c in caps if c.mimeType.lower() == mime]
            if not prefs:
                raise ValueError(f"aiortc cannot send video codec {video_codec!r}")
            video_tx.setCodecPreferences(prefs)

    @classmethod
    def synthetic(
        cls,
        width: int = 640,
        height: int = 360,
        fps: float = 30.0,
        ice_servers: Sequence[IceServer] = (),
        video_codec: str | None = None,
    ) -> HeadlessCreator:
        """A creator sending the test pattern and a 440 Hz tone."""
        return cls(
            SyntheticVideoTrack(width, height, fps), ToneAudioTrack(), ice_servers, video_codec
        )

    @classmethod
    def from_file(
        cls, path: str, loop: bool = True, ice_servers: Sequence[IceServer] = ()
    ) -> HeadlessCreator:
        """A creator playing a media file (needs one video and one audio stream)."""
        player = MediaPlayer(path, loop=loop)
        if player.video is None or player.audio is None:
            raise ValueError(f"{path} needs both a video and an audio stream")
        return cls(player.video, player.audio, ice_servers, player=player)

    async def offer(self) -> str:
        """Create the offer (ICE gathered, candidates included) to send to the server."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept_answer(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def close(self) -> None:
        """Close the pc (its senders stop the tracks, which stops a file player). Idempotent."""
        await self._closer.close()
        self.video.stop()
        self.audio.stop()


def parse_size(text: str) -> tuple[int, int]:
    """'640x360' -> (640, 360), for command lines: 16x16 to 3840x2160, width even and
    height a multiple of 4 (the test pattern's chroma planes need it). ValueError otherwise."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must be WIDTHxHEIGHT, not {text!r}") from None
    if not (16 <= width <= 3840 and 16 <= height <= 2160) or width % 2 or height % 4:
        raise ValueError(
            f"size must be 16x16 to 3840x2160, width even, height a multiple of 4: {text!r}")
    return width, height
