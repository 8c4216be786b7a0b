"""Node records: one heartbeat per node, its identity, and the claim on a dead node.

One hash per node, `node:ID` (engine/keys.py), is everything the others know of it:

- `address` (GOLIVE_NODE_ADDRESS: where other nodes reach it), `pid`, `host` (the
  machine's name) and `started_at`: who holds the id;
- `instance`: a random nonce of this process. Only the process that wrote the record
  refreshes or deletes it (compare-and-set in Lua), so a second process with the same
  id cannot keep a record alive that is not its own;
- `beats`: incremented by every heartbeat, so a process waiting for the id sees whether
  its holder is alive;
- the TTL: NODE_TTL_S, pushed back every HEARTBEAT_S. The record exists while its node
  runs; a node killed with kill -9 is gone within NODE_TTL_S. A record without a TTL
  was not written by a node (a forged or hand-made one): it counts as dead.

The `nodes` set lists every node that announced itself; a member whose record is gone is
dead. The first live node to claim it (`node_reaping:ID`, SET NX with a TTL, in one script
that also checks that the record is still gone) does the takeover (signaling/node_failure.py)
and then releases the claim and drops the id from `nodes`; a claimer that dies mid-way lets
its claim expire (REAP_CLAIM_TTL_S) and another node does it again (every step is
idempotent).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from engine import keys

# A node beats every 2 s and its record lives 6 s: two missed beats in a row (a loaded
# machine, a short Redis blip) do not drop it, and a dead node is noticed within 6-8 s.
NODE_TTL_S = 6
HEARTBEAT_S = 2.0
# A claimer that dies mid-takeover frees the dead node for another claimer after this.
REAP_CLAIM_TTL_S = 10

# Printable, no spaces, no braces (Redis Cluster hash tags), no glob characters: a node id
# is part of key names and log lines. HOST:PORT, [::1]:80 and NODE/w3 all fit.
NODE_ID_MAX = 100
_NODE_ID = re.compile(r"[A-Za-z0-9._:/@\[\]-]+")


def check_node_id(node_id: str) -> str:
    """The id, or ValueError saying what is wrong with it."""
    if not isinstance(node_id, str) or not node_id:
        raise ValueError("a node id must not be empty")
    if len(node_id) > NODE_ID_MAX:
        raise ValueError(f"a node id is at most {NODE_ID_MAX} characters")
    if not _NODE_ID.fullmatch(node_id):
        raise ValueError(f"not a node id: {node_id!r} (letters, digits and . _ : / @ [ ] -)")
    return node_id


class NodeIdTaken(Exception):
    """Another running process holds this node id: this one must not start under it."""

    def __init__(self, node_id: str, holder: NodeRecord | None, why: str) -> None:
        self.node_id = node_id
        self.holder = holder
        if holder is not None:
            since = dt.datetime.fromtimestamp(holder.started_at, dt.UTC).isoformat(
                timespec="seconds")
            who = (f"pid {holder.pid} on {holder.host}, address {holder.address}, "
                   f"started {since}")
        else:
            who = "another process"
        super().__init__(f"node id {node_id!r} is held by a running node ({who}): {why}; "
                         "give this node another GOLIVE_NODE_ID")


@dataclass(frozen=True)
class NodeRecord:
    """One node as the others see it."""

    node_id: str
    address: str
    pid: int
    started_at: float
    host: str = ""
    instance: str = ""
    beats: int = 0
    relay: str = ""  # host:port of its media relay (media/relay.py); "" when it has none

    @classmethod
    def mine(cls, node_id: str, address: str) -> NodeRecord:
        """This process's record, with a fresh instance nonce."""
        return cls(check_node_id(node_id), address, os.getpid(), time.time(),
                   socket.gethostname(), secrets.token_hex(8))


def record_from_hash(node_id: str, fields: dict[str, str]) -> NodeRecord | None:
    """A record read from Redis; None when malformed (forged, or half of one)."""
    try:
        return NodeRecord(node_id, str(fields["address"]), int(fields["pid"]),
                          float(fields["started_at"]), str(fields.get("host", "")),
                          str(fields["instance"]), int(fields.get("beats", 0)),
                          str(fields.get("relay", "")))
    except (KeyError, TypeError, ValueError):
        return None


