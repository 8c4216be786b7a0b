"""The embedded Redis's fsync policy is a setting (GOLIVE_REDIS_FSYNC): everysec by
default, always when an acknowledged gift must survive a crash of the machine too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis

from signaling.embedded_redis import persistence_args, server_args, socket_path
from tests.support.servers import start_server, stop_or_kill


def test_the_policy_reaches_redis_server_arguments() -> None:
    args = server_args(Path("/d"), Path("/d/redis.sock"), "always")
    assert args[args.index("--appendfsync") + 1] == "always"
    assert "--appendfsync" in persistence_args() and "everysec" in persistence_args()
    with pytest.raises(ValueError):
        persistence_args("no")


def test_a_bad_policy_stops_the_start(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "signaling.cli", "serve", "--workers", "1",
                           "--data-dir", str(tmp_path), "--redis-fsync", "sometimes"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not an fsync policy" in done.stderr


@pytest.mark.parametrize("policy", ["always", None])
def test_golive_serve_runs_its_redis_with_the_policy(tmp_path: Path, policy: str | None) -> None:
    env = {"GOLIVE_REDIS_FSYNC": policy} if policy else {}
    server = start_server(tmp_path, redis_url=None, env=env)
    try:
        client = Redis(unix_socket_path=str(socket_path((tmp_path / "data").resolve())),
                       decode_responses=True)
        try:
            assert client.config_get("appendfsync") == {"appendfsync": policy or "everysec"}
            assert client.config_get("appendonly") == {"appendonly": "yes"}
        finally:
            client.close()
    finally:
        stop_or_kill(server)
