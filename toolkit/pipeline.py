"""The pipeline steps (train, export, parity, bench, report), each reading and writing a run directory.

Steps take a Rich `Progress` (or None) for their progress display and return what they wrote; the
CLI decides what to print. Heavy libraries are imported inside the steps that need them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from exporters.base import NEEDS_CALIBRATION, OPT_IN, SUPPORTED, ExportFormat, Precision, artifact_name
from exporters.files import sha256_file, write_json_atomic, write_text_atomic
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
        "model_sha256": sha256_file(run_dir / A.MODEL_FILE),
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
    previous = run_dir / A.MANIFEST_JSON
    if previous.exists() and _reference_sha(A.load_manifest(run_dir)) != reference["sha256"]:
        previous.unlink()  # exports of an earlier model: none of them may be kept
    manifest = A.write_manifest(run_dir, [reference], extra)
    for fmt, precision in targets:
        p.update(task, description=f"export: {artifact_name(fmt, precision)}")
        exporter = export_tflite if fmt is ExportFormat.TFLITE else export_onnx
        result = exporter(model, out_dir, precision=precision, calibration_data=calibration)
        # The manifest grows artifact by artifact, so an interrupted export keeps what it finished.
        manifest = A.write_manifest(run_dir, [result.manifest_entry(run_dir)], extra)
        p.advance(task)
    p.update(task, description="export: done")
    return manifest


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
        "artifacts": {e["name"]: e["sha256"] for e in [ref_entry, *(e for e, _ in others)]},
        "results": [r.to_dict() for r in rows],
        "passed": all(r.passed for r in rows),
    }
    write_json_atomic(run_dir / A.PARITY_JSON, report)
    return report


def _tolerance_table() -> dict[str, str]:
    from toolkit.parity import TOLERANCES

    return {k: v.describe() for k, v in TOLERANCES.items()}


def _reference_sha(manifest: dict[str, Any]) -> str | None:
    ref = next((e for e in manifest["artifacts"] if e["name"] == A.REFERENCE_NAME), None)
    return None if ref is None else str(ref["sha256"])


# -- report ------------------------------------------------------------------------------------------
def report_step(run_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html from whichever of train/manifest/parity/bench JSON files exist."""
    from benchmarks.html_report import render_html
    from toolkit.device.remote import remote_results
    from toolkit.report import load_run, machine_label, render_remote, render_report

    run = load_run(run_dir)
    # Boards measured with `bench --remote` / `verify --remote` (RUN_DIR/remote/<host>/) join the report.
    remotes = remote_results(run_dir)
    boards = [
        {"name": host, "label": machine_label(docs["bench"]), "bench": docs["bench"]}
        for host, docs in remotes.items()
        if docs.get("bench")
    ]
    md, html = run_dir / A.REPORT_MD, run_dir / A.REPORT_HTML
    write_text_atomic(md, render_report(run_dir.name, run) + render_remote(remotes))
    write_text_atomic(html, render_html([run, *boards]))
    return md, html


# -- the whole pipeline, resumable ---------------------------------------------------------------------
RUN_JSON = "run.json"  # the pipeline's options, so --resume repeats exactly the same run


def _step_state(run_dir: Path, targets: list[tuple[ExportFormat, Precision]]) -> dict[str, bool]:
    """Which steps already completed, trusting only files whose sha256 matches what the next step recorded."""
    done = {"train": False, "export": False, "parity": False, "bench": False}
    model, train_json = run_dir / A.MODEL_FILE, run_dir / A.TRAIN_JSON
    if not (model.is_file() and train_json.is_file()):
        return done
    model_sha = sha256_file(model)
    if A.read_json(train_json).get("model_sha256") != model_sha:
        return done
    done["train"] = True
    if not (run_dir / A.MANIFEST_JSON).is_file():
        return done
    manifest = A.load_manifest(run_dir)
    if _reference_sha(manifest) != model_sha:
        return done
    wanted = {artifact_name(f, p) for f, p in targets} | {A.REFERENCE_NAME}
    listed = {e["name"]: e for e in manifest["artifacts"]}
    if not wanted <= set(listed):
        return done
    for name in wanted:
        try:
            A.verified_path(run_dir, listed[name])
        except RunDirError:
            return done
    done["export"] = True
    shas = {name: listed[name]["sha256"] for name in wanted}
    for step, file in (("parity", A.PARITY_JSON), ("bench", A.BENCH_JSON)):
        path = run_dir / file
        if path.is_file():
            recorded = A.read_json(path).get("artifacts") or {}
            # bench skips artifacts whose runtime is missing; it is complete when what it measured still matches.
            needed = shas if step == "parity" else {k: v for k, v in shas.items() if k in recorded}
            done[step] = bool(recorded) and all(recorded.get(k) == v for k, v in needed.items())
    return done


def run_pipeline(
    run_dir: Path,
    options: dict[str, Any],
    *,
    data: Mnist,
    progress: Progress | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """train → export → parity → bench → report in `run_dir`; with `resume`, skip the steps already done.

    `options` (stored as run.json) holds the training config, export targets and bench settings, so a
    resumed run repeats exactly the same work. Returns what each step produced plus timings.
    """
    from toolkit.bench import BenchSettings, bench_step

    config = TrainConfig(**options["train"])
    targets = [(ExportFormat(f), Precision(p)) for f, p in options["targets"]]
    settings = BenchSettings.from_dict(options["bench"])
    if resume:
        remove_leftovers(run_dir)
    else:
        write_json_atomic(run_dir / RUN_JSON, {"schema_version": A.SCHEMA_VERSION, **options})
    done = _step_state(run_dir, targets) if resume else dict.fromkeys(("train", "export", "parity", "bench"), False)
    result: dict[str, Any] = {"skipped": [step for step, ok in done.items() if ok], "timings": {}}

    def timed(step: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        result["timings"][step] = time.perf_counter() - t0
        return value

    if done["train"]:
        result["train"] = A.read_json(run_dir / A.TRAIN_JSON)
    else:
        result["train"] = timed("train", train_step, run_dir, data, config, progress)
    if done["export"]:
        result["manifest"] = A.load_manifest(run_dir)
    else:
        result["manifest"] = timed(
            "export",
            export_step,
            run_dir,
            targets,
            data=data,
            calibration_size=options["calibration_size"],
            seed=config.seed,
            progress=progress,
        )
    if done["parity"]:
        result["parity"] = A.read_json(run_dir / A.PARITY_JSON)
    else:
        result["parity"] = timed("parity", parity_step, run_dir, data=data, progress=progress)
    if done["bench"]:
        result["bench"] = A.read_json(run_dir / A.BENCH_JSON)
    else:
        result["bench"] = timed("bench", bench_step, run_dir, settings, data=data, progress=progress)
    result["report"] = report_step(run_dir)
    return result


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Delete temporary files and folders a killed process left behind (never a file under its final name)."""
    import shutil

    removed = []
    for path in sorted(run_dir.rglob(".*")):
        if ".partial" in path.name or path.name.startswith((".onnx-quant-", ".onnx-fp32-", ".latest.tmp")):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def load_run_options(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_JSON
    if not path.is_file():
        raise RunDirError(
            f"{run_dir} has no {RUN_JSON}, so it was not started by `edgekit pipeline`; "
            "start a new run instead of --resume."
        )
    options = A.read_json(path)
    if not {"train", "targets", "bench", "calibration_size"} <= set(options):
        raise RunDirError(f"{path} is incomplete; start a new run instead of --resume.")
    return options
