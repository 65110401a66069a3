"""The bench step: every artifact × configuration in a fresh process, plus FLOPs, peak rate and context."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import ToolkitError
from toolkit.model.run_source import run_dataset, run_spec
from toolkit.progress import ProgressCallback, as_progress
from toolkit.run import layout as A
from toolkit.steps.bench_settings import DEFAULT_SETTINGS, BenchSettings

# The fields every bench.json row has had since schema 1 (other tools read them), in this order.
STABLE_FIELDS = (
    "artifact", "format", "precision", "runtime", "batch_size", "threads", "load_ms",
    "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "runs", "throughput_ips",
)  # fmt: skip


def _variants(runtime: str, settings: BenchSettings) -> Iterator[dict[str, Any]]:
    """Runner options to sweep for one runtime: XNNPACK for TFLite, graph optimisation for ORT."""
    if runtime == "tflite":
        for on in dict.fromkeys(settings.xnnpack):
            yield {"xnnpack": on}
    elif runtime == "onnxruntime":
        for level in dict.fromkeys(settings.ort_optimization):
            yield {"graph_optimization": level}
    else:
        yield {}


def _variant_label(options: dict[str, Any]) -> str:
    if options.get("xnnpack") is False:
        return " (no XNNPACK)"
    if options.get("graph_optimization") not in (None, "all"):
        return f" (ORT opt {options['graph_optimization']})"
    return ""


def _accuracy_by_artifact(run_dir: Path) -> dict[str, float]:
    path = run_dir / A.PARITY_JSON
    if not path.exists():
        return {}
    return {r["artifact"]: r["accuracy"] for r in A.read_json(path).get("results", [])}


def _flops(paths: list[tuple[dict[str, Any], Path]]) -> dict[str, int | None]:
    """FLOPs per image counted from each model file; the network is the same, so gaps take the run's value."""
    from benchmarks.flops import flops_per_image

    counted = {e["name"]: flops_per_image(path) for e, path in paths}
    known = [v for v in counted.values() if v]
    fallback = max(known) if known else None
    return {name: value or fallback for name, value in counted.items()}


