"""bundle.json: what a device bundle holds (`toolkit.bundles.build.build_bundle`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from toolkit.run.documents.base import Document, Part
from toolkit.run.documents.common import Environment, StoredModelSpec, StoredTensorSpec, TrainingSummary


class MachineTolerance(Part):
    """How far an artifact's outputs on another machine may be from the desktop's.

    What `toolkit.tolerances.machine_tolerance` returns (plain JSON: a board install has no pydantic), recorded
    per artifact in bundle.json and verify.json.
    """

    kind: str = Field(description="max_abs, quantization_step, or index_agreement (class indices).")
    max_abs: float
    step: float | None = Field(description="The output's quantization step; None for float outputs.")
    basis: str
    min_agreement: float | None = Field(
        default=None, description="index_agreement: the share of golden rows that must keep the desktop's index."
    )


class BundleSource(Part):
    """The run the bundle was made from."""

    run_dir: str
    run: str
    manifest_created_utc: str | None = None
    git_sha: str | None = None
    training: TrainingSummary | None = None
    libraries: dict[str, str] | None = None


class GoldenTensor(Part):
    """One golden array of a model with several inputs or outputs: an input's feed or an output's truth."""

    path: str = Field(description="Path of the .npy inside the bundle.")
    shape: list[int]
    dtype: str
    kind: str | None = Field(default=None, description="Outputs: the output's kind (what the truth is).")


class BundleGolden(Part):
    """The golden test rows in the bundle: inputs, and class labels or regression targets.

    A model with several inputs or outputs has `feeds` and `truths` (by tensor name)
    instead of `inputs`, `labels` and `targets`.
    """

    inputs: str | None = Field(description="Path of the .npy inputs inside the bundle; None with `feeds`.")
    labels: str | None = Field(description="Path of the int64 class labels; None for a regression model.")
    targets: str | None = Field(
        default=None, description="Path of the float32 regression targets (output kind values)."
    )
    task: str | None = Field(default=None, description="classification or regression.")
    data_name: str | None = Field(
        default=None, description="The dataset the rows come from, e.g. MNIST or flowers.npz."
    )
    images: int
    shape: list[int] | None = Field(description="The inputs' shape; None with `feeds`.")
    dtype: str
    selection: str
    data_source: str | None = None
    data_verified: bool | None = None
    feeds: dict[str, GoldenTensor] | None = Field(
        default=None, description="Several inputs: input name → its float32 golden rows (the model's input shape)."
    )
    truths: dict[str, GoldenTensor] | None = Field(
        default=None,
        description="Several outputs: output name → its truth (int64 labels or class indices; float32 values, boxes).",
    )


class BundleOutput(Part):
    """One output of a bundled artifact of a model with several outputs: the desktop's values and tolerance."""

    name: str
    kind: str = Field(description="The output's kind: probabilities, logits, values, boxes or class_indices.")
    expected: str = Field(description="Path of the desktop's outputs (.npy) inside the bundle.")
    expected_builtin: str | None = Field(
        default=None, description="As the artifact's `expected_builtin`, for this output."
    )
    tolerance: MachineTolerance
    desktop_accuracy: float | None = Field(
        default=None, description="On the golden labels (probabilities, logits, class_indices); else None."
    )


class BundleArtifact(Part):
    """One artifact in the bundle, with the desktop's outputs on the golden images."""

    name: str
    path: str
    format: str
    precision: str
    runtime: str
    backend: str
    sha256: str
    size_bytes: int
    weights: str | None = Field(default=None, description="OpenVINO IR: the .bin beside the .xml `path`.")
    weights_sha256: str | None = None
    input: StoredTensorSpec | None = None
    output: StoredTensorSpec | None = None
    tolerance: MachineTolerance | None = Field(description="The output's tolerance; None with `outputs`.")
    expected: str | None = Field(
        description="Path of the desktop's outputs (.npy) inside the bundle; None with `outputs`."
    )
    expected_builtin: str | None = Field(
        default=None,
        description="Quantized TFLite: the desktop's outputs with LiteRT's built-in kernels (no XNNPACK), which round "
        "differently; None when they equal `expected`. verify uses it for a runtime that did not delegate to XNNPACK.",
    )
    desktop_accuracy: float | None = Field(description="On the golden labels; None for a regression model.")
    model_spec: StoredModelSpec | None = None
    outputs: list[BundleOutput] | None = Field(
        default=None, description="Several inputs or outputs: every output, in the model's order."
    )


class BundleFile(Part):
    """A file of the bundle and its checksum."""

    sha256: str
    size_bytes: int


class BundleDocument(Document):
    """bundle.json: the artifacts, golden data and checksums of a bundle for `edgekit verify` on a device."""

    FILE: ClassVar[str] = "bundle.json"
    FIX: ClassVar[str] = "re-create the bundle with `edgekit bundle`"

    kind: Literal["edgekit-bundle"]
    created_utc: str
    edgekit_version: str
    source: BundleSource
    environment: Environment
    golden: BundleGolden
    tolerances: dict[str, str] = Field(description="Precision → tolerance in words.")
    artifacts: list[BundleArtifact]
    files: dict[str, BundleFile] = Field(description="Relative path → checksum, for every file in the bundle.")
