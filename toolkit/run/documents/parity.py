"""parity.json: every artifact against the Keras reference on the test set (`toolkit.steps.parity.parity_step`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from toolkit.run.documents.base import Document, Part
from toolkit.run.documents.common import CpuInfo


class ParityOutput(Part):
    """One output of a model with several: its kind and how the reference scores on its targets."""

    name: str
    kind: str = Field(description="probabilities, logits, values, boxes or class_indices.")
    metric: str = Field(description="accuracy (classes), MAE (values) or mean IoU (boxes), against the targets.")
    value: float = Field(description="The reference's score by `metric`.")


class ParityReference(Part):
    """The Keras reference the artifacts are compared with."""

    artifact: str
    accuracy: float | None = Field(description="Top-1 accuracy on the labels; None for a regression model.")
    images: int
    sha256: str
    output_kind: str = Field(default="probabilities", description="probabilities, logits (softmax compared) or values.")
    outputs: list[ParityOutput] | None = Field(
        default=None, description="A model with several outputs: each output's kind and the reference's score."
    )


class ParityData(Part):
    """The test images used."""

    source: str
    verified: bool
    images: int
    name: str = Field(default="MNIST", description="The dataset's name, as reports show it.")


class ParityRow(Part):
    """One artifact against the reference: what `toolkit.steps.parity.check_row` measures and judges.

    `runtime` tells rows of one artifact apart: `edgekit mcu` adds a `tflm` row beside LiteRT's.
    """

    artifact: str
    format: str
    precision: str
    runtime: str
    accuracy: float | None
    top1_agreement: float | None = Field(
        description="Fraction of images whose top-1 class matches the reference's (None for regression)."
    )
    max_rel_error: float | None = Field(default=None, description="Regression: max |Δ| / max |reference output|.")
    max_abs_diff: float = Field(description="Largest |probability - reference probability|.")
    mean_abs_diff: float
    passed: bool
    disagreements: int
    tolerance: str = Field(description="The precision's pass criteria, in words.")
    failures: list[str]
    seconds: float
    backend: str
    output: str | None = Field(
        default=None, description="The output judged (a model with several outputs: one row per artifact and output)."
    )
    output_kind: str | None = Field(default=None, description="That output's kind (None: the model's only output).")
    mae: float | None = Field(default=None, description="Values and boxes: mean |output - target|.")
    mean_iou: float | None = Field(default=None, description="Boxes: mean IoU with the target boxes.")
    iou_with_reference: float | None = Field(default=None, description="Boxes: mean IoU with the reference's boxes.")


class CpuParityRow(Part):
    """One artifact on one CPU class (`toolkit.cpus.step`): against Keras, and against this machine's outputs."""

    artifact: str
    precision: str | None = None
    runtime: str | None = None
    backend: str | None = None
    accuracy: float | None = None
    top1_agreement: float | None = None
    max_rel_error: float | None = None
    max_abs_diff: float | None = Field(
        default=None, description="Largest |output - Keras output| (probabilities compared)."
    )
    max_abs_diff_vs_native: float | None = Field(
        default=None, description="Largest |output - this machine's output| (raw)."
    )
    identical_to_native: bool | None = None
    native_tolerance: float | None = Field(
        default=None, description="verify's tolerance for this artifact on another CPU."
    )
    native_basis: str | None = None
    tolerance: str | None = Field(default=None, description="The precision's parity criteria against Keras.")
    seconds: float | None = Field(default=None, description="Wall time of this artifact's run (emulated: not a speed).")
    passed: bool
    failures: list[str]
    error: str | None = None


class CpuClassRun(Part):
    """Every artifact on one CPU: this machine (native) or a QEMU CPU model."""

    name: str = Field(description='"native" or the --cpu name, e.g. haswell, cortex-a72.')
    emulated: bool
    qemu_cpu: str | None = Field(default=None, description="QEMU's CPU model, e.g. Haswell-v4.")
    stands_for: str
    cpu: CpuInfo | None = Field(
        default=None, description="The class and features the worker saw (CPUID/HWCAP under QEMU)."
    )
    qemu: str | None = None
    seconds: float
    rows: list[CpuParityRow]
    passed: bool


class CpuClasses(Part):
    """`edgekit parity --cpu`: the exports under other CPU classes, on the first `images` test inputs."""

    images: int
    seconds: float
    not_emulated: str = Field(description="What emulation cannot show.")
    classes: list[CpuClassRun]
    passed: bool


class ParityDocument(Document):
    """parity.json: accuracy and agreement of every artifact with the reference, and pass/fail."""

    FILE: ClassVar[str] = "parity.json"
    FIX: ClassVar[str] = "re-run `edgekit parity`"

    created_utc: str
    cpu: CpuInfo | None = Field(
        default=None, description="The instruction-set class and features of the machine that ran it."
    )
    reference: ParityReference
    data: ParityData
    tolerances: dict[str, str] = Field(description="Precision → pass criteria, in words.")
    artifacts: dict[str, str] = Field(description="Artifact name → the sha256 it was measured with.")
    results: list[ParityRow]
    output_tolerances: dict[str, dict[str, str]] | None = Field(
        default=None, description="Several outputs: output name → precision → pass criteria, in words."
    )
    cpu_classes: CpuClasses | None = Field(
        default=None, description="--cpu: the same exports under emulated CPU classes."
    )
    passed: bool

    def passing(self) -> dict[tuple[str, str], ParityRow]:
        """The first row of each (artifact, runtime) whose every row passed.

        Keyed by runtime too: a row from another runtime (TFLM's run of tflite-int8, from `edgekit mcu`) says
        nothing about the runtime a benchmark measured. A model with several outputs has one row per output: the
        artifact passed when every one of them did.
        """
        failed = {(r.artifact, r.runtime) for r in self.results if not r.passed}
        passing: dict[tuple[str, str], ParityRow] = {}
        for r in self.results:
            if (r.artifact, r.runtime) not in failed:
                passing.setdefault((r.artifact, r.runtime), r)
        return passing
