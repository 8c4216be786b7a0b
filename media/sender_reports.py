"""How often a viewer's senders send RTCP sender reports (SR).

aiortc's sender sends an SR every 0.5-1.5 s on each of a viewer's two senders, whatever
happens. With no video flowing that is most of a viewer's upkeep: 467 us of server CPU
per viewer per second, two thirds of it building, protecting and sending SRs (measured,
`python -m bench.upkeep --viewers 100`). An SR maps the stream's RTP clock to NTP for
lip-sync and says how much was sent; with nothing sent since the last one it says
nothing new, so it is skipped. Audio SRs go every 5 s at most (WebRTC's own audio RTCP
interval; the browser's lip-sync keeps the last mapping), video SRs keep aiortc's pace.
"""

from __future__ import annotations

import time
from collections.abc import Callable

AUDIO_SR_INTERVAL_S = 5.0


class SenderReportGate:
    """Decides whether one sender's next SR goes out. Plain state, no I/O."""

    def __init__(self, kind: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.kind = kind
        self._clock = clock
        self._last_at: float | None = None
        self._last_packets: int | None = None
        self.asked = 0
        self.sent = 0

    def allow(self, packets_sent: int) -> bool:
        """`packets_sent`: the count the SR carries. True: send this SR."""
        self.asked += 1
        now = self._clock()
        if self._last_at is not None:
            if packets_sent == self._last_packets:
                return False  # nothing sent since the last SR: nothing new to map
            if self.kind == "audio" and now - self._last_at < AUDIO_SR_INTERVAL_S:
                return False
        self._last_at = now
        self._last_packets = packets_sent
        self.sent += 1
        return True
