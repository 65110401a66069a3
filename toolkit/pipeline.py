"""The pipeline steps (train, export, parity, bench, report), each reading and writing a run directory.

Steps take a Rich `Progress` (or None) for their progress display and return what they wrote; the
CLI decides what to print. Heavy libraries are imported inside the steps that need them.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from exporters.base import NEEDS_CALIBRATION, OPT_IN, SUPPORTED, ExportFormat, Precision, artifact_name
from exporters.files import write_json_atomic, write_text_atomic
from toolkit import artifacts as A
from toolkit.data import Mnist, calibration_sample, load_mnist, to_model_input
from toolkit.errors import RunDirError, ToolkitError
from toolkit.model import TrainConfig


def _progress(progress: Progress | None) -> Progress:
    return progress if progress is not None else Progress(disable=True)


# -- train -------------------------------------------------------------------------------------------
def train_step(
    run_dir: Path,
    data: Mnist,
    config: TrainConfig,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train the reference model; write model.keras and train.json. Returns train.json's content."""
    from toolkit.model import save_model, train_reference_model

    config.validate()
    p = _progress(progress)
    epochs_task = p.add_task("train: epochs", total=config.epochs)
    batch_task = p.add_task("  epoch 1 batches", total=None)

    def on_batch(batch: int, batches: int) -> None:
        p.update(batch_task, completed=batch, total=batches)

    def on_epoch(epoch: int, epochs: int, logs: dict[str, float]) -> None:
        p.update(
            epochs_task,
            completed=epoch,
            description=(
                f"train: epoch {epoch}/{epochs} loss {logs.get('loss', float('nan')):.4f} "
                f"acc {logs.get('accuracy', float('nan')):.4f} val_acc {logs.get('val_accuracy', float('nan')):.4f}"
            ),
        )
        p.update(batch_task, completed=0, description=f"  epoch {min(epoch + 1, epochs)} batches")

    result = train_reference_model(data, config, on_epoch_end=on_epoch, on_batch_end=on_batch)
    p.remove_task(batch_task)
    save_model(result.model, run_dir / A.MODEL_FILE)
    summary = {
        "schema_version": A.SCHEMA_VERSION,
        "created_utc": A.utc_now(),
        **result.summary(),
        "train_images": int(config.train_limit or len(data.x_train)),
        "test_images": len(data.x_test),
        "data": {"source": data.source, "verified": data.verified, "warnings": list(data.warnings)},
        "libraries": A.library_versions(),
    }
    write_json_atomic(run_dir / A.TRAIN_JSON, summary)
    return summary


# -- export ------------------------------------------------------------------------------------------
def parse_targets(
    formats: list[ExportFormat] | None, precisions: list[Precision] | None
) -> list[tuple[ExportFormat, Precision]]:
    """The (format, precision) pairs to export. Unsupported explicit pairs are an error."""
    fmts = formats or list(SUPPORTED)
    targets: list[tuple[ExportFormat, Precision]] = []
    for fmt in fmts:
        wanted = precisions or [p for p in SUPPORTED[fmt] if p not in OPT_IN]
        targets.extend((fmt, p) for p in wanted if p in SUPPORTED[fmt])
    if not targets:
        offered = "; ".join(f"{f.value}: {', '.join(p.value for p in SUPPORTED[f])}" for f in fmts)
        raise ToolkitError(f"no artifact matches that --format/--precision choice; offered: {offered}.")
    return targets


