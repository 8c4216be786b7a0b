"""The server does not import the load generators: `golive bench` is a plugin command that
the bench declares (pyproject.toml, entry point group `golive.commands`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _imported_after(code: str) -> list[str]:
    probe = code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout.split()


def test_the_server_modules_do_not_import_the_bench() -> None:
    loaded = _imported_after("import signaling.cli, signaling.app")
    assert "signaling.cli" in loaded and "signaling.app" in loaded
    assert [m for m in loaded if m == "bench" or m.startswith("bench.")] == []


def test_golive_serve_builds_its_parser_without_the_bench() -> None:
    loaded = _imported_after("from signaling.cli import build_parser\n"
                             "build_parser('serve').parse_args(['serve'])")
    assert [m for m in loaded if m == "bench" or m.startswith("bench.")] == []


def test_the_bench_declares_its_golive_command() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    from signaling.cli import COMMANDS_GROUP

    declared = project["project"]["entry-points"][COMMANDS_GROUP]
    assert declared == {"bench": "bench.cli:add_arguments",
                        "chaos": "bench.chaos.cli:add_arguments"}
    parser = argparse.ArgumentParser(prog="golive")
    commands = parser.add_subparsers(dest="command", required=True)
    for entry in ("bench", "chaos"):
        module, _, name = declared[entry].partition(":")
        getattr(__import__(module, fromlist=[name]), name)(commands)
    args = parser.parse_args(["bench", "ledger", "--ops", "10"])
    assert args.bench_mode == "ledger" and callable(args.run)
    args = parser.parse_args(["chaos", "--seconds", "5", "--faults", "redis_pause"])
    assert args.command == "chaos" and args.faults == ("redis_pause",) and callable(args.run)
