"""What a run shows: a progress line (stderr), a table (stdout), a JSON file of every figure
and, when matplotlib is installed, PNG plots. Plotting is optional: without matplotlib the
run says so and writes everything else.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from bench.figures import cdf_points

PLAIN_PROGRESS_PERIOD_S = 2.0  # without a terminal, one progress line per 2 s at most


class Progress:
    """One updating line on a terminal; periodic plain lines otherwise (logs, CI)."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last_plain = 0.0
        self._width = 0

    def update(self, text: str) -> None:
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            now = time.monotonic()
            if now - self._last_plain < PLAIN_PROGRESS_PERIOD_S:
                return
            self._last_plain = now
            self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line that stays (step results, warnings)."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, sort_keys=False))
    tmp.replace(path)


def publish(result: dict[str, Any], run_dir: Path, progress: Progress, *,
            render: Callable[[dict[str, Any]], str],
            plots: Callable[[dict[str, Any], Path], list[str]] | None,
            errors: Callable[[dict[str, Any]], Iterable[str]] = lambda r: r["errors"],
            no_plots: str = "") -> None:
    """The end of every bench mode: its plots (None: nothing to plot), result.json, then
    on stdout the table, the errors, and where the JSON and plots are (or `no_plots`)."""
    result["plots"] = []
    if plots is not None:
        try:
            result["plots"] = plots(result, run_dir)
        except Exception as exc:  # a plot must never cost the figures
            progress.note(f"plots failed: {exc}")
    path = run_dir / "result.json"
    write_json(path, result)
    progress.note("")
    print(render(result))
    for error in errors(result):
        print(f"error: {error}")
    print(f"\nJSON: {path}")
    if result["plots"]:
        print(f"plots: {', '.join(str(run_dir / p) for p in result['plots'])}")
    elif no_plots:
        print(no_plots)
    sys.stdout.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def pct(cores: float | None) -> str | None:
    return None if cores is None else f"{cores * 100:.0f}%"


