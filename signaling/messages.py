"""Direct messages at the edge: the dm:* and settings:* events, and their pushes.

Every open tab of a user is in the Socket.IO room user:{id} (signaling/gateway.py),
so a push there reaches all of them: a new message, a read receipt, typing,
the unread counts for the header badge. Pushes are small and go to one or two
users, so they take python-socketio's ordinary emit; messages carry their ids
and a tab that reconnects reloads what it shows (dm:history {after}).
"""

from __future__ import annotations

from typing import Any

from engine.accounts import Account
from engine.message_rules import Route, other_party
from engine.messages import Summary
from signaling.feature import Feature
from signaling.gateway import EventContext, Gateway, user_room
from signaling.notifications import Notifier
from signaling.schemas import (
    DmConversation,
    DmHistory,
    DmList,
    DmRead,
    DmSend,
    Empty,
    SettingsUpdate,
)
from signaling.services import Services


def _view(summary: Summary, me: str, other: Account) -> dict[str, Any]:
    """A conversation as `me` sees it in a list: the other user's public fields inline."""
    return {**summary.as_dict(me), "with": other.public()}


async def conversation_view(services: Services, me: str, summary: Summary) -> dict[str, Any]:
    return _view(summary, me, await services.accounts.get(summary.other_id))


async def conversation_views(services: Services, me: str,
                             summaries: list[Summary]) -> list[dict[str, Any]]:
    others = await services.accounts.get_many([s.other_id for s in summaries])
    # a conversation whose other account is gone is left out
    return [_view(summary, me, others[summary.other_id])
            for summary in summaries if summary.other_id in others]


async def push_unread(gateway: Gateway, services: Services, user_id: str,
                      **extra: Any) -> dict[str, int]:
    """Tell every tab of user_id its unread counts (the header badge)."""
    counts = await services.messages.unread(user_id)
    await gateway.push("dm:unread", {**counts, **extra}, to=user_room(user_id))
    return counts


async def push_conversation(gateway: Gateway, services: Services, user_id: str,
                            conversation_id: str) -> None:
    """Tell every tab of user_id how a conversation stands now (accepted, moved...)."""
    summary = await services.messages.summary(user_id, conversation_id)
    if summary is not None:
        await gateway.push("dm:conversation", {
            "conversation": await conversation_view(services, user_id, summary)},
            to=user_room(user_id))


