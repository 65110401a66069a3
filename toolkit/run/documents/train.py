"""train.json: the training run that made model.keras (`toolkit.steps.train.train_step`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from toolkit.run.documents.base import Document, Part
from toolkit.run.documents.common import CpuInfo, TrainOptions


class TrainData(Part):
    """Where the training data came from."""

    source: str
    verified: bool = Field(description="True when the dataset matched its shipped checksums.")
    warnings: list[str]


class TrainDocument(Document):
    """train.json: settings, results and library versions of the training run."""

    FILE: ClassVar[str] = "train.json"
    FIX: ClassVar[str] = "re-run `edgekit train`"

    model_sha256: str = Field(description="sha256 of model.keras; --resume trusts the model only if it matches.")
    created_utc: str
    cpu: CpuInfo | None = Field(
        default=None, description="The instruction-set class and features of the machine that ran it."
    )
    config: TrainOptions
    num_params: int
    wall_seconds: float
    epoch_seconds: list[float]
    test_loss: float
    test_accuracy: float
    history: dict[str, list[float]] = Field(description="Keras history: metric name → one value per epoch.")
    train_images: int
    test_images: int
    data: TrainData
    libraries: dict[str, str] = Field(description="Distribution name → installed version.")
