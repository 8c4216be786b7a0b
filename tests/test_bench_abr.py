"""`golive bench abr`: its rules (schedule parsing, settle times, freezes, per-rendition
windows) as plain functions, and one short real run over a shaped namespace that checks
result.json's shape and that nothing is left running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import abr_figures
from bench.netns import Shaping
from bench.shaping_schedule import kinds, needs_netem, parse_schedule, parse_spec, step_kind
from tests.support import netns

ROOT = Path(__file__).resolve().parent.parent

# --- the schedule -------------------------------------------------------------------


def test_the_default_schedule_is_a_drop_then_a_recovery():
    steps = parse_schedule("0:300kbit/2%,20:off")
    assert [s.at_s for s in steps] == [0, 20]
    assert steps[0].shaping == Shaping(rate_bps=300_000, loss=0.02)
    assert steps[1].shaping == Shaping()
    assert kinds(steps) == ["drop", "recovery"]
    assert not needs_netem(steps)


def test_specs_take_rates_losses_and_delays_in_any_order():
    assert parse_spec("1.5mbit") == Shaping(rate_bps=1_500_000)
    assert parse_spec("5%/64000bit") == Shaping(rate_bps=64_000, loss=0.05)
    assert parse_spec(" OFF ") == Shaping()
    assert parse_spec("40ms/2%") == Shaping(loss=0.02, delay_ms=40)
    assert needs_netem(parse_schedule("0:40ms,5:off"))


@pytest.mark.parametrize("text, why", [
    ("", "no step"),
    ("20", "AT:SPEC"),
    ("5:off,5:300kbit", "increase"),
    ("10:off,5:300kbit", "increase"),
    ("-1:off", ">= 0"),
    ("0:300kbps", "not a rate"),
    ("0:300kbit/400kbit", "two rates"),
    ("0:100%", "loss must be"),
    ("0:0%", "loss must be"),
    ("0:1000bit", "rate must be"),
    ("0:0ms", "delay must be"),
    ("x:off", "not a number"),
    ("nan:off", "not a number"),
    ("0:300kbit/", "empty part"),
])
def test_a_bad_schedule_says_what_is_wrong(text, why):
    with pytest.raises(ValueError, match=why):
        parse_schedule(text)


def test_step_kinds_compare_with_the_step_before():
    thin = Shaping(rate_bps=300_000, loss=0.02)
    assert step_kind(Shaping(), thin) == "drop"
    assert step_kind(thin, Shaping(rate_bps=300_000)) == "recovery"
    assert step_kind(thin, Shaping(rate_bps=200_000, loss=0.02)) == "drop"
    assert step_kind(thin, Shaping(rate_bps=500_000, loss=0.05)) == "change"
    assert step_kind(thin, thin) == "same"
    assert kinds(parse_schedule("0:off,10:500kbit,25:200kbit/5%,40:off")) == [
        "same", "drop", "drop", "recovery"]


def test_the_cli_refuses_a_step_past_the_round(capsys):
    from bench.cli import main

    assert main(["abr", "--schedule", "0:300kbit,50:off", "--seconds", "40"]) == 2
    assert "before --seconds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["abr", "--schedule", "0:300kbps"])
    assert "not a rate" in capsys.readouterr().err


# --- settle times ---------------------------------------------------------------------


def test_settle_is_the_last_move_before_the_next_step():
    moves = [(3.5, 180), (12.0, 360), (14.0, 180)]  # down, a failed climb, down again
    drop = abr_figures.settle(moves, 0.0, 20.0, initial=360)
    assert drop == {"settle_s": 14.0, "first_s": 3.5, "from": 360, "to": 180, "moves": 3}
    moves = [(3.5, 180), (28.7, 360)]
    assert abr_figures.settle(moves, 0.0, 20.0, 360)["settle_s"] == 3.5
    recovery = abr_figures.settle(moves, 20.0, 40.0, 360)
    assert recovery == {"settle_s": 8.7, "first_s": 8.7, "from": 180, "to": 360, "moves": 1}


def test_settle_is_none_when_the_viewer_did_not_move():
    assert abr_figures.settle([], 0.0, 20.0, 360) == {
        "settle_s": None, "first_s": None, "from": 360, "to": 360, "moves": 0}
    # a move after the window belongs to the next step
    assert abr_figures.settle([(25.0, 180)], 0.0, 20.0, 360)["settle_s"] is None


def test_transitions_keep_only_the_changes_of_a_per_frame_series():
    frames = [(0.0, 360), (0.03, 360), (4.1, 180), (4.13, 180), (30.0, 360)]
    assert abr_figures.transitions(frames) == [(0.0, 360), (4.1, 180), (30.0, 360)]
    assert abr_figures.value_at([(4.1, 180)], 4.0, 360) == 360
    assert abr_figures.value_at([(4.1, 180)], 4.1, 360) == 180


# --- freezes --------------------------------------------------------------------------


def frames_every(start: float, stop: float, step: float = 1 / 30) -> list[float]:
    n = round((stop - start) / step)
    return [start + i * step for i in range(n + 1)]


def test_a_freeze_is_a_gap_over_500_ms_between_decoded_frames():
    times = frames_every(0, 5) + frames_every(5.6, 10)  # a 600 ms gap
    found = abr_figures.freezes(times, 0.0, 10.0)
    assert len(found) == 1
    assert found[0][0] == pytest.approx(5.0)
    assert found[0][1] == pytest.approx(0.6)
    # 500 ms exactly is not over the threshold
    assert abr_figures.freezes([0.0, 0.5, 1.0], 0.0, 1.0) == []


def test_a_decoder_stalled_at_the_end_of_the_window_counts_up_to_the_end():
    times = frames_every(-2, 4)  # the viewer stops decoding at 4 s
    found = abr_figures.freezes(times, 0.0, 20.0)
    assert found == [(pytest.approx(4.0), pytest.approx(16.0))]
    figures = abr_figures.freeze_figures(times, 0.0, 20.0)
    assert figures["count"] == 1
    assert figures["per_viewer_minute"] == 3.0  # 1 in 20 s
    assert figures["longest_ms"] == 16000
    assert figures["freezes"] == [[4.0, 16000]]


def test_a_gap_across_the_window_start_is_measured_from_the_last_frame_before():
    times = [-0.3, 0.4, 0.45]
    assert abr_figures.freezes(times, 0.0, 0.5) == [(pytest.approx(-0.3), pytest.approx(0.7))]
    assert abr_figures.freezes([], 0.0, 0.4) == []  # nothing before, nothing after: 0.4 s
    assert abr_figures.freezes([], 0.0, 2.0) == [(0.0, 2.0)]


def test_freezes_per_viewer_minute_of_a_smooth_viewer_are_zero():
    figures = abr_figures.freeze_figures(frames_every(0, 60), 0.0, 60.0)
    assert figures == {"count": 0, "per_viewer_minute": 0.0, "longest_ms": 0,
                       "frozen_ms": 0, "freezes": []}


def test_settled_fps_and_freezes_start_two_seconds_after_the_picture_changed():
    # 30 fps from 0 to 20 s but for a 0.8 s freeze at 10 s; the picture changed at 4 s
    times = [t for t in frames_every(0, 20) if not 10.0 < t < 10.8]
    span = abr_figures.settled(times, 4.0, 20.0)
    assert span is not None and (span["from_s"], span["to_s"]) == (6.0, 20.0)
    assert span["count"] == 1 and 790 <= span["longest_ms"] <= 840
    assert 28.0 <= span["fps"] <= 30.0


def test_no_settled_span_without_a_change_or_time_after_it():
    times = frames_every(0, 20)
    assert abr_figures.settled(times, None, 20.0) is None
    assert abr_figures.settled(times, 18.0, 20.0) is None  # under 1 s once settled


# --- fps and bitrate per rendition -----------------------------------------------------


def test_windows_with_one_height_give_that_renditions_fps_and_bitrate():
    # reports every 0.25 s; 30 fps at 360 (75 kB/s = 600 kbit/s) for 2 s, then 180 at
    # 150 kbit/s for 2 s, frame times strictly inside the report periods
    samples, frames = [], []
    t, n, b = 0.0, 0, 0
    while t < 4.0 - 1e-9:
        height, rate = (360, 75_000) if t < 2.0 else (180, 18_750)
        frames += [(t + 0.01 + i / 30, height) for i in range(7 if int(t * 4) % 4 else 8)]
        n += 7 if int(t * 4) % 4 else 8
        samples.append((t, n - (7 if int(t * 4) % 4 else 8), b))
        b += int(rate * 0.25)
        t += 0.25
    samples.append((4.0, n, b))
    windows = abr_figures.rendition_windows(samples, frames)
    assert [w["height"] for w in windows] == [360, 360, 180, 180]
    assert windows[0]["kbps"] == pytest.approx(600.0)
    assert windows[2]["kbps"] == pytest.approx(150.0)
    assert windows[0]["fps"] == pytest.approx(29.0)
    summary = abr_figures.per_rendition(windows)
    assert list(summary) == ["360", "180"]
    assert summary["180"]["windows"] == 2
    assert summary["360"]["kbps"]["p50"] == pytest.approx(600.0)


def test_a_window_with_a_switch_or_no_frame_belongs_to_no_rendition():
    samples = [(0.0, 0, 0), (1.0, 30, 75_000), (2.0, 30, 75_000)]
    frames = [(0.5, 360), (0.9, 180)]
    windows = abr_figures.rendition_windows(samples, frames)
    assert [w["height"] for w in windows] == [None, None]
    assert abr_figures.per_rendition(windows) == {}


# --- the server's decisions, from its log ------------------------------------------------


def test_moves_are_read_from_the_servers_json_log():
    from bench.abr import moves_from_log

    text = "\n".join([
        json.dumps({"ts": 100.5, "level": "info", "logger": "media.room",
                    "msg": "room L1: viewer abc moves to 180 (loss 0.083, rtt 0.02)"}),
        json.dumps({"ts": 101.0, "level": "info", "logger": "media.room",
                    "msg": "room L1: viewer other moves to 180 (loss 0.1, rtt None)"}),
        "not json moves to",
        json.dumps({"ts": 109.25, "level": "info", "logger": "media.room",
                    "msg": "room L1: viewer abc moves to 360 (loss 0.000, rtt 0.01)"}),
    ])
    assert moves_from_log(text, {"abc"}) == {"abc": [(100.5, 180), (109.25, 360)]}


# --- one real run ---------------------------------------------------------------------

_reason = netns.unavailable_reason()


def _alive(pid: int) -> bool:
    """A process that runs (a zombie is not running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.skipif(_reason is not None, reason=str(_reason))
def test_a_short_real_run_writes_its_figures_and_leaves_nothing_running(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench", "abr", "--rounds", "1", "--seconds", "12",
         "--schedule", "0:300kbit/2%,6:off", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = tmp_path.glob("abr-*")
    result = json.loads((run_dir / "result.json").read_text())
    assert result["errors"] == [] and not result["interrupted"]
    assert [s["kind"] for s in result["schedule"]] == ["drop", "recovery"]
    (rnd,) = result["rounds"]
    assert set(rnd["viewers"]) == {"unlimited", "shaped1"}
    for role, viewer in rnd["viewers"].items():
        assert viewer["shaped"] == (role == "shaped1")
        assert viewer["frames"] > 0
        assert viewer["decoded"][0] == [0.0, 360]  # warmed up on the top rendition
        assert [s["kind"] for s in viewer["settle"]] == ["drop", "recovery"]
        for step in viewer["settle"]:
            assert set(step["server"]) == {"settle_s", "first_s", "from", "to", "moves"}
            assert set(step["decoded"]) == {"settle_s", "first_s", "from", "to", "moves"}
        assert set(viewer["freezes"]) == {"count", "per_viewer_minute", "longest_ms",
                                          "frozen_ms", "freezes"}
    # the unlimited viewer keeps the top rendition; its fps and bitrate are measured
    unlimited = rnd["viewers"]["unlimited"]
    assert unlimited["decisions"] == []
    assert "360" in unlimited["per_rendition"]
    summary = result["summary"]
    assert set(summary) == {"unlimited", "shaped1"}
    for figures in summary.values():
        assert set(figures) == {"settle", "freezes_per_viewer_minute", "longest_freeze_ms",
                                "per_rendition", "settled_fps", "settled_longest_freeze_ms",
                                "settled_freezes"}
    # the shaped viewer's keyframe-aware buffer reports what it did
    assert set(rnd["viewers"]["shaped1"]["buffer"]) == {"skips", "dropped", "plis"}
    top = summary["unlimited"]["per_rendition"]["360"]
    assert top["windows"] > 0 and set(top["fps"]) == set(top["kbps"]) == {"p5", "p50", "p95"}
    assert (run_dir / "server.log").exists()
    # nothing left: no namespace of the run, no process it started (server, its Redis,
    # creator, every viewer child of every round)
    assert result["left_running"] == {"namespaces": []}
    assert result["namespaces"] == ["golive-210"]
    assert "golive-210" not in netns.listed()
    started = result["pids"]
    assert {"server", "redis", "creator", "round1-unlimited", "round1-shaped1"} <= set(started)
    assert [name for name, pid in started.items() if _alive(pid)] == []
    assert "settle s p50 (p95)" in done.stdout


@pytest.mark.skipif(_reason is not None, reason=str(_reason))
def test_ctrl_c_mid_round_stops_everything_and_deletes_the_namespace(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "abr", "--rounds", "1", "--seconds", "60",
         "--out", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # progress lines; the schedule is playing at "t="
            if "round 1/1 t=" in line:
                break
        else:
            errors = [json.loads(path.read_text())["errors"]
                      for path in tmp_path.glob("abr-*/result.json")]
            pytest.fail(f"the run ended before its round: {proc.wait()}, {errors}")
        assert "golive-210" in netns.listed()
        proc.send_signal(2)  # SIGINT, as a terminal's Ctrl-C
        _out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    (run_dir,) = tmp_path.glob("abr-*")
    result = json.loads((run_dir / "result.json").read_text())
    assert result["interrupted"] and result["errors"] == []
    assert result["left_running"] == {"namespaces": []}
    assert "golive-210" not in netns.listed()
    assert {"server", "creator", "round1-unlimited", "round1-shaped1"} <= set(result["pids"])
    assert [name for name, pid in result["pids"].items() if _alive(pid)] == []


@pytest.mark.skipif(_reason is not None, reason=str(_reason))
def test_clean_stale_leaves_a_namespace_whose_owner_still_runs():
    """A test's clean-up once deleted a running bench's namespace mid-round: the owner's
    pid is kept beside each namespace, and only a namespace whose owner is gone is
    stale. (Only index 213 is touched: other namespaces may be a parallel run's.)"""
    from bench.netns import OWNERS

    owner = subprocess.Popen(["sleep", "60"])
    name = "golive-213"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True)
        OWNERS.mkdir(exist_ok=True)
        (OWNERS / name).write_text(str(owner.pid))
        assert netns.clean_stale([213]) == []
        assert name in netns.listed()
        with pytest.raises(RuntimeError, match="in use"):
            netns.Namespace(213).open()
        owner.kill()
        owner.wait()
        assert netns.clean_stale([213]) == [name]
        assert name not in netns.listed()
        assert not (OWNERS / name).exists()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        (OWNERS / name).unlink(missing_ok=True)


@pytest.mark.skipif(_reason is not None, reason=str(_reason))
def test_a_namespace_named_outside_the_prefix_is_out_of_clean_stales_reach():
    """A Chromium test's namespace vanished mid-run (another checkout's clean-up deleted
    every golive-* namespace): one opened under its own name (tests/
    test_browser_abr_netns.py's glchrome-230) is never stale to anyone's clean_stale, and
    its addresses still follow the index."""
    with netns.Namespace(231, "glchrome-231") as ns:
        assert (ns.name, ns.root_addr, ns.ns_addr) == ("glchrome-231", "10.200.231.1",
                                                       "10.200.231.2")
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert "glchrome-231" in listed
        assert "glchrome-231" not in netns.listed()
        assert netns.clean_stale([231]) == []
        assert ns.exec_run("ip", "-o", "addr", "show", "dev", ns.ns_dev).stdout.count(
            "10.200.231.2/30") == 1
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "glchrome-231" not in listed


def _chromium_samples(heights: list[tuple[float, int]], fps: float = 30.0,
                      frozen: dict[float, float] | None = None) -> list[dict]:
    """getStats-like samples every 0.5 s: frames at `fps`, the picture's height from the
    (from_t, height) steps, totalFreezesDuration growing by `frozen` at the given times."""
    samples, total = [], 0.0
    for i in range(81):  # 40 s
        t = i / 2
        height = [h for at, h in heights if at <= t][-1]
        total += (frozen or {}).get(t, 0.0)
        samples.append({"t": t, "height": height, "stats": {
            "framesDecoded": int(t * fps), "freezeCount": 0, "totalFreezesDuration": total,
            "packetsLost": 0, "keyFramesDecoded": 0}})
    return samples


def test_a_chromium_viewers_settled_span_runs_from_8_s_to_the_lift_at_any_top():
    from bench.chromium_abr import summarize

    samples = _chromium_samples([(0, 720), (4.5, 180), (31.5, 720)], frozen={2.0: 3.0, 9.0: 0.3})
    figures = summarize(samples, lift_at=20.0, end=40.0, top=720)
    assert figures["picture_down_s"] == 4.5 and figures["picture_up_s"] == 11.5
    # the freeze at the drop (2 s) is before the settled span, the 0.3 s one in it
    assert figures["settled"] == {"fps": 30.0, "freezes": 0, "frozen_s": 0.3, "heights": [180]}
    # a shaped span shorter than 16 s: its second half (from 5 s here)
    short = summarize(samples, lift_at=10.0, end=40.0, top=720)
    assert short["settled"]["fps"] == 30.0 and short["settled"]["heights"] == [180]
