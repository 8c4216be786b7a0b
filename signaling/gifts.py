"""Gifts in a live at the edge: the `gift:send` and `gift:board` events, the room's
`gift:received` and `gift:board` pushes, and the gift badge burnt into the room's video.

A send goes: payload validated (GiftSend: no price or balance field exists, so the
catalog alone decides the price) -> the creator's running live, hosted on this node ->
Ledger.send_gift (one Lua script: every check, then the money, idempotent by transfer id)
-> GiftRoom.record (combo, leaderboard, diamonds this live; once per transfer id) -> one
`gift:received` push to the live's room, encoded once -> a keyed badge through
LiveRooms.add_overlay, so every viewer sees it in the video (frames are encoded once per
room). A retry with the same transfer id answers the first result and pushes nothing
again; if the first attempt died between the ledger and the room, the retry records it.

Combos: each push carries `streak` (the id of the sender's run of one gift) and `combo`
(xN); the badge is keyed by the streak, so a combo updates one badge in place. Pushes of
one room may overtake each other (each event runs in its own task): clients keep the
highest `combo` per streak and the board of the highest `seq`, and the badge is only
replaced by a higher combo.

Socket.IO rooms: live:{live_id} (LiveRooms puts the creator's publishing connection and
every viewer there).

Any node: a gift may be sent through any node, whichever hosts the live (the ledger and
the gift room are in Redis; the push crosses nodes on the push bus). The badge must be
drawn by the live's origin, whose compositor every viewer's video comes from (edges
relay the origin's encoded frames): a node that does not host the live sends the
badge's description (`GIFT_SHOWN`, a few hundred bytes of JSON) on the live's push-bus
channel, which the origin hears through its creator's socket in the live's room; the
origin builds the overlay (its own icon cache) and shows it. The push bus and not the
relay's back channel: a gift's sender need not be watching with media on that node, so
no relay may exist there; the bus reaches the origin from any node, and losing a badge
in a Redis blip (at-most-once) loses no money and no push (both are already done).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from typing import Any

from aiohttp import web

from engine.accounts import Account
from engine.catalog import Gift
from engine.errors import invalid, not_found
from engine.gift_room import GiftBoard, GiftMoment, board_view
from engine.ledger import GiftReceipt
from engine.lives import Live
from engine.webhook_rules import GIFT_RECEIVED
from media.errors import MediaError
from media.overlay import MAX_TEXT_CHARS, Overlay
from signaling.feature import Feature
from signaling.frames import FrameWriter
from signaling.gateway import Connection, EventContext, Gateway
from signaling.live_rooms import LiveRooms, live_room
from signaling.push_bus import GIFT_SHOWN
from signaling.schemas import GiftBoardGet, GiftSend, GiftStatusGet
from signaling.services import Services
from signaling.webhooks import emit_safely, gift_data

log = logging.getLogger("golive.gifts")

USER_ID_LENGTH = 16
# How each catalog style looks in the video: badge size (1-3), seconds, position. Bigger
# gifts get bigger badges that stay longer. All stack on the left, a quarter down: badges
# at two positions would overlap (a centred Lion covered the left stack's second badge).
STYLE_LOOKS: dict[str, tuple[int, float, str]] = {
    "small": (1, 3.0, "left"),
    "medium": (2, 4.0, "left"),
    "large": (3, 5.0, "left"),
    "full": (3, 7.0, "left"),
}
SHOWN_STREAKS = 1024  # streaks whose shown combo is remembered (badges last seconds)


# --- how a gift looks: plain functions ------------------------------------------------

def hex_color(text: str) -> tuple[int, int, int]:
    """'#ff1e50' -> (255, 30, 80)."""
    value = int(text.lstrip("#"), 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def overlay_text(username: str, gift_name: str, combo: int) -> str:
    """'ann sent Rose x3', the name shortened to fit the badge's text limit."""
    tail = f" sent {gift_name} x{combo}"
    room = MAX_TEXT_CHARS - len(tail)
    name = username if len(username) <= room else username[: max(room - 1, 1)] + "."
    return (name + tail)[:MAX_TEXT_CHARS]


def gift_overlay(gift: Gift, username: str, moment: GiftMoment, icon: bytes | None) -> Overlay:
    """The badge for one gift: the sender, the gift's icon and colour, xN; keyed by the
    streak so a combo replaces it; sized and timed by the gift's style; its priority (the
    coins) decides what a full waiting line drops first."""
    size, seconds, position = STYLE_LOOKS.get(gift.style, STYLE_LOOKS["small"])
    return Overlay(text=overlay_text(username, gift.name, moment.combo),
                   color=hex_color(gift.color), image=icon, position=position,  # type: ignore[arg-type]
                   duration_s=seconds, key=f"gift:{moment.streak}", size=size,
                   priority=gift.coins)


