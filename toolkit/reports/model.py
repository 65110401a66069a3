"""The report view model: computed once from a run's typed documents.

`report.md` and `report.html` both render a `Report`, so they cannot disagree on the recommendation,
the parity verdicts or any figure. Values are numbers (None when not recorded); renderers format them.
Where a document's own rows are what a table shows (parity rows, a board's verify rows, microcontroller
boards), the view holds those document objects (`toolkit.run.documents`) rather than copies of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

from toolkit.reports.fmt import DASH
from toolkit.reports.rules import Recommendation

T = TypeVar("T")

if TYPE_CHECKING:
    from toolkit.reports.cpus import CpuClassesView
    from toolkit.reports.mixed import MixedView
    from toolkit.run.documents import McuBoardFit, McuEmulated, ParityOutput, ParityRow, VerifyRow


@dataclass(frozen=True)
class RunRef:
    """A run as other sections point at it: its name, machine label and colour in the charts."""

    name: str
    label: str
    colour: str


@dataclass(frozen=True)
class Group(Generic[T]):
    """One item (a table) shared by several runs whose documents are identical, shown once."""

    members: tuple[RunRef, ...]
    item: T


@dataclass(frozen=True)
class Training:
    test_accuracy: float | None
    test_loss: float | None
    epochs: object
    batch_size: object
    seed: object
    train_images: float | None
    num_params: float | None
    wall_seconds: float | None
    val_accuracy: tuple[float, ...]
    libraries: tuple[tuple[str, str], ...]
    data_warnings: tuple[str, ...] | None  # None: the training data was verified


@dataclass(frozen=True)
class ModelView:
    """A user's own model and data (`--model`/`--data`: model.json and dataset.json)."""

    name: str
    source: str
    format: str
    params: float | None
    layers: tuple[tuple[str, str], ...]  # (name, class)
    unknown_layers: tuple[str, ...]  # "name (Class)" of layers edgekit has not been tested with
    input_shape: str  # "[N, 16, 16, 3]"
    input_dtype: str
    input_range: str  # "0 – 255"
    layout: str
    output_shape: str
    output_dtype: str
    output_kind: str  # probabilities, logits or values
    num_classes: int | None
    class_names: tuple[str, ...]
    data_name: str | None  # None: no dataset.json
    data_kind: str
    data_source: str
    train: float | None
    test: float | None
    split: str
    scale: float | None
    task: str
    sample_shape: str
    data_dtype: str

    @property
    def output_text(self) -> str:
        """What the output holds, in words: "class probabilities (10 classes)", "logits (…)", "2 values"."""
        n = self.num_classes
        if self.output_kind == "values":
            return f"{n} regression value{'s' if n != 1 else ''}" if n else "regression values"
        what = "logits (softmax applied for parity)" if self.output_kind == "logits" else "class probabilities"
        return f"{what}, {n} classes" if n else what


@dataclass(frozen=True)
class ArtifactRow:
    name: str
    format: str
    precision: str
    runtime: str
    size_bytes: float | None
    sha256: str
    input_dtype: str
    quantization: str  # "" for float input
    notes: tuple[str, ...]
    recommended: bool


@dataclass(frozen=True)
class Parity:
    reference: str
    reference_accuracy: float | None
    images: float | None
    passed: bool
    rows: tuple[ParityRow, ...]
    output_kind: str = "probabilities"  # probabilities, logits (softmax compared) or values (regression)
    data_name: str | None = None  # the user's dataset; None: the reference MNIST
    samples: str = "images"  # what one test example is called: images, or samples for vector inputs

    outputs: tuple[ParityOutput, ...] = ()  # several outputs: each one's kind and the reference's score

    @property
    def regression(self) -> bool:
        return self.output_kind == "values" and not self.several

    @property
    def several(self) -> bool:
        """One row per artifact and output (a model with several outputs)."""
        return any(r.output is not None for r in self.rows)

    def delta_pt(self, row: ParityRow) -> float | None:
        """The row's accuracy minus the reference's (for its output), in percentage points (None: unknown)."""
        reference = self.reference_accuracy
        if row.output is not None:
            ref = next((o for o in self.outputs if o.name == row.output), None)
            reference = ref.value if ref is not None and ref.metric == "accuracy" else None
        if row.accuracy is None or reference is None:
            return None
        return 100 * (row.accuracy - reference)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.artifact for r in self.rows if not r.passed))

    def several_cells(self) -> list[OutputCells]:
        """Per row of a model with several outputs: its score against the targets by the output's kind
        (accuracy, mean IoU of boxes, MAE of values), the change from the reference's, and its agreement with
        the reference (top-1, or mean IoU with the reference's boxes)."""
        return [self._cells(r) for r in self.rows]

    def _cells(self, row: ParityRow) -> OutputCells:
        kind = row.output_kind or self.output_kind
        ref = next((o for o in self.outputs if o.name == row.output), None)
        if row.accuracy is not None:
            score = _fixed(100 * row.accuracy, ".2f") + " %"
            return OutputCells(score, _fixed(self.delta_pt(row), "+.2f") + " pt", _fixed(row.top1_agreement, ".4f"))
        value = row.mean_iou if kind == "boxes" else row.mae
        delta = None if ref is None or value is None else value - ref.value
        if kind == "boxes":
            agreement = _fixed(row.iou_with_reference, ".4f")
            return OutputCells("IoU " + _fixed(value, ".4f"), _fixed(delta, "+.4f"), agreement)
        return OutputCells("MAE " + _fixed(value, ".4g"), _fixed(delta, "+.3g"), DASH)


