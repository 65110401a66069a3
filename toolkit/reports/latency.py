"""The latency part of the view model: one bench.json as typed rows, a pivot and cold starts."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from toolkit.reports.fmt import num
from toolkit.reports.model import ColdStartRow, Latency, LatencyRow, PivotCell, PivotRow
from toolkit.reports.rules import bench_rows, config_label, machine_label

if TYPE_CHECKING:
    from toolkit.run.documents import BenchDocument, BenchRow


def _row(r: BenchRow) -> LatencyRow:
    low, high = num(r.p90_ci_low_ms), num(r.p90_ci_high_ms)
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
    )


def _thread_key(t: int | None) -> float:
    return math.inf if t is None else float(t)


def build_latency(bench: BenchDocument, recommended: str | None) -> Latency:
    """The latency view of one bench.json.

    Args:
        bench: the parsed bench.json.
        recommended: the recommended configuration's label, starred in the pivot.
    """
    rows = [_row(r) for r in bench_rows(bench)]
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
        warmup_seconds=method.warmup_seconds if "warmup_seconds" in method.model_fields_set else 0,
        min_runs=method.min_runs,
        min_seconds=method.min_seconds,
    )
