"""Nudges and live alerts at the edge: the nudge:* and alerts:* events, their pushes,
and the hooks into going live (LiveRooms.started_listeners) and joining a live
(LiveRooms.join_listeners).

A nudge reaches every open tab of the creator at once (`notify:new` with the
alert "NAME nudged you to go live!", and `nudge:waiting` with the count the
studio shows). Going live turns the waiting nudgers into the live's: the
waiting count is pushed as 0 and the fan-out worker (signaling/notifications.py)
tells each nudger and each alert follower "NAME is LIVE: TITLE", once.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.accounts import Account
from engine.lives import Live
from engine.notifications import alert_text
from engine.nudges import actor
from engine.webhook_rules import NUDGE_RECEIVED
from signaling.feature import Feature
from signaling.gateway import Connection, EventContext, Gateway, user_room
from signaling.live_rooms import LiveRooms
from signaling.messages import conversation_view, push_unread
from signaling.notifications import AlertFanout, Notifier
from signaling.schemas import AlertsSet, Empty, NudgeSettingsUpdate, UserTarget
from signaling.services import Services
from signaling.webhooks import emit_safely

log = logging.getLogger("golive.nudges")


class NudgeEdge(Feature):
    """The nudge events and the go-live and join hooks (the go-live hook wakes the
    fan-out worker, so that opens first)."""

    def __init__(self, gateway: Gateway, services: Services, lives: LiveRooms,
                 notifier: Notifier, fanout: AlertFanout) -> None:
        super().__init__(after=[lives, fanout])
        self.gateway = gateway
        self.services = services
        self.lives = lives
        self.notifier = notifier
        self.fanout = fanout
        self._add_events()

    # --- hooks -----------------------------------------------------------------------------

    async def on_live_started(self, live: Live) -> None:
        """Close the loop: queue the go-live notifications, reset the waiting count."""
        creator = await self.services.accounts.get(live.creator_id)
        nudgers = await self.services.live_alerts.begin(live, creator)
        await self.gateway.push("nudge:waiting", {"waiting": 0},
                                    to=user_room(live.creator_id))
        self.fanout.wake()
        log.info("go-live notifications queued",
                 extra={"fields": {"live": live.live_id, "nudgers": nudgers}})

    async def on_viewer_joined(self, live: Live, conn: Connection) -> None:
        """A nudger came to the live they asked for (insights): the creator's studio is
        told at once (`nudge:came`), so "Did they come?" counts without a reload."""
        if await self.services.nudges.attended(live, conn.user_id):
            stats = await self.services.nudges.live_stats(live.live_id)
            await self.gateway.push("nudge:came", {"live_id": live.live_id, **stats},
                                    to=user_room(live.creator_id))

    async def post_to_messages(self, sender: Account, creator_id: str) -> None:
        """The creator's setting: the nudge as a line in their thread with the nudger."""
        services = self.services
        sent = await services.messages.post_nudge(sender, creator_id)
        if sent is None:
            return
        message = sent.message.as_dict()
        for user in (sent.recipient, sender.id):
            summary = await services.messages.summary(user, sent.conversation_id)
            if summary is not None:
                await self.gateway.push("dm:message", {
                    "conversation": await conversation_view(services, user, summary),
                    "message": message}, to=user_room(user))
        await push_unread(self.gateway, services, sent.recipient)

    # --- events ---------------------------------------------------------------------------

    def _add_events(self) -> None:
        gateway = self.gateway
        self.lives.started_listeners.append(self.on_live_started)
        self.lives.join_listeners.append(self.on_viewer_joined)

        @gateway.event("nudge:send", UserTarget)
        async def nudge_send(ctx: EventContext, p: UserTarget) -> dict[str, Any]:
            services = ctx.services
            sender = await services.accounts.get(ctx.user_id)
            nudged = await services.nudges.send(sender, p.user_id)
            creator = nudged.creator.id
            await self.notifier.push(creator, nudged.notification,
                                     alert_text("nudge", {"actors": [actor(sender)]}))
            await gateway.push("nudge:waiting", {"waiting": nudged.waiting},
                                   to=user_room(creator))
            await gateway.push("nudge:sent", {"creator_id": creator},
                                   to=user_room(sender.id))
            await emit_safely(services.webhooks, NUDGE_RECEIVED, creator, {"user": sender.public()})
            if (await services.nudges.settings(creator)).dm:
                try:
                    await self.post_to_messages(sender, creator)
                except Exception:  # the nudge stands; its copy in Messages is a courtesy
                    log.exception("posting a nudge to messages failed")
            return {"nudged": True, "retry_after": nudged.retry_after,
                    "creator": {"id": creator, "username": nudged.creator.username,
                                "display_name": nudged.creator.display_name}}

        @gateway.event("nudge:state", UserTarget)
        async def nudge_state(ctx: EventContext, p: UserTarget) -> dict[str, Any]:
            """The bell and the alerts toggle on a creator's profile, for the caller."""
            services = ctx.services
            await services.accounts.get(p.user_id)
            if p.user_id == ctx.user_id:
                return {"is_self": True, "allowed": False, "nudged": False, "retry_after": 0,
                        "live": await services.lives.current(p.user_id) is not None,
                        "alerts": False, "following": False}
            relation = await services.graph.relation(ctx.user_id, p.user_id)
            state = await services.nudges.state(ctx.user_id, p.user_id)
            return {**state, "is_self": False,
                    "allowed": state["allowed"] and not (relation.blocking
                                                         or relation.blocked_by),
                    "live": await services.lives.current(p.user_id) is not None,
                    "following": relation.following,
                    "alerts": await services.live_alerts.is_on(ctx.user_id, p.user_id,
                                                               relation)}

        @gateway.event("nudge:waiting", Empty)
        async def nudge_waiting(ctx: EventContext, _: Empty) -> dict[str, Any]:
            """The caller's own waiting count and nudge settings (the studio)."""
            nudges = ctx.services.nudges
            return {"waiting": await nudges.waiting(ctx.user_id),
                    "settings": (await nudges.settings(ctx.user_id)).as_dict()}

        @gateway.event("nudge:settings", NudgeSettingsUpdate)
        async def nudge_settings(ctx: EventContext, p: NudgeSettingsUpdate) -> dict[str, Any]:
            settings = await ctx.services.nudges.update_settings(ctx.user_id, allow=p.allow,
                                                                 dm=p.dm)
            return {"settings": settings.as_dict()}

        @gateway.event("nudge:insights", Empty)
        async def nudge_insights(ctx: EventContext, _: Empty) -> dict[str, Any]:
            return await ctx.services.nudges.insights(ctx.user_id)

        @gateway.event("alerts:set", AlertsSet)
        async def alerts_set(ctx: EventContext, p: AlertsSet) -> dict[str, Any]:
            services = ctx.services
            await services.accounts.get(p.user_id)
            relation = await services.graph.relation(ctx.user_id, p.user_id)
            on = await services.live_alerts.set(ctx.user_id, p.user_id, relation, p.on)
            return {"user_id": p.user_id, "on": on}


__all__ = ["NudgeEdge"]
