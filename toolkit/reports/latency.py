"""The latency part of the view model: one bench.json as typed rows, a pivot and cold starts."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from toolkit.reports.fmt import DASH, num
from toolkit.reports.model import ColdStartRow, Latency, LatencyRow, PivotCell, PivotRow
from toolkit.reports.rules import bench_rows, config_label, machine_label

if TYPE_CHECKING:
    from toolkit.run.documents import BenchDocument, BenchMethod, BenchRow

# The adaptive method's target when a row does not state one (its default).
DEFAULT_PRECISION = 0.02
FULL_PASS_TEXT = {
    "recommendation": "could be the recommendation",
    "pareto": "on the accuracy/latency Pareto front",
    "throughput": "could give the best throughput",
}


def _pct(fraction: float) -> str:
    return f"{100 * fraction:g} %"


def _sec(seconds: object) -> str:
    value = num(seconds)
    return "?" if value is None else f"{value:g}"


def _runs(runs: object) -> str:
    value = num(runs)
    return "?" if value is None else f"{value:,.0f}"


def stop_text(r: BenchRow, method: BenchMethod) -> str:
    """Why the row's timing stopped, in words: "median known to ±2 % after 1,193 runs", "time cap 2 s before
    ±2 % (1,940 runs, noisy)", "fixed floor: 1,024 runs and 2 s", "dominated after 791 runs by onnx-int8
    b1×1t", … plus why it was measured on after the first pass. "–" when bench.json does not say (an older file)."""
    precision = _pct(num(r.p50_precision) or num(method.precision) or DEFAULT_PRECISION)
    runs = _runs(r.runs)
    fixed = (r.method or method.method) == "fixed"
    if r.stop == "precision":
        text = f"median known to ±{precision} after {runs} runs"
    elif r.stop == "cap":
        first_pass = not fixed and r.full_pass is None and method.quick_seconds is not None
        cap = max(method.quick_seconds or 0.0, method.min_seconds or 0.0) if first_pass else method.max_seconds
        before = f"the floor of {_runs(method.min_runs)} runs" if fixed else f"±{precision}"
        text = f"time cap {cap or 0:g} s before {before} ({runs} runs" + (", noisy)" if r.noisy else ")")
    elif r.stop == "floor":
        text = f"fixed floor: {_runs(method.min_runs)} runs and {num(method.min_seconds) or 0:g} s"
    elif r.stop == "dominated" and r.dominated_by == "failed parity":
        text = f"first pass only ({runs} runs): failed parity"
    elif r.stop == "dominated":
        text = f"dominated after {runs} runs by {r.dominated_by or '?'}"
    elif r.stop == "quick":
        text = f"Keras: first pass only, {runs} runs (--keras-full measures it fully)"
    elif r.stop == "beaten":
        text = f"stopped after {runs} runs: certainly slower than a configuration timed before it"
    else:
        text = r.stop or DASH
    if r.full_pass:
        text += "; measured on: " + FULL_PASS_TEXT.get(r.full_pass, r.full_pass)
    if r.process_p50_ms:
        p50s = r.process_p50_ms
        text += f"; a leader, best of {len(p50s)} fresh processes (their p50s {min(p50s):.4g}–{max(p50s):.4g} ms)"
    return text


def stop_summary(bench: BenchDocument) -> str:
    """The rows counted by why they stopped, in one line ("" for an older bench.json that does not say), e.g.
    "adaptive: 19 rows known to ±2 %, 2 measured on, 7 dominated after the first pass"."""
    rows = bench_rows(bench)
    method = bench.method
    if not any(r.stop for r in rows):
        return ""
    stops = ("precision", "cap", "floor", "dominated", "quick", "beaten")
    count = {stop: sum(r.stop == stop for r in rows) for stop in stops}
    precision = _pct(num(method.precision) or DEFAULT_PRECISION)
    parts = [
        (count["precision"], f"known to ±{precision}"),
        (count["floor"], f"at the floor ({_runs(method.min_runs)} runs and {num(method.min_seconds) or 0:g} s)"),
        (count["cap"], "stopped by the time cap"),
        (sum(r.full_pass is not None for r in rows), "measured on"),
        (count["dominated"], "dominated after the first pass"),
        (count["beaten"], "stopped early as certainly slower"),
        (count["quick"], "Keras first pass only"),
        (sum(bool(r.process_p50_ms) for r in rows), "leaders measured again in fresh processes"),
    ]
    said = [(n, what) for n, what in parts if n]
    # Only the first count says "rows": "19 rows known to ±2 %, 2 measured on, 7 dominated …".
    text = ", ".join(
        f"{n} {'row' if n == 1 else 'rows'} {what}" if i == 0 else f"{n} {what}" for i, (n, what) in enumerate(said)
    )
    return f"{method.method or 'fixed'}: {text}"


