"""LadderEncoder: one composed frame, scaled and encoded at each rendition asked for.

The gifts are drawn once (media/overlay.py), on the creator's picture. Each rendition's
picture is scaled from the next taller one made for the same frame (the 180p from the
360p, not from the 720p: a quarter of the pixels to read), with one kept scaler per
rendition on one thread. The encodes run in plan order on the calling thread (the
room's encode thread), or with `lanes=2` the lower renditions on a second thread beside
the top one, so a frame's wall time is about the top encode's rather than the sum.
PyAV releases the GIL in sws_scale_frame and avcodec_send_frame/receive_packet, so two
lanes do run at once on two cores.

Rooms use one lane: on this 2-core host beside other jobs (load average 11-14) the
second lane did not raise the frames a 720p ladder encodes when they come at 30 fps
(`python -m bench.renditions --paced --paths after,after-2lanes --windows 720+360+180
--rounds 12 --seconds 4`: 19.0 fps [8.5-25.2] with two lanes, 18.5 [10.2-26.2] with
one, per-round ratio 0.90 [0.47-2.29]), for the same CPU (12.6 vs 12.8 ms a frame):
with both cores busy each hand-over waits for a core twice. With a spare core it cuts
a full ladder's frame from ~12.6 ms to the top lane's ~9.7 ms.

With two lanes no frame object is shared between them: the calling thread scales the
first lower picture before handing it over, and the second lane only touches pictures
it made. (A reformat briefly rewrites its source frame's colour metadata; libavcodec
reads it when it takes the frame.) Each encoder and scaler is used by one lane per
frame, and a frame is done on both lanes before the next one starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import av
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter

from media.encoder import VideoCodecName, VideoEncoder
from media.overlay import Overlay, draw_overlays
from media.renditions import Rendition, scaled_size

# A plan: (rendition index, force a keyframe), best rendition first.
Plan = Sequence[tuple[int, bool]]

# swscale's bilinear, on one thread with a kept context. PyAV's frame.reformat() makes a
# new scaler per frame (each decoded frame is a new object) and its default threads=0
# starts a thread pool per context: 1.11 ms a frame for 1280x720 -> 640x360 and 1.00
# ms -> 320x180 that way, 0.53 and 0.34 ms kept on one thread, 0.18 ms for 360 -> 180
# (process CPU, 3 rounds). FAST_BILINEAR saves ~0.1 ms but aliases: 27 dB PSNR against
# an area-averaged 180p, where bilinear keeps 45.6 dB direct and 42.2 dB from the
# 360p, above what the 200 kbit/s encode keeps (38 dB).
_INTERPOLATION = "BILINEAR"
_SCALE_THREADS = 1


class LadderEncoder:
    """Encodes composed frames at a room's renditions; not thread-safe (one caller).

    `lanes=1` runs every rendition of a frame on the calling thread in order; `lanes=2`
    runs the lower ones on a second thread beside the top one (close() joins it).
    """

    def __init__(self, codec: VideoCodecName, ladder: Sequence[Rendition], *,
                 lanes: int = 1, name: str = "room") -> None:
        if lanes not in (1, 2):
            raise ValueError("lanes must be 1 or 2")
        self.ladder = tuple(ladder)
        self.encoders = [VideoEncoder(codec, rung.bitrate, own_timeline=False)
                         for rung in self.ladder]
        self._scalers = [VideoReformatter() for _ in self.ladder]
        self._lower: ThreadPoolExecutor | None = None
        if lanes == 2 and len(self.ladder) > 1:
            self._lower = ThreadPoolExecutor(1, thread_name_prefix=f"encode-low-{name}")

    def encode(self, frame: VideoFrame, overlays: Sequence[Overlay],
               plan: Plan) -> list[tuple[int, av.Packet]]:
        """`frame` with `overlays` drawn in, encoded at each (rendition, keyframe) of
        `plan` (best first): the packets as (rendition, packet), in plan order."""
        composed = draw_overlays(frame, list(overlays))
        if not plan:
            return []
        top, lower = plan[0], list(plan[1:])
        image = self._scale(composed, composed, top[0])
        future: Future[list[tuple[int, av.Packet]]] | None = None
        if lower and self._lower is not None:
            first_lower = self._scale(image, composed, lower[0][0])
            future = self._lower.submit(self._encode_run, first_lower, composed, lower)
        out = self._encode_one(image, top)
        if future is not None:
            out.extend(future.result())
        elif lower:
            out.extend(self._encode_run(image, composed, lower))
        return out

    def close(self) -> None:
        """Join the second lane's thread. Idempotent."""
        if self._lower is not None:
            self._lower.shutdown(wait=True)

    def _encode_run(self, source: VideoFrame, composed: VideoFrame,
                    plan: Plan) -> list[tuple[int, av.Packet]]:
        """Encode each rung of `plan` in order, each picture scaled from the one before
        (`source` the first's own or a taller one)."""
        out: list[tuple[int, av.Packet]] = []
        for step in plan:
            source = self._scale(source, composed, step[0])
            out.extend(self._encode_one(source, step))
        return out

    def _encode_one(self, image: VideoFrame,
                    step: tuple[int, bool]) -> list[tuple[int, av.Packet]]:
        rendition, keyframe = step
        return [(rendition, packet)
                for packet in self.encoders[rendition].encode(image, keyframe)]

    def _scale(self, source: VideoFrame, composed: VideoFrame, rendition: int) -> VideoFrame:
        """`source` (the composed frame or a rung's picture of it) at `rendition`'s
        size, from the rendition's kept scaler; `source` itself when that is its size."""
        width, height = scaled_size(composed.width, composed.height,
                                    self.ladder[rendition].height)
        if (source.width, source.height) == (width, height) and source.format.name == "yuv420p":
            return source
        image = self._scalers[rendition].reformat(
            source, width=width, height=height, format="yuv420p",
            interpolation=_INTERPOLATION, threads=_SCALE_THREADS)
        image.pts, image.time_base = composed.pts, composed.time_base
        return image
