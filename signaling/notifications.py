"""Notifications at the edge: the notify:* events, the `notify:new` pushes, and the
go-live fan-out worker the app owns.

Every open tab of a user is in the Socket.IO room user:{id}; `notify:new` goes
there with the notification, the one-line alert the pages show as a toast
("Ann nudged you to go live!") and the unread count for the header badge.

    notifier = server.notifier      # the one Notifier, built by signaling/server.py
    await notifier.notify(user_id, "gift", {"user": {...}, "gift": {"name": "Rose"}})

AlertFanout is one task per node: it claims go-live jobs (engine/live_alerts.py)
and steps through them one batch of inboxes at a time, yielding to the event loop
between batches, so a creator with 100,000 alert followers is a few hundred
short steps rather than one long stall (figures: `python -m bench.notify`, README).
Pushes go only to users with a tab on this node; everyone gets the inbox entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import web

from engine.accounts import Account
from engine.live_alerts import Step
from engine.notifications import Added, Kind, alert_text, day_of
from engine.nudges import actor
from engine.webhook_rules import FOLLOW, MESSAGE_REQUEST
from signaling.errors import UNAVAILABLE_CAUSES
from signaling.feature import Feature
from signaling.gateway import EventContext, Gateway, user_room
from signaling.schemas import Empty, NotifyList, NotifyRead
from signaling.services import Services
from signaling.tasks import OwnedTask
from signaling.webhooks import emit_safely

log = logging.getLogger("golive.notifications")

POLL_S = 1.0   # the worker also looks for queued jobs this often (jobs queued by other nodes)


class Notifier:
    """Adds notifications and tells the user's open tabs (one per server, shared by
    every feature that notifies)."""

    def __init__(self, gateway: Gateway, services: Services) -> None:
        self.gateway = gateway
        self.services = services

    async def online_many(self, user_ids: list[str]) -> list[bool]:
        """Whether each user has a tab connected to any node (its push channel has a
        subscriber; with no bus, to this node)."""
        rooms = [user_room(uid) for uid in user_ids]
        if self.gateway.bus is not None:
            return await self.gateway.bus.online_many(rooms)
        here = self.gateway.sio.manager.rooms.get("/", {})
        return [bool(here.get(room)) for room in rooms]

    async def online(self, user_id: str) -> bool:
        """True when the user has a tab connected to any node."""
        return (await self.online_many([user_id]))[0]

    async def notify(self, user_id: str, kind: str, data: dict[str, Any], *,
                     group: str | None = None, id: str | None = None) -> Added | None:
        """Add to the user's inbox and push `notify:new` to their tabs; None when `id`
        was already there."""
        added = await self.services.notifications.add(user_id, kind, data, group=group, id=id)
        if added is not None:
            await self.push(user_id, added, alert_text(kind, data))
        return added

    async def push(self, user_id: str, added: Added, alert: str) -> None:
        if not await self.online(user_id):
            return
        unread = await self.services.notifications.unread(user_id)
        await self.gateway.push("notify:new", {
            "notification": added.notification.as_dict(), "alert": alert,
            "merged": added.merged, "unread": unread}, to=user_room(user_id))

    async def push_unread(self, user_id: str) -> int:
        unread = await self.services.notifications.unread(user_id)
        await self.gateway.push("notify:unread", {"unread": unread}, to=user_room(user_id))
        return unread

    # --- the hooks other features call ---------------------------------------------------

    async def followed(self, follower: Account, target_id: str) -> None:
        """A new follow: one line a day per user, "Ann, Bob and 3 others started following you"."""
        await self.notify(target_id, Kind.FOLLOW, {"actors": [actor(follower)], "count": 1},
                          group=f"follow:{day_of(time.time())}")
        await emit_safely(self.services.webhooks, FOLLOW, target_id, {"user": follower.public()})

    async def message_request(self, sender: Account, recipient_id: str,
                              conversation_id: str) -> None:
        await self.notify(recipient_id, Kind.MESSAGE_REQUEST,
                          {"user": actor(sender), "conversation_id": conversation_id})
        await emit_safely(self.services.webhooks, MESSAGE_REQUEST, recipient_id,
                          {"user": sender.public(), "conversation_id": conversation_id},
                          key=f"{conversation_id}:{sender.id}")

    # --- the go-live fan-out ---------------------------------------------------------------

    async def push_step(self, step: Step) -> int:
        """Push one fan-out step's notification to those of its users online (any node)."""
        told = list(step.told)
        online = [uid for uid, on in zip(told, await self.online_many(told), strict=True) if on]
        if not online:
            return 0
        counts = await self.services.notifications.unread_many(online)
        notification = step.notification.as_dict()
        alert = notification["text"]
        for uid, unread in zip(online, counts, strict=True):
            await self.gateway.push("notify:new", {
                "notification": notification, "alert": alert, "merged": False,
                "unread": int(unread)}, to=user_room(uid))
        return len(online)


