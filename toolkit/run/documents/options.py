"""run.json: the options `edgekit pipeline` ran with, so `--resume` repeats exactly the same run."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from toolkit.run.documents.base import Document, Part
from toolkit.run.documents.common import TrainOptions


class BenchOptions(Part):
    """The benchmark settings (`toolkit.bench.BenchSettings.to_dict`)."""

    batch_sizes: list[int]
    threads: list[int] | None = Field(description="None: 1 and every available core.")
    xnnpack: list[bool]
    ort_optimization: list[str]
    warmup_runs: int
    warmup_seconds: float
    min_runs: int
    min_seconds: float
    max_seconds: float
    measure_peak: bool


class RunOptions(Document):
    """run.json: training config, export targets and bench settings of a pipeline run."""

    FILE: ClassVar[str] = "run.json"
    FIX: ClassVar[str] = "start a new run instead of --resume"

    train: TrainOptions
    targets: list[tuple[str, str]] = Field(description="(format, precision) pairs to export.")
    calibration_size: int
    int8_target: str = Field("portable", description="--target: the CPU class the int8 exports are for.")
    bench: BenchOptions
    data: str | None = Field(
        None, description="--data: shipped, keras-cache, an IDX folder, or (with --model) a .npz or image folder."
    )
    allow_unverified: bool = False
    model: str | None = Field(
        None, description="--model: the user's .keras/.h5/SavedModel (None: train the reference)."
    )
    output_kind: str | None = Field(
        None, description="--output-kind: probabilities, logits or values (None: detected)."
    )
    custom_objects: str | None = Field(None, description="--custom-objects: Python file registering custom layers.")
    input_scale: float | None = Field(None, description="--input-scale: multiply the stored data by this.")
    diagnose: bool = Field(False, description="--diagnose: run `edgekit diagnose` on the int8 exports after bench.")
    bundle: str | None = Field(None, description="--bundle: write a bundle (folder or .tar.gz) here at the end.")
