"""golive's keys on a real Redis Cluster node, and their move from the old names.

A redis-server started with `--cluster-enabled yes` and given all 16384 slots (CLUSTER
ADDSLOTS) is a one-node cluster: it refuses with CROSSSLOT every script, MULTI and
multi-key command whose keys are in more than one slot, as a real cluster does. The
engine's flows run against it through a plain redis.asyncio client. A second test runs
the same flows on a plain redis-server under MONITOR and names each script, transaction
or command whose keys span slots (slots from CLUSTER KEYSLOT of the cluster node).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import importlib
import os
import pkgutil
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

import engine
from engine import keys
from engine.audit import run_audit
from engine.key_migration import migrate_keys
from engine.ledger import GiftRequest
from engine.reports import Kind
from signaling.app import create_app
from signaling.config import Settings
from signaling.embedded_redis import redis_server_binary
from signaling.services import Services
from tests.support.peers import SocketPeer, go_live, open_tab
from tests.support.poll import poll
from tests.support.servers import REPO, TEST_SECRET
from tests.support.state import snapshot

TODAY = dt.date(2026, 6, 15)


def _tcp_port() -> int:
    """A free port whose cluster bus port (+10000) is a valid port too."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 < 65536:
            return port
    raise RuntimeError("no port below 55536 came free")


