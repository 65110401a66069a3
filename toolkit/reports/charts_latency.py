"""The two latency charts of report.html: batch-1 distributions, and per-image latency against batch size."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from toolkit.reports.charts import WIDTH_IN, _run_text
from toolkit.reports.fmt import dur, integer, ms_fine, threads_text
from toolkit.reports.model import LatencyRow, Report, RunView
from toolkit.reports.svg import (
    CONFIG_PALETTE,
    INK,
    MARKERS,
    MUTED,
    Tips,
    darken,
    log_axis,
    log_domain,
    new_figure,
    style,
    to_inline_svg,
)


def _config_order(report: Report) -> list[str]:
    """Configurations, fastest first (batch-1 p50 on the first run that has them)."""
    best: dict[str, tuple[int, float]] = {}
    seen: dict[str, int] = {}
    for run in report.runs:
        for r in run.latency.rows if run.latency else ():
            seen.setdefault(r.configuration, len(seen))
            if r.batch_size == 1:
                cand = (run.index, r.p50_ms)
                if r.configuration not in best or cand < best[r.configuration]:
                    best[r.configuration] = cand
    return sorted(seen, key=lambda k: (best.get(k, (1 << 30, math.inf)), seen[k]))


def _glyph(r: LatencyRow) -> tuple[float, float, float, float, float, bool] | None:
    """(whisker low, box low, median, box high, whisker high, from quantiles).

    With recorded percentiles: p1, p25, p50, p75, p99. Without: min, p50, p50, p90, p99.
    """
    if r.quantiles_ms and all(r.quantiles_ms[i] > 0 for i in (1, 25, 50, 75, 99)):
        q = r.quantiles_ms
        return q[1], q[25], q[50], q[75], q[99], True
    if r.p50_ms <= 0:
        return None
    lo = r.min_ms if r.min_ms is not None and 0 < r.min_ms <= r.p50_ms else r.p50_ms
    p90 = r.p90_ms if r.p90_ms is not None and r.p90_ms >= r.p50_ms else r.p50_ms
    p99 = r.p99_ms if r.p99_ms is not None and r.p99_ms >= p90 else p90
    return lo, r.p50_ms, r.p50_ms, p90, p99, False


Glyph = tuple[float, float, float, float, float, bool]
Group = tuple[str, list[tuple[RunView, LatencyRow, Glyph]]]


def _batch1_groups(report: Report) -> list[Group]:
    """Per configuration (fastest first): each machine's batch-1 rows that can be drawn, by thread count."""
    groups: list[Group] = []
    for key in _config_order(report):
        items = []
        for run in report.runs:
            rows = [
                r for r in (run.latency.rows if run.latency else ()) if r.batch_size == 1 and r.configuration == key
            ]
            for r in sorted(rows, key=lambda r: math.inf if r.threads is None else r.threads):
                if (g := _glyph(r)) is not None:
                    items.append((run, r, g))
        if items:
            groups.append((key, items))
    return groups


def chart_distribution(report: Report) -> str | None:
    """One box per configuration, machine and thread count at batch 1, fastest configuration first."""
    import matplotlib

    groups = _batch1_groups(report)
    if not groups:
        return None
    n_rows = sum(len(items) for _, items in groups)
    height = 1.25 + n_rows * 0.2 + len(groups) * 0.08
    with matplotlib.rc_context(style("chart-latency")):
        tips = Tips("chart-latency")
        fig = new_figure(WIDTH_IN, height)
        top_in, bottom_in = 0.75, 0.5
        ax = fig.add_axes((0.36, bottom_in / height, 0.46, 1 - (top_in + bottom_in) / height))
        ax.grid(axis="y", visible=False)
        ax.set_facecolor("white")
        values = [v for _, items in groups for *_, g in items for v in (g[0], g[4])]
        lo, hi = log_domain(values, 1.15)
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        log_axis(ax.xaxis, lo, hi)
        ax.tick_params(axis="x", labeltop=True, top=True)
        ax.set_xlabel("latency of one call at batch 1 (ms, log scale)", fontsize=9.5)
        y, ticks, labels = _boxes(fig, ax, report, groups, tips)
        ax.set_ylim(y + 0.2, 0.3)
        ax.set_yticks(ticks, labels, fontsize=8.5)
        ax.text(1.02, 1.0, "p50 · p99", transform=ax.transAxes, va="bottom", fontsize=8.5, color=MUTED)
        ax.set_xlim(lo, hi)
        _distribution_key(fig, report, groups, height)
        return to_inline_svg(fig, "chart-latency", "Batch-1 latency distribution per configuration", tips)