def _available(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """On a board without TensorFlow, measure what the installed runtimes can run."""
    from runtimes.registry import runtime_versions

    installed = runtime_versions()
    skipped = [e["name"] for e in entries if installed.get(e["runtime"]) is None]
    kept = [e for e in entries if e["name"] not in skipped]
    if not kept:
        raise ToolkitError(
            f"none of this run's artifacts has its runtime installed ({', '.join(skipped)}); "
            "install ai-edge-litert or onnxruntime."
        )
    return kept, skipped


def bench_step(
    run_dir: Path,
    settings: BenchSettings = DEFAULT_SETTINGS,
    *,
    artifact_names: list[str] | None = None,
    data: Any = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Measure every artifact in a fresh process per (artifact, threads, variant); write bench.json."""
    from benchmarks.environment import capture_environment
    from benchmarks.harness import run_worker, thread_counts
    from benchmarks.peak import achieved, measure_peak

    settings.check()
    manifest = A.load_manifest(run_dir)
    entries = A.select_artifacts(manifest, artifact_names)
    skipped: list[str] = []
    if not artifact_names:
        entries, skipped = _available(entries)
    paths = [(e, A.verified_path(run_dir, e)) for e in entries]
    threads = list(dict.fromkeys(settings.threads)) if settings.threads else thread_counts()
    spec = run_spec(run_dir)
    dataset = run_dataset(run_dir, data, spec=spec)
    flops = _flops(paths)
    accuracy = _accuracy_by_artifact(run_dir)
    jobs = [
        (entry, path, t, options)
        for (entry, path), t in itertools.product(paths, threads)
        for options in _variants(entry["runtime"], settings)
    ]
    p = as_progress(progress)
    task = p.add_task("bench", total=len(jobs) + (1 if settings.measure_peak else 0))
    peak: dict[int, float] = {}
    if settings.measure_peak:
        p.update(task, description="bench: peak float32 rate (matrix multiply)")
        peak = measure_peak(threads)
        p.advance(task)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        inputs = Path(tmp) / "inputs.npy"
        batch = max(settings.batch_sizes)
        x = dataset.inputs(dataset.x_test[:batch], spec)
        if len(x) < batch:  # a small test split: repeat it to fill the largest batch
            x = np.concatenate([x] * (-(-batch // len(x))))[:batch]
        np.save(inputs, x, allow_pickle=False)
        for done, (entry, path, t, options) in enumerate(jobs, start=1):
            p.update(
                task,
                description=f"bench: {entry['name']}{_variant_label(options)} × {t} thread{'s' if t > 1 else ''} "
                f"({done}/{len(jobs)})",
            )
            out = run_worker(
                path,
                inputs,
                threads=t,
                batch_sizes=list(settings.batch_sizes),
                warmup_runs=settings.warmup_runs,
                warmup_seconds=settings.warmup_seconds,
                min_runs=settings.min_runs,
                min_seconds=settings.min_seconds,
                max_seconds=settings.max_seconds,
                **options,
            )
            for stats in out["results"]:
                row: dict[str, Any] = {
                    "artifact": entry["name"],
                    "format": entry["format"],
                    "precision": entry["precision"],
                    "runtime": entry["runtime"],
                    "batch_size": stats["batch_size"],
                    "threads": t,
                    "load_ms": out["load_ms"],
                }
                row.update({k: v for k, v in stats.items() if k not in row})
                fl = flops.get(entry["name"])
                gflops = achieved(fl, stats["batch_size"], stats["p50_ms"]) if fl else None
                row.update(
                    {
                        "options": out.get("options") or options,
                        "delegated": out.get("delegated"),
                        "activate_ms": out.get("activate_ms"),
                        "first_inference_ms": out.get("first_inference_ms"),
                        "peak_rss_mb": out.get("peak_rss_mb"),
                        "backend": out.get("backend"),
                        "runtime_version": out.get("runtime_version"),
                        "flops_per_image": fl,
                        "gflops": gflops,
                        "pct_of_peak": 100 * gflops / peak[t] if gflops and peak.get(t) else None,
                        "accuracy": accuracy.get(entry["name"]),
                        "size_bytes": entry.get("size_bytes"),
                    }
                )
                rows.append({**{k: row[k] for k in STABLE_FIELDS}, **row})
            p.advance(task)
    p.update(task, description="bench: done")
    environment = capture_environment()
    environment["peak_gflops"] = {str(t): v for t, v in peak.items()}
    report = {
        "schema_version": A.SCHEMA_VERSION,
        "created_utc": A.utc_now(),
        "run": run_dir.name,
        "environment": environment,
        "method": {
            "batch_sizes": list(settings.batch_sizes),
            "threads": threads,
            "xnnpack": list(settings.xnnpack),
            "ort_optimization": list(settings.ort_optimization),
            "warmup_runs": settings.warmup_runs,
            "warmup_seconds": settings.warmup_seconds,
            "min_runs": settings.min_runs,
            "min_seconds": settings.min_seconds,
            "max_seconds": settings.max_seconds,
            "timer": "perf_counter_ns around runner.run_native on input already in the model's input type; "
            "io_p50_ms is the float32<->model-type conversion on its own; fresh process per configuration",
            "load_ms": "cold start in the fresh process: runtime import + model load + first inference",
            "gflops": "FLOPs per image (2 × MACs of conv/dense layers, counted from the model) × batch / p50",
        },
        "skipped": [{"artifact": name, "reason": "runtime not installed"} for name in skipped],
        "artifacts": {e["name"]: e["sha256"] for e, _ in paths},
        "noisy": [
            f"{r['artifact']}{_variant_label(r.get('options') or {})} b{r['batch_size']}×{r['threads']}t: {r['noise']}"
            for r in rows
            if r.get("noisy")
        ],
        "results": rows,
    }
    from toolkit.run.documents import BenchDocument

    A.save_document(run_dir / A.BENCH_JSON, report, BenchDocument)
    return report
