"""`edgekit train`, `export`, `parity`, `report` and `pipeline`: the steps over a run directory."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from exporters.base import NEEDS_CALIBRATION
from exporters.int8_recipe import Int8Target
from toolkit.cli.console import EXIT_THRESHOLD, err, out, progress_bar, rich_table
from toolkit.cli.options import (
    RUNS_DIR,
    AllowUnverifiedOpt,
    AlsoBundleOpt,
    AlsoDiagnoseOpt,
    ArtifactsOpt,
    BatchOpt,
    BatchSizeOpt,
    BudgetImagesOpt,
    CalibOpt,
    CustomObjectsOpt,
    DataOpt,
    EpochsOpt,
    ExportMaxAccuracyDropOpt,
    ExtraRuntimeOpt,
    FormatOpt,
    InputScaleOpt,
    Int8TargetOpt,
    KerasFullOpt,
    LimitOpt,
    MedianPrecisionOpt,
    MethodOpt,
    MinAgreementOpt,
    MinRunsOpt,
    MinSecondsOpt,
    ModelOpt,
    OrtOptOpt,
    OutputKindOpt,
    OvHintOpt,
    PeakOpt,
    PrecisionOpt,
    ProcessesOpt,
    QuickOpt,
    ReportOutOpt,
    ResumeOpt,
    RunDirArg,
    RunsDirOpt,
    SeedOpt,
    ThreadsOpt,
    TrainLimitOpt,
    TrainOutOpt,
    WarmupOpt,
    XnnpackOpt,
    bench_settings,
    parse_scale,
    resolve_run,
    run_to_write,
    with_runtimes,
)
from toolkit.cli.show import _load_data, print_bench, print_cpu_classes, print_parity, print_recommendation
from toolkit.cpus.models import cpu_help

if TYPE_CHECKING:
    from toolkit.api.pipeline import PipelineResult
    from toolkit.run.documents import RunOptions


# -- commands ------------------------------------------------------------------------------------
def train(
    out_dir: TrainOutOpt = None,
    runs_dir: RunsDirOpt = RUNS_DIR,
    epochs: EpochsOpt = 10,
    batch_size: BatchSizeOpt = 200,
    seed: SeedOpt = 7,
    train_limit: TrainLimitOpt = None,
    data: DataOpt = None,
    allow_unverified: AllowUnverifiedOpt = False,
) -> None:
    """Train the reference CNN; writes model.keras and train.json into --out, a run directory.

    Without [b]--out[/], a new <runs-dir>/<UTC time>, which <runs-dir>/latest then points at.
    Example: [b]edgekit train --epochs 3[/]
    """
    import toolkit
    from toolkit.run import layout as A

    dataset = _load_data(data, allow_unverified)
    if out_dir is not None:
        A.prepare_run_dir(out_dir, "--out")  # a file in the way, or no permission: one line naming --out
    with run_to_write(out_dir, runs_dir) as run_dir, progress_bar() as progress:
        summary = toolkit.train(
            run_dir,
            data=dataset,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            train_limit=train_limit,
            progress=progress,
        )
    out.print(
        f"Trained in {summary.wall_seconds:.1f} s: test accuracy [bold]{100 * summary.test_accuracy:.2f} %[/] "
        f"→ {escape(str(run_dir / A.MODEL_FILE))}",
        highlight=False,
    )


def export(
    run_dir: RunDirArg = None,
    runs_dir: RunsDirOpt = RUNS_DIR,
    formats: FormatOpt = None,
    runtime: ExtraRuntimeOpt = None,
    precisions: PrecisionOpt = None,
    calibration_size: CalibOpt = 500,
    seed: SeedOpt = 7,
    data: DataOpt = None,
    allow_unverified: AllowUnverifiedOpt = False,
    model: ModelOpt = None,
    output_kind: OutputKindOpt = None,
    custom_objects: CustomObjectsOpt = None,
    input_scale: InputScaleOpt = None,
    max_accuracy_drop: ExportMaxAccuracyDropOpt = None,
    min_agreement: MinAgreementOpt = None,
    budget_images: BudgetImagesOpt = 2000,
    int8_target: Int8TargetOpt = Int8Target.PORTABLE,
) -> None:
    """Export model.keras to TFLite and ONNX (float and quantized); writes exports/ and manifest.json.

    Default: TFLite fp32, fp16, int8-dynamic and int8 (int8 I/O); ONNX fp32 and int8 (static QDQ).
    [b]-r openvino[/] adds OpenVINO IR fp32, fp16 and int8.
    With [b]--model[/], your own Keras model is checked with [b]--data[/] and imported into RUN_DIR first
    (default: a new <runs-dir>/<UTC time>, which <runs-dir>/latest then points at).
    Examples: [b]edgekit export runs/latest -f tflite -p int8[/]
    [b]edgekit export runs/mine --model my.keras --data my.npz[/]
    [b]edgekit export runs/latest --max-accuracy-drop 0.3[/] (int8 with the fewest float layers within 0.3 points)
    """
    import toolkit
    from toolkit.steps.export import parse_targets, skipped_message, source_format

    max_drop = max_accuracy_drop
    formats = with_runtimes(formats, runtime)
    existing = None if model is not None else resolve_run(run_dir, runs_dir)
    source = source_format(model, existing)
    targets = parse_targets(formats, precisions, source=source, model=model)  # fails before the data loads
    scale = parse_scale(input_scale)
    writing: contextlib.AbstractContextManager[Path]
    if existing is None:
        # Your own model is imported into RUN_DIR, or a new run; the API loads and checks your data with it.
        writing, dataset = run_to_write(run_dir, runs_dir), data
    else:
        run = existing
        budget = max_drop is not None or min_agreement is not None
        needs_data = budget or any(p in NEEDS_CALIBRATION for _, p in targets)
        writing = contextlib.nullcontext(run)
        dataset = _load_data(data, allow_unverified, run) if needs_data else None
    skipped = None if formats else skipped_message(source)  # a file source's default targets leave some out
    messages: list[str] = [skipped] if skipped else []
    with writing as run, progress_bar() as progress:
        manifest = toolkit.export(
            run,
            formats=formats,
            precisions=precisions,
            data=dataset,
            calibration_size=calibration_size,
            seed=seed,
            progress=progress,
            model=model,
            output_kind=output_kind,
            custom_objects=custom_objects,
            input_scale=scale,
            max_drop=max_drop,
            min_agreement=min_agreement,
            budget_images=budget_images,
            on_message=messages.append,
            int8_target=int8_target.value,
        )
    for text in messages:
        out.print(escape(text), highlight=False)
    rows = [[a.name, a.precision, f"{a.size_bytes:,}", a.sha256[:12]] for a in manifest.artifacts]
    out.print(rich_table(f"Artifacts in {run}", ["artifact", "precision", "bytes", "sha256"], rows))


def parity(
    run_dir: RunDirArg = None,
    runs_dir: RunsDirOpt = RUNS_DIR,
    artifact: ArtifactsOpt = None,
    limit: LimitOpt = None,
    data: DataOpt = None,
    allow_unverified: AllowUnverifiedOpt = False,
    cpu: Annotated[
        list[str] | None,
        typer.Option(
            "--cpu",
            help=f"Also run the exports under this emulated CPU class (QEMU; repeat for several): {cpu_help()}. "
            "arm64 CPUs need root, as verify --emulate does.",
            rich_help_panel="Other CPUs",
            show_default=False,
        ),
    ] = None,
    cpu_images: Annotated[
        int,
        typer.Option(
            "--cpu-images",
            min=1,
            help="Test images run under each emulated CPU (the first N; emulation is 20-100x slower).",
            rich_help_panel="Other CPUs",
        ),
    ] = 1000,
) -> None:
    """Run every artifact over the test set against the Keras reference; writes parity.json.

    Exits 3 if any artifact fails its tolerance ({PARITY_HELP}), here or, with [b]--cpu[/], on an emulated CPU
    (there also against this machine's outputs, max |Δ|: {MACHINE_HELP}).
    Examples: [b]edgekit parity runs/latest[/]   [b]edgekit parity --cpu haswell --cpu nehalem[/]
    """
    import toolkit
    from toolkit.run import layout as A

    run = resolve_run(run_dir, runs_dir)
    dataset = _load_data(data, allow_unverified, run)
    with progress_bar() as progress:
        report = toolkit.parity(
            run,
            artifacts=artifact,
            limit=limit,
            data=dataset,
            progress=progress,
            cpus=cpu,
            cpu_images=cpu_images,
            on_message=lambda text: err.print(f"[dim]{escape(text)}[/]", highlight=False),
        )
    print_parity(report)
    if report.cpu_classes is not None:
        print_cpu_classes(report)
    if not report.passed:
        failed = list(dict.fromkeys(r.artifact for r in report.results if not r.passed))  # several outputs: once
        if report.cpu_classes is not None:
            failed += [f"{r.artifact} on {c.name}" for c in report.cpu_classes.classes for r in c.rows if not r.passed]
        err.print(
            f"[bold red]parity failed[/] for {escape(', '.join(failed))} (see {escape(str(run / A.PARITY_JSON))})",
            highlight=False,
        )
        raise typer.Exit(EXIT_THRESHOLD)


def report(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Run directories or bench.json files (default: the run <runs-dir>/latest points at). Several: "
            "merged side by side.",
            show_default=False,
        ),
    ] = None,
    runs_dir: RunsDirOpt = RUNS_DIR,
    out_dir: ReportOutOpt = None,
) -> None:
    """Write report.md and report.html (charts embedded) from a run's JSON files, or merge several machines.

    One run's report goes into the run directory; a merged one into --out (default: report-merged).
    Examples: [b]edgekit report[/]   [b]edgekit report runs/latest pi/bench.json --out compare/[/]
    """
    import toolkit

    md, html = toolkit.report(*(inputs or [resolve_run(None, runs_dir)]), out_dir=out_dir)
    out.print(f"Wrote {escape(str(md))} and {escape(str(html))}", highlight=False)


def pipeline(
    runs_dir: RunsDirOpt = RUNS_DIR,
    resume: ResumeOpt = None,
    epochs: EpochsOpt = 10,
    batch_size: BatchSizeOpt = 200,
    seed: SeedOpt = 7,
    train_limit: TrainLimitOpt = None,
    data: DataOpt = None,
    allow_unverified: AllowUnverifiedOpt = False,
    model: ModelOpt = None,
    output_kind: OutputKindOpt = None,
    custom_objects: CustomObjectsOpt = None,
    input_scale: InputScaleOpt = None,
    formats: FormatOpt = None,
    runtime: ExtraRuntimeOpt = None,
    precisions: PrecisionOpt = None,
    calibration_size: CalibOpt = 500,
    int8_target: Int8TargetOpt = Int8Target.PORTABLE,
    batch: BatchOpt = None,
    threads: ThreadsOpt = None,
    xnnpack: XnnpackOpt = None,
    ort_opt: OrtOptOpt = None,
    ov_hint: OvHintOpt = None,
    min_runs: MinRunsOpt = None,
    min_seconds: MinSecondsOpt = None,
    warmup_runs: WarmupOpt = None,
    quick: QuickOpt = False,
    peak: PeakOpt = True,
    method: MethodOpt = None,
    median_precision: MedianPrecisionOpt = None,
    keras_full: KerasFullOpt = False,
    processes: ProcessesOpt = None,
    diagnose: AlsoDiagnoseOpt = False,
    bundle: AlsoBundleOpt = None,
    max_accuracy_drop: ExportMaxAccuracyDropOpt = None,
    min_agreement: MinAgreementOpt = None,
    budget_images: BudgetImagesOpt = 2000,
) -> None:
    """Train → export → parity → bench → report into a new <runs-dir>/<UTC time>, and point <runs-dir>/latest at it.

    Exits 3 if any artifact fails parity (the run is still completed and reported).
    Example: [b]edgekit pipeline[/]   or, for a quick look: [b]edgekit pipeline --epochs 1 --quick[/]
    With OpenVINO beside LiteRT and ONNX Runtime: [b]edgekit pipeline -r openvino[/]
    Your own model (no training): [b]edgekit pipeline --model my.keras --data my.npz[/]
    int8-mixed within 0.5 points: [b]edgekit pipeline --model m.onnx --data d.npz --max-accuracy-drop 0.5[/]
    After an interruption: [b]edgekit pipeline --resume runs/latest[/]
    """
    import toolkit

    t0 = time.perf_counter()
    options = None
    dataset = None  # with --resume, the interrupted run's own --data is loaded by the API
    if resume is None:
        settings = bench_settings(
            batch,
            threads,
            xnnpack,
            ort_opt,
            min_runs,
            min_seconds,
            warmup_runs,
            quick,
            peak,
            method=method,
            precision=median_precision,
            keras_full=keras_full,
            processes=processes,
            ov_hint=ov_hint,
        )
        formats = with_runtimes(formats, runtime)
        options = toolkit.pipeline_options(
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            train_limit=train_limit,
            formats=formats,
            precisions=precisions,
            calibration_size=calibration_size,
            settings=settings,
            data=data,
            allow_unverified=allow_unverified,
            model=model,
            output_kind=output_kind,
            custom_objects=custom_objects,
            input_scale=parse_scale(input_scale),
            diagnose=diagnose,
            bundle=bundle,
            int8_target=int8_target.value,
            max_drop=max_accuracy_drop,
            min_agreement=min_agreement,
            budget_images=budget_images,
        )
        dataset = None if model is not None else _load_data(data, allow_unverified)
    result = _run_pipeline(runs_dir, options, resume, dataset, skipped_tflite=model is not None and not formats)
    _print_pipeline(result, time.perf_counter() - t0)
    if not result.parity.passed:
        err.print("[bold red]parity failed[/] for at least one artifact; see the report.")
        raise typer.Exit(EXIT_THRESHOLD)


def _run_pipeline(
    runs_dir: Path, options: RunOptions | None, resume: Path | None, dataset: Any, *, skipped_tflite: bool = False
) -> PipelineResult:
    """Run (or resume) the pipeline with progress bars, naming the run directory as soon as it exists (with
    `skipped_tflite`, a file source's default targets: one line saying which format is skipped)."""
    import toolkit
    from toolkit.steps.export import skipped_message, source_format

    def started(run: Path) -> None:
        out.print(f"{'Resuming' if resume else 'Run directory:'} [bold]{escape(str(run))}[/]", highlight=False)
        skipped = skipped_message(source_format(options.model)) if skipped_tflite and options is not None else None
        if skipped:
            out.print(skipped, highlight=False)

    with progress_bar() as progress:
        return toolkit.pipeline(
            runs_dir, options=options, resume=resume, data=dataset, progress=progress, on_run_dir=started
        )


def _score(metric: str, value: float) -> str:
    return f"accuracy [bold]{100 * value:.2f} %[/]" if metric == "accuracy" else f"{metric} [bold]{value:.4g}[/]"


def _print_pipeline(result: PipelineResult, seconds: float) -> None:
    """The pipeline's summary: the reference or your model, parity, latency, the recommendation, where files are."""

    if result.skipped:
        out.print(f"Kept from the interrupted run: {', '.join(result.skipped)}", highlight=False)
    if result.train is not None:
        out.print(
            f"Keras reference: test accuracy [bold]{100 * result.train.test_accuracy:.2f} %[/] "
            f"after {result.train.config.epochs} epoch(s)",
            highlight=False,
        )
    elif result.model is not None:
        accuracy = result.parity.reference.accuracy
        score = f"test accuracy [bold]{100 * accuracy:.2f} %[/]" if accuracy is not None else "regression"
        if result.parity.reference.outputs:  # several outputs: each one's score on its targets
            score = ", ".join(f"{o.name} {_score(o.metric, o.value)}" for o in result.parity.reference.outputs)
        out.print(
            f"Your model [bold]{escape(result.model.name)}[/] ({result.model.params:,} parameters, "
            f"{len(result.model.layers)} layers): {score} on {escape(result.parity.data.name)}",
            highlight=False,
        )
    for note in result.notes:
        out.print(escape(note), highlight=False)
    print_parity(result.parity)
    print_bench(result.bench)
    print_recommendation(result.parity, result.bench)
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items())
    md, html = result.report
    if result.bundle is not None:
        out.print(f"Bundle: [bold]{escape(str(result.bundle))}[/] (check it on a board with `edgekit verify`)")
    out.print(
        f"Done in {seconds:.0f} s ({steps}). Report: [bold]{escape(str(md))}[/] and {escape(str(html))}",
        highlight=False,
    )
