"""run.json: the options `edgekit pipeline` ran with, so `--resume` repeats exactly the same run."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from toolkit.run.documents.base import Document, Part, require_every_field
from toolkit.run.documents.common import TrainOptions

# The floors and caps of each stopping method (`benchmarks.latency.StopRule`), filled in where a field is not
# given: adaptive stops once the median is known, so its floor is small; fixed is the MLPerf-like method.
METHOD_DEFAULTS: dict[str, dict[str, float | int]] = {
    "adaptive": {"warmup_seconds": 0.05, "min_runs": 100, "min_seconds": 0.05, "max_seconds": 2.0},
    "fixed": {"warmup_seconds": 0.2, "min_runs": 1024, "min_seconds": 2.0, "max_seconds": 60.0},
}


# Fresh processes each leader of the recommendation is measured in, unless told (`BenchOptions.processes`).
DEFAULT_PROCESSES = 3


# Every field a run.json recorded before the method could be chosen (it was always fixed then).
_LEGACY_FIELDS = frozenset(
    (
        "batch_sizes",
        "threads",
        "xnnpack",
        "ort_optimization",
        "warmup_runs",
        "warmup_seconds",
        "min_runs",
        "min_seconds",
        "max_seconds",
        "measure_peak",
    )
)


def _require_all_but_the_method(schema: dict[str, Any]) -> None:
    """Every field is required but the method's own: a record from before the choice lacks them."""
    require_every_field(schema)
    schema["required"] = [name for name in schema["required"] if name not in _METHOD_FIELDS]


_METHOD_FIELDS = ("method", "precision", "quick_seconds", "keras_full", "processes", "openvino_hint")
_LATER_FIELDS = ("processes", "openvino_hint")


