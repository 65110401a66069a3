"""The three charts of report.html, drawn with matplotlib from the view model.

- accuracy against batch-1 p90 latency, marker area ∝ file size, each machine's Pareto frontier;
- the batch-1 latency distribution of every configuration (`chart_distribution`, charts_latency.py);
- per-image latency against batch size, one panel per thread count (`chart_batch`, charts_latency.py).
Several runs (machines) share the configuration names and differ by colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from toolkit.reports.fmt import ms_fine, size, threads_text
from toolkit.reports.model import Report, RunView
from toolkit.reports.svg import FAIL, INK, Tips, darken, log_axis, log_domain, new_figure, style, to_inline_svg

WIDTH_IN = 11.2  # 806 pt; the page scales the SVG to its column


@dataclass
class _Point:
    run: RunView
    config: str
    p90: float
    threads: int | None
    accuracy: float  # percent
    passed: bool
    size: float | None


def _points(report: Report) -> list[_Point]:
    """Each configuration's batch-1 row at its best thread count (lowest p90), for runs with parity."""
    points = []
    for run in report.runs:
        if not run.parity or not run.latency:
            continue
        verdict = {r.artifact: r for r in run.parity.rows}
        best: dict[str, Any] = {}
        for r in run.latency.rows:
            if r.batch_size != 1 or r.p90_ms is None or r.p90_ms <= 0 or r.artifact not in verdict:
                continue
            if r.configuration not in best or r.p90_ms < best[r.configuration].p90_ms:
                best[r.configuration] = r
        for config, r in best.items():
            par = verdict[r.artifact]
            if par.accuracy is None:
                continue
            size_b = run.sizes.get(r.artifact)
            if size_b is None:  # a board's bench.json without a manifest: the size is the same file's
                size_b = next((o.sizes[r.artifact] for o in report.runs if r.artifact in o.sizes), None)
            points.append(_Point(run, config, r.p90_ms, r.threads, 100 * par.accuracy, par.passed, size_b))
    return points


def _frontier(points: list[_Point]) -> list[_Point]:
    """Passed points not beaten by a faster one with at least the same accuracy, fastest first."""
    out: list[_Point] = []
    for p in sorted((p for p in points if p.passed), key=lambda p: (p.p90, -p.accuracy)):
        if not out or p.accuracy > out[-1].accuracy + 1e-12:
            out.append(p)
    return out


Box = tuple[float, float, float, float]


def _overlap(a: Box, b: Box) -> float:
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _place_labels(ax: Any, points: list[_Point], radius: dict[int, float], obstacles: list[Box]) -> None:
    """Label every point next to it when free, else stacked above/below with a leader line.

    matplotlib places text where it is told and has no collision avoidance, so this greedy search over a
    few candidate offsets (in points, measured with the renderer's real text extents) does that part.
    """
    frame = ax.get_window_extent()
    boxes = list(obstacles)
    for p in sorted(points, key=lambda p: (p.p90, -p.accuracy)):
        x, y = ax.transData.transform((p.p90, p.accuracy))
        r = radius[id(p)]
        text = p.config if p.passed else f"{p.config} ✕ failed"
        probe = ax.annotate(text, (0, 0), xycoords="figure points", fontsize=8.5, weight="bold")
        bb = probe.get_window_extent()
        probe.remove()
        w, h = bb.width + 2, bb.height
        cands = [
            (r + 4, 0.0, "left", False),
            (-r - 4, 0.0, "right", False),
            (0.0, r + 2 + h / 2, "center", False),
            (0.0, -r - 2 - h / 2, "center", False),
        ]
        for k in range(1, 9):
            for sign in (1, -1):
                cands += [
                    (r + 10, sign * (r + k * (h + 1)), "left", True),
                    (-r - 10, sign * (r + k * (h + 1)), "right", True),
                ]
        best: tuple[float, tuple[float, float, str, bool], Box] | None = None
        for dx, dy, ha, leader in cands:
            x0 = x + dx if ha == "left" else x + dx - w if ha == "right" else x + dx - w / 2
            box = (x0, y + dy - h / 2, x0 + w, y + dy + h / 2)
            cost = sum(_overlap(box, o) for o in boxes) + _outside(box, frame)
            if best is None or cost < best[0] - 1e-9:
                best = (cost, (dx, dy, ha, leader), box)
            if cost == 0:
                break
        assert best is not None
        (dx, dy, ha, leader), box = best[1], best[2]
        boxes.append(box)
        colour = darken(p.run.ref.colour) if p.passed else FAIL
        arrow = {"arrowstyle": "-", "color": "#94a3b8", "lw": 0.6, "shrinkA": 0, "shrinkB": 2} if leader else None
        ax.annotate(
            text,
            (p.p90, p.accuracy),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va="center",
            fontsize=8.5,
            weight="bold" if p.passed else "normal",
            color=colour,
            arrowprops=arrow,
            bbox=_halo(),
        )


