"""The options several `edgekit` commands share, each declared once (Typer `Annotated` aliases); the run directory.

One name, one meaning: an option keeps its flags, help text and value type on every command that takes it
(tests/test_cli_options.py checks it; docs/cli-options.md lists every name). Where commands differ only in
what they do without the option, one `OptionSpec` makes an alias per default (`typer_option`), so the help
text cannot drift. An option of one command only stays beside that command; `predict`'s are in
`toolkit.cli.specs`, which its fast path reads without Typer. `resolve_run` and `run_to_write` are the one
way a command finds or makes its run directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from exporters.base import ExportFormat, Precision
from exporters.int8_recipe import Int8Target
from runtimes.ort_runner import GraphOptimization
from toolkit.cli.specs import ARTIFACT, THREADS, OptionSpec
from toolkit.remote.ssh import DEFAULT_REMOTE_DIR

if TYPE_CHECKING:
    from toolkit.run.documents import BenchOptions


def typer_option(spec: OptionSpec, **display: Any) -> Any:
    """The `typer.Option` of a spec; `display` sets only how help shows it (`show_default`, `rich_help_panel`)."""
    decls = [f"{spec.flags[0]}/{spec.negative}", *spec.flags[1:]] if spec.negative else list(spec.flags)
    settings = {"min": spec.min, "max": spec.max, "metavar": spec.metavar, "show_default": spec.show_default}
    kwargs: dict[str, Any] = {k: v for k, v in settings.items() if v is not None}
    if spec.dir_only:
        kwargs["file_okay"] = False
    return typer.Option(*decls, help=spec.help, **{**kwargs, **display})


# -- the run directory ---------------------------------------------------------------------------
RUNS_DIR = Path("runs")
RunDirArg = Annotated[
    Path | None,
    typer.Argument(help="Run directory (default: the one <runs-dir>/latest points at).", show_default=False),
]
RunsDirOpt = Annotated[
    Path,
    typer.Option(
        "--runs-dir",
        help="Folder of run directories: new runs are made in it, and its latest is the default RUN_DIR.",
        rich_help_panel="Output",
    ),
]


def resolve_run(run_dir: Path | None, runs_dir: Path) -> Path:
    """RUN_DIR as given, else the run `<runs-dir>/latest` points at; it must exist (one-line error otherwise)."""
    from toolkit.run.layout import resolve_run_dir

    return resolve_run_dir(run_dir, runs_dir)


@contextmanager
def run_to_write(run_dir: Path | None, runs_dir: Path) -> Iterator[Path]:
    """The run directory a command writes: RUN_DIR as given, else a new `<runs-dir>/<UTC time>`.

    A new run is pointed at by `<runs-dir>/latest` once the block succeeds; if the block fails before
    writing anything there, the empty folder is removed.
    """
    import toolkit
    from toolkit.run.layout import point_latest

    if run_dir is not None:
        yield run_dir
        return
    run = toolkit.new_run(runs_dir, point_latest=False)
    try:
        yield run
    except BaseException:
        if not any(run.iterdir()):
            run.rmdir()
        raise
    point_latest(run)


# -- output ---------------------------------------------------------------------------------------
OUT = OptionSpec(
    "out",
    ("--out", "-o"),
    "Where to write the command's output: a folder, or a file (the command's description says which).",
    kind=Path,
)
TrainOutOpt = Annotated[
    Path | None, typer_option(OUT, show_default="a new <runs-dir>/<UTC time>", rich_help_panel="Output")
]
ReportOutOpt = Annotated[
    Path | None,
    typer_option(OUT, show_default="the run directory; for several inputs report-merged", rich_help_panel="Output"),
]
BundleOutOpt = Annotated[Path, typer_option(OUT, show_default=False, rich_help_panel="Output")]
VerifyOutOpt = Annotated[
    Path | None,
    typer_option(
        OUT,
        show_default="verify.json in the bundle folder, or <name>.verify.json beside a .tar.gz; with --remote "
        "the folder <bundle name>.remote",
        rich_help_panel="Output",
    ),
]

# -- data and your own model ----------------------------------------------------------------------
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Dataset: [b]shipped[/] MNIST (default; or [b]keras-cache[/], an MNIST .npz or IDX folder); with your "
        "own model also an .npz (x_train/y_train/x_test/y_test, or x/y) or a folder of images in one sub-folder "
        "per class. A run made with --model remembers its data and uses it by default.",
        rich_help_panel="Data",
        show_default=False,
    ),
]
AllowUnverifiedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-unverified",
        help="Accept MNIST data whose checksums differ from the published files (prints a warning).",
        rich_help_panel="Data",
    ),
]
ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model",
        help="Your own Keras model (.keras, legacy .h5, or a SavedModel folder), ONNX file (.onnx: the reference "
        "is the file itself on ONNX Runtime; no TFLite) or fp32 TFLite file (.tflite: the reference is the file "
        "itself on LiteRT; ONNX only with -f onnx) instead of the reference CNN; skips training. One input "
        "(image [N,H,W,C] or, for ONNX and TFLite, [N,C,H,W]; or vector [N,F]) and one output.",
        rich_help_panel="Your own model",
        show_default=False,
    ),
]
OutputKindOpt = Annotated[
    str | None,
    typer.Option(
        "--output-kind",
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


# -- training -------------------------------------------------------------------------------------
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

# -- export ---------------------------------------------------------------------------------------
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
MAX_ACCURACY_DROP = OptionSpec(
    "max_accuracy_drop",
    ("--max-accuracy-drop",),
    "Accuracy budget in percentage points (0.5: from 99.0 % down to 98.5 %): the most accuracy may drop, "
    "against the reference (Keras, or an ONNX source's onnx-fp32) for the int8-mixed search, against the baseline "
    "for the gate.",
    kind=float,
    min=0,
)
ExportMaxAccuracyDropOpt = Annotated[
    float | None,
    typer_option(MAX_ACCURACY_DROP, show_default="no budget", rich_help_panel="Export"),
]
MinAgreementOpt = Annotated[
    float | None,
    typer.Option(
        "--min-agreement",
        help="Budget as top-1 agreement with the reference (0..1), alone or with --max-accuracy-drop.",
        rich_help_panel="Export",
    ),
]
BudgetImagesOpt = Annotated[
    int,
    typer.Option(
        "--budget-images", min=1, help="Test images the budget is judged on (the first N).", rich_help_panel="Export"
    ),
]

# -- which artifacts, which images ----------------------------------------------------------------
ArtifactsOpt = Annotated[list[str] | None, typer_option(ARTIFACT, show_default="all")]
QuantizedArtifactsOpt = Annotated[
    list[str] | None, typer_option(ARTIFACT, show_default="the quantized ones, or every export if none is")
]
Int8ArtifactsOpt = Annotated[list[str] | None, typer_option(ARTIFACT, show_default="every TFLite int8 artifact")]
BundleArtifactsOpt = Annotated[list[str] | None, typer_option(ARTIFACT, show_default="every non-Keras artifact")]
LIMIT = OptionSpec("limit", ("--limit", "-n"), "Use only the first N test images.", kind=int, min=1)
LimitOpt = Annotated[int | None, typer_option(LIMIT, show_default="all")]
DiagnoseLimitOpt = Annotated[int, typer_option(LIMIT)]
McuBoardsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--board",
        help="Build the firmware for this board's core and run it on QEMU (nano33ble, stm32f746g-disco, nrf5340dk, "
        "or all); repeat. Needs gcc-arm-none-eabi, libnewlib-arm-none-eabi, libstdc++-arm-none-eabi-newlib, "
        "qemu-system-arm.",
        show_default="host only",
    ),
]
EmulatedImagesOpt = Annotated[
    int,
    typer.Option("--emulated-images", min=1, help="With --board: the first N test images run on the emulated core."),
]

# -- benchmark ------------------------------------------------------------------------------------
BatchOpt = Annotated[
    list[int] | None,
    typer.Option("--batch", "-b", min=1, help="Batch size; repeat (default: 1 and 32).", rich_help_panel="Benchmark"),
]
ThreadsOpt = Annotated[
    list[int] | None, typer_option(THREADS, show_default="1 and all cores", rich_help_panel="Benchmark")
]
MinRunsOpt = Annotated[
    int | None,
    typer.Option(
        "--min-runs",
        min=1,
        help="Timed runs at least (default: 100 adaptive, 1024 fixed).",
        rich_help_panel="Benchmark",
    ),
]
MinSecondsOpt = Annotated[
    float | None,
    typer.Option(
        "--min-seconds",
        min=0.0,
        help="Timed seconds at least (default: 0.05 adaptive, 2 fixed).",
        rich_help_panel="Benchmark",
    ),
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


class Method(str, Enum):
    ADAPTIVE = "adaptive"
    FIXED = "fixed"


BenchMethodChoice = Method | None
MethodOpt = Annotated[
    Method | None,
    typer.Option(
        "--method",
        help="adaptive: measure each configuration until its median is known to --median-precision, and measure on "
        "only where the decision is; fixed: every configuration ≥ 1024 runs and ≥ 2 s. \\[default: adaptive]",
        rich_help_panel="Benchmark",
    ),
]
MedianPrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--median-precision",
        metavar="<percent>",
        help="adaptive: stop when the 95 % interval of the median is within ± this (e.g. 2% or 1). \\[default: 2%]",
        rich_help_panel="Benchmark",
    ),
]
KerasFullOpt = Annotated[
    bool,
    typer.Option(
        "--keras-full",
        help="adaptive: measure Keras rows at full length too (they are never the recommendation, and each "
        "thread count pays a TensorFlow start-up).",
        rich_help_panel="Benchmark",
    ),
]


ProcessesOpt = Annotated[
    int | None,
    typer.Option(
        "--processes",
        min=1,
        max=20,
        help="Fresh processes each leader of the recommendation is measured in; a tie is judged on how far apart "
        "they land (1: one process per configuration). \\[default: 3]",
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
        "--xnnpack",
        help="TFLite with the XNNPACK delegate on and/or off; repeat to sweep (default: on).",
        rich_help_panel="Benchmark",
    ),
]
OrtOptOpt = Annotated[
    list[OrtOpt] | None,
    typer.Option(
        "--ort-opt",
        help="ONNX Runtime graph optimisation level; repeat to sweep (default: all).",
        rich_help_panel="Benchmark",
    ),
]


class OvHint(str, Enum):
    LATENCY = "LATENCY"
    THROUGHPUT = "THROUGHPUT"


OvHintOpt = Annotated[
    list[OvHint] | None,
    typer.Option(
        "--ov-hint",
        help="OpenVINO performance hint; repeat to sweep (default: LATENCY, one stream).",
        rich_help_panel="Benchmark",
    ),
]


class ExtraRuntime(str, Enum):
    OPENVINO = "openvino"


ExtraRuntimeOpt = Annotated[
    list[ExtraRuntime] | None,
    typer.Option(
        "--runtime",
        "-r",
        help="Also export and measure for this runtime; repeat for several. openvino: IR fp32, fp16 and int8 (NNCF), "
        "converted from the onnx-fp32 export (pip install 'edgekit\\[openvino-int8]').",
        rich_help_panel="Export",
    ),
]


def with_runtimes(formats: list[ExportFormat] | None, runtimes: list[ExtraRuntime] | None) -> list[ExportFormat] | None:
    """The --format choice with each --runtime's format added (to the default formats when none was named)."""
    from exporters.base import DEFAULT_FORMATS

    if not runtimes:
        return formats
    chosen = list(formats or DEFAULT_FORMATS)
    return list(dict.fromkeys([*chosen, *(ExportFormat(r.value) for r in runtimes)]))


