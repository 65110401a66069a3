"""mixed.json: the int8/float mix chosen under an accuracy budget (`edgekit export --max-accuracy-drop` or
`--min-agreement`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from toolkit.run.documents.base import Document, Part


class MixedLayer(Part):
    """One layer's int8 sensitivity (`exporters.sensitivity.LayerSensitivity`)."""

    layer: str
    float_accuracy: float | None = Field(description="Accuracy of full int8 with only this layer kept in float.")
    float_agreement: float = Field(description="Top-1 agreement with Keras, only this layer in float.")
    only_accuracy: float | None = Field(default=None, description="Accuracy with only this layer quantized.")
    only_agreement: float | None = Field(default=None, description="Agreement with only this layer quantized.")


class MixedPoint(Part):
    """The k most sensitive layers kept in float, everything else int8."""

    k: int
    float_layers: list[str]
    accuracy: float | None
    agreement: float
    drop_pt: float | None = Field(description="Keras accuracy minus this accuracy, in points.")
    size_bytes: int
    p50_ms: float = Field(description="Batch-1 median latency, see MixedDocument.timing.")
    meets_budget: bool


class MixedFormat(Part):
    """One format's search: the ranking, the curve and the artifact written (if any)."""

    format: str = Field(description="tflite, onnx or openvino.")
    artifact: str | None = Field(description="e.g. tflite-int8-mixed; None when nothing was written.")
    float_layers: list[str] | None = Field(description="The chosen point's float layers; None: budget not met.")
    met: bool = Field(description="Whether some point of the curve meets the budget.")
    note: str
    ranking: list[MixedLayer] = Field(description="Most sensitive first.")
    curve: list[MixedPoint]


class MixedDocument(Document):
    """mixed.json: the budget, what full int8 gave, and per format the fewest float layers that meet it."""

    FILE: ClassVar[str] = "mixed.json"
    FIX: ClassVar[str] = "re-run `edgekit export --max-accuracy-drop PT`"

    max_drop_pt: float | None = Field(description="Allowed accuracy drop vs Keras, in points.")
    min_agreement: float | None = Field(description="Minimum top-1 agreement with Keras (0..1).")
    images: int = Field(description="Evaluation images: the first N of the test split.")
    data: str | None = None
    keras_accuracy: float | None = Field(description="The reference's accuracy on the images (see `reference`).")
    reference: str = Field(
        default="Keras", description="What the budget is judged against: Keras, or onnx-fp32 for an ONNX source."
    )
    timing: str = Field(description="How p50_ms was measured.")
    formats: list[MixedFormat]
