"""The whole pipeline (train -> export -> parity -> bench -> report) in one run directory, resumable.

`run.json` keeps the options, so `--resume` repeats exactly the same work; each step's outputs are trusted
only while their sha256 still matches what the next step recorded. `pipeline_data` loads what the run
computes on before the run directory exists; the run's `Dataset` is then resolved once (`_RunData`) and
every later step gets it, instead of each step resolving `data` again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from exporters.base import ExportFormat, Precision, artifact_name
from runtimes.files import sha256_file
from toolkit.errors import RunDirError
from toolkit.model.reference import TrainConfig
from toolkit.progress import ProgressCallback
from toolkit.run import layout as A
from toolkit.steps.export import export_step
from toolkit.steps.mixed import check_budget
from toolkit.steps.parity import parity_step
from toolkit.steps.train import train_step
from toolkit.steps.user_model import UserModel, import_into_run, prepare_user_model

if TYPE_CHECKING:
    from toolkit.data.dataset import Dataset
    from toolkit.steps.bench import EarlyStart

if TYPE_CHECKING:
    from toolkit.run.documents import (
        BenchDocument,
        DiagnoseDocument,
        ManifestDocument,
        ModelDocument,
        ParityDocument,
        RunOptions,
        TrainDocument,
    )


# -- report ------------------------------------------------------------------------------------------
def report_step(run_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html from whichever of train/manifest/parity/bench JSON files exist."""
    from toolkit.reports import write_report

    return write_report(run_dir)


T = TypeVar("T")

# -- the whole pipeline, resumable ---------------------------------------------------------------------
RUN_JSON = A.RUN_JSON  # the pipeline's options, so --resume repeats exactly the same run


@dataclass(frozen=True)
class PipelineResult:
    """What `pipeline()` did: the run directory and the documents it holds."""

    run_dir: Path
    train: TrainDocument | None  # None when the run took the user's model (--model) instead of training
    manifest: ManifestDocument
    parity: ParityDocument
    bench: BenchDocument
    report: tuple[Path, Path]
    skipped: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    model: ModelDocument | None = None  # the user's model (--model), as model.json records it
    bundle: Path | None = None  # the bundle written with `bundle=` (--bundle)
    diagnose: DiagnoseDocument | None = None  # diagnose.json, with `diagnose=` (--diagnose)
    notes: list[str] = field(default_factory=list)  # one-line outcomes, e.g. of the int8-mixed search


def _step_state(run_dir: Path, targets: list[tuple[ExportFormat, Precision]]) -> dict[str, bool]:
    """Which steps already completed, trusting only files whose sha256 matches what the next step recorded."""
    from toolkit.run.documents import BenchDocument, ManifestDocument, ModelDocument, ParityDocument, TrainDocument

    run = A.Run(run_dir)
    done = {"train": False, "export": False, "parity": False, "bench": False}
    try:
        model = A.model_file(run_dir)  # model.keras, or model.onnx for an ONNX source
    except RunDirError:
        return done
    # A user's model (--model) is imported, not trained: model.json records its sha256 instead.
    made_by = run.find(TrainDocument) or run.find(ModelDocument)
    if not model.is_file() or made_by is None:
        return done
    model_sha = sha256_file(model)
    if made_by.model_sha256 != model_sha:
        return done
    done["train"] = True
    manifest = run.find(ManifestDocument)
    if manifest is None or A.reference_sha(manifest) != model_sha:
        return done
    wanted = {artifact_name(f, p) for f, p in targets} | {A.reference_name(manifest)}
    listed = {e.name: e for e in manifest.artifacts}
    if not wanted <= set(listed):
        return done
    for name in wanted:
        try:
            run.verified_path(listed[name])
        except RunDirError:
            return done
    done["export"] = True
    shas = {name: listed[name].sha256 for name in wanted}
    parity, bench = run.find(ParityDocument), run.find(BenchDocument)
    if parity is not None:
        done["parity"] = bool(parity.artifacts) and all(parity.artifacts.get(k) == v for k, v in shas.items())
    if bench is not None:
        # bench skips artifacts whose runtime is missing; it is complete when what it measured still matches.
        measured = bench.artifacts
        done["bench"] = bool(measured) and all(measured[k] == v for k, v in shas.items() if k in measured)
    return done


