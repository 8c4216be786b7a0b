"""The compositor: which overlays are active now, and applying them to a frame."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import av

from media.overlay import Overlay, draw_overlays

# At most this many overlays are drawn at once; adding one more drops the oldest. A gift
# storm then shows the newest gifts instead of stacking badges off the frame.
MAX_ACTIVE_OVERLAYS = 8


class Compositor:
    """Keeps active overlays with their expiry times; passes frames through when none are active."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        max_active: int = MAX_ACTIVE_OVERLAYS,
    ) -> None:
        self._clock = clock
        self._active: deque[tuple[float, Overlay]] = deque(maxlen=max_active)

    def add(self, overlay: Overlay) -> None:
        """Show `overlay` from now for its duration_s (oldest dropped beyond the bound)."""
        self._active.append((self._clock() + overlay.duration_s, overlay))

    def active(self) -> list[Overlay]:
        """The overlays still showing, oldest first; expired ones are forgotten."""
        now = self._clock()
        if any(expires <= now for expires, _ in self._active):
            kept = [(e, o) for e, o in self._active if e > now]
            self._active.clear()
            self._active.extend(kept)
        return [overlay for _, overlay in self._active]

    def apply(self, frame: av.VideoFrame) -> av.VideoFrame:
        """`frame` with the active overlays drawn in, or `frame` itself when none are active."""
        return draw_overlays(frame, self.active())
