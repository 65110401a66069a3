"""diagnose/diagnose.json: each export against the Keras reference, layer by layer (`edgekit diagnose`).

Written by `toolkit.diagnosis.step.diagnose_step`. The parts readers use (the reports, the CLI) are typed
field by field; the per-layer diagnostics whose keys depend on the layer or the cause found (a fused layer,
a channel outlier, a profile of ONNX Runtime kernels) are `OPEN` parts that name their usual keys.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from toolkit.run.documents.base import Document, Part
from toolkit.run.documents.common import CpuInfo


class DiagnoseData(Part):
    """The test inputs the diagnosis ran on."""

    source: str
    verified: bool | None = Field(description="None when the caller passed arrays.")
    subset: str = Field(description='e.g. "the first 500 of the test set".')
    name: str | None = Field(default=None, description="The dataset's name (MNIST, the user's .npz or folder).")


class DiagnoseThresholds(Part):
    """When a layer counts as departing from Keras, and how the metrics are computed."""

    departs_below_snr_db: float
    departs_below_cosine: float
    snr_cap_db: float = Field(description="The SNR reported for an exact match.")
    metrics: str


class ReferenceLayer(Part):
    """One layer of the Keras reference, as diagnose.json records it (`toolkit.diagnosis.layers.KerasLayer`)."""

    name: str
    type: str
    shape: list[int | None]
    inputs: list[str] = Field(description="The layers whose outputs it takes.")


class DiagnoseReference(Part):
    artifact: str
    layers: list[ReferenceLayer]


class OutputError(Part):
    """The final output's error against Keras."""

    max_abs_err: float
    mean_abs_err: float
    max_rel_err: float = Field(description="max_abs_err over the largest |Keras output|.")
    relative_to: str


class Instrumentation(Part):
    """How the export's intermediate tensors were read, and whether reading them changed its output."""

    how: str
    max_abs_diff_vs_plain_output: float
    top1_changes_vs_plain: int


class LayerRow(Part):
    """One Keras layer against the export's tensor for it (`toolkit.diagnosis.metrics.layer_rows`).

    A layer fused away or not found in the export has only its name, type, note and `tensor` None.
    """

    OPEN: ClassVar[bool] = True  # fused layers add `fused_into`; channel statistics vary with the layer

    layer: str
    type: str
    note: str = ""
    tensor: str | None = None
    snr_db: float | None = None
    cosine: float | None = None
    added_error_pct: float | None = Field(default=None, description="The share of error power this layer adds, in %.")
    departs: bool | None = None


class Departure(Part):
    """The first layer that departs from Keras, and why (`toolkit.diagnosis.metrics.first_departure`)."""

    OPEN: ClassVar[bool] = True

    layer: str | None = None
    reason: str | None = None


class Cause(Part):
    """What the departure comes from and what to do (`toolkit.diagnosis.cause.explain_cause`)."""

    OPEN: ClassVar[bool] = True  # each kind of cause adds its own evidence

    kind: str
    layer: str | None = None
    summary: str | None = Field(default=None, description="One line: the layer, the channels and the reason.")
    advice: str | None = None
    output: str | None = Field(
        default=None, description="A model with several outputs: the output this departure hurts (None: one output)."
    )


class SensitivityRow(Part):
    """Accuracy with only this layer in float / only it quantized (from mixed.json or `--sensitivity`)."""

    OPEN: ClassVar[bool] = True

    layer: str
    only_float: float | None = None
    only_quantized: float | None = None
    only_float_agreement: float | None = None
    only_quantized_agreement: float | None = None


class AddedError(Part):
    layer: str
    added_error_pct: float
    snr_drop_db: float | None
    snr_db: float | None


class Gallery(Part):
    """The test images whose top-1 differs from Keras's."""

    count: int
    shown: int
    file: str | None = Field(description="The PNG beside diagnose.json; None when none was drawn.")
    indices: list[int]
    skipped: str | None = Field(default=None, description="Why no gallery was drawn.")


