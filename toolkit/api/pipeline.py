"""The whole pipeline through the API: `pipeline_options()` (what run.json stores) and `pipeline()`.

    result = toolkit.pipeline(options=toolkit.pipeline_options(epochs=3))
    result = toolkit.pipeline(options=toolkit.pipeline_options(model="my.keras", data="my.npz"))

Importing this module is cheap: TensorFlow, pydantic and the runtimes load inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.api.steps import DEFAULT_RUNS, format_choices, precision_choices

if TYPE_CHECKING:
    from toolkit.data.mnist import Mnist
    from toolkit.progress import ProgressCallback
    from toolkit.run.documents import RunOptions
    from toolkit.steps.bench_settings import BenchSettings
    from toolkit.workflow.pipeline import PipelineResult as PipelineResult


def __getattr__(name: str) -> Any:
    # `toolkit.PipelineResult` (and `from toolkit.api.pipeline import PipelineResult`), loaded when asked for.
    if name == "PipelineResult":
        from toolkit.workflow.pipeline import PipelineResult

        return PipelineResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pipeline_options(
    *,
    epochs: int = 10,
    batch_size: int = 200,
    seed: int = 7,
    train_limit: int | None = None,
    formats: Sequence[str] | None = None,
    precisions: Sequence[str] | None = None,
    calibration_size: int = 500,
    settings: BenchSettings | None = None,
    data: str | None = None,
    allow_unverified: bool = False,
    model: str | Path | None = None,
    output_kind: str | None = None,
    custom_objects: str | Path | None = None,
    input_scale: float | None = None,
    diagnose: bool = False,
    bundle: str | Path | None = None,
    int8_target: str = "portable",
    max_drop: float | None = None,
    min_agreement: float | None = None,
    budget_images: int = 2000,
) -> RunOptions:
    """The options of a whole pipeline run, as stored in its run.json (so `--resume` repeats them).

    With `model` (a .keras, .h5 or SavedModel folder) the run skips training and takes that model through
    export, parity and bench on `data` (an .npz, a folder of images per class, or MNIST); `output_kind`,
    `custom_objects` and `input_scale` say how to read it (see `toolkit.steps.user_model.prepare_user_model`).
    `diagnose` adds the per-layer diagnosis after bench; `bundle` writes a bundle for a board at the end.
    `int8_target` is the CPU class the int8 exports are for (portable, x86-vnni, arm64; `exporters.int8_recipe`).
    `max_drop`/`min_agreement` add the int8-mixed search after the exports (as `export --max-accuracy-drop` does,
    judged on the first `budget_images` test rows).
    """
    from toolkit.model.reference import TrainConfig
    from toolkit.run import layout
    from toolkit.run.documents import RunOptions
    from toolkit.steps.bench_settings import BenchSettings
    from toolkit.steps.export import check_int8_target, parse_targets, source_format
    from toolkit.steps.mixed import check_budget

    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, train_limit=train_limit)
    config.check()
    settings = settings or BenchSettings()
    settings.check()
    targets = parse_targets(
        format_choices(formats), precision_choices(precisions), source=source_format(model), model=model
    )
    check_int8_target(int8_target)
    check_budget(max_drop, min_agreement)
    options: dict[str, Any] = {
        "schema_version": layout.SCHEMA_VERSION,
        "train": config,
        "targets": [[f.value, p.value] for f, p in targets],
        "calibration_size": calibration_size,
        "int8_target": int8_target,
        "bench": settings,
        "data": None if data is None else str(data),
        "allow_unverified": allow_unverified,
        "model": None if model is None else str(Path(model).expanduser().resolve()),
        "output_kind": output_kind,
        "custom_objects": None if custom_objects is None else str(Path(custom_objects).expanduser().resolve()),
        "input_scale": input_scale,
        "diagnose": diagnose,
        "bundle": None if bundle is None else str(Path(bundle).expanduser().resolve()),
        "max_drop": max_drop,
        "min_agreement": min_agreement,
        "budget_images": budget_images,
    }
    if data is not None and model is not None and Path(str(data)).expanduser().exists():
        options["data"] = str(Path(str(data)).expanduser().resolve())  # --resume may run from elsewhere
    return RunOptions.model_validate(options)


def pipeline(
    runs_dir: Path | str = DEFAULT_RUNS,
    *,
    options: RunOptions | None = None,
    resume: Path | str | None = None,
    data: Mnist | None = None,
    progress: ProgressCallback | None = None,
    on_run_dir: Callable[[Path], None] | None = None,
) -> PipelineResult:
    """train → export → parity → bench → report in a new run directory (or resume an interrupted one).

    Args:
        options: from `pipeline_options()` (default: the reference defaults); ignored with `resume`,
            which repeats the interrupted run's own options.
        data: the dataset, if already loaded (else loaded from the options' source).
        on_run_dir: called with the run directory as soon as it exists (the CLI prints it).

    Returns:
        The run directory, its four documents, the report's two paths, the steps kept from an interrupted
        run and the seconds each step took. `result.parity.passed` is False when an artifact failed parity.
    """
    from toolkit.run import layout
    from toolkit.run.lock import run_lock
    from toolkit.workflow.pipeline import load_run_options, pipeline_data, run_pipeline

    if resume is not None:
        run = layout.resolve_run_dir(Path(resume))
        stored = load_run_options(run)
    else:
        stored = options or pipeline_options()
    imported = resume is not None and (run / "model.json").is_file()
    # Checked before the run directory exists, so a refused model or dataset leaves nothing behind.
    dataset, user = pipeline_data(stored, data, imported=imported)
    if resume is None:
        run = layout.new_run_dir(Path(runs_dir))
        layout.point_latest(run)  # at once, so `--resume runs/latest` finds an interrupted run
    if on_run_dir is not None:
        on_run_dir(run)
    with run_lock(run):
        result = run_pipeline(run, stored, data=dataset, progress=progress, resume=resume is not None, user=user)
    layout.point_latest(run)
    return result
