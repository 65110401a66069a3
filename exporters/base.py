"""Export formats, precisions, artifact names and the record every exporter returns."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from runtimes.base import TensorSpec
from runtimes.spec import ModelSpec


class ExportFormat(str, Enum):
    TFLITE = "tflite"
    ONNX = "onnx"
    OPENVINO = "openvino"  # OpenVINO IR (.xml + .bin), converted from the onnx-fp32 file


class Precision(str, Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8_DYNAMIC = "int8-dynamic"  # int8 weights, float activations (no calibration)
    INT8 = "int8"  # full integer, calibrated on training images
    INT16X8 = "int16x8"  # int16 activations, int8 weights (TFLite only; runs on reference kernels)
    INT4_WEIGHTS = "int4-weights"  # int4 weights, float activations (TFLite via ai-edge-quantizer; for size)
    # Full int8 except chosen Keras layers kept in float (exporters/mixed.py); made by `export --max-accuracy-drop`,
    # never a default target.
    INT8_MIXED = "int8-mixed"


SUPPORTED: dict[ExportFormat, tuple[Precision, ...]] = {
    ExportFormat.TFLITE: (
        Precision.FP32,
        Precision.FP16,
        Precision.INT8_DYNAMIC,
        Precision.INT8,
        Precision.INT16X8,
        Precision.INT4_WEIGHTS,
    ),
    ExportFormat.ONNX: (Precision.FP32, Precision.INT8),
    ExportFormat.OPENVINO: (Precision.FP32, Precision.FP16, Precision.INT8),
}
NEEDS_CALIBRATION = frozenset({Precision.INT8, Precision.INT16X8, Precision.INT8_MIXED})
# Exported only when asked for: 16x8 is not delegated to XNNPACK and is ~50x slower here; int4 weights need
# the optional ai-edge-quantizer package and only save size.
OPT_IN = frozenset({Precision.INT16X8, Precision.INT4_WEIGHTS})
# Formats exported only when asked for (`--format openvino`, `--runtime openvino`): the default run stays the same
# without the optional `openvino` package.
OPT_IN_FORMATS = frozenset({ExportFormat.OPENVINO})
DEFAULT_FORMATS = tuple(f for f in ExportFormat if f not in OPT_IN_FORMATS)
SUFFIX = {ExportFormat.TFLITE: ".tflite", ExportFormat.ONNX: ".onnx", ExportFormat.OPENVINO: ".xml"}
RUNTIME = {ExportFormat.TFLITE: "tflite", ExportFormat.ONNX: "onnxruntime", ExportFormat.OPENVINO: "openvino"}


def artifact_name(fmt: ExportFormat, precision: Precision) -> str:
    """Stable artifact id used in every table and JSON file, e.g. `tflite-int8`."""
    return f"{fmt.value}-{precision.value}"


def artifact_filename(fmt: ExportFormat, precision: Precision) -> str:
    return f"model_{precision.value.replace('-', '_')}{SUFFIX[fmt]}"


@dataclass(frozen=True)
class ExportResult:
    """What an exporter wrote. `notes` keeps warnings the converters emitted, for the report."""

    name: str
    path: Path
    format: ExportFormat
    precision: Precision
    size_bytes: int
    sha256: str
    input_spec: TensorSpec
    output_spec: TensorSpec
    seconds: float
    notes: tuple[str, ...] = field(default=())
    float_layers: tuple[str, ...] | None = None  # int8-mixed only: the Keras layers kept in float
    quantization: dict[str, Any] | None = None  # the int8 recipe and its target (`exporters.int8_recipe`)
    # Several inputs/outputs: every tensor of the file (its dtypes and quantization) under the model's names;
    # `input_spec`/`output_spec` are then the file's first input and output.
    model_spec: ModelSpec | None = None
    # A format of two files (OpenVINO IR: the `.xml` is `path`, its `.bin` is this); `size_bytes` counts both.
    weights: Path | None = None
    weights_sha256: str | None = None

    @property
    def input_specs(self) -> tuple[TensorSpec, ...]:
        """Every input of the file (the model's names for several tensors)."""
        return self.model_spec.inputs if self.model_spec is not None else (self.input_spec,)

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        """Every output of the file (the model's names for several tensors)."""
        return self.model_spec.outputs if self.model_spec is not None else (self.output_spec,)

    @classmethod
    def written(
        cls,
        path: Path,
        fmt: ExportFormat,
        precision: Precision,
        specs: tuple[TensorSpec, TensorSpec],
        started: float,
        notes: list[str],
        float_layers: list[str] | None = None,
        quantization: dict[str, Any] | None = None,
        model_spec: ModelSpec | None = None,
    ) -> ExportResult:
        """The record for a file that has just been written and checked (size and sha256 read back)."""
        from runtimes.files import sha256_file

        return cls(
            name=artifact_name(fmt, precision),
            path=path,
            format=fmt,
            precision=precision,
            size_bytes=path.stat().st_size,
            sha256=sha256_file(path),
            input_spec=specs[0],
            output_spec=specs[1],
            seconds=time.perf_counter() - started,
            notes=tuple(dict.fromkeys(notes)),
            float_layers=None if float_layers is None else tuple(float_layers),
            quantization=quantization,
            model_spec=model_spec,
        )

    def manifest_entry(self, root: Path) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "path": self.path.relative_to(root).as_posix(),
            "format": self.format.value,
            "precision": self.precision.value,
            "runtime": RUNTIME[self.format],
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "input": self.input_spec.to_dict(),
            "output": self.output_spec.to_dict(),
            "export_seconds": round(self.seconds, 3),
            "notes": list(self.notes),
        }
        if self.float_layers is not None:
            entry["float_layers"] = list(self.float_layers)
        if self.quantization is not None:
            entry["quantization"] = dict(self.quantization)
        if self.weights is not None:
            entry["weights"] = self.weights.relative_to(root).as_posix()
            entry["weights_sha256"] = self.weights_sha256
        return entry
