"""One self-contained HTML report for one or more benchmark runs (machines), side by side.

`render_html(runs)` turns the JSON of each run (train.json, manifest.json, parity.json and
bench.json; any may be missing) into a single HTML file with inline CSS and inline SVG charts
drawn here in Python: no external URL, font, script or library. The only script is a few lines
that record, after load, how many charts have drawn marks (`<html data-charts="3">`) and any
JavaScript error (`data-errors`), so a headless browser test can check the rendering.

Charts: accuracy against batch-1 p90 latency with the Pareto frontier; the batch-1 latency
distribution of every configuration; per-image latency against batch size, one panel per thread
count. Tables follow the Markdown report. Several runs (a desktop and a board, say) share the
artifact names and differ by colour.

Every field of a bench row beyond the stable ones is optional (shown as "–" when absent).

    python -m benchmarks.html_report runs/latest pi-run/ -o report.html
"""

from __future__ import annotations

import argparse
import html
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Doc = dict[str, Any]

DOC_NAMES = ("train", "manifest", "parity", "bench")
# Run colours (machines). Red is kept for failed parity.
PALETTE = ("#2563eb", "#d97706", "#0d9488", "#9333ea", "#db2777", "#65a30d", "#475569", "#0891b2")
FAIL = "#dc2626"
# Configuration colours, used only where one machine's lines would otherwise all share its colour.
CONFIG_PALETTE = ("#2563eb", "#ea580c", "#059669", "#9333ea", "#db2777", "#0891b2", "#65a30d", "#a16207", "#475569")
RUNTIME_NAMES = {"tflite": "LiteRT", "onnxruntime": "ONNX Runtime", "keras": "Keras"}
CHART_WIDTH = 1120
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, 'DejaVu Sans', sans-serif"
# Average glyph widths in em, generous (DejaVu Sans is wide), for label collision checks.
CHAR_W = 0.6
CHAR_W_BOLD = 0.68


# -- small helpers ------------------------------------------------------------------------------------
def _e(value: object) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def _num(value: object) -> float | None:
    """A finite number, or None (bools, strings, NaN and missing values are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _dict(value: object) -> Doc:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _ms(value: object) -> str:
    """Milliseconds for a table cell: 4 significant digits below 0.1 ms, as report.md above."""
    x = _num(value)
    if x is None:
        return "–"
    if x < 0.1:
        return f"{x:.4f}"
    if x < 10:
        return f"{x:.3f}"
    return f"{x:,.1f}"


def _dur(ms: float) -> str:
    """A duration for a chart annotation: µs below 1 ms."""
    if ms < 1:
        return f"{ms * 1000:.3g} µs"
    return f"{ms:.3g} ms" if ms < 1000 else f"{ms / 1000:.3g} s"


def _size(n: object) -> str:
    x = _num(n)
    if x is None:
        return "–"
    return f"{x / 1024:,.0f} KiB" if x < 1024 * 1024 else f"{x / 1024 / 1024:,.2f} MiB"


def _int(value: object) -> str:
    x = _num(value)
    return "–" if x is None else f"{x:,.0f}"


def _fixed(value: object, digits: int, suffix: str = "") -> str:
    x = _num(value)
    return "–" if x is None else f"{x:,.{digits}f}{suffix}"


def _plain(value: object) -> str:
    """Any JSON value as short plain text (not escaped)."""
    if value is None or value == "" or value == [] or value == {}:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _text_width(text: str, size: float, bold: bool = False) -> float:
    return len(text) * size * (CHAR_W_BOLD if bold else CHAR_W)


def _threads_text(t: int | None) -> str:
    if t is None:
        return "default threads"
    return f"{t} thread" + ("" if t == 1 else "s")


def _runtime_name(runtime: object) -> str:
    return RUNTIME_NAMES.get(str(runtime), str(runtime))


# -- bench rows -----------------------------------------------------------------------------------------
def config_label(row: Doc) -> str:
    """The artifact name plus any non-default runner option, e.g. "tflite-fp32 (no XNNPACK)"."""
    name = str(row.get("artifact", "?"))
    options = _dict(row.get("options"))
    extras = []
    if options.get("xnnpack") is False:
        extras.append("no XNNPACK")
    level = options.get("graph_optimization", row.get("graph_optimization"))
    if level not in (None, "", "all"):
        extras.append(f"ORT opt {level}")
    return f"{name} ({', '.join(extras)})" if extras else name


def bench_rows(bench: Doc | None) -> list[Doc]:
    """Rows with the fields the charts need (artifact, batch_size, p50_ms); others are ignored."""
    if not bench:
        return []
    rows = _list(bench.get("results")) or _list(bench.get("rows"))
    out = []
    for r in rows:
        if not isinstance(r, dict) or not isinstance(r.get("artifact"), str):
            continue
        batch = _num(r.get("batch_size"))
        if batch is None or batch < 1 or _num(r.get("p50_ms")) is None:
            continue
        out.append(r)
    return out


def _threads(row: Doc) -> int | None:
    t = _num(row.get("threads"))
    return None if t is None else int(t)


def _thread_sort(t: int | None) -> float:
    return math.inf if t is None else float(t)


def _batch(row: Doc) -> int:
    return int(_num(row.get("batch_size")) or 1)


def recommend(parity: Doc | None, bench: Doc | None) -> Doc | None:
    """The fastest configuration (lowest batch-1 p50 at any thread count) among artifacts that passed parity.

    Same rule as the Markdown report; falls back to any batch size when no batch-1 row exists.
    """
    if not parity or not bench:
        return None
    passed = {
        r["artifact"]: r
        for r in _list(parity.get("results"))
        if isinstance(r, dict) and isinstance(r.get("artifact"), str) and r.get("passed")
    }
    rows = [r for r in bench_rows(bench) if r["artifact"] in passed]
    candidates = [r for r in rows if _batch(r) == 1] or rows
    if not candidates:
        return None
    best = min(candidates, key=lambda r: float(r["p50_ms"]))
    return {
        "artifact": best["artifact"],
        "config": config_label(best),
        "runtime": best.get("runtime", "?"),
        "batch_size": _batch(best),
        "threads": _threads(best),
        "p50_ms": float(best["p50_ms"]),
        "accuracy": _num(passed[best["artifact"]].get("accuracy")),
    }


def _glyph(row: Doc) -> tuple[float, float, float, float, float, bool] | None:
    """(whisker low, box low, median, box high, whisker high, from quantiles) for the distribution chart.

    With `quantiles_ms` (101 values, percentiles 0..100): p1, p25, p50, p75, p99. Without: min, p50,
    p50, p90, p99 (the box then spans p50..p90).
    """
    q = row.get("quantiles_ms")
    if isinstance(q, list) and len(q) == 101:
        values = [_num(v) for v in q]
        picked = [values[i] for i in (1, 25, 50, 75, 99)]
        if all(v is not None and v > 0 for v in picked):
            lo, q1, med, q3, hi = (float(v or 0) for v in picked)
            return lo, q1, med, q3, hi, True
    lo_, p50_, p90_, p99_ = (_num(row.get(k)) for k in ("min_ms", "p50_ms", "p90_ms", "p99_ms"))
    if p50_ is None or p50_ <= 0:
        return None
    lo = lo_ if lo_ is not None and 0 < lo_ <= p50_ else p50_
    p90 = p90_ if p90_ is not None and p90_ >= p50_ else p50_
    p99 = p99_ if p99_ is not None and p99_ >= p90 else p90
    return lo, p50_, p50_, p90, p99, False


# -- runs -----------------------------------------------------------------------------------------------
@dataclass
class _Run:
    index: int
    name: str
    label: str
    colour: str
    train: Doc | None
    manifest: Doc | None
    parity: Doc | None
    bench: Doc | None
    rows: list[Doc] = field(default_factory=list)
    env: Doc = field(default_factory=dict)
    sizes: dict[str, float] = field(default_factory=dict)
    parity_by_artifact: dict[str, Doc] = field(default_factory=dict)
    rec: Doc | None = None


def machine_label(env: Doc | None) -> str:
    """ "AMD EPYC · x86_64 · 2 cores" from a bench.json environment block ("" when nothing is known)."""
    env = _dict(env)
    parts = [str(env[k]) for k in ("cpu_model", "machine") if env.get(k)]
    cores = env.get("cores_available") or env.get("cores_logical")
    if cores:
        parts.append(f"{cores} cores" if cores != 1 else "1 core")
    return " · ".join(parts)


def _prepare(runs: Sequence[Doc]) -> list[_Run]:
    out = []
    for i, item in enumerate(runs):
        raw = _dict(item)
        docs = {k: raw.get(k) if isinstance(raw.get(k), dict) else None for k in DOC_NAMES}
        name = str(raw.get("name") or f"run {i + 1}")
        run = _Run(
            index=i,
            name=name,
            label=str(raw.get("label") or machine_label(_dict(docs["bench"]).get("environment")) or name),
            colour=PALETTE[i % len(PALETTE)],
            train=docs["train"],
            manifest=docs["manifest"],
            parity=docs["parity"],
            bench=docs["bench"],
        )
        run.rows = bench_rows(run.bench)
        run.env = _dict(_dict(run.bench).get("environment"))
        for a in _list(_dict(run.manifest).get("artifacts")):
            size = _num(_dict(a).get("size_bytes"))
            if size is not None and size > 0 and isinstance(a.get("name"), str):
                run.sizes[a["name"]] = size
        for r in run.rows:
            size = _num(r.get("size_bytes"))
            if size is not None and size > 0:
                run.sizes.setdefault(r["artifact"], size)
        for p in _list(_dict(run.parity).get("results")):
            if isinstance(p, dict) and isinstance(p.get("artifact"), str):
                run.parity_by_artifact[p["artifact"]] = p
        run.rec = recommend(run.parity, run.bench)
        out.append(run)
    return out


def _noisy(run: _Run) -> list[str]:
    """One line per noisy row (the row's own flag, else bench.json's "noisy" list)."""
    lines = []
    for r in run.rows:
        if r.get("noisy"):
            line = f"{config_label(r)} b{_batch(r)}×{_threads(r) or '?'}t"
            if r.get("noise") not in (None, "", {}):
                line += f": {_plain(r.get('noise'))}"
            lines.append(line)
    if not lines:
        lines = [_plain(n) for n in _list(_dict(run.bench).get("noisy"))]
    return lines


# -- scales ---------------------------------------------------------------------------------------------
class _Log:
    """log10 scale from [lo, hi] onto [a, b] pixels."""

    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        lo = max(lo, 1e-9)
        hi = max(hi, lo * 1.0001)
        self.lo, self.hi, self.a, self.b = lo, hi, a, b
        self.l0, self.l1 = math.log10(lo), math.log10(hi)

    def __call__(self, v: float) -> float:
        v = min(max(v, self.lo), self.hi)
        return self.a + (math.log10(v) - self.l0) / (self.l1 - self.l0) * (self.b - self.a)

    def ticks(self) -> list[float]:
        decades = range(math.floor(self.l0), math.ceil(self.l1) + 1)
        for steps in ((1, 2, 5), (1, 3), (1,)):
            ticks = [m * 10.0**d for d in decades for m in steps]
            ticks = [t for t in ticks if self.lo * 0.999 <= t <= self.hi * 1.001]
            if len(ticks) <= 12:
                break
        if len(ticks) < 2:
            ticks = sorted({*ticks, _round_sig(self.lo * 1.05), _round_sig(self.hi / 1.05)})
        return ticks


class _Lin:
    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        hi = hi if hi > lo else lo + 1
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v: float) -> float:
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)

    def ticks(self, target: int = 6) -> list[float]:
        raw = (self.hi - self.lo) / max(target - 1, 1)
        mag = 10 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
        first = math.ceil(self.lo / step - 1e-9) * step
        out = []
        v = first
        while v <= self.hi + step * 1e-9:
            out.append(round(v, 10))
            v += step
        return out


def _round_sig(x: float, sig: int = 2) -> float:
    if x <= 0:
        return x
    return round(x, sig - 1 - math.floor(math.log10(x)))


def _tick_text(v: float) -> str:
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 1:
        return f"{v:g}"
    return f"{v:.6f}".rstrip("0").rstrip(".")


def _log_domain(values: Iterable[float], pad: float = 1.18) -> tuple[float, float]:
    vals = [v for v in values if v > 0]
    if not vals:
        return 0.01, 1.0
    lo, hi = min(vals) / pad, max(vals) * pad
    if hi / lo < 3:  # at least half a decade so the ticks mean something
        mid = math.sqrt(lo * hi)
        lo, hi = mid / math.sqrt(3), mid * math.sqrt(3)
    return lo, hi


# -- SVG primitives -------------------------------------------------------------------------------------
def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _text(
    x: float,
    y: float,
    text: str,
    *,
    size: float = 12,
    anchor: str = "start",
    fill: str = "#334155",
    weight: str = "normal",
    cls: str = "",
) -> str:
    extra = f' class="{cls}"' if cls else ""
    bold = f' font-weight="{weight}"' if weight != "normal" else ""
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" font-size="{_f(size)}" text-anchor="{anchor}" fill="{fill}"{bold}{extra}>'
        f"{_e(text)}</text>"
    )


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str, width: float = 1, extra: str = "") -> str:
    return (
        f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{stroke}" '
        f'stroke-width="{_f(width)}"{extra}/>'
    )


def _marker(shape: int, x: float, y: float, r: float, fill: str, stroke: str, width: float = 1.5) -> str:
    """One of eight marker shapes (circle, square, triangle, diamond, ...), about 2r across."""
    style = f'fill="{fill}" stroke="{stroke}" stroke-width="{_f(width)}"'
    shape %= 8
    if shape == 0:
        return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{_f(r)}" {style}/>'
    sides, rotation, scale = (
        (4, 45, 1.25),
        (3, -90, 1.35),
        (4, 0, 1.35),
        (3, 90, 1.35),
        (5, -90, 1.2),
        (6, 0, 1.15),
        (10, -90, 1.4),
    )[shape - 1]
    points = []
    for k in range(sides):
        radius = r * scale * (0.5 if sides == 10 and k % 2 else 1)
        angle = math.radians(rotation + 360 * k / sides)
        points.append(f"{_f(x + radius * math.cos(angle))},{_f(y + radius * math.sin(angle))}")
    return f'<polygon points="{" ".join(points)}" {style}/>'


def _svg(chart_id: str, width: float, height: float, title: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" id="{chart_id}" viewBox="0 0 {_f(width)} {_f(height)}" width="{_f(width)}" '
        f'height="{_f(height)}" role="img" aria-label="{_e(title)}">' + "".join(body) + "</svg>"
    )


def _run_text(run: _Run, runs: list[_Run]) -> str:
    """The run's label, plus its name when another run has the same label."""
    same = sum(1 for r in runs if r.label == run.label)
    return f"{run.label} ({run.name})" if same > 1 else run.label


