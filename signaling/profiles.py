"""Profiles and the social graph at the edge: the Socket.IO events and the shared views."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from engine.accounts import Account
from signaling.feature import Feature
from signaling.gateway import EventContext, Gateway, Handler
from signaling.notifications import Notifier
from signaling.schemas import (
    Empty,
    ProfileGet,
    ProfileUpdate,
    UserList,
    UserSearchQuery,
    UserSuggest,
    UserTarget,
)
from signaling.services import Services


async def profile_view(services: Services, account: Account, viewer: str | None) -> dict[str, Any]:
    """A profile as a viewer sees it: public fields, counts and the viewer's relation."""
    live = await services.lives.current(account.id)
    view: dict[str, Any] = {
        "user": account.public(),
        "counts": await services.graph.counts(account.id),
        "live": {**live.as_dict(), "viewers": await services.lives.viewer_count(live)}
        if live else None,
    }
    if viewer is not None:
        view["relation"] = (await services.graph.relation(viewer, account.id)).as_dict()
        view["is_self"] = viewer == account.id
    return view


async def people_view(services: Services, query: str, limit: int,
                      viewer: str | None) -> dict[str, Any]:
    """GET /api/users?q= and user:search: accounts found by prefix (engine/search.py),
    without those who blocked the viewer or whom the viewer blocked."""
    found = await services.accounts.find_people(query, limit)
    if viewer is not None and found:
        hidden = await services.graph.hidden_from(viewer, [a.id for a in found])
        found = [a for a in found if a.id not in hidden and a.id != viewer]
    return {"q": query, "users": [a.public() for a in found]}


async def relation_view(services: Services, viewer: str, target: str) -> dict[str, Any]:
    """After a graph change: the new relation and the target's counts."""
    return {
        "relation": (await services.graph.relation(viewer, target)).as_dict(),
        "counts": await services.graph.counts(target),
    }


class ProfileEvents(Feature):
    """The profile and graph events."""

    def __init__(self, gateway: Gateway, services: Services, notifier: Notifier, *,
                 on_block: Callable[[str, str], Awaitable[None]] | None = None) -> None:
        """`on_block(actor, target)` runs after each block (signaling/chat.py
        LiveChat.blocked: who blocked or was blocked leaves the other's live)."""
        super().__init__()
        self.services = services
        self.on_block = on_block

        @gateway.event("session:whoami", Empty)
        async def whoami(ctx: EventContext, _: Any) -> dict[str, Any]:
            account = await ctx.services.accounts.get(ctx.user_id)
            return {"user": account.public(), "expires_at": ctx.conn.session.expires_at}

        @gateway.event("profile:get", ProfileGet)
        async def profile_get(ctx: EventContext, p: ProfileGet) -> dict[str, Any]:
            account = await ctx.services.accounts.find(p.username)
            return await profile_view(ctx.services, account, ctx.user_id)

        @gateway.event("profile:update", ProfileUpdate)
        async def profile_update(ctx: EventContext, p: ProfileUpdate) -> dict[str, Any]:
            account = await ctx.services.accounts.update_profile(
                ctx.user_id, display_name=p.display_name, bio=p.bio)
            return {"user": account.public()}

        @gateway.event("user:follow", UserTarget)
        async def follow(ctx: EventContext, p: UserTarget) -> dict[str, Any]:
            if await ctx.services.graph.follow(ctx.user_id, p.user_id):
                await notifier.followed(await ctx.services.accounts.get(ctx.user_id), p.user_id)
            return await relation_view(ctx.services, ctx.user_id, p.user_id)

        graph = services.graph
        for name, change in (("user:unfollow", graph.unfollow), ("user:block", self._block),
                             ("user:unblock", graph.unblock)):
            gateway.event(name, UserTarget)(self._graph_change(change))

        @gateway.event("user:search", UserSearchQuery)
        async def user_search(ctx: EventContext, p: UserSearchQuery) -> dict[str, Any]:
            return await people_view(ctx.services, p.q, p.limit, ctx.user_id)

        @gateway.event("user:suggest", UserSuggest)
        async def user_suggest(ctx: EventContext, p: UserSuggest) -> dict[str, Any]:
            """Discover when nobody is live: people your follows follow, and creators
            who went LIVE lately (neither yourself nor anyone a block stands with)."""
            services = ctx.services
            people = await services.graph.suggested(ctx.user_id, limit=p.limit)
            recent = [u for u in await services.lives.recent_creators(limit=p.limit + 1)
                      if u != ctx.user_id]
            if recent:
                hidden = await services.graph.hidden_from(ctx.user_id, recent)
                recent = [u for u in recent if u not in hidden][:p.limit]
            found = await services.accounts.get_many(list({*people, *recent}))
            return {"users": [found[u].public() for u in people if u in found],
                    "recent": [found[u].public() for u in recent if u in found]}

        @gateway.event("user:list", UserList)
        async def user_list(ctx: EventContext, p: UserList) -> dict[str, Any]:
            graph = ctx.services.graph
            lister = {"followers": graph.followers, "following": graph.following,
                      "friends": graph.friends}[p.kind]
            ids = await lister(p.user_id, limit=p.limit)
            accounts = await ctx.services.accounts.get_many(ids)
            return {"users": [accounts[uid].public() for uid in ids if uid in accounts]}

    async def _block(self, actor: str, target: str) -> None:
        await self.services.graph.block(actor, target)
        if self.on_block is not None:
            await self.on_block(actor, target)

    def _graph_change(self, change: Callable[[str, str], Awaitable[object]]) -> Handler:
        """An event that makes one graph change and answers the new relation."""

        async def handle(ctx: EventContext, p: UserTarget) -> dict[str, Any]:
            await change(ctx.user_id, p.user_id)
            return await relation_view(self.services, ctx.user_id, p.user_id)

        return handle
