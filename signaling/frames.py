"""Room pushes encoded once: one Socket.IO packet, one websocket frame, and the same
bytes written to every recipient's transport.

python-socketio's room emit encodes the packet once, then runs one task per
recipient through Engine.IO's per-socket queue and writer task: 50-64 us of
server CPU per delivery at 1,000 clients (measured here, server on one core;
node's socket.io 12-15 us). Server-to-client websocket frames are unmasked,
so one frame serves every websocket; here a
delivery is a dict lookup and a transport.write(). The frame is never
compressed (RSV1 clear), which permessage-deflate allows message by message
and which keeps a client's compression context untouched.

Sockets still on long-polling, or whose websocket is not known, fall back to
Engine.IO's queue. A socket with more than WRITE_BUFFER_BOUND bytes unsent is
skipped for that push (bounded memory for a slow reader); pushes carry ids so
its client sees the gap and asks for what it missed.

The socket's websocket and its transport are private details of python-engineio and
aiohttp, reached through signaling/engineio_private.py and signaling/aiohttp_private.py
(checked at import). A socket that is upgraded to websocket yet takes the queue is not
silent: each reason is counted in /metrics (golive_push_fallbacks_total) and logged the
first time it happens.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from signaling import aiohttp_private, engineio_private
from signaling.metrics import Metrics

log = logging.getLogger("golive.frames")

# ~1,000 chat batches of ~250 B: a reader this far behind is skipped, not buffered.
WRITE_BUFFER_BOUND = 256 * 1024

# Why a push to an upgraded socket took Engine.IO's queue (golive_push_fallbacks_total).
FALLBACK_NO_DRIVER = "no_websocket_driver"  # the async mode has no websocket driver
FALLBACK_NO_WEBSOCKET = "websocket_unknown"  # upgraded, but its websocket was not recorded
FALLBACK_CLOSING = "closing"  # its websocket or transport is closing


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


@dataclass(frozen=True, slots=True)
class Frame:
    """One push, encoded: the websocket frame, and the Socket.IO encoding for fallbacks."""

    frame: bytes
    encoded: bytes | str

    @classmethod
    def from_encoded(cls, encoded: bytes | str) -> Frame:
        """The frame of a Socket.IO packet encoded elsewhere (another node: the push bus)."""
        packet = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        return cls(websocket_frame(packet.encode()), encoded)

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

    def __init__(self, sio: socketio.AsyncServer, *, metrics: Metrics | None = None,
                 buffer_bound: int = WRITE_BUFFER_BOUND) -> None:
        self.sio = sio
        self.buffer_bound = buffer_bound
        self.metrics = metrics
        self._fallbacks_logged: set[str] = set()
        # The gateway installs the hooks when it makes the server (signaling/gateway.py).
        if not engineio_private.websocket_hooks_installed(sio.eio):
            self._fell_back(FALLBACK_NO_DRIVER)

    def _fell_back(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.push_fallbacks.labels(reason).inc()
        if reason not in self._fallbacks_logged:
            self._fallbacks_logged.add(reason)
            log.warning("room push fell back to engine.io's queue",
                        extra={"fields": {"reason": reason}})

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
            if not sock.upgraded:  # long-polling: the queue is its only way
                fallback.append(eio_sid)
                continue
            ws = engineio_private.socket_websocket(sock)
            transport = None if ws is None else aiohttp_private.websocket_transport(ws)
            if ws is None or transport is None or ws.closed or transport.is_closing():
                # upgraded, yet no websocket to write to: a hook that stopped working
                # (or a socket mid-close); correct through the queue, but not silent
                self._fell_back(FALLBACK_NO_WEBSOCKET if ws is None else FALLBACK_CLOSING)
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
