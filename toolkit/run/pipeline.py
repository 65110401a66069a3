"""The whole pipeline (train -> export -> parity -> bench -> report) in one run directory, resumable.

`run.json` keeps the options, so `--resume` repeats exactly the same work; each step's outputs are trusted
only while their sha256 still matches what the next step recorded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from exporters.base import ExportFormat, Precision, artifact_name
from exporters.files import sha256_file
from toolkit.errors import RunDirError
from toolkit.model.reference import TrainConfig
from toolkit.model.run_source import MODEL_JSON
from toolkit.progress import ProgressCallback
from toolkit.run import layout as A
from toolkit.steps.export import export_step
from toolkit.steps.parity import parity_step
from toolkit.steps.train import train_step
from toolkit.steps.user_model import UserModel, import_into_run


# -- report ------------------------------------------------------------------------------------------
def report_step(run_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html from whichever of train/manifest/parity/bench JSON files exist."""
    from toolkit.reports import write_report

    return write_report(run_dir)


# -- the whole pipeline, resumable ---------------------------------------------------------------------
RUN_JSON = "run.json"  # the pipeline's options, so --resume repeats exactly the same run


def _step_state(run_dir: Path, targets: list[tuple[ExportFormat, Precision]]) -> dict[str, bool]:
    """Which steps already completed, trusting only files whose sha256 matches what the next step recorded."""
    done = {"train": False, "export": False, "parity": False, "bench": False}
    model, train_json = run_dir / A.MODEL_FILE, run_dir / A.TRAIN_JSON
    # A user's model (--model) is imported, not trained: model.json records its sha256 instead.
    made_by = train_json if train_json.is_file() else run_dir / MODEL_JSON
    if not (model.is_file() and made_by.is_file()):
        return done
    model_sha = sha256_file(model)
    if A.read_json(made_by).get("model_sha256") != model_sha:
        return done
    done["train"] = True
    if not (run_dir / A.MANIFEST_JSON).is_file():
        return done
    manifest = A.load_manifest(run_dir)
    if A.reference_sha(manifest) != model_sha:
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
    data: Any,
    progress: ProgressCallback | None = None,
    resume: bool = False,
    user: UserModel | None = None,
) -> dict[str, Any]:
    """train → export → parity → bench → report in `run_dir`; with `resume`, skip the steps already done.

    `options` (stored as run.json) holds the training config, export targets and bench settings, so a
    resumed run repeats exactly the same work. Returns what each step produced plus timings.
    With `user` (a checked `--model`), the model is imported instead of trained and every step runs on its data.
    """
    from toolkit.run.documents import BenchDocument, ModelDocument, ParityDocument, TrainDocument
    from toolkit.steps.bench import bench_step
    from toolkit.steps.bench_settings import BenchSettings

    config = TrainConfig(**options["train"])
    targets = [(ExportFormat(f), Precision(p)) for f, p in options["targets"]]
    settings = BenchSettings.model_validate(options["bench"])
    if resume:
        remove_leftovers(run_dir)
    else:
        from toolkit.run.documents import RunOptions

        A.save_document(run_dir / RUN_JSON, {"schema_version": A.SCHEMA_VERSION, **options}, RunOptions)
    done = _step_state(run_dir, targets) if resume else dict.fromkeys(("train", "export", "parity", "bench"), False)
    result: dict[str, Any] = {"skipped": [step for step, ok in done.items() if ok], "timings": {}}

    def timed(step: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        result["timings"][step] = time.perf_counter() - t0
        return value

    if options.get("model"):
        if done["train"]:
            result["model"] = A.read_document(run_dir / MODEL_JSON, ModelDocument)
        else:
            assert user is not None, "a --model run needs its checked model to import"
            result["model"] = timed("import", import_into_run, run_dir, user)
        result["train"] = None
        data = user.dataset if user is not None else None  # None: the steps read dataset.json
    elif done["train"]:
        result["train"] = A.read_document(run_dir / A.TRAIN_JSON, TrainDocument)
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
            int8_target=options.get("int8_target") or "portable",
        )
    if done["parity"]:
        result["parity"] = A.read_document(run_dir / A.PARITY_JSON, ParityDocument)
    else:
        result["parity"] = timed("parity", parity_step, run_dir, data=data, progress=progress)
    if done["bench"]:
        result["bench"] = A.read_document(run_dir / A.BENCH_JSON, BenchDocument)
    else:
        result["bench"] = timed("bench", bench_step, run_dir, settings, data=data, progress=progress)
    if options.get("diagnose"):
        from toolkit.diagnosis.step import diagnose_step

        result["diagnose"] = timed("diagnose", diagnose_step, run_dir, data=data, progress=progress)
    result["report"] = report_step(run_dir)
    if options.get("bundle"):
        from toolkit.device.bundle import build_bundle

        out = Path(options["bundle"])
        result["bundle"] = timed("bundle", build_bundle, run_dir, out, force=True, data=data)[0]
    return result


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Delete temporary files and folders a killed process left behind (never a file under its final name)."""
    import shutil

    removed = []
    temporary = (".onnx-quant-", ".onnx-fp32-", ".latest.tmp", ".cpu-parity-")
    for path in sorted(run_dir.rglob(".*")):
        if ".partial" in path.name or path.name.startswith(temporary):
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
    from toolkit.run.documents import RunOptions

    return A.read_document(path, RunOptions)
