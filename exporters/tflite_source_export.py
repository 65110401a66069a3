"""Artifacts made from an fp32 TFLite file (the run's reference, model.tflite): the AI Edge Quantizer for the
TFLite precisions, tf2onnx for ONNX.

TFLiteConverter needs the model it converted (Keras, SavedModel); a .tflite file, e.g. what litert-torch writes
from a PyTorch module, is quantized by the AI Edge Quantizer (`ai-edge-quantizer`, the `int4` extra), which
rewrites the flatbuffer itself:

- fp16: fp16 weights, dequantized to float before each op (`FLOAT_CASTING`, weight-only): half the size.
- int8-dynamic: `dynamic_wi8_afp32`: channelwise int8 weights, activations quantized at run time.
- int8: `static_wi8_ai8`: int8 weights and activations with int8 I/O, calibrated on the run's data (what TFLite
  Micro runs).
- int4-weights: `weight_only_wi4_afp32` (`exporters.int4_export.int4_weights`).

The fp32 artifact is the reference file itself (`toolkit.run.layout.TFLITE_REFERENCE`), not written again.
ONNX: `tf2onnx.convert.from_tflite` writes onnx-fp32, from which `exporters.onnx_export.export_onnx_file` makes
onnx-fp16 and onnx-int8.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import ExportFormat, ExportResult, Precision, artifact_filename
from exporters.check import check_artifact
from exporters.errors import ExportError, UnsupportedPrecisionError
from exporters.int4_export import INSTALL, PACKAGE, int4_weights, quantizer_version
from exporters.quiet import captured
from runtimes.errors import one_line
from runtimes.files import atomic_path

# What a TFLite source can become in TFLite: fp32 is the file itself.
TFLITE_PRECISIONS = (Precision.FP32, Precision.FP16, Precision.INT8_DYNAMIC, Precision.INT8, Precision.INT4_WEIGHTS)
ONNX_OPSET = 17
_RECIPES = {
    Precision.FP16: ("aeq-weight-only-wf16-afp32", "fp16 weights dequantized before each op, float compute"),
    Precision.INT8_DYNAMIC: ("aeq-dynamic-wi8-afp32", "channelwise int8 weights, activations quantized at run time"),
    Precision.INT8: ("aeq-static-wi8-ai8", "int8 weights, int8 activations and int8 I/O, calibrated on the run's data"),
    Precision.INT4_WEIGHTS: ("aeq-weight-only-wi4-afp32", "channelwise int4 weights, float activations"),
}


def _quantizer() -> tuple[Any, Any]:
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as exc:
        raise UnsupportedPrecisionError(
            f"a TFLite source is quantized by the AI Edge Quantizer ({PACKAGE}), which is not installed: {INSTALL}."
        ) from exc
    return quantizer, recipe


def _recipe(precision: Precision) -> Any:
    _, recipe = _quantizer()
    if precision is Precision.INT8_DYNAMIC:
        return recipe.dynamic_wi8_afp32()
    if precision is Precision.INT8:
        return recipe.static_wi8_ai8()
    # fp16 weights: the weight-only config with the FLOAT_CASTING algorithm (no ready-made recipe in 0.10.0).
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.add_weight_only_config(
        regex=".*",
        operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
        num_bits=16,
        algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
    )
    return manager.get_quantization_recipe()


def _quantize(source: Path, precision: Precision, calibration: np.ndarray | None, signature: tuple[str, str]) -> bytes:
    """The quantized flatbuffer of `source` (int8: calibrated through `signature` = (key, input name))."""
    if precision is Precision.INT4_WEIGHTS:
        return int4_weights(source.read_bytes())
    quantizer, _ = _quantizer()
    qt = quantizer.Quantizer(bytearray(source.read_bytes()), _recipe(precision))
    result = None
    if qt.need_calibration:
        assert calibration is not None
        key, name = signature
        # One sample per call: a fixed-batch-1 file (litert-torch) takes nothing else, and min/max do not care.
        rows = [{name: np.ascontiguousarray(calibration[i : i + 1], dtype=np.float32)} for i in range(len(calibration))]
        result = qt.calibrate({key: rows}, num_threads=1)
    return bytes(qt.quantize(result, enable_progress_report=False).quantized_model)


def export_tflite_file(
    source: Path,
    out_dir: Path,
    *,
    precision: Precision,
    calibration_data: np.ndarray | None = None,
    signature: tuple[str, str] | None = None,
) -> ExportResult:
    """A TFLite artifact made from an fp32 .tflite file by the AI Edge Quantizer (see the module docstring).

    Args:
        source: the fp32 .tflite (the run's model.tflite).
        out_dir: directory for the artifact (created if missing).
        precision: fp16, int8-dynamic, int8 or int4-weights.
        calibration_data: float32 inputs in the file's layout (int8 only).
        signature: (signature key, input name) the quantizer's calibration feeds (int8 only).

    Raises:
        UnsupportedPrecisionError: another precision, int8 without data or signature, or no quantizer installed.
        ExportError: quantization failed, or the installed LiteRT cannot run the result.
    """
    precision = Precision(precision)
    if precision not in _RECIPES:
        offered = ", ".join(p.value for p in TFLITE_PRECISIONS)
        raise UnsupportedPrecisionError(f"a TFLite source offers {offered}, not {precision.value!r}.")
    if precision is Precision.INT8 and (calibration_data is None or not len(calibration_data) or signature is None):
        raise UnsupportedPrecisionError(
            "int8 from a TFLite file needs calibration images and the file's signature (its input name); the file "
            "has none: convert it with a signature (TFLiteConverter and litert-torch write serving_default)."
        )
    _quantizer()  # a missing package fails before anything else
    path = Path(out_dir) / artifact_filename(ExportFormat.TFLITE, precision)
    path.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    start = time.perf_counter()
    with captured(notes):
        try:
            flatbuffer = _quantize(Path(source), precision, calibration_data, signature or ("", ""))
        except ExportError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ExportError(
                f"the AI Edge Quantizer could not make {precision.value}: {one_line(first or exc)}"
            ) from exc
    name, what = _RECIPES[precision]
    notes.append(f"{precision.value} by {PACKAGE} {quantizer_version()} from the .tflite source ({name})")
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
        specs = check_artifact(tmp, calibration_data)
    recipe = {
        "target": "portable",
        "recipe": name,
        "description": f"{what} (AI Edge Quantizer on the .tflite source)",
        "portable": True,
        "note": "one file for every CPU class, as TFLiteConverter's artifacts",
    }
    quantization = None if precision is Precision.FP16 else recipe
    return ExportResult.written(path, ExportFormat.TFLITE, precision, specs, start, notes, quantization=quantization)


def export_onnx_from_tflite(source: Path, out_dir: Path, sample: np.ndarray | None = None) -> ExportResult:
    """onnx-fp32 from an fp32 .tflite file by tf2onnx (`from_tflite`), checked on ONNX Runtime.

    Raises:
        ExportError: tf2onnx failed on the file, or ONNX Runtime cannot run what it wrote.
    """
    path = Path(out_dir) / artifact_filename(ExportFormat.ONNX, Precision.FP32)
    path.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    start = time.perf_counter()
    with atomic_path(path) as tmp, captured(notes):
        try:
            import tf2onnx

            tf2onnx.convert.from_tflite(str(source), opset=ONNX_OPSET, output_path=str(tmp))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ExportError(f"tf2onnx could not convert the .tflite source: {one_line(first or exc)}") from exc
        specs = check_artifact(tmp, sample)
    notes.append(f"converted from the .tflite source by tf2onnx (from_tflite, opset {ONNX_OPSET})")
    return ExportResult.written(path, ExportFormat.ONNX, Precision.FP32, specs, start, notes)
