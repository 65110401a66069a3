"""verify.json: a bundle's artifacts run on this machine against the desktop (`toolkit.bundles.verify.verify_bundle`).

Written as `verify.json` inside a bundle folder or `<name>.verify.json` beside a .tar.gz.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from toolkit.run.documents.base import Document, Part
from toolkit.run.documents.bundle import BundleSource, MachineTolerance
from toolkit.run.documents.common import CpuInfo, Environment, RemoteInfo, SkippedArtifact


class DesktopSummary(Part):
    """The machine the bundle was made on (from bundle.json's environment)."""

    OPEN: ClassVar[bool] = True

    cpu_model: str | None = None
    cpu: CpuInfo | None = Field(
        default=None, description="The desktop's instruction-set class (the goldens were made there)."
    )
    machine: str | None = None
    os: str | None = None
    python: str | None = None
    runtime_versions: dict[str, str | None] | None = None


class VerifiedBundle(Part):
    """Which bundle was verified."""

    path: str
    created_utc: str | None = None
    source: BundleSource | None = None
    desktop: DesktopSummary | None = None


class VerifyGolden(Part):
    """The golden images used."""

    images: int


class VerifyRow(Part):
    """One artifact (one output of it, for a model with several): pass, fail, or error (no metrics then)."""

    artifact: str
    output: str | None = Field(
        default=None, description="Several outputs: the output this row checks; None for a single-output model."
    )
    format: str | None = None
    precision: str | None = None
    runtime: str | None = None
    output_kind: str | None = Field(
        default=None, description="probabilities, logits, values, boxes or class_indices: what was compared (raw)."
    )
    tolerance: MachineTolerance
    backend: str | None = None
    runtime_version: str | None = None
    seconds: float | None = None
    status: str = Field(description="pass, fail or error.")
    passed: bool
    error: str | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    max_diff_steps: float | None = Field(
        default=None, description="max_abs_diff in quantization steps; None for floats."
    )
    values_over_tolerance: int | None = None
    accuracy: float | None = None
    desktop_accuracy: float | None = None
    agreement: float | None = None
    max_rel_error: float | None = Field(default=None, description="Regression: max_abs_diff / max |expected|.")
    target_mae: float | None = Field(default=None, description="Regression: mean |output - target| here.")
    desktop_target_mae: float | None = Field(
        default=None, description="Regression: mean |output - target| on the desktop."
    )
    reference: str | None = Field(
        default=None,
        description='Quantized TFLite: the desktop outputs compared with, "xnnpack" (LiteRT\'s default) or "builtin" '
        "(its built-in kernels, for runtimes that do not delegate to XNNPACK); None when the bundle has one.",
    )


class EmulationHost(Part):
    """The machine QEMU ran on."""

    OPEN: ClassVar[bool] = True

    machine: str | None = None
    cpu_model: str | None = None


class EmulationRoot(Part):
    """The cached Debian root verify ran in (`toolkit.emulate.rootfs`)."""

    OPEN: ClassVar[bool] = True

    path: str | None = None
    state: str | None = Field(default=None, description='"cached", "built" or "wheel updated".')
    suite: str | None = None
    arch: str | None = None
    python: str | None = None
    packages: dict[str, str] | None = Field(default=None, description="Distribution → version inside the root.")
    edgekit_wheel_sha256: str | None = None
    build_seconds: float | None = None


class Emulation(Part):
    """Added by `edgekit verify --emulate`: the emulated board and the QEMU root it ran in."""

    OPEN: ClassVar[bool] = True

    board: str
    model: str | None = None
    qemu_cpu: str | None = None
    core: str | None = None
    cpuinfo_features: str | None = None
    qemu: str | None = None
    host: EmulationHost | None = None
    rootfs: EmulationRoot | None = None
    prepare_seconds: float | None = None
    verify_seconds: float | None = None
    note: str | None = None


class VerifyDocument(Document):
    """verify.json: every artifact of a bundle run on this machine and compared with the desktop's outputs."""

    FILE: ClassVar[str] = "verify.json"
    FIX: ClassVar[str] = "re-run `edgekit verify`"

    created_utc: str
    edgekit_version: str
    bundle: VerifiedBundle
    environment: Environment
    golden: VerifyGolden
    tolerances: dict[str, str]
    results: list[VerifyRow]
    skipped: list[SkippedArtifact]
    passed: bool
    artifacts: dict[str, bool] | None = Field(
        default=None,
        description="Several outputs: artifact → passed (every one of its outputs within its tolerance).",
    )
    remote: RemoteInfo | None = Field(default=None, description="Set on results fetched from a board by `--remote`.")
    emulation: Emulation | None = None
