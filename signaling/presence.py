"""Node presence: each node heartbeats in Redis, and the live ones take a dead node's
viewers out of the counts.

Every HEARTBEAT_S a node sets `node_alive:{id}` with a TTL of HEARTBEAT_TTL_S and is a
member of the `nodes` set. A node whose key expired (a kill -9, a lost machine) is dead:
the first live node to notice (each looks every HEARTBEAT_S) reaps it
(engine/lives.py `Lives.reap_node`: its share of each live's viewers leaves the totals and
the directory) and tells each touched live's room so the origin pushes the new count. A
dead node's viewers leave the counts within HEARTBEAT_TTL_S + HEARTBEAT_S (8 s).

A node reaps its own share when it starts (it was restarted under the same id: those
connections died with it) and when it stops cleanly (its sockets are gone).
The heartbeat's value is constant (the node's start time) and `nodes` is a plain set,
so a heartbeat changes nothing a snapshot of Redis would see but TTLs.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine import keys
from signaling.push_bus import VIEWERS_CHANGED, PushBus
from signaling.room_pushes import live_room
from signaling.services import Services
from signaling.tasks import OwnedTask

log = logging.getLogger("golive.presence")

HEARTBEAT_S = 2.0      # a node refreshes its key this often...
HEARTBEAT_TTL_S = 6    # ...and is dead when it missed three


class NodePresence:
    """The node's heartbeat and the reaper of dead nodes: one owned task."""

    def __init__(self, redis: Redis, services: Services, node_id: str, bus: PushBus, *,
                 period_s: float = HEARTBEAT_S, ttl_s: int = HEARTBEAT_TTL_S) -> None:
        self.redis = redis
        self.services = services
        self.node_id = node_id
        self.bus = bus
        self.period_s = period_s
        self.ttl_s = ttl_s
        self.started_at = repr(time.time())
        self._runner = OwnedTask(self._run, "node-presence")

    async def open(self) -> None:
        """Take back this node's stale share, heartbeat once, start the task."""
        await self._reap(self.node_id)
        await self.beat()
        self._runner.start()

    async def close(self) -> None:
        """Stop the task; leave the cluster (key deleted, share reaped); idempotent."""
        if not self._runner.running:
            return
        await self._runner.stop()
        try:
            async with asyncio.timeout(2):
                await self.redis.delete(keys.node_alive(self.node_id))
                await self.redis.srem(keys.nodes(), self.node_id)
                await self._reap(self.node_id)
        except (RedisError, OSError, TimeoutError):
            log.warning("leaving the cluster cleanly failed; the others reap this node")

    async def beat(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.node_alive(self.node_id), self.started_at, ex=self.ttl_s)
            pipe.sadd(keys.nodes(), self.node_id)
            await pipe.execute()

    async def dead_nodes(self) -> list[str]:
        """Nodes in `nodes` whose heartbeat expired."""
        nodes = sorted(str(n) for n in await self.redis.smembers(keys.nodes())
                       if n != self.node_id)
        if not nodes:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.exists(keys.node_alive(node))
            alive = await pipe.execute()
        return [node for node, up in zip(nodes, alive, strict=True) if not up]

    async def reap_dead(self) -> list[str]:
        """Reap every dead node; the ids reaped."""
        dead = await self.dead_nodes()
        for node in dead:
            touched = await self._reap(node)
            await self.redis.srem(keys.nodes(), node)
            log.warning("node gone; its viewers left the counts",
                        extra={"fields": {"node": node, "lives": len(touched)}})
        return dead

    async def _reap(self, node: str) -> list[str]:
        touched = await self.services.lives.reap_node(node)
        for live_id in touched:
            await self.bus.control(live_room(live_id), VIEWERS_CHANGED, live_id)
        return touched

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            try:
                await self.beat()
                await self.reap_dead()
            except (RedisError, OSError) as exc:
                log.warning("heartbeat failed", extra={"fields": {"error": type(exc).__name__}})
            except Exception:
                log.exception("heartbeat failed")


__all__ = ["HEARTBEAT_S", "HEARTBEAT_TTL_S", "NodePresence"]