LegendItem = tuple[str, float, str, str]  # (swatch SVG with {x} {y} {cx} placeholders, swatch width, text, colour)


def _run_items(runs: list[_Run], marker: str = "dot") -> list[LegendItem]:
    items = []
    for run in runs:
        if marker == "line":
            swatch = f'<line x1="{{x}}" y1="{{cy}}" x2="{{x18}}" y2="{{cy}}" stroke="{run.colour}" stroke-width="2.5"/>'
            items.append((swatch, 24.0, _run_text(run, runs), "#1e293b"))
        else:
            items.append((f'<circle cx="{{x5}}" cy="{{cy}}" r="5" fill="{run.colour}"/>', 15.0, _run_text(run, runs),
                          "#1e293b"))  # fmt: skip
    return items


def _legend(items: list[LegendItem], x0: float, y0: float, max_x: float, size: float = 12) -> tuple[list[str], float]:
    """Lay legend items out left to right, wrapping at `max_x`; returns the SVG and the next free baseline."""
    out = []
    x, y = x0, y0
    for swatch, sw, text, colour in items:
        w = sw + _text_width(text, size)
        if x > x0 and x + w > max_x:
            x, y = x0, y + size + 10
        cy = y - size * 0.35
        out.append(
            swatch.replace("{x}", _f(x)).replace("{x5}", _f(x + 5)).replace("{x6}", _f(x + 6))
            .replace("{x18}", _f(x + 18)).replace("{x26}", _f(x + 26)).replace("{cy}", _f(cy))
        )  # fmt: skip
        out.append(_text(x + sw, y, text, size=size, fill=colour))
        x += w + 24
    return out, y + size + 12


def _repel(wanted: list[float], gap: float, lo: float, hi: float) -> list[float]:
    """Spread 1-D label positions at least `gap` apart, staying within [lo, hi] when they fit."""
    order = sorted(range(len(wanted)), key=lambda i: wanted[i])
    pos = [wanted[i] for i in order]
    for i in range(1, len(pos)):
        pos[i] = max(pos[i], pos[i - 1] + gap)
    if pos and pos[-1] > hi:
        pos[-1] = hi
        for i in range(len(pos) - 2, -1, -1):
            pos[i] = min(pos[i], pos[i + 1] - gap)
    if pos and pos[0] < lo:
        shift = lo - pos[0]
        pos = [p + shift for p in pos]
    out = [0.0] * len(wanted)
    for i, p in zip(order, pos, strict=True):
        out[i] = p
    return out


# -- chart: accuracy vs latency (Pareto) ---------------------------------------------------------------
@dataclass
class _Point:
    run: _Run
    config: str
    artifact: str
    p90: float
    threads: int | None
    accuracy: float  # percent
    passed: bool
    size: float | None
    x: float = 0
    y: float = 0
    r: float = 0


def _pareto_points(runs: list[_Run]) -> list[_Point]:
    points = []
    for run in runs:
        if not run.parity_by_artifact:
            continue
        best: dict[str, Doc] = {}
        for r in run.rows:
            if _batch(r) != 1 or _num(r.get("p90_ms")) is None or r["artifact"] not in run.parity_by_artifact:
                continue
            key = config_label(r)
            if key not in best or float(r["p90_ms"]) < float(best[key]["p90_ms"]):
                best[key] = r
        for key, r in best.items():
            par = run.parity_by_artifact[r["artifact"]]
            acc = _num(par.get("accuracy"))
            if acc is None or float(r["p90_ms"]) <= 0:
                continue
            size = run.sizes.get(r["artifact"])
            if size is None:
                size = next((o.sizes[r["artifact"]] for o in runs if r["artifact"] in o.sizes), None)
            points.append(
                _Point(
                    run, key, r["artifact"], float(r["p90_ms"]), _threads(r), 100 * acc, bool(par.get("passed")), size
                )
            )
    return points


def _frontier(points: list[_Point]) -> list[_Point]:
    """Passed points not beaten by a faster one with at least the same accuracy, fastest first."""
    out: list[_Point] = []
    for p in sorted((p for p in points if p.passed), key=lambda p: (p.p90, -p.accuracy)):
        if not out or p.accuracy > out[-1].accuracy + 1e-12:
            out.append(p)
    return out


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


