"""Server CPU per viewer join, apart from everything else: offer (peer connection, ICE
gathering, SDP), answer, ICE checks, DTLS handshake, the start of its media.

    .venv/bin/python -m bench.join_cost --joins 100 [--profile out.prof]

The room runs in this process and the viewers in a child (bench.upkeep's child), so this
process's CPU (getrusage: every thread) is the server's alone, and CPU time, unlike wall
time, barely moves when other work shares the machine. No creator publishes: with one,
the fan-out to the viewers already joined would be counted too. Joins go `--batch` at a
time,
each batch until connected. cost = (CPU over the joins - the room's own CPU rate over
that time, measured before) / joins. `--profile` writes a cProfile made on the process
CPU clock (so waits and other processes' time are not in it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import time
from typing import Any

from bench.upkeep import _child, _cpu_s


async def run(joins: int, batch: int, profile: str | None = None) -> dict[str, Any]:
    from media import MediaRoom, RoomTimings, restrict_host_addresses

    parent, child_end = mp.Pipe()
    child = mp.get_context("spawn").Process(target=_child, args=(child_end, joins))
    child.start()
    loop = asyncio.get_running_loop()
    lock = asyncio.Lock()  # one request on the pipe at a time

    async def ask(kind: str, payload: Any = None) -> Any:
        async with lock:
            parent.send((kind, payload))
            return await loop.run_in_executor(None, parent.recv)

    figures: dict[str, Any] = {"joins": joins, "batch": batch}
    with restrict_host_addresses(["127.0.0.1"]):
        room = MediaRoom("joins", timings=RoomTimings(viewer_silence_timeout_s=60))
        try:
            cpu, wall = _cpu_s(), time.monotonic()
            await asyncio.sleep(3)
            base_rate = (_cpu_s() - cpu) / (time.monotonic() - wall)

            async def join(i: int) -> None:
                offer = await room.add_viewer(f"v{i}")
                await room.accept_viewer_answer(f"v{i}", await ask("offer", offer))

            profiler = None
            if profile:
                import cProfile
                profiler = cProfile.Profile(time.process_time)
                profiler.enable()
            cpu, wall = _cpu_s(), time.monotonic()
            for first in range(0, joins, batch):
                await asyncio.gather(*(join(i) for i in range(first, min(joins, first + batch))))
                while any(v.connected_at is None  # noqa: ASYNC110 (a bench, polled)
                          for v in room._viewers.values()):
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)  # the last ones' first packets
            used, seconds = _cpu_s() - cpu, time.monotonic() - wall
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile)
        finally:
            await ask("stop")
            await room.close()
            child.join(10)
    figures["seconds"] = round(seconds, 2)
    figures["room_cores_before"] = round(base_rate, 4)
    figures["server_ms_per_join"] = round((used - base_rate * seconds) / joins * 1e3, 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=100)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--profile", help="write a process-CPU cProfile of the joins here")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.joins, args.batch, args.profile))))


if __name__ == "__main__":
    main()
