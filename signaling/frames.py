"""Room pushes encoded once: one Socket.IO packet, one websocket frame, and the same
bytes written to every recipient's transport.

python-socketio's room emit encodes the packet once, then runs one task per
recipient through Engine.IO's per-socket queue and writer task: 50-64 us of
server CPU per delivery at 1,000 clients (FIELD-NOTES). Server-to-client
websocket frames are unmasked, so one frame serves every websocket; here a
delivery is a dict lookup and a transport.write(). The frame is never
compressed (RSV1 clear), which permessage-deflate allows message by message
and which keeps a client's compression context untouched.

Sockets still on long-polling, or whose websocket is not known, fall back to
Engine.IO's queue. A socket with more than WRITE_BUFFER_BOUND bytes unsent is
skipped for that push (bounded memory for a slow reader); pushes carry ids so
its client sees the gap and asks for what it missed.

This leans on two private details of python-engineio 4.x (pinned with
python-socketio <6): the `_async["websocket"]` driver class, and that its
handler is the AsyncSocket's bound `_websocket_handler`. Without them every
push takes the fallback path, slower but correct.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

log = logging.getLogger("golive.frames")

# ~1,000 chat batches of ~250 B: a reader this far behind is skipped, not buffered.
WRITE_BUFFER_BOUND = 256 * 1024
_WS_KEY = "golive_ws"


def websocket_frame(payload: bytes | str) -> bytes:
    """A final, unmasked, uncompressed websocket frame: binary for bytes, text for str."""
    if isinstance(payload, str):
        opcode, data = 0x81, payload.encode()
    else:
        opcode, data = 0x82, payload
    n = len(data)
    if n < 126:
        header = struct.pack("!BB", opcode, n)
    elif n < 65536:
        header = struct.pack("!BBH", opcode, 126, n)
    else:
        header = struct.pack("!BBQ", opcode, 127, n)
    return header + data


def _recording(base: type[Any]) -> type[Any]:
    """The driver's websocket class, made to remember each Engine.IO socket's websocket."""

    class RecordingWebSocket(base):  # type: ignore[misc, valid-type]
        def __init__(self, handler: Any, server: Any) -> None:
            owner = getattr(handler, "__self__", None)

            async def run(ws: Any) -> Any:
                if owner is not None:
                    setattr(owner, _WS_KEY, getattr(ws, "_sock", None))
                try:
                    return await handler(ws)
                finally:
                    if owner is not None:
                        setattr(owner, _WS_KEY, None)

            super().__init__(run, server)

    return RecordingWebSocket


@dataclass(frozen=True, slots=True)
class Frame:
    """One push, encoded: the websocket frame, and the Socket.IO encoding for fallbacks."""

    frame: bytes
    encoded: bytes | str

    def packet(self) -> eio_packet.Packet:
        # A fresh Engine.IO packet per fallback socket: a Packet caches its first
        # encoding, and polling needs base64 where a websocket needs bytes.
        return eio_packet.Packet(eio_packet.MESSAGE, self.encoded)


@dataclass(slots=True)
class Delivery:
    direct: int = 0    # frames written straight to a websocket
    queued: int = 0    # sent through Engine.IO (polling, unknown websocket)
    skipped: int = 0   # slow readers left to catch up

    def add(self, other: Delivery) -> None:
        self.direct += other.direct
        self.queued += other.queued
        self.skipped += other.skipped


class FrameWriter:
    """Encodes a push once and writes it to every socket of a room."""

    def __init__(self, sio: socketio.AsyncServer, *,
                 buffer_bound: int = WRITE_BUFFER_BOUND) -> None:
        self.sio = sio
        self.buffer_bound = buffer_bound
        eio = sio.eio
        drivers = getattr(eio, "_async", None)
        if isinstance(drivers, dict) and drivers.get("websocket") is not None \
                and not getattr(drivers["websocket"], "_golive_recording", False):
            recording = _recording(drivers["websocket"])
            recording._golive_recording = True  # type: ignore[attr-defined]
            # A copy: the module's dict is shared by every server in the process.
            eio._async = {**drivers, "websocket": recording}
        else:
            log.warning("engine.io websocket driver not found; pushes use the slow path")

    def encode(self, event: str, data: Any, namespace: str = "/") -> Frame:
        encoded = self.sio.packet_class(sio_packet.EVENT, namespace=namespace,
                                        data=[event, data]).encode()
        if isinstance(encoded, list):  # a JSON packet with binary attachments: no shortcut
            raise ValueError("pushes with binary attachments are not supported")
        packet = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        return Frame(websocket_frame(packet.encode()), encoded)

    async def send(self, room: str, frame: Frame, namespace: str = "/") -> Delivery:
        """Write `frame` to every local socket in `room`; await only for fallbacks."""
        done = Delivery()
        sockets = self.sio.eio.sockets
        fallback = []
        for _sid, eio_sid in self.sio.manager.get_participants(namespace, room):
            sock = sockets.get(eio_sid)
            if sock is None or sock.closed or sock.closing:
                continue
            ws = getattr(sock, _WS_KEY, None)
            transport = getattr(getattr(ws, "_writer", None), "transport", None)
            if ws is None or not sock.upgraded or transport is None or ws.closed \
                    or transport.is_closing():
                fallback.append(eio_sid)
                continue
            if transport.get_write_buffer_size() > self.buffer_bound:
                done.skipped += 1
                continue
            transport.write(frame.frame)
            done.direct += 1
        for eio_sid in fallback:
            await self.sio.eio.send_packet(eio_sid, frame.packet())
            done.queued += 1
        return done
