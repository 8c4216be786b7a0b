"""A real TURN server on loopback: Debian's coturn (`turnserver`), for the TURN bench
(bench/turn.py) and the tests (tests/support/turn.py, its fixture).

It runs in the foreground on a free port with a temporary config (use-auth-secret:
golive's credential scheme, signaling/turn.py), logs verbosely to a file (its
allocations and per-session usage are read from there), and `stop_coturn` ends it
(SIGTERM, SIGKILL past 5 s).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aioice import stun

from signaling.turn import rest_credential

TURNSERVER = os.environ.get("GOLIVE_TURNSERVER", "turnserver")
TURN_SECRET = "turn-test-secret-" + "y" * 24  # loopback only: coturn and golive are ours
REALM = "golive.test"
START_TIMEOUT_S = 10.0

# What coturn logs (with `verbose`) when an allocation is made for a user, and when a
# session closes with its traffic ("rp" packets and "rb" bytes received from the client,
# "sp"/"sb" sent to it).
_USAGE = re.compile(r"(?<!peer )usage: realm=<[^>]*>, username=<([^>]*)>, rp=(\d+), "
                    r"rb=(\d+), sp=(\d+), sb=(\d+)")
_USER = re.compile(r"user <([^>]*)>: incoming packet ALLOCATE processed, success")
_REFUSED = re.compile(r"user <([^>]+)>: incoming packet message processed, error 401")


@dataclass
class Coturn:
    """A running turnserver: its URLs, the shared secret, its log."""

    proc: subprocess.Popen[bytes]
    port: int
    secret: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    @property
    def tcp_url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=tcp"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ice_servers(self, user_id: str, *, now: float | None = None, ttl_s: int = 3600,
                    secret: str | None = None) -> list[dict[str, Any]]:
        """The `ice_servers` golive would hand `user_id` (another secret or an earlier
        `now` make a credential coturn must refuse)."""
        made = rest_credential((secret or self.secret).encode(), user_id,
                               time.time() if now is None else now, ttl_s)
        return [{"urls": [self.url], "username": made.username,
                 "credential": made.credential}]

    def allocated_users(self) -> list[str]:
        """The username of each allocation coturn granted, in order."""
        return _USER.findall(self.log())

    def refused_users(self) -> set[str]:
        """Usernames coturn answered 401 Unauthorized (a wrong or expired credential; the
        first, unauthenticated request of every client is answered 401 with no user)."""
        return set(_REFUSED.findall(self.log()))

    def usage(self) -> dict[str, tuple[int, int]]:
        """Per username, the largest (packets, bytes) coturn relayed to a client in one
        session, from its usage lines (logged while a session runs and when it closes)."""
        seen: dict[str, tuple[int, int]] = {}
        for user, _rp, _rb, sp, sb in _USAGE.findall(self.log()):
            old = seen.get(user, (0, 0))
            seen[user] = max(old, (int(sp), int(sb)))
        return seen


def _config(port: int, secret: str, tmp: Path, extra: tuple[str, ...]) -> str:
    # Every path coturn would otherwise take from /etc or /var lives in the test's dir.
    return "\n".join([
        f"listening-port={port}",
        "listening-ip=127.0.0.1",
        "relay-ip=127.0.0.1",
        f"realm={REALM}",
        "use-auth-secret",
        f"static-auth-secret={secret}",
        # The golive server's media answers on 127.0.0.1: without this coturn refuses
        # loopback peers (its default, right for production).
        "allow-loopback-peers",
        "no-cli", "no-tls", "no-dtls", "no-rfc5780", "fingerprint",
        f"log-file={tmp / 'turn.log'}", "simple-log", "no-stdout-log", "verbose",
        f"pidfile={tmp / 'turn.pid'}",
        f"userdb={tmp / 'turndb'}",
        *extra,
        "",
    ])


def _answers_stun(port: int) -> bool:
    """True when a STUN Binding request to the server on `port` is answered."""
    request = stun.Message(message_method=stun.Method.BINDING,
                           message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(bytes(request), ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(2048)
        except OSError:
            return False
    return stun.parse_message(data).transaction_id == request.transaction_id


def start_coturn(tmp: Path, secret: str = TURN_SECRET, extra: tuple[str, ...] = ()) -> Coturn:
    """Start turnserver on a free loopback port and wait until it answers STUN; `extra`
    config lines (e.g. "max-allocate-lifetime=6") are appended."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = tmp / "turnserver.conf"
    config.write_text(_config(port, secret, tmp, extra))
    proc = subprocess.Popen([TURNSERVER, "-c", str(config)], stdout=subprocess.DEVNULL,
                            stderr=(tmp / "turn.stderr").open("wb"))
    server = Coturn(proc, port, secret, tmp / "turn.log")
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers_stun(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_coturn(server)
            raise RuntimeError("turnserver did not start:\n" + server.log()
                               + (tmp / "turn.stderr").read_text(errors="replace"))
    return server


def stop_coturn(server: Coturn, timeout: float = 5.0) -> None:
    """SIGTERM, SIGKILL past `timeout`; safe to call twice."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 now (coturn listens on both)."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