@dataclass(frozen=True)
class OutputCells:
    """The kind-dependent cells of a parity row of a model with several outputs, formatted."""

    score: str
    delta: str
    agreement: str


def _fixed(x: float | None, fmt: str) -> str:
    return DASH if x is None else format(x, fmt)


@dataclass(frozen=True)
class LatencyRow:
    """One bench.json row (one configuration at one batch size and thread count)."""

    configuration: str
    artifact: str
    runtime: str
    backend: str | None
    batch_size: int
    threads: int | None
    p50_ms: float
    p90_ms: float | None
    p90_ci_ms: tuple[float, float] | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    std_ms: float | None
    min_ms: float | None
    max_ms: float | None
    runs: float | None
    throughput_ips: float | None
    gflops: float | None
    pct_of_peak: float | None
    load_ms: float | None
    first_inference_ms: float | None
    peak_rss_mb: float | None
    noisy: bool
    noise: str
    quantiles_ms: tuple[float, ...] | None  # percentiles 0..100 when recorded
    p50_ci_ms: tuple[float, float] | None = None  # the 95 % interval of p50 (None: an older bench.json)
    stop: str | None = None  # why timing stopped (bench.json's `stop`; None: not recorded)
    full_pass: str | None = None  # adaptive: why it was measured on after the first pass
    stop_text: str = DASH  # `stop` (and `full_pass`) in words, e.g. "median known to ±2 % after 1,193 runs"


@dataclass(frozen=True)
class PivotCell:
    p50_ms: float
    noisy: bool


@dataclass(frozen=True)
class PivotRow:
    """p50 per (batch, threads) column for one configuration, with its best throughput and cold start."""

    configuration: str
    cells: tuple[PivotCell | None, ...]
    best_ips: float | None
    best_pct_of_peak: float | None
    load_ms: float | None  # the fastest cold start among its processes
    peak_rss_mb: float | None
    recommended: bool


@dataclass(frozen=True)
class ColdStartRow:
    configuration: str
    backend: str | None
    cold_start_ms: float | None  # median over its processes
    first_inference_ms: float | None
    peak_rss_mb: float | None


@dataclass(frozen=True)
class Latency:
    """Everything about one bench.json: the pivot, every row, cold starts and how it was measured."""

    machine: str
    os: str
    python: str
    columns: tuple[tuple[int, int | None], ...]  # (batch, threads) of the pivot's columns
    pivot: tuple[PivotRow, ...]
    rows: tuple[LatencyRow, ...]
    cold_start: tuple[ColdStartRow, ...]
    noisy: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    peak_gflops: tuple[tuple[str, float], ...]
    throttled: bool
    throttle_flags: tuple[str, ...]
    runtime_versions: tuple[tuple[str, str], ...]
    warmup_runs: object
    warmup_seconds: object
    min_runs: object
    min_seconds: object
    method: str | None = None  # adaptive or fixed; None: not recorded (an older bench.json, the fixed method)
    method_text: str = ""  # how each configuration was timed, in words (report.md's and report.html's paragraph)
    stop_summary: str = ""  # rows counted by why they stopped ("" when not recorded), as the CLI prints it

    @property
    def measured(self) -> bool:
        """Whether any row records its p50 interval or why it stopped (the "How each configuration was
        measured" table); older bench.json files record neither."""
        return any(r.p50_ci_ms is not None or r.stop is not None for r in self.rows)


@dataclass(frozen=True)
class DiagnosisRow:
    artifact: str
    first_departure: str | None  # None: every layer within the threshold
    top_layers: tuple[tuple[str, float | None], ...]  # (layer, added error power %)
    disagreements: float | None
    gallery_file: str | None
    gallery_png: str | None  # base64, embedded in report.html
    cause: str | None = None  # the layer, channels and reason the departure starts from (plain text)
    advice: str | None = None  # what to do about it
    sensitivity: tuple[tuple[str, float | None, float | None], ...] = ()  # (layer, only float, only quantized)


@dataclass(frozen=True)
class Diagnosis:
    rows: tuple[DiagnosisRow, ...]
    slower: tuple[tuple[str, str], ...]  # (artifact, why it is slower)