class AlertFanout(Feature):
    """The node's go-live fan-out worker: one owned task, woken by a local go-live and
    polling every POLL_S for jobs other nodes queued."""

    def __init__(self, notifier: Notifier, *, poll_s: float = POLL_S) -> None:
        super().__init__()
        self.notifier = notifier
        self.services = notifier.services
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._runner = OwnedTask(self._run, "live-fanout")
        self.steps = 0
        self.told = 0

    async def on_open(self) -> None:
        self._runner.start()

    async def on_close(self) -> None:
        """Stop the worker; idempotent. A job cut short stays claimed by this node and is
        resumed where its last batch ended when the node starts again."""
        await self._runner.stop()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except UNAVAILABLE_CAUSES as exc:
                # Redis down, restarting (an embedded one is restarted within ~0.5 s) or
                # not answering (paused: a timeout, which `golive chaos` found logged with
                # a traceback): expected and retried, so one line without a traceback.
                log.warning("live fan-out waits for Redis; retrying",
                            extra={"fields": {"cause": f"{type(exc).__name__}: {exc}"[:200]}})
            except Exception:
                log.exception("live fan-out failed; retrying")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            self._wake.clear()

    async def run_once(self) -> int:
        """Finish this node's unfinished jobs, then every queued one; jobs done."""
        alerts = self.services.live_alerts
        done = 0
        for live_id in await alerts.active():
            await self.drain(live_id)
            done += 1
        while (live_id := await alerts.claim()) is not None:
            await self.drain(live_id)
            done += 1
        return done

    async def drain(self, live_id: str) -> int:
        """Step one job to its end; the users it told."""
        alerts = self.services.live_alerts
        started = time.perf_counter()
        while True:
            step = await alerts.step(live_id)
            if step is None:
                await alerts.finish(live_id)
                return 0
            self.steps += 1
            self.told += len(step.told)
            await self.notifier.push_step(step)
            if step.done:
                sent = await alerts.finish(live_id)
                log.info("go-live notifications sent", extra={"fields": {
                    "live": live_id, "users": sent,
                    "seconds": round(time.perf_counter() - started, 3)}})
                return sent
            await asyncio.sleep(0)  # let sockets and other events run between batches


class NotificationEvents(Feature):
    """The notify:* events: the inbox page and the header badge."""

    def __init__(self, gateway: Gateway, services: Services, notifier: Notifier) -> None:
        super().__init__()

        @gateway.event("notify:list", NotifyList)
        async def notify_list(ctx: EventContext, p: NotifyList) -> dict[str, Any]:
            items, cursor = await services.notifications.page(ctx.user_id, before=p.before,
                                                              limit=p.limit)
            return {"notifications": [n.as_dict() for n in items], "next": cursor,
                    "more": cursor is not None,
                    "unread": await services.notifications.unread(ctx.user_id)}

        @gateway.event("notify:read", NotifyRead)
        async def notify_read(ctx: EventContext, p: NotifyRead) -> dict[str, Any]:
            await services.notifications.mark_read(ctx.user_id, p.id)
            return {"id": p.id, "unread": await notifier.push_unread(ctx.user_id)}

        @gateway.event("notify:read_all", Empty)
        async def notify_read_all(ctx: EventContext, _: Empty) -> dict[str, Any]:
            await services.notifications.mark_all_read(ctx.user_id)
            return {"unread": await notifier.push_unread(ctx.user_id)}

        @gateway.event("notify:unread", Empty)
        async def notify_unread(ctx: EventContext, _: Empty) -> dict[str, Any]:
            return {"unread": await services.notifications.unread(ctx.user_id)}


NOTIFIER = web.AppKey("notifier", Notifier)
ALERT_FANOUT = web.AppKey("alert_fanout", AlertFanout)

__all__ = ["ALERT_FANOUT", "NOTIFIER", "AlertFanout", "NotificationEvents", "Notifier"]
