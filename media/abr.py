"""Which rendition a viewer on "auto" gets, from what its own link reports.

The inputs are what a viewer's RTCP already carries: its receiver reports (0.5-1.5 s
apart from aiortc; from Chromium with every NACK too, so several a second on a lossy
link) give, over windows of at least 1 s (media/viewer.py LOSS_WINDOW_S), the fraction
of our packets lost and, through LSR/DLSR, the round-trip time; a bandwidth estimate
(REMB) counts only when the room asks for it (GOLIVE_VIEWER_REMB; golive's offers do
not otherwise: media/negotiation.py).

Down fast, up slow. A link is congested when loss is over 5%, the RTT has risen 250 ms
above its floor (a queue filling at the bottleneck; the floor is the least RTT seen,
creeping up 2 ms a report, so a path that got longer for good stops counting as
congested within ~2 minutes instead of pinning the viewer low), or the estimate is under
85% of the rung's bitrate; after 2 s of it (at once on a window losing 25% or more: a
link cut far under the rung, no blip over a 1 s window) the viewer steps down, straight
to the rung whose bitrate x 1.2 the estimate carries. Without a receiver's estimate,
the span's worst loss gives one: what got through, the rung's bitrate x (1 - loss)
(libwebrtc's loss-based estimate is the same idea; a queue filling reads as RTT first,
its drops come after).
It steps up one rung after 6 s with loss at most 2%, no RTT rise and an estimate, if
any, at least the rung's bitrate, and then, while the climb holds, one more rung every
4 s. Measured (python -m bench.chromium_abr --creator chromium --rounds 3: a 720p
Chromium creator, a viewer's link cut to 300 kbit/s with 2% loss, lifted at 20 s; README
"abr" has the table): one rung at a time down, the viewer went 720 -> 360 at ~3.5 s and
-> 180 at ~6.5 s, 360p overfilling the link meanwhile, and with 8 s at each rung up it was
back at 720 14.5-19.8 s after the lift, past the 15 s a viewer expects. Now, in clean
rounds (load 1-4): first move after 1.4 s (0.9-1.5; 3.0 s with the 2 s wait), the
picture at 180 after 2.1 s (3.6), frozen 7.0 s a minute while shaped (10.4), ~30 fps
with no freeze once settled, back at 720 11.3 s (9.7-12.5) after the lift.
Loss for that step up is also read before our resends (`nacked`: what the viewer NACKed):
a receiver counts a resent packet as received, so on a link that loses 2% and whose
resends get through its reports read 0% loss. Measured (bench abr, 300 kbit/s and 2%
loss, 180p fitting the link): reports of loss 0.000 and the viewer stepped up to 360p
8-12 s after it settled, into a link that cannot carry it, and froze 2-5 s each time.
A receiver's estimate cannot show room above what it receives (it tracks the incoming
rate, ~1.0-1.5x: aiortc's gave 1.80 Mbit/s for a 1.8 Mbit/s rendition, and nothing
probes for more), so it only ever says "down" or "not now", never how far up. A step up
that was followed by a step down within 10 s doubles the wait for the next one (up to
60 s): a link that cannot carry a rung is not made to stall on it every 6 s.

Everything here is a plain function of a frozen state: the room keeps one AbrState per
viewer and calls decide() with each report (tests call it directly, with their clock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class AbrConfig:
    """The rule's thresholds (seconds, fractions)."""

    down_after_s: float = 2.0
    up_after_s: float = 6.0
    climb_after_s: float = 4.0  # the next rung up, after a step up that held
    loss_down: float = 0.05
    loss_heavy: float = 0.25  # a window losing this much moves at once, not after 2 s
    loss_up: float = 0.02
    headroom: float = 1.2  # a rung the estimate carries: bitrate x this <= estimate
    estimate_down: float = 0.85  # congested: estimate under the rung's bitrate x this
    rtt_rise_s: float = 0.25
    rtt_floor_drift_s: float = 0.002  # per report (~1 a second)
    failed_up_window_s: float = 10.0
    max_up_wait_s: float = 60.0


