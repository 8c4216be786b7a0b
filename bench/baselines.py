"""The baselines a run measures beside golive, under the same load in the same command.

- naive (fanout --baseline naive): bench.naive_server, a naive aiortc relay (decoded
  frames through MediaRelay, one stock encoder per viewer), driven by the same creator
  and the same viewer workers as golive.
- node (chat --baseline node): node's socket.io server (npm: socket.io with
  socket.io-msgpack-parser, the parser golive's clients speak) doing a plain room
  broadcast (bench/node/chat_server.js), driven by the same light chat clients.

Neither has accounts: any non-empty token is the user's id, so the bench makes its
tokens locally (local_accounts) instead of registering them. Each baseline server runs
on a free loopback port, pinned like golive serve, and is stopped like it (SIGTERM, then
SIGKILL). BaselineServer has LocalServer's interface (url, pid, start, stop, kill_now,
redis_pid), so a run drives either the same way.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import sys
from pathlib import Path

from bench.processes import Child
from bench.target import Account, TargetError, free_port, wait_healthy

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_STAMP = NODE_DIR / "node_modules" / ".golive-installed"
NPM_CI_TIMEOUT_S = 300.0

NAIVE = "naive"
NODE = "node"
DESCRIPTIONS = {
    NAIVE: "naive aiortc relay: the creator's decoded frames through aiortc's MediaRelay, "
           "one stock RTCRtpSender (so one video and one audio encoder) per viewer",
    NODE: "node's socket.io server (npm socket.io 4.8, socket.io-msgpack-parser): one "
          "emit to the room per line, no batching",
}


class BaselineServer:
    """A baseline server process on a free loopback port."""

    def __init__(self, name: str, argv: list[str], log_dir: Path,
                 cpus: frozenset[int] | None = None, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.child = Child("server", [*argv, "--port", str(self.port)],
                           log_dir / "server.log", rpc=False, env=env, cpus=cpus)

    @property
    def pid(self) -> int:
        return self.child.pid

    def redis_pid(self) -> int | None:
        return None  # a baseline keeps its state in memory

    async def start(self) -> None:
        await self.child.start()
        await wait_healthy(self.url, self.child, f"the {self.name} baseline server")

    async def stop(self) -> None:
        """SIGTERM (the server ends its lives), SIGKILL past 10 s. Idempotent."""
        await self.child.stop(grace=10.0)

    def kill_now(self) -> None:
        self.child.signal_group(signal.SIGKILL)


def naive_relay_server(log_dir: Path, cpus: frozenset[int] | None, codec: str,
                       bitrate: int) -> BaselineServer:
    return BaselineServer(NAIVE, [sys.executable, "-m", "bench.naive_server", "--codec", codec,
                                  "--bitrate", str(bitrate)], log_dir, cpus)


async def node_chat_server(log_dir: Path, cpus: frozenset[int] | None) -> BaselineServer:
    """The node baseline, after `npm ci` in bench/node if its modules are missing or older
    than package-lock.json. TargetError without node and npm."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        raise TargetError("--baseline node needs Node.js and npm on PATH")
    await ensure_node_modules(log_dir)
    return BaselineServer(NODE, [node, str(NODE_DIR / "chat_server.js")], log_dir, cpus)


async def ensure_node_modules(log_dir: Path) -> None:
    """`npm ci` in bench/node when needed (idempotent, like ./run does for web/)."""
    lock = NODE_DIR / "package-lock.json"
    if NODE_STAMP.exists() and NODE_STAMP.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = Child("npm", ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error",
                        "--prefix", str(NODE_DIR)], log_dir / "npm.log", rpc=False,
                env=dict(os.environ))
    await npm.start()
    assert npm.proc is not None
    try:
        async with asyncio.timeout(NPM_CI_TIMEOUT_S):
            code = await npm.proc.wait()
    except TimeoutError:
        raise TargetError(f"npm ci in {NODE_DIR} took over {NPM_CI_TIMEOUT_S:g} s; "
                          f"see {npm.log_path}") from None
    finally:
        await npm.stop(grace=0.1)
    if code != 0:
        raise TargetError(f"npm ci in {NODE_DIR} failed ({code}); see {npm.log_path}")
    NODE_STAMP.touch()


def local_accounts(count: int, prefix: str | None = None) -> list[Account]:
    """Accounts for a baseline server: the token is the user id (no sign-up there)."""
    prefix = prefix or "n" + secrets.token_hex(4)
    return [Account(f"{prefix}_{i}", f"{prefix}_{i}", f"{prefix}_{i}") for i in range(count)]
