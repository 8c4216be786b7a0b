"""Real processes: `golive serve` as a user runs it, the bench, and what they leave behind."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# The token secret of every test server (in-process and `golive serve`).
TEST_SECRET = "test-secret-" + "x" * 40


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """A `golive serve` process, its URL and its log file."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(tmp_path: Path, *, redis_url: str | None, env: dict[str, str] | None = None,
                 data_dir: Path | None = None, timeout: float = 20.0) -> ServerProcess:
    """Run `golive serve` as a user would and wait for /healthz. One process
    (GOLIVE_WORKERS=1: the default is one per core) unless `env` says otherwise."""
    port = free_port()
    log_path = tmp_path / f"serve-{port}.log"
    full_env = {**os.environ, "GOLIVE_PORT": str(port), "GOLIVE_WORKERS": "1",
                "GOLIVE_DATA_DIR": str(data_dir or tmp_path / "data"), **(env or {})}
    full_env.pop("REDIS_URL", None)
    if redis_url:
        full_env["REDIS_URL"] = redis_url
    proc = subprocess.Popen([sys.executable, "-m", "signaling.cli", "serve"], env=full_env,
                            stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return ServerProcess(proc, url, log_path)
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("golive serve did not start:\n" + log_path.read_text())
        time.sleep(0.05)


def stop_server(server: ServerProcess, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
    """Send `sig` (unless it has exited) and wait; its exit status."""
    if server.proc.poll() is None:
        server.proc.send_signal(sig)
    return server.proc.wait(timeout=timeout)


def stop_or_kill(server: ServerProcess, timeout: float = 10) -> None:
    """A teardown's stop: SIGTERM and wait up to `timeout`, SIGKILL past it; nothing is
    left running whatever state the test left the server in."""
    if server.proc.poll() is not None:
        return
    try:
        stop_server(server, timeout=timeout)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


def processes_mentioning(text: str, name: bytes = b"redis-server") -> list[int]:
    """Pids of `name` processes whose command line mentions text (e.g. a data dir)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if name in cmd and text.encode() in cmd:
                pids.append(int(proc.name))
    return pids


def run_bench(*argv: str, **popen: Any) -> subprocess.Popen[str]:
    """`python -m bench ARGV` from the repo, on its own embedded Redis (no REDIS_URL)."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return subprocess.Popen([sys.executable, "-m", "bench", *argv], cwd=REPO, env=env,
                            text=True, **popen)


def interrupt_run(proc: subprocess.Popen[str], marker: str, out: Path, timeout: float = 120,
                  running: tuple[str, ...] = ()) -> tuple[dict[str, Any], set[int]]:
    """Ctrl-C a bench run mid-way and check that its runner stopped it cleanly.

    Reads the run's stderr (opened as a text PIPE) until a line holds `marker` and the run
    has a process for each of `running` (a piece of its command line), notes the processes
    it started by then, sends SIGINT (a terminal's Ctrl-C) and waits for it to exit; then
    asserts exit 130, bench/runner.py's own "interrupted: stopping" note (its handler ran,
    not python-socketio's), a result.json under `out` that says interrupted, and every
    noted process gone. Returns that result and the processes."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    stream = proc.stderr
    reader = threading.Thread(target=lambda: [lines.put(x) for x in stream], daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    seen = ""
    try:
        while marker not in seen:
            assert proc.poll() is None, f"the run ended before {marker!r}:\n{seen}"
            assert time.monotonic() < deadline, f"never reached {marker!r}:\n{seen}"
            with contextlib.suppress(queue.Empty):
                seen += lines.get(timeout=0.5)
        while not all(any(what in _cmdline(p) for p in descendants(proc.pid))
                      for what in running):
            assert proc.poll() is None, seen
            assert time.monotonic() < deadline, f"never saw {running} running:\n{seen}"
            time.sleep(0.1)
        started = descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    while not lines.empty():
        seen += lines.get_nowait()
    assert proc.returncode == 130, seen
    assert "interrupted: stopping" in seen, seen
    assert_gone(started)
    result = bench_result(out)
    assert result["interrupted"] is True
    return result, started


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def bench_result(out: Path) -> dict[str, Any]:
    """The result.json of the one run written under `out`."""
    (path,) = out.glob("*/result.json")
    return json.loads(path.read_text())


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, their children...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def assert_gone(pids: set[int] | list[int], timeout: float = 10) -> None:
    """Wait up to timeout for every pid to exit; fail naming those left behind."""
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if pid_alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left behind: {left}"