class DirectMessages(Feature):
    """The direct-message and settings events."""

    def __init__(self, gateway: Gateway, notifier: Notifier) -> None:
        super().__init__()

        @gateway.event("dm:send", DmSend)
        async def dm_send(ctx: EventContext, p: DmSend) -> dict[str, Any]:
            services = ctx.services
            sender = await services.accounts.get(ctx.user_id)
            sent = await services.messages.send(
                sender, p.to, p.text, share=(p.share.kind, p.share.user_id) if p.share else None)
            message = sent.message.as_dict()
            for user in (sent.recipient, ctx.user_id):
                summary = await services.messages.summary(user, sent.conversation_id)
                if summary is None:
                    continue
                await gateway.push("dm:message", {
                    "conversation": await conversation_view(services, user, summary),
                    "message": message}, to=user_room(user))
            await push_unread(gateway, services, sent.recipient)
            if sent.new and sent.route is Route.REQUEST:
                await notifier.message_request(sender, sent.recipient, sent.conversation_id)
            return {"conversation_id": sent.conversation_id, "message": message,
                    "state": str(sent.state), "route": str(sent.route)}

        @gateway.event("dm:list", DmList)
        async def dm_list(ctx: EventContext, p: DmList) -> dict[str, Any]:
            rows, more = await ctx.services.messages.conversations(
                ctx.user_id, before=p.before, limit=p.limit)
            return {"conversations": await conversation_views(ctx.services, ctx.user_id, rows),
                    "more": more, "unread": await ctx.services.messages.unread(ctx.user_id)}

        @gateway.event("dm:requests", DmList)
        async def dm_requests(ctx: EventContext, p: DmList) -> dict[str, Any]:
            rows, more = await ctx.services.messages.conversations(
                ctx.user_id, requests=True, before=p.before, limit=p.limit)
            return {"conversations": await conversation_views(ctx.services, ctx.user_id, rows),
                    "more": more}

        @gateway.event("dm:history", DmHistory)
        async def dm_history(ctx: EventContext, p: DmHistory) -> dict[str, Any]:
            messages = ctx.services.messages
            page = await messages.history(ctx.user_id, p.conversation_id, before=p.before,
                                          after=p.after, limit=p.limit)
            other = other_party(p.conversation_id, ctx.user_id)
            return {"conversation_id": p.conversation_id, **page.as_dict(ctx.user_id),
                    "with": (await ctx.services.accounts.get(other)).public()}

        @gateway.event("dm:read", DmRead)
        async def dm_read(ctx: EventContext, p: DmRead) -> dict[str, Any]:
            services = ctx.services
            mark, unread, receipts = await services.messages.mark_read(
                ctx.user_id, p.conversation_id, p.message_id)
            if receipts:
                other = other_party(p.conversation_id, ctx.user_id)
                await gateway.push("dm:seen", {"conversation_id": p.conversation_id,
                                                   "user_id": ctx.user_id, "message_id": mark},
                                       to=user_room(other))
            counts = await push_unread(gateway, services, ctx.user_id,
                                       conversation_id=p.conversation_id, unread=unread)
            return {"message_id": mark, "unread": unread, "total": counts["total"]}

        @gateway.event("dm:typing", DmConversation)
        async def dm_typing(ctx: EventContext, p: DmConversation) -> dict[str, Any]:
            other = await ctx.services.messages.check_may_type(ctx.user_id, p.conversation_id)
            if other is not None:
                await gateway.push("dm:typing", {"conversation_id": p.conversation_id,
                                                     "user_id": ctx.user_id},
                                       to=user_room(other))
            return {"delivered": other is not None}

        @gateway.event("dm:accept", DmConversation)
        async def dm_accept(ctx: EventContext, p: DmConversation) -> dict[str, Any]:
            services = ctx.services
            await services.messages.accept(ctx.user_id, p.conversation_id)
            other = other_party(p.conversation_id, ctx.user_id)
            for user in (ctx.user_id, other):
                await push_conversation(gateway, services, user, p.conversation_id)
            await push_unread(gateway, services, ctx.user_id)
            summary = await services.messages.summary(ctx.user_id, p.conversation_id)
            assert summary is not None
            return {"conversation": await conversation_view(services, ctx.user_id, summary)}

        @gateway.event("dm:delete", DmConversation)
        async def dm_delete(ctx: EventContext, p: DmConversation) -> dict[str, Any]:
            await ctx.services.messages.delete(ctx.user_id, p.conversation_id)
            await gateway.push("dm:deleted", {"conversation_id": p.conversation_id},
                                   to=user_room(ctx.user_id))
            await push_unread(gateway, ctx.services, ctx.user_id)
            return {"conversation_id": p.conversation_id}

        @gateway.event("dm:unread", Empty)
        async def dm_unread(ctx: EventContext, _: Empty) -> dict[str, Any]:
            return await ctx.services.messages.unread(ctx.user_id)

        @gateway.event("settings:get", Empty)
        async def settings_get(ctx: EventContext, _: Empty) -> dict[str, Any]:
            account = await ctx.services.accounts.get(ctx.user_id)
            return {"dm_policy": str(await ctx.services.messages.policy(account))}

        @gateway.event("settings:update", SettingsUpdate)
        async def settings_update(ctx: EventContext, p: SettingsUpdate) -> dict[str, Any]:
            account = await ctx.services.accounts.get(ctx.user_id)
            if p.dm_policy is not None:
                await ctx.services.messages.set_policy(account.id, p.dm_policy)
            return {"dm_policy": str(await ctx.services.messages.policy(account))}
