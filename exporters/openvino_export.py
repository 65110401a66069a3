"""OpenVINO IR (`.xml` graph + `.bin` weights), fp32 or fp16-compressed, from the run's fp32 ONNX file.

Source: the ONNX file, not the Keras model. Measured on the reference CNN (1,000 MNIST test images against Keras,
OpenVINO 2026.4.1 on a 2-vCPU Xeon, f32 inference): both routes give byte-identical weights (2,368,376 B fp32,
1,184,228 B fp16) and the same outputs (max |Δp| 1.0e-6 fp32, 2.0e-4 fp16; agreement 1.0). From ONNX it takes
0.26 s and needs no TensorFlow; from Keras it takes 0.37 s for the SavedModel export plus 0.30 s to convert, and
`convert_model` on a Keras 3 model object fails to trace it. The ONNX file also exists for every source edgekit
takes (Keras, ONNX, TFLite), and the IR keeps its tensor names (`input`), so parity and bench pair them as for ONNX.

The ONNX file is read with `Core.read_model` (OpenVINO's ONNX frontend) rather than `convert_model`: the latter
sends the `ovc` tool's conversion events, and OpenVINO is imported through `runtimes.openvino_import` so its
telemetry is declined (an exporter sends nothing anywhere). The IR is larger as XML (the plugin runs the same
graph transformations at compile time) and computes the same outputs.

fp16 stores the weights in fp16 (`compress_to_fp16`); the CPU plugin decompresses them and computes in the
runner's inference precision (f32 by default), so it costs size, not compute.

int8 is NNCF's post-training quantization (`nncf.quantize`, the `openvino-int8` extra) of the fp32 IR, calibrated
on the images the other int8 artifacts use, with its overflow fix on every layer (7-bit weights): as for edgekit's
portable ONNX int8 recipe (`exporters.int8_recipe`), no int16 pair sum can saturate on x86-64 without VNNI, so the
file gives the same answers on every CPU class. NNCF's default fixes the first layer only. Measured on the small
test run's CNN (1,000 MNIST test images against Keras, 84.9 % accurate): agreement 0.995 (every layer) and 0.997
(first layer only), 0.62 MB against 2.39 MB for fp32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import ExportFormat, ExportResult, Precision
from exporters.check import check_artifact
from exporters.errors import ExportError, UnsupportedPrecisionError
from exporters.quiet import captured
from runtimes.errors import RuntimeUnavailableError, one_line
from runtimes.files import ensure_dir, sha256_file
from runtimes.openvino_import import import_openvino, telemetry_declined

IR_PRECISIONS = (Precision.FP32, Precision.FP16, Precision.INT8)
INT8_INSTALL = "pip install 'edgekit[openvino-int8]'"
INT8_RECIPE: dict[str, Any] = {
    "target": "portable",
    "recipe": "nncf-ptq-overflow-fix",
    "description": "NNCF post-training quantization: int8 weights and activations, 7-bit weights (overflow fix)",
    "portable": True,
    "note": "7-bit weights on every layer, as the portable ONNX recipe: no saturation without VNNI, any CPU agrees",
}


def ir_filename(precision: Precision) -> str:
    """`model_fp32.xml`: beside `model_fp32.onnx` in a run's exports without clashing with it."""
    return f"model_{precision.value.replace('-', '_')}.xml"


