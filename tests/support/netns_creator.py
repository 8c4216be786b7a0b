"""A synthetic creator as a child process, for a creator inside a network namespace:
`ip netns exec NS python -m tests.support.netns_creator`.

One JSON line each way: it writes its offer ({"offer": sdp}) and reads the server's
answer ({"answer": sdp}). An ICE restart: {"restart": true} gets {"restart_offer": sdp}
back (new ICE, media/ice_restart.py, as a browser's createOffer({iceRestart: true})),
then {"restart_answer": sdp} completes it; {"restarted_s": s} or {"restart_error": ...}
follows. It closes its peer connection and exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bench.processes import end_by_eof
from media.ice_restart import IceRestart, read_ice, with_ice
from media.synthetic import HeadlessCreator


class NamespacedCreator:
    """The parent's handle: `offer()`, `accept_answer(sdp)`, `restart_offer()` and
    `restart_answer(sdp)`; `close()` ends the child on every path (stdin closed, then
    SIGKILL after 5 s)."""

    def __init__(self, argv_prefix: list[str], cwd: str) -> None:
        self._argv = [*argv_prefix, sys.executable, "-m", "tests.support.netns_creator"]
        self._cwd = cwd
        self._proc: asyncio.subprocess.Process | None = None
        self.events: list[dict] = []

    async def _line(self) -> dict:
        assert self._proc is not None and self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 20)
        if not line:
            raise RuntimeError(f"the namespaced creator exited: {await self._proc.wait()}")
        return dict(json.loads(line))

    async def _send(self, message: dict) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write((json.dumps(message) + "\n").encode())
        await self._proc.stdin.drain()

    async def offer(self) -> str:
        self._proc = await asyncio.create_subprocess_exec(
            *self._argv, cwd=self._cwd, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=1 << 20)
        return str((await self._line())["offer"])

    async def accept_answer(self, answer: str) -> None:
        await self._send({"answer": answer})

    async def restart_offer(self) -> str:
        await self._send({"restart": True})
        return str((await self._line())["restart_offer"])

    async def restart_answer(self, answer: str) -> dict:
        """Hand over the server's answer; the child's outcome line once it connected."""
        await self._send({"restart_answer": answer})
        return await self._line()

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        await end_by_eof(proc)


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    creator = HeadlessCreator.synthetic(width=320, height=240)
    started = time.monotonic()
    try:
        print(json.dumps({"offer": await creator.offer()}), flush=True)
        await creator.accept_answer(json.loads(await reader.readline())["answer"])
        ice: IceRestart | None = None
        while line := await reader.readline():
            command = json.loads(line)
            if "restart" in command:
                ice = IceRestart(creator.pc.getTransceivers()[0].sender.transport)
                offer = with_ice(creator.pc.localDescription.sdp, await ice.gather())
                print(json.dumps({"restart_offer": offer}), flush=True)
            elif "restart_answer" in command and ice is not None:
                try:
                    await asyncio.wait_for(ice.connect(read_ice(command["restart_answer"])), 20)
                    print(json.dumps({"restarted_s": round(time.monotonic() - started, 3)}),
                          flush=True)
                except Exception as exc:  # the parent fails the test with it
                    await ice.close()
                    print(json.dumps({"restart_error": repr(exc)}), flush=True)
    finally:
        await creator.close()


if __name__ == "__main__":
    asyncio.run(main())
