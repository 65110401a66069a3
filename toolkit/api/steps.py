"""edgekit's Python API: every step with typed arguments and typed results; the CLI is an adapter over it.

    import toolkit

    run = toolkit.new_run("runs")
    toolkit.train(run, epochs=1, train_limit=4000)
    manifest = toolkit.export(run, formats=["tflite"], precisions=["fp32", "int8"])
    parity = toolkit.parity(run, limit=1000)
    bench = toolkit.bench(run, settings=toolkit.BenchSettings(batch_sizes=(1,), threads=(1,)))
    md, html = toolkit.report(run)

Results are the run documents (`toolkit.run.documents`: `TrainDocument`, `ManifestDocument`,
`ParityDocument`, `BenchDocument`, `GateDocument`, `DiagnoseDocument`), the same objects the JSON files in
the run directory hold (`toolkit.run.layout.Run` loads any of them again). Progress goes to an optional
plain callback (`progress=print` works) of `toolkit.progress.ProgressEvent`.
User errors raise `runtimes.errors.EdgekitError` subclasses with a one-line message.

Importing this module is cheap: TensorFlow, pydantic and the runtimes load inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.gate import Limits
    from toolkit.data.mnist import Mnist
    from toolkit.progress import ProgressCallback
    from toolkit.run.documents import (
        BenchDocument,
        DiagnoseDocument,
        GateDocument,
        ManifestDocument,
        ParityDocument,
        TrainDocument,
    )
    from toolkit.steps.bench_settings import BenchSettings

DEFAULT_RUNS = Path("runs")


def load_data(data: str | Path | Mnist | None = None, *, allow_unverified: bool = False) -> Mnist:
    """The dataset: `Mnist` as given, or loaded from a source (None/"shipped", "keras-cache", a .npz, an IDX folder).

    Warnings (unverified data) are in `.warnings`; the caller decides how to show them.
    """
    from toolkit.data.mnist import Mnist, load_mnist

    return data if isinstance(data, Mnist) else load_mnist(data, allow_unverified=allow_unverified)


def new_run(runs_dir: Path | str = DEFAULT_RUNS, *, point_latest: bool = True) -> Path:
    """Create `runs_dir/<UTC time>` and (by default) point `runs_dir/latest` at it."""
    from toolkit.run import layout

    run = layout.new_run_dir(Path(runs_dir))
    if point_latest:
        layout.point_latest(run)
    return run


def train(
    run_dir: Path | str,
    *,
    data: str | Path | Mnist | None = None,
    epochs: int = 10,
    batch_size: int = 200,
    seed: int = 7,
    train_limit: int | None = None,
    progress: ProgressCallback | None = None,
) -> TrainDocument:
    """Train the reference CNN into `run_dir` (created if missing): model.keras and train.json."""
    from toolkit.model.reference import TrainConfig
    from toolkit.run import layout
    from toolkit.run.lock import run_lock
    from toolkit.steps.train import train_step

    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, train_limit=train_limit)
    config.check()
    dataset = load_data(data)
    run = layout.prepare_run_dir(Path(run_dir))
    with run_lock(run):
        return train_step(run, dataset, config, progress)


def export(
    run_dir: Path | str,
    *,
    formats: Sequence[str] | None = None,
    precisions: Sequence[str] | None = None,
    data: str | Path | Mnist | None = None,
    calibration_size: int = 500,
    seed: int = 7,
    progress: ProgressCallback | None = None,
    model: str | Path | None = None,
    output_kind: str | None = None,
    custom_objects: str | Path | None = None,
    input_scale: float | None = None,
    max_drop: float | None = None,
    min_agreement: float | None = None,
    budget_images: int = 2000,
    on_message: Callable[[str], None] | None = None,
    int8_target: str = "portable",
) -> ManifestDocument:
    """Export the run's model.keras (default: every format and precision not opt-in); returns manifest.json.

    With `model` (your .keras, .h5 or SavedModel folder), it is checked with `data` first and imported into
    `run_dir` (created if missing) as model.keras, model.json and dataset.json; nothing is written if either
    is refused.

    Args:
        formats: "tflite", "onnx" and/or "openvino" (None: tflite and onnx; openvino is opt-in).
        precisions: e.g. "fp32", "fp16", "int8-dynamic", "int8", "int16x8" (None: the defaults of each format).
        data: calibration data for int8 (the training split, `calibration_size` images drawn with `seed`).
        max_drop: accuracy budget in points vs the reference (Keras, or an ONNX source's onnx-fp32); when full
            int8 misses it (or `min_agreement`, top-1 agreement 0..1), the fewest most-sensitive layers (an ONNX
            source: weighted nodes) are kept in float, per format: writes
            tflite-int8-mixed / onnx-int8-mixed and mixed.json (toolkit/steps/mixed.py). Judged on the
            first `budget_images` test rows.
        on_message: receives one-line outcomes of the budget search (e.g. "full int8 meets the budget").
        int8_target: the CPU class the int8 exports are for: "portable" (the same answers on every x86-64 and
            Arm CPU), "x86-vnni" or "arm64" (full 8-bit weights for that class; see `exporters.int8_recipe`).
    """
    from exporters.base import NEEDS_CALIBRATION
    from toolkit.run import layout
    from toolkit.run.lock import run_lock
    from toolkit.steps.export import export_step, parse_targets, source_format
    from toolkit.steps.mixed import check_budget

    source = source_format(model, None if model is not None else run_dir)
    targets = parse_targets(format_choices(formats), precision_choices(precisions), source=source, model=model)
    check_budget(max_drop, min_agreement)
    budget = max_drop is not None or min_agreement is not None
    if model is not None:
        run, dataset = _import_model(
            run_dir, model, data, seed, output_kind, custom_objects, input_scale, max_drop, min_agreement
        )
    else:
        run = layout.resolve_run_dir(Path(run_dir))
        needs_data = budget or any(p in NEEDS_CALIBRATION for _, p in targets)
        dataset = _run_data(run, data) if needs_data else None
    with run_lock(run):
        manifest = export_step(
            run,
            targets,
            data=dataset,
            calibration_size=calibration_size,
            seed=seed,
            progress=progress,
            int8_target=int8_target,
        )
        if budget:
            _mix(run, dataset, calibration_size, seed, progress, on_message, max_drop, min_agreement, budget_images)
            manifest = layout.load_manifest(run)  # with the int8-mixed artifacts it wrote
    return manifest


def _import_model(
    run_dir: Path | str,
    model: str | Path,
    data: Any,
    seed: int,
    output_kind: str | None,
    custom_objects: str | Path | None,
    input_scale: float | None,
    max_drop: float | None = None,
    min_agreement: float | None = None,
) -> tuple[Path, Any]:
    """Check the user's model with its data, then import it into `run_dir` (created if missing; nothing is
    written if either is refused): the run directory and the checked dataset."""
    from toolkit.run import layout
    from toolkit.run.lock import run_lock
    from toolkit.steps.mixed import check_budget
    from toolkit.steps.user_model import import_into_run, prepare_user_model

    user = prepare_user_model(
        model, data, seed=seed, output_kind=output_kind, custom_objects=custom_objects, input_scale=input_scale
    )
    check_budget(max_drop, min_agreement, user.spec)
    run = layout.prepare_run_dir(Path(run_dir))
    with run_lock(run):
        import_into_run(run, user)
    return run, user.dataset


def parity(
    run_dir: Path | str,
    *,
    artifacts: Sequence[str] | None = None,
    limit: int | None = None,
    data: str | Path | Mnist | None = None,
    progress: ProgressCallback | None = None,
    cpus: Sequence[str] | None = None,
    cpu_images: int = 1000,
    on_message: Callable[[str], None] | None = None,
) -> ParityDocument:
    """Every artifact over the test split against the Keras reference; writes and returns parity.json.

    With `cpus` (e.g. ["haswell", "nehalem"] or ["cortex-a72", "cortex-a76"]; `toolkit.cpus.models`), the
    exports also run under those emulated CPU classes on the first `cpu_images` test inputs, and parity.json
    gets a `cpu_classes` section: per CPU and artifact, agreement with Keras and max |Δ| against this
    machine (arm64 CPUs need root, as `verify --emulate` does). `on_message` gets a line per slow set-up step.
    `doc.passed` is False when an artifact misses its tolerance on any CPU (the CLI exits 3 then).
    """
    from toolkit.run import layout
    from toolkit.run.lock import run_lock
    from toolkit.steps.parity import parity_step

    run = layout.resolve_run_dir(Path(run_dir))
    if cpus:
        from toolkit.cpus.step import cpu_parity, exported, parse_cpus

        parse_cpus(list(cpus))  # an unknown or unusable CPU, or nothing to emulate, fails before any work
        exported(list(artifacts) if artifacts else None)
    dataset = _run_data(run, data)
    names = list(artifacts) if artifacts else None
    with run_lock(run):
        report = parity_step(run, artifact_names=names, limit=limit, data=dataset, progress=progress)
        if cpus:
            images = min(cpu_images, limit) if limit is not None else cpu_images
            section = cpu_parity(
                run, list(cpus), artifact_names=names, images=images, data=dataset, progress=progress, say=on_message
            )
            report.cpu_classes = section
            report.passed = report.passed and section.passed
            layout.Run(run).save(report)
    return report


def bench(
    run_dir: Path | str,
    *,
    settings: BenchSettings | None = None,
    artifacts: Sequence[str] | None = None,
    data: str | Path | Mnist | None = None,
    progress: ProgressCallback | None = None,
) -> BenchDocument:
    """Latency of every artifact × batch × threads (× runner variant), a fresh process each; writes bench.json."""
    from toolkit.run import layout
    from toolkit.run.lock import run_lock
    from toolkit.steps.bench import bench_step
    from toolkit.steps.bench_settings import BenchSettings

    run = layout.resolve_run_dir(Path(run_dir))
    settings = settings or BenchSettings()
    settings.check()
    with run_lock(run):
        return bench_step(
            run,
            settings,
            artifact_names=list(artifacts) if artifacts else None,
            data=_run_data(run, data),
            progress=progress,
        )


def gate(
    current: Path | str, baseline: Path | str, *, limits: Limits | None = None, allow_other_cpu: bool = False
) -> GateDocument:
    """Compare a bench.json (or a run directory's) with a baseline; writes gate.json beside `current`.

    `doc.passed` is False on a regression (the CLI exits 3); `doc.regressions` names each one. A latency
    regression counts only when the 95 % intervals confirm it; one past the limit by its point value alone is
    in `doc.inconclusive` (not failing). Benches measured
    on different instruction-set classes (e.g. x86-64-avx2 and x86-64-avx512-vnni) are refused with a one-line
    ToolkitError unless `allow_other_cpu`.
    """
    from benchmarks.gate import Limits
    from toolkit.steps.gate import bench_path, load_bench, run_gate

    base_path = bench_path(Path(baseline), "--baseline")
    path = bench_path(Path(current), "bench")
    return run_gate(
        load_bench(path, "bench"),
        load_bench(base_path),
        base_path,
        limits or Limits(),
        path.parent,
        allow_other_cpu=allow_other_cpu,
    )


def report(*inputs: Path | str, out_dir: Path | str | None = None) -> tuple[Path, Path]:
    """Write report.md and report.html: in the run directory for one run, or merged side by side into `out_dir`."""
    from toolkit.reports import merge_reports, write_report
    from toolkit.run import layout
    from toolkit.run.lock import run_lock

    paths = [Path(p) for p in inputs]
    if len(paths) <= 1 and out_dir is None and not (paths and paths[0].is_file()):
        run = layout.resolve_run_dir(paths[0] if paths else None)
        with run_lock(run):
            return write_report(run)
    return merge_reports(paths, Path(out_dir or "report-merged"))


def diagnose(
    run_dir: Path | str,
    *,
    artifacts: Sequence[str] | None = None,
    limit: int = 500,
    data: str | Path | Mnist | None = None,
    sensitivity: bool = False,
    progress: ProgressCallback | None = None,
) -> DiagnoseDocument:
    """Per-layer error of each export against Keras, its disagreements and why a quantized one is slower.

    Writes diagnose/diagnose.json, diagnose.md and the galleries, refreshes the run's report if it has one,
    and returns diagnose.json. `sensitivity` also measures each layer's int8 sensitivity (one re-export per
    layer); without it the ranking of the run's mixed.json, if any, is shown.
    """
    from toolkit.diagnosis.step import diagnose_step
    from toolkit.reports import write_report
    from toolkit.run import layout
    from toolkit.run.lock import run_lock

    run = layout.resolve_run_dir(Path(run_dir))
    dataset = _run_data(run, data)
    with run_lock(run):
        result = diagnose_step(
            run,
            artifact_names=list(artifacts) if artifacts else None,
            limit=limit,
            data=dataset,
            sensitivity=sensitivity,
            progress=progress,
        )
        if (run / layout.REPORT_MD).exists():
            write_report(run)
    return result


def _mix(
    run: Path,
    data: Any,
    calibration_size: int,
    seed: int,
    progress: ProgressCallback | None,
    on_message: Callable[[str], None] | None,
    max_drop: float | None,
    min_agreement: float | None,
    images: int,
) -> None:
    """The int8/float mix under the accuracy budget (`toolkit.steps.mixed`), after the exports."""
    from toolkit.steps.mixed import mixed_step

    mixed_step(
        run,
        max_drop=max_drop,
        min_agreement=min_agreement,
        data=data,
        calibration_size=calibration_size,
        seed=seed,
        images=images,
        progress=progress,
        message=on_message,
    )


def _run_data(run: Path, data: Any) -> Any:
    """MNIST loaded here for a reference run; for a run made with --model the step resolves `data` itself
    (None: the run's dataset.json)."""
    from toolkit.model.run_source import has_own_data

    if has_own_data(run):
        return data
    return load_data(data)


def format_choices(values: Sequence[Any] | None) -> list[Any] | None:
    from exporters.base import ExportFormat

    return [_choice(ExportFormat, v, "format") for v in values] if values else None


def precision_choices(values: Sequence[Any] | None) -> list[Any] | None:
    from exporters.base import Precision

    return [_choice(Precision, v, "precision") for v in values] if values else None


def _choice(enum: Any, value: Any, what: str) -> Any:
    from toolkit.errors import ToolkitError

    try:
        return enum(getattr(value, "value", value))
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise ToolkitError(f"unknown {what} {value!r}; choose one of {choices}.") from None