def _start_redis(*extra: str) -> tuple[subprocess.Popen[bytes], Path, int]:
    folder = Path(tempfile.mkdtemp(prefix="golive-test-cluster-"))
    port = _tcp_port()
    sock = folder / "redis.sock"
    proc = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
         "--unixsocket", str(sock), "--save", "", "--appendonly", "no",
         "--dir", str(folder), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("test redis-server did not start")
        time.sleep(0.02)
    return proc, sock, port


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    """A one-node Redis Cluster that serves all 16384 slots."""
    proc, sock, _ = _start_redis("--cluster-enabled", "yes",
                                 "--cluster-config-file", "nodes.conf")
    try:
        out = subprocess.run(
            [redis_server_binary().replace("redis-server", "redis-cli"), "-s", str(sock),
             "CLUSTER", "ADDSLOTS", *map(str, range(16384))],
            capture_output=True, text=True, timeout=10, check=True)
        assert out.stdout.strip() == "OK", out
        deadline = time.monotonic() + 10
        while "cluster_state:ok" not in subprocess.run(
                [redis_server_binary().replace("redis-server", "redis-cli"), "-s", str(sock),
                 "CLUSTER", "INFO"], capture_output=True, text=True, timeout=10).stdout:
            assert time.monotonic() < deadline, "the one-node cluster never became ok"
            time.sleep(0.05)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def cluster(cluster_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(cluster_url, decode_responses=True)
    await client.flushall()
    await client.config_resetstat()
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
def plain_tcp() -> Iterator[tuple[str, int]]:
    """A plain redis-server on TCP: MONITOR tells its TCP clients apart (by port), which
    it cannot do for unix-socket clients; a transaction is grouped by its client."""
    proc, sock, port = _start_redis()
    try:
        yield f"unix://{sock}", port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def crossslot_errors(redis: Redis) -> int:
    stats = await redis.info("errorstats")
    return int(stats.get("errorstat_CROSSSLOT", {}).get("count", 0))


# --- the flows ---------------------------------------------------------------------

async def golive_flows(redis: Redis, data_dir: Path) -> None:
    """Accounts, sessions, follow and block, live alerts and the go-live fan-out, nudges,
    lives start/join/end, chat and its moderation, DMs, notifications, reports, the gift
    room, and the ledger (buy, gift, a batch of gifts, cash-out and its settlement,
    history, audit), each through the engine."""
    s = Services.build(redis, Settings(
        redis_url="unused", secret=TEST_SECRET, data_dir=data_dir, node_id="node-a",
        cashout_min=1, password_hash_concurrency=2))
    accounts, graph, lives, chat, ledger = s.accounts, s.graph, s.lives, s.chat, s.ledger
    people = {"ann": "1990-05-05", "cat": "1992-02-29", "ben": "1988-01-01"}
    users = {name: await accounts.register(username=name, display_name=name.title(),
                                           password="password-1", birthdate=born,
                                           today=TODAY)
             for name, born in people.items()}
    ann, cat, ben = users["ann"], users["cat"], users["ben"]
    assert (await accounts.authenticate("ann", "password-1")).id == ann.id
    assert (await accounts.find("CAT")).id == cat.id
    assert set(await accounts.get_many([ann.id, cat.id])) == {ann.id, cat.id}
    await accounts.update_profile(ann.id, bio="hi")
    token, _ = await s.sessions.issue(ann.id)
    session = await s.sessions.verify(token)
    await s.sessions.revoke(session.session_id)

    # the graph: follows (two users' sets), a block and its undoing
    assert await graph.follow(ann.id, cat.id)
    assert await graph.follow(ben.id, cat.id)
    assert await graph.follow(cat.id, ann.id)
    assert await graph.are_friends(ann.id, cat.id)
    await graph.block(ben.id, ann.id)
    assert (await graph.relation(ann.id, ben.id)).blocked_by
    assert await graph.unblock(ben.id, ann.id)
    assert await graph.unfollow(ben.id, cat.id)
    assert await graph.follow(ben.id, cat.id)
    assert (await graph.counts(cat.id))["followers"] == 2
    assert await graph.friends(ann.id) == [cat.id]

    # alerts, a nudge, then the live: the fan-out job tells both once
    relation = await graph.relation(ann.id, cat.id)
    await s.live_alerts.set(ann.id, cat.id, relation, True)
    assert await s.live_alerts.count(cat.id) == 1
    await s.nudges.update_settings(cat.id, allow=True, dm=True)
    await s.nudges.send(ben, cat.id)
    await s.messages.post_nudge(ben, cat.id, today=TODAY)
    assert await s.nudges.waiting(cat.id) == 1
    live = await lives.start(cat.id, "on air")
    await s.live_alerts.begin(live, cat)
    assert await s.live_alerts.claim() == live.live_id
    while True:
        step = await s.live_alerts.step(live.live_id)
        if step is None or step.done:
            break
    await s.live_alerts.finish(live.live_id)
    assert await s.notifications.unread(ann.id) >= 1
    assert await lives.viewer_joined(live, ann.id) == 1
    assert await lives.viewer_joined(live, ben.id) == 2
    assert await s.nudges.attended(live, ben.id)
    assert [entry[0].live_id for entry in await lives.directory()] == [live.live_id]

    # chat and its moderation
    await chat.update_settings(cat.id, slow_mode_s=0, filter_words=["spam"])
    await chat.joined(live, ann)
    line = await chat.send(live, ann, "hello")
    await chat.send(live, ben, "hi ann")
    assert len((await chat.read(live.live_id)).items) >= 3
    await chat.read_many({live.live_id: "0-0"}, 10)
    await chat.delete(live, cat.id, line.id)
    await chat.mute(cat.id, ben.id, 60)
    assert await chat.unmute(cat.id, ben.id)
    assert await chat.ban(cat.id, ben.id)
    assert await chat.unban(cat.id, ben.id)

    # direct messages: a request, its acceptance, a reply, read marks, a delete
    conv = (await s.messages.send(ben, ann.id, "hello ann", today=TODAY)).conversation_id
    if (await s.messages.conversations(ann.id, requests=True))[0]:
        await s.messages.accept(ann.id, conv)
    await s.messages.send(ann, ben.id, "hi ben", today=TODAY)
    await s.messages.send(ann, cat.id, "hello cat", today=TODAY)
    page = await s.messages.history(ann.id, conv)
    await s.messages.conversations(ann.id)
    await s.messages.unread(ben.id)
    await s.messages.mark_read(ben.id, conv, page.messages[-1].id)
    await s.messages.delete(ben.id, conv)

    # notifications and a report
    added = await s.notifications.add(ann.id, "gift", {"actors": [{"id": cat.id}]},
                                      group="gift:x")
    await s.notifications.add(ann.id, "gift", {"actors": [{"id": ben.id}]}, group="gift:x")
    await s.notifications.page(ann.id)
    assert added is not None
    await s.notifications.mark_read(ann.id, added.notification.id)
    await s.notifications.mark_all_read(ann.id)
    await s.reports.create(ann.id, Kind.USER, ben.id, "spam")

    # the ledger: buy, a gift, a batch of gifts, the gift room, a cash-out paid
    await ledger.credit_purchase(payment_id="payment-1", provider="test", user_id=ann.id,
                                 coins=5000)
    await ledger.credit_purchase(payment_id="payment-2", provider="test", user_id=ben.id,
                                 coins=5000)
    receipt = await ledger.send_gift(transfer_id="transfer-1", sender_id=ann.id, creator_id=cat.id,
                                     live_id=live.live_id, gift_id="rose", count=3,
                                     today=TODAY)
    assert (await ledger.send_gift(transfer_id="transfer-1", sender_id=ann.id, creator_id=cat.id,
                                   live_id=live.live_id, gift_id="rose", count=3,
                                   today=TODAY)).replayed
    batch = await ledger.send_gifts(
        [GiftRequest(transfer_id=f"batch-00{i}", sender_id=(ann.id, ben.id)[i % 2],
                     creator_id=cat.id, live_id=live.live_id, gift_id="rose", count=1)
         for i in range(6)], today=TODAY)
    assert all(not isinstance(r, Exception) for r in batch), batch
    await s.gift_room.record(live_id=live.live_id, transfer_id="transfer-1", sender_id=ann.id,
                             gift_id="rose", count=3, coins=receipt.coins,
                             diamonds=receipt.diamonds)
    assert (await s.gift_room.board(live.live_id)).top
    payout = await ledger.request_cashout(request_id="cashout-1", user_id=cat.id, diamonds=1,
                                          today=TODAY)
    await ledger.settle_cashout(payout_id=payout.payout_id, paid=True)
    assert await ledger.payouts(cat.id)
    assert (await ledger.history(ann.id))
    report = await run_audit(redis, ledger)
    assert report.ok, [str(m) for m in report.mismatches]

    # the end of the live; a restarted node's recovery; a dead node's share reaped
    assert await lives.viewer_left(live, ben.id) == 1
    assert await lives.end(live)
    await lives.recover_node()
    await lives.reap_node("node-b")
    migration = await migrate_keys(redis)  # a fresh install: nothing to move, version set
    assert (migration.moved, migration.conflicts) == (0, [])
    assert (await migrate_keys(redis)).current


# --- the cluster node --------------------------------------------------------------

async def test_the_node_refuses_keys_in_two_slots(cluster: Redis) -> None:
    """The fixture is a real cluster: a command, a script and a MULTI spanning two slots
    are refused, and counted in errorstats (what the flows test reads)."""
    with pytest.raises(ResponseError, match="hash to the same slot"):
        await cluster.mget("a", "b")
    with pytest.raises(ResponseError, match="hash to the same slot"):
        await cluster.eval("return 1", 2, "a", "b")
    with pytest.raises(ResponseError):
        async with cluster.pipeline(transaction=True) as pipe:
            await pipe.set("a", 1).set("b", 1).execute()
    assert await crossslot_errors(cluster) >= 2
    assert await cluster.mget(keys.user("a"), keys.wallet("a")) == [None, None]


async def test_every_flow_runs_on_a_cluster_node_without_crossslot(
        cluster: Redis, tmp_path: Path) -> None:
    await golive_flows(cluster, tmp_path)
    assert await crossslot_errors(cluster) == 0


class DmTab(SocketPeer):
    PUSHES = ("dm:message", "notification:new")


async def test_a_server_on_a_cluster_node_serves_sockets_without_crossslot(
        cluster: Redis, cluster_url: str, tmp_path: Path, aiohttp_client: Any,
        closers: list[Any]) -> None:
    """The signaling side too (sign-up, presence, the push bus, follow, a DM pushed
    through Redis Pub/Sub, a live started, joined, chatted in and ended) on the node."""
    client = await aiohttp_client(create_app(Settings(
        redis_url=cluster_url, secret=TEST_SECRET, data_dir=tmp_path / "data",
        event_rate=200.0, event_burst=200, auth_rate=100.0, auth_burst=200)))
    ann = await open_tab(client, "ann", closers, peer=DmTab)
    ben = await open_tab(client, "ben", closers, peer=DmTab)
    assert (await ann.call("user:follow", {"user_id": ben.user.id}))["ok"]
    assert (await ben.call("user:follow", {"user_id": ann.user.id}))["ok"]
    assert (await ann.call("dm:send", {"to": ben.user.id, "text": "hi"}))["ok"]
    await poll(lambda: ben.got("dm:message"), timeout=10)
    assert (await ben.call("dm:list", {}))["conversations"]
    on_air = await go_live(ann, closers, "on air", size=(160, 96), fps=15)
    assert (await ben.call("room:join", {"user_id": ann.user.id, "media": False}))["ok"]
    assert (await ben.call("chat:send", {"live_id": on_air.live_id, "text": "hello"}))["ok"]
    assert (await ann.call("live:end", {}))["ok"]
    await on_air.creator.close()
    assert await crossslot_errors(cluster) == 0


# --- naming what spans slots ---------------------------------------------------------

def _unrepr(text: str) -> str:
    """Undo redis's sdscatrepr quoting of one MONITOR argument."""
    simple = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", '"': '"', "\\": "\\"}
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "x":
                out.append(chr(int(text[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append(simple.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


_MONITOR_LINE = re.compile(r'^\+?[\d.]+ \[\d+ ([^\]]+)\] (.*)$')
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


def parse_monitor_line(line: str) -> tuple[str, list[str]] | None:
    """(client, arguments) of one MONITOR line, None for anything else."""
    m = _MONITOR_LINE.match(line)
    if not m:
        return None
    return m.group(1), [_unrepr(a) for a in _ARG.findall(m.group(2))]


def test_monitor_lines_parse() -> None:
    line = r'+1.5 [0 127.0.0.1:5000] "EVALSHA" "ab" "1" "{core}x" "a \"q\" \\ \x00\n"'
    assert parse_monitor_line(line) == (
        "127.0.0.1:5000", ["EVALSHA", "ab", "1", "{core}x", 'a "q" \\ \x00\n'])
    assert parse_monitor_line("+OK") is None


def script_names() -> dict[str, str]:
    """sha1 -> module.NAME of every Lua source kept in a module constant of engine/."""
    names: dict[str, str] = {}
    for info in pkgutil.iter_modules(engine.__path__):
        module = importlib.import_module(f"engine.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, str) and "redis.call" in value:
                names[hashlib.sha1(value.encode()).hexdigest()] = f"engine.{info.name}.{name}"
    return names


async def recorded(port: int, run: Any) -> list[tuple[str, list[str]]]:
    """Every command clients sent while `run()` ran, as MONITOR saw it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
    writer.write(b"MONITOR\r\n")
    await writer.drain()
    assert (await reader.readline()).strip() == b"+OK"
    try:
        await run()
        marker = Redis(host="127.0.0.1", port=port)
        await marker.echo(END)
        await marker.aclose()
        lines: list[tuple[str, list[str]]] = []
        while True:
            line = await asyncio.wait_for(reader.readline(), 10)
            parsed = parse_monitor_line(line.decode(errors="replace").rstrip("\r\n"))
            if parsed is None:
                continue
            if [a.upper() for a in parsed[1]] == ["ECHO", END.upper()]:
                return lines
            lines.append(parsed)
    finally:
        writer.close()
        await writer.wait_closed()


END = "golive-monitor-end"


def what_spans_slots(commands: list[tuple[str, list[str]]], key_of: dict[int, list[str]],
                     slot_of: dict[str, int], names: dict[str, str]) -> list[str]:
    """A line per script, transaction or command whose keys are in more than one slot:
    its name and each key with its slot. key_of: command index -> its keys."""
    problems: list[str] = []
    open_multi: dict[str, list[int]] = {}

    def check(label: str, indexes: list[int]) -> None:
        found = {k for i in indexes for k in key_of.get(i, [])}
        line = f"{label}: " + ", ".join(
            f"{k} (slot {slot_of[k]})" for k in sorted(found, key=slot_of.get))
        if len({slot_of[k] for k in found}) > 1 and not any(
                p.startswith(f"{label}: ") for p in problems):  # once per script
            problems.append(line)

    for i, (client, args) in enumerate(commands):
        if client == "lua" or not args:
            continue  # a script's own calls: its declared keys are checked as the script
        name = args[0].upper()
        if name == "MULTI":
            open_multi[client] = []
            continue
        if name == "EXEC":
            queued = open_multi.pop(client, [])
            check("MULTI " + " ".join(commands[j][1][0].upper() for j in queued), queued)
            continue
        if client in open_multi:
            open_multi[client].append(i)
            continue
        if name in ("EVALSHA", "EVAL"):
            sha = args[1] if name == "EVALSHA" else hashlib.sha1(args[1].encode()).hexdigest()
            check(f"script {names.get(sha, sha)}", [i])
        else:
            check(f"command {name}", [i])
    return problems


async def test_every_script_and_transaction_keeps_its_keys_in_one_slot(
        plain_tcp: tuple[str, int], cluster: Redis, tmp_path: Path) -> None:
    _, port = plain_tcp
    plain = Redis(host="127.0.0.1", port=port, decode_responses=True)  # MONITOR: by port
    try:
        await plain.flushall()
        commands = await recorded(port, lambda: golive_flows(plain, tmp_path))
        key_of: dict[int, list[str]] = {}
        for i, (client, args) in enumerate(commands):
            if client == "lua" or not args or args[0].upper() in ("MULTI", "EXEC"):
                continue
            try:
                key_of[i] = list(await plain.command_getkeys(*args))
            except ResponseError:
                pass  # a command without keys (PING, INFO, SCRIPT LOAD ...)
    finally:
        await plain.aclose()
    scripts = {a[0].upper() for _, a in commands if a}
    assert {"EVALSHA", "MULTI"} <= scripts, scripts  # the record holds what it checks
    every_key = {k for ks in key_of.values() for k in ks}
    slot_of = {k: int(await cluster.execute_command("CLUSTER", "KEYSLOT", k))
               for k in every_key}
    problems = what_spans_slots(commands, key_of, slot_of, script_names())
    assert not problems, "keys in more than one slot:\n" + "\n".join(problems)


# --- every key name ------------------------------------------------------------------

def current_names() -> list[str]:
    """One name from every key function of engine/keys.py (ids 'A', 'B', 'C')."""
    names = []
    for name, fn in vars(keys).items():
        if (callable(fn) and getattr(fn, "__module__", "") == keys.__name__
                and not name.startswith("_") and name not in (
                    "legacy_to_current", "key_version", "none")):
            argc = fn.__code__.co_argcount
            names.append(fn(*("ABC"[:argc])))
    return names


def legacy_name(current: str) -> str:
    """What keys version 1 called a key (the test's inverse of legacy_to_current)."""
    for tag in (keys.CORE, keys.DM):
        if current.startswith(tag):
            return current[len(tag):]
    return re.sub(r"\{([^}]*)\}", r"\1", current, count=1)


# Families made after keys version 2 (webhooks, replays) were born with their tag: no
# Redis ever held them under an older name, so there is nothing to map.
BORN_TAGGED = (keys.WH, keys.REPLAYS)


def test_every_tagged_key_has_its_old_name_mapped() -> None:
    moved = [n for n in current_names() if "{" in n and not n.startswith(BORN_TAGGED)]
    assert len(moved) >= 50
    for current in moved:
        assert keys.legacy_to_current(legacy_name(current)) == current, current
    for untagged in (keys.session("A"), keys.reports(), keys.dm_settings("A"),
                     keys.report_rate("A")):
        assert "{" not in untagged and keys.legacy_to_current(untagged) is None
    assert keys.legacy_to_current("something:else") is None
    for current in moved:  # current names stay
        assert keys.legacy_to_current(current) is None, current


# --- the move from the old names -------------------------------------------------------

async def legacy_copy(redis: Redis, redis_url: str) -> dict[bytes, bytes]:
    """Rename every key to its version-1 name (as an install from before the tags had
    it) and forget the version; every key's DUMP as it was."""
    before = await snapshot(redis_url, skip=(keys.key_version(),))
    for name in await redis.keys("*"):
        old = legacy_name(name)
        if old != name:
            await redis.rename(name, old)
    await redis.delete(keys.key_version())
    assert not any("{" in name for name in await redis.keys("*"))
    return before


async def test_old_names_move_once_and_nothing_is_lost(
        redis: Redis, redis_url: str, tmp_path: Path) -> None:
    await golive_flows(redis, tmp_path)
    before = await legacy_copy(redis, redis_url)
    # two workers starting at once: each key moves once
    first, second = await asyncio.gather(migrate_keys(redis), migrate_keys(redis))
    assert first.moved + second.moved == sum(1 for name in before if b"{" in name) > 50
    assert not first.conflicts and not second.conflicts
    assert await snapshot(redis_url, skip=(keys.key_version(),)) == before
    assert await redis.get(keys.key_version()) == keys.VERSION
    again = await migrate_keys(redis)
    assert again.current and again.moved == 0
    s = Services.build(redis, Settings(redis_url=redis_url, secret=TEST_SECRET,
                                       data_dir=tmp_path, node_id="node-a"))
    report = await run_audit(redis, s.ledger)
    assert report.ok and report.entries > 0, [str(m) for m in report.mismatches]


async def test_an_old_name_whose_new_name_exists_is_kept_and_reported(redis: Redis) -> None:
    await redis.hset("user:A", "bio", "old")
    await redis.hset(keys.user("A"), "bio", "new")
    await redis.hset("wallet:A", "coins", 5)
    result = await migrate_keys(redis)
    assert result.moved == 1 and result.conflicts == ["user:A"]
    assert await redis.hget("user:A", "bio") == "old"  # never overwritten, never dropped
    assert await redis.hget(keys.user("A"), "bio") == "new"
    assert await redis.hget(keys.wallet("A"), "coins") == "5"
    assert await redis.get(keys.key_version()) is None  # so the next start says it again
    await redis.delete("user:A")
    assert (await migrate_keys(redis)).conflicts == []
    assert await redis.get(keys.key_version()) == keys.VERSION


async def test_a_server_started_on_old_names_serves_the_old_data(
        redis: Redis, redis_url: str, tmp_path: Path, aiohttp_client: Any) -> None:
    s = Services.build(redis, Settings(redis_url=redis_url, secret=TEST_SECRET,
                                       data_dir=tmp_path, node_id="node-a"))
    ann = await s.accounts.register(username="ann", display_name="Ann",
                                    password="password-1", birthdate="1990-05-05",
                                    today=TODAY)
    await s.ledger.credit_purchase(payment_id="payment-9", provider="test", user_id=ann.id,
                                   coins=70)
    await legacy_copy(redis, redis_url)
    client = await aiohttp_client(create_app(Settings(
        redis_url=redis_url, secret=TEST_SECRET, data_dir=tmp_path / "data")))
    resp = await client.post("/api/signin", json={"username": "ann", "password": "password-1"})
    assert resp.status == 200, await resp.text()
    assert (await s.ledger.balances(ann.id)).coins == 70
    assert await redis.exists(f"user:{ann.id}") == 0


async def test_the_audit_refuses_old_names_and_moves_nothing(
        redis: Redis, redis_url: str, tmp_path: Path) -> None:
    """`golive ledger audit` on a Redis an old golive may still be serving: it says what
    to do instead of renaming keys under that node; after a start's move it passes."""
    s = Services.build(redis, Settings(redis_url=redis_url, secret=TEST_SECRET,
                                       data_dir=tmp_path, node_id="node-a"))
    ann = await s.accounts.register(username="ann", display_name="Ann",
                                    password="password-1", birthdate="1990-05-05",
                                    today=TODAY)
    await s.ledger.credit_purchase(payment_id="payment-7", provider="test", user_id=ann.id,
                                   coins=70)
    await legacy_copy(redis, redis_url)
    old = await snapshot(redis_url)
    env = {**os.environ, "REDIS_URL": redis_url}
    audit = [sys.executable, "-m", "signaling.cli", "ledger", "audit"]
    refused = await asyncio.to_thread(subprocess.run, audit, capture_output=True, text=True,
                                      env=env, cwd=REPO, timeout=60)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "named before the hash tags" in refused.stderr
    assert await snapshot(redis_url) == old
    assert (await migrate_keys(redis)).moved > 0
    done = await asyncio.to_thread(subprocess.run, audit, capture_output=True, text=True,
                                   env=env, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
