"""The figures of `golive bench abr`, from what its viewers decoded and what the server
decided: settle times, freezes, fps and bitrate per rendition. Plain functions of lists
of times, so the tests call them directly (tests/test_bench_abr.py).

Definitions (every time in seconds from the round's start):

- A **freeze** is an interval longer than FREEZE_S = 0.5 s in which a viewer decoded no
  video frame: between two consecutive decoded frames, or from the last one to the end
  of the window (a picture still frozen when the window closes counts, up to there).
  0.5 s is the issue's bound ("no freeze longer than 500 ms") and the threshold of
  Agora's video freeze stats (RemoteVideoStats.totalFrozenTime: "the time interval
  between two adjacent renderable video frames is more than 500 ms", at >= 5 fps). The
  W3C's webrtc-stats `freezeCount` is stricter: an interval of at least
  max(3 x the average frame duration, the average + 150 ms), i.e. ~183 ms at 30 fps
  (https://www.w3.org/TR/webrtc-stats/#dom-rtcinboundrtpstreamstats-freezecount).
  Freezes per viewer-minute = freezes in the window / (window seconds / 60).
- A viewer's **settle time** after a step of the schedule is the time from the step to
  the last change of its rendition before the next step (or the round's end): the move
  that put it where it stayed. None when it did not move. Measured twice: on the
  server's decisions (the ABR rule's log line) and on the decoded frames' height (what
  the viewer saw: the switch waits for a keyframe, and a stalled decoder never shows
  it). `first_s` is the time to the first move (a ladder of three may take two steps).
- **fps and bitrate per rendition**: windows of >= 1 s between the viewer's reports in
  which every decoded frame had the same height; fps = frames / window, kbit/s = video
  RTP bytes received (payload + 12-byte header, retransmissions included) / window.
  Windows with no frame (a freeze) or two heights (a switch) belong to no rendition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.figures import distribution

FREEZE_S = 0.5
WINDOW_S = 1.0


def freezes(times: Sequence[float], start: float, end: float,
            threshold_s: float = FREEZE_S) -> list[tuple[float, float]]:
    """[(began_at, duration_s)] of every interval over `threshold_s` without a decoded
    frame that ends inside (start, end], `times` being the frames' times in order. The
    interval before the first frame in the window starts at the last frame before
    `start` (or at `start`); one still open at `end` is counted up to `end`."""
    before = [t for t in times if t <= start]
    last = before[-1] if before else start
    out = []
    for t in times:
        if t <= start:
            continue
        if t > end:
            break
        if t - last > threshold_s:
            out.append((last, t - last))
        last = t
    if end - last > threshold_s:
        out.append((last, end - last))
    return out


def freeze_figures(times: Sequence[float], start: float, end: float) -> dict[str, Any]:
    """{"count", "per_viewer_minute", "longest_ms", "frozen_ms", "freezes": [[at, ms]]}
    over the window (start, end]."""
    found = freezes(times, start, end)
    minutes = max(end - start, 1e-9) / 60
    return {"count": len(found), "per_viewer_minute": round(len(found) / minutes, 3),
            "longest_ms": round(max((d for _, d in found), default=0.0) * 1000),
            "frozen_ms": round(sum(d for _, d in found) * 1000),
            "freezes": [[round(at, 3), round(d * 1000)] for at, d in found]}


def transitions(series: Sequence[tuple[float, Any]]) -> list[tuple[float, Any]]:
    """The points of a (time, value) series where the value changes (the first one
    included): a per-frame height series becomes its switches."""
    out: list[tuple[float, Any]] = []
    for t, value in series:
        if not out or out[-1][1] != value:
            out.append((t, value))
    return out


def value_at(changes: Sequence[tuple[float, Any]], t: float, initial: Any = None) -> Any:
    """The value of a transitions list at time `t` (`initial` before its first point)."""
    value = initial
    for at, v in changes:
        if at > t:
            break
        value = v
    return value


def settle(changes: Sequence[tuple[float, Any]], step_at: float, until: float,
           initial: Any = None) -> dict[str, Any]:
    """After a step at `step_at`: {"settle_s": from the step to the last change before
    `until` (None: no change), "first_s": to the first change, "from": the value at the
    step, "to": the value at `until`, "moves": changes in between}."""
    inside = [(t, v) for t, v in changes if step_at <= t < until]
    return {"settle_s": round(inside[-1][0] - step_at, 3) if inside else None,
            "first_s": round(inside[0][0] - step_at, 3) if inside else None,
            "from": value_at(changes, step_at - 1e-9, initial),
            "to": value_at(changes, until - 1e-9, initial), "moves": len(inside)}


def rendition_windows(samples: Sequence[tuple[float, int, int]],
                      frames: Sequence[tuple[float, int]],
                      window_s: float = WINDOW_S) -> list[dict[str, Any]]:
    """Windows of >= `window_s` between consecutive report samples (time, frames decoded,
    video bytes), each with the height of its frames when they all had one: [{"t": start,
    "seconds", "height" (None: no frame or two heights), "fps", "kbps"}]."""
    out = []
    i, k = 0, 0  # k: the first frame not before samples[i]
    for j in range(1, len(samples)):
        t0, f0, b0 = samples[i]
        t1, f1, b1 = samples[j]
        if t1 - t0 < window_s:
            continue
        while k < len(frames) and frames[k][0] <= t0:
            k += 1
        heights = set()
        while k < len(frames) and frames[k][0] <= t1:
            heights.add(frames[k][1])
            k += 1
        seconds = t1 - t0
        out.append({"t": round(t0, 3), "seconds": round(seconds, 3),
                    "height": heights.pop() if len(heights) == 1 else None,
                    "fps": round((f1 - f0) / seconds, 2),
                    "kbps": round((b1 - b0) * 8 / seconds / 1000, 1)})
        i = j
    return out


def per_rendition(windows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{height: {"windows": n, "fps": distribution, "kbps": distribution}} over the
    windows that had one height."""
    by: dict[int, list[dict[str, Any]]] = {}
    for window in windows:
        if window["height"] is not None:
            by.setdefault(window["height"], []).append(window)
    return {str(h): {"windows": len(ws), "fps": distribution(w["fps"] for w in ws),
                     "kbps": distribution(w["kbps"] for w in ws)}
            for h, ws in sorted(by.items(), reverse=True)}


# The settled span starts this long after the picture first changed at a drop: the
# queue the top rung filled (400 ms of tbf's, bench/netns.py) drains and the switch's
# keyframe is through, as tests/media/test_abr_netem.py waits before it measures.
SETTLED_AFTER_S = 2.0


def settled(times: Sequence[float], first_change_s: float | None, until: float,
            after_s: float = SETTLED_AFTER_S) -> dict[str, Any] | None:
    """What the issue asks of a viewer once it has settled after a drop (>= 25 fps, no
    freeze over 500 ms): over (first decoded change + `after_s`, `until`], the fps and the
    freezes (freeze_figures). None when it never changed or the span is under 1 s."""
    if first_change_s is None or until - first_change_s - after_s < WINDOW_S:
        return None
    start = first_change_s + after_s
    frames = sum(1 for t in times if start < t <= until)
    return {"from_s": round(start, 3), "to_s": round(until, 3),
            "fps": round(frames / (until - start), 2),
            **freeze_figures(times, start, until)}