def pid_running(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (signal 0 probes it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it runs
        return True
    return True


def holder_is_dead_here(holder: NodeRecord, host: str) -> bool:
    """The record's process ran on this machine and is gone (our own crashed self, or a
    killed worker): its id may be taken at once instead of waiting for the TTL."""
    return bool(holder.host) and holder.host == host and not pid_running(holder.pid)


# KEYS: 1 node:ID, 2 nodes, 3 node_reaping:ID. ARGV: 1 id, 2 address, 3 pid, 4 started_at,
# 5 host, 6 instance, 7 ttl ms, 8 the instance we may replace ('' for none), 9 relay.
# A record of another instance stands unless it is the one named in ARGV[8] or has no
# instance at all (not a node's); a claim on the id (another node is taking over its
# last life) makes the start wait.
_ANNOUNCE = """
local held = redis.call('HGET', KEYS[1], 'instance')
if held and held ~= ARGV[6] and held ~= ARGV[8] then return {'held', held} end
local by = redis.call('GET', KEYS[3])
if by then return {'reaping', by} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'address', ARGV[2], 'pid', ARGV[3], 'started_at', ARGV[4],
           'host', ARGV[5], 'instance', ARGV[6], 'beats', 0, 'relay', ARGV[9])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('SADD', KEYS[2], ARGV[1])
return {'ok', ''}
"""

# KEYS: 1 node:ID, 2 nodes. ARGV: 1 id, 2 instance, 3 ttl ms. 1 beat; 0 not ours (gone).
_BEAT = """
if redis.call('HGET', KEYS[1], 'instance') ~= ARGV[2] then return 0 end
redis.call('HINCRBY', KEYS[1], 'beats', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

# KEYS: 1 node:ID, 2 nodes. ARGV: 1 id, 2 instance. Only our own record is withdrawn.
_WITHDRAW = """
if redis.call('HGET', KEYS[1], 'instance') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""

# KEYS: 1 node:DEAD, 2 nodes, 3 node_reaping:DEAD. ARGV: 1 dead id, 2 claimer, 3 ttl ms.
# 1: the caller owns the takeover (again, if it already did and was cut short).
_CLAIM = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return 0 end
if redis.call('PTTL', KEYS[1]) > 0 then return 0 end
local by = redis.call('GET', KEYS[3])
if by and by ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return 1
"""

# KEYS: 1 nodes, 2 node_reaping:DEAD, 3 node:DEAD. ARGV: 1 dead id, 2 claimer.
# The takeover is done: the dead node leaves `nodes` (and a record without a TTL goes).
_RELEASE = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
if redis.call('PTTL', KEYS[3]) == -1 then redis.call('DEL', KEYS[3]) end
return 1
"""


class Nodes:
    """Announce, beat, read and withdraw node records; find and claim dead nodes."""

    def __init__(self, redis: Redis, *, ttl: float = NODE_TTL_S,
                 period: float = HEARTBEAT_S) -> None:
        self._redis = redis
        self.ttl = ttl
        self.period = period
        self._announce = redis.register_script(_ANNOUNCE)
        self._beat = redis.register_script(_BEAT)
        self._withdraw = redis.register_script(_WITHDRAW)
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)

    @property
    def ttl_ms(self) -> int:
        return int(self.ttl * 1000)

    async def try_announce(self, record: NodeRecord, *, replacing: str = "") -> tuple[str, str]:
        """One attempt to write the record: ('ok', ''), ('held', instance) or
        ('reaping', claimer)."""
        status, detail = await self._announce(
            keys=[keys.node(record.node_id), keys.nodes(), keys.node_reaping(record.node_id)],
            args=[record.node_id, record.address, record.pid, repr(record.started_at),
                  record.host, record.instance, self.ttl_ms, replacing, record.relay])
        return str(status), str(detail)

    async def announce(self, record: NodeRecord, *, wait_s: float | None = None,
                       poll_s: float = 0.25) -> None:
        """Write the record, or NodeIdTaken when a running process holds the id.

        A holder whose process is gone from this machine (our crashed self, a killed
        worker) is replaced at once. Any other holder is watched for up to `wait_s`
        (default: the TTL and a beat): one that beats is alive (NodeIdTaken at once); one
        that does not expires and the id is ours. A node taking over this id's last life
        (a claim) is waited for too, at most REAP_CLAIM_TTL_S."""
        wait = self.ttl + self.period if wait_s is None else wait_s
        deadline = time.monotonic() + max(wait, REAP_CLAIM_TTL_S)
        watch_until = time.monotonic() + wait
        replacing = ""
        first_seen: tuple[str, int] | None = None
        while True:
            status, detail = await self.try_announce(record, replacing=replacing)
            if status == "ok":
                return
            now = time.monotonic()
            if status == "reaping":
                if now > deadline:
                    raise NodeIdTaken(record.node_id, None,
                                      f"node {detail!r} is still taking over its lives")
                await asyncio.sleep(poll_s)
                continue
            holder = await self.get(record.node_id)
            if holder is None:
                if await self._redis.exists(keys.node(record.node_id)):
                    replacing = detail  # a malformed record: not a node's
                continue  # else it expired under us: try again
            if holder.instance != detail:
                continue  # it changed under us: look again
            if holder_is_dead_here(holder, record.host) or \
                    await self._redis.pttl(keys.node(record.node_id)) == -1:
                replacing = holder.instance  # a dead process's, or not a node's
                continue
            seen = (holder.instance, holder.beats)
            if first_seen is None:
                first_seen = seen
            elif seen != first_seen:
                raise NodeIdTaken(record.node_id, holder, "it is beating")
            if now > watch_until:
                raise NodeIdTaken(record.node_id, holder,
                                  "its record did not expire in time")
            await asyncio.sleep(poll_s)

    async def beat(self, record: NodeRecord) -> bool:
        """Push the record's expiry back; False when it is not ours any more (it expired
        while Redis was unreachable or the loop stalled: announce it again)."""
        return bool(await self._beat(keys=[keys.node(record.node_id), keys.nodes()],
                                     args=[record.node_id, record.instance, self.ttl_ms]))

    async def withdraw(self, record: NodeRecord) -> bool:
        """Remove our record (a node that stops in order); another instance's stays."""
        return bool(await self._withdraw(keys=[keys.node(record.node_id), keys.nodes()],
                                         args=[record.node_id, record.instance]))

    async def get(self, node_id: str) -> NodeRecord | None:
        """The node's record; None when gone or malformed."""
        fields = await self._redis.hgetall(keys.node(node_id))
        return record_from_hash(node_id, {str(k): str(v) for k, v in fields.items()}) \
            if fields else None

    async def members(self) -> list[str]:
        """Every node id in `nodes`; ids that are not node ids (forged) are dropped."""
        found = []
        for node in await self._redis.smembers(keys.nodes()):
            try:
                found.append(check_node_id(str(node)))
            except ValueError:
                await self._redis.srem(keys.nodes(), node)
        return sorted(found)

    async def dead(self, *, exclude: str = "") -> list[str]:
        """Nodes in `nodes` with no live record (gone, or one with no TTL)."""
        nodes = [n for n in await self.members() if n != exclude]
        if not nodes:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.pttl(keys.node(node))
            ttls = await pipe.execute()
        return [node for node, ttl in zip(nodes, ttls, strict=True) if int(ttl) <= 0]

    async def alive(self, node_id: str) -> bool:
        return int(await self._redis.pttl(keys.node(node_id))) > 0

    async def claim(self, dead: str, claimer: str) -> bool:
        """Own the takeover of a dead node (exactly one live node gets True)."""
        return bool(await self._claim(
            keys=[keys.node(dead), keys.nodes(), keys.node_reaping(dead)],
            args=[dead, claimer, REAP_CLAIM_TTL_S * 1000]))

    async def release(self, dead: str, claimer: str) -> bool:
        """The takeover is done: the dead node leaves `nodes`."""
        return bool(await self._release(
            keys=[keys.nodes(), keys.node_reaping(dead), keys.node(dead)],
            args=[dead, claimer]))


__all__ = ["HEARTBEAT_S", "NODE_TTL_S", "REAP_CLAIM_TTL_S", "NodeIdTaken", "NodeRecord",
           "Nodes", "check_node_id", "holder_is_dead_here", "pid_running", "record_from_hash"]
