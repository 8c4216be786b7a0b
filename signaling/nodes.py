"""This node's record in Redis (engine/nodes.py): announced on open, refreshed by a
heartbeat task, withdrawn on close.

Other nodes read it to learn where this one is (GOLIVE_NODE_ADDRESS); a node killed
without closing disappears when its record expires (engine/nodes.py NODE_TTL_S).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time

from redis.exceptions import RedisError

from engine.nodes import HEARTBEAT_S, NodeRecord, Nodes
from signaling.feature import Feature
from signaling.tasks import OwnedTask

log = logging.getLogger("golive.nodes")


class NodeAnnouncer(Feature):
    """Owns the `node-heartbeat` task that keeps this node's record alive."""

    def __init__(self, nodes: Nodes, node_id: str, address: str, *,
                 period: float = HEARTBEAT_S) -> None:
        super().__init__()
        self.nodes = nodes
        self.record = NodeRecord(node_id, address, os.getpid(), time.time())
        self.period = period
        self._beat = OwnedTask(self._heartbeat, "node-heartbeat")

    def set_relay(self, address: str) -> None:
        """Where this node's media relay listens (announced with the record; the relay
        listener opens before this announcer)."""
        self.record = dataclasses.replace(self.record, relay=address)

    async def on_open(self) -> None:
        await self.nodes.announce(self.record)
        log.info("node announced", extra={"fields": {
            "node": self.record.node_id, "address": self.record.address}})
        self._beat.start()

    async def on_close(self) -> None:
        was_running = self._beat.running
        await self._beat.stop()
        if was_running:
            with contextlib.suppress(RedisError, OSError):
                await self.nodes.withdraw(self.record.node_id)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                if not await self.nodes.refresh(self.record.node_id):
                    await self.nodes.announce(self.record)
                    log.warning("node record was gone; announced again",
                                extra={"fields": {"node": self.record.node_id}})
            except (RedisError, OSError) as exc:  # Redis away: the next beat tries again
                log.warning("node heartbeat failed",
                            extra={"fields": {"node": self.record.node_id,
                                              "error": type(exc).__name__}})
