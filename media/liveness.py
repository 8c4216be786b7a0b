"""Silence counted in the event loop's awake time, so a late loop never looks like a gone peer.

A peer is judged silent when nothing arrived from it for a timeout. Measured by wall
clock, a loop that was blocked or starved (a join storm at 200 viewers kept one core at
94-98%) made a creator who kept sending look silent: the packets sat in the socket buffer
while the timer fired, and the live ended as `creator_left`. So the watcher counts what
arrived (packets on the transport, not decoded frames: the decoder thread is the first
thing a starved process delays) and adds at most `max_step` seconds of silence per check:
a check that ran late by a second counts as one step, not a second.
"""

from __future__ import annotations


class SilenceClock:
    """Seconds of silence of one peer, counted from checks. Plain state, no I/O."""

    def __init__(self, max_step_s: float) -> None:
        if not max_step_s > 0:
            raise ValueError("max_step_s must be > 0")
        self.max_step_s = max_step_s
        self.silent_s = 0.0
        self.lag_s = 0.0  # loop lateness not counted as silence (for logs and tests)
        self._last_now: float | None = None
        self._last_count: int | None = None

    def check(self, now: float, received: int) -> float:
        """Call on every check with the peer's running count of packets received; returns
        the seconds of silence so far (0 while the count grows)."""
        if self._last_now is None or received != self._last_count:
            self.silent_s = 0.0
        else:
            elapsed = max(0.0, now - self._last_now)
            step = min(elapsed, self.max_step_s)
            self.lag_s += elapsed - step
            self.silent_s += step
        self._last_now = now
        self._last_count = received
        return self.silent_s
