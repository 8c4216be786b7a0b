"""A decoding viewer as a child process, for a viewer inside a network namespace:
`ip netns exec NS python -m bench.netns_viewer` (or, unshaped, in the root namespace
with `--addresses 127.0.0.1`). `golive bench abr` runs its viewers this way, and
tests/media/test_abr_netem.py (through tests/support/netns_viewer.py, a re-export).

Its parent writes the server's offer as one JSON line on stdin ({"offer": sdp}); it
answers with one ({"answer": sdp}), then every 0.25 s a JSON line of what it decoded:
{"t": s since the answer, "mono": its time.monotonic() (one clock for every process of
the host: namespaces do not change it), "frames": decoded video frames, "size": [w, h]
of the last, "bytes": video RTP bytes received (payload + 12-byte header, retransmissions
included), "new": [[mono, height], ...] each frame decoded since the last line,
"freezes": [[at_s, gap_ms], ...] every gap over 500 ms between decoded frames so far,
"skips", "dropped", "plis": what its keyframe-aware buffer did so far, bench/
dependency_buffer.py}.
It closes its peer connection and exits when stdin closes (the parent's end of it).
An ICE restart: a further line {"restart": sdp} (the server's offer with new ICE) gets
{"restart_answer": sdp} back (media/ice_restart.py, as a browser answering a re-offer),
and the reports then carry "restarted_s" (the hand-over's time) or "restart_error".
Host candidates: aioice gathers every non-loopback address of the namespace, i.e. the
veth end's 10.200.<n>.2; the server offers its 10.200.<n>.1 (the parent's restriction).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from av.video.frame import VideoFrame

from bench.decoding_viewer import DecodingViewer
from bench.processes import die_with_parent, end_by_eof
from media.ice_restart import IceRestart, read_ice, with_ice

FREEZE_MS = 500.0
REPORT_EVERY_S = 0.25


class NamespacedViewer:
    """The parent's handle on a child viewer in a namespace: `answer(offer)` starts it
    and returns its answer; `last` is its latest report, `sizes` (parent's monotonic
    time, [w, h]) each change of the decoded size, `timeline` every decoded frame
    (monotonic time, height) and `samples` every report's (monotonic time, frames,
    bytes). `close()` ends the child on every path (stdin closed, then SIGKILL after
    5 s) and cancels the line reader; the child also gets SIGTERM if this process dies.
    `addresses` restricts the child's ICE host addresses (a viewer in the root
    namespace: 127.0.0.1); `log_path` takes its stderr (default: this process's)."""

    def __init__(self, argv_prefix: list[str], cwd: str, *,
                 addresses: list[str] | None = None, log_path: Path | None = None) -> None:
        self._argv = [*argv_prefix, sys.executable, "-m", "bench.netns_viewer"]
        if addresses:
            self._argv += ["--addresses", ",".join(addresses)]
        self._cwd = cwd
        self._log_path = log_path
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self.last: dict | None = None
        self.sizes: list[tuple[float, list[int] | None]] = []
        self.timeline: list[tuple[float, int]] = []
        self.samples: list[tuple[float, int, int]] = []
        self._restart_answer: asyncio.Future[str] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def answer(self, offer: str) -> str:
        log: Any = None
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            log = self._log_path.open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv, cwd=self._cwd, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log, limit=1 << 20,
                # its own session: a terminal's Ctrl-C reaches only the parent, which
                # then closes it in order
                start_new_session=True, preexec_fn=die_with_parent)
        finally:
            if log is not None:
                log.close()  # the child has its own descriptor
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write((json.dumps({"offer": offer}) + "\n").encode())
        await self._proc.stdin.drain()
        line = await asyncio.wait_for(self._proc.stdout.readline(), 20)
        if not line:
            raise RuntimeError(f"the namespaced viewer exited: {await self._proc.wait()}")
        self._reader = asyncio.create_task(self._read())
        return str(json.loads(line)["answer"])

    async def restart(self, offer: str) -> str:
        """Hand the child the server's ICE-restart offer; its answer."""
        assert self._proc is not None and self._proc.stdin is not None
        self._restart_answer = asyncio.get_running_loop().create_future()
        self._proc.stdin.write((json.dumps({"restart": offer}) + "\n").encode())
        await self._proc.stdin.drain()
        return await asyncio.wait_for(self._restart_answer, 20)

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            report = json.loads(line)
            if "restart_answer" in report:
                if self._restart_answer is not None and not self._restart_answer.done():
                    self._restart_answer.set_result(report["restart_answer"])
                continue
            self.last = report
            self.timeline.extend((float(t), int(h)) for t, h in report.get("new", ()))
            if "mono" in report:
                self.samples.append((float(report["mono"]), int(report["frames"]),
                                     int(report.get("bytes", 0))))
            if not self.sizes or self.sizes[-1][1] != report["size"]:
                self.sizes.append((time.monotonic(), report["size"]))

    @property
    def frames(self) -> int:
        return 0 if self.last is None else int(self.last["frames"])

    @property
    def size(self) -> tuple[int, int] | None:
        size = None if self.last is None else self.last["size"]
        return None if size is None else (size[0], size[1])

    def freezes_after(self, since_s: float) -> list[list[float]]:
        """Freezes (at_s of the child's clock, gap_ms) that ended after `since_s`."""
        return [] if self.last is None else [f for f in self.last["freezes"] if f[0] > since_s]

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        try:
            await end_by_eof(proc)
        finally:
            if self._reader is not None:
                self._reader.cancel()
                await asyncio.gather(self._reader, return_exceptions=True)


