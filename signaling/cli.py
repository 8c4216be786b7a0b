"""The `golive` command: `golive serve` runs the server; `golive ledger audit` proves the ledger;
`golive whip` publishes over WHIP and `golive whep` plays over WHEP (signaling/whip_cli.py).

Other packages add commands without the server importing them: a distribution declares an
entry point in the `golive.commands` group whose name is the command and whose object
takes argparse's subparsers (the bench: `bench = "bench.cli:add_arguments"` in
pyproject.toml). They are loaded only when the command line may name one (not for
`golive serve`), never at import.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from importlib.metadata import entry_points

from aiohttp import web

from signaling import ledger_cli, logs, whip_cli
from signaling.broadcast import add_arguments as broadcast_args
from signaling.config import Settings, add_arguments, settings_from_args

log = logging.getLogger("golive")

COMMANDS_GROUP = "golive.commands"


def _serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    logs.configure(settings.log_level)
    settings.token_secret()  # fail before binding when production lacks a secret
    settings.client_ice()  # and when TURN is half-configured (URLs without the secret)
    _check_ledger_settings(settings)
    if settings.worker_count() > 1:
        from signaling.workers import supervise

        return supervise(settings)
    return run_node(settings)


def run_node(settings: Settings, *, reuse_port: bool = False,
             on_ready: Callable[[], None] | None = None) -> int:
    """Serve one node in this process until SIGINT/SIGTERM: `golive serve --workers 1`,
    and each worker of signaling/workers.py (reuse_port: the port is shared; `on_ready`
    once Redis and every feature are open, just before the port is bound)."""
    from engine.nodes import NodeIdTaken
    from signaling.app import create_app, fanout_path
    from signaling.embedded_redis import EmbeddedRedisError

    app = create_app(settings)
    if on_ready is not None:
        async def ready(_app: web.Application) -> None:
            on_ready()
        app.on_startup.append(ready)  # after the cleanup contexts: the server is open
    log.info("golive serving", extra={"fields": {
        "url": f"http://{settings.host}:{settings.port}", "node": settings.node_name(),
        "redis": "embedded" if not settings.redis_url else "external",
        "fanout": fanout_path(settings).name, "fanout_why": fanout_path(settings).reason,
        # the URLs only: the TURN secret is never logged
        "turn": settings.client_ice().turn_urls or "off",
        "ice_transport_policy": settings.ice_transport_policy}})
    # run_app handles SIGINT and SIGTERM: stop accepting, run on_shutdown
    # (sockets closed), then the cleanup contexts in reverse.
    try:
        web.run_app(app, host=settings.host, port=settings.port,
                    shutdown_timeout=settings.shutdown_timeout, print=None,
                    access_log=None, handle_signals=True, reuse_port=reuse_port or None)
    except (EmbeddedRedisError, NodeIdTaken) as exc:  # the data dir or node id is taken
        log.error("golive cannot start", extra={"fields": {"error": str(exc)}})
        return 1
    log.info("golive stopped", extra={"fields": {"node": settings.node_name()}})
    return 0


def _check_ledger_settings(settings: Settings) -> None:
    """A bad gift catalog or money rule stops the start with its reason, before binding."""
    from engine.catalog import load_catalog
    from signaling.services import ledger_rules

    try:
        load_catalog(settings.gift_catalog)
        ledger_rules(settings)
    except ValueError as exc:
        raise SystemExit(f"golive: {exc}") from None


def _broadcast(args: argparse.Namespace) -> int:
    from signaling.broadcast import run

    logs.configure("info")
    return run(args)


BUILT_IN = ("serve", "broadcast", "ledger", "whip", "whep")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """golive's parser; the plugin commands too unless `command` is a built-in one."""
    parser = argparse.ArgumentParser(prog="golive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    add_arguments(serve)
    serve.set_defaults(run=_serve)
    broadcast = commands.add_parser(
        "broadcast", help="go live headless: a test pattern or a file, over WebRTC")
    broadcast_args(broadcast)
    broadcast.set_defaults(run=_broadcast)
    ledger_cli.add_arguments(commands)
    whip_cli.add_arguments(commands)
    if command not in BUILT_IN:  # `golive serve` never imports a plugin
        for plugin in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
            plugin.load()(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