class OutputKindError(Part):
    """One output's error against Keras, measured as parity judges its kind (`toolkit.diagnosis.outputs`)."""

    measure: str = Field(
        description="top-1 agreement (probabilities, logits, class indices), max relative error (values) or "
        "max coordinate |Δ| / box scale (boxes)."
    )
    value: float
    max_abs_err: float
    mean_abs_err: float
    max_rel_err: float
    relative_to: str
    disagreements: int | None = None
    accuracy: float | None = Field(default=None, description="Against the targets, when the output classifies.")
    reference_accuracy: float | None = None
    iou_with_reference: float | None = Field(default=None, description="Boxes: mean IoU with the reference's boxes.")


class DiagnosedOutput(Part):
    """One output of a model with several outputs: its part of the per-layer map and where its error enters."""

    output: str
    kind: str
    layer: str = Field(description="The Keras layer that makes it.")
    snr_db: float | None = Field(description="The SNR of that layer's tensor (None: no tensor matched).")
    error: OutputKindError
    layers: list[str] = Field(description="The artifact's rows (layers and inputs) this output depends on.")
    first_departure: Departure | None
    cause: Cause | None
    added_error_ranking: list[AddedError] = Field(description="Its layers by the error they add (top 5).")
    hurt: bool = Field(description="The output whose layer ends with the lowest SNR: the one the export hurts most.")
    note: str = Field(
        default="",
        description="Why an output has no row of its own (a file source's ArgMax label), and whose map it takes.",
    )


class DiagnosedArtifact(Part):
    """One export (`toolkit.diagnosis.artifact.diagnose_artifact`)."""

    artifact: str
    format: str
    precision: str
    runtime: str
    path: str
    task: str = Field(description="classification or regression.")
    accuracy: float | None
    reference_accuracy: float | None
    top1_agreement: float | None = Field(description="None for a regression model.")
    disagreements: int | None
    output_error: OutputError
    instrumentation: Instrumentation
    flatten_order: str | None
    layers: list[LayerRow]
    first_departure: Departure | None
    cause: Cause | None
    sensitivity: list[SensitivityRow] | None
    added_error_ranking: list[AddedError]
    gallery: Gallery
    outputs: list[DiagnosedOutput] | None = Field(
        default=None,
        description="A model with several inputs or outputs: each output's map; the artifact's departure, cause "
        "and ranking are the hurt output's. None for one input and one output.",
    )


class SpeedRecord(Part):
    """Why a quantized artifact is (or is not) slower than its fp32 sibling (`toolkit.diagnosis.speed`)."""

    OPEN: ClassVar[bool] = True  # timing and evidence hold op profiles that differ per runtime

    artifact: str
    runtime: str
    precision: str
    sibling: str | None = None
    slower: bool | None = Field(default=None, description="None: not compared (no fp32 sibling).")
    reproduced: bool | None = None
    reason: str


class DiagnoseDocument(Document):
    """diagnose/diagnose.json: per-layer error of each export, its cause, its gallery and the slowdown explainer."""

    FILE: ClassVar[str] = "diagnose.json"
    FIX: ClassVar[str] = "re-run `edgekit diagnose`"

    created_utc: str
    cpu: CpuInfo | None = Field(
        default=None, description="The instruction-set class and features of the machine that ran it."
    )
    run: str = Field(description="The run directory's name.")
    images: int
    data: DiagnoseData
    thresholds: DiagnoseThresholds
    reference: DiagnoseReference
    artifacts: list[DiagnosedArtifact]
    speed: list[SpeedRecord]
    sensitivity_source: str | None = Field(default=None, description="Where the sensitivity rankings come from.")
    bench_json: str | None = Field(default=None, description="The bench.json whose timings the explainer reused.")
    libraries: dict[str, str]

    def artifact(self, name: str) -> DiagnosedArtifact | None:
        """The result for `name`, or None."""
        return next((a for a in self.artifacts if a.artifact == name), None)
