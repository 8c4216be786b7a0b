"""The compositor: which overlays show now, which wait their turn, and applying them to a frame.

Bounds and overflow policy. At most `max_active` badges show at once (they stack at their
position). With `max_waiting` > 0, more overlays wait in a line of that bound and each gets
its full duration once a badge expires; when the line is full, the lowest `priority` waiting
(then the oldest) is dropped, so a storm of small gifts cannot push out a big one. With
`max_waiting` == 0 the oldest showing badge is dropped instead (the newest always shows).

Keys. An overlay whose `key` matches one showing replaces it in place (same slot, its time
starts again); one matching a waiting overlay replaces that one in the line. A gift combo
("x2" -> "x3") is one badge that updates, not a stack of badges.

All methods run on the event loop; the room's encode thread only gets the list active()
returned, never this object.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import av

from media.overlay import Overlay, draw_overlays

# At most this many overlays are drawn at once. Four size-3 gift badges at 360p stack to
# ~220 lines, which fits below the frame's top quarter ("left" position).
MAX_ACTIVE_OVERLAYS = 4
# Overlays waiting for a free slot: ~4 s each, so a full line clears in ~16 s.
MAX_WAITING_OVERLAYS = 16


class Compositor:
    """Keeps showing overlays with their expiry times, and a bounded line of waiting ones."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        max_active: int = MAX_ACTIVE_OVERLAYS,
        max_waiting: int = 0,
    ) -> None:
        if max_active < 1 or max_waiting < 0:
            raise ValueError("max_active must be >= 1 and max_waiting >= 0")
        self._clock = clock
        self.max_active = max_active
        self.max_waiting = max_waiting
        self._active: list[tuple[float, Overlay]] = []  # (expires, overlay), oldest first
        self._waiting: deque[Overlay] = deque()
        self.dropped = 0  # overlays that never showed or were cut short by the bounds

    def add(self, overlay: Overlay) -> None:
        """Show `overlay` from now for its duration_s, or queue it (see the module doc)."""
        now = self._clock()
        self._expire(now)
        if overlay.key is not None:
            for i, (_, shown) in enumerate(self._active):
                if shown.key == overlay.key:
                    self._active[i] = (now + overlay.duration_s, overlay)
                    return
            for i, waiting in enumerate(self._waiting):
                if waiting.key == overlay.key:
                    self._waiting[i] = overlay
                    return
        if len(self._active) < self.max_active:
            self._active.append((now + overlay.duration_s, overlay))
        elif self.max_waiting == 0:
            self._active.pop(0)
            self.dropped += 1
            self._active.append((now + overlay.duration_s, overlay))
        else:
            self._waiting.append(overlay)
            if len(self._waiting) > self.max_waiting:
                lowest = min(range(len(self._waiting)), key=lambda i: self._waiting[i].priority)
                del self._waiting[lowest]
                self.dropped += 1

    def active(self) -> list[Overlay]:
        """The overlays showing now, oldest first; expired ones are forgotten and waiting
        ones take their slots."""
        self._expire(self._clock())
        return [overlay for _, overlay in self._active]

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def apply(self, frame: av.VideoFrame) -> av.VideoFrame:
        """`frame` with the active overlays drawn in, or `frame` itself when none are active."""
        return draw_overlays(frame, self.active())

    def _expire(self, now: float) -> None:
        if any(expires <= now for expires, _ in self._active):
            self._active = [(e, o) for e, o in self._active if e > now]
        while self._waiting and len(self._active) < self.max_active:
            overlay = self._waiting.popleft()
            self._active.append((now + overlay.duration_s, overlay))