def _outside(box: Box, frame: Any) -> float:
    inside = frame.x0 <= box[0] and box[2] <= frame.x1 and frame.y0 <= box[1] and box[3] <= frame.y1
    return 0.0 if inside else 1e6


def _halo() -> dict[str, Any]:
    """A white backing behind a label (a path-effect halo would turn the text into glyph paths)."""
    return {"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75}


def chart_pareto(report: Report) -> str | None:
    """Accuracy against batch-1 p90 latency, marker area ∝ file size, each machine's Pareto frontier."""
    import matplotlib

    points = _points(report)
    if not points:
        return None
    with matplotlib.rc_context(style("chart-pareto")):
        tips = Tips("chart-pareto")
        fig = new_figure(WIDTH_IN, 6.0)
        ax = fig.add_axes((0.075, 0.1, 0.905, 0.78 if len(report.runs) <= 2 else 0.72))
        refs = sorted(
            {
                100 * r.parity.reference_accuracy
                for r in report.runs
                if r.parity and r.latency and r.parity.reference_accuracy is not None
            }
        )
        xhi = _pareto_axes(ax, points, refs)
        area = _MarkerArea(max((p.size for p in points if p.size), default=1.0))
        shown = _frontiers(ax, report, points, xhi, tips)
        radius, obstacles = _markers(ax, points, area, tips)
        obstacles += _reference_lines(ax, refs)
        _place_labels(ax, points, radius, obstacles)
        _pareto_legend(fig, points, shown, area)
        return to_inline_svg(fig, "chart-pareto", "Accuracy against batch-1 p90 latency", tips)


@dataclass(frozen=True)
class _MarkerArea:
    """Marker area in pt² for a file size: 6..30 pt across, by the square root of the size."""

    max_size: float

    def __call__(self, s: float | None) -> float:
        d = 6 + 24 * math.sqrt(s / self.max_size) if s else 8.0
        return d * d


def _pareto_axes(ax: Any, points: list[_Point], refs: list[float]) -> float:
    """Log latency against accuracy, with room around the points and the reference lines; the x axis's end."""
    from matplotlib.ticker import FormatStrFormatter

    xlo, xhi = log_domain([p.p90 for p in points], 1.6)
    accs = [p.accuracy for p in points] + refs
    span = max(max(accs) - min(accs), 0.04)
    ax.set_xscale("log")
    ax.set_xlim(xlo, xhi)
    ax.set_ylim(min(accs) - span * 0.3, max(accs) + span * 0.3)
    log_axis(ax.xaxis, xlo, xhi)
    step = float(abs(ax.get_yticks()[1] - ax.get_yticks()[0]))
    ax.yaxis.set_major_formatter(FormatStrFormatter(f"%.{max(0, -math.floor(math.log10(step) + 1e-9))}f"))
    ax.set_xlabel("batch-1 p90 latency at the best thread count (ms, log scale) — lower is better →", fontsize=9.5)
    ax.set_ylabel("test accuracy (%) — higher is better →", fontsize=9.5)
    return float(xhi)


def _frontiers(ax: Any, report: Report, points: list[_Point], xhi: float, tips: Tips) -> list[RunView]:
    """Each machine's Pareto frontier as a step line; the runs that have points, in order."""
    shown = []
    for run in report.runs:
        mine = [p for p in points if p.run is run]
        if not mine:
            continue
        shown.append(run)
        front = _frontier(mine)
        if front:
            xs = [p.p90 for p in front] + [xhi]
            ys = [p.accuracy for p in front] + [front[-1].accuracy]
            (line,) = ax.step(xs, ys, where="post", color=run.ref.colour, lw=1.5, ls=(0, (6, 3)), alpha=0.6)
            tips.tag(line, f"Pareto frontier, {run.ref.label}: " + " → ".join(p.config for p in front))
    return shown


def _markers(ax: Any, points: list[_Point], area: _MarkerArea, tips: Tips) -> tuple[dict[int, float], list[Box]]:
    """One marker per point, largest first (filled: passed; hollow red: failed); their radii and boxes."""
    radius: dict[int, float] = {}
    obstacles: list[Box] = []
    for p in sorted(points, key=lambda p: -(p.size or 0)):
        s = area(p.size)
        radius[id(p)] = math.sqrt(s) / 2
        if p.passed:
            colour = p.run.ref.colour
            dot = ax.scatter(
                [p.p90], [p.accuracy], s=s, c=colour, alpha=0.55, edgecolors=darken(colour), linewidths=1.2, zorder=3
            )
        else:
            dot = ax.scatter([p.p90], [p.accuracy], s=s, facecolors="white", edgecolors=FAIL, linewidths=1.8, zorder=3)
        tips.tag(
            dot,
            f"{p.config} — {p.run.ref.label}\nbatch-1 p90 {ms_fine(p.p90)} ms ({threads_text(p.threads)})\n"
            f"accuracy {p.accuracy:.2f} %  ·  parity {'passed' if p.passed else 'FAILED'}\nsize {size(p.size)}",
        )
        x, y = ax.transData.transform((p.p90, p.accuracy))
        r = radius[id(p)]
        obstacles.append((x - r, y - r, x + r, y + r))
    return radius, obstacles


def _reference_lines(ax: Any, refs: list[float]) -> list[Box]:
    """A dotted line and a label at each Keras reference accuracy; the labels' boxes."""
    boxes: list[Box] = []
    for ref in refs:
        ax.axhline(ref, color="#64748b", lw=0.9, ls=(0, (2, 4)), zorder=1)
        label = ax.annotate(
            f"Keras reference {ref:.2f} %",
            (1, ref),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 4),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=8,
            color="#64748b",
            bbox=_halo(),
        )
        bb = label.get_window_extent()
        boxes.append((bb.x0, bb.y0, bb.x1, bb.y1))
    return boxes


