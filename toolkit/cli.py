"""The `edgekit` command line: train, export, parity, bench, report and the whole pipeline."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from exporters.base import NEEDS_CALIBRATION, ExportFormat, Precision
from toolkit import __version__
from toolkit.console import EXIT_THRESHOLD, err, out, progress_bar, rich_table, user_errors

app = typer.Typer(
    name="edgekit",
    help="Train the reference MNIST CNN, quantize and export it to TFLite and ONNX, check accuracy parity "
    "and measure latency across Keras, LiteRT and ONNX Runtime.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
def version_callback(value: bool) -> None:
    if value:
        out.print(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """edgekit: from a Keras CNN to checked, measured TFLite and ONNX artifacts."""


# -- shared options ------------------------------------------------------------------------------
RunDirArg = Annotated[
    Path | None,
    typer.Argument(help="Run directory (default: runs/latest).", show_default=False),
]
RunsDirOpt = Annotated[
    Path, typer.Option("--runs-dir", help="Where new run directories are created.", rich_help_panel="Output")
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="MNIST source: [b]shipped[/] (default), [b]keras-cache[/], a Keras .npz file, or a folder of IDX files.",
        rich_help_panel="Data",
    ),
]
AllowUnverifiedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-unverified",
        help="Accept data whose checksums differ from MNIST's (prints a warning).",
        rich_help_panel="Data",
    ),
]
EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.", rich_help_panel="Training")]
BatchSizeOpt = Annotated[
    int, typer.Option("--batch-size", min=1, help="Training batch size.", rich_help_panel="Training")
]
SeedOpt = Annotated[
    int,
    typer.Option("--seed", help="Random seed (weights, shuffling, calibration sample).", rich_help_panel="Training"),
]
TrainLimitOpt = Annotated[
    int | None,
    typer.Option(
        "--train-limit",
        min=1,
        help="Train on the first N training images only (quick runs).",
        rich_help_panel="Training",
    ),
]
FormatOpt = Annotated[
    list[ExportFormat] | None,
    typer.Option("--format", "-f", help="Export format; repeat for several (default: all).", rich_help_panel="Export"),
]
PrecisionOpt = Annotated[
    list[Precision] | None,
    typer.Option(
        "--precision",
        "-p",
        help="Precision; repeat for several (default: all each format offers).",
        rich_help_panel="Export",
    ),
]
CalibOpt = Annotated[
    int,
    typer.Option("--calibration-size", min=1, help="Training images used to calibrate int8.", rich_help_panel="Export"),
]
ArtifactOpt = Annotated[
    list[str] | None,
    typer.Option("--artifact", "-a", help="Only this artifact (e.g. tflite-int8); repeat for several (default: all)."),
]
BatchOpt = Annotated[
    list[int] | None,
    typer.Option("--batch", "-b", min=1, help="Batch size; repeat (default: 1 and 32).", rich_help_panel="Benchmark"),
]
ThreadsOpt = Annotated[
    list[int] | None,
    typer.Option(
        "--threads", "-t", min=1, help="Thread count; repeat (default: 1 and all cores).", rich_help_panel="Benchmark"
    ),
]
MinRunsOpt = Annotated[
    int | None,
    typer.Option("--min-runs", min=1, help="Timed runs at least (default 1000).", rich_help_panel="Benchmark"),
]
MinSecondsOpt = Annotated[
    float | None,
    typer.Option("--min-seconds", min=0.0, help="Timed seconds at least (default 2).", rich_help_panel="Benchmark"),
]
WarmupOpt = Annotated[
    int | None,
    typer.Option("--warmup-runs", min=0, help="Untimed warm-up runs (default 10).", rich_help_panel="Benchmark"),
]
QuickOpt = Annotated[
    bool,
    typer.Option(
        "--quick",
        help="Short benchmark (100 runs, 0.2 s): a fast look, not a measurement.",
        rich_help_panel="Benchmark",
    ),
]


def _load_data(source: str | None, allow_unverified: bool) -> Any:
    from toolkit.data import load_mnist

    data = load_mnist(source, allow_unverified=allow_unverified)
    for warning in data.warnings:
        err.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False)
    return data


def _bench_settings(
    batch: list[int] | None,
    threads: list[int] | None,
    min_runs: int | None,
    min_seconds: float | None,
    warmup: int | None,
    quick: bool,
) -> Any:
    from toolkit.pipeline import QUICK_BENCH, BenchSettings

    base = QUICK_BENCH if quick else BenchSettings()
    return BenchSettings(
        batch_sizes=tuple(dict.fromkeys(batch)) if batch else base.batch_sizes,
        threads=tuple(dict.fromkeys(threads)) if threads else base.threads,
        warmup_runs=base.warmup_runs if warmup is None else warmup,
        min_runs=min_runs or base.min_runs,
        min_seconds=base.min_seconds if min_seconds is None else min_seconds,
        max_seconds=base.max_seconds,
    )


# -- printing ------------------------------------------------------------------------------------
def print_parity(parity: dict[str, Any]) -> None:
    from toolkit.report import parity_rows

    header, rows = parity_rows(parity)
    keep = [0, 2, 3, 4, 5, 8]  # artifact, accuracy, Δ, agreement, max |Δp|, result
    out.print(
        rich_table(
            f"Parity ({parity['reference']['images']:,} test images)",
            [header[i] for i in keep],
            [[r[i] for i in keep] for r in rows],
        )
    )


def print_bench(bench: dict[str, Any]) -> None:
    from toolkit.report import latency_pivot

    header, rows = latency_pivot(bench)
    out.print(rich_table("Latency (p50 ms)", header, rows))


def print_recommendation(parity: dict[str, Any] | None, bench: dict[str, Any] | None) -> None:
    from toolkit.report import recommend

    rec = recommend(parity, bench)
    if rec:
        out.print(
            f"[bold green]Recommended:[/] {rec['artifact']} on {rec['runtime']} "
            f"(fastest that passed parity: b{rec['batch_size']} p50 {rec['p50_ms']:.3f} ms, "
            f"{rec['threads']} thread(s), accuracy {100 * rec['accuracy']:.2f} %)",
            highlight=False,
        )


# -- commands ------------------------------------------------------------------------------------
@app.command()
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
    from toolkit import artifacts as A
    from toolkit.model import TrainConfig
    from toolkit.pipeline import train_step

    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, train_limit=train_limit)
    config.validate()
    dataset = _load_data(data, allow_unverified)
    run_dir = _make_run_dir(out_dir, runs_dir)
    with progress_bar() as progress:
        summary = train_step(run_dir, dataset, config, progress)
    if out_dir is None:
        A.point_latest(run_dir)
    out.print(
        f"Trained in {summary['wall_seconds']:.1f} s: test accuracy [bold]{100 * summary['test_accuracy']:.2f} %[/] "
        f"→ {run_dir / A.MODEL_FILE}",
        highlight=False,
    )


def _make_run_dir(out_dir: Path | None, runs_dir: Path) -> Path:
    from toolkit import artifacts as A
    from toolkit.errors import RunDirError

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


@app.command()
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
    from toolkit import artifacts as A
    from toolkit.pipeline import export_step, parse_targets

    run = A.resolve_run_dir(run_dir)
    targets = parse_targets(formats, precisions)
    dataset = _load_data(data, allow_unverified) if any(p in NEEDS_CALIBRATION for _, p in targets) else None
    with progress_bar() as progress:
        manifest = export_step(
            run, targets, data=dataset, calibration_size=calibration_size, seed=seed, progress=progress
        )
    rows = [[a["name"], a["precision"], f"{a['size_bytes']:,}", a["sha256"][:12]] for a in manifest["artifacts"]]
    out.print(rich_table(f"Artifacts in {run}", ["artifact", "precision", "bytes", "sha256"], rows))


@app.command()
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
    from toolkit import artifacts as A
    from toolkit.pipeline import parity_step

    run = A.resolve_run_dir(run_dir)
    dataset = _load_data(data, allow_unverified)
    with progress_bar() as progress:
        report = parity_step(run, artifact_names=artifact, limit=limit, data=dataset, progress=progress)
    print_parity(report)
    if not report["passed"]:
        failed = [r["artifact"] for r in report["results"] if not r["passed"]]
        err.print(f"[bold red]parity failed[/] for {', '.join(failed)} (see {run / A.PARITY_JSON})", highlight=False)
        raise typer.Exit(EXIT_THRESHOLD)


@app.command()
@user_errors
def bench(
    run_dir: RunDirArg = None,
    artifact: ArtifactOpt = None,
    batch: BatchOpt = None,
    threads: ThreadsOpt = None,
    min_runs: MinRunsOpt = None,
    min_seconds: MinSecondsOpt = None,
    warmup_runs: WarmupOpt = None,
    quick: QuickOpt = False,
) -> None:
    """Measure latency of every artifact on its runtime, one fresh process per configuration; writes bench.json.

    Example: [b]edgekit bench runs/latest -a tflite-int8 -b 1 -t 1[/]
    """
    from toolkit import artifacts as A
    from toolkit.pipeline import bench_step

    run = A.resolve_run_dir(run_dir)
    settings = _bench_settings(batch, threads, min_runs, min_seconds, warmup_runs, quick)
    with progress_bar() as progress:
        report = bench_step(run, settings, artifact_names=artifact, progress=progress)
    print_bench(report)
    for s in report.get("skipped", []):
        err.print(f"[yellow]skipped[/] {s['artifact']}: {s['reason']}", highlight=False)
    out.print(f"Wrote {run / A.BENCH_JSON}", highlight=False)


@app.command()
@user_errors
def report(run_dir: RunDirArg = None) -> None:
    """Write report.md (training, artifacts, parity, latency, recommendation) from the run's JSON files.

    Example: [b]edgekit report runs/latest[/]
    """
    from toolkit import artifacts as A
    from toolkit.pipeline import report_step

    run = A.resolve_run_dir(run_dir)
    path = report_step(run)
    out.print(f"Wrote {path}", highlight=False)


@app.command()
@user_errors
def pipeline(
    runs_dir: RunsDirOpt = Path("runs"),
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
    min_runs: MinRunsOpt = None,
    min_seconds: MinSecondsOpt = None,
    warmup_runs: WarmupOpt = None,
    quick: QuickOpt = False,
) -> None:
    """Train → export → parity → bench → report into a new runs/<UTC time>, and point runs/latest at it.

    Exits 3 if any artifact fails parity (the run is still completed and reported).
    Example: [b]edgekit pipeline[/]   or, for a quick look: [b]edgekit pipeline --epochs 1 --quick[/]
    """
    from toolkit import artifacts as A
    from toolkit.model import TrainConfig
    from toolkit.pipeline import bench_step, export_step, parity_step, parse_targets, report_step, train_step

    t0 = time.perf_counter()
    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, train_limit=train_limit)
    config.validate()
    targets = parse_targets(formats, precisions)
    settings = _bench_settings(batch, threads, min_runs, min_seconds, warmup_runs, quick)
    settings.validate()
    dataset = _load_data(data, allow_unverified)
    run = A.new_run_dir(runs_dir)
    out.print(f"Run directory: [bold]{run}[/]", highlight=False)
    timings: dict[str, float] = {}
    with progress_bar() as progress:
        s = time.perf_counter()
        summary = train_step(run, dataset, config, progress)
        A.point_latest(run)
        timings["train"] = time.perf_counter() - s
        s = time.perf_counter()
        export_step(run, targets, data=dataset, calibration_size=calibration_size, seed=seed, progress=progress)
        timings["export"] = time.perf_counter() - s
        s = time.perf_counter()
        parity_report = parity_step(run, data=dataset, progress=progress)
        timings["parity"] = time.perf_counter() - s
        s = time.perf_counter()
        bench_report = bench_step(run, settings, data=dataset, progress=progress)
        timings["bench"] = time.perf_counter() - s
    report_path = report_step(run)
    out.print(
        f"Keras reference: test accuracy [bold]{100 * summary['test_accuracy']:.2f} %[/] after {epochs} epoch(s)",
        highlight=False,
    )
    print_parity(parity_report)
    print_bench(bench_report)
    print_recommendation(parity_report, bench_report)
    total = time.perf_counter() - t0
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    out.print(f"Done in {total:.0f} s ({steps}). Report: [bold]{report_path}[/]", highlight=False)
    if not parity_report["passed"]:
        err.print("[bold red]parity failed[/] for at least one artifact; see the report.")
        raise typer.Exit(EXIT_THRESHOLD)


def _register_command_modules() -> None:
    """Commands that live in their own modules (toolkit/commands/*) add themselves to `app`."""
    from toolkit.commands import register_all

    register_all(app)


_register_command_modules()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