# --- plots --------------------------------------------------------------------


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or None without matplotlib (no plots then)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _sides(result: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(name, side, colour) for golive and, when the run had one, its baseline; sides
    without steps are left out."""
    sides = [("golive", result, "C0")]
    if baseline := result.get("baseline"):
        sides.append((baseline["name"], baseline, "C3"))
    return [side for side in sides if side[1].get("steps")]


def fanout_plots(result: dict[str, Any], run_dir: Path) -> list[str]:
    """cpu.png, fps.png, latency.png, golive and the baseline on the same axes; [] without
    matplotlib."""
    plt = pyplot()
    sides = _sides(result)
    if plt is None or not sides:
        return []
    written = []

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, side, colour in sides:
        steps = side["steps"]
        viewers = [s["viewers"] for s in steps]
        ax.plot(viewers, [(s["cpu"].get("server") or 0) * 100 for s in steps], "o-",
                color=colour, label=f"{name} server")
        ax.plot(viewers, [s["load"]["workers_max"] * 100 for s in steps], "s--",
                color=colour, alpha=0.5, label=f"busiest viewer worker ({name})")
    steps = result["steps"] or sides[0][1]["steps"]
    ax.plot([s["viewers"] for s in steps], [s["cpu"]["others"] * 100 for s in steps], "x:",
            color="grey", label="other processes (not the bench's)")
    ax.axhline(95, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="viewers", ylabel="CPU (% of one core)", title="Server CPU vs viewers")
    _log_x_if_wide(ax, sides)
    ax.legend(fontsize="small")
    written.append(save_png(plt, fig, run_dir / "cpu.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, side, colour in sides:
        steps = side["steps"]
        viewers = [s["viewers"] for s in steps]
        ax.plot(viewers, [s["fps"].get("p50") for s in steps], "o-", color=colour,
                label=f"{name}: median viewer")
        ax.plot(viewers, [s["fps"].get("min") for s in steps], "s--", color=colour,
                alpha=0.5, label=f"{name}: slowest viewer")
    ax.axhline(result["config"]["fps"], color="grey", lw=0.8, ls=":", label="source")
    ax.set(xlabel="viewers", ylabel="frames/s delivered", title="Frame rate vs viewers")
    ax.set_ylim(bottom=0)
    _log_x_if_wide(ax, sides)
    ax.legend(fontsize="small")
    written.append(save_png(plt, fig, run_dir / "fps.png"))

    fig, axes = plt.subplots(1, len(sides), figsize=(6 * len(sides), 4), sharex=True,
                             squeeze=False)
    for ax, (name, side, _) in zip(axes[0], sides, strict=True):
        for step in side["steps"]:
            points = step.get("latency_cdf") or []
            if points:
                n = step["viewers"]
                ax.plot([p[0] for p in points], [p[1] for p in points],
                        label=f"{n} viewer{'s' * (n != 1)}")
        ax.set(xlabel="capture -> last packet arrival (ms, probe viewers)",
               ylabel="fraction of frames", title=f"Added latency: {name}")
        if len(sides) > 1:  # one shared axis for both servers: log, or golive's is a line
            _log_scale(ax.xaxis)
        ax.legend(fontsize="small")
    written.append(save_png(plt, fig, run_dir / "latency.png"))
    return written


def _log_x_if_wide(ax: Any, sides: list[tuple[str, dict[str, Any], str]]) -> None:
    counts = [s["viewers"] for _, side, _ in sides for s in side["steps"]]
    if counts and max(counts) >= 20 * min(counts):  # 1, 10, 50, 200: spread them out
        _log_scale(ax.xaxis)


def join_plots(result: dict[str, Any], run_dir: Path) -> list[str]:
    """joins.png: CDF of time to connected and to the first keyframe."""
    plt = pyplot()
    if plt is None:
        return []
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("connected_s", "connected (ICE+DTLS)"),
                       ("first_keyframe_s", "first keyframe")):
        values = [j[key] for j in result["joins"] if j.get(key) is not None]
        points = cdf_points(values)
        ax.plot([p[0] for p in points], [p[1] for p in points], label=label)
    ax.set(xlabel="seconds after room:join", ylabel="fraction of viewers",
           title=f"Join storm: {result['config']['viewers']} viewers at "
                 f"{result['config']['rate']:g}/s")
    ax.legend()
    return [save_png(plt, fig, run_dir / "joins.png")]


def chat_plots(result: dict[str, Any], run_dir: Path) -> list[str]:
    """chat_deliveries.png, chat_latency.png, chat_cpu.png against the send rate, golive
    and the baseline on the same axes; [] without matplotlib or steps."""
    plt = pyplot()
    sides = _sides(result)
    if plt is None or not sides:
        return []
    written = []

    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, side, colour), style in zip(sides, ("o-", "s--"), strict=False):
        steps = side["steps"]  # dashed squares: still visible on top of golive's line
        ax.plot([s["rate"] for s in steps], [s["deliveries_per_s"] for s in steps], style,
                color=colour, label=name)
    steps = sides[0][1]["steps"]
    ax.plot([s["rate"] for s in steps], [s["expected_deliveries_per_s"] for s in steps], ":",
            color="grey", label="lines sent x members")
    ax.set(xlabel="lines/s sent into the room", ylabel="deliveries/s (line x client)",
           title=f"Chat deliveries: {steps[0]['members']} members")
    ax.legend(fontsize="small")
    written.append(save_png(plt, fig, run_dir / "chat_deliveries.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, side, colour in sides:
        steps = side["steps"]
        rates = [s["rate"] for s in steps]
        ax.plot(rates, [s["latency_ms"]["p50"] for s in steps], "o-", color=colour,
                label=f"{name} p50")
        ax.plot(rates, [s["latency_ms"]["p99"] for s in steps], "s--", color=colour,
                alpha=0.6, label=f"{name} p99")
    ax.set(xlabel="lines/s sent into the room", ylabel="send -> receipt (ms)",
           title="Chat latency vs send rate")
    _log_scale(ax.yaxis)
    ax.legend(fontsize="small")
    written.append(save_png(plt, fig, run_dir / "chat_latency.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, side, colour in sides:
        steps = side["steps"]
        rates = [s["rate"] for s in steps]
        ax.plot(rates, [(s["cpu"]["server"] or 0) * 100 for s in steps], "o-", color=colour,
                label=f"{name} server")
        ax.plot(rates, [(s["load_cpu_max"] or 0) * 100 for s in steps], "s--", color=colour,
                alpha=0.5, label=f"busiest load process ({name})")
    ax.axhline(95, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="lines/s sent into the room", ylabel="CPU (% of one core)",
           title="Chat: server CPU vs send rate")
    ax.legend(fontsize="small")
    written.append(save_png(plt, fig, run_dir / "chat_cpu.png"))
    return written


def _log_scale(axis: Any) -> None:
    """A log axis labelled 5, 20, 100 rather than 5x10^0, without minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if axis.axis_name == "x":
        axis.axes.set_xscale("log")
    else:
        axis.axes.set_yscale("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def save_png(plt: Any, fig: Any, path: Path) -> str:
    """Write `fig` to `path` as PNG and close it; the file's name."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name
