"""Options shared by several commands (Typer `Annotated` aliases) and the benchmark option bundle."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from exporters.base import ExportFormat, Precision
from exporters.int8_recipe import Int8Target
from runtimes.ort_runner import GraphOptimization

if TYPE_CHECKING:
    from toolkit.run.documents import BenchOptions

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
        help="Dataset: [b]shipped[/] MNIST (default; or [b]keras-cache[/], an MNIST .npz or IDX folder); with your "
        "own model also an .npz (x_train/y_train/x_test/y_test, or x/y) or a folder of images in one sub-folder "
        "per class. A run made with --model remembers its data.",
        rich_help_panel="Data",
    ),
]
ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model",
        help="Your own Keras model (.keras, legacy .h5, or a SavedModel folder) instead of the reference CNN; "
        "skips training. One input (image [N,H,W,C] or vector [N,F]) and one output.",
        rich_help_panel="Your own model",
        show_default=False,
    ),
]
OutputKindOpt = Annotated[
    str | None,
    typer.Option(
        "--output",
        help="What the model outputs: [b]probabilities[/], [b]logits[/] (parity compares softmax of both sides) or "
        "[b]values[/] (regression). Default: detected (softmax → probabilities, one unit → values, else logits).",
        rich_help_panel="Your own model",
        show_default=False,
    ),
]
CustomObjectsOpt = Annotated[
    Path | None,
    typer.Option(
        "--custom-objects",
        help="Python file defining the model's custom layers (registered with "
        "@keras.saving.register_keras_serializable); copied into the run.",
        rich_help_panel="Your own model",
        show_default=False,
    ),
]
InputScaleOpt = Annotated[
    str | None,
    typer.Option(
        "--input-scale",
        help="Multiply the stored data by this before it reaches the model, e.g. 1/255 for a model trained on "
        "pixels/255 without a Rescaling layer (default: 1; MNIST always /255).",
        rich_help_panel="Your own model",
        show_default=False,
    ),
]


def parse_scale(text: str | None) -> float | None:
    """`--input-scale`: a number or a fraction such as 1/255."""
    from toolkit.errors import ToolkitError

    if text is None:
        return None
    try:
        num, _, den = text.partition("/")
        value = float(num) / (float(den) if den else 1.0)
    except (ValueError, ZeroDivisionError):
        raise ToolkitError(f"--input-scale {text!r} is not a number; give e.g. 0.5 or 1/255.") from None
    if not value > 0:
        raise ToolkitError(f"--input-scale must be positive, got {text}.")
    return value


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
Int8TargetOpt = Annotated[
    Int8Target,
    typer.Option(
        "--target",
        help="The CPU class the int8 exports are for: [b]portable[/] (7-bit ONNX weights: the same answers on every "
        "x86-64 and Arm CPU), [b]x86-vnni[/] or [b]arm64[/] (full 8-bit weights, that class's activation type; other "
        "answers on x86-64 without VNNI). It picks the ONNX int8 recipe (recorded in manifest.json); TFLite files "
        "are the same for all.",
        rich_help_panel="Export",
    ),
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


OrtOpt = GraphOptimization  # the one list of ONNX Runtime levels lives beside the runner


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


def bench_settings(
    batch: list[int] | None = None,
    threads: list[int] | None = None,
    xnnpack: list[OnOff] | None = None,
    ort_opt: list[OrtOpt] | None = None,
    min_runs: int | None = None,
    min_seconds: float | None = None,
    warmup_runs: int | None = None,
    quick: bool = False,
    peak: bool = True,
) -> BenchOptions:
    """The benchmark options shared by `bench` and `pipeline`, as the settings `toolkit.bench` takes (checked)."""
    from toolkit.steps.bench_settings import QUICK_BENCH, BenchSettings

    base = QUICK_BENCH if quick else BenchSettings()
    settings = BenchSettings(
        batch_sizes=list(dict.fromkeys(batch)) if batch else base.batch_sizes,
        threads=list(dict.fromkeys(threads)) if threads else base.threads,
        xnnpack=[x is OnOff.ON for x in dict.fromkeys(xnnpack)] if xnnpack else base.xnnpack,
        ort_optimization=[o.value for o in dict.fromkeys(ort_opt)] if ort_opt else base.ort_optimization,
        warmup_runs=base.warmup_runs if warmup_runs is None else warmup_runs,
        warmup_seconds=base.warmup_seconds,
        min_runs=min_runs or base.min_runs,
        min_seconds=base.min_seconds if min_seconds is None else min_seconds,
        max_seconds=base.max_seconds,
        measure_peak=peak,
    )
    settings.check()
    return settings


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
AllowOtherCpuOpt = Annotated[
    bool,
    typer.Option(
        "--allow-other-cpu",
        help="Compare with a baseline measured on another instruction-set class (e.g. AVX2 vs AVX-512 VNNI); "
        "refused by default: there a difference is not a regression.",
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