def method_text(bench: BenchDocument, warmup_seconds: object) -> str:
    """How each configuration was timed, in words: which method, its floors, first pass and cap."""
    m = bench.method
    if m.method is None:  # an older bench.json: the fixed method, described as it always was
        return (
            f"Each configuration: {m.warmup_runs} warm-up runs and {warmup_seconds} s, "
            f"then at least {m.min_runs} timed runs and {m.min_seconds} s, in a fresh process."
        )
    warm = f"{m.warmup_runs} warm-up runs and {_sec(m.warmup_seconds)} s"
    if m.method == "fixed":
        return (
            f"Method: fixed. Each configuration, in a fresh process: {warm}, then at least "
            f"{m.min_runs} timed runs and {_sec(m.min_seconds)} s (capped at {_sec(m.max_seconds)} s)."
        ) + _processes_text(m)
    precision = _pct(num(m.precision) or DEFAULT_PRECISION)
    text = (
        f"Method: adaptive. Each configuration, in a fresh process: {warm}, then timed runs until the median is "
        f"known to ±{precision} (the distribution-free 95 % interval of p50 within ±{precision} of it, and no drift "
        f"between blocks of runs), at least {m.min_runs} runs and {_sec(m.min_seconds)} s. A first pass of at most "
        f"{_sec(m.quick_seconds)} s per batch size measures every configuration; only those that could still be the "
        "recommendation, be on the accuracy/latency Pareto front or give the best throughput are measured on, up to "
        f"{_sec(m.max_seconds)} s per batch size; the others keep their first-pass figures and are marked dominated."
    )
    if not m.keras_full:
        text += " Keras rows get the first pass only (--keras-full measures them fully)."
    return text + _processes_text(m)


def _processes_text(m: BenchMethod) -> str:
    if (m.processes or 1) < 2:
        return ""
    return (
        f" The leaders of the recommendation (every configuration that passed parity within the process-to-process "
        f"spread of the fastest) are measured again in fresh processes, interleaved (up to {m.processes} in all for "
        "those within the tie margin of the fastest, or within the spread the leaders' processes showed), and keep "
        "the fastest process's figures, since fresh processes of one file can land further apart than one process's "
        "interval; the others' p50s are listed."
    )


def _row(r: BenchRow, method: BenchMethod) -> LatencyRow:
    low, high = num(r.p90_ci_low_ms), num(r.p90_ci_high_ms)
    p50_low, p50_high = num(r.p50_ci_low_ms), num(r.p50_ci_high_ms)
    q = r.quantiles_ms
    quantiles = tuple(q) if q is not None and len(q) == 101 and all(num(v) is not None for v in q) else None
    return LatencyRow(
        configuration=config_label(r),
        artifact=r.artifact,
        runtime=r.runtime,
        backend=r.backend or None,
        batch_size=r.batch_size,
        threads=r.threads,
        p50_ms=r.p50_ms,
        p90_ms=num(r.p90_ms),
        p90_ci_ms=(low, high) if low is not None and high is not None else None,
        p95_ms=num(r.p95_ms),
        p99_ms=num(r.p99_ms),
        mean_ms=num(r.mean_ms),
        std_ms=num(r.std_ms),
        min_ms=num(r.min_ms),
        max_ms=num(r.max_ms),
        runs=num(r.runs),
        throughput_ips=num(r.throughput_ips),
        gflops=num(r.gflops),
        pct_of_peak=num(r.pct_of_peak),
        load_ms=num(r.load_ms),
        first_inference_ms=num(r.first_inference_ms),
        peak_rss_mb=num(r.peak_rss_mb),
        noisy=bool(r.noisy),
        noise=r.noise or "",
        quantiles_ms=quantiles,
        p50_ci_ms=(p50_low, p50_high) if p50_low is not None and p50_high is not None else None,
        stop=r.stop,
        full_pass=r.full_pass,
        stop_text=stop_text(r, method),
    )