def buffer_figures(viewer: DecodingViewer) -> dict[str, int]:
    """What the viewer's keyframe-aware buffer did so far (bench/dependency_buffer.py)."""
    buffer = viewer.buffer
    if buffer is None:
        return {}
    return {"skips": buffer.skips, "dropped": buffer.dropped, "plis": buffer.plis}


def count_video_bytes(viewer: DecodingViewer) -> list[int]:
    """A one-item counter of the video RTP bytes the viewer's receiver is handed (aiortc's
    stats have no bytesReceived): its RTP handler is wrapped before any packet comes."""
    from media import aiortc_private

    counted = [0]
    for transceiver in viewer.pc.getTransceivers():
        if transceiver.kind != "video":
            continue

        def make(handle: Any) -> Any:
            async def counting(packet: Any, arrival_time_ms: int) -> None:
                counted[0] += len(packet.payload) + 12  # the fixed RTP header
                await handle(packet, arrival_time_ms)
            return counting

        aiortc_private.intercept_receiver_rtp(transceiver.receiver, make)
    return counted


async def main(addresses: list[str] | None = None) -> None:
    if addresses:
        from media.ice import restrict_host_addresses

        restrict_host_addresses(addresses)  # for this process's life
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    offer = json.loads(await reader.readline())["offer"]
    started = time.monotonic()
    last: list[float] = []
    freezes: list[list[float]] = []
    new: list[list[float]] = []  # since the last report line

    def on_video(frame: VideoFrame) -> None:
        now = time.monotonic()
        if last and (now - last[0]) * 1000 > FREEZE_MS:
            freezes.append([round(now - started, 3), round((now - last[0]) * 1000)])
        last[:] = [now]
        new.append([round(now, 4), frame.height])

    viewer = DecodingViewer("netns", on_video=on_video, dependencies=True)
    restart: dict[str, object] = {}
    restarts: list[asyncio.Task[None]] = []

    async def restart_ice(offer_sdp: str) -> None:
        ice = IceRestart(viewer.pc.getTransceivers()[0].receiver.transport)
        local = await ice.gather()
        print(json.dumps({"restart_answer": with_ice(viewer.pc.localDescription.sdp, local)}),
              flush=True)
        try:
            await ice.connect(read_ice(offer_sdp))
            restart["restarted_s"] = round(time.monotonic() - started, 3)
        except Exception as exc:  # reported to the parent, which fails the test with it
            restart["restart_error"] = repr(exc)

    try:
        answer = await viewer.answer(offer)
        video_bytes = count_video_bytes(viewer)
        print(json.dumps({"answer": answer}), flush=True)

        async def report() -> None:
            while True:
                frame = viewer.last_video
                size = None if frame is None else [frame.width, frame.height]
                stats = await viewer.pc.getStats()
                received = sum(s.packetsReceived for s in stats.values()
                               if s.type == "inbound-rtp" and s.kind == "video")
                print(json.dumps({"packets": received, "t": round(time.monotonic() - started, 3),
                                  "mono": round(time.monotonic(), 4),
                                  "frames": viewer.video_frames, "size": size,
                                  "bytes": video_bytes[0], "new": new,
                                  "freezes": freezes, **restart, **buffer_figures(viewer)}),
                      flush=True)
                new.clear()
                await asyncio.sleep(REPORT_EVERY_S)

        reporter = asyncio.create_task(report())
        try:
            while line := await reader.readline():  # until the parent closes stdin
                command = json.loads(line)
                if "restart" in command:
                    restarts.append(asyncio.create_task(restart_ice(command["restart"])))
        finally:
            reporter.cancel()
            for task in restarts:
                task.cancel()
            await asyncio.gather(reporter, *restarts, return_exceptions=True)
    finally:
        await viewer.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.netns_viewer")
    parser.add_argument("--addresses", default="",
                        help="ICE host addresses to gather on, comma-separated (default: "
                             "every non-loopback one, i.e. the namespace's veth end)")
    options = parser.parse_args()
    asyncio.run(main([a for a in options.addresses.split(",") if a]))
