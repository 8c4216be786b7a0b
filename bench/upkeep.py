"""The per-viewer upkeep apart from the packet path: server CPU per connected viewer per
second with no video flowing (RTCP sender reports out, receiver reports in, ICE consent
checks), beside the same room with a creator's video.

    .venv/bin/python -m bench.upkeep --viewers 100 --seconds 10

The server side (one MediaRoom) runs in this process; the viewers and the creator run in
a child process, so this process's CPU (getrusage: every thread, the encode thread too)
is the server's alone. Four windows: no viewers, idle viewers (no publisher: nothing but
upkeep), then the same viewers with a 320x240@30 creator publishing, and that creator
with no viewers. upkeep = (idle viewers - no viewers) / viewers.

`--renditions 720:1800,360:600,180:200` gives the room that ladder: every viewer is then
on "auto", so each of its receiver reports also runs the rendition rule (media/abr.py);
`--remb` also asks the viewers for REMB (GOLIVE_VIEWER_REMB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import resource
import time
from multiprocessing.connection import Connection
from typing import Any


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _window(seconds: float) -> float:
    """Server CPU cores used over `seconds` of wall time."""
    cpu, wall = _cpu_s(), time.monotonic()
    await asyncio.sleep(seconds)
    return (_cpu_s() - cpu) / (time.monotonic() - wall)


def _child(conn: Connection, viewers: int) -> None:
    """The load: `viewers` aiortc peers that answer offers, and one creator on request."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from media import restrict_host_addresses
    from media.synthetic import HeadlessCreator

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pcs: list[Any] = []
        creator = None
        while True:
            kind, payload = await loop.run_in_executor(None, conn.recv)
            if kind == "offer":
                pc = RTCPeerConnection()
                pc.on("track", lambda track: None)
                pcs.append(pc)
                await pc.setRemoteDescription(RTCSessionDescription(payload, "offer"))
                await pc.setLocalDescription(await pc.createAnswer())
                conn.send(pc.localDescription.sdp)
            elif kind == "creator":
                width, height = payload or (320, 240)  # bench.renditions asks for 720p
                creator = HeadlessCreator.synthetic(width=width, height=height)
                conn.send(await creator.offer())
            elif kind == "creator_answer":
                assert creator is not None
                await creator.accept_answer(payload)
                conn.send("ok")
            elif kind == "stop":
                if creator is not None:
                    await creator.close()
                await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
                conn.send("bye")
                return

    with restrict_host_addresses(["127.0.0.1"]):
        asyncio.run(main())


async def run(viewers: int, seconds: float, profile: str | None = None,
              profile_video: str | None = None, renditions: str | None = None,
              remb: bool = False) -> dict[str, Any]:
    from media import MediaRoom, RoomTimings, restrict_host_addresses

    parent, child_end = mp.Pipe()
    child = mp.get_context("spawn").Process(target=_child, args=(child_end, viewers))
    child.start()
    loop = asyncio.get_running_loop()

    async def ask(kind: str, payload: Any = None) -> Any:
        parent.send((kind, payload))
        return await loop.run_in_executor(None, parent.recv)

    figures: dict[str, Any] = {"viewers": viewers, "seconds": seconds}
    with restrict_host_addresses(["127.0.0.1"]):
        ladder = {}
        if renditions:
            from media.renditions import parse_ladder

            ladder = {"renditions": parse_ladder(renditions), "viewer_remb": remb}
            figures["renditions"] = renditions
            figures["remb"] = remb
        room = MediaRoom("upkeep", timings=RoomTimings(viewer_silence_timeout_s=30), **ladder)
        try:
            figures["no_viewers"] = await _window(seconds)
            for i in range(viewers):
                offer = await room.add_viewer(f"v{i}")
                await room.accept_viewer_answer(f"v{i}", await ask("offer", offer))
            while any(v.connected_at is None  # noqa: ASYNC110 (a bench, polled once)
                      for v in room._viewers.values()):
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)  # past the joins' own work
            if profile:  # where the upkeep goes (cProfile: wall-clock, several times slower)
                import cProfile
                profiler = cProfile.Profile()
                profiler.enable()
            figures["idle_viewers"] = await _window(seconds)
            if profile:
                profiler.disable()
                profiler.dump_stats(profile)
            answer = await room.publish(await ask("creator"))
            await ask("creator_answer", answer)
            await asyncio.sleep(2)
            if profile_video:  # on the process CPU clock: other work's time is not in it
                import cProfile
                video_profiler = cProfile.Profile(time.process_time)
                video_profiler.enable()
            figures["video_viewers"] = await _window(seconds)
            if profile_video:
                video_profiler.disable()
                video_profiler.dump_stats(profile_video)
            for i in range(viewers):
                await room.remove_viewer(f"v{i}")
            await asyncio.sleep(1)
            figures["video_no_viewers"] = await _window(seconds)
        finally:
            await ask("stop")
            await room.close()
            child.join(10)
    per_viewer = (figures["idle_viewers"] - figures["no_viewers"]) / viewers
    figures["upkeep_us_per_viewer_s"] = round(per_viewer * 1e6, 1)
    figures["video_us_per_viewer_s"] = round(
        (figures["video_viewers"] - figures["video_no_viewers"]) / viewers * 1e6, 1)
    for key in ("no_viewers", "idle_viewers", "video_viewers", "video_no_viewers"):
        figures[key] = round(figures[key], 4)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", help="write a cProfile of the idle window here")
    parser.add_argument("--profile-video",
                        help="write a process-CPU-clock cProfile of the video window here")
    parser.add_argument("--renditions", help="the room's ladder, e.g. 720:1800,360:600,180:200 "
                        "(default: one rendition, no rendition rule)")
    parser.add_argument("--remb", action="store_true",
                        help="with --renditions: ask the viewers for REMB too")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.viewers, args.seconds, args.profile,
                                     args.profile_video, args.renditions, args.remb)), indent=1))


if __name__ == "__main__":
    main()
