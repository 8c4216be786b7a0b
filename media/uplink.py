"""The creator's uplink, as the server receives it: figures and a good/fair/poor rule.

Measured on the ingest (media/ingest.py), from what golive's own receiver of the
creator's video sees: RTP payload bytes (retransmissions included), decoded frames and
their size, and the media stream's sequence gaps and interarrival jitter (RFC 3550, the
figures aiortc's receiver reports put in their RTCP RRs). Nothing comes from the
browser, so it works for a creator publishing from any tool.

`UplinkCounters` are cumulative, read at one instant; `uplink_report(before, now)` turns
two of them into the window's rates and applies `uplink_quality`, a plain rule.
"""

from __future__ import annotations

from dataclasses import dataclass

GOOD, FAIR, POOR = "good", "fair", "poor"

# Loss bounds are Chromium's own (GoogCC's loss-based estimator): below 2% it raises its
# rate, between 2% and 10% it holds, above 10% it cuts it. So "fair" is an uplink the
# browser no longer grows on, "poor" one it is backing off from.
LOSS_FAIR = 0.02
LOSS_POOR = 0.10
# Frame rate: the viewers' rule aims at >= 25 fps (issue 18); under 20 motion stutters
# visibly, under 10 it is a slide show. A camera's 30 fps arrives as 29-31 here.
FPS_FAIR = 20.0
FPS_POOR = 10.0
# Interarrival jitter (the RTCP RR figure): on loopback and a quiet LAN 1-10 ms; a
# browser's pacer smoothing a constrained link shows 30-80 ms; past 150 ms frames
# arrive in clumps the encoder's timing no longer explains.
JITTER_FAIR_MS = 50.0
JITTER_POOR_MS = 150.0
# Bitrate: Chromium starts a camera at 300 kbit/s and a moving 640x480 picture settles
# near 1-2.5 Mbit/s; under 150 kbit/s the picture is visibly blocky at any size, under
# 50 kbit/s the sender is starved (its floor is 30 kbit/s).
BITRATE_FAIR_BPS = 150_000
BITRATE_POOR_BPS = 50_000


@dataclass(frozen=True)
class UplinkCounters:
    """The creator's video as received so far (cumulative), read at `at` (monotonic s)."""

    at: float
    bytes: int = 0  # RTP payload and padding bytes, retransmissions included
    frames: int = 0  # frames decoded
    expected: int = 0  # media packets expected (sequence span), retransmissions excluded
    received: int = 0  # media packets received
    jitter_ms: float = 0.0  # RFC 3550 interarrival jitter, now
    width: int = 0  # of the last decoded frame
    height: int = 0


@dataclass(frozen=True)
class UplinkReport:
    """One window of the creator's uplink, with its verdict."""

    quality: str  # good | fair | poor
    reasons: tuple[str, ...]  # why not good, in order of weight; () when good
    bitrate_bps: int
    fps: float
    width: int
    height: int
    loss: float  # fraction of the media packets lost, before retransmission (0-1)
    jitter_ms: float
    window_s: float

    def as_dict(self) -> dict[str, object]:
        """The `live:uplink` push's figures (docs/protocol.md)."""
        return {"quality": self.quality, "reasons": list(self.reasons),
                "bitrate_bps": self.bitrate_bps, "fps": round(self.fps, 1),
                "width": self.width, "height": self.height,
                "loss": round(self.loss, 4), "jitter_ms": round(self.jitter_ms, 1),
                "window_s": round(self.window_s, 2)}


def uplink_quality(*, loss: float, fps: float, jitter_ms: float,
                   bitrate_bps: int) -> tuple[str, tuple[str, ...]]:
    """good, fair or poor, and the reasons for anything less than good (each a short
    phrase such as "loss 12%"). The worst figure decides; no video at all is poor."""
    if fps <= 0:
        return POOR, ("no video arriving",)
    poor: list[str] = []
    fair: list[str] = []

    def grade(is_poor: bool, is_fair: bool, phrase: str) -> None:
        if is_poor:
            poor.append(phrase)
        elif is_fair:
            fair.append(phrase)

    grade(loss >= LOSS_POOR, loss >= LOSS_FAIR, f"loss {loss * 100:.0f}%")
    grade(fps < FPS_POOR, fps < FPS_FAIR, f"{fps:.0f} fps")
    grade(jitter_ms >= JITTER_POOR_MS, jitter_ms >= JITTER_FAIR_MS,
          f"jitter {jitter_ms:.0f} ms")
    grade(bitrate_bps < BITRATE_POOR_BPS, bitrate_bps < BITRATE_FAIR_BPS,
          f"low bitrate {bitrate_bps / 1000:.0f} kbit/s")
    if poor:
        return POOR, tuple(poor + fair)
    if fair:
        return FAIR, tuple(fair)
    return GOOD, ()


def uplink_report(before: UplinkCounters, now: UplinkCounters) -> UplinkReport | None:
    """The window from `before` to `now`; None when it is empty (no time passed) or the
    counters went backwards (a new connection: the caller starts a new window)."""
    window = now.at - before.at
    if window <= 0 or now.bytes < before.bytes or now.frames < before.frames:
        return None
    expected = now.expected - before.expected
    lost = expected - (now.received - before.received)
    # a late or duplicated packet counts as received and can make `lost` negative
    loss = max(lost, 0) / expected if expected > 0 else 0.0
    bitrate = int((now.bytes - before.bytes) * 8 / window)
    fps = (now.frames - before.frames) / window
    quality, reasons = uplink_quality(loss=loss, fps=fps, jitter_ms=now.jitter_ms,
                                      bitrate_bps=bitrate)
    return UplinkReport(quality, reasons, bitrate, fps, now.width, now.height, loss,
                        now.jitter_ms, window)
