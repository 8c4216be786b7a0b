"""Node records: where each running node says it is, for the other nodes.

One hash per node, `node:ID` (engine/keys.py), with the address other nodes reach it
on (GOLIVE_NODE_ADDRESS), its pid and when it started. The record expires unless its
node refreshes it: a node that dies (kill -9, a lost machine) disappears from Redis
within `ttl` seconds without anyone cleaning up after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from engine import keys

# A record lives 15 s unless refreshed; its node refreshes every 5 s, so two missed
# beats in a row (a loaded machine, a short Redis blip) do not drop it.
NODE_TTL_S = 15
HEARTBEAT_S = 5.0


@dataclass(frozen=True)
class NodeRecord:
    """One node as the others see it."""

    node_id: str
    address: str
    pid: int
    started_at: float
    relay: str = ""  # host:port of its media relay (media/relay.py); "" when it has none


class Nodes:
    """Announce, refresh, read and withdraw node records."""

    def __init__(self, redis: Redis, *, ttl: int = NODE_TTL_S) -> None:
        self._redis = redis
        self.ttl = ttl

    async def announce(self, record: NodeRecord) -> None:
        """Write the record, expiring after `ttl` seconds unless refreshed."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.node(record.node_id), mapping={
                "address": record.address, "pid": record.pid,
                "started_at": repr(record.started_at), "relay": record.relay})
            pipe.expire(keys.node(record.node_id), self.ttl)
            await pipe.execute()

    async def refresh(self, node_id: str) -> bool:
        """Push the expiry back; False when the record is gone (it expired while Redis
        was unreachable, or someone deleted it): announce it again."""
        return bool(await self._redis.expire(keys.node(node_id), self.ttl))

    async def withdraw(self, node_id: str) -> None:
        """Remove the record (a node that stops in order)."""
        await self._redis.delete(keys.node(node_id))

    async def get(self, node_id: str) -> NodeRecord | None:
        fields = await self._redis.hgetall(keys.node(node_id))
        if not fields:
            return None
        return NodeRecord(node_id, str(fields["address"]), int(fields["pid"]),
                          float(fields["started_at"]), str(fields.get("relay", "")))