Box = tuple[float, float, float, float]


def _place_labels(points: list[_Point], bounds: Box, size: float, obstacles: list[Box]) -> list[str]:
    """Greedy label placement: next to the point if free, else stacked above/below with a leader line."""
    boxes = list(obstacles)
    out = []
    h = size + 3
    order = sorted(points, key=lambda p: (p.p90, -p.accuracy))
    for p in order:
        text = p.config if p.passed else f"{p.config} ✕ failed"
        w = _text_width(text, size, bold=p.passed)
        cands: list[tuple[float, float, str, bool]] = [  # (x, baseline y, anchor, leader)
            (p.x + p.r + 5, p.y + size * 0.35, "start", False),
            (p.x - p.r - 5, p.y + size * 0.35, "end", False),
            (p.x, p.y - p.r - 5, "middle", False),
            (p.x, p.y + p.r + size + 2, "middle", False),
        ]
        for k in range(1, 9):
            dy = p.r + 4 + k * h
            cands += [
                (p.x + p.r + 8, p.y - dy + size * 0.35, "start", True),
                (p.x + p.r + 8, p.y + dy + size * 0.35, "start", True),
                (p.x - p.r - 8, p.y - dy + size * 0.35, "end", True),
                (p.x - p.r - 8, p.y + dy + size * 0.35, "end", True),
            ]
        best: tuple[float, tuple[float, float, str, bool], Box] | None = None
        for c in cands:
            x, y, anchor, _ = c
            x0 = x if anchor == "start" else x - w if anchor == "end" else x - w / 2
            box = (x0 - 1, y - size, x0 + w + 1, y + 3)
            cost = sum(_overlap(box, b) for b in boxes)
            if box[0] < bounds[0] or box[2] > bounds[2] or box[1] < bounds[1] or box[3] > bounds[3]:
                cost += 1e6
            if best is None or cost < best[0] - 1e-9:
                best = (cost, c, box)
            if cost == 0:
                break
        assert best is not None
        _, (x, y, anchor, leader), box = best
        boxes.append(box)
        colour = FAIL if not p.passed else _darken(p.run.colour)
        if leader:
            ly = box[3] - 2 if box[3] < p.y else box[1] + 2
            lx = box[0] if anchor == "start" else box[2]
            out.append(_line(p.x, p.y, lx, ly, "#94a3b8", 0.8))
        weight = "600" if p.passed else "normal"
        out.append(_text(x, y, text, size=size, anchor=anchor, fill=colour, weight=weight, cls="halo"))
    return out


def _darken(colour: str, factor: float = 0.75) -> str:
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{int(c * factor):02x}" for c in rgb)


