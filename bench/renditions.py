"""The server CPU of each extra rendition: a 1280x720@30 creator, two viewers, and the
renditions they take moved between windows, in interleaved rounds.

    .venv/bin/python -m bench.renditions --offline --rounds 5   # the encode cost alone
    .venv/bin/python -m bench.renditions --rounds 5 --seconds 6     # the whole server

The room (media/room.py, ladder 720:1800,360:600,180:200) runs in this process; the
creator and the two viewers in a child process (bench.upkeep's), so this process's CPU
(getrusage: the encode thread too) is the server's: the creator's decode, the compositor,
the scales and encodes, the fan-out. Windows, by the renditions encoded:
{720}, {720,360}, {720,180}, {360}, {180}; each round runs them in a rotated order.
Extra 360 = {720,360} - {720}; extra 180 = {720,180} - {720}; extra 720 = {720,360} -
{360} (720 on top of a room that already encodes 360). Every window has the same two
viewers, so the send cost barely moves (one 720p viewer-packet stream against a lower one).

Process CPU moves with the machine's load (on a shared 2-core host the creator child may
not keep 30 fps, and fewer frames are then encoded). `--offline` measures what one more
rendition costs on its own, with no network and no other process: 150 frames of the
test pattern at 1280x720, scaled and encoded the way MediaRoom._encode does (a keyframe
every 60 frames, as the 2 s GOP), each rendition in turn in rotated order per round;
process CPU time (libvpx's second thread above 640x480 included), ms per frame, median
and spread over the rounds, and what that is in cores at 30 fps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
from typing import Any

from bench.upkeep import _child, _window

LADDER = "720:1800,360:600,180:200"
# The windows: what viewers v0 and v1 pin.
WINDOWS: dict[str, tuple[str, str]] = {
    "720": ("720", "720"),
    "720+360": ("720", "360"),
    "720+180": ("720", "180"),
    "360": ("360", "360"),
    "180": ("180", "180"),
}
EXTRAS = {"720": ("720+360", "360"), "360": ("720+360", "720"), "180": ("720+180", "720")}


async def run(rounds: int, seconds: float, ladder: str = LADDER) -> dict[str, Any]:
    from media import MediaRoom, RoomTimings, restrict_host_addresses
    from media.renditions import parse_ladder

    parent, child_end = mp.Pipe()
    child = mp.get_context("spawn").Process(target=_child, args=(child_end, 2))
    child.start()
    loop = asyncio.get_running_loop()

    async def ask(kind: str, payload: Any = None) -> Any:
        parent.send((kind, payload))
        return await loop.run_in_executor(None, parent.recv)

    cores: dict[str, list[float]] = {name: [] for name in WINDOWS}
    ms_per_frame: dict[str, list[float]] = {}
    fps: dict[str, list[float]] = {}
    frames: dict[str, int] = {}
    ms_per_frame = fps = {}  # only the offline mode measures these
    with restrict_host_addresses(["127.0.0.1"]):
        room = MediaRoom("renditions", renditions=parse_ladder(ladder),
                         timings=RoomTimings(viewer_silence_timeout_s=30))
        try:
            for i in range(2):
                offer = await room.add_viewer(f"v{i}", quality="720")
                await room.accept_viewer_answer(f"v{i}", await ask("offer", offer))
            answer = await room.publish(await ask("creator", (1280, 720)))
            await ask("creator_answer", answer)
            while any(v.connected_at is None  # noqa: ASYNC110 (a bench, polled)
                      for v in room._viewers.values()):
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            names = list(WINDOWS)
            for r in range(rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    for viewer, quality in zip(("v0", "v1"), WINDOWS[name], strict=True):
                        room.set_quality(viewer, quality)
                    while any(room.viewer_quality(v)["switching_to"]  # noqa: ASYNC110
                              for v in ("v0", "v1")):
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(1.0)  # the idle rendition stops, the new one settles
                    before = room.stats().rendition_frames
                    cores[name].append(await _window(seconds))
                    after = room.stats().rendition_frames
                    for rung in set(WINDOWS[name]):
                        fps.setdefault(rung, []).append((after[rung] - before[rung]) / seconds)
            frames = room.stats().rendition_frames
        finally:
            await ask("stop")
            await room.close()
            child.join(10)

    def summary(values: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(values), 4),
                "min": round(min(values), 4), "max": round(max(values), 4)}

    extras = {}
    for rung, (with_it, without) in EXTRAS.items():
        # per round: the difference of that round's two windows (interleaved, so drift
        # in the machine's load hits both)
        diffs = [a - b for a, b in zip(cores[with_it], cores[without], strict=True)]
        extras[rung] = summary(diffs)
    del ms_per_frame
    return {"ladder": ladder, "creator": "1280x720@30", "rounds": rounds, "seconds": seconds,
            "fps": {r: summary(v) for r, v in fps.items()},
            "process_windows_cores": {name: summary(values) for name, values in cores.items()},
            "process_extra_rendition_cores": extras, "rendition_frames": frames}


def offline(rounds: int, frames: int = 150, ladder: str = LADDER,
            codec: str = "vp8") -> dict[str, Any]:
    """Each rendition's scale + encode of the same 1280x720 frames, in process CPU time."""
    import time

    from media.encoder import VIDEO_TIME_BASE, VideoEncoder
    from media.renditions import parse_ladder, scaled_size
    from media.synthetic import SyntheticVideoTrack

    rungs = parse_ladder(ladder)

    async def pattern() -> list[Any]:  # the track wants a running loop
        track = SyntheticVideoTrack(1280, 720)
        return [track.make_frame(n) for n in range(frames)]

    source = asyncio.run(pattern())
    ms: dict[str, list[float]] = {rung.name: [] for rung in rungs}
    for r in range(rounds):
        order = list(rungs[r % len(rungs):] + rungs[:r % len(rungs)])
        for rung in order:
            encoder = VideoEncoder(codec, rung.bitrate, own_timeline=False)  # type: ignore[arg-type]
            started = time.process_time()
            for n, frame in enumerate(source):
                image = frame
                size = scaled_size(frame.width, frame.height, rung.height)
                if size != (frame.width, frame.height):
                    image = frame.reformat(width=size[0], height=size[1], format="yuv420p")
                image.pts, image.time_base = n * 3000, VIDEO_TIME_BASE
                encoder.encode(image, keyframe=n % 60 == 0)
            ms[rung.name].append((time.process_time() - started) / frames * 1000)
    out: dict[str, Any] = {"ladder": ladder, "codec": codec, "source": "1280x720",
                           "frames": frames, "rounds": rounds, "renditions": {}}
    for rung in rungs:
        values = ms[rung.name]
        median = statistics.median(values)
        out["renditions"][rung.name] = {
            "size": "x".join(map(str, scaled_size(1280, 720, rung.height))),
            "kbps": rung.bitrate // 1000,
            "ms_per_frame": {"median": round(median, 2), "min": round(min(values), 2),
                             "max": round(max(values), 2)},
            "cores_at_30fps": round(median * 30 / 1000, 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--ladder", default=LADDER)
    parser.add_argument("--offline", action="store_true",
                        help="the encode cost alone: no network, no other process")
    parser.add_argument("--frames", type=int, default=150, help="--offline: frames per rendition")
    parser.add_argument("--codec", default="vp8", choices=("vp8", "h264"), help="--offline")
    args = parser.parse_args()
    if args.offline:
        result = offline(args.rounds, args.frames, args.ladder, args.codec)
    else:
        result = asyncio.run(run(args.rounds, args.seconds, args.ladder))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
