"""Objects that several run documents share: the machine description, training settings, skipped artifacts.

A model's input and output are `runtimes.spec.TensorSpec` itself (a dataclass pydantic validates).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema

from runtimes.spec import ModelSpec, SpecError, TensorSpec
from toolkit.run.documents.base import Part


class TrainOptions(Part):
    """The reference CNN's training settings; the defaults are the Keras tutorial's.

    `toolkit.model.reference.TrainConfig` is this class. Every field is written, defaults included.
    """

    # Files have always held the first three (train_limit came later): the published schema requires them.
    model_config = ConfigDict(frozen=True, json_schema_extra={"required": ["epochs", "batch_size", "seed"]})

    epochs: int = 10
    batch_size: int = 200
    seed: int = 7
    train_limit: int | None = Field(default=None, description="Only the first N training images; None: all.")

    def model_post_init(self, context: Any, /) -> None:
        self.__pydantic_fields_set__.update(type(self).model_fields)  # recorded whole, as BenchOptions

    def check(self) -> None:
        """Refuse settings no training can run with, in one line naming the option."""
        from toolkit.errors import ToolkitError

        if self.epochs < 1:
            raise ToolkitError(f"--epochs must be 1 or more, got {self.epochs}.")
        if self.batch_size < 1:
            raise ToolkitError(f"--batch-size must be 1 or more, got {self.batch_size}.")
        if self.train_limit is not None and self.train_limit < 1:
            raise ToolkitError(f"--train-limit must be 1 or more, got {self.train_limit}.")


class TrainingSummary(Part):
    """What the manifest (and a bundle) records of the training that made the model."""

    config: TrainOptions | None = None
    test_accuracy: float | None = None


class SkippedArtifact(Part):
    """An artifact a step did not run, and why (e.g. its runtime is not installed here)."""

    artifact: str
    reason: str


class CpuInfo(Part):
    """The CPU's instruction-set class and features (`benchmarks.cpu.CpuDescription.to_dict`).

    Int8 results and int8 speed depend on it (e.g. VNNI on x86-64, the dot product on arm64), so every
    document that carries numbers records it, and `gate` refuses to compare benches across classes.
    """

    arch: str = Field(description='"x86-64", "arm64", "armv7", or the machine name for anything else.')
    isa_class: str = Field(description='e.g. "x86-64-avx512-vnni", "x86-64-avx2", "arm64-dotprod".')
    features: list[str] = Field(description="The checked features this CPU has.")
    checked: list[str] = Field(description="Every feature looked for: the others are absent.")
    source: str = Field(description='"cpuid", "cpuid+cpuinfo", "hwcap", "cpuinfo" or "none".')
    int8_dot_product: bool | None = Field(default=None, description="VNNI/AMX on x86-64, SDOT/UDOT or I8MM on Arm.")
    note: str | None = Field(default=None, description="Set when the sources disagree (an emulated or masked CPU).")


class Environment(Part):
    """The machine and its software (`benchmarks.environment.capture_environment`).

    Every field may be None where it cannot be read; boards and operating systems add their own keys.
    """

    OPEN: ClassVar[bool] = True

    cpu_model: str | None = None
    cpu: CpuInfo | None = Field(default=None, description="Instruction-set class and features (absent in older files).")
    machine: str | None = None
    cores_logical: int | None = None
    cores_available: int | None = None
    os: str | None = None
    kernel: str | None = None
    bitness: str | None = None
    python: str | None = None
    python_implementation: str | None = None
    numpy: str | None = None
    runtime_versions: dict[str, str | None] | None = Field(default=None, description="Runtime name → version text.")
    cpu_governor: str | None = None
    cpu_freq_cur_mhz: float | None = None
    cpu_freq_min_mhz: float | None = None
    cpu_freq_max_mhz: float | None = None
    cpu_freq_hw_max_mhz: float | None = None
    thread_env: dict[str, str] | None = Field(default=None, description="Thread-count variables that are set.")
    temperatures_c: dict[str, float] | None = Field(default=None, description="Thermal zone type → °C.")
    throttled: bool | None = Field(default=None, description="Raspberry Pi firmware only; None elsewhere.")
    throttle_flags: list[str] | None = None
    throttled_raw: str | None = None
    openblas_env: dict[str, str] | None = None
    blas_note: str | None = None
    hostname: str | None = None
    timestamp_utc: str | None = None
    peak_gflops: dict[str, float] | None = Field(
        default=None, description="bench.json only: peak float32 GFLOP/s by thread count (matrix multiply)."
    )


class RemoteInfo(Part):
    """Added by `--remote` runs to the bench.json/verify.json fetched from a board."""

    OPEN: ClassVar[bool] = True

    host: str
    remote_dir: str | None = None
    command: str | None = None
    args: list[str] | None = None
    exit_code: int | None = None
    setup: str | None = Field(default=None, description='"installed" or "reused".')
    setup_seconds: float | None = None
    seconds: float | None = None
    started_unix: float | None = None
    finished_unix: float | None = None
    install_from: str | None = Field(
        default=None, description='Where the dependencies came from: "index" or "wheelhouse".'
    )
    copy_mode: str | None = Field(default=None, description='How files were copied: "scp", "scp-legacy" or "stream".')
    board: str | None = Field(
        default=None, description="The board's name when it is not `host`: a labgrid place or an inventory entry."
    )
    place: str | None = Field(default=None, description="The labgrid place that produced this file (--place/--farm).")
    coordinator: str | None = Field(default=None, description="The labgrid coordinator (HOST:PORT) of `place`.")
    lock_owner: str | None = Field(default=None, description='Who held `place` meanwhile, labgrid\'s "HOST/USER".')
    tags: dict[str, str] | None = Field(default=None, description="The place's (or inventory board's) tags.")
    acquire_seconds: float | None = Field(
        default=None, description="From the first acquire attempt to holding the place (waits for a busy place)."
    )


def _model_spec(value: Any) -> ModelSpec:
    if isinstance(value, ModelSpec):
        return value
    try:
        return ModelSpec.from_dict(value)
    except SpecError as exc:
        raise ValueError(str(exc)) from None  # pydantic names the field: one line, through DocumentError


# A model's spec as documents store it: `runtimes.spec.ModelSpec` itself, read with `ModelSpec.from_dict` and
# written with `to_dict` (the same JSON a board reads without pydantic).
StoredModelSpec = Annotated[
    ModelSpec,
    PlainValidator(_model_spec),
    PlainSerializer(lambda spec: spec.to_dict(), return_type=dict[str, Any]),
    WithJsonSchema({"type": "object", "additionalProperties": True}),
]


def _tensor_spec(value: Any) -> TensorSpec:
    if isinstance(value, TensorSpec):
        return value
    try:
        return TensorSpec.from_dict(value)
    except SpecError as exc:
        raise ValueError(str(exc)) from None


_NULLABLE_NUMBER_PAIR = {
    "anyOf": [{"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}, {"type": "null"}]
}
# A tensor as documents store it: `runtimes.spec.TensorSpec`, written with `to_dict` (name, shape, dtype, scale,
# zero_point, and layout/value_range/kind/class_names only when set), so the files of single-input,
# single-output runs keep the keys they always had.
StoredTensorSpec = Annotated[
    TensorSpec,
    PlainValidator(_tensor_spec),
    PlainSerializer(lambda tensor: tensor.to_dict(), return_type=dict[str, Any]),
    WithJsonSchema(
        {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "shape": {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
                "dtype": {"type": "string"},
                "scale": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                "zero_point": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                "layout": {"type": "string"},
                "value_range": _NULLABLE_NUMBER_PAIR,
                "kind": {"type": "string"},
                "class_names": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["name", "shape", "dtype"],
            "additionalProperties": False,
        }
    ),
]
