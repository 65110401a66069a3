"""The `edgekit` command line: train, export, parity, bench, report and the whole pipeline."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from exporters.base import NEEDS_CALIBRATION, ExportFormat, Precision
from toolkit import __version__
from toolkit.console import EXIT_THRESHOLD, err, out, progress_bar, rich_table, user_errors
from toolkit.runlock import run_lock

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
    typer.Option("--min-runs", min=1, help="Timed runs at least (default 1024).", rich_help_panel="Benchmark"),
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
        help="Short benchmark (128 runs, 0.2 s): a fast look, not a measurement.",
        rich_help_panel="Benchmark",
    ),
]


class OnOff(str, Enum):
    ON = "on"
    OFF = "off"


class OrtOpt(str, Enum):
    DISABLE = "disable"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"


XnnpackOpt = Annotated[
    list[OnOff] | None,
    typer.Option(
        "--xnnpack", help="TFLite with the XNNPACK delegate on and/or off; repeat to sweep (default: on).",
        rich_help_panel="Benchmark",
    ),
]  # fmt: skip
OrtOptOpt = Annotated[
    list[OrtOpt] | None,
    typer.Option(
        "--ort-opt", help="ONNX Runtime graph optimisation level; repeat to sweep (default: all).",
        rich_help_panel="Benchmark",
    ),
]  # fmt: skip
PeakOpt = Annotated[
    bool,
    typer.Option(
        "--peak/--no-peak", help="Measure this machine's peak float32 rate (matrix multiply) for % of peak.",
        rich_help_panel="Benchmark",
    ),
]  # fmt: skip


@dataclass
class BenchOptions:
    """The benchmark options shared by `bench` and `pipeline`."""

    batch: list[int] | None = None
    threads: list[int] | None = None
    xnnpack: list[OnOff] | None = None
    ort_opt: list[OrtOpt] | None = None
    min_runs: int | None = None
    min_seconds: float | None = None
    warmup_runs: int | None = None
    quick: bool = False
    peak: bool = True

    def settings(self) -> Any:
        from toolkit.bench import QUICK_BENCH, BenchSettings

        base = QUICK_BENCH if self.quick else BenchSettings()
        settings = BenchSettings(
            batch_sizes=tuple(dict.fromkeys(self.batch)) if self.batch else base.batch_sizes,
            threads=tuple(dict.fromkeys(self.threads)) if self.threads else base.threads,
            xnnpack=tuple(x is OnOff.ON for x in dict.fromkeys(self.xnnpack)) if self.xnnpack else base.xnnpack,
            ort_optimization=tuple(o.value for o in dict.fromkeys(self.ort_opt))
            if self.ort_opt
            else base.ort_optimization,
            warmup_runs=base.warmup_runs if self.warmup_runs is None else self.warmup_runs,
            warmup_seconds=base.warmup_seconds,
            min_runs=self.min_runs or base.min_runs,
            min_seconds=base.min_seconds if self.min_seconds is None else self.min_seconds,
            max_seconds=base.max_seconds,
            measure_peak=self.peak,
        )
        settings.validate()
        return settings


def _load_data(source: str | None, allow_unverified: bool) -> Any:
    from toolkit.data import load_mnist

    data = load_mnist(source, allow_unverified=allow_unverified)
    for warning in data.warnings:
        err.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False)
    return data


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
    for s in bench.get("skipped", []):
        err.print(f"[yellow]skipped[/] {escape(s['artifact'])}: {escape(s['reason'])}", highlight=False)
    noisy = bench.get("noisy", [])
    if noisy:
        err.print(f"[yellow]noisy[/]: {len(noisy)} configuration(s) varied during timing; see the report.")
    env = bench.get("environment", {})
    if env.get("throttled"):
        flags = ", ".join(env.get("throttle_flags") or [])
        err.print(f"[bold yellow]warning:[/] the CPU was throttled during this run ({escape(flags)}).")


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
    with run_lock(run), progress_bar() as progress:
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
    with run_lock(run), progress_bar() as progress:
        report = parity_step(run, artifact_names=artifact, limit=limit, data=dataset, progress=progress)
    print_parity(report)
    if not report["passed"]:
        failed = [r["artifact"] for r in report["results"] if not r["passed"]]
        err.print(f"[bold red]parity failed[/] for {', '.join(failed)} (see {run / A.PARITY_JSON})", highlight=False)
        raise typer.Exit(EXIT_THRESHOLD)


class GateMetric(str, Enum):
    P50 = "p50"
    P90 = "p90"


GatePanel = "Regression gate"
BaselineOpt = Annotated[
    Path | None,
    typer.Option(
        "--baseline",
        help="An earlier bench.json (or its run directory) to compare with; regressions exit 3.",
        rich_help_panel=GatePanel,
    ),
]
MaxRegressionOpt = Annotated[
    str, typer.Option("--max-regression", help="Allowed latency increase.", rich_help_panel=GatePanel)
]
MaxAccuracyDropOpt = Annotated[
    str, typer.Option("--max-accuracy-drop", help="Allowed accuracy drop in points.", rich_help_panel=GatePanel)
]
MaxSizeOpt = Annotated[
    str, typer.Option("--max-size-increase", help="Allowed model size increase.", rich_help_panel=GatePanel)
]
MaxRssOpt = Annotated[
    str, typer.Option("--max-rss-increase", help="Allowed peak RSS increase.", rich_help_panel=GatePanel)
]
GateMetricOpt = Annotated[
    GateMetric, typer.Option("--gate-metric", help="Latency statistic the gate compares.", rich_help_panel=GatePanel)
]


@app.command()
@user_errors
def bench(
    run_dir: RunDirArg = None,
    artifact: ArtifactOpt = None,
    batch: BatchOpt = None,
    threads: ThreadsOpt = None,
    xnnpack: XnnpackOpt = None,
    ort_opt: OrtOptOpt = None,
    min_runs: MinRunsOpt = None,
    min_seconds: MinSecondsOpt = None,
    warmup_runs: WarmupOpt = None,
    quick: QuickOpt = False,
    peak: PeakOpt = True,
    remote: Annotated[
        list[str] | None,
        typer.Option(
            "--remote",
            help="Run the benchmark on this board over SSH (user@host, as your ssh config knows it); repeat for "
            "several, in parallel. Results land in RUN_DIR/remote/<host>/bench.json.",
            rich_help_panel="Remote boards",
        ),
    ] = None,
    ssh_config: Annotated[
        Path | None,
        typer.Option("--ssh-config", help="ssh client config file (ssh -F).", rich_help_panel="Remote boards"),
    ] = None,
    remote_dir: Annotated[
        str | None,
        typer.Option(
            "--remote-dir",
            help="Folder on the board (default ~/.cache/edgekit-remote).",
            rich_help_panel="Remote boards",
        ),
    ] = None,
    baseline: BaselineOpt = None,
    max_regression: MaxRegressionOpt = "10%",
    max_accuracy_drop: MaxAccuracyDropOpt = "0.5",
    max_size_increase: MaxSizeOpt = "10%",
    max_rss_increase: MaxRssOpt = "25%",
    gate_metric: GateMetricOpt = GateMetric.P50,
) -> None:
    """Measure latency of every artifact on its runtime, one fresh process per configuration; writes bench.json.

    Examples: [b]edgekit bench runs/latest -a tflite-int8 -b 1 -t 1[/]
    or, as a CI gate: [b]edgekit bench --baseline baseline/bench.json --max-regression 10%[/] (exit 3 on a regression)
    """
    from toolkit import artifacts as A
    from toolkit.bench import bench_step

    run = A.resolve_run_dir(run_dir)
    gate = _gate_setup(baseline, max_regression, max_accuracy_drop, max_size_increase, max_rss_increase, gate_metric)
    options = BenchOptions(batch, threads, xnnpack, ort_opt, min_runs, min_seconds, warmup_runs, quick, peak)
    settings = options.settings()
    if remote:
        _bench_remote(run, remote, options, artifact, ssh_config, remote_dir, gate)
        return
    with run_lock(run), progress_bar() as progress:
        report = bench_step(run, settings, artifact_names=artifact, progress=progress)
    print_bench(report)
    out.print(f"Wrote {run / A.BENCH_JSON}", highlight=False)
    if gate is not None:
        _run_gate(run, report, *gate)


def _bench_remote(
    run: Path,
    hosts: list[str],
    options: BenchOptions,
    artifacts: list[str] | None,
    ssh_config: Path | None,
    remote_dir: str | None,
    gate: tuple[dict[str, Any], Path, Any] | None,
) -> None:
    """`edgekit bench --remote`: the same benchmark on each board, fetched into RUN_DIR/remote/<host>/."""
    from toolkit import artifacts as A
    from toolkit.device.remote import RemoteFailed, remote_bench
    from toolkit.device.ssh import SshSettings
    from toolkit.pipeline import report_step

    args: list[str] = []
    for name in artifacts or []:
        args += ["-a", name]
    for b in options.batch or []:
        args += ["-b", str(b)]
    for t in options.threads or []:
        args += ["-t", str(t)]
    for x in options.xnnpack or []:
        args += ["--xnnpack", x.value]
    for o in options.ort_opt or []:
        args += ["--ort-opt", o.value]
    if options.min_runs is not None:
        args += ["--min-runs", str(options.min_runs)]
    if options.min_seconds is not None:
        args += ["--min-seconds", str(options.min_seconds)]
    if options.warmup_runs is not None:
        args += ["--warmup-runs", str(options.warmup_runs)]
    args += ["--quick"] if options.quick else []
    args += [] if options.peak else ["--no-peak"]
    settings = SshSettings.from_env(config=ssh_config, remote_dir=remote_dir)
    failed: RemoteFailed | None = None
    try:
        paths = remote_bench(run, hosts, args, settings=settings)
    except RemoteFailed as exc:
        paths, failed = exc.paths, exc
    for host, path in paths.items():
        report = A.read_json(path)
        out.print(f"[bold]{escape(host)}[/]: {escape(str(path))}", highlight=False)
        print_bench(report)
        if gate is not None:
            _run_gate(path.parent, report, *gate)
    with run_lock(run):
        md, html = report_step(run)
    out.print(f"Updated {md} and {html} with the boards' results", highlight=False)
    if failed is not None:
        raise failed


def _gate_setup(
    baseline: Path | None, latency: str, accuracy: str, size: str, rss: str, metric: GateMetric
) -> tuple[dict[str, Any], Path, Any] | None:
    """Load the baseline and limits before benchmarking, so a bad option fails in a second, not after minutes."""
    if baseline is None:
        return None
    from benchmarks.gate import Limits, parse_limit
    from toolkit import artifacts as A
    from toolkit.errors import ToolkitError

    path = baseline / A.BENCH_JSON if baseline.is_dir() else baseline
    if not path.is_file():
        raise ToolkitError(f"--baseline {baseline} has no bench.json; pass a bench.json or a run directory.")
    doc = A.read_json(path)
    if not isinstance(doc.get("results"), list):
        raise ToolkitError(f"--baseline {path} is not an edgekit bench.json (no results list).")
    limits = Limits(
        max_latency_regression=parse_limit(latency, option="--max-regression") / 100,
        max_accuracy_drop_pt=parse_limit(accuracy, option="--max-accuracy-drop"),
        max_size_increase=parse_limit(size, option="--max-size-increase") / 100,
        max_rss_increase=parse_limit(rss, option="--max-rss-increase") / 100,
        metric=f"{metric.value}_ms",
    )
    return doc, path, limits


def _run_gate(run: Path, report: dict[str, Any], baseline: dict[str, Any], path: Path, limits: Any) -> None:
    from dataclasses import asdict

    from benchmarks.gate import compare
    from exporters.files import write_json_atomic

    regressions = compare(report, baseline, limits)
    write_json_atomic(
        run / "gate.json",
        {
            "schema_version": 1,
            "baseline": str(path),
            "limits": asdict(limits),
            "passed": not regressions,
            "regressions": [asdict(r) | {"message": r.describe()} for r in regressions],
        },
    )
    if not regressions:
        out.print(f"[bold green]gate passed[/]: no regression against {escape(str(path))}", highlight=False)
        return
    for r in regressions:
        err.print(f"[bold red]regression[/] {escape(r.describe())}", highlight=False)
    err.print(f"[bold red]gate failed[/]: {len(regressions)} regression(s) against {escape(str(path))}")
    raise typer.Exit(EXIT_THRESHOLD)


@app.command()
@user_errors
def gate(
    current: Annotated[Path, typer.Argument(help="The bench.json (or run directory) to check.", show_default=False)],
    baseline: BaselineOpt = None,
    max_regression: MaxRegressionOpt = "10%",
    max_accuracy_drop: MaxAccuracyDropOpt = "0.5",
    max_size_increase: MaxSizeOpt = "10%",
    max_rss_increase: MaxRssOpt = "25%",
    gate_metric: GateMetricOpt = GateMetric.P50,
) -> None:
    """Compare an existing bench.json with a baseline without measuring again; exit 3 on a regression.

    Example: [b]edgekit gate runs/latest --baseline main/bench.json --max-regression 10%[/]
    """
    from toolkit import artifacts as A
    from toolkit.errors import ToolkitError

    if baseline is None:
        raise ToolkitError("gate needs --baseline: the bench.json to compare with.")
    setup = _gate_setup(baseline, max_regression, max_accuracy_drop, max_size_increase, max_rss_increase, gate_metric)
    assert setup is not None
    path = current / A.BENCH_JSON if current.is_dir() else current
    if not path.is_file():
        raise ToolkitError(f"{current} has no bench.json; run `edgekit bench` first or pass a bench.json.")
    report = A.read_json(path)
    if not isinstance(report.get("results"), list):
        raise ToolkitError(f"{path} is not an edgekit bench.json (no results list).")
    _run_gate(path.parent, report, *setup)


@app.command()
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
    from toolkit import artifacts as A
    from toolkit.pipeline import report_step

    inputs = inputs or []
    if len(inputs) <= 1 and out_dir is None and not (inputs and inputs[0].is_file()):
        run = A.resolve_run_dir(inputs[0] if inputs else None)
        with run_lock(run):
            md, html = report_step(run)
    else:
        from toolkit.report import merge_reports

        md, html = merge_reports(inputs, out_dir or Path("report-merged"))
    out.print(f"Wrote {md} and {html}", highlight=False)


@app.command()
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

    from toolkit import artifacts as A
    from toolkit.model import TrainConfig
    from toolkit.pipeline import load_run_options, parse_targets, run_pipeline

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


def _register_command_modules() -> None:
    """Commands that live in their own modules (toolkit/commands/*) add themselves to `app`."""
    from toolkit.commands import register_all

    register_all(app)


_register_command_modules()


def main() -> None:
    """Console-script entry point."""
    from toolkit.console import install_interrupt_handling

    install_interrupt_handling()
    app()


if __name__ == "__main__":
    main()
