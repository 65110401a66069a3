"""Keras -> TFLite (fp32, fp16, dynamic-range int8, full int8 with int8 I/O) via TFLiteConverter.

int4 weights go through the AI Edge Quantizer instead (`exporters.int4_export`); `export_tflite` hands them on.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import (
    NEEDS_CALIBRATION,
    SUPPORTED,
    ExportFormat,
    ExportResult,
    Precision,
    artifact_filename,
)
from exporters.check import check_artifact, check_named_artifact
from exporters.errors import ExportError, UnsupportedPrecisionError
from exporters.int8_recipe import quantization_record
from exporters.quiet import captured
from exporters.several import (
    CalibrationFeeds,
    check_feeds,
    has_several_tensors,
    keras_spec,
    samples,
    single_feed,
    tflite_flatbuffer,
)
from runtimes.files import atomic_path
from runtimes.tf_import import import_keras, import_tensorflow


def _configure(
    converter: Any, tf: Any, precision: Precision, calibration: np.ndarray | Mapping[str, np.ndarray] | None
) -> None:
    # int8-dynamic is DEFAULT optimisation alone: int8 weights, float activations, no calibration.
    if precision is Precision.FP32:
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision is Precision.FP16:
        converter.target_spec.supported_types = [tf.float16]
    elif precision in NEEDS_CALIBRATION:
        assert calibration is not None

        def representative() -> Iterator[list[np.ndarray] | dict[str, np.ndarray]]:
            if isinstance(calibration, Mapping):  # several inputs: one dict of samples, keyed by signature name
                yield from samples(calibration)
                return
            for i in range(len(calibration)):
                yield [calibration[i : i + 1]]

        converter.representative_dataset = representative
        if precision is Precision.INT8:
            # Integer-only ops and int8 I/O: what an int8-only accelerator or MCU would need.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        else:  # int16x8: int16 activations, int8 weights, float I/O
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]


@dataclass(frozen=True)
class KerasSavedModel:
    """A Keras model written once as the SavedModel TFLite's Keras converter writes for every conversion.

    `TFLiteConverter.from_keras_model` exports the model to a fresh SavedModel each time (`ExportArchive`, the call
    with training=False), which is most of a conversion's time for a small model; each precision converts from
    this one copy instead, into the same bytes (`_converter`). `notes`: what writing it warned.
    """

    path: Path
    notes: tuple[str, ...] = field(default=())


@contextlib.contextmanager
def keras_saved_model(model: Any) -> Iterator[KerasSavedModel | None]:
    """The SavedModel of `model` for the TFLite conversions made inside the block (None: each converts from the
    model, as for a model with several tensors, a subclassed model, or when writing it fails)."""
    keras, tf = import_keras(), import_tensorflow()
    from keras.src.models import Functional  # what the converter writes this way (others: their save spec)

    if has_several_tensors(model) or not isinstance(model, (keras.Sequential, Functional)):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="edgekit-tflite-") as work:
        notes: list[str] = []
        try:
            with captured(notes):
                # As TFLiteKerasModelConverterV2._convert_keras_to_saved_model writes it for a Functional model.
                archive = keras.export.ExportArchive()
                archive.track(model)
                signature = [tf.TensorSpec(x.shape, dtype=x.dtype, name=x.name) for x in model.inputs]
                archive.add_endpoint("serve", functools.partial(model.__call__, training=False), signature)
                archive.write_out(work)
        except Exception:  # the converter's own path reports the problem, per precision
            saved = None
        else:
            saved = KerasSavedModel(Path(work), tuple(notes))
        yield saved


def _converter(tf: Any, model: Any, saved: KerasSavedModel | None) -> Any:
    """A TFLite converter for `model`, from `saved` when given.

    The flatbuffer records where a model came from; from a SavedModel it would say "SavedModel" where the
    Keras converter says "Keras model" (one byte), so the record is set back and the artifact stays byte-identical.
    """
    if saved is None:
        return tf.lite.TFLiteConverter.from_keras_model(model)
    from tensorflow.lite.python.conversion_metadata_schema_py_generated import ModelType

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved.path))
    environment = getattr(getattr(converter, "_metadata", None), "environment", None)
    if environment is not None:
        environment.modelType = ModelType.KERAS_MODEL
    return converter


def export_tflite(
    model: Any,
    out_dir: Path,
    *,
    precision: Precision = Precision.FP32,
    calibration_data: np.ndarray | CalibrationFeeds | None = None,
    saved: KerasSavedModel | None = None,
) -> ExportResult:
    """Convert a Keras model to `.tflite` in `out_dir` and check that the file loads and runs.

    Args:
        model: a built Keras model (its ModelSpec says what it takes and gives); one with several inputs or
            outputs keeps their Keras names in the file's signature (`exporters.several`).
        out_dir: directory for the artifact (created if missing).
        precision: one of `SUPPORTED[ExportFormat.TFLITE]`.
        calibration_data: float32 samples for full-int8 calibration (required for `int8`): an array, or for
            several inputs one array per input name; unused by `int4-weights`, which needs none.
        saved: `model` as a SavedModel (`keras_saved_model`), so several precisions do not each write one.

    Returns:
        The artifact's `ExportResult`.

    Raises:
        UnsupportedPrecisionError: unknown precision, or int8 without calibration data.
        ExportError: the converter failed or its output does not load or run.
    """
    precision = Precision(precision)
    if precision not in SUPPORTED[ExportFormat.TFLITE]:
        raise UnsupportedPrecisionError(
            f"TFLite cannot export precision {precision.value!r}; choose one of "
            f"{', '.join(p.value for p in SUPPORTED[ExportFormat.TFLITE])}."
        )
    if precision in NEEDS_CALIBRATION and (calibration_data is None or len(calibration_data) == 0):
        raise UnsupportedPrecisionError(
            f"{precision.value} needs calibration images; pass calibration data or choose int8-dynamic."
        )
    if has_several_tensors(model):
        return _export_several(model, Path(out_dir), precision, calibration_data)
    if isinstance(calibration_data, Mapping):
        calibration_data = single_feed(calibration_data)
    if precision is Precision.INT4_WEIGHTS:
        from exporters.int4_export import export_tflite_int4

        return export_tflite_int4(model, out_dir)
    tf = import_tensorflow()
    notes: list[str] = [] if saved is None else list(saved.notes)
    path = Path(out_dir) / artifact_filename(ExportFormat.TFLITE, precision)
    start = time.perf_counter()
    with captured(notes):
        try:
            converter = _converter(tf, model, saved)
            _configure(converter, tf, precision, calibration_data)
            flatbuffer = converter.convert()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"TFLite {precision.value} conversion failed: {first[:300]}") from exc
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
        specs = check_artifact(tmp, calibration_data)
    recipe = quantization_record(ExportFormat.TFLITE, precision)
    return ExportResult.written(path, ExportFormat.TFLITE, precision, specs, start, notes, quantization=recipe)


def _export_several(
    model: Any, out_dir: Path, precision: Precision, calibration_data: np.ndarray | CalibrationFeeds | None
) -> ExportResult:
    """A model with several inputs or outputs, by a SavedModel that keeps its tensor names (`exporters.several`)."""
    if precision is Precision.INT4_WEIGHTS:
        raise UnsupportedPrecisionError(
            "int4-weights runs single-input, single-output models for now; choose fp32, fp16, int8-dynamic or int8."
        )
    spec = keras_spec(model)
    feeds = check_feeds(calibration_data, spec) if precision in NEEDS_CALIBRATION else None
    tf = import_tensorflow()
    notes: list[str] = []
    path = out_dir / artifact_filename(ExportFormat.TFLITE, precision)
    start = time.perf_counter()
    with captured(notes):
        try:
            flatbuffer = tflite_flatbuffer(model, spec, lambda c: _configure(c, tf, precision, feeds))
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"TFLite {precision.value} conversion failed: {first[:300]}") from exc
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
        file_spec, specs = check_named_artifact(tmp, spec, feeds)
    recipe = quantization_record(ExportFormat.TFLITE, precision)
    return ExportResult.written(
        path, ExportFormat.TFLITE, precision, specs, start, notes, quantization=recipe, model_spec=file_spec
    )