PeakOpt = Annotated[
    bool,
    typer.Option(
        "--peak/--no-peak",
        help="Measure this machine's peak float32 rate (matrix multiply) for % of peak.",
        rich_help_panel="Benchmark",
    ),
]


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
    *,
    method: BenchMethodChoice = None,
    precision: str | None = None,
    keras_full: bool = False,
    processes: int | None = None,
    ov_hint: list[OvHint] | None = None,
) -> BenchOptions:
    """The benchmark options shared by `bench` and `pipeline`, as the settings `toolkit.bench` takes (checked)."""
    from benchmarks.gate import parse_limit
    from toolkit.steps.bench_settings import QUICK_BENCH, BenchSettings

    base = QUICK_BENCH if quick else BenchSettings(method=method.value if method is not None else "adaptive")
    target = base.precision if precision is None else parse_limit(precision, option="--median-precision") / 100
    settings = BenchSettings(
        method=base.stopping,
        precision=target,
        quick_seconds=base.quick_seconds,
        keras_full=keras_full,
        processes=base.processes if processes is None else processes,
        batch_sizes=list(dict.fromkeys(batch)) if batch else base.batch_sizes,
        threads=list(dict.fromkeys(threads)) if threads else base.threads,
        xnnpack=[x is OnOff.ON for x in dict.fromkeys(xnnpack)] if xnnpack else base.xnnpack,
        ort_optimization=[o.value for o in dict.fromkeys(ort_opt)] if ort_opt else base.ort_optimization,
        openvino_hint=[h.value for h in dict.fromkeys(ov_hint)] if ov_hint else base.openvino_hint,
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
GateMaxAccuracyDropOpt = Annotated[float, typer_option(MAX_ACCURACY_DROP, rich_help_panel=GatePanel)]
MaxSizeOpt = Annotated[
    str, typer.Option("--max-size-increase", help="Allowed model size increase.", rich_help_panel=GatePanel)
]
MaxRssOpt = Annotated[
    str, typer.Option("--max-rss-increase", help="Allowed peak RSS increase.", rich_help_panel=GatePanel)
]
GateMetricOpt = Annotated[
    GateMetric, typer.Option("--gate-metric", help="Latency statistic the gate compares.", rich_help_panel=GatePanel)
]

# -- remote boards --------------------------------------------------------------------------------
RemotePanel = "Remote boards"
RemoteOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--remote",
        help="Run on this host over SSH instead of here (user@host or a Host from your ssh config); repeat for "
        "several hosts, run in parallel.",
        metavar="USER@HOST",
        rich_help_panel=RemotePanel,
        show_default=False,
    ),
]
SshConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--ssh-config",
        help="ssh client config file for --remote (ssh -F). More ssh options: environment variable "
        "EDGEKIT_SSH_OPTIONS.",
        rich_help_panel=RemotePanel,
        show_default=False,
    ),
]
RemoteDirOpt = Annotated[
    str,
    typer.Option(
        "--remote-dir",
        help="Folder on the --remote hosts for edgekit's environment and the files it copies there.",
        metavar="DIR",
        rich_help_panel=RemotePanel,
    ),
]
REMOTE_DIR = DEFAULT_REMOTE_DIR
OfflineOpt = Annotated[
    bool,
    typer.Option(
        "--offline",
        help="With --remote: install the hosts' dependencies from a wheelhouse downloaded here for their platform, "
        "never from their package index (default: the index, then the wheelhouse if a host's pip cannot reach one).",
        rich_help_panel=RemotePanel,
    ),
]


PlaceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--place",
        help="Run on this labgrid place (acquired exclusively, reached through its NetworkService, released "
        "afterwards), or this board of --inventory; repeat for several, run in parallel. Needs edgekit\\[farm].",
        metavar="PLACE",
        rich_help_panel=RemotePanel,
        show_default=False,
    ),
]
FarmOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--farm",
        help="Run on every labgrid place (or --inventory board) with this tag; repeat to require several tags.",
        metavar="KEY=VALUE",
        rich_help_panel=RemotePanel,
        show_default=False,
    ),
]
CoordinatorOpt = Annotated[
    str | None,
    typer.Option(
        "--coordinator",
        help="labgrid coordinator for --place/--farm (default: environment variable LG_COORDINATOR, else "
        "127.0.0.1:20408).",
        metavar="HOST:PORT",
        rich_help_panel=RemotePanel,
        show_default=False,
    ),
]
InventoryOpt = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        help="TOML file of SSH boards (\\[boards.NAME] host, port, tags) for a fan-out without labgrid: all of them, "
        "or those picked by --place/--farm.",
        metavar="FILE",
        rich_help_panel=RemotePanel,
        show_default=False,
    ),
]


class Busy(str, Enum):
    wait = "wait"
    skip = "skip"


BusyOpt = Annotated[
    Busy,
    typer.Option(
        "--busy",
        help="A place someone else holds: wait for it (up to --wait-timeout) or skip it.",
        rich_help_panel=RemotePanel,
    ),
]
WaitTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--wait-timeout",
        min=0,
        help="Seconds to wait for a busy place before giving up on it (that place fails; the others run).",
        metavar="SECONDS",
        rich_help_panel=RemotePanel,
    ),
]


# -- pipeline only: what else the run does -------------------------------------------------------
ResumeOpt = Annotated[
    Path | None,
    typer.Option(
        "--resume",
        help="Continue this interrupted run from its last completed step (same options; files checked by sha256).",
        rich_help_panel="Output",
        file_okay=False,
    ),
]
AlsoDiagnoseOpt = Annotated[
    bool,
    typer.Option(
        "--diagnose", help="Also run `edgekit diagnose` (int8 exports) after bench.", rich_help_panel="Output"
    ),
]
AlsoBundleOpt = Annotated[
    Path | None,
    typer.Option(
        "--bundle",
        help="Also write a bundle for a board here (a folder, or a path ending in .tar.gz).",
        rich_help_panel="Output",
        show_default=False,
    ),
]


def wants_boards(
    remote: list[str] | None, place: list[str] | None, farm: list[str] | None, inventory: Path | None
) -> bool:
    """True when the command runs on boards (`--remote`, `--place`, `--farm` or `--inventory`), not here."""
    return bool(remote or place or farm or inventory is not None)


def wants_farm(coordinator: str | None) -> bool:
    """`--coordinator` alone also means boards: `chosen_boards` then says it needs --place or --farm."""
    return coordinator is not None