@dataclass(frozen=True)
class McuRow:
    """One artifact in TensorFlow Lite Micro (`edgekit mcu`)."""

    artifact: str
    ops: tuple[str, ...]
    arena_min: float | None
    arena_recommended: float | None
    head_bytes: float | None
    tail_bytes: float | None
    model_bytes: float | None
    images: float | None
    accuracy: float | None
    agreement_litert: float | None
    agreement_keras: float | None
    max_int8_steps: float | None
    passed: bool
    failures: tuple[str, ...]
    boards: tuple[McuBoardFit, ...]
    files: tuple[str, ...]
    margin_reason: str
    flash_note: str
    emulated: tuple[McuEmulated, ...] = ()  # `edgekit mcu --board`: the firmware run on emulated Cortex-M cores
    sized_with: str = ""  # how the fits-on table sized the boards


@dataclass(frozen=True)
class Alert:
    """Something the reader must see before the tables: throttling, noise, skipped rows, failures."""

    kind: Literal["throttled", "noisy", "skipped", "unverified-data", "parity-failed"]
    level: Literal["warn", "note", "info"]
    run: RunRef
    text: str
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunView:
    """One run (one machine) with every section computed; sections without data are None."""

    index: int
    ref: RunRef
    machine: tuple[tuple[str, str], ...]  # (fact, value) from bench.json's environment
    created_utc: str | None
    training: Training | None
    artifacts: tuple[ArtifactRow, ...] | None
    parity: Parity | None
    latency: Latency | None
    diagnosis: Diagnosis | None
    recommendation: Recommendation | None
    no_recommendation: str  # why there is none ("" when there is one or nothing was benchmarked)
    speedup: tuple[float, str] | None  # (x faster, than the reference artifact) for the recommendation
    sizes: dict[str, float] = field(default_factory=dict)
    mcu: tuple[McuRow, ...] | None = None  # mcu.json: the int8 model in TensorFlow Lite Micro
    mixed: MixedView | None = None  # mixed.json: `toolkit.reports.mixed.MixedView`, the int8/float curve under a budget
    model: ModelView | None = None  # the user's own model and data; None: the reference CNN on MNIST
    cpus: CpuClassesView | None = None  # parity.json's cpu_classes: the exports under emulated CPU classes


@dataclass(frozen=True)
class SideBySide:
    """Batch-1 p50 at the best thread count, one column per machine."""

    columns: tuple[tuple[str, str], ...]  # (name, machine label)
    rows: tuple[tuple[str, tuple[float | None, ...]], ...]  # (configuration, p50 per column)


@dataclass(frozen=True)
class HostVerify:
    """One artifact verified on one board (`verify --remote`): the host, its machine and verify.json's row."""

    host: str
    machine: str
    row: VerifyRow


@dataclass(frozen=True)
class BoardArtifact:
    """One artifact on one board: its verify row (None: not verified there) beside its batch-1 p50 at the
    best thread count (None: not benchmarked there)."""

    artifact: str
    verify: VerifyRow | None
    p50_ms: float | None
    threads: int | None


@dataclass(frozen=True)
class BoardGroup:
    """One board's results together: where they came from (a labgrid place, an inventory entry or an SSH host),
    its CPU (ISA class and features), how long each step took, and verify and bench side by side per artifact."""

    name: str
    source: str  # "labgrid place", "inventory board" or "SSH host"
    ssh: str  # the ssh destination
    coordinator: str | None
    tags: tuple[tuple[str, str], ...]
    lock_owner: str | None
    machine: str
    isa_class: str
    features: tuple[str, ...]
    seconds: tuple[tuple[str, float], ...]  # ("acquire", s), ("set-up verify", s) … in the order they ran
    artifacts: tuple[BoardArtifact, ...]


@dataclass(frozen=True)
class Remote:
    """Boards reached over SSH (`bench --remote`, `verify --remote`, `--place`/`--farm`/`--inventory`), beside the
    run they belong to; `boards` groups each board's verify and bench results."""

    verify: tuple[HostVerify, ...]
    latency: SideBySide | None
    benches: tuple[tuple[str, Latency], ...]  # (host, its latency)
    boards: tuple[BoardGroup, ...] = ()


@dataclass(frozen=True)
class Report:
    """The whole report: `kind` is `run` (one run, its boards beside it) or `merged` (several runs)."""

    kind: Literal["run", "merged"]
    title: str
    runs: tuple[RunView, ...]
    alerts: tuple[Alert, ...]
    training: tuple[Group[Training], ...]
    models: tuple[Group[ModelView], ...]
    artifacts: tuple[Group[tuple[ArtifactRow, ...]], ...]
    parity: tuple[Group[Parity], ...]
    side_by_side: SideBySide | None
    remote: Remote | None
    reference_images: float | None  # test images behind every accuracy, when all runs agree