def _pareto_legend(fig: Any, points: list[_Point], shown: list[RunView], area: _MarkerArea) -> None:
    """The legend above the plot: machines, the frontier, failures, and three file sizes."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", ls="", color=r.ref.colour, markersize=8, label=_run_text(r, shown)) for r in shown
    ]
    handles.append(Line2D([], [], color="#64748b", ls=(0, (6, 3)), lw=1.5, label="Pareto frontier (passed parity)"))
    if any(not p.passed for p in points):
        handles.append(
            Line2D([], [], marker="o", ls="", mfc="white", mec=FAIL, mew=1.8, markersize=8, label="failed parity")
        )
    sizes = sorted({p.size for p in points if p.size})
    if sizes:
        handles.append(Line2D([], [], ls="", label="marker area ∝ file size:"))
    for s_b in dict.fromkeys([sizes[0], sizes[len(sizes) // 2], sizes[-1]] if sizes else []):
        handles.append(
            Line2D(
                [], [], marker="o", ls="", mfc="none", mec="#64748b", markersize=math.sqrt(area(s_b)), label=size(s_b)
            )
        )
    fig.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0.07, 0.97),
        ncol=len(handles) if len(handles) <= 7 else 4,
        fontsize=8.5,
        labelcolor=INK,
        handletextpad=1.0,
        handlelength=2.6,
        columnspacing=1.6,
        borderaxespad=0.2,
    )


def _run_text(run: RunView, runs: list[RunView]) -> str:
    """The run's label, plus its name when another run has the same label."""
    same = sum(1 for r in runs if r.ref.label == run.ref.label)
    return f"{run.ref.label} ({run.ref.name})" if same > 1 else run.ref.label


def render_charts(report: Report) -> dict[str, str]:
    """The charts the report has data for, by id (`chart-pareto`, `chart-latency`, `chart-batch`)."""
    from toolkit.reports.charts_latency import chart_batch, chart_distribution

    charts = {
        "chart-pareto": chart_pareto(report),
        "chart-latency": chart_distribution(report),
        "chart-batch": chart_batch(report),
    }
    return {k: v for k, v in charts.items() if v}
