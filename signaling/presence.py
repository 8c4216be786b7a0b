"""Node presence: this node's one record and heartbeat in Redis (engine/nodes.py).

On open the node announces its record `node:{id}` (address, pid, host, started_at, an
instance nonce), refusing to start when a running process holds the id (NodeIdTaken:
`golive serve` exits 1 naming the holder); its own crashed predecessor's record is
replaced at once (same machine, pid gone) or after it expires (another machine). Every
HEARTBEAT_S (2 s) the record's TTL (NODE_TTL_S, 6 s) is pushed back, only while the
record is still this instance's. A node killed with kill -9 is gone from Redis within
6 s and the live ones take over what it left (signaling/node_failure.py).

A node reaps its own share of viewer counts when it starts (it was restarted under the
same id: those connections died with it) and when it stops cleanly (its sockets are gone).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from engine.nodes import HEARTBEAT_S, NodeRecord, Nodes
from signaling.push_bus import VIEWERS_CHANGED, PushBus
from signaling.room_pushes import live_room
from signaling.services import Services
from signaling.tasks import OwnedTask

log = logging.getLogger("golive.presence")


class NodePresence:
    """The node's record and its heartbeat: one owned task."""

    def __init__(self, nodes: Nodes, services: Services, record: NodeRecord, bus: PushBus, *,
                 period_s: float = HEARTBEAT_S,
                 on_lost: Callable[[str], None] | None = None) -> None:
        self.nodes = nodes
        self.services = services
        self.record = record
        self.node_id = record.node_id
        self.bus = bus
        self.period_s = period_s
        # Called when another process took this node's id while it could not beat (it
        # was cut off from Redis longer than the TTL): the server stops itself.
        self.on_lost = on_lost
        self.beats_failed = 0
        self._runner = OwnedTask(self._run, "node-heartbeat")

    def set_relay(self, address: str) -> None:
        """Where this node's media relay listens (signaling/cascade.py): announced with
        the record, so the relay listener opens first."""
        self.record = dataclasses.replace(self.record, relay=address)

    async def open(self) -> None:
        """Announce the record (NodeIdTaken when a running node holds the id), take back
        this node's stale share of viewer counts, start the heartbeat."""
        await self.nodes.announce(self.record)
        log.info("node announced", extra={"fields": {
            "node": self.node_id, "address": self.record.address,
            "instance": self.record.instance}})
        await self._reap(self.node_id)
        self._runner.start()

    async def close(self) -> None:
        """Stop the heartbeat; leave the cluster (record withdrawn, share reaped);
        idempotent."""
        if not self._runner.running:
            return
        await self._runner.stop()
        try:
            async with asyncio.timeout(2):
                await self.nodes.withdraw(self.record)
                await self._reap(self.node_id)
        except (RedisError, OSError, TimeoutError):
            log.warning("leaving the cluster cleanly failed; the others reap this node")

    async def beat(self) -> None:
        """One heartbeat; announces the record again if it expired meanwhile."""
        if await self.nodes.beat(self.record):
            return
        status, detail = await self.nodes.try_announce(self.record)
        if status == "ok":
            log.warning("node record was gone; announced again",
                        extra={"fields": {"node": self.node_id}})
        elif status == "held":
            log.error("another process took this node's id; stopping",
                      extra={"fields": {"node": self.node_id, "instance": detail}})
            if self.on_lost is not None:
                self.on_lost(self.node_id)
        else:  # a live node is taking over what it thought we left; announce after it
            log.warning("node record was gone and is being reaped; waiting",
                        extra={"fields": {"node": self.node_id, "by": detail}})

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
            except (RedisError, OSError) as exc:  # Redis away: the next beat tries again
                self.beats_failed += 1
                log.warning("heartbeat failed", extra={"fields": {
                    "node": self.node_id, "error": type(exc).__name__}})
            except Exception:
                self.beats_failed += 1
                log.exception("heartbeat failed")


__all__ = ["HEARTBEAT_S", "NodePresence"]