def export_step(
    run_dir: Path,
    targets: list[tuple[ExportFormat, Precision]],
    *,
    data: Mnist | None = None,
    calibration_size: int = 500,
    seed: int = 7,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Export model.keras to every target, write manifest.json, and return it."""
    from exporters.onnx_export import export_onnx
    from exporters.tflite_export import export_tflite
    from runtimes.keras_runner import load_keras_model

    model_path = A.require_file(run_dir, A.MODEL_FILE, "run `edgekit train` first (it writes model.keras)")
    if calibration_size < 1:
        raise ToolkitError(f"--calibration-size must be 1 or more, got {calibration_size}.")
    reference = A.reference_entry(run_dir)
    model = load_keras_model(model_path)
    calibration = None
    if any(p in NEEDS_CALIBRATION for _, p in targets):
        data = data or load_mnist()
        calibration = calibration_sample(data, n=min(calibration_size, len(data.x_train)), seed=seed)
    out_dir = run_dir / A.EXPORTS_DIR
    p = _progress(progress)
    task = p.add_task("export", total=len(targets))
    entries = []
    for fmt, precision in targets:
        p.update(task, description=f"export: {artifact_name(fmt, precision)}")
        exporter = export_tflite if fmt is ExportFormat.TFLITE else export_onnx
        result = exporter(model, out_dir, precision=precision, calibration_data=calibration)
        entries.append(result.manifest_entry(run_dir))
        p.advance(task)
    p.update(task, description="export: done")
    extra = {
        "calibration": {
            "images": 0 if calibration is None else len(calibration),
            "seed": seed,
            "source": "training set",
        },
    }
    train_json = run_dir / A.TRAIN_JSON
    if train_json.exists():
        extra["training"] = {k: A.read_json(train_json).get(k) for k in ("config", "test_accuracy")}
    return A.write_manifest(run_dir, [reference, *entries], extra)


# -- parity ------------------------------------------------------------------------------------------
def parity_step(
    run_dir: Path,
    *,
    artifact_names: list[str] | None = None,
    limit: int | None = None,
    data: Mnist | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run every artifact over the test set against the Keras reference; write parity.json."""
    from toolkit.parity import run_parity

    manifest = A.load_manifest(run_dir)
    entries = A.select_artifacts(manifest, artifact_names)
    ref_entry = next((e for e in manifest["artifacts"] if e["name"] == A.REFERENCE_NAME), None)
    if ref_entry is None:
        raise RunDirError(
            f"{run_dir / A.MANIFEST_JSON} lists no {A.REFERENCE_NAME} reference; re-run `edgekit export`."
        )
    if limit is not None and limit < 1:
        raise ToolkitError(f"--limit must be 1 or more, got {limit}.")
    # Check every file before the long work starts, so a tampered artifact fails fast.
    reference = (ref_entry, A.verified_path(run_dir, ref_entry))
    others = [(e, A.verified_path(run_dir, e)) for e in entries if e["name"] != A.REFERENCE_NAME]
    data = data or load_mnist()
    n = len(data.x_test) if limit is None else min(limit, len(data.x_test))
    images, labels = to_model_input(data.x_test[:n]), data.y_test[:n].astype(np.int64)
    p = _progress(progress)
    task = p.add_task(f"parity: {A.REFERENCE_NAME}", total=1 + len(others))
    names = [e["name"] for e, _ in others]

    def done(row: Any) -> None:
        p.advance(task)
        index = names.index(row.artifact) + 1 if row.artifact in names else 0
        if index < len(names):
            p.update(task, description=f"parity: {names[index]}")

    summary, rows = run_parity(reference, others, images, labels, on_done=done)
    p.update(task, description="parity: done")
    report = {
        "schema_version": A.SCHEMA_VERSION,
        "created_utc": A.utc_now(),
        "reference": summary,
        "data": {"source": data.source, "verified": data.verified, "images": n},
        "tolerances": _tolerance_table(),
        "results": [r.to_dict() for r in rows],
        "passed": all(r.passed for r in rows),
    }
    write_json_atomic(run_dir / A.PARITY_JSON, report)
    return report


def _tolerance_table() -> dict[str, str]:
    from toolkit.parity import TOLERANCES

    return {k: v.describe() for k, v in TOLERANCES.items()}


# -- bench -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchSettings:
    """Latency method: warm-up, then timed runs until both min_runs and min_seconds are reached."""

    batch_sizes: tuple[int, ...] = (1, 32)
    threads: tuple[int, ...] | None = None  # None: 1 and all available cores
    warmup_runs: int = 10
    min_runs: int = 1000
    min_seconds: float = 2.0
    max_seconds: float = 60.0

    def validate(self) -> None:
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ToolkitError(f"--batch values must be 1 or more, got {list(self.batch_sizes)}.")
        if self.threads is not None and any(t < 1 for t in self.threads):
            raise ToolkitError(f"--threads values must be 1 or more, got {list(self.threads)}.")
        if self.min_runs < 1 or self.warmup_runs < 0 or self.min_seconds < 0:
            raise ToolkitError("--min-runs must be ≥ 1, --warmup-runs and --min-seconds ≥ 0.")


QUICK_BENCH = BenchSettings(min_runs=100, min_seconds=0.2, warmup_runs=5)


def bench_step(
    run_dir: Path,
    settings: BenchSettings = BenchSettings(),
    *,
    artifact_names: list[str] | None = None,
    data: Mnist | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measure every artifact in a fresh process per (artifact, threads); write bench.json."""
    from benchmarks.environment import capture_environment
    from benchmarks.harness import run_worker, thread_counts

    settings.validate()
    manifest = A.load_manifest(run_dir)
    entries = A.select_artifacts(manifest, artifact_names)
    skipped: list[str] = []
    if not artifact_names:
        # On a board without TensorFlow, measure what the installed runtimes can run.
        from runtimes.registry import runtime_versions

        available = runtime_versions()
        skipped = [e["name"] for e in entries if available.get(e["runtime"]) is None]
        entries = [e for e in entries if e["name"] not in skipped]
        if not entries:
            raise ToolkitError(
                f"none of this run's artifacts has its runtime installed ({', '.join(skipped)}); "
                "install ai-edge-litert or onnxruntime."
            )
    paths = [(e, A.verified_path(run_dir, e)) for e in entries]
    threads = list(dict.fromkeys(settings.threads)) if settings.threads else thread_counts()
    data = data or load_mnist()
    rows: list[dict[str, Any]] = []
    cold: list[dict[str, Any]] = []
    p = _progress(progress)
    task = p.add_task("bench", total=len(paths) * len(threads))
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        inputs = Path(tmp) / "inputs.npy"
        np.save(inputs, to_model_input(data.x_test[: max(settings.batch_sizes)]), allow_pickle=False)
        for entry, path in paths:
            for t in threads:
                p.update(task, description=f"bench: {entry['name']} × {t} thread{'s' if t > 1 else ''}")
                out = run_worker(
                    path,
                    inputs,
                    threads=t,
                    batch_sizes=list(settings.batch_sizes),
                    warmup_runs=settings.warmup_runs,
                    min_runs=settings.min_runs,
                    min_seconds=settings.min_seconds,
                    max_seconds=settings.max_seconds,
                )
                cold.append(
                    {
                        "artifact": entry["name"],
                        "threads": t,
                        "load_ms": out["load_ms"],
                        "peak_rss_mb": out.get("peak_rss_mb"),
                        "backend": out.get("backend"),
                    }
                )
                for r in out["results"]:
                    rows.append(
                        {
                            "artifact": entry["name"],
                            "format": entry["format"],
                            "precision": entry["precision"],
                            "runtime": entry["runtime"],
                            "batch_size": r["batch_size"],
                            "threads": t,
                            "load_ms": out["load_ms"],
                            "p50_ms": r["p50_ms"],
                            "p90_ms": r["p90_ms"],
                            "p99_ms": r["p99_ms"],
                            "mean_ms": r["mean_ms"],
                            "std_ms": r["std_ms"],
                            "min_ms": r.get("min_ms"),
                            "max_ms": r.get("max_ms"),
                            "runs": r["runs"],
                            "throughput_ips": r["throughput_ips"],
                            "backend": out.get("backend"),
                            "peak_rss_mb": out.get("peak_rss_mb"),
                        }
                    )
                p.advance(task)
    p.update(task, description="bench: done")
    report = {
        "schema_version": A.SCHEMA_VERSION,
        "created_utc": A.utc_now(),
        "environment": capture_environment(),
        "method": {
            "batch_sizes": list(settings.batch_sizes),
            "threads": threads,
            "warmup_runs": settings.warmup_runs,
            "min_runs": settings.min_runs,
            "min_seconds": settings.min_seconds,
            "max_seconds": settings.max_seconds,
            "timer": "perf_counter_ns around runner.infer (numpy in and out); fresh process per artifact, threads",
            "load_ms": "cold start in the fresh process: runtime import + model load + first inference",
        },
        "skipped": [{"artifact": name, "reason": "runtime not installed"} for name in skipped],
        "results": rows,
    }
    write_json_atomic(run_dir / A.BENCH_JSON, report)
    return report


# -- report ------------------------------------------------------------------------------------------
def report_step(run_dir: Path) -> Path:
    """Write report.md from whichever of train/manifest/parity/bench JSON files exist."""
    from toolkit.report import render_report

    docs = {}
    for key, name in (
        ("train", A.TRAIN_JSON),
        ("manifest", A.MANIFEST_JSON),
        ("parity", A.PARITY_JSON),
        ("bench", A.BENCH_JSON),
    ):
        path = run_dir / name
        docs[key] = A.read_json(path) if path.exists() else None
    if not any(docs.values()):
        raise RunDirError(
            f"{run_dir} holds none of train.json, manifest.json, parity.json, bench.json; nothing to report."
        )
    out = run_dir / A.REPORT_MD
    write_text_atomic(out, render_report(run_dir.name, docs))
    return out


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - t0