def _thread_key(t: int | None) -> float:
    return math.inf if t is None else float(t)


def build_latency(bench: BenchDocument, recommended: str | None) -> Latency:
    """The latency view of one bench.json.

    Args:
        bench: the parsed bench.json.
        recommended: the recommended configuration's label, starred in the pivot.
    """
    rows = [_row(r, bench.method) for r in bench_rows(bench)]
    columns = tuple(sorted({(r.batch_size, r.threads) for r in rows}, key=lambda c: (c[0], _thread_key(c[1]))))
    by_config: dict[str, list[LatencyRow]] = {}
    for r in rows:
        by_config.setdefault(r.configuration, []).append(r)
    pivot, cold = [], []
    for name, mine in by_config.items():
        cell = {(r.batch_size, r.threads): r for r in mine}
        ips = [r.throughput_ips for r in mine if r.throughput_ips is not None]
        pct = [r.pct_of_peak for r in mine if r.pct_of_peak is not None]
        loads = [r.load_ms for r in mine if r.load_ms is not None]
        rss = [r.peak_rss_mb for r in mine if r.peak_rss_mb is not None]
        pivot.append(
            PivotRow(
                configuration=name,
                cells=tuple(PivotCell(cell[c].p50_ms, cell[c].noisy) if c in cell else None for c in columns),
                best_ips=max(ips) if ips else None,
                best_pct_of_peak=max(pct) if pct else None,
                load_ms=min(loads) if loads else None,
                peak_rss_mb=max(rss) if rss else None,
                recommended=name == recommended,
            )
        )
        # One process per thread count loads the model; its median is the typical cold start.
        per_process = sorted({(_thread_key(r.threads), r.load_ms) for r in mine if r.load_ms is not None})
        first = [r.first_inference_ms for r in mine if r.first_inference_ms is not None]
        cold.append(
            ColdStartRow(
                configuration=name,
                backend=mine[0].backend,
                cold_start_ms=per_process[len(per_process) // 2][1] if per_process else None,
                first_inference_ms=min(first) if first else None,
                peak_rss_mb=max(rss) if rss else None,
            )
        )
    noisy = list(bench.noisy)
    if not noisy:  # older bench.json: only the rows' own flags
        noisy = [
            f"{r.configuration} b{r.batch_size}×{r.threads or '?'}t" + (f": {r.noise}" if r.noise else "")
            for r in rows
            if r.noisy
        ]
    env, method = bench.environment, bench.method
    warmup_seconds = method.warmup_seconds if "warmup_seconds" in method.model_fields_set else 0
    return Latency(
        machine=machine_label(bench),
        os=str(env.os if "os" in env.model_fields_set else "?"),
        python=str(env.python if "python" in env.model_fields_set else "?"),
        columns=columns,
        pivot=tuple(pivot),
        rows=tuple(rows),
        cold_start=tuple(cold),
        noisy=tuple(noisy),
        skipped=tuple((s.artifact, s.reason) for s in bench.skipped),
        peak_gflops=tuple((t, float(v)) for t, v in (env.peak_gflops or {}).items() if num(v) is not None),
        throttled=bool(env.throttled),
        throttle_flags=tuple(env.throttle_flags or ()),
        runtime_versions=tuple((k, v) for k, v in (env.runtime_versions or {}).items() if v),
        warmup_runs=method.warmup_runs,
        warmup_seconds=warmup_seconds,
        min_runs=method.min_runs,
        min_seconds=method.min_seconds,
        method=method.method,
        method_text=method_text(bench, warmup_seconds),
        stop_summary=stop_summary(bench),
    )
