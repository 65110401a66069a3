"""The latency part of the view model: one bench.json as typed rows, a pivot and cold starts."""

from __future__ import annotations

import math
from typing import Any

from toolkit.reports.fmt import as_dict, as_list, num, plain
from toolkit.reports.model import ColdStartRow, Latency, LatencyRow, PivotCell, PivotRow
from toolkit.reports.rules import bench_rows, config_label, machine_label, row_batch, row_threads

Doc = dict[str, Any]


def _row(r: Doc) -> LatencyRow:
    low, high = num(r.get("p90_ci_low_ms")), num(r.get("p90_ci_high_ms"))
    q = r.get("quantiles_ms")
    quantiles = None
    if isinstance(q, list) and len(q) == 101 and all(num(v) is not None for v in q):
        quantiles = tuple(float(v) for v in q)
    noise = r.get("noise")
    return LatencyRow(
        configuration=config_label(r),
        artifact=str(r["artifact"]),
        runtime=str(r.get("runtime", "?")),
        backend=str(r["backend"]) if r.get("backend") else None,
        batch_size=row_batch(r),
        threads=row_threads(r),
        p50_ms=float(r["p50_ms"]),
        p90_ms=num(r.get("p90_ms")),
        p90_ci_ms=(low, high) if low is not None and high is not None else None,
        p95_ms=num(r.get("p95_ms")),
        p99_ms=num(r.get("p99_ms")),
        mean_ms=num(r.get("mean_ms")),
        std_ms=num(r.get("std_ms")),
        min_ms=num(r.get("min_ms")),
        max_ms=num(r.get("max_ms")),
        runs=num(r.get("runs")),
        throughput_ips=num(r.get("throughput_ips")),
        gflops=num(r.get("gflops")),
        pct_of_peak=num(r.get("pct_of_peak")),
        load_ms=num(r.get("load_ms")),
        first_inference_ms=num(r.get("first_inference_ms")),
        peak_rss_mb=num(r.get("peak_rss_mb")),
        noisy=bool(r.get("noisy")),
        noise="" if noise in (None, "", {}) else plain(noise),
        quantiles_ms=quantiles,
    )


def _thread_key(t: int | None) -> float:
    return math.inf if t is None else float(t)


def build_latency(bench: Doc, recommended: str | None) -> Latency:
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
    noisy = [plain(n) for n in as_list(bench.get("noisy"))]
    if not noisy:  # older bench.json: only the rows' own flags
        noisy = [
            f"{r.configuration} b{r.batch_size}×{r.threads or '?'}t" + (f": {r.noise}" if r.noise else "")
            for r in rows
            if r.noisy
        ]
    env = as_dict(bench.get("environment"))
    method = as_dict(bench.get("method"))
    skipped = [as_dict(s) for s in as_list(bench.get("skipped"))]
    return Latency(
        machine=machine_label(bench),
        os=str(env.get("os", "?")),
        python=str(env.get("python", "?")),
        columns=columns,
        pivot=tuple(pivot),
        rows=tuple(rows),
        cold_start=tuple(cold),
        noisy=tuple(noisy),
        skipped=tuple((str(s.get("artifact", "?")), str(s.get("reason", ""))) for s in skipped),
        peak_gflops=tuple((str(t), float(v)) for t, v in as_dict(env.get("peak_gflops")).items() if num(v) is not None),
        throttled=bool(env.get("throttled")),
        throttle_flags=tuple(str(f) for f in as_list(env.get("throttle_flags"))),
        runtime_versions=tuple((str(k), str(v)) for k, v in as_dict(env.get("runtime_versions")).items() if v),
        warmup_runs=method.get("warmup_runs"),
        warmup_seconds=method.get("warmup_seconds", 0),
        min_runs=method.get("min_runs"),
        min_seconds=method.get("min_seconds"),
    )
