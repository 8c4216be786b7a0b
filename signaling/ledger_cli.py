"""`golive ledger audit`: prove the ledger from its journal (engine/audit.py).

It audits the Redis named by --redis-url / REDIS_URL, or else the embedded
one of --data-dir: the running server's if it answers, otherwise it starts
that data dir's redis-server for the audit and stops it again. Exit status 0
when every proof holds, 1 naming each mismatch, 2 when Redis is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from engine.audit import AuditReport, run_audit
from engine.catalog import load_catalog
from engine.errors import DomainError
from engine.key_migration import legacy_keys_left
from engine.ledger import Ledger
from engine.ledger_rules import LedgerRules
from signaling.embedded_redis import EmbeddedRedis, EmbeddedRedisError


def add_arguments(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ledger = commands.add_parser("ledger", help="the coin ledger: audit")
    sub = ledger.add_subparsers(dest="ledger_command", required=True)
    audit = sub.add_parser("audit", help="replay the journal and prove every balance")
    audit.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or None,
                       help="Redis to audit [env REDIS_URL]; unset: the data dir's embedded one")
    audit.add_argument("--data-dir", type=Path,
                       default=Path(os.environ.get("GOLIVE_DATA_DIR") or ".golive"),
                       help="data dir of the embedded Redis [env GOLIVE_DATA_DIR; .golive]")
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    audit.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_audit(args))


async def _answers(url: str) -> bool:
    probe = Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1)
    try:
        return bool(await probe.ping())
    except (RedisError, OSError):
        return False
    finally:
        await probe.aclose()


async def _audit(args: argparse.Namespace) -> int:
    embedded = None
    url = args.redis_url
    if not url:
        local = EmbeddedRedis(args.data_dir)
        url = local.url
        if not await _answers(url):
            if not (args.data_dir / "appendonlydir").exists() and \
                    not (args.data_dir / "appendonly.aof").exists():
                print(f"golive ledger audit: no Redis data under {args.data_dir}; "
                      "give --redis-url or --data-dir", file=sys.stderr)
                return 2
            embedded = local
            try:
                await embedded.start()
            except EmbeddedRedisError as exc:  # e.g. a golive owns the dir, its Redis down
                print(f"golive ledger audit: {exc}", file=sys.stderr)
                return 2
            url = embedded.url
    redis = Redis.from_url(url, decode_responses=True, retry=Retry(NoBackoff(), 0))
    try:
        old = await legacy_keys_left(redis)
        if old is not None:  # renaming here could pull the data from under a running node
            print(f"golive ledger audit: {url} holds keys named before the hash tags "
                  f"(e.g. {old!r}); start golive (this version) on it once to rename "
                  "them, then audit", file=sys.stderr)
            return 2
        # The audit reads the rate each gift recorded; the catalog and rules are not used.
        report = await run_audit(redis, Ledger(redis, load_catalog(), LedgerRules()))
    except (RedisError, OSError, DomainError) as exc:
        print(f"golive ledger audit: cannot read Redis at {url}: {exc}", file=sys.stderr)
        return 2
    finally:
        await redis.aclose()
        if embedded is not None:
            await embedded.stop()
    print(json.dumps(report.as_dict(), indent=2) if args.json else render(report))
    return 0 if report.ok else 1


def render(report: AuditReport) -> str:
    lines = [f"journal entries  {report.entries:>14,}", f"accounts         {report.accounts:>14,}"]
    lines += [f"{name.replace('_', ' '):<17}{value:>14,}" for name, value in report.totals.items()]
    if report.ok:
        lines.append("OK: every balance is the sum of its entries; every entry balances; "
                     "coins and diamonds are conserved; nothing is negative")
    else:
        lines.append(f"FAILED: {len(report.mismatches)} mismatch(es)")
        lines += [f"  {m}" for m in report.mismatches]
    return "\n".join(lines)
