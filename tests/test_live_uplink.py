"""The creator's uplink as the server measures it: the `uplink_quality` rule, and the
`live:uplink` push a real aiortc creator gets over the real server (Socket.IO, Redis)."""

from __future__ import annotations

from typing import Any

import pytest

from media import aiortc_private
from media.uplink import (
    FAIR,
    GOOD,
    POOR,
    UplinkCounters,
    uplink_quality,
    uplink_report,
)
from signaling.appkeys import LIVES
from tests.support.lossy import DroppingInbound
from tests.support.peers import SocketPeer, go_live, open_tab
from tests.support.poll import poll

# A healthy uplink: a 640x480 camera at 30 fps, 1.2 Mbit/s, no loss, loopback jitter.
HEALTHY = {"loss": 0.0, "fps": 30.0, "jitter_ms": 3.0, "bitrate_bps": 1_200_000}


def test_a_healthy_uplink_is_good_with_no_reasons() -> None:
    assert uplink_quality(**HEALTHY) == (GOOD, ())


@pytest.mark.parametrize(("change", "quality", "reason"), [
    ({"loss": 0.019}, GOOD, None),
    ({"loss": 0.02}, FAIR, "loss 2%"),
    ({"loss": 0.099}, FAIR, "loss 10%"),
    ({"loss": 0.10}, POOR, "loss 10%"),
    ({"fps": 20.0}, GOOD, None),
    ({"fps": 19.5}, FAIR, "20 fps"),
    ({"fps": 9.0}, POOR, "9 fps"),
    ({"jitter_ms": 49.0}, GOOD, None),
    ({"jitter_ms": 50.0}, FAIR, "jitter 50 ms"),
    ({"jitter_ms": 150.0}, POOR, "jitter 150 ms"),
    ({"bitrate_bps": 150_000}, GOOD, None),
    ({"bitrate_bps": 149_000}, FAIR, "low bitrate 149 kbit/s"),
    ({"bitrate_bps": 40_000}, POOR, "low bitrate 40 kbit/s"),
    ({"fps": 0.0}, POOR, "no video arriving"),
])
def test_each_figure_has_a_fair_and_a_poor_bound(change: dict[str, float], quality: str,
                                                 reason: str | None) -> None:
    got, reasons = uplink_quality(**{**HEALTHY, **change})
    assert got == quality
    assert reasons == (() if reason is None else (reason,))


def test_the_worst_figure_decides_and_every_reason_is_given_worst_first() -> None:
    quality, reasons = uplink_quality(loss=0.03, fps=8.0, jitter_ms=60.0, bitrate_bps=900_000)
    assert quality == POOR
    assert reasons == ("8 fps", "loss 3%", "jitter 60 ms")


def test_a_report_is_the_window_between_two_readings() -> None:
    before = UplinkCounters(at=10.0, bytes=1_000, frames=100, expected=1_000, received=990)
    now = UplinkCounters(at=12.0, bytes=301_000, frames=160, expected=1_200, received=1_170,
                         jitter_ms=4.0, width=640, height=480)
    report = uplink_report(before, now)
    assert report is not None
    assert (report.bitrate_bps, report.fps, report.loss) == (1_200_000, 30.0, 0.1)
    assert (report.quality, report.reasons) == (POOR, ("loss 10%",))
    assert report.as_dict() == {"quality": "poor", "reasons": ["loss 10%"],
                                "bitrate_bps": 1_200_000, "fps": 30.0, "width": 640,
                                "height": 480, "loss": 0.1, "jitter_ms": 4.0,
                                "window_s": 2.0}


def test_late_packets_never_make_loss_negative_and_an_empty_window_is_no_report() -> None:
    before = UplinkCounters(at=1.0, bytes=0, frames=0, expected=100, received=95)
    late = UplinkCounters(at=2.0, bytes=50_000, frames=30, expected=200, received=201)
    report = uplink_report(before, late)
    assert report is not None and report.loss == 0.0
    assert uplink_report(before, before) is None
    # counters that went back: a new connection, whose window starts again
    assert uplink_report(late, UplinkCounters(at=3.0, bytes=10, frames=1)) is None


class Creator(SocketPeer):
    PUSHES = ("live:uplink",)




async def test_the_creator_is_pushed_its_uplink_and_sees_loss(client: Any,
                                                              closers: list[Any]) -> None:
    """A real aiortc creator at 320x180, 30 fps: `live:uplink` arrives every ~2 s with its
    size, rate and no loss; when the server loses 1 packet in 5 of its video, the next
    pushes say so (loss ~20%, poor)."""
    ann = await open_tab(client, "ann", closers, peer=Creator)
    on_air = await go_live(ann, closers, size=(320, 180), fps=30)

    def clean() -> Any:
        return next((p for p in ann.got("live:uplink") if p["fps"] >= 10), None)

    first = await poll(clean, timeout=15, what="a live:uplink push with video")
    assert first["live_id"] == on_air.live_id
    assert (first["width"], first["height"]) == (320, 180)
    assert first["loss"] == 0.0 and first["bitrate_bps"] > 20_000
    assert 1.0 <= first["window_s"] <= 6.0  # ~2 s, later on a loaded loop
    assert first["quality"] in (GOOD, FAIR), first  # aiortc's own 320x180 may be thin

    publisher = client.app[LIVES].hosted[ann.user.id].media._publisher
    receiver = next(t.receiver for t in publisher.pc.getTransceivers() if t.kind == "video")
    session = aiortc_private.srtp_inbound(receiver.transport)
    lossy = DroppingInbound(session, publisher._video_ssrc)
    aiortc_private.set_srtp_inbound(receiver.transport, lossy)
    seen = len(ann.got("live:uplink"))
    # the first window after the swap may straddle it: wait for one that is all lossy
    lossy_push = await poll(lambda: next((p for p in ann.got("live:uplink")[seen + 1:]), None),
                            timeout=15, what="a push after the loss began")
    assert 0.15 <= lossy_push["loss"] <= 0.25, lossy_push
    assert lossy_push["quality"] == POOR and lossy_push["reasons"][0].startswith("loss 2")

    lossy.dropping = False
    seen = len(ann.got("live:uplink"))
    healed = await poll(lambda: next((p for p in ann.got("live:uplink")[seen + 1:]), None),
                        timeout=15, what="a push after the loss ended")
    assert healed["loss"] == 0.0, healed