def gift_view(gift: Gift) -> dict[str, Any]:
    return {"id": gift.id, "name": gift.name, "coins": gift.coins, "icon": gift.icon,
            "color": gift.color, "style": gift.style}


def receipt_view(receipt: GiftReceipt, moment: GiftMoment) -> dict[str, Any]:
    """What the sender's ack says: their own balance, never the creator's."""
    return {"transfer_id": receipt.transfer_id, "live_id": receipt.live_id,
            "gift_id": receipt.gift_id, "count": receipt.count, "coins": receipt.coins,
            "diamonds": receipt.diamonds, "sender_coins": receipt.sender_coins,
            "replayed": receipt.replayed, "streak": moment.streak, "combo": moment.combo}


class LiveGifts(Feature):
    """The gift events, the room pushes and the video badges.

    `writer` is the server's one FrameWriter, shared with live chat: one hook into
    Engine.IO's websockets per server."""

    def __init__(self, gateway: Gateway, services: Services, lives: LiveRooms,
                 writer: FrameWriter) -> None:
        super().__init__(after=[lives])
        self.gateway = gateway
        self.services = services
        self.lives = lives
        self.writer = writer
        self._icons: dict[str, bytes | None] = {}
        self._shown: OrderedDict[str, int] = OrderedDict()  # streak -> combo on the video
        # A gift dearer than this asks the sender to confirm (GOLIVE_GIFT_CONFIRM_COINS)
        self.confirm_above = 1000
        self._add_events()

    # --- reading -------------------------------------------------------------------------

    async def creator(self, name_or_id: str) -> Account:
        """The creator named by user id or username (as the client knows them)."""
        accounts = self.services.accounts
        if len(name_or_id) == USER_ID_LENGTH and await accounts.exists(name_or_id):
            return await accounts.get(name_or_id)
        return await accounts.find(name_or_id)

    async def board(self, live_id: str) -> dict[str, Any]:
        """The live's leaderboard and totals, with the gifters' public profiles."""
        board = await self.services.gift_room.board(live_id)
        return await self._board_view(board)

    async def _board_view(self, board: GiftBoard, *extra: str) -> dict[str, Any]:
        ids = [s.user_id for s in board.top] + list(extra)
        users = await self.services.accounts.get_many(ids) if ids else {}
        return board_view(board, {uid: a.public() for uid, a in users.items()})

    async def icon(self, gift: Gift) -> bytes | None:
        """The gift's PNG for the video (read once; None, logged, when it is missing)."""
        if gift.id not in self._icons:
            try:
                data: bytes | None = await asyncio.to_thread(gift.icon_png.read_bytes)
            except OSError as exc:
                log.warning("gift icon missing; badges show text only",
                            extra={"fields": {"gift": gift.id, "cause": str(exc)}})
                data = None
            self._icons[gift.id] = data
        return self._icons[gift.id]

    # --- sending ---------------------------------------------------------------------------

    async def send(self, conn: Connection, p: GiftSend) -> dict[str, Any]:
        services = self.services
        creator = await self.creator(p.creator)
        live = await services.lives.current(creator.id)
        if live is None:
            raise not_found("this creator is not live")
        gift = services.ledger.catalog.gift(p.gift_id)
        receipt = await services.ledger.send_gift(
            transfer_id=p.transfer_id, sender_id=conn.user_id, creator_id=creator.id,
            live_id=live.live_id, gift_id=gift.id, count=p.count)
        moment = await services.gift_room.record(
            live_id=receipt.live_id, transfer_id=receipt.transfer_id,
            sender_id=receipt.sender_id, gift_id=receipt.gift_id, count=receipt.count,
            coins=receipt.coins, diamonds=receipt.diamonds)
        if moment.new:
            await self._announce(live, gift, receipt, moment)
        await emit_safely(services.webhooks, GIFT_RECEIVED, creator.id,
                          gift_data(services.accounts, receipt, gift), key=receipt.transfer_id)
        return {"receipt": receipt_view(receipt, moment)}

    async def _announce(self, live: Live, gift: Gift, receipt: GiftReceipt,
                        moment: GiftMoment) -> None:
        """The push to the room and the badge in the video, for a newly recorded gift."""
        board = await self.services.gift_room.board(live.live_id)
        view = await self._board_view(board, receipt.sender_id)
        sender = (await self.services.accounts.get_many([receipt.sender_id])).get(
            receipt.sender_id)
        if sender is None:  # deleted between the ledger and here: nothing to show
            return
        payload = {**view, "transfer_id": receipt.transfer_id, "streak": moment.streak,
                   "combo": moment.combo, "count": receipt.count, "seq": moment.seq,
                   "at": time.time(), "sender": sender.public(), "gift": gift_view(gift),
                   "coins": receipt.coins, "diamonds": receipt.diamonds}
        await self.gateway.push("gift:received", payload, to=live_room(live.live_id))
        if self.lives.hosted_live(live.live_id) is not None:
            self._show(live, gift, sender.username, moment, await self.icon(gift))
        elif self.gateway.bus is not None:  # the origin draws it (module docstring)
            await self.gateway.bus.control(live_room(live.live_id), GIFT_SHOWN, json.dumps({
                "live_id": live.live_id, "gift_id": gift.id, "username": sender.username,
                "transfer_id": moment.transfer_id, "streak": moment.streak,
                "combo": moment.combo, "seq": moment.seq}))

    async def show_from_node(self, room: str, body: str) -> None:
        """A badge for a gift sent through another node (GIFT_SHOWN on the live's room):
        drawn if the live is hosted here; garbage is logged (by the origin) and dropped."""
        live = self.lives.hosted_live(room.partition(":")[2])
        if live is None:
            return  # not the origin (the sending node itself, or another edge)
        try:
            shown = json.loads(body)
            if shown["live_id"] != live.live_id:
                raise ValueError("the badge names another live than its channel")
            gift = self.services.ledger.catalog.gift(shown["gift_id"])
            moment = GiftMoment(str(shown["transfer_id"]), str(shown["streak"]),
                                int(shown["combo"]), int(shown["seq"]), True)
            username = str(shown["username"])
        except Exception as exc:
            log.warning("gift badge from another node dropped",
                        extra={"fields": {"cause": f"{type(exc).__name__}: {exc}"[:200]}})
            return
        self._show(live, gift, username, moment, await self.icon(gift))

    def _show(self, live: Live, gift: Gift, username: str, moment: GiftMoment,
              icon: bytes | None) -> None:
        if self._shown.get(moment.streak, 0) >= moment.combo:
            return  # an older step of this combo overtook a newer one: keep the newer badge
        self._shown[moment.streak] = moment.combo
        self._shown.move_to_end(moment.streak)
        while len(self._shown) > SHOWN_STREAKS:
            self._shown.popitem(last=False)
        try:
            self.lives.add_overlay(live.creator_id, gift_overlay(gift, username,
                                                                 moment, icon))
        except MediaError as exc:  # the room closed meanwhile, or a bad catalog icon
            log.warning("gift badge not shown", extra={"fields": {
                "live": live.live_id, "gift": gift.id, "cause": exc.message}})

    # --- joining ---------------------------------------------------------------------------

    async def on_viewer_joined(self, live: Live, conn: Connection) -> None:
        """A late joiner gets the room's gift board at once (like room:state)."""
        await self.gateway.sio.emit("gift:board", await self.board(live.live_id), to=conn.sid)

    # --- events ------------------------------------------------------------------------------

    def _add_events(self) -> None:
        gateway = self.gateway
        self.lives.join_listeners.append(self.on_viewer_joined)
        self.lives.anonymous_join_listeners.append(self.on_viewer_joined)

        @gateway.event("gift:send", GiftSend)
        async def gift_send(ctx: EventContext, p: GiftSend) -> dict[str, Any]:
            return await self.send(ctx.conn, p)

        @gateway.event("gift:status", GiftStatusGet)
        async def gift_status(ctx: EventContext, p: GiftStatusGet) -> dict[str, Any]:
            """Whether the caller can send this creator gifts at all (the tray is offered
            only then), and the price above which the tray asks to confirm a gift."""
            creator = await self.creator(p.creator)
            refusal = None
            if creator.id == ctx.user_id:
                refusal = invalid("you cannot send a gift to yourself")
            else:
                refusal = await ctx.services.ledger.gift_refusal(ctx.user_id, creator.id)
            return {"creator_id": creator.id, "can_send": refusal is None,
                    "refusal": refusal.to_payload() if refusal else None,
                    "confirm_above": self.confirm_above}

        @gateway.event("gift:board", GiftBoardGet)
        async def gift_board(ctx: EventContext, p: GiftBoardGet) -> dict[str, Any]:
            live = self.lives.member_live(p.live_id)
            if live is None:
                raise not_found("this live has ended (or is not on this server)")
            await ctx.services.chat.check_may_read(live, ctx.user_id)
            return {"board": await self.board(live.live_id)}


GIFTS = web.AppKey("gifts", LiveGifts)

__all__ = ["GIFTS", "STYLE_LOOKS", "LiveGifts", "gift_overlay", "hex_color", "overlay_text",
           "receipt_view"]
