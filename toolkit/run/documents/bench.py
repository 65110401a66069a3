"""bench.json: latency of every artifact × configuration, with the machine (`toolkit.steps.bench.bench_step`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from toolkit.run.documents.base import Document, Part
from toolkit.run.documents.common import Environment, RemoteInfo, SkippedArtifact


class RunnerOptions(Part):
    """The sweep options a worker's runner used; None where one does not apply to its runtime."""

    OPEN: ClassVar[bool] = True

    xnnpack: bool | None = Field(default=None, description="TFLite only: XNNPACK delegate on or off.")
    graph_optimization: str | None = Field(
        default=None, description="ONNX Runtime only: disable, basic, extended or all."
    )
    performance_hint: str | None = Field(default=None, description="OpenVINO only: LATENCY or THROUGHPUT.")


class BenchRow(Part):
    """One artifact at one batch size, thread count and variant.

    The fields up to `throughput_ips` are the stable ones other tools read (`toolkit.steps.bench.STABLE_FIELDS`,
    in that order); the rest are `benchmarks.latency.LatencyStats` and the worker's result.
    """

    artifact: str
    format: str
    precision: str
    runtime: str
    batch_size: int
    threads: int | None = Field(description="Runtime threads; None: the runtime's default.")
    load_ms: float = Field(description="Cold start in a fresh process: runtime import + model load + first inference.")
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    runs: int
    throughput_ips: float = Field(description="Images per second: batch_size / mean latency.")
    min_ms: float | None = None
    max_ms: float | None = None
    total_s: float | None = None
    p95_ms: float | None = None
    p90_ci_low_ms: float | None = Field(default=None, description="Lower end of a distribution-free 95 % CI for p90.")
    p90_ci_high_ms: float | None = None
    quantiles_ms: list[float] | None = Field(default=None, description="The 0th to 100th percentiles (101 values).")
    noisy: bool | None = None
    noise: str | None = Field(default=None, description="Why the configuration looks noisy; None when it does not.")
    io_p50_ms: float | None = Field(
        default=None,
        description="p50 of converting the batch to the model's input type and its output back to float32.",
    )
    options: RunnerOptions | None = None
    delegated: bool | None = Field(default=None, description="TFLite: whether a delegate (XNNPACK) ran the graph.")
    activate_ms: float | None = None
    first_inference_ms: float | None = None
    peak_rss_mb: float | None = None
    backend: str | None = None
    runtime_version: str | None = None
    flops_per_image: int | None = None
    gflops: float | None = None
    pct_of_peak: float | None = None
    accuracy: float | None = Field(default=None, description="From parity.json, when it existed.")
    size_bytes: int | None = None
    p50_ci_low_ms: float | None = Field(default=None, description="Lower end of a distribution-free 95 % CI for p50.")
    p50_ci_high_ms: float | None = Field(default=None, description="Upper end of that interval.")
    method: str | None = Field(default=None, description="adaptive or fixed (None: a row from before the choice).")
    p50_precision: float | None = Field(
        default=None, description="adaptive: the target half-width of p50's CI, as a fraction of p50."
    )
    stop: str | None = Field(
        default=None,
        description="Why timing stopped: precision (median known), cap (time cap first), floor (fixed method), "
        "dominated (first pass only: it could not change the decision) or quick (Keras, first pass only).",
    )
    full_pass: str | None = Field(
        default=None,
        description="adaptive: why the configuration was measured on after the first pass: recommendation, "
        "pareto or throughput (None: the first pass sufficed or decided it).",
    )
    dominated_by: str | None = Field(
        default=None, description="The configuration that is certainly better, for a row stopped as dominated."
    )
    process_p50_ms: list[float] | None = Field(
        default=None,
        description="A leader of the recommendation: the p50 of each fresh process it was measured in, in order. "
        "The row is the median process's, and its p50 interval spans every process's interval.",
    )

    def config_label(self) -> str:
        """The artifact name plus any non-default runner option, e.g. `tflite-fp32 (no XNNPACK)`.

        ORT's `all` is the default optimisation level and is not shown.
        """
        extras = []
        if self.options is not None and self.options.xnnpack is False:
            extras.append("no XNNPACK")
        # Older bench.json rows kept the level beside the row's fields instead of in `options`.
        level = self.options.graph_optimization if self.options is not None else None
        level = level or (self.model_extra or {}).get("graph_optimization")
        if level not in (None, "", "all"):
            extras.append(f"ORT opt {level}")
        if self.options is not None and self.options.performance_hint not in (None, "LATENCY"):
            extras.append(str(self.options.performance_hint))
        return f"{self.artifact} ({', '.join(extras)})" if extras else self.artifact


class BenchMethod(Part):
    """How the run was measured (`BenchOptions`, and the method in words)."""

    batch_sizes: list[int]
    threads: list[int]
    xnnpack: list[bool] | None = None
    ort_optimization: list[str] | None = None
    openvino_hint: list[str] | None = None
    warmup_runs: int | None = None
    warmup_seconds: float | None = None
    min_runs: int | None = None
    min_seconds: float | None = None
    max_seconds: float | None = None
    method: str | None = Field(default=None, description="adaptive or fixed (None: fixed, before the choice).")
    precision: float | None = None
    quick_seconds: float | None = None
    keras_full: bool | None = None
    processes: int | None = Field(
        default=None, description="Fresh processes each leader of the recommendation was measured in (None: one)."
    )
    timer: str | None = None
    load_ms: str | None = None
    gflops: str | None = None


class BenchDocument(Document):
    """bench.json: every configuration's latency, the method, and the machine it ran on."""

    FILE: ClassVar[str] = "bench.json"
    FIX: ClassVar[str] = "re-run `edgekit bench`"

    created_utc: str
    run: str = Field(description="The run directory's name.")
    environment: Environment
    method: BenchMethod
    skipped: list[SkippedArtifact]
    artifacts: dict[str, str] = Field(description="Artifact name → the sha256 it was measured with.")
    noisy: list[str] = Field(description="One line per configuration whose timing looked unstable.")
    results: list[BenchRow]
    remote: RemoteInfo | None = Field(default=None, description="Set on results fetched from a board by `--remote`.")