def _boxes(fig: Any, ax: Any, report: Report, groups: list[Group], tips: Tips) -> tuple[float, list[float], list[str]]:
    """One box per row, configurations banded and named on the left; (the last y, the ticks, their labels)."""
    from matplotlib.transforms import blended_transform_factory

    recommended = {run.recommendation.configuration for run in report.runs if run.recommendation}
    left = blended_transform_factory(fig.transFigure, ax.transData)
    right = blended_transform_factory(ax.transAxes, ax.transData)
    y, ticks, labels = 0.0, [], []
    for gi, (key, items) in enumerate(groups):
        y0 = y
        for run, r, (w_lo, q1, med, q3, w_hi, _) in items:
            y -= 1
            colour = run.ref.colour
            stats = [{"whislo": w_lo, "q1": q1, "med": med, "q3": q3, "whishi": w_hi, "fliers": []}]
            art = ax.bxp(
                stats,
                positions=[y],
                orientation="horizontal",
                widths=0.62,
                patch_artist=True,
                showfliers=False,
                boxprops={"facecolor": colour, "alpha": 0.3, "edgecolor": colour},
                whiskerprops={"color": colour, "lw": 1.1},
                capprops={"color": colour, "lw": 1.1},
                medianprops={"color": darken(colour, 0.6), "lw": 2.2},
            )
            tips.tag(art["boxes"][0], _tip(key, run, r, (w_lo, q1, med, q3, w_hi)))
            ticks.append(y)
            labels.append(threads_text(r.threads) + (f" · {run.ref.name}" if len(report.runs) > 1 else ""))
            value = f"{dur(med)} · {dur(w_hi)}" + ("   noisy" if r.noisy else "")
            ax.text(1.02, y, value, transform=right, va="center", fontsize=8.5, color="#b45309" if r.noisy else INK)
        if gi % 2 == 0:
            ax.axhspan(y - 0.5, y0 - 0.5, color="#f1f5f9", zorder=0, lw=0)
        star = " ★" if key in recommended else ""
        fig.text(
            0.01,
            (y + y0) / 2 - 0.5,
            key + star,
            transform=left,
            va="center",
            fontsize=9.5,
            weight="bold",
            color="#0f172a",
        )
        y -= 0.3
    return y, ticks, labels


def _distribution_key(fig: Any, report: Report, groups: list[Group], height: float) -> None:
    """What the boxes and whiskers stand for, and (several machines) a legend of their colours."""
    from matplotlib.lines import Line2D

    any_q = any(g[5] for _, items in groups for *_, g in items)
    any_fallback = any(not g[5] for _, items in groups for *_, g in items)
    keys = []
    if any_q:
        keys.append("recorded percentiles: box p25–p75, whiskers p1–p99, thick tick p50")
    if any_fallback:
        keys.append("rows without quantiles: box p50–p90, whiskers min–p99")
    fig.text(0.01, 1 - 0.22 / height, ";  ".join(keys), fontsize=8.5, color=MUTED, va="top")
    if len(report.runs) > 1:
        handles = [
            Line2D([], [], color=r.ref.colour, lw=6, alpha=0.5, label=_run_text(r, list(report.runs)))
            for r in report.runs
            if r.latency
        ]
        fig.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.005, 1 - 0.02 / height),
            ncol=4,
            fontsize=8.5,
            borderaxespad=0,
        )
        fig.texts[-1].set_y(1 - 0.45 / height)  # the key moves below the legend


def _tip(key: str, run: RunView, r: LatencyRow, g: tuple[float, float, float, float, float]) -> str:
    lo, q1, med, q3, hi = g
    spread = (
        f"p1 {ms_fine(lo)} · p25 {ms_fine(q1)} · p50 {ms_fine(med)} · p75 {ms_fine(q3)} · p99 {ms_fine(hi)} ms"
        if r.quantiles_ms
        else f"min {ms_fine(lo)} · p50 {ms_fine(med)} · p90 {ms_fine(q3)} · p99 {ms_fine(hi)} ms"
    )
    return (
        f"{key} — {run.ref.label}, batch 1, {threads_text(r.threads)}\n{spread}\n"
        f"max {ms_fine(r.max_ms)} ms · {integer(r.runs)} runs" + (f"\nNOISY: {r.noise}" if r.noisy else "")
    )


@dataclass(frozen=True)
class _BatchLayout:
    """What chart_batch draws: panels (thread counts), lines (configurations × machines) and the shared axes."""

    threads: list[int | None]
    configs: list[str]
    several: bool  # more than one machine: lines coloured by machine, marked by configuration
    recommended: set[tuple[int, str]]  # (run index, configuration)
    batches: list[int]
    y_domain: tuple[float, float]
    cols: int
    panel_rows: int
    legend_rows: int

    def shape(self, config: str) -> int:
        return self.configs.index(config)

    def colour(self, run: RunView, config: str) -> str:
        return run.ref.colour if self.several else CONFIG_PALETTE[self.shape(config) % len(CONFIG_PALETTE)]


def _batch_layout(report: Report) -> _BatchLayout | None:
    rows = [r for run in report.runs for r in (run.latency.rows if run.latency else ())]
    if not rows:
        return None
    threads = sorted({r.threads for r in rows}, key=lambda t: math.inf if t is None else t)
    configs = _config_order(report)
    several = sum(1 for run in report.runs if run.latency) > 1
    cols = min(len(threads), 2)
    return _BatchLayout(
        threads=threads,
        configs=configs,
        several=several,
        recommended={(run.index, run.recommendation.configuration) for run in report.runs if run.recommendation},
        batches=sorted({r.batch_size for r in rows}),
        y_domain=log_domain([r.p50_ms / r.batch_size for r in rows], 1.25),
        cols=cols,
        panel_rows=math.ceil(len(threads) / cols),
        legend_rows=math.ceil((len(configs) + (len(report.runs) if several else 0)) / 4),
    )


