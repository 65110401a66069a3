"""`edgekit train`, `export`, `parity`, `report` and `pipeline`: the steps over a run directory."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from exporters.base import NEEDS_CALIBRATION
from toolkit.cli.console import EXIT_THRESHOLD, err, out, progress_bar, rich_table, user_errors
from toolkit.cli.options import (
    AllowUnverifiedOpt,
    ArtifactOpt,
    BatchOpt,
    BatchSizeOpt,
    BenchOptions,
    CalibOpt,
    DataOpt,
    EpochsOpt,
    FormatOpt,
    MinRunsOpt,
    MinSecondsOpt,
    OrtOptOpt,
    PeakOpt,
    PrecisionOpt,
    QuickOpt,
    RunDirArg,
    RunsDirOpt,
    SeedOpt,
    ThreadsOpt,
    TrainLimitOpt,
    WarmupOpt,
    XnnpackOpt,
)
from toolkit.cli.show import _load_data, print_bench, print_parity, print_recommendation
from toolkit.run.lock import run_lock


# -- commands ------------------------------------------------------------------------------------
@user_errors
def train(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run directory (default: a new runs/<UTC time>).", rich_help_panel="Output"),
    ] = None,
    runs_dir: RunsDirOpt = Path("runs"),
    epochs: EpochsOpt = 10,
    batch_size: BatchSizeOpt = 200,
    seed: SeedOpt = 7,
    train_limit: TrainLimitOpt = None,
    data: DataOpt = None,
    allow_unverified: AllowUnverifiedOpt = False,
) -> None:
    """Train the reference CNN; writes model.keras and train.json.

    Example: [b]edgekit train --epochs 3[/]
    """
    from toolkit.model.reference import TrainConfig
    from toolkit.run import layout as A
    from toolkit.steps.train import train_step

    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, train_limit=train_limit)
    config.validate()
    dataset = _load_data(data, allow_unverified)
    run_dir = _make_run_dir(out_dir, runs_dir)
    with run_lock(run_dir), progress_bar() as progress:
        summary = train_step(run_dir, dataset, config, progress)
    if out_dir is None:
        A.point_latest(run_dir)
    out.print(
        f"Trained in {summary['wall_seconds']:.1f} s: test accuracy [bold]{100 * summary['test_accuracy']:.2f} %[/] "
        f"→ {run_dir / A.MODEL_FILE}",
        highlight=False,
    )


def _make_run_dir(out_dir: Path | None, runs_dir: Path) -> Path:
    from toolkit.errors import RunDirError
    from toolkit.run import layout as A

    if out_dir is None:
        return A.new_run_dir(runs_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirError(f"--out {out_dir} is a file; pass a directory.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create {out_dir}: {exc.strerror}; choose another --out.") from exc
    if not os.access(out_dir, os.W_OK):
        raise RunDirError(f"{out_dir} is not writable; choose another --out.")
    return out_dir


@user_errors
def export(
    run_dir: RunDirArg = None,
    formats: FormatOpt = None,
    precisions: PrecisionOpt = None,
    calibration_size: CalibOpt = 500,
    seed: SeedOpt = 7,
    data: DataOpt = None,
    allow_unverified: AllowUnverifiedOpt = False,
) -> None:
    """Export model.keras to TFLite and ONNX (float and quantized); writes exports/ and manifest.json.

    Default: TFLite fp32, fp16, int8-dynamic and int8 (int8 I/O); ONNX fp32 and int8 (static QDQ).
    Example: [b]edgekit export runs/latest -f tflite -p int8[/]
    """
    from toolkit.run import layout as A
    from toolkit.steps.export import export_step, parse_targets

    run = A.resolve_run_dir(run_dir)
    targets = parse_targets(formats, precisions)
    dataset = _load_data(data, allow_unverified) if any(p in NEEDS_CALIBRATION for _, p in targets) else None
    with run_lock(run), progress_bar() as progress:
        manifest = export_step(
            run, targets, data=dataset, calibration_size=calibration_size, seed=seed, progress=progress
        )
    rows = [[a["name"], a["precision"], f"{a['size_bytes']:,}", a["sha256"][:12]] for a in manifest["artifacts"]]
    out.print(rich_table(f"Artifacts in {run}", ["artifact", "precision", "bytes", "sha256"], rows))


@user_errors
def parity(
    run_dir: RunDirArg = None,
    artifact: ArtifactOpt = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Use only the first N test images.")] = None,
    data: DataOpt = None,
    allow_unverified: AllowUnverifiedOpt = False,
) -> None:
    """Run every artifact over the test set against the Keras reference; writes parity.json.

    Exits 3 if any artifact fails its tolerance (fp32: agreement 1 and max |Δp| ≤ 1e-5; fp16: max |Δp| ≤ 1e-2;
    int8: accuracy within 0.5 pt and agreement ≥ 0.995).
    Example: [b]edgekit parity runs/latest[/]
    """
    from toolkit.run import layout as A
    from toolkit.steps.parity import parity_step

    run = A.resolve_run_dir(run_dir)
    dataset = _load_data(data, allow_unverified)
    with run_lock(run), progress_bar() as progress:
        report = parity_step(run, artifact_names=artifact, limit=limit, data=dataset, progress=progress)
    print_parity(report)
    if not report["passed"]:
        failed = [r["artifact"] for r in report["results"] if not r["passed"]]
        err.print(f"[bold red]parity failed[/] for {', '.join(failed)} (see {run / A.PARITY_JSON})", highlight=False)
        raise typer.Exit(EXIT_THRESHOLD)


@user_errors
def report(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Run directories or bench.json files (default: runs/latest). Several: merged side by side.",
            show_default=False,
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where a merged report goes (default: ./report-merged).", file_okay=False),
    ] = None,
) -> None:
    """Write report.md and report.html (charts embedded) from a run's JSON files, or merge several machines.

    Examples: [b]edgekit report[/]   [b]edgekit report runs/latest pi/bench.json --out compare/[/]
    """
    from toolkit.run import layout as A
    from toolkit.run.pipeline import report_step

    inputs = inputs or []
    if len(inputs) <= 1 and out_dir is None and not (inputs and inputs[0].is_file()):
        run = A.resolve_run_dir(inputs[0] if inputs else None)
        with run_lock(run):
            md, html = report_step(run)
    else:
        from toolkit.report import merge_reports

        md, html = merge_reports(inputs, out_dir or Path("report-merged"))
    out.print(f"Wrote {md} and {html}", highlight=False)


@user_errors
def pipeline(
    runs_dir: RunsDirOpt = Path("runs"),
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Continue this interrupted run from its last completed step (same options; files checked by sha256).",
            rich_help_panel="Output",
            file_okay=False,
        ),
    ] = None,
    epochs: EpochsOpt = 10,
    batch_size: BatchSizeOpt = 200,
    seed: SeedOpt = 7,
    train_limit: TrainLimitOpt = None,
    data: DataOpt = None,
    allow_unverified: AllowUnverifiedOpt = False,
    formats: FormatOpt = None,
    precisions: PrecisionOpt = None,
    calibration_size: CalibOpt = 500,
    batch: BatchOpt = None,
    threads: ThreadsOpt = None,
    xnnpack: XnnpackOpt = None,
    ort_opt: OrtOptOpt = None,
    min_runs: MinRunsOpt = None,
    min_seconds: MinSecondsOpt = None,
    warmup_runs: WarmupOpt = None,
    quick: QuickOpt = False,
    peak: PeakOpt = True,
) -> None:
    """Train → export → parity → bench → report into a new runs/<UTC time>, and point runs/latest at it.

    Exits 3 if any artifact fails parity (the run is still completed and reported).
    Example: [b]edgekit pipeline[/]   or, for a quick look: [b]edgekit pipeline --epochs 1 --quick[/]
    After an interruption: [b]edgekit pipeline --resume runs/latest[/]
    """
    from dataclasses import asdict

    from toolkit.model.reference import TrainConfig
    from toolkit.run import layout as A
    from toolkit.run.pipeline import load_run_options, run_pipeline
    from toolkit.steps.export import parse_targets

    t0 = time.perf_counter()
    if resume is not None:
        run = A.resolve_run_dir(resume)
        options = load_run_options(run)
    else:
        config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, train_limit=train_limit)
        config.validate()
        settings = BenchOptions(batch, threads, xnnpack, ort_opt, min_runs, min_seconds, warmup_runs, quick, peak)
        options = {
            "train": asdict(config),
            "targets": [[f.value, p.value] for f, p in parse_targets(formats, precisions)],
            "calibration_size": calibration_size,
            "bench": settings.settings().to_dict(),
            "data": data,
            "allow_unverified": allow_unverified,
        }
    dataset = _load_data(options.get("data"), bool(options.get("allow_unverified")))
    if resume is None:
        run = A.new_run_dir(runs_dir)
        A.point_latest(run)  # at once, so `--resume runs/latest` finds an interrupted run
    out.print(f"{'Resuming' if resume else 'Run directory:'} [bold]{escape(str(run))}[/]", highlight=False)
    with run_lock(run), progress_bar() as progress:
        result = run_pipeline(run, options, data=dataset, progress=progress, resume=resume is not None)
    A.point_latest(run)
    if result["skipped"]:
        out.print(f"Kept from the interrupted run: {', '.join(result['skipped'])}", highlight=False)
    summary, parity_report, bench_report = result["train"], result["parity"], result["bench"]
    out.print(
        f"Keras reference: test accuracy [bold]{100 * summary['test_accuracy']:.2f} %[/] "
        f"after {summary['config']['epochs']} epoch(s)",
        highlight=False,
    )
    print_parity(parity_report)
    print_bench(bench_report)
    print_recommendation(parity_report, bench_report)
    total = time.perf_counter() - t0
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in result["timings"].items())
    md, html = result["report"]
    out.print(f"Done in {total:.0f} s ({steps}). Report: [bold]{md}[/] and {html}", highlight=False)
    if not parity_report["passed"]:
        err.print("[bold red]parity failed[/] for at least one artifact; see the report.")
        raise typer.Exit(EXIT_THRESHOLD)
