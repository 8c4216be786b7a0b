"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-
extensions-01) for the creator's ingest: what lets Chromium run its full send-side
bandwidth estimation on its uplink to golive.

aiortc answers a browser's offer with REMB and receiver reports only. With those alone
Chromium cannot probe: it starts a camera at 300 kbit/s and climbs ~8% a second, so a
LIVE took ~20 s to pass 700 kbit/s, and after a lossy spell it climbed back from
40 kbit/s as slowly (measured, tests/test_browser_uplink.py). With this feedback it
learns each packet's arrival time and loss within ~100 ms, probes, and backs off on
loss or a growing queue the way it does against any browser.

`TwccRecorder.record()` notes each packet's transport-wide sequence number and arrival
time; `feedback()` packs what arrived since the previous one into one RTCP transport
feedback packet (RTPFB, FMT 15). Plain code, no I/O: media/ingest.py sends it.
"""

from __future__ import annotations

import struct

TWCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RTPFB = 205
FMT_TRANSPORT_CC = 15
TICK_US = 250  # a receive delta's unit
REFERENCE_US = 64_000  # the reference time's unit
# A feedback covers at most this many sequence numbers; more wait for the next one. 5 s
# of a 2.5 Mbit/s camera is ~1,200 packets; Chromium's own receivers stop near 1,300.
MAX_PER_FEEDBACK = 1_000
# Packets remembered while no feedback went out (the sender's feedback task stalled):
# the oldest are forgotten past this, and reported lost.
MAX_PENDING = 4_000

_SMALL, _LARGE, _MISSING = 1, 2, 0


class TwccRecorder:
    """Arrivals of the packets carrying a transport-wide sequence number, and the
    feedback packets that report them (each arrival reported once, in order)."""

    def __init__(self, origin_s: float) -> None:
        self._origin_s = origin_s  # arrival times count from here (the 24-bit reference)
        self._arrivals: dict[int, int] = {}  # unwrapped sequence -> arrival, in ticks
        self._highest: int | None = None  # unwrapped
        self._next: int | None = None  # the first sequence not reported yet (None: none was)
        self._count = 0  # feedback packet count, modulo 256
        self.reported = 0  # packets reported received, for tests and figures

    def record(self, sequence: int, arrival_s: float) -> None:
        """A packet with transport-wide `sequence` (16 bits) arrived at `arrival_s`."""
        unwrapped = self._unwrap(sequence)
        if self._next is not None and unwrapped < self._next:
            return  # already reported (as lost): too late to count
        ticks = round((arrival_s - self._origin_s) * 1_000_000 / TICK_US)
        self._arrivals.setdefault(unwrapped, ticks)
        if len(self._arrivals) > MAX_PENDING:
            for seq in sorted(self._arrivals)[:len(self._arrivals) - MAX_PENDING]:
                del self._arrivals[seq]
            self._next = min(self._arrivals)

    def _unwrap(self, sequence: int) -> int:
        if self._highest is None:
            self._highest = sequence
            return sequence
        delta = (sequence - self._highest) & 0xFFFF
        unwrapped = self._highest + delta if delta < 0x8000 else self._highest + delta - 0x10000
        self._highest = max(self._highest, unwrapped)
        return unwrapped

    def feedback(self, sender_ssrc: int, media_ssrc: int) -> bytes | None:
        """One transport feedback packet for what arrived since the last one, or None
        when nothing did."""
        if not self._arrivals or self._highest is None:
            return None
        base = min(self._arrivals) if self._next is None else self._next
        last = min(self._highest, base + MAX_PER_FEEDBACK - 1)
        first_ticks = next((self._arrivals[s] for s in range(base, last + 1)
                            if s in self._arrivals), None)
        if first_ticks is None:  # only later packets: wait for them to be in range
            self._next = min(self._arrivals)
            return None
        reference = first_ticks * TICK_US // REFERENCE_US  # floor: the first delta >= 0
        previous = reference * REFERENCE_US // TICK_US
        symbols: list[int] = []
        deltas = bytearray()
        for seq in range(base, last + 1):
            ticks = self._arrivals.get(seq)
            if ticks is None:
                symbols.append(_MISSING)
                continue
            delta = ticks - previous
            if 0 <= delta <= 0xFF:
                symbols.append(_SMALL)
                deltas.append(delta)
            elif -0x8000 <= delta <= 0x7FFF:
                symbols.append(_LARGE)
                deltas += struct.pack("!h", delta)
            else:  # over 8 s from the previous one: it starts the next feedback
                last = seq - 1
                break
            previous = ticks
        for seq in range(base, last + 1):
            self._arrivals.pop(seq, None)
        self._next = last + 1
        self.reported += sum(1 for s in symbols if s != _MISSING)
        chunks = bytearray()
        for start in range(0, len(symbols), 7):  # two-bit status vector chunks
            chunk = 0xC000
            for i, symbol in enumerate(symbols[start:start + 7]):
                chunk |= symbol << (12 - 2 * i)
            chunks += struct.pack("!H", chunk)
        body = (struct.pack("!IIHHI", sender_ssrc, media_ssrc, base & 0xFFFF, len(symbols),
                            ((reference & 0xFFFFFF) << 8) | self._count)
                + chunks + deltas)
        self._count = (self._count + 1) & 0xFF
        padding = -len(body) % 4
        if padding:  # RFC 3550 padding: zeros, the last octet their count
            body += bytes(padding - 1) + bytes([padding])
        header = struct.pack("!BBH", 0x80 | (0x20 if padding else 0) | FMT_TRANSPORT_CC,
                             RTPFB, (len(body) + 4) // 4 - 1)
        return header + body
