"""model.json and dataset.json: the user's own model and data a run was made from (`--model`, `--data`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from toolkit.run.documents.base import Document
from toolkit.run.documents.common import StoredModelSpec


class ModelDocument(Document):
    """model.json: which model file the run's model.keras came from, and what it holds."""

    FILE: ClassVar[str] = "model.json"
    FIX: ClassVar[str] = "re-run with --model"

    name: str = Field(description="The user's file or folder name, as reports show it.")
    source: str = Field(description="Absolute path of the file the model was imported from.")
    format: str = Field(description="keras, h5, savedmodel, onnx or tflite.")
    model_sha256: str = Field(
        description="sha256 of the run's model.keras (model.onnx / model.tflite for an ONNX / TFLite source)."
    )
    params: int
    layers: list[dict[str, str]] = Field(description="Every layer as {name, class}.")
    unknown_layers: list[dict[str, str]] = Field(description="Layers edgekit has not been tested with (tried anyway).")
    output_kind: str = Field(description="probabilities, logits or values.")
    model_spec: StoredModelSpec
    created_utc: str
    # An ONNX or TFLite source only (absent for Keras models):
    source_sha256: str | None = Field(default=None, description="sha256 of the user's .onnx or .tflite file.")
    layout: str | None = Field(default=None, description="NCHW, NHWC or NC: how the model takes its input.")
    layout_from: str | None = Field(
        default=None, description="How the layout was decided: input shape, data (the rows' shape) or assumed."
    )
    opset: int | None = Field(default=None, description="The file's ai.onnx opset.")
    producer: str | None = Field(default=None, description="The tool that wrote the file (producer name and version).")
    fixed_batch: int | None = Field(
        default=None,
        description="A TFLite source whose batch axis is fixed (litert-torch writes 1): LiteRT runs it one sample "
        "at a time; absent: a dynamic batch.",
    )


class DatasetDocument(Document):
    """dataset.json: the data a run uses when a step is not given --data (absent: the shipped MNIST)."""

    FILE: ClassVar[str] = "dataset.json"
    FIX: ClassVar[str] = "re-run with --data"

    name: str
    kind: str = Field(description="mnist, npz or folder.")
    source: str
    path: str | None = Field(description="Absolute path of the .npz file or image folder (None: shipped MNIST).")
    sha256: str | None = Field(description="sha256 of the .npz, or of a folder's (path, sha256) list.")
    train: int
    test: int
    sample_shape: list[int]
    dtype: str
    class_names: list[str] | None
    scale: float = Field(description="Inputs are the stored values times this (MNIST: 1/255).")
    split: str = Field(description="How the test split was obtained.")
    verified: bool
    seed: int = Field(description="Seed of the train/test split (x/y files, folders) and the calibration draw.")
    value_range: tuple[float, float] = Field(description="The model's input range over the training split.")
    task: str = Field(description="classification, regression, or several outputs.")
    value_ranges: dict[str, tuple[float, float]] | None = Field(
        default=None, description="A model with several inputs: each input's range over the training split."
    )
