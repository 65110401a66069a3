"""manifest.json: every artifact of a run with its sha256 (`toolkit.run.layout.write_manifest`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from toolkit.run.documents.base import Document, Part
from toolkit.run.documents.common import StoredModelSpec, StoredTensorSpec, TrainingSummary


class QuantizationRecipe(Part):
    """How an int8 (or other quantized) artifact was made, and for which CPU class (`exporters.int8_recipe`)."""

    target: str = Field(description="portable, x86-vnni or arm64: the CPU class the file is made for.")
    recipe: str = Field(description="e.g. qdq-u8s8-7bit (ONNX), tflite-int8.")
    description: str
    portable: bool = Field(description="True when the file gives the same answers on every CPU class.")
    note: str = Field(description="Why this recipe for this target.")
    calibration_images: int | None = Field(
        default=None, description="Images the quantizer calibrated on, where it records them (OpenVINO's NNCF)."
    )


class ArtifactEntry(Part):
    """One model file of the run: the reference (`keras-fp32`; `onnx-fp32` / `tflite-fp32` for an ONNX / TFLite
    source) or an export."""

    name: str = Field(description="e.g. tflite-int8; unique within the run.")
    path: str = Field(description="Relative to the run directory, with / separators.")
    format: str = Field(description="keras, tflite, onnx or openvino.")
    precision: str = Field(description="fp32, fp16, int8-dynamic, int8, int16x8, int4-weights or int8-mixed.")
    runtime: str = Field(description="The runner that loads it: keras, tflite, onnxruntime or openvino.")
    size_bytes: int
    sha256: str
    # Exports only: the reference entry has none of these.
    input: StoredTensorSpec | None = None
    output: StoredTensorSpec | None = None
    export_seconds: float | None = None
    notes: list[str] | None = None
    float_layers: list[str] | None = Field(
        default=None, description="int8-mixed only: the Keras layers kept in float (with their output tensors)."
    )
    quantization: QuantizationRecipe | None = Field(
        default=None, description="Quantized artifacts: the recipe and target."
    )
    model_spec: StoredModelSpec | None = Field(
        default=None, description="The model's ModelSpec (runtimes.spec.ModelSpec.to_dict): inputs, outputs, classes."
    )
    weights: str | None = Field(
        default=None, description="OpenVINO IR: the .bin weights beside the .xml `path` (relative, / separators)."
    )
    weights_sha256: str | None = Field(default=None, description="The sha256 of `weights`.")

    def files(self) -> list[tuple[str, str]]:
        """Every file of the artifact with its sha256: the model file, and an IR's weights."""
        pairs = [(self.path, self.sha256)]
        if self.weights is not None and self.weights_sha256 is not None:
            pairs.append((self.weights, self.weights_sha256))
        return pairs


class Calibration(Part):
    """The images int8 exports were calibrated on."""

    images: int
    seed: int
    source: str
    data: str | None = Field(default=None, description="The dataset's name (MNIST, the user's .npz or folder).")


class ManifestDocument(Document):
    """manifest.json: the artifacts of a run; every later step checks files against their sha256 here."""

    FILE: ClassVar[str] = "manifest.json"
    FIX: ClassVar[str] = "re-run `edgekit export`"

    created_utc: str
    edgekit_version: str
    git_sha: str | None
    libraries: dict[str, str] = Field(description="Distribution name → installed version.")
    int8_target: str | None = Field(
        default=None, description="The CPU class the int8 exports target (portable by default)."
    )
    calibration: Calibration | None = None
    training: TrainingSummary | None = None
    reference: str | None = Field(
        default=None,
        description="The reference artifact every export is compared with: onnx-fp32 for a run made from an "
        "ONNX file, tflite-fp32 for one made from a TFLite file; absent: keras-fp32.",
    )
    artifacts: list[ArtifactEntry]

    def artifact(self, name: str) -> ArtifactEntry | None:
        """The entry called `name`, or None."""
        return next((a for a in self.artifacts if a.name == name), None)