def pipeline_data(options: RunOptions, data: Any = None, *, imported: bool = False) -> tuple[Any, UserModel | None]:
    """What a pipeline run computes on, checked before its run directory exists (a refusal leaves nothing).

    A reference run: (the MNIST `Mnist`, None): `data` if given, else the source `options.data` names.
    A run of the user's model (`options.model`): (None, the checked `UserModel` with its `Dataset`), or
    (None, None) when the model was `imported` already (a resumed run: the steps read dataset.json).
    """
    if not options.model:
        from toolkit.data.mnist import load_mnist

        return data or load_mnist(options.data, allow_unverified=options.allow_unverified), None
    if imported:
        return None, None
    user = prepare_user_model(
        options.model,
        data if data is not None else options.data,
        seed=options.train.seed,
        output_kind=options.output_kind,
        custom_objects=options.custom_objects,
        input_scale=options.input_scale,
        allow_unverified=options.allow_unverified,
    )
    check_budget(options.max_drop, options.min_agreement, user.spec)  # before the run directory exists
    return None, user


class _Timings(dict[str, float]):
    """Seconds per step, filled by `run`."""

    def run(self, step: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        self[step] = time.perf_counter() - t0
        return value


class _RunData:
    """The run's `Dataset`, resolved once when a step first needs it (`run_source.run_dataset`), not by
    every step again: the MNIST arrays, the user's checked dataset, or on a resumed run dataset.json's data."""

    def __init__(self, run_dir: Path, data: Any) -> None:
        self.run_dir = run_dir
        self.data = data
        self._dataset: Dataset | None = None

    def get(self) -> Dataset:
        if self._dataset is None:
            from toolkit.model.run_source import run_dataset, run_spec

            self._dataset = run_dataset(self.run_dir, self.data, spec=run_spec(self.run_dir))
        return self._dataset


def run_pipeline(
    run_dir: Path,
    options: RunOptions,
    *,
    data: Any,
    progress: ProgressCallback | None = None,
    resume: bool = False,
    user: UserModel | None = None,
) -> PipelineResult:
    """train → export → parity → bench → report in `run_dir`; with `resume`, skip the steps already done.

    `options` (stored as run.json) holds the training config, export targets and bench settings, so a
    resumed run repeats exactly the same work. Returns what each step produced plus timings.
    With `user` (a checked `--model`), the model is imported instead of trained and every step runs on its data.
    `data` and `user` come from `pipeline_data`.
    """
    run = A.Run(run_dir)
    config = options.train
    targets = [(ExportFormat(f), Precision(p)) for f, p in options.targets]
    if resume:
        remove_leftovers(run_dir)
    else:
        run.save(options)
    done = _step_state(run_dir, targets) if resume else dict.fromkeys(("train", "export", "parity", "bench"), False)
    timings = _Timings()
    train, model, data = _model_step(run, options, config, data, done["train"], user, progress, timings)
    run_data = _RunData(run_dir, data)
    notes: list[str] = []
    with _early_start(run_dir, options, done, run_data) as early:
        manifest, parity, bench, diagnose = _artifact_steps(
            run, options, targets, done, run_data, progress, timings, notes, early
        )
    report = report_step(run_dir)
    bundle = None
    if options.bundle:
        from toolkit.bundles.build import build_bundle

        out = Path(options.bundle)
        bundle = timings.run("bundle", build_bundle, run_dir, out, force=True, data=run_data.get())[0]
    return PipelineResult(
        run_dir=run_dir,
        train=train,
        manifest=manifest,
        parity=parity,
        bench=bench,
        report=report,
        skipped=[step for step, ok in done.items() if ok],
        timings=dict(timings),
        model=model,
        bundle=bundle,
        diagnose=diagnose,
        notes=notes,
    )


def _model_step(
    run: A.Run,
    options: RunOptions,
    config: TrainConfig,
    data: Any,
    done: bool,
    user: UserModel | None,
    progress: ProgressCallback | None,
    timings: _Timings,
) -> tuple[TrainDocument | None, ModelDocument | None, Any]:
    """The run's model: trained (train.json), or the user's imported (model.json); and the data the later
    steps run on (a --model run's own dataset; None: they read dataset.json)."""
    from toolkit.run.documents import ModelDocument, TrainDocument

    if not options.model:
        train = run.load(TrainDocument) if done else timings.run("train", train_step, run.dir, data, config, progress)
        return train, None, data
    if done:
        model = run.load(ModelDocument)
    else:
        assert user is not None, "a --model run needs its checked model to import"
        model = timings.run("import", import_into_run, run.dir, user)
    return None, model, user.dataset if user is not None else None


def _artifact_steps(
    run: A.Run,
    options: RunOptions,
    targets: list[tuple[ExportFormat, Precision]],
    done: dict[str, bool],
    run_data: _RunData,
    progress: ProgressCallback | None,
    timings: _Timings,
    notes: list[str],
    early: EarlyStart | None = None,
) -> tuple[ManifestDocument, ParityDocument, BenchDocument, DiagnoseDocument | None]:
    """export → parity → bench (each unless done), then the diagnosis when asked, all on the run's data."""
    from toolkit.run.documents import BenchDocument, ParityDocument
    from toolkit.steps.bench import bench_step

    run_dir = run.dir
    if done["export"] and not _mix_pending(run, options):
        manifest = run.manifest()
    elif done["export"]:  # resumed after the exports, before the int8-mixed search finished
        manifest = timings.run("mixed", _mix, run, options, run_data, progress, notes)
        if any(a.precision == Precision.INT8_MIXED.value for a in manifest.artifacts):
            done["parity"] = done["bench"] = False  # they ran without the artifact the search just wrote
    else:
        manifest = timings.run(
            "export",
            export_step,
            run_dir,
            targets,
            data=run_data.get(),
            calibration_size=options.calibration_size,
            seed=options.train.seed,
            progress=progress,
            int8_target=options.int8_target or "portable",
        )
        if _budget(options):
            manifest = timings.run("mixed", _mix, run, options, run_data, progress, notes)
    if done["parity"]:
        parity = run.load(ParityDocument)
    else:
        parity = timings.run("parity", parity_step, run_dir, data=run_data.get(), progress=progress)
    if done["bench"]:
        bench = run.load(BenchDocument)
    else:
        bench = timings.run(
            "bench", bench_step, run_dir, options.bench, data=run_data.get(), progress=progress, early=early
        )
    diagnose = None
    if options.diagnose:
        from toolkit.diagnosis.step import diagnose_step

        diagnose = timings.run("diagnose", diagnose_step, run_dir, data=run_data.get(), progress=progress)
    return manifest, parity, bench, diagnose


def _early_start(
    run_dir: Path, options: RunOptions, done: dict[str, bool], run_data: _RunData
) -> contextlib.AbstractContextManager[EarlyStart | None]:
    """Keras bench workers started now, so TensorFlow's start-up in them overlaps export and parity (a Keras
    model whose bench is still to run); else nothing."""
    from toolkit.steps.bench import EarlyStart

    if done["bench"] or A.model_file(run_dir).suffix != ".keras":
        return contextlib.nullcontext()
    return EarlyStart(run_dir, options.bench, data=run_data.get())


def _budget(options: RunOptions) -> bool:
    return options.max_drop is not None or options.min_agreement is not None


def _mix_pending(run: A.Run, options: RunOptions) -> bool:
    """Whether a budget was asked and the run has no int8-mixed artifact nor mixed.json yet."""
    from toolkit.steps.mixed import MIXED_JSON

    if not _budget(options) or (run.dir / MIXED_JSON).exists():
        return False
    return not any(a.precision == Precision.INT8_MIXED.value for a in run.manifest().artifacts)


def _mix(
    run: A.Run, options: RunOptions, run_data: _RunData, progress: ProgressCallback | None, notes: list[str]
) -> ManifestDocument:
    """The int8-mixed search under the run's budget (`toolkit.steps.mixed`), its outcomes added to `notes`; the
    manifest with what it wrote."""
    from toolkit.steps.mixed import mixed_step

    mixed_step(
        run.dir,
        max_drop=options.max_drop,
        min_agreement=options.min_agreement,
        data=run_data.get(),
        calibration_size=options.calibration_size,
        seed=options.train.seed,
        images=options.budget_images,
        progress=progress,
        message=notes.append,
    )
    return run.manifest()


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Delete temporary files and folders a killed process left behind (never a file under its final name)."""
    import shutil

    removed = []
    temporary = (".onnx-quant-", ".onnx-fp32-", ".onnx-mixed-", ".mixed-", ".latest.tmp", ".cpu-parity-")
    for path in sorted(run_dir.rglob(".*")):
        if ".partial" in path.name or path.name.startswith(temporary):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def load_run_options(run_dir: Path) -> RunOptions:
    """run.json: the options the run was started with (a run not started by `edgekit pipeline` has none)."""
    from toolkit.run.documents import RunOptions

    run = A.Run(run_dir)
    if not run.has(RunOptions):
        raise RunDirError(
            f"{run_dir} has no {RUN_JSON}, so it was not started by `edgekit pipeline`; "
            "start a new run instead of --resume."
        )
    return run.load(RunOptions)
