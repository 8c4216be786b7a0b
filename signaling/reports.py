"""report:create at the edge: report a user, a direct message or a live chat line.

The report stores a copy of what was said (engine/reports.py), so it survives the
message being deleted. Only a conversation's own users can report its messages.
"""

from __future__ import annotations

from typing import Any

from engine.errors import invalid
from engine.reports import Kind
from signaling.feature import Feature
from signaling.gateway import EventContext, Gateway
from signaling.schemas import ReportCreate


class ReportEvents(Feature):
    """report:create."""

    def __init__(self, gateway: Gateway) -> None:
        super().__init__()

        @gateway.event("report:create", ReportCreate)
        async def report_create(ctx: EventContext, p: ReportCreate) -> dict[str, Any]:
            services = ctx.services
            content: dict[str, Any]
            target: str
            if p.kind == "user":
                if p.user_id is None:
                    raise invalid("a user report needs user_id", field="user_id")
                account = await services.accounts.get(p.user_id)
                target = account.id
                content = {"username": account.username, "display_name": account.display_name,
                           "bio": account.bio}
            elif p.kind == "message":
                if p.conversation_id is None or p.message_id is None:
                    raise invalid("a message report needs conversation_id and message_id",
                                  field="message_id")
                message = await services.messages.message(ctx.user_id, p.conversation_id,
                                                          p.message_id)
                target = message.sender
                content = {"conversation_id": p.conversation_id, "message_id": message.id,
                           "text": message.text, "card": message.card}
            else:
                if p.live_id is None or p.message_id is None:
                    raise invalid("a chat report needs live_id and message_id", field="message_id")
                line = await services.chat.entry(p.live_id, p.message_id)
                if line.kind != "message":
                    raise invalid("only messages can be reported")
                target = line.user_id
                content = {"live_id": p.live_id, "message_id": line.id, "text": line.text,
                           "display_name": line.display_name}
            report = await services.reports.create(ctx.user_id, Kind(p.kind), target, p.reason,
                                                   p.note, content)
            return {"report_id": report.id}