def chart_batch(report: Report) -> str | None:
    """Per-image p50 against batch size, one panel per thread count, one line per configuration and machine."""
    import matplotlib

    layout = _batch_layout(report)
    if layout is None:
        return None
    height = 0.9 + layout.panel_rows * 3.6 + layout.legend_rows * 0.2
    with matplotlib.rc_context(style("chart-batch")):
        tips = Tips("chart-batch")
        fig = new_figure(WIDTH_IN, height)
        legend_in = 0.15 + layout.legend_rows * 0.19
        gs = fig.add_gridspec(
            layout.panel_rows,
            layout.cols,
            left=0.08,
            right=0.98,
            top=1 - 0.35 / height,
            bottom=legend_in / height + 0.55 / height,
            wspace=0.12,
            hspace=0.35,
        )
        first = None
        for pi, t in enumerate(layout.threads):
            ax = fig.add_subplot(gs[pi // layout.cols, pi % layout.cols], sharey=first)
            first = first or ax
            _batch_panel(ax, layout, t, left_column=pi % layout.cols == 0)
            for run in report.runs:
                for c in layout.configs:
                    _batch_line(ax, layout, run, c, t, tips)
        _batch_legend(fig, report, layout)
        return to_inline_svg(fig, "chart-batch", "Per-image p50 latency against batch size, per thread count", tips)


def _batch_panel(ax: Any, layout: _BatchLayout, threads: int | None, *, left_column: bool) -> None:
    """One thread count's panel: log-log axes, the batch sizes as ticks."""
    from matplotlib.ticker import FixedLocator, NullLocator

    batches = layout.batches
    ax.set_xscale("log")
    ax.set_yscale("log")
    xlo, xhi = (batches[0] / 1.5, batches[-1] * 1.5) if len(batches) > 1 else (batches[0] / 2, batches[0] * 2)
    ax.set_xlim(xlo, xhi)
    ax.set_ylim(*layout.y_domain)
    ax.xaxis.set_major_locator(FixedLocator(batches))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_ticklabels([str(b) for b in batches])
    log_axis(ax.yaxis, *layout.y_domain)
    ax.set_title(threads_text(threads), loc="left", fontsize=10, weight="bold", color="#0f172a")
    ax.set_xlabel("batch size (images per call, log scale)", fontsize=9)
    if left_column:
        ax.set_ylabel("p50 per image (ms, log)", fontsize=9)
    else:
        ax.tick_params(labelleft=False)


def _batch_line(ax: Any, layout: _BatchLayout, run: RunView, config: str, threads: int | None, tips: Tips) -> None:
    """One configuration on one machine: p50 per image at each batch size (thick: the recommendation)."""
    mine = [r for r in (run.latency.rows if run.latency else ()) if r.threads == threads and r.configuration == config]
    pts = sorted(((r.batch_size, r.p50_ms / r.batch_size, r) for r in mine), key=lambda p: p[0])
    if not pts:
        return
    colour = layout.colour(run, config)
    (line,) = ax.plot(
        [p[0] for p in pts],
        [p[1] for p in pts],
        color=colour,
        lw=2.8 if (run.index, config) in layout.recommended else 1.4,
        alpha=0.85,
        marker=MARKERS[layout.shape(config) % len(MARKERS)],
        markersize=6,
        mfc="white",
        mec=colour,
        mew=1.5,
    )
    tips.tag(
        line,
        f"{config} — {run.ref.label}, {threads_text(threads)}\n"
        + "\n".join(
            f"batch {b}: {ms_fine(v)} ms per image (p50 {ms_fine(r.p50_ms)} ms per call, "
            f"{integer(r.throughput_ips)} img/s)"
            for b, v, r in pts
        ),
    )


def _batch_legend(fig: Any, report: Report, layout: _BatchLayout) -> None:
    """Configurations (marker, ★ the recommended one) and, with several machines, their colours."""
    from matplotlib.lines import Line2D

    handles = []
    for c in layout.configs:
        colour = "#64748b" if layout.several else CONFIG_PALETTE[layout.shape(c) % len(CONFIG_PALETTE)]
        star = " ★" if any(cfg == c for _, cfg in layout.recommended) else ""
        marker = MARKERS[layout.shape(c) % len(MARKERS)]
        handles.append(
            Line2D([], [], color=colour, marker=marker, mfc="white", mec=colour, mew=1.5, lw=1.4, label=c + star)
        )
    if layout.several:
        handles += [
            Line2D([], [], color=r.ref.colour, lw=2.5, label=_run_text(r, list(report.runs)))
            for r in report.runs
            if r.latency
        ]
    fig.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0.07, 0.005),
        ncol=4,
        fontsize=8.5,
        labelcolor=INK,
        columnspacing=1.4,
    )
