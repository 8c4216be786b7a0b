"""What the live nodes do when one dies: take over its viewers, lives and jobs, once.

Every HEARTBEAT_S (2 s) each node looks for members of `nodes` whose record expired
(engine/nodes.py: a node killed with kill -9 is gone within NODE_TTL_S, 6 s). For each,
one live node wins the claim (`node_reaping:ID`, a Lua SET NX that also checks the record
is still gone) and takes over, each step idempotent so a claimer cut short (its own death,
Redis away for a few seconds) is redone by the next claim without doing anything twice:

1. **Viewers**: the dead node's share of every live's count leaves the totals and the
   directory (engine/lives.py `reap_node`); each touched live's origin pushes the count.
2. **Lives**: each live it hosted becomes an orphan (`lives_orphaned`, scored by when it
   ends: now + GOLIVE_LIVE_GRACE). The creator's `live:start` on any node within that time
   adopts it (signaling/live_rooms.py: same live id, chat and board, media published
   again there). Unclaimed, the first node to see it due ends it (one Lua script decides
   which) and announces `live:ended` with reason `node_lost` to its members and watch
   pages on every node, closes its room everywhere and updates Discover.
3. **Jobs**: its claimed go-live fan-out jobs go back to the head of the queue; any node's
   worker resumes each at its cursor, and the notification's id tells each user once.

Then the claim is released and the dead id leaves `nodes`. A node restarted under the
same id before its orphans are due takes its lives back as before (`recover_node` drops
their orphan entries).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from engine.lives import Live
from engine.nodes import HEARTBEAT_S, Nodes
from engine.webhook_rules import LIVE_ENDED
from signaling.feature import Feature
from signaling.gateway import Gateway
from signaling.live_rooms import LiveRooms
from signaling.notifications import AlertFanout
from signaling.push_bus import ROOM_CLOSED, VIEWERS_CHANGED
from signaling.room_pushes import live_room, watch_room
from signaling.services import Services
from signaling.tasks import OwnedTask
from signaling.webhooks import emit_safely

log = logging.getLogger("golive.failover")

NODE_LOST = "node_lost"  # the reason a dead node's unclaimed live ends with


@dataclass(frozen=True)
class Takeover:
    """What one takeover of a dead node did."""

    node: str
    viewer_lives: list[str]   # lives whose counts lost the node's viewers
    orphans: list[Live]       # lives it hosted, now waiting for their creators
    jobs: int                 # fan-out jobs put back in the queue


class NodeFailover(Feature):
    """One owned task per node: find dead nodes, take each over once, end due orphans."""

    def __init__(self, nodes: Nodes, services: Services, gateway: Gateway, lives: LiveRooms,
                 fanout: AlertFanout, node_id: str, *, grace_s: float,
                 period_s: float = HEARTBEAT_S) -> None:
        super().__init__(after=(lives, fanout))
        self.nodes = nodes
        self.services = services
        self.gateway = gateway
        self.lives = lives
        self.fanout = fanout
        self.node_id = node_id
        self.grace_s = grace_s
        self.period_s = period_s
        self.takeovers: list[Takeover] = []
        self.lives_ended = 0
        # After a failed pass (Redis away) every node's record may have expired meanwhile:
        # look for dead nodes only once the others had two beats to announce themselves
        # again, or a Redis outage longer than the TTL would look like every node dying.
        self._settle_until = 0.0
        self._runner = OwnedTask(self._run, "node-failover")

    async def on_open(self) -> None:
        self._runner.start()

    async def on_close(self) -> None:
        await self._runner.stop()

    async def run_once(self) -> tuple[list[Takeover], list[Live]]:
        """Take over every dead node this node wins, then end the orphans that are due."""
        done: list[Takeover] = []
        if time.monotonic() < self._settle_until:
            return done, await self.end_due()
        for dead in await self.nodes.dead(exclude=self.node_id):
            takeover = await self.take_over(dead)
            if takeover is not None:
                done.append(takeover)
        return done, await self.end_due()

    async def take_over(self, dead: str) -> Takeover | None:
        """Claim the dead node and take over its viewers, lives and jobs; None when
        another node has it (or it came back)."""
        if not await self.nodes.claim(dead, self.node_id):
            return None
        touched = await self.services.lives.reap_node(dead)
        bus = self.gateway.bus
        for live_id in touched:
            if bus is not None:
                await bus.control(live_room(live_id), VIEWERS_CHANGED, live_id)
            if self.lives.hosted_live(live_id) is not None:  # our echo is dropped: push here
                self.lives.pushes.viewers_changed(live_id)
        orphans = await self.services.lives.orphan_node(dead, time.time() + self.grace_s)
        jobs = await self.services.live_alerts.requeue_node(dead)
        if jobs:
            self.fanout.wake()
        await self.nodes.release(dead, self.node_id)
        takeover = Takeover(dead, touched, orphans, jobs)
        self.takeovers.append(takeover)
        log.warning("node lost; took over its viewers, lives and jobs", extra={"fields": {
            "node": dead, "viewer_lives": len(touched),
            "lives": [live.live_id for live in orphans], "jobs": jobs,
            "grace_s": self.grace_s}})
        return takeover

    async def end_due(self) -> list[Live]:
        """End the orphans that are due (those this node wins) and announce each."""
        ended = await self.services.lives.end_due_orphans()
        for live in ended:
            await self.announce_end(live, NODE_LOST)
        return ended

    async def announce_end(self, live: Live, reason: str) -> None:
        """`live:ended` to the live's members and watch pages on every node, its room
        closed everywhere, Discover pushed."""
        self.lives_ended += 1
        payload = {"live_id": live.live_id, "creator_id": live.creator_id, "reason": reason}
        await self.gateway.push("live:ended", payload, to=live_room(live.live_id))
        await self.gateway.push("live:ended", payload, to=watch_room(live.creator_id))
        if self.gateway.bus is not None:
            await self.gateway.bus.control(live_room(live.live_id), ROOM_CLOSED, live.live_id)
        await self.lives.forget_remote(live.live_id)  # our own members (no echo to us)
        self.lives.pushes.discover_changed()
        await emit_safely(self.services.webhooks, LIVE_ENDED, live.creator_id,
                          {"live": live.as_dict(), "reason": reason}, key=live.live_id)
        log.info("live ended", extra={"fields": {
            "live": live.live_id, "reason": reason, "node": live.node}})

    async def _pause(self) -> float:
        """Until the next pass: the period, or sooner when an orphan is due sooner."""
        try:
            due = await self.services.lives.next_orphan_end()
        except (RedisError, OSError):
            return self.period_s
        if due is None:
            return self.period_s
        return min(self.period_s, max(due - time.time(), 0.05))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(await self._pause())
            try:
                await self.run_once()
            except (RedisError, OSError) as exc:  # Redis away: the next pass redoes it
                self._settle_until = time.monotonic() + 2 * self.period_s
                log.warning("failover pass failed", extra={"fields": {
                    "error": type(exc).__name__}})
            except Exception:
                log.exception("failover pass failed")


__all__ = ["NODE_LOST", "NodeFailover", "Takeover"]
