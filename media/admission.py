"""Join admission: viewer handshakes are admitted at the rate the CPU allows.

A join costs the server an offer (a certificate, ICE gathering, SDP), then ICE checks and
a DTLS handshake, all on the event loop that also sends every running viewer's packets.
200 joins at 50/s put the server at 92% CPU and left the room at 12 fps 5 s after the
storm (issue 14, measured). So at most `max_handshakes` joins are in their handshake at
once; the next `max_waiting` wait their turn in order; past that bound a join is refused
at once with `unavailable` and `retry_after` (seconds, retryable), never queued.

A handshake holds its place from the offer until the viewer is connected, fails or is
removed, and at most `max_hold_s`: a client that never answers does not block the joins
behind it for the whole connect timeout.

"The rate the CPU allows" is measured, not guessed: while joins are in flight a timer
probes the event loop every 50 ms, and the loop's lateness (lag) steers how many
handshakes may run at once (`limit`, between 1 and max_handshakes), AIMD-style:
- halved when the lag passes `max_lag_s` (20 ms: under a 30 fps frame interval, so the
  running viewers' packets stay on time) on two probes in a row, or passes twice that
  on one (a loop that is late on its own timers is late on every viewer's packets too);
  then no new cut for 4 probes (200 ms), so the joins just admitted show their effect
  before the next cut;
- raised by one per probe whose lag is under half of max_lag_s.
Measured (issue 14, 200 joins at 50/s into a room of 20): with 8 places, halved on any
probe past 20 ms, the limit sat at 1-3 on a 2-core host where other work made the loop
10-35 ms late anyway, the server's core was 67% busy, and joins waited in the queue for
up to 3 s (p95 first frame 2.95 s). A handshake mostly waits on the client (its answer,
ICE and DTLS round trips), so places are cheap: 32 by default.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from media.errors import invalid, unavailable

DEFAULT_MAX_HANDSHAKES = 32
DEFAULT_MAX_WAITING = 100
DEFAULT_MAX_HOLD_S = 3.0
DEFAULT_MAX_LAG_S = 0.02
_PROBE_S = 0.05
_CUT_HOLD_PROBES = 4  # probes after a cut before the next one (200 ms)
# The first retry_after estimates, before a handshake was timed: ~0.3 s per handshake
# on one core with a few at once (measured, loopback).
_FIRST_HANDSHAKE_S = 0.3
_MIN_RETRY_AFTER_S = 0.2
_MAX_RETRY_AFTER_S = 10.0


@dataclass(frozen=True)
class AdmissionStats:
    """A snapshot for /metrics: places in use, joins waiting, and running totals."""

    handshakes: int
    waiting: int
    max_handshakes: int
    max_waiting: int
    admitted: int
    waited: int
    refused: int
    expired: int  # places given back by max_hold_s, not by the handshake's end
    limit: int  # handshakes allowed at once now, from the loop's lag
    lag_s: float  # the loop's lateness at the last probe


def retry_after_s(waiting: int, max_handshakes: int, handshake_s: float) -> float:
    """How long a refused join should wait before it asks again: the time the joins ahead
    of it need at the measured handshake time, within 0.2-10 s."""
    estimate = handshake_s * (waiting + 1) / max_handshakes
    return round(min(_MAX_RETRY_AFTER_S, max(_MIN_RETRY_AFTER_S, estimate)), 2)


def next_limit(limit: int, most: int, lag_s: float, max_lag_s: float,
               late_before: int, hold: int) -> int:
    """The handshakes allowed after a probe that found the loop `lag_s` late, given the
    probes in a row late before it and the probes left to hold after the last cut."""
    late = lag_s > 2 * max_lag_s or (lag_s > max_lag_s and late_before >= 1)
    if late and hold == 0:
        return max(1, limit // 2)
    if lag_s < max_lag_s / 2:
        return min(most, limit + 1)
    return limit


class HandshakePlace:
    """One admitted join's place. release() is idempotent; the admission calls it itself
    after max_hold_s."""

    def __init__(self, admission: JoinAdmission) -> None:
        self._admission = admission
        self._started = admission.clock()
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            admission.max_hold_s, self._expire)
        self.released = False

    def release(self) -> None:
        """The handshake ended (connected, failed, or the viewer left): the next may start."""
        if self.released:
            return
        self.released = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._admission._release(self._admission.clock() - self._started)

    def _expire(self) -> None:
        self._timer = None
        if not self.released:
            self._admission.expired += 1
            self.release()


class JoinAdmission:
    """At most max_handshakes joins in their handshake, max_waiting more in a queue."""

    def __init__(self, max_handshakes: int = DEFAULT_MAX_HANDSHAKES,
                 max_waiting: int = DEFAULT_MAX_WAITING,
                 max_hold_s: float = DEFAULT_MAX_HOLD_S,
                 max_lag_s: float | None = DEFAULT_MAX_LAG_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(max_handshakes, int) or max_handshakes < 1:
            raise invalid(f"max_handshakes must be an integer >= 1, got {max_handshakes!r}")
        if not isinstance(max_waiting, int) or max_waiting < 0:
            raise invalid(f"max_waiting must be an integer >= 0, got {max_waiting!r}")
        if not isinstance(max_hold_s, (int, float)) or not max_hold_s > 0:
            raise invalid(f"max_hold_s must be > 0, got {max_hold_s!r}")
        self.max_handshakes = max_handshakes
        self.max_waiting = max_waiting
        self.max_hold_s = float(max_hold_s)
        self.max_lag_s = max_lag_s  # None: no probe, the limit stays max_handshakes
        self.clock = clock
        self.limit = max_handshakes
        self.lag_s = 0.0
        self._late_probes = 0  # probes in a row past max_lag_s, before this one
        self._limit_before = max_handshakes
        self._hold = 0  # probes left before the limit may be cut again
        self._probe: asyncio.TimerHandle | None = None
        self._probe_due = 0.0
        self.handshakes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.handshake_s = _FIRST_HANDSHAKE_S  # moving average of handshake durations
        self.admitted = 0
        self.waited = 0
        self.refused = 0
        self.expired = 0
        self.most_waiting = 0  # the queue's high-water mark (tests: it never passes its bound)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def stats(self) -> AdmissionStats:
        return AdmissionStats(self.handshakes, self.waiting, self.max_handshakes,
                              self.max_waiting, self.admitted, self.waited, self.refused,
                              self.expired, self.limit, round(self.lag_s, 4))

    def close(self) -> None:
        """Stop the lag probe (the owner calls it; places still held just expire)."""
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None

    def _arm_probe(self) -> None:
        if self.max_lag_s is None or self._probe is not None:
            return
        loop = asyncio.get_running_loop()
        self._probe_due = loop.time() + _PROBE_S
        self._probe = loop.call_at(self._probe_due, self._on_probe)

    def _on_probe(self) -> None:
        self._probe = None
        assert self.max_lag_s is not None
        self.lag_s = max(0.0, asyncio.get_running_loop().time() - self._probe_due)
        self.limit = next_limit(self.limit, self.max_handshakes, self.lag_s, self.max_lag_s,
                                self._late_probes, self._hold)
        if self.lag_s > self.max_lag_s:
            self._late_probes += 1
        else:
            self._late_probes = 0
        cut = self.limit < self._limit_before
        self._hold = _CUT_HOLD_PROBES if cut else max(0, self._hold - 1)
        self._limit_before = self.limit
        self._wake()
        if self.handshakes or self._waiters:
            self._arm_probe()  # idle: no timer runs

    async def admit(self) -> HandshakePlace:
        """Wait for a place (in order of arrival). Raises MediaError unavailable with
        `retry_after` when max_waiting joins already wait."""
        self._arm_probe()
        if self.handshakes < self.limit and not self._waiters:
            self.handshakes += 1
            self.admitted += 1
            return HandshakePlace(self)
        if len(self._waiters) >= self.max_waiting:
            self.refused += 1
            retry = retry_after_s(len(self._waiters), self.limit, self.handshake_s)
            raise unavailable(f"too many viewers joining at once; retry after {retry:g} s",
                              retry_after=retry, reason="joins_busy")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.most_waiting = max(self.most_waiting, len(self._waiters))
        try:
            await waiter  # _wake counted our place in handshakes
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release(None)  # handed a place just as we were cancelled: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        self.admitted += 1
        self.waited += 1
        return HandshakePlace(self)

    def _release(self, took_s: float | None) -> None:
        if took_s is not None:
            # Moving average over ~10 handshakes: retry_after follows the load.
            self.handshake_s += (took_s - self.handshake_s) / 10
        self.handshakes -= 1
        self._wake()

    def _wake(self) -> None:
        """Hand free places (under the current limit) to the joins waiting, in order."""
        while self._waiters and self.handshakes < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.handshakes += 1
                waiter.set_result(None)
