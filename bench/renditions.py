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
test pattern at 1280x720, composed, scaled and encoded by media/ladder_encoder.py as the
room does (a keyframe every 60 frames, as the 2 s GOP; `--badges N` draws N gifts), per
window of renditions {720}, {720,360}, {720,180}, {720,360,180}, {360}, {180}, and the
same frames through the code before it ("before": one thread, each rendition scaled
from the 720p by frame.reformat()) and through it on two lanes ("after-2lanes"), all
interleaved in a rotated order per round; process CPU and wall time per frame, median
and spread over the rounds, and each extra rendition's CPU (per round, the difference of
two windows) in ms per frame and cores at 30 fps.

    .venv/bin/python -m bench.renditions --stages --rounds 3    # where a frame's time goes

`--stages` times each stage of a 720p room's frame on its own, in process CPU: the
creator's VP8 decoded (libvpx, as aiortc's decoder thread does), the gifts drawn (0 and
4 badges), each rendition's scale (before and after) and encode.
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


# --offline windows: the renditions encoded per frame. Extra 360 = 720+360 - 720; extra
# 180 = 720+180 - 720; extra 720 = 720+360 - 360; and 180 on top of 720+360 (the full
# ladder; with the cascade it scales from the 360p).
OFFLINE_WINDOWS: dict[str, tuple[int, ...]] = {
    "720": (0,), "720+360": (0, 1), "720+180": (0, 2), "720+360+180": (0, 1, 2),
    "360": (1,), "180": (2,),
}
OFFLINE_EXTRAS = {"720": ("720+360", "360"), "360": ("720+360", "720"),
                  "180": ("720+180", "720"), "180 beside 720+360": ("720+360+180", "720+360")}
# The paths --offline compares, interleaved in every round: "before" is MediaRoom._encode
# as it was up to commit 0f2acd0 (one thread; each rendition scaled from the composed
# frame with frame.reformat(), a new scaler per frame; libvpx's denoiser on); "after" is
# media/ladder_encoder.py as rooms run it (kept scalers on one thread, each rendition
# from the next taller, one lane, no denoiser); "after-2lanes" the same with the lower
# renditions on a second lane.
PATHS = ("before", "after", "after-2lanes")


class _Before:
    """MediaRoom._encode as it was before LadderEncoder: the same-run baseline."""

    def __init__(self, codec: str, ladder: Any) -> None:
        from media.encoder import VideoEncoder

        self.ladder = ladder
        self.encoders = [VideoEncoder(codec, rung.bitrate, own_timeline=False)  # type: ignore[arg-type]
                         for rung in ladder]
        for encoder in self.encoders:  # libvpx's denoiser was on then
            encoder.extra_options = {"noise-sensitivity": "4"}

    def encode(self, frame: Any, overlays: Any, plan: Any) -> list[Any]:
        from media.overlay import draw_overlays
        from media.renditions import scaled_size

        composed = draw_overlays(frame, list(overlays))
        out: list[Any] = []
        for rendition, keyframe in plan:
            size = scaled_size(composed.width, composed.height, self.ladder[rendition].height)
            image = composed
            if size != (composed.width, composed.height):
                image = composed.reformat(width=size[0], height=size[1], format="yuv420p")
                image.pts, image.time_base = composed.pts, composed.time_base
            out.extend((rendition, p) for p in self.encoders[rendition].encode(image, keyframe))
        return out

    def close(self) -> None:
        pass


def _pattern(frames: int, width: int = 1280, height: int = 720) -> list[Any]:
    from media.synthetic import pattern_frames

    return pattern_frames(width, height, frames)


def _summary(values: list[float], digits: int = 2) -> dict[str, float]:
    return {"median": round(statistics.median(values), digits),
            "min": round(min(values), digits), "max": round(max(values), digits)}


