"""A hand-made Engine.IO v4 websocket, to send bytes no Socket.IO client would."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgpack


async def raw_socket(client: Any, token: str) -> tuple[aiohttp.ClientSession,
                                                      aiohttp.ClientWebSocketResponse]:
    """A hand-made Engine.IO v4 websocket, to send bytes no Socket.IO client would."""
    session = aiohttp.ClientSession()
    url = str(client.make_url("/socket.io/")) + "?EIO=4&transport=websocket"
    ws = await session.ws_connect(url)
    opened = await ws.receive_str()
    assert opened.startswith("0")
    await ws.send_bytes(msgpack.packb({"type": 0, "nsp": "/", "data": {"token": token}}))
    connected = msgpack.unpackb(await ws.receive_bytes())
    assert connected["type"] == 0, connected
    return session, ws


async def raw_ack(ws: aiohttp.ClientWebSocketResponse, packet: bytes) -> Any:
    """Send one raw packet and return the data of the first ack that comes back, answering
    the server's pings meanwhile (5 s at most)."""
    await ws.send_bytes(packet)
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "2":
                await ws.send_str("3")  # engine.io ping -> pong
                continue
            if msg.type == aiohttp.WSMsgType.BINARY:
                decoded = msgpack.unpackb(msg.data)
                if decoded.get("type") == 3:
                    return decoded["data"][0]