def chart_pareto(runs: list[_Run]) -> str | None:
    points = _pareto_points(runs)
    if not points:
        return None
    W = CHART_WIDTH
    left, right = 78, W - 24
    max_size = max((p.size for p in points if p.size), default=1.0)
    body: list[str] = []
    # Legend first: its height sets the top of the plot. Runs without accuracy have no points.
    shown = {id(p.run) for p in points}
    items = _run_items([r for r in runs if id(r) in shown])
    items.append(('<line x1="{x}" y1="{cy}" x2="{x26}" y2="{cy}" stroke="#64748b" stroke-width="2" '
                  'stroke-dasharray="6 3"/>', 32.0, "Pareto frontier (passed parity)", "#1e293b"))  # fmt: skip
    if any(not p.passed for p in points):
        items.append((f'<circle cx="{{x6}}" cy="{{cy}}" r="6" fill="#fff" stroke="{FAIL}" stroke-width="2"/>', 17.0,
                      "failed parity", FAIL))  # fmt: skip
    legend, y = _legend(items, left, 20, right)
    body += legend
    sizes = sorted({p.size for p in points if p.size})
    if sizes:
        x = float(left)
        y += 4
        body.append(_text(x, y, "marker area ∝ file size:", size=12, fill="#475569"))
        x += _text_width("marker area ∝ file size:", 12) + 8
        for size in dict.fromkeys([sizes[0], sizes[len(sizes) // 2], sizes[-1]]):
            r = 4 + 14 * math.sqrt(size / max_size)
            body.append(f'<circle cx="{_f(x + r)}" cy="{_f(y - 4)}" r="{_f(r)}" fill="none" stroke="#64748b"/>')
            body.append(_text(x + 2 * r + 5, y, _size(size), size=11.5, fill="#475569"))
            x += 2 * r + 14 + _text_width(_size(size), 11.5)
        y += 14
    top = y + 8
    bottom = top + 360
    H = bottom + 56
    xs = _Log(*_log_domain((p.p90 for p in points), 1.5), left, right)
    accs = [p.accuracy for p in points]
    refs = sorted(
        {
            100 * acc
            for run in runs
            if run.parity_by_artifact
            and (acc := _num(_dict(_dict(run.parity).get("reference")).get("accuracy"))) is not None
        }
    )
    span = max(max(accs + refs) - min(accs + refs), 0.04)
    ys = _Lin(min(accs + refs) - span * 0.3, max(accs + refs) + span * 0.3, bottom, top)
    for p in points:
        p.x, p.y = xs(p.p90), ys(p.accuracy)
        p.r = 4 + 14 * math.sqrt(p.size / max_size) if p.size else 5
    body.append(f'<rect x="{left}" y="{_f(top)}" width="{right - left}" height="{_f(bottom - top)}" fill="#f8fafc"/>')
    ticks = ys.ticks()
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    for t in ticks:
        ty = ys(t)
        body.append(_line(left, ty, right, ty, "#e2e8f0"))
        body.append(_text(left - 8, ty + 4, f"{t:.{digits}f}", size=11, anchor="end", fill="#475569"))
    for t in xs.ticks():
        tx = xs(t)
        body.append(_line(tx, top, tx, bottom, "#e2e8f0"))
        body.append(_text(tx, bottom + 17, _tick_text(t), size=11, anchor="middle", fill="#475569"))
    body.append(
        f'<rect x="{left}" y="{_f(top)}" width="{right - left}" height="{_f(bottom - top)}" fill="none" '
        'stroke="#cbd5e1"/>'
    )
    title = "batch-1 p90 latency at the best thread count (ms, log scale) — lower is better →"
    body.append(_text((left + right) / 2, H - 16, title, size=12.5, anchor="middle", fill="#1e293b"))
    body.append(
        f'<text transform="translate(22 {_f((top + bottom) / 2)}) rotate(-90)" font-size="12.5" '
        'text-anchor="middle" fill="#1e293b">test accuracy (%) — higher is better →</text>'
    )
    # Reference lines, their labels placed clear of the markers.
    obstacles = [(p.x - p.r, p.y - p.r, p.x + p.r, p.y + p.r) for p in points]
    for ref in refs:
        ry = ys(ref)
        body.append(_line(left, ry, right, ry, "#64748b", 1, ' stroke-dasharray="2 4"'))
        text = f"Keras reference {ref:.2f} %"
        w = _text_width(text, 11)
        spots = [(right - 6 - w, ry - 5), (right - 6 - w, ry + 14), (left + 6, ry - 5), (left + 6, ry + 14)]
        boxes = [(sx - 2, sy - 11, sx + w + 2, sy + 3) for sx, sy in spots]
        i = min(range(len(spots)), key=lambda k: (sum(_overlap(boxes[k], o) for o in obstacles), k))
        obstacles.append(boxes[i])
        body.append(_text(spots[i][0], spots[i][1], text, size=11, fill="#64748b", cls="halo"))
    # Frontier per run, drawn under the points.
    for run in runs:
        front = _frontier([p for p in points if p.run is run])
        if not front:
            continue
        d = f"M{_f(front[0].x)},{_f(front[0].y)}"
        for nxt in front[1:]:
            d += f" H{_f(nxt.x)} V{_f(nxt.y)}"
        d += f" H{_f(right)}"
        tip = f"Pareto frontier, {run.label}: " + " → ".join(p.config for p in front)
        body.append(
            f'<g class="mark"><title>{_e(tip)}</title><path d="{d}" fill="none" stroke="{run.colour}" '
            'stroke-width="2" stroke-opacity="0.6" stroke-dasharray="6 3"/></g>'
        )
    for p in sorted(points, key=lambda p: -(p.size or 0)):
        tip = (
            f"{p.config} — {p.run.label}\nbatch-1 p90 {_ms(p.p90)} ms ({_threads_text(p.threads)})\n"
            f"accuracy {p.accuracy:.2f} %  ·  parity {'passed' if p.passed else 'FAILED'}\n"
            f"size {_size(p.size)}"
        )
        if p.passed:
            shape = (
                f'<circle cx="{_f(p.x)}" cy="{_f(p.y)}" r="{_f(p.r)}" fill="{p.run.colour}" fill-opacity="0.5" '
                f'stroke="{_darken(p.run.colour)}" stroke-width="1.5"/>'
            )
        else:
            shape = (
                f'<circle cx="{_f(p.x)}" cy="{_f(p.y)}" r="{_f(p.r)}" fill="#ffffff" fill-opacity="0.6" '
                f'stroke="{FAIL}" stroke-width="2.2"/>'
            )
        body.append(f'<g class="mark"><title>{_e(tip)}</title>{shape}</g>')
    body += _place_labels(points, (left + 2, top + 2, right - 2, bottom - 2), 11.5, obstacles)
    return _svg("chart-pareto", W, H, "Accuracy against batch-1 p90 latency", body)


# -- chart: latency distribution at batch 1 ------------------------------------------------------------
def _config_order(runs: list[_Run]) -> list[str]:
    """Configurations, fastest first (batch-1 p50 on the first run that has them)."""
    best: dict[str, tuple[int, float]] = {}
    seen: dict[str, int] = {}
    for run in runs:
        for r in run.rows:
            key = config_label(r)
            seen.setdefault(key, len(seen))
            if _batch(r) == 1:
                cur = best.get(key)
                cand = (run.index, float(r["p50_ms"]))
                if cur is None or cand < cur:
                    best[key] = cand
    return sorted(seen, key=lambda k: (best.get(k, (1 << 30, math.inf)), seen[k]))


def chart_distribution(runs: list[_Run]) -> str | None:
    groups: list[tuple[str, list[tuple[_Run, Doc, tuple[float, float, float, float, float, bool]]]]] = []
    for key in _config_order(runs):
        items = []
        for run in runs:
            rows = sorted(
                (r for r in run.rows if _batch(r) == 1 and config_label(r) == key),
                key=lambda r: _thread_sort(_threads(r)),
            )
            for r in rows:
                g = _glyph(r)
                if g:
                    items.append((run, r, g))
        if items:
            groups.append((key, items))
    if not groups:
        return None
    recommended = {run.rec["config"]: run for run in runs if run.rec}
    W = CHART_WIDTH
    name_w = min(max(_text_width(k + " ★", 13) for k, _ in groups) + 16, 330)
    left = name_w + 78
    right = W - 190
    row_h, pad = 19, 7
    body: list[str] = []
    # Legend: run colours and the glyph key.
    legend, y = _legend(_run_items(runs), 8, 20, W - 8)
    body += legend
    any_q = any(g[5] for _, items in groups for *_, g in items)
    any_fallback = any(not g[5] for _, items in groups for *_, g in items)
    kx = 8.0
    ky = y + 2
    for with_q in (True, False):
        if (with_q and not any_q) or (not with_q and not any_fallback):
            continue
        names = ("p1", "p25", "p50", "p75", "p99") if with_q else ("min", "p50", "", "p90", "p99")
        offsets = (8, 46, 78, 110, 148) if with_q else (8, 56, 56, 104, 148)
        xk = [kx + o for o in offsets]
        body.append(_line(xk[0], ky, xk[4], ky, "#475569", 1.3))
        body.append(_line(xk[0], ky - 4, xk[0], ky + 4, "#475569", 1.3))
        body.append(_line(xk[4], ky - 4, xk[4], ky + 4, "#475569", 1.3))
        body.append(
            f'<rect x="{_f(xk[1])}" y="{_f(ky - 6)}" width="{_f(xk[3] - xk[1])}" height="12" '
            'fill="#cbd5e1" stroke="#475569"/>'
        )
        body.append(_line(xk[2], ky - 8, xk[2], ky + 8, "#0f172a", 2.5))
        for name, x_name in zip(names, xk, strict=True):
            if name:
                body.append(_text(x_name, ky + 21, name, size=10.5, anchor="middle", fill="#475569"))
        caption = "recorded percentiles" if with_q else "rows without quantiles: box p50–p90, whiskers min–p99"
        body.append(_text(kx + 162, ky + 4, caption, size=11.5, fill="#475569"))
        kx += 162 + _text_width(caption, 11.5) + 40
    top = ky + 58
    n_rows = sum(len(items) for _, items in groups)
    H = top + n_rows * row_h + len(groups) * 2 * pad + 46
    lows = [g[0] for _, items in groups for *_, g in items]
    highs = [g[4] for _, items in groups for *_, g in items]
    xs = _Log(*_log_domain(lows + highs, 1.15), left, right)
    # Grid and axes.
    plot_top, plot_bottom = top - 4, H - 42
    ticks = xs.ticks()
    for t in ticks:
        x = xs(t)
        body.append(_line(x, plot_top, x, plot_bottom, "#e2e8f0"))
        body.append(_text(x, plot_top - 6, _tick_text(t), size=11, anchor="middle", fill="#64748b"))
        body.append(_text(x, plot_bottom + 16, _tick_text(t), size=11, anchor="middle", fill="#475569"))
    body.append(
        _text(
            (left + right) / 2,
            H - 8,
            "latency of one call at batch 1 (ms, log scale)",
            size=12.5,
            anchor="middle",
            fill="#1e293b",
        )
    )
    body.append(_text(right + 14, plot_top - 6, "p50 · p99", size=11, fill="#64748b"))
    y = top
    for gi, (key, items) in enumerate(groups):
        gh = len(items) * row_h + 2 * pad
        if gi % 2 == 0:
            body.append(f'<rect x="0" y="{_f(y)}" width="{W}" height="{_f(gh)}" fill="#f1f5f9"/>')
        rec_run = recommended.get(key)
        name = key + (" ★" if rec_run else "")
        body.append(_text(8, y + gh / 2 + 4.5, name, size=13, weight="600", fill="#0f172a"))
        yy = y + pad
        for run, r, (lo, q1, med, q3, hi, from_q) in items:
            cy = yy + row_h / 2
            sub = _threads_text(_threads(r))
            if len(runs) > 1:
                body.append(f'<circle cx="{_f(name_w + 4)}" cy="{_f(cy)}" r="4" fill="{run.colour}"/>')
            body.append(_text(name_w + 12, cy + 4, sub, size=11.5, fill="#475569"))
            x_lo, x1, xm, x3, x_hi = (xs(v) for v in (lo, q1, med, q3, hi))
            col = run.colour
            tip = (
                f"{key} — {run.label}, batch 1, {sub}\n"
                + (
                    f"p1 {_ms(lo)} · p25 {_ms(q1)} · p50 {_ms(med)} · p75 {_ms(q3)} · p99 {_ms(hi)} ms"
                    if from_q
                    else f"min {_ms(lo)} · p50 {_ms(med)} · p90 {_ms(q3)} · p99 {_ms(hi)} ms"
                )
                + f"\nmax {_ms(r.get('max_ms'))} ms · {_int(r.get('runs'))} runs"
                + ("\nNOISY: " + _plain(r.get("noise")) if r.get("noisy") else "")
            )
            body.append(
                f'<g class="mark"><title>{_e(tip)}</title>'
                + _line(x_lo, cy, x_hi, cy, col, 1.3)
                + _line(x_lo, cy - 4, x_lo, cy + 4, col, 1.3)
                + _line(x_hi, cy - 4, x_hi, cy + 4, col, 1.3)
                + f'<rect x="{_f(x1)}" y="{_f(cy - 6)}" width="{_f(max(x3 - x1, 1))}" height="12" fill="{col}" '
                f'fill-opacity="0.28" stroke="{col}"/>' + _line(xm, cy - 8, xm, cy + 8, _darken(col, 0.6), 2.5) + "</g>"
            )
            value = f"{_dur(med)} · {_dur(hi)}"
            body.append(_text(right + 14, cy + 4, value, size=11.5, fill="#1e293b"))
            if r.get("noisy"):
                body.append(_text(W - 8, cy + 4, "noisy", size=11, anchor="end", fill="#b45309", weight="600"))
            yy += row_h
        y += gh
    body.append(_line(left, plot_bottom, right, plot_bottom, "#94a3b8"))
    return _svg("chart-latency", W, H, "Batch-1 latency distribution per configuration", body)


# -- chart: per-image latency vs batch size, one panel per thread count --------------------------------
def chart_batch(runs: list[_Run]) -> str | None:
    threads = sorted({_threads(r) for run in runs for r in run.rows}, key=_thread_sort)
    if not threads:
        return None
    configs = _config_order(runs)
    shape_of = {c: i for i, c in enumerate(configs)}
    per_image = [float(r["p50_ms"]) / _batch(r) for run in runs for r in run.rows]
    batches = sorted({_batch(r) for run in runs for r in run.rows})
    W = CHART_WIDTH
    label_size = 11
    label_w = min(max(_text_width(c, label_size) for c in configs) + 18, 220)
    cols = min(len(threads), 2)
    n_lines = max(
        len({(id(run), config_label(r)) for run in runs for r in run.rows if _threads(r) == t}) for t in threads
    )
    plot_h = max(280, n_lines * (label_size + 3) + 30)
    block_h = 26 + plot_h + 46  # panel title, plot, tick labels and axis title
    body: list[str] = []
    if len(runs) > 1:
        legend, y = _legend(_run_items(runs, "line"), 64, 20, W - 8)
        body += legend
        note = "one line per configuration and machine (colour), named by its marker and end label; ★ recommended"
    else:
        y = 20
        note = f"{_run_text(runs[0], runs)}: one line per configuration, named by its end label; ★ recommended"
    body.append(_text(64, y, note, size=11.5, fill="#475569"))
    top = y + 16
    rows_n = math.ceil(len(threads) / cols)
    H = top + rows_n * block_h + (rows_n - 1) * 18
    panel_w = (W - 56) / cols
    ys_dom = _log_domain(per_image, 1.25)
    recommended = {(run.index, run.rec["config"]) for run in runs if run.rec}
    for pi, t in enumerate(threads):
        px0 = 56 + (pi % cols) * panel_w
        py0 = top + (pi // cols) * (block_h + 18) + 26
        left, right = px0 + 40, px0 + panel_w - label_w - 26
        ptop, pbottom = py0, py0 + plot_h
        xs = _Log(batches[0] / 1.4, batches[-1] * 1.4, left, right) if len(batches) > 1 else None
        ys = _Log(ys_dom[0], ys_dom[1], pbottom, ptop)
        body.append(_text(left, ptop - 9, _threads_text(t), size=13, weight="600", fill="#0f172a"))
        body.append(
            f'<rect x="{_f(left)}" y="{_f(ptop)}" width="{_f(right - left)}" height="{_f(pbottom - ptop)}" '
            'fill="#f8fafc" stroke="#cbd5e1"/>'
        )
        for tk in ys.ticks():
            y = ys(tk)
            body.append(_line(left, y, right, y, "#e2e8f0"))
            body.append(_text(left - 6, y + 4, _tick_text(tk), size=11, anchor="end", fill="#475569"))
        for b in batches:
            x = xs(b) if xs else (left + right) / 2
            body.append(_line(x, ptop, x, pbottom, "#e2e8f0"))
            body.append(_text(x, pbottom + 16, str(b), size=11, anchor="middle", fill="#475569"))
        body.append(
            _text(
                (left + right) / 2,
                pbottom + 34,
                "batch size (images per call, log scale)",
                size=11.5,
                anchor="middle",
                fill="#1e293b",
            )
        )
        if pi % cols == 0:
            body.append(
                f'<text transform="translate({_f(px0 - 24)} {_f((ptop + pbottom) / 2)}) rotate(-90)" '
                'font-size="12" text-anchor="middle" fill="#1e293b">p50 per image (ms, log)</text>'
            )
        ends: list[tuple[float, float, str, str, bool]] = []
        for run in runs:
            for c in configs:
                pts = sorted(
                    (
                        (_batch(r), float(r["p50_ms"]) / _batch(r), r)
                        for r in run.rows
                        if _threads(r) == t and config_label(r) == c
                    ),
                    key=lambda p: p[0],
                )
                if not pts:
                    continue
                rec = (run.index, c) in recommended
                # Several machines: colour is the machine. One machine: colour tells the configurations apart.
                colour = run.colour if len(runs) > 1 else CONFIG_PALETTE[shape_of[c] % len(CONFIG_PALETTE)]
                coords = [((xs(b) if xs else (left + right) / 2), ys(v)) for b, v, _ in pts]
                width = 3 if rec else 1.6
                parts = [f'<g class="mark"><title>{_e(f"{c} — {run.label}, {_threads_text(t)}")}</title>']
                if len(coords) > 1:
                    path = " ".join(f"{_f(x)},{_f(y)}" for x, y in coords)
                    parts.append(
                        f'<polyline points="{path}" fill="none" stroke="{colour}" '
                        f'stroke-width="{width}" stroke-opacity="0.8"/>'
                    )
                parts.append("</g>")
                body.append("".join(parts))
                for (x, y), (b, v, r) in zip(coords, pts, strict=True):
                    tip = (
                        f"{c} — {run.label}\nbatch {b}, {_threads_text(t)}: {_ms(v)} ms per image "
                        f"(p50 {_ms(r.get('p50_ms'))} ms per call, {_int(r.get('throughput_ips'))} img/s)"
                    )
                    body.append(
                        f'<g class="mark"><title>{_e(tip)}</title>'
                        + _marker(shape_of[c], x, y, 4.2, "#ffffff", colour, 1.8)
                        + "</g>"
                    )
                ends.append((coords[-1][0], coords[-1][1], c + (" ★" if rec else ""), colour, rec))
        placed = _repel([e[1] + 4 for e in ends], label_size + 3, ptop + 10, pbottom + 2)
        for (x, y, text, colour, rec), ly in zip(ends, placed, strict=True):
            lx = right + 8
            body.append(_line(x + 5, y, lx - 2, ly - 4, colour, 0.7, ' stroke-opacity="0.6"'))
            body.append(_text(lx, ly, text, size=label_size, fill=_darken(colour), weight="600" if rec else "normal"))
    return _svg("chart-batch", W, H, "Per-image p50 latency against batch size, per thread count", body)


# -- HTML sections ------------------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None, cls: str = "") -> str:
    """A table; `header` is plain text (escaped here), `rows` hold ready HTML (already escaped).

    `align` has one letter per column: r (number, right, no wrap), n (text, no wrap), l (text that may wrap).
    """
    align = align or "n" + "r" * (len(header) - 1)
    cls_of = {"r": "num", "n": "nowrap", "l": ""}
    th = "".join(f'<th class="{cls_of[a]}">{_e(h)}</th>' for h, a in zip(header, align, strict=True))
    body = "".join(
        "<tr>" + "".join(f'<td class="{cls_of[a]}">{c}</td>' for c, a in zip(r, align, strict=True)) + "</tr>"
        for r in rows
    )
    return (
        f'<div class="table-wrap"><table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def _swatch(run: _Run) -> str:
    return f'<span class="swatch" style="background:{run.colour}"></span>'


def _run_tag(runs: list[_Run]) -> str:
    return " ".join(f'<span class="run-tag">{_swatch(r)}{_e(r.name)}</span>' for r in runs)


def _grouped(runs: list[_Run], attr: str) -> list[tuple[list[_Run], Doc]]:
    """Runs sharing an identical document, so copies of one run's files are shown once."""
    groups: dict[str, tuple[list[_Run], Doc]] = {}
    for run in runs:
        doc = getattr(run, attr)
        if doc:
            key = json.dumps(doc, sort_keys=True, default=str)
            groups.setdefault(key, ([], doc))[0].append(run)
    return list(groups.values())


def _section(anchor: str, title: str, content: str, intro: str = "") -> str:
    intro_html = f'<p class="intro">{intro}</p>' if intro else ""
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{intro_html}{content}</section>'


def _header(runs: list[_Run]) -> str:
    names = ", ".join(r.name for r in runs)
    dates = sorted({str(_dict(r.bench).get("created_utc") or "") for r in runs} - {""})
    sub = f"{len(runs)} run{'s' if len(runs) != 1 else ''}: {names}"
    if dates:
        sub += " · benchmarked " + ", ".join(d.replace("T", " ").replace("Z", " UTC") for d in dates)
    nav = [
        ("recommendation", "Recommendation"),
        ("machines", "Machines"),
        ("charts", "Charts"),
        ("training", "Training"),
        ("artifacts", "Artifacts"),
        ("parity", "Parity"),
        ("latency", "Latency"),
    ]
    links = "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in nav)
    return (
        f'<header><div class="eyebrow">edgekit · benchmark report</div><h1>Which model to deploy</h1>'
        f'<p class="sub">{_e(sub)}</p><nav>{links}</nav></header>'
    )


def _thermal(env: Doc) -> list[tuple[str, str]]:
    """Temperature and throttling fields of an environment block, as (readable key, value) pairs."""
    out = []
    for k, v in env.items():
        low = k.lower()
        if ("temp" in low or "thrott" in low) and v not in (None, [], {}, ""):
            unit = " °C" if "temp" in low and low.endswith("_c") and _num(v) is not None else ""
            out.append((k.removesuffix("_c").replace("_", " "), _plain(v) + unit))
    return out


def _alerts(runs: list[_Run]) -> str:
    out = []
    for run in runs:
        env = run.env
        if env.get("throttled"):
            details = [f"{k}: {v}" for k, v in _thermal(env) if k != "throttled"]
            out.append(
                f'<div class="banner warn" role="alert"><strong>WARNING — CPU throttled</strong> on '
                f"{_swatch(run)}<b>{_e(run.label)}</b> ({_e(run.name)}) during this benchmark"
                + (f" ({_e('; '.join(details))})" if details else "")
                + ". Its latencies are likely pessimistic and not comparable with other runs; re-run it cooled "
                "and with a fixed governor.</div>"
            )
    for run in runs:
        noisy = _noisy(run)
        if noisy:
            items = "".join(f"<li>{_e(n)}</li>" for n in noisy)
            out.append(
                f'<div class="banner note">{_swatch(run)}<strong>{len(noisy)} noisy measurement'
                f"{'s' if len(noisy) != 1 else ''}</strong> on <b>{_e(run.label)}</b> ({_e(run.name)}): timing "
                f"varied during the run, so small differences on these rows are not established (marked "
                f"<i>noisy</i> in the charts and tables).<details><summary>Which rows, and why</summary>"
                f"<ul>{items}</ul></details></div>"
            )
    for run in runs:
        skipped = _list(_dict(run.bench).get("skipped"))
        if skipped:
            items = ", ".join(
                f"{s.get('artifact', '?')} ({s.get('reason', '')})" if isinstance(s, dict) else str(s) for s in skipped
            )
            out.append(
                f'<div class="banner info">{_swatch(run)}Not benchmarked on <b>{_e(run.label)}</b>: {_e(items)}.</div>'
            )
        data = _dict(_dict(run.train).get("data"))
        if data and not data.get("verified", True):
            warn = "; ".join(str(w) for w in _list(data.get("warnings")))
            out.append(
                f'<div class="banner warn"><strong>Unverified training data</strong> ({_e(run.name)}): {_e(warn)}</div>'
            )
    return "".join(out)


def _recommendation(runs: list[_Run]) -> str:
    if not any(r.bench for r in runs):
        return ""
    cards = []
    for run in runs:
        if not run.bench:
            continue
        rec = run.rec
        head = (
            f'<div class="card-head">{_swatch(run)}<b>{_e(run.label)}</b> <span class="muted">{_e(run.name)}</span>'
            "</div>"
        )
        if rec is None:
            if not run.parity:
                why = "No parity.json for this run: nothing is known to be accurate enough to recommend."
            elif not run.parity.get("passed", True) and not any(
                p.get("passed") for p in run.parity_by_artifact.values()
            ):
                why = "No artifact passed parity: see the parity failures below."
            else:
                why = "No benchmarked artifact passed parity."
            cards.append(
                f'<div class="card rec none" style="border-top-color:{run.colour}">{head}<p>{_e(why)}</p></div>'
            )
            continue
        size = run.sizes.get(rec["artifact"])
        ref = str(_dict(_dict(run.parity).get("reference")).get("artifact") or "")
        ref_rows = [float(r["p50_ms"]) for r in run.rows if r["artifact"] == ref and _batch(r) == rec["batch_size"]]
        facts = [
            f"<b>{_e(_dur(rec['p50_ms']))}</b> p50 at batch {rec['batch_size']} with "
            f"{_e(_threads_text(rec['threads']))}",
            f"accuracy <b>{rec['accuracy'] * 100:.2f} %</b>" if rec["accuracy"] is not None else "",
            f"{_e(_size(size))} on disk" if size else "",
        ]
        if ref_rows and ref != rec["artifact"]:
            facts.append(f"{min(ref_rows) / rec['p50_ms']:.1f}× faster than {_e(ref)}")
        facts_html = "".join(f"<li>{f}</li>" for f in facts if f)
        cards.append(
            f'<div class="card rec" style="border-top-color:{run.colour}">{head}'
            f'<div class="rec-name">{_e(rec["config"])}</div>'
            f'<div class="rec-runtime">on {_e(_runtime_name(rec["runtime"]))}</div><ul>{facts_html}</ul></div>'
        )
    intro = (
        "The fastest configuration (lowest batch-1 p50 at any thread count) among the artifacts that passed "
        "parity, per machine — the same rule as <code>report.md</code>."
    )
    picks = {run.rec["config"] for run in runs if run.rec}
    benched = [run for run in runs if run.bench]
    if len(benched) > 1 and len(picks) == 1 and all(run.rec for run in benched):
        intro += f" <b>Every machine picks {_e(next(iter(picks)))}.</b>"
    return _section("recommendation", "Recommendation", f'<div class="cards">{"".join(cards)}</div>', intro)


def _summary(runs: list[_Run]) -> str:
    """Recommendation and machine sections; side by side for a single run (one card each)."""
    rec, machines = _recommendation(runs), _machines(runs)
    if len(runs) == 1 and rec and machines:
        return f'<div class="pair">{rec}{machines}</div>'
    return rec + machines


def _machines(runs: list[_Run]) -> str:
    cards = []
    for run in runs:
        env = run.env
        if not env and not run.bench:
            cards.append(
                f'<div class="card env" style="border-top-color:{run.colour}"><div class="card-head">'
                f'{_swatch(run)}<b>{_e(run.label)}</b></div><p class="muted">{_e(run.name)}: no bench.json, '
                "so nothing is known about this machine.</p></div>"
            )
            continue
        items: list[tuple[str, str]] = [("run", run.name)]
        cores = env.get("cores_available")
        logical = env.get("cores_logical")
        items += [
            ("CPU", _plain(env.get("cpu_model"))),
            ("cores", f"{_plain(cores)} available" + (f" of {logical}" if logical and logical != cores else "")),
            ("architecture", " ".join(str(env[k]) for k in ("machine", "bitness") if env.get(k)) or "–"),
            ("OS", _plain(env.get("os"))),
            ("Python", " ".join(str(env[k]) for k in ("python", "python_implementation") if env.get(k)) or "–"),
            ("numpy", _plain(env.get("numpy"))),
        ]
        for rt, version in _dict(env.get("runtime_versions")).items():
            if version:
                items.append((_runtime_name(rt), str(version)))
        freq = [
            f"{k} {_fixed(env.get(key), 0)} MHz"
            for k, key in (
                ("now", "cpu_freq_cur_mhz"),
                ("min", "cpu_freq_min_mhz"),
                ("max", "cpu_freq_max_mhz"),
                ("hw max", "cpu_freq_hw_max_mhz"),
            )
            if _num(env.get(key)) is not None
        ]
        if env.get("cpu_governor"):
            items.append(("governor", str(env["cpu_governor"])))
        if freq:
            items.append(("frequency", ", ".join(freq)))
        items += _thermal(env)
        peak = _dict(env.get("peak_gflops"))
        if peak:
            items.append(
                (
                    "peak fp32",
                    ", ".join(
                        f"{_threads_text(int(t)) if str(t).isdigit() else t}: {_fixed(v, 1)} GFLOP/s"
                        for t, v in peak.items()
                    ),
                )
            )
        if env.get("thread_env"):
            items.append(("thread env", _plain(env.get("thread_env"))))
        method = _dict(_dict(run.bench).get("method"))
        if method:
            items.append(
                (
                    "method",
                    f"{_plain(method.get('warmup_runs'))} warm-up runs, then ≥ {_plain(method.get('min_runs'))} timed "
                    f"runs and ≥ {_plain(method.get('min_seconds'))} s per configuration, fresh process each",
                )
            )
        if env.get("hostname") or env.get("timestamp_utc"):
            items.append(("host, time", " · ".join(str(env[k]) for k in ("hostname", "timestamp_utc") if env.get(k))))
        rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
        badge = '<span class="badge fail">THROTTLED</span>' if env.get("throttled") else ""
        cards.append(
            f'<div class="card env" style="border-top-color:{run.colour}"><div class="card-head">{_swatch(run)}'
            f"<b>{_e(run.label)}</b>{badge}</div><dl>{rows}</dl></div>"
        )
    return _section("machines", "Machines", f'<div class="cards">{"".join(cards)}</div>')


def _training(runs: list[_Run]) -> str:
    parts = []
    groups = _grouped(runs, "train")
    for members, train in groups:
        cfg = _dict(train.get("config"))
        acc = _num(train.get("test_accuracy"))
        row = [
            _e(_fixed(acc * 100 if acc is not None else None, 2, " %")),
            _e(_fixed(train.get("test_loss"), 4)),
            _e(_plain(cfg.get("epochs"))),
            _e(_plain(cfg.get("batch_size"))),
            _e(_plain(cfg.get("seed"))),
            _e(_int(train.get("train_images"))),
            _e(_int(train.get("num_params"))),
            _e(_fixed(train.get("wall_seconds"), 1, " s")),
        ]
        head = f"<h3>{_run_tag(members)}</h3>" if len(runs) > 1 else ""
        hist = [_num(v) for v in _list(_dict(train.get("history")).get("val_accuracy"))]
        epochs = ""
        if hist and all(v is not None for v in hist):
            epochs = (
                '<p class="small">Test (validation) accuracy by epoch: '
                + ", ".join(f"{100 * (v or 0):.2f}" for v in hist)
                + " %</p>"
            )
        libs = _dict(train.get("libraries"))
        lib_html = ""
        if libs:
            lib_html = '<p class="small muted">' + _e(", ".join(f"{k} {v}" for k, v in libs.items())) + "</p>"
        parts.append(
            head
            + _table(
                ["test accuracy", "test loss", "epochs", "batch", "seed", "train images", "parameters", "wall time"],
                [row],
                "rrrrrrrr",
            )
            + epochs
            + lib_html
        )
    return _section("training", "Training", "".join(parts)) if parts else ""


def _artifacts(runs: list[_Run]) -> str:
    parts = []
    recommended = {run.rec["artifact"] for run in runs if run.rec}
    for members, manifest in _grouped(runs, "manifest"):
        rows = []
        for a in _list(manifest.get("artifacts")):
            a = _dict(a)
            inp = _dict(a.get("input"))
            quant = ""
            if _num(inp.get("scale")) is not None:
                quant = f"in scale {inp['scale']:.6g} zp {_plain(inp.get('zero_point'))}"
            name = _e(a.get("name", "?")) + (
                ' <span class="star" title="recommended">★</span>' if str(a.get("name")) in recommended else ""
            )
            rows.append(
                [
                    name,
                    _e(_plain(a.get("format"))),
                    _e(_plain(a.get("precision"))),
                    _e(_runtime_name(a.get("runtime"))),
                    _e(_int(a.get("size_bytes"))),
                    _e(_size(a.get("size_bytes"))),
                    f"<code>{_e(str(a.get('sha256') or '–')[:16])}</code>",
                    _e(_plain(inp.get("dtype") or "float32")),
                    _e(quant or "–"),
                ]
            )
        head = f"<h3>{_run_tag(members)}</h3>" if len(runs) > 1 else ""
        notes = [
            (str(_dict(a).get("name")), str(n))
            for a in _list(manifest.get("artifacts"))
            for n in _list(_dict(a).get("notes"))
        ]
        notes_html = ""
        if notes:
            notes_html = (
                "<details><summary>Converter messages ("
                + str(len(notes))
                + ")</summary><ul>"
                + "".join(f"<li><b>{_e(a)}</b>: {_e(n)}</li>" for a, n in notes)
                + "</ul></details>"
            )
        parts.append(
            head
            + _table(
                ["artifact", "format", "precision", "runtime", "bytes", "size", "sha256", "input", "quantization"],
                rows,
                "nnnnrrnnl",
            )
            + notes_html
        )
    return _section("artifacts", "Artifacts", "".join(parts)) if parts else ""


def _parity(runs: list[_Run]) -> str:
    parts = []
    for members, parity in _grouped(runs, "parity"):
        ref = _dict(parity.get("reference"))
        ref_acc = _num(ref.get("accuracy"))
        rows = []
        for r in _list(parity.get("results")):
            r = _dict(r)
            acc = _num(r.get("accuracy"))
            delta = "–" if acc is None or ref_acc is None else f"{100 * (acc - ref_acc):+.2f}"
            diff = _num(r.get("max_abs_diff"))
            mean = _num(r.get("mean_abs_diff"))
            agree = _num(r.get("top1_agreement"))
            if r.get("passed"):
                result = '<span class="badge pass">pass</span>'
            else:
                result = '<span class="badge fail">FAIL</span> ' + _e(
                    "; ".join(str(f) for f in _list(r.get("failures")))
                )
            rows.append(
                [
                    _e(r.get("artifact", "?")),
                    _e(_runtime_name(r.get("runtime"))),
                    _e(_fixed(acc * 100 if acc is not None else None, 2, " %")),
                    _e(delta),
                    _e("–" if agree is None else f"{agree:.4f}"),
                    _e("–" if diff is None else f"{diff:.2e}"),
                    _e("–" if mean is None else f"{mean:.2e}"),
                    _e(_plain(r.get("tolerance"))),
                    result,
                ]
            )
        status = "All rows passed." if parity.get("passed") else '<b class="fail-text">Some rows failed.</b>'
        intro = (
            f"All {_e(_int(ref.get('images')))} test images through each artifact's runtime, against the "
            f"{_e(ref.get('artifact', 'Keras'))} reference "
            f"({_e(_fixed(ref_acc * 100 if ref_acc is not None else None, 2, ' %'))}). " + status
        )
        head = f"<h3>{_run_tag(members)}</h3>" if len(runs) > 1 else ""
        parts.append(
            head
            + f'<p class="small">{intro}</p>'
            + _table(
                [
                    "artifact",
                    "runtime",
                    "accuracy",
                    "Δ pt",
                    "agreement",
                    "max |Δp|",
                    "mean |Δp|",
                    "tolerance",
                    "result",
                ],
                rows,
                "nnrrrrrll",
            )
        )
    missing = [r for r in runs if not r.parity and (r.bench or r.manifest)]
    if parts and missing:
        parts.append(f'<p class="small muted">No parity.json for {_e(", ".join(r.name for r in missing))}.</p>')
    return _section("parity", "Parity", "".join(parts)) if parts else ""


def _latency(runs: list[_Run]) -> str:
    parts = []
    for run in runs:
        if not run.rows:
            continue
        configs = sorted({(_batch(r), _threads(r)) for r in run.rows}, key=lambda c: (c[0], _thread_sort(c[1])))
        header = ["configuration"] + [f"b{b} × {t if t is not None else 'def.'}t" for b, t in configs]
        header += ["best img/s", "load ms", "peak RSS MB"]
        pivot = []
        rec = run.rec["config"] if run.rec else None
        for key in dict.fromkeys(config_label(r) for r in run.rows):
            mine = {(_batch(r), _threads(r)): r for r in run.rows if config_label(r) == key}
            best = max((_num(r.get("throughput_ips")) or 0 for r in mine.values()), default=0)
            loads = [v for r in mine.values() if (v := _num(r.get("load_ms"))) is not None]
            rss = [v for r in mine.values() if (v := _num(r.get("peak_rss_mb"))) is not None]
            name = _e(key) + (' <span class="star" title="recommended">★</span>' if key == rec else "")
            pivot.append(
                [name]
                + [_e(_ms(mine[c]["p50_ms"])) if c in mine else "–" for c in configs]
                + [_e(f"{best:,.0f}"), _e(_ms(min(loads) if loads else None)), _e(_fixed(max(rss) if rss else None, 0))]
            )
        full = []
        for r in run.rows:
            mean, std = _num(r.get("mean_ms")), _num(r.get("std_ms"))
            lo, hi = _num(r.get("p90_ci_low_ms")), _num(r.get("p90_ci_high_ms"))
            pct = _num(r.get("pct_of_peak"))
            flag = (
                '<span class="badge noisy" title="' + _e(_plain(r.get("noise"))) + '">noisy</span>'
                if r.get("noisy")
                else ""
            )
            full.append(
                [
                    _e(config_label(r)) + " " + flag,
                    _e(_batch(r)),
                    _e(_plain(_threads(r))),
                    _e(_ms(r.get("p50_ms"))),
                    _e(_ms(r.get("p90_ms"))),
                    _e("–" if lo is None or hi is None else f"{_ms(lo)}–{_ms(hi)}"),
                    _e(_ms(r.get("p95_ms"))),
                    _e(_ms(r.get("p99_ms"))),
                    _e("–" if mean is None else f"{_ms(mean)} ± {_ms(std)}"),
                    _e(_int(r.get("runs"))),
                    _e(_int(r.get("throughput_ips"))),
                    _e(_fixed(r.get("gflops"), 2)),
                    _e("–" if pct is None else f"{pct:.1f} %"),
                    _e(_ms(r.get("load_ms"))),
                    _e(_fixed(r.get("peak_rss_mb"), 0)),
                ]
            )
        head = f'<h3>{_swatch(run)}{_e(run.label)} <span class="muted">{_e(run.name)}</span></h3>'
        parts.append(
            head + '<p class="small">p50 latency of one call in ms (b = batch size, t = threads). <i>load</i> = cold '
            "start: runtime import + model load + first inference.</p>"
            + _table(header, pivot, "n" + "r" * (len(header) - 1), "pivot")
            + "<details open><summary>All latency rows</summary>"
            + '<p class="small muted">Milliseconds per call. p90 CI: confidence interval of the p90; GFLOP/s: model '
            "FLOPs × batch ÷ p50; % peak: that rate against the machine's measured float32 peak (int8 artifacts "
            "compute in integers, so theirs is float-equivalent and can pass 100 %); RSS: peak resident memory "
            "of the benchmark process. – = not recorded.</p>"
            + _table(
                [
                    "configuration",
                    "batch",
                    "threads",
                    "p50 ms",
                    "p90 ms",
                    "p90 CI",
                    "p95 ms",
                    "p99 ms",
                    "mean ± sd ms",
                    "runs",
                    "img/s",
                    "GFLOP/s",
                    "% peak",
                    "load ms",
                    "RSS MB",
                ],
                full,
                "nrrrrrrrrrrrrrr",
                "dense",
            )
            + "</details>"
        )
    return _section("latency", "Latency", "".join(parts)) if parts else ""


def _charts(runs: list[_Run]) -> str:
    blocks = []
    pareto = chart_pareto(runs)
    if pareto:
        no_parity = [r.name for r in runs if r.rows and not r.parity_by_artifact]
        extra = f" Not shown (no parity.json): {_e(', '.join(no_parity))}." if no_parity else ""
        images = {_num(_dict(_dict(r.parity).get("reference")).get("images")) for r in runs if r.parity} - {None}
        if len(images) == 1:
            n = int(next(iter(images)) or 0)
            if n > 0:
                extra += f" Accuracy is over {n:,} test images: one image is {100 / n:.2g} pt."
        blocks.append(
            "<figure><figcaption><b>Accuracy vs latency.</b> Each configuration at its best thread count; up and "
            "left is better. The dashed step line is each machine's Pareto frontier among artifacts that passed "
            f"parity; hollow red markers failed parity.{extra}</figcaption>{pareto}</figure>"
        )
    dist = chart_distribution(runs)
    if dist:
        blocks.append(
            "<figure><figcaption><b>Latency distribution at batch 1.</b> One row per configuration, machine and "
            "thread count, fastest first; the thick tick is the median, the box the middle of the distribution "
            "and the whiskers the tail. ★ = recommended. Hover for all numbers.</figcaption>"
            f"{dist}</figure>"
        )
    batch = chart_batch(runs)
    if batch:
        blocks.append(
            "<figure><figcaption><b>Batching and threads.</b> Median latency per image (p50 of a call ÷ batch "
            "size): a falling line means batching pays off. One panel per thread count"
            + ("; lines are coloured by machine." if len(runs) > 1 else ".")
            + f"</figcaption>{batch}</figure>"
        )
    return _section("charts", "Charts", "".join(blocks)) if blocks else ""


CSS = """
:root { --ink:#0f172a; --ink2:#334155; --muted:#64748b; --line:#e2e8f0; --bg:#ffffff; --panel:#f8fafc; }
* { box-sizing: border-box; }
html { background: #eef2f7; }
body { margin: 0; font-family: FONT; color: var(--ink); font-size: 15px; line-height: 1.5;
  -webkit-font-smoothing: antialiased; }
main { max-width: 1232px; margin: 0 auto; padding: 0 16px 48px; }
header { background: linear-gradient(120deg, #0f172a, #1e3a8a); color: #f8fafc; padding: 28px 0 18px; }
header .inner { max-width: 1232px; margin: 0 auto; padding: 0 40px; }
.eyebrow { text-transform: uppercase; letter-spacing: .12em; font-size: 12px; color: #93c5fd; font-weight: 600; }
h1 { font-size: 30px; margin: 4px 0 2px; letter-spacing: -.01em; }
.sub { margin: 0 0 14px; color: #cbd5e1; font-size: 14px; }
nav a { color: #e2e8f0; text-decoration: none; font-size: 13px; margin-right: 18px; border-bottom: 1px solid #475569; }
section { background: var(--bg); border-radius: 10px; padding: 18px 24px 20px; margin-top: 18px;
  box-shadow: 0 1px 2px rgba(15,23,42,.06), 0 1px 8px rgba(15,23,42,.04); }
h2 { font-size: 20px; margin: 0 0 10px; letter-spacing: -.005em; }
h3 { font-size: 15px; margin: 18px 0 6px; color: var(--ink2); }
.intro { color: var(--ink2); margin: -4px 0 12px; font-size: 14px; }
.small { font-size: 13px; color: var(--ink2); margin: 6px 0; }
.muted { color: var(--muted); font-weight: normal; }
code { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 12px; background: #f1f5f9;
  padding: 1px 4px; border-radius: 3px; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 50%; margin-right: 6px;
  vertical-align: -1px; }
.run-tag { margin-right: 12px; font-weight: 600; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; margin-top: 18px; align-items: start; }
.pair > section { margin-top: 0; }
.pair .cards { grid-template-columns: 1fr; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 14px; }
.card { border: 1px solid var(--line); border-top: 4px solid #94a3b8; border-radius: 8px; padding: 12px 16px;
  background: var(--panel); }
.card-head { font-size: 14px; margin-bottom: 4px; }
.card ul { margin: 6px 0 0; padding-left: 18px; font-size: 14px; color: var(--ink2); }
.rec-name { font-size: 24px; font-weight: 700; letter-spacing: -.01em; margin-top: 6px; }
.rec-runtime { color: var(--muted); font-size: 14px; }
.card.none p { color: var(--muted); margin: 6px 0 0; font-size: 14px; }
dl { display: grid; grid-template-columns: 118px 1fr; gap: 3px 12px; margin: 8px 0 0; font-size: 13px; }
dt { color: var(--muted); }
dd { margin: 0; color: var(--ink); overflow-wrap: anywhere; }
.banner { border-radius: 8px; padding: 12px 16px; margin-top: 14px; font-size: 14px; }
.banner ul { margin: 6px 0 0; padding-left: 20px; font-size: 13px; columns: 2; }
.banner.warn { background: #fef2f2; border: 2px solid #dc2626; color: #7f1d1d; }
.banner.note { background: #fffbeb; border: 1px solid #f59e0b; color: #78350f; }
.banner.info { background: #f0f9ff; border: 1px solid #7dd3fc; color: #0c4a6e; }
.badge { display: inline-block; font-size: 11px; font-weight: 700; padding: 1px 7px; border-radius: 10px;
  letter-spacing: .03em; margin-left: 6px; }
.badge.pass { background: #dcfce7; color: #166534; margin-left: 0; }
.badge.fail { background: #fee2e2; color: #991b1b; }
td .badge { margin-left: 0; }
.badge.noisy { background: #fef3c7; color: #92400e; }
.fail-text { color: #b91c1c; }
.star { color: #d97706; }
figure { margin: 8px 0 26px; }
figcaption { font-size: 14px; color: var(--ink2); margin-bottom: 8px; max-width: 980px; }
svg.chart { display: block; max-width: 100%; height: auto; font-family: FONT; }
svg.chart text { font-family: FONT; }
svg.chart .halo { paint-order: stroke; stroke: #ffffff; stroke-width: 3px; stroke-linejoin: round; }
.table-wrap { overflow-x: auto; margin: 6px 0 10px; }
table { border-collapse: collapse; font-size: 13px; width: 100%; font-variant-numeric: tabular-nums; }
table.dense { font-size: 11.5px; }
th { text-align: left; font-weight: 600; color: var(--ink2); border-bottom: 2px solid #cbd5e1; padding: 6px 8px;
  white-space: nowrap; background: #f8fafc; }
td { padding: 5px 8px; border-bottom: 1px solid var(--line); }
table.dense td, table.dense th { padding: 4px 5px; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fafbfd; }
tbody tr:hover td { background: #eff6ff; }
details { margin-top: 8px; }
summary { cursor: pointer; color: var(--ink2); font-size: 13px; font-weight: 600; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 22px; }
""".replace("FONT", FONT)

SELF_CHECK = """
(function () {
  var root = document.documentElement, errors = 0;
  root.dataset.errors = "0";
  window.onerror = function () { errors += 1; root.dataset.errors = String(errors); };
  window.addEventListener("load", function () {
    var charts = document.querySelectorAll("svg.chart"), drawn = 0;
    for (var i = 0; i < charts.length; i++) {
      var marks = charts[i].querySelectorAll(".mark");
      for (var j = 0; j < marks.length; j++) {
        var box = marks[j].getBoundingClientRect();
        if (box.width > 0 || box.height > 0) { drawn += 1; break; }
      }
    }
    root.dataset.chartsExpected = String(charts.length);
    root.dataset.charts = String(drawn);
  });
})();
"""


def _diagnosis(runs: Sequence[Doc]) -> str:
    """`edgekit diagnose` results when present: where each export departs, and why a slow one is slow.

    Expects `run["diagnose"]` (diagnose.json) and optionally `run["diagnose_gallery"]`
    ({artifact: base64 PNG}), which is embedded so the report stays one file.
    """
    parts = []
    for raw in runs:
        run = _dict(raw)
        doc = _dict(run.get("diagnose"))
        if not doc:
            continue
        galleries = _dict(run.get("diagnose_gallery"))
        rows = []
        for a in _list(doc.get("artifacts")):
            a = _dict(a)
            first = _dict(a.get("first_departure"))
            ranking = [_dict(x) for x in _list(a.get("added_error_ranking"))][:2]
            top = ", ".join(
                f"{_e(x.get('layer'))} (+{_fixed(x.get('added_error_pct'), 3)} % error power)" for x in ranking
            )
            rows.append(
                [
                    _e(a.get("artifact")),
                    _e(first.get("layer") or "none: every layer within threshold"),
                    top or "–",
                    _e(_int(a.get("disagreements"))),
                ]
            )
        table = _table(["artifact", "first layer that departs", "layers adding most error", "disagreements"], rows)
        speed = [
            f"<li><b>{_e(_dict(s).get('artifact'))}</b>: {_e(_dict(s).get('reason'))}</li>"
            for s in _list(doc.get("speed"))
            if _dict(s).get("slower")
        ]
        images = [
            f'<figure><img alt="disagreements of {_e(name)}" src="data:image/png;base64,{_e(data)}" '
            f'style="max-width:100%"><figcaption>{_e(name)}: test images where it disagrees with Keras'
            "</figcaption></figure>"
            for name, data in galleries.items()
            if isinstance(data, str)
        ]
        parts.append(
            f"<h3>{_e(run.get('name', ''))}</h3>"
            + table
            + (f"<h4>Why some int8 configurations are slower</h4><ul>{''.join(speed)}</ul>" if speed else "")
            + "".join(images)
        )
    if not parts:
        return ""
    intro = (
        "From <code>edgekit diagnose</code>: each layer of the Keras model against the same tensor in each export "
        "(SNR and cosine against the float reference), and the images where an export disagrees."
    )
    return _section("diagnosis", "Diagnosis", "".join(parts), intro)


def render_html(runs: list[dict[str, Any]]) -> str:
    """Render one self-contained HTML report for one or more runs.

    Args:
        runs: one dict per run (machine): `{"name": str, "label": str, "train": dict | None,
            "manifest": dict | None, "parity": dict | None, "bench": dict | None}` with the parsed
            JSON files of the run directory. `label` names the machine; it defaults to one built
            from bench.json's environment. Sections without data are left out.

    Returns:
        The HTML document: inline CSS and SVG, no external resource; every string from the JSON escaped.
    """
    prepared = _prepare(runs)
    title = "edgekit report: " + ", ".join(r.name for r in prepared) if prepared else "edgekit report"
    if not prepared:
        content = '<section><h2>No runs</h2><p class="intro">Nothing to report.</p></section>'
    else:
        content = "".join(
            [
                _alerts(prepared),
                _summary(prepared),
                _charts(prepared),
                _training(prepared),
                _artifacts(prepared),
                _parity(prepared),
                _diagnosis(runs),
                _latency(prepared),
            ]
        )
    header = (
        _header(prepared)
        .replace("<header>", '<header><div class="inner">', 1)
        .replace("</header>", "</div></header>", 1)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style><script>{SELF_CHECK}</script></head>"
        f"<body>{header}<main>{content}<footer>edgekit · self-contained report: inline CSS and SVG, "
        "no external resources</footer></main></body></html>\n"
    )


# -- loading run directories ----------------------------------------------------------------------------
def load_run(run_dir: Path | str, *, name: str | None = None, label: str | None = None) -> dict[str, Any]:
    """Read a run directory's JSON files into the dict `render_html` takes (missing files give None).

    Args:
        run_dir: directory with any of train.json, manifest.json, parity.json and bench.json.
        name: run name (default: the directory name).
        label: machine label (default: from bench.json's environment, else the name).

    Returns:
        `{"name", "label", "train", "manifest", "parity", "bench"}`.
    """
    path = Path(run_dir)
    docs: dict[str, Any] = {}
    for key in DOC_NAMES:
        file = path / f"{key}.json"
        docs[key] = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    run_name = name or path.resolve().name
    env = _dict(_dict(docs["bench"]).get("environment"))
    return {"name": run_name, "label": label or machine_label(env) or run_name, **docs}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write one self-contained HTML report for one or more run directories."
    )
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories (one per machine)")
    parser.add_argument("-o", "--output", type=Path, default=Path("report.html"), help="HTML file to write")
    args = parser.parse_args(argv)
    missing = [d for d in args.run_dirs if not d.is_dir()]
    if missing:
        print(f"error: not a directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return 1
    args.output.write_text(render_html([load_run(d) for d in args.run_dirs]), encoding="utf-8")
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