@dataclass(frozen=True)
class LinkReport:
    """One report of a viewer's link."""

    loss: float  # fraction of packets lost since the previous report, 0-1
    rtt_s: float | None = None  # round-trip time, when the report allowed computing it
    estimate_bps: int | None = None  # the receiver's bandwidth estimate, when it sends one
    # the fraction of our packets it NACKed (each number once), over the same window:
    # the link's loss before our resends, which the receiver's own count hides
    nacked: float | None = None


@dataclass(frozen=True)
class AbrState:
    """A viewer's place on the ladder and the clocks of the rule (None: not running)."""

    rung: int  # 0 is the best
    bad_since: float | None = None
    good_since: float | None = None
    up_wait_s: float = AbrConfig.up_after_s
    last_up_at: float | None = None
    min_rtt_s: float | None = None
    worst_loss: float = 0.0  # the most a report lost since bad_since: how far to step down


def decide(state: AbrState, report: LinkReport, now: float, bitrates: Sequence[int],
           config: AbrConfig = AbrConfig()) -> AbrState:
    """The state after `report` arrived at `now`; its `rung` is the rendition the viewer
    should get (an index into `bitrates`, best first)."""
    rung = min(state.rung, len(bitrates) - 1)
    min_rtt = state.min_rtt_s
    rtt_rose = False
    if report.rtt_s is not None:
        min_rtt = (report.rtt_s if min_rtt is None
                   else min(min_rtt + config.rtt_floor_drift_s, report.rtt_s))
        rtt_rose = report.rtt_s > min_rtt + config.rtt_rise_s
    estimate = report.estimate_bps
    up_wait, last_up = state.up_wait_s, state.last_up_at
    # AbrState(...) written out, not dataclasses.replace(): one report runs it for each
    # viewer every second: 2.0 us a call this way, 12.5 us with replace() (measured).

    congested = (report.loss > config.loss_down or rtt_rose
                 or (estimate is not None and estimate < bitrates[rung] * config.estimate_down))
    if congested:
        bad_since = state.bad_since if state.bad_since is not None else now
        worst = max(state.worst_loss if state.bad_since is not None else 0.0, report.loss)
        heavy = report.loss >= config.loss_heavy  # over >= 1 s (media/viewer.py): no blip
        if (now - bad_since < config.down_after_s and not heavy) or rung == len(bitrates) - 1:
            return AbrState(rung, bad_since, None, up_wait, last_up, min_rtt, worst)
        target = rung + 1
        # the span's worst report: a queue filling first reads as RTT, its drops come after
        carried = (estimate if estimate is not None
                   else bitrates[rung] * (1 - worst) if worst > config.loss_down
                   else None)  # RTT alone says "down", not how far: one rung
        if carried is not None:  # straight to the rung the link carries
            while target < len(bitrates) - 1 and bitrates[target] * config.headroom > carried:
                target += 1
        failed_up = last_up is not None and now - last_up <= config.failed_up_window_s
        # a failed climb step (4 s) doubles from the first step's 6 s, as a failed first
        up_wait = (min(max(up_wait, config.up_after_s) * 2, config.max_up_wait_s) if failed_up
                   else config.up_after_s)
        return AbrState(target, None, None, up_wait, last_up, min_rtt)

    room_up = (rung > 0 and report.loss <= config.loss_up and not rtt_rose
               and (report.nacked is None or report.nacked <= config.loss_up)
               and (estimate is None or estimate >= bitrates[rung]))
    if not room_up:
        return AbrState(rung, None, None, up_wait, last_up, min_rtt)
    good_since = state.good_since if state.good_since is not None else now
    if now - good_since < up_wait:
        return AbrState(rung, None, good_since, up_wait, last_up, min_rtt)
    return AbrState(rung - 1, None, None, min(up_wait, config.climb_after_s), now, min_rtt)
