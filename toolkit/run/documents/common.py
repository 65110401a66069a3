"""Objects that several run documents share: the machine description, training settings, skipped artifacts.

A model's input and output are `runtimes.spec.TensorSpec` itself (a dataclass pydantic validates).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from toolkit.run.documents.base import Part


class TrainOptions(Part):
    """The training settings (`toolkit.model.TrainConfig`)."""

    epochs: int
    batch_size: int
    seed: int
    train_limit: int | None = Field(None, description="Only the first N training images; None: all.")


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
    int8_dot_product: bool | None = Field(None, description="VNNI/AMX on x86-64, SDOT/UDOT or I8MM on Arm.")
    note: str | None = Field(None, description="Set when the sources disagree (an emulated or masked CPU).")


class Environment(Part):
    """The machine and its software (`benchmarks.environment.capture_environment`).

    Every field may be None where it cannot be read; boards and operating systems add their own keys.
    """

    OPEN: ClassVar[bool] = True

    cpu_model: str | None = None
    cpu: CpuInfo | None = Field(None, description="Instruction-set class and features (absent in older files).")
    machine: str | None = None
    cores_logical: int | None = None
    cores_available: int | None = None
    os: str | None = None
    kernel: str | None = None
    bitness: str | None = None
    python: str | None = None
    python_implementation: str | None = None
    numpy: str | None = None
    runtime_versions: dict[str, str | None] | None = Field(None, description="Runtime name → version text.")
    cpu_governor: str | None = None
    cpu_freq_cur_mhz: float | None = None
    cpu_freq_min_mhz: float | None = None
    cpu_freq_max_mhz: float | None = None
    cpu_freq_hw_max_mhz: float | None = None
    thread_env: dict[str, str] | None = Field(None, description="Thread-count variables that are set.")
    temperatures_c: dict[str, float] | None = Field(None, description="Thermal zone type → °C.")
    throttled: bool | None = Field(None, description="Raspberry Pi firmware only; None elsewhere.")
    throttle_flags: list[str] | None = None
    throttled_raw: str | None = None
    openblas_env: dict[str, str] | None = None
    blas_note: str | None = None
    hostname: str | None = None
    timestamp_utc: str | None = None
    peak_gflops: dict[str, float] | None = Field(
        None, description="bench.json only: peak float32 GFLOP/s by thread count (matrix multiply)."
    )


class RemoteInfo(Part):
    """Added by `--remote` runs to the bench.json/verify.json fetched from a board."""

    OPEN: ClassVar[bool] = True

    host: str
    remote_dir: str | None = None
    command: str | None = None
    args: list[str] | None = None
    exit_code: int | None = None
    setup: str | None = Field(None, description='"installed" or "reused".')
    setup_seconds: float | None = None
    seconds: float | None = None
    started_unix: float | None = None
    finished_unix: float | None = None
    install_from: str | None = Field(None, description='Where the dependencies came from: "index" or "wheelhouse".')
    copy_mode: str | None = Field(None, description='How files were copied: "scp", "scp-legacy" or "stream".')


# The loosely typed ModelSpec (runtimes.spec.ModelSpec.to_dict) until its own model replaces it.
ModelSpecDict = dict[str, Any]