class BenchOptions(Part):
    """What a benchmark measures and how long: run.json's `bench`, and what `toolkit.bench` takes.

    `toolkit.BenchSettings` is this class. Two methods (`benchmarks.latency`): `adaptive` (default) measures
    every configuration briefly (`quick_seconds` per batch size, stopping early once its median is known to
    ±`precision`), then measures on, up to `max_seconds`, only the configurations that could still be the
    recommendation, be on the accuracy/latency Pareto front or give the best throughput; the others are
    reported as dominated, with their quick figures. Keras rows are measured briefly unless `keras_full`.
    `fixed` (close to MLPerf single-stream) times every configuration until both `min_runs` queries and
    `min_seconds` are reached. Sweeps: batch sizes × thread counts, TFLite with XNNPACK on and/or off, ONNX
    Runtime graph optimisation levels. Every field is written, defaults included, so run.json says exactly
    what ran; a record without `method` (written before adaptive stopping existed) is read as `fixed`.
    """

    # Frozen: the presets (`QUICK_BENCH`) are shared.
    model_config = ConfigDict(frozen=True, json_schema_extra=_require_all_but_the_method)

    batch_sizes: list[int] = Field(default_factory=lambda: [1, 32])
    threads: list[int] | None = Field(default=None, description="None: 1 and every available core.")
    xnnpack: list[bool] = Field(default_factory=lambda: [True], description="TFLite: XNNPACK on and/or off.")
    ort_optimization: list[str] = Field(
        default_factory=lambda: ["all"], description="ONNX Runtime graph optimisation levels to sweep."
    )
    openvino_hint: list[str] = Field(
        default_factory=lambda: ["LATENCY"],
        description="OpenVINO performance hints to sweep (LATENCY: one stream, one request as fast as it goes).",
    )
    method: Literal["adaptive", "fixed"] | None = Field(
        default=None,
        description="adaptive (the default): stop once the median is known to `precision`, full length only where "
        "the decision is; fixed: every configuration to `min_runs` and `min_seconds`. Absent (null) in a record "
        "written before the choice existed, which was measured with the fixed method.",
    )
    precision: float = Field(
        default=0.02, description="adaptive: the largest half-width of p50's 95 % CI, as a fraction of p50."
    )
    quick_seconds: float = Field(default=0.3, description="adaptive: the cap per batch size of the first pass.")
    keras_full: bool = Field(default=False, description="adaptive: measure Keras rows at full length too.")
    processes: int | None = Field(
        default=None,
        description="Fresh processes each leader of the recommendation is measured in: the tie between leaders is "
        f"judged on how far apart those processes land. New settings default to {DEFAULT_PROCESSES}; absent (null) in "
        "a record written before the choice existed, which measured every configuration in one process.",
    )
    warmup_runs: int = 10
    warmup_seconds: float = Field(default=0.05, description="Default: 0.05 s adaptive, 0.2 s fixed.")
    min_runs: int = Field(default=100, description="The floor of timed runs. Default: 100 adaptive, 1024 fixed.")
    min_seconds: float = Field(default=0.05, description="The floor of timed seconds. Default: 0.05 adaptive, 2 fixed.")
    max_seconds: float = Field(default=2.0, description="The cap per batch size. Default: 2 s adaptive, 60 s fixed.")
    measure_peak: bool = Field(default=True, description="Measure the machine's peak float32 rate (for % of peak).")

    @model_validator(mode="before")
    @classmethod
    def _method_defaults(cls, data: Any) -> Any:
        """Fill the floors and cap the chosen method implies, where not given (see `METHOD_DEFAULTS`)."""
        if not isinstance(data, dict):
            return data
        values = dict(data)
        legacy = values.get("method") is None and set(values) >= _LEGACY_FIELDS
        if values.get("method") is None and not legacy:
            values["method"] = "adaptive"
        # A whole record written before the choice existed keeps its fields as written (it round-trips), and
        # was measured with the fixed method.
        for name, value in METHOD_DEFAULTS["fixed" if legacy else values["method"]].items():
            if values.get(name) is None:
                values[name] = value
        # New settings lead with several processes; a whole record from before that choice ran one.
        whole_record = set(values) >= _LEGACY_FIELDS | {"precision", "quick_seconds", "keras_full"}
        if not whole_record and not legacy:
            if values.get("processes") is None:
                values["processes"] = DEFAULT_PROCESSES
            values.setdefault("openvino_hint", ["LATENCY"])
        return values

    def model_post_init(self, context: Any, /) -> None:
        # Settings are recorded whole: a default is as much a part of the method as a given value. A record from
        # before the method could be chosen is kept as it was written.
        if self.method is not None:
            # Fields added after such records were written are kept only where given (their absence is their old
            # meaning: one process; no OpenVINO).
            given = set(self.__pydantic_fields_set__)
            self.__pydantic_fields_set__.update(
                name for name in type(self).model_fields if name not in _LATER_FIELDS or name in given
            )

    @property
    def process_count(self) -> int:
        """Fresh processes per leader of the recommendation (a record from before the choice: one)."""
        return self.processes or 1

    @property
    def stopping(self) -> Literal["adaptive", "fixed"]:
        """The method that measures (an older record without one was fixed)."""
        return self.method or "fixed"

    def check(self) -> None:
        """Refuse settings no benchmark can run with, in one line naming the option.

        Raises:
            ToolkitError: an empty or non-positive batch list, threads below 1, negative times, no XNNPACK
                choice, an unknown ONNX Runtime level, or a precision outside (0, 1).
        """
        from runtimes.ort_runner import GRAPH_OPT_LEVELS as levels
        from toolkit.errors import ToolkitError

        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ToolkitError(f"--batch values must be 1 or more, got {list(self.batch_sizes)}.")
        if self.threads is not None and any(t < 1 for t in self.threads):
            raise ToolkitError(f"--threads values must be 1 or more, got {list(self.threads)}.")
        if self.min_runs < 1 or self.warmup_runs < 0 or self.min_seconds < 0 or self.warmup_seconds < 0:
            raise ToolkitError("--min-runs must be ≥ 1; --warmup-runs, --warmup-seconds and --min-seconds ≥ 0.")
        if not 0 < self.precision < 1:
            raise ToolkitError(f"--median-precision must be above 0 % and below 100 %, got {100 * self.precision:g} %.")
        if self.quick_seconds <= 0 or self.max_seconds < self.min_seconds:
            raise ToolkitError(
                f"the cap ({self.max_seconds:g} s) must be at least --min-seconds ({self.min_seconds:g} s), "
                "and the first pass above 0 s."
            )
        if not 1 <= self.process_count <= 20:
            raise ToolkitError(f"--processes must be 1 to 20, got {self.processes}.")
        if not self.xnnpack:
            raise ToolkitError("--xnnpack needs at least one of on, off.")
        from runtimes.openvino_runner import PERFORMANCE_HINTS as hints

        if not self.openvino_hint or any(h not in hints for h in self.openvino_hint):
            raise ToolkitError(f"--ov-hint takes {', '.join(hints)}; got {', '.join(self.openvino_hint) or 'nothing'}.")
        bad = [level for level in self.ort_optimization if level not in levels]
        if bad or not self.ort_optimization:
            raise ToolkitError(f"--ort-opt takes {', '.join(levels)}; got {', '.join(bad) or 'nothing'}.")


class RunOptions(Document):
    """run.json: training config, export targets and bench settings of a pipeline run."""

    FILE: ClassVar[str] = "run.json"
    FIX: ClassVar[str] = "start a new run instead of --resume"

    train: TrainOptions
    targets: list[tuple[str, str]] = Field(description="(format, precision) pairs to export.")
    calibration_size: int
    int8_target: str = Field(default="portable", description="--target: the CPU class the int8 exports are for.")
    bench: BenchOptions
    data: str | None = Field(
        default=None,
        description="--data: shipped, keras-cache, an IDX folder, or (with --model) a .npz or image folder.",
    )
    allow_unverified: bool = False
    model: str | None = Field(
        default=None, description="--model: the user's .keras/.h5/SavedModel (None: train the reference)."
    )
    output_kind: str | None = Field(
        default=None, description="--output-kind: probabilities, logits or values (None: detected)."
    )
    custom_objects: str | None = Field(
        default=None, description="--custom-objects: Python file registering custom layers."
    )
    input_scale: float | None = Field(default=None, description="--input-scale: multiply the stored data by this.")
    diagnose: bool = Field(
        default=False, description="--diagnose: run `edgekit diagnose` on the int8 exports after bench."
    )
    bundle: str | None = Field(
        default=None, description="--bundle: write a bundle (folder or .tar.gz) here at the end."
    )
    max_drop: float | None = Field(
        default=None, description="--max-accuracy-drop: the int8-mixed budget in points (None: no search)."
    )
    min_agreement: float | None = Field(default=None, description="--min-agreement: the int8-mixed agreement budget.")
    budget_images: int = Field(default=2000, description="--budget-images: test rows the budget is judged on.")
