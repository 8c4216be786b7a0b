"""The server's stderr is JSON lines only: its own lines, and libraries' warnings too."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tests.support.servers import REPO

PROGRAM = """
import logging, warnings
from signaling import logs
logs.configure("info")
warnings.warn("a library changed its mind", UserWarning)
warnings.warn("and again", DeprecationWarning)
logging.getLogger("golive").info("hello", extra={"fields": {"n": 1}})
"""


def test_library_warnings_become_json_lines_on_stderr() -> None:
    done = subprocess.run([sys.executable, "-W", "always", "-c", PROGRAM], cwd=REPO,
                          capture_output=True, text=True, timeout=30, check=True)
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["logger"] for line in lines] == ["py.warnings", "py.warnings", "golive"]
    assert "a library changed its mind" in lines[0]["msg"]
    assert lines[2]["n"] == 1


def test_asyncio_clients_take_the_asyncio_retry() -> None:
    # redis-py 8.2 warns (on stderr, before logging exists) for a synchronous Retry
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Redis.from_url("unix:///nonexistent.sock", retry=Retry(NoBackoff(), 0))