def export_openvino(
    onnx_fp32: Path,
    out_dir: Path,
    *,
    precision: Precision | str = Precision.FP32,
    sample: np.ndarray | None = None,
    calibration_data: np.ndarray | None = None,
) -> ExportResult:
    """Convert an fp32 `.onnx` file to OpenVINO IR in `out_dir`, checked with the OpenVINO runner.

    Both files are written in a temporary directory inside `out_dir`, checked there, and moved into place weights
    first, so `model_<precision>.xml` never names an incomplete pair; on any error neither is left behind.

    Args:
        onnx_fp32: the run's fp32 ONNX file (`exports/model_fp32.onnx`, or the source `model.onnx`).
        out_dir: directory for the artifact (created if missing).
        precision: `fp32`, `fp16` (fp16 weights in the `.bin`, float32 inputs and outputs) or `int8` (NNCF,
            calibrated on `calibration_data`; float32 inputs and outputs).
        sample: float32 inputs the post-export check runs (the first 4); None: the calibration data's, else one
            random sample.
        calibration_data: float32 images for int8 calibration (required for `int8`), in the model's input shape.

    Raises:
        UnsupportedPrecisionError: a precision IR export does not offer, or int8 without calibration data.
        ExportError: OpenVINO (or NNCF for int8) is missing, the ONNX file does not convert or quantize, or the IR
            does not load and run.
    """
    offered = ", ".join(p.value for p in IR_PRECISIONS)
    asked = precision.value if isinstance(precision, Precision) else str(precision)
    if asked not in offered.split(", "):
        raise UnsupportedPrecisionError(f"OpenVINO IR export offers {offered}, not {asked!r}.")
    precision = Precision(asked)
    cal = None if calibration_data is None else np.ascontiguousarray(calibration_data, dtype=np.float32)
    if precision is Precision.INT8 and (cal is None or len(cal) == 0):
        raise UnsupportedPrecisionError("OpenVINO int8 needs calibration images; pass calibration data.")
    source = Path(onnx_fp32)
    if not source.is_file():
        raise ExportError(f"ONNX file {source} does not exist; export onnx-fp32 first.")
    try:
        ov = import_openvino()  # without its usage telemetry (see there)
    except RuntimeUnavailableError as exc:
        raise ExportError(str(exc)) from None
    out = Path(out_dir)
    ensure_dir(out)
    final = out / ir_filename(precision)
    notes: list[str] = []
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(dir=out, prefix=".openvino-"))
    try:
        tmp = work / final.name
        with captured(notes):
            try:
                model = ov.Core().read_model(str(source))
                if precision is Precision.INT8:
                    assert cal is not None
                    model = _quantize(model, cal)
                ov.save_model(model, str(tmp), compress_to_fp16=precision is Precision.FP16)
            except ExportError:
                raise
            except Exception as exc:  # OpenVINO raises RuntimeError and its own frontend exception classes
                raise ExportError(f"OpenVINO {precision.value} export of {source.name} failed: {_first(exc)}") from exc
        specs = check_artifact(tmp, sample if sample is not None else cal)
        _move_pair(tmp, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    weights = final.with_suffix(".bin")
    result = ExportResult.written(
        final,
        ExportFormat.OPENVINO,
        precision,
        specs,
        start,
        notes,
        quantization=dict(INT8_RECIPE, calibration_images=len(cal))
        if precision is Precision.INT8 and cal is not None
        else None,
    )
    # Both files are the artifact: its size counts the weights, and the manifest checks them by their own sha256.
    return dataclasses.replace(
        result,
        size_bytes=result.size_bytes + weights.stat().st_size,
        weights=weights,
        weights_sha256=sha256_file(weights),
    )


def _quantize(model: object, calibration: np.ndarray) -> object:
    """NNCF's int8 of an fp32 OpenVINO model, calibrated on every one of `calibration`'s samples, one at a time."""
    try:
        with telemetry_declined():  # NNCF starts OpenVINO's telemetry again at import
            import nncf
            from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    except ImportError:
        raise ExportError(
            f"OpenVINO int8 needs NNCF, which is not installed; install it with `{INT8_INSTALL}`."
        ) from None
    dataset = nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))])
    return nncf.quantize(
        model,
        dataset,
        subset_size=len(calibration),
        advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE),
    )


def _move_pair(tmp_xml: Path, final_xml: Path) -> None:
    """Weights first, then the graph: the `.xml` appears only beside its complete `.bin`. If the second move
    fails, both final names are removed rather than leaving a graph beside weights of another export."""
    os.replace(tmp_xml.with_suffix(".bin"), final_xml.with_suffix(".bin"))
    try:
        os.replace(tmp_xml, final_xml)
    except BaseException:
        for stale in (final_xml, final_xml.with_suffix(".bin")):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        raise


def _first(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '", "[ GENERAL_ERROR ]"))]
    return one_line((useful or lines or [type(exc).__name__])[-1])