def offline(rounds: int, frames: int = 150, ladder: str = LADDER,
            codec: str = "vp8", badges: int = 0,
            paths: tuple[str, ...] = PATHS) -> dict[str, Any]:
    """Each window's compose + scales + encodes of the same 1280x720 frames, by path:
    process CPU and wall time per frame, and what each extra rendition adds."""
    import os
    import time

    from media.ladder_encoder import LadderEncoder
    from media.renditions import parse_ladder, scaled_size

    rungs = parse_ladder(ladder)
    if len(rungs) != 3:
        raise SystemExit("--offline compares the windows of a 3-rung ladder")
    overlays = []
    if badges:
        from bench.overlay_draw import gift_badges
        overlays = gift_badges(badges)
    source = _pattern(frames)
    cpu: dict[tuple[str, str], list[float]] = {}
    wall: dict[tuple[str, str], list[float]] = {}
    runs = [(path, window) for window in OFFLINE_WINDOWS for path in paths]
    for r in range(rounds):
        for path, window in runs[r % len(runs):] + runs[:r % len(runs)]:
            encoder: Any = (_Before(codec, rungs) if path == "before" else
                            LadderEncoder(codec, rungs, lanes=2 if path == "after-2lanes" else 1))  # type: ignore[arg-type]
            started_cpu, started = time.process_time(), time.perf_counter()
            for n, frame in enumerate(source):
                encoder.encode(frame, overlays, [(i, n % 60 == 0) for i in OFFLINE_WINDOWS[window]])
            cpu.setdefault((path, window), []).append(
                (time.process_time() - started_cpu) / frames * 1000)
            wall.setdefault((path, window), []).append(
                (time.perf_counter() - started) / frames * 1000)
            encoder.close()
    out: dict[str, Any] = {
        "ladder": ladder, "codec": codec, "source": "1280x720", "frames": frames,
        "rounds": rounds, "badges": badges, "load_average": os.getloadavg(),
        "sizes": {rung.name: "x".join(map(str, scaled_size(1280, 720, rung.height)))
                  for rung in rungs},
        "ms_per_frame": {}, "wall_ms_per_frame": {}, "extra_rendition": {}}
    for path in paths:
        out["ms_per_frame"][path] = {w: _summary(cpu[path, w]) for w in OFFLINE_WINDOWS}
        out["wall_ms_per_frame"][path] = {w: _summary(wall[path, w]) for w in OFFLINE_WINDOWS}
        extras = {}
        for name, (with_it, without) in OFFLINE_EXTRAS.items():
            # per round: that round's two windows (interleaved: load drift hits both)
            diffs = [a - b for a, b in zip(cpu[path, with_it], cpu[path, without], strict=True)]
            extras[name] = {"ms_per_frame": _summary(diffs),
                            "cores_at_30fps": round(statistics.median(diffs) * 30 / 1000, 3)}
        out["extra_rendition"][path] = extras
    return out


def paced(rounds: int, seconds: float = 8.0, ladder: str = LADDER,
          windows: tuple[str, ...] = ("720+360+180", "720+180"),
          paths: tuple[str, ...] = PATHS) -> dict[str, Any]:
    """Does the ladder keep up: a 1280x720 creator's frames come at 30 fps on the clock and
    the encode takes the newest one each time it is free (the room's newest-frame slot,
    which drops whole frames while it is behind); frames encoded per second by path and
    window, interleaved, beside whatever else runs on the host (its load average)."""
    import os
    import time

    from media.ladder_encoder import LadderEncoder
    from media.renditions import parse_ladder

    rungs = parse_ladder(ladder)
    source = _pattern(60)
    fps: dict[tuple[str, str], list[float]] = {}
    loads: list[float] = []
    runs = [(path, window) for window in windows for path in paths]
    for r in range(rounds):
        for path, window in runs[r % len(runs):] + runs[:r % len(runs)]:
            encoder: Any = (_Before("vp8", rungs) if path == "before" else
                            LadderEncoder("vp8", rungs, lanes=2 if path == "after-2lanes" else 1))
            encoded, last = 0, -1
            started = time.perf_counter()
            while (now := time.perf_counter() - started) < seconds:
                n = int(now * 30)
                if n == last:
                    time.sleep((n + 1) / 30 - now)
                    continue
                # a keyframe every 60 frames (the 2 s GOP): on the first frame encoded
                # at or after each multiple of 60, as KeyframePolicy does
                keyframe = last < 0 or n // 60 != last // 60
                last = n
                frame = source[n % len(source)]
                frame.pts = n * 3000
                encoder.encode(frame, [], [(i, keyframe) for i in OFFLINE_WINDOWS[window]])
                encoded += 1
            encoder.close()
            fps.setdefault((path, window), []).append(encoded / seconds)
            loads.append(os.getloadavg()[0])
    # per round, each path's fps over the same round's "before" (rounds are seconds apart:
    # the host's load moves less within a round than between rounds)
    base = paths[0]
    ratios = {path: {w: _summary([a / b for a, b in zip(fps[path, w], fps[base, w],
                                                           strict=True) if b], 2)
                     for w in windows} for path in paths[1:]}
    return {"ladder": ladder, "source": "1280x720@30", "seconds": seconds, "rounds": rounds,
            "load_average_1min": _summary(loads, 1),
            "fps": {path: {w: _summary(fps[path, w], 1) for w in windows} for path in paths},
            f"fps_over_{base}": ratios,
            "fps_per_round": {f"{path} {w}": [round(v, 1) for v in fps[path, w]]
                              for path, w in fps}}


