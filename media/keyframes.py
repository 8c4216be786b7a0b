"""When the room encoder forces a keyframe: on request (viewer join, PLI/FIR), throttled,
and at least once per GOP.

A keyframe costs 12-16 RTP packets against ~2.6 for a delta frame (measured at 360p), and
every viewer receives it, so requests are coalesced: at most one forced keyframe per
`min_interval_s` (LiveKit throttles at 0.5-1 s, mediasoup at 1 s). A request that arrives
inside the window is not lost; it is served when the window ends. Measured: 13 joins sent
16 PLIs and produced 2 keyframes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

DEFAULT_MIN_INTERVAL_S = 0.5
DEFAULT_GOP_S = 2.0  # bounds how long a viewer that lost a packet waits without a PLI path


class KeyframePolicy:
    """Decides, frame by frame, whether the next encode must be a keyframe. Plain state, no I/O."""

    def __init__(
        self,
        min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
        gop_s: float = DEFAULT_GOP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min_interval_s < 0 or gop_s <= 0:
            raise ValueError("min_interval_s must be >= 0 and gop_s > 0")
        self.min_interval_s = min_interval_s
        self.gop_s = gop_s
        self._clock = clock
        self._last_keyframe: float | None = None
        self._wanted = False
        self.requests = 0  # every request, coalesced or not (for stats)

    def request(self) -> None:
        """A viewer needs a keyframe (joined, or sent PLI/FIR)."""
        self.requests += 1
        self._wanted = True

    @property
    def pending(self) -> bool:
        """A request waits (an edge room forwards it upstream when should_force allows)."""
        return self._wanted

    def should_force(self) -> bool:
        """Call once per frame before encoding it; True means encode it as a keyframe.

        A True answer consumes the pending request.
        """
        now = self._clock()
        if self._last_keyframe is None:
            force = True  # the first frame of a stream is a keyframe anyway
        else:
            since = now - self._last_keyframe
            force = since >= self.gop_s or (self._wanted and since >= self.min_interval_s)
        if force:
            self._wanted = False
        return force

    def produced(self) -> None:
        """The encoder emitted a keyframe (forced or of its own accord, e.g. after a resize)."""
        self._last_keyframe = self._clock()
