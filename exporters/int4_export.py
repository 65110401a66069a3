"""Keras -> TFLite with int4 weights and float activations, via the AI Edge Quantizer.

TFLiteConverter has no 4-bit option; the AI Edge Quantizer (`ai-edge-quantizer`, the `int4` extra) rewrites
the fp32 flatbuffer: its `weight_only_wi4_afp32` recipe stores each supported op's weights (CONV_2D,
FULLY_CONNECTED, ...) as channelwise symmetric int4 and inserts a DEQUANTIZE before the op, so the arithmetic
stays float. It is a size format: about 8x smaller than fp32, as fast as fp32 (or a little slower).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from exporters.base import ExportFormat, ExportResult, Precision, artifact_filename
from exporters.check import check_artifact
from exporters.errors import ExportError, UnsupportedPrecisionError
from exporters.int8_recipe import quantization_record
from exporters.quiet import captured
from runtimes.files import atomic_path
from runtimes.tf_import import import_tensorflow

PACKAGE = "ai-edge-quantizer"
# The version tested with ai-edge-litert 2.3.0 (it pins that runtime); constraints.txt has the same pin.
TESTED_VERSION = "0.10.0"
INSTALL = f"pip install '.[int4]' (or pip install {PACKAGE}=={TESTED_VERSION})"


def quantizer_version() -> str | None:
    """The installed AI Edge Quantizer's version, or None (reads package metadata: imports nothing)."""
    from importlib import metadata

    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def _quantizer() -> tuple[Any, Any]:
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as exc:
        raise UnsupportedPrecisionError(
            f"int4-weights needs the AI Edge Quantizer ({PACKAGE}), which is not installed: {INSTALL}."
        ) from exc
    return quantizer, recipe


def int4_weights(float_tflite: bytes) -> bytes:
    """An fp32 `.tflite` flatbuffer with every supported op's weights stored as channelwise int4.

    Raises:
        UnsupportedPrecisionError: the AI Edge Quantizer is not installed.
        ExportError: the quantizer failed on this model.
    """
    quantizer, recipe = _quantizer()
    try:
        qt = quantizer.Quantizer(bytearray(float_tflite), recipe.weight_only_wi4_afp32())
        result = qt.quantize()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"the AI Edge Quantizer could not quantize the weights to int4: {first[:300]}") from exc
    return bytes(result.quantized_model)


def export_tflite_int4(model: Any, out_dir: Path) -> ExportResult:
    """Convert a Keras model to fp32 `.tflite`, quantize its weights to int4, write and check the file.

    Args:
        model: a built Keras model with one float32 input and one output.
        out_dir: directory for the artifact (created if missing).

    Returns:
        The `tflite-int4-weights` artifact's `ExportResult`.

    Raises:
        UnsupportedPrecisionError: the AI Edge Quantizer is not installed (checked before converting).
        ExportError: conversion or quantization failed, or the installed TFLite runtime cannot run the file.
    """
    _quantizer()  # a missing package fails before the conversion's seconds are spent
    tf = import_tensorflow()
    notes: list[str] = []
    path = Path(out_dir) / artifact_filename(ExportFormat.TFLITE, Precision.INT4_WEIGHTS)
    start = time.perf_counter()
    with captured(notes):
        try:
            float_tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"TFLite fp32 conversion (before int4) failed: {first[:300]}") from exc
        # The quantizer prints its size summary to stdout; `captured` keeps the exporter silent.
        flatbuffer = int4_weights(float_tflite)
    notes.append(f"int4 weights by {PACKAGE} {quantizer_version()} (weight_only_wi4_afp32: channelwise, float compute)")
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
        try:
            specs = check_artifact(tmp)
        except ExportError as exc:
            raise ExportError(f"{_runtime()} cannot run int4 weights: {exc}") from exc
    recipe = quantization_record(ExportFormat.TFLITE, Precision.INT4_WEIGHTS)
    return ExportResult.written(
        path, ExportFormat.TFLITE, Precision.INT4_WEIGHTS, specs, start, notes, quantization=recipe
    )


def _runtime() -> str:
    from runtimes.tflite_runner import TFLiteRunner

    return TFLiteRunner.runtime_version() or "the TFLite runtime"