def stages(rounds: int, frames: int = 150, ladder: str = LADDER) -> dict[str, Any]:
    """Where a 720p room's frame time goes, stage by stage, in process CPU per frame:
    the creator's 720p VP8 decoded (libvpx, as aiortc's decoder thread does), the gifts
    drawn (0 and 4 badges), each rendition's scale (before: frame.reformat() from the
    720p; after: a kept scaler from the next taller) and each rendition's encode."""
    import os
    import time

    from av import CodecContext
    from av.video.reformatter import VideoReformatter

    from bench.overlay_draw import gift_badges
    from media.encoder import VideoEncoder
    from media.overlay import draw_overlays
    from media.renditions import parse_ladder, scaled_size

    rungs = parse_ladder(ladder)
    source = _pattern(frames)
    creator = VideoEncoder("vp8", 2_000_000, own_timeline=False)  # a browser's 720p
    packets = [p for n, f in enumerate(source) for p in creator.encode(f, n % 60 == 0)]
    ms: dict[str, list[float]] = {}

    def timed(label: str, work: Any) -> Any:
        started = time.process_time()
        result = work()
        ms.setdefault(label, []).append((time.process_time() - started) / frames * 1000)
        return result

    # libvpx settings tried against media/encoder.py's (cpu-used -6, no denoiser; the
    # denoiser, aiortc's 4, was on until --stages showed its cost)
    variants = {"cpu-used -10": {"cpu-used": "-10"}, "denoiser 4": {"noise-sensitivity": "4"}}
    badges = gift_badges(4)
    draw_overlays(source[0], badges)  # rendered badges are cached, as in a room
    for _ in range(rounds):
        decoder = CodecContext.create("libvpx", "r")
        decoded = timed("decode 720p (libvpx)", lambda d=decoder: [
            f for p in packets for f in d.decode(p)])
        timed("compose, 0 badges", lambda d=decoded: [draw_overlays(f, []) for f in d])
        composed = timed("compose, 4 badges",
                         lambda d=decoded: [draw_overlays(f, badges) for f in d])
        taller = composed
        for rung in rungs:
            w, h = scaled_size(1280, 720, rung.height)
            if (w, h) != (1280, 720):
                timed(f"scale {rung.name} before", lambda w=w, h=h, c=composed: [
                    f.reformat(width=w, height=h, format="yuv420p") for f in c])
                scaler = VideoReformatter()
                taller = timed(f"scale {rung.name} after", lambda w=w, h=h, s=scaler, t=taller: [
                    s.reformat(f, width=w, height=h, format="yuv420p",
                               interpolation="BILINEAR", threads=1) for f in t])
            encoder = VideoEncoder("vp8", rung.bitrate, own_timeline=False)
            timed(f"encode {rung.name}", lambda e=encoder, t=taller: [
                e.encode(f, n % 60 == 0) for n, f in enumerate(t)])
            for label, options in variants.items():
                encoder = VideoEncoder("vp8", rung.bitrate, own_timeline=False)
                encoder.extra_options = options
                timed(f"encode {rung.name} {label}", lambda e=encoder, t=taller: [
                    e.encode(f, n % 60 == 0) for n, f in enumerate(t)])
    return {"ladder": ladder, "source": "1280x720 test pattern", "frames": frames,
            "rounds": rounds, "load_average": os.getloadavg(),
            "ms_per_frame": {label: _summary(values) for label, values in ms.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--ladder", default=LADDER)
    parser.add_argument("--offline", action="store_true",
                        help="the encode cost alone: no network, no other process")
    parser.add_argument("--frames", type=int, default=150, help="--offline: frames per rendition")
    parser.add_argument("--codec", default="vp8", choices=("vp8", "h264"), help="--offline")
    parser.add_argument("--badges", type=int, default=0, help="--offline: gift badges drawn")
    parser.add_argument("--stages", action="store_true",
                        help="where a 720p frame's time goes: decode, compose, scales, encodes")
    parser.add_argument("--paced", action="store_true",
                        help="frames encoded per second when they come at 30 fps")
    parser.add_argument("--paths", default=",".join(PATHS),
                        help="--paced, --offline: the paths compared (--paced: the first is "
                             "the baseline)")
    parser.add_argument("--windows", default="720+360+180,720+180", help="--paced")
    args = parser.parse_args()
    if args.paced:
        result = paced(args.rounds, args.seconds, args.ladder, tuple(args.windows.split(",")),
                       tuple(args.paths.split(",")))
    elif args.stages:
        result = stages(args.rounds, args.frames, args.ladder)
    elif args.offline:
        result = offline(args.rounds, args.frames, args.ladder, args.codec, args.badges,
                         tuple(args.paths.split(",")))
    else:
        result = asyncio.run(run(args.rounds, args.seconds, args.ladder))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
