"""OpenVINO IR (`.xml` graph + `.bin` weights), fp32 or fp16-compressed, from the run's fp32 ONNX file.

Source: the ONNX file, not the Keras model. Measured on the reference CNN (1,000 MNIST test images against Keras,
OpenVINO 2026.4.1 on a 2-vCPU Xeon, f32 inference): both routes give byte-identical weights (2,368,376 B fp32,
1,184,228 B fp16) and the same outputs (max |Δp| 1.0e-6 fp32, 2.0e-4 fp16; agreement 1.0). From ONNX it takes
0.26 s and needs no TensorFlow; from Keras it takes 0.37 s for the SavedModel export plus 0.30 s to convert, and
`convert_model` on a Keras 3 model object fails to trace it. The ONNX file also exists for every source edgekit
takes (Keras, ONNX, TFLite), and the IR keeps its tensor names (`input`), so parity and bench pair them as for ONNX.

The ONNX file is read with `Core.read_model` (OpenVINO's ONNX frontend) rather than `convert_model`: the latter
runs the `ovc` tool's telemetry, which sends usage data to Intel unless the user has opted out, and writes
`~/intel/`; an exporter must do neither. The IR is larger as XML (the plugin runs the same graph transformations
at compile time) and computes the same outputs.

fp16 stores the weights in fp16 (`compress_to_fp16`); the CPU plugin decompresses them and computes in the
runner's inference precision (f32 by default), so it costs size, not compute.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from exporters.base import Precision
from exporters.check import check_artifact
from exporters.errors import ExportError, UnsupportedPrecisionError
from exporters.quiet import captured
from runtimes.errors import one_line
from runtimes.files import ensure_dir, sha256_file
from runtimes.spec import TensorSpec

IR_PRECISIONS = (Precision.FP32, Precision.FP16)


@dataclass(frozen=True)
class OpenVINOExport:
    """What `export_openvino` wrote: the `.xml` (the artifact's path) and its `.bin` beside it."""

    name: str
    path: Path
    weights: Path
    precision: Precision
    size_bytes: int  # .xml + .bin
    sha256: str  # of the .xml (the .bin's is `weights_sha256`)
    weights_sha256: str
    input_spec: TensorSpec
    output_spec: TensorSpec
    seconds: float
    notes: tuple[str, ...] = field(default=())


def ir_filename(precision: Precision) -> str:
    """`model_fp32.xml`: beside `model_fp32.onnx` in a run's exports without clashing with it."""
    return f"model_{precision.value.replace('-', '_')}.xml"


def export_openvino(
    onnx_fp32: Path,
    out_dir: Path,
    *,
    precision: Precision | str = Precision.FP32,
    sample: np.ndarray | None = None,
) -> OpenVINOExport:
    """Convert an fp32 `.onnx` file to OpenVINO IR in `out_dir`, checked with the OpenVINO runner.

    Both files are written in a temporary directory inside `out_dir`, checked there, and moved into place weights
    first, so `model_<precision>.xml` never names an incomplete pair; on any error neither is left behind.

    Args:
        onnx_fp32: the run's fp32 ONNX file (`exports/model_fp32.onnx`, or the source `model.onnx`).
        out_dir: directory for the artifact (created if missing).
        precision: `fp32`, or `fp16` (fp16 weights in the `.bin`, float32 inputs and outputs).
        sample: float32 inputs the post-export check runs (the first 4); None: one random sample.

    Raises:
        UnsupportedPrecisionError: a precision IR export does not offer.
        ExportError: OpenVINO is missing, the ONNX file does not convert, or the IR does not load and run.
    """
    offered = ", ".join(p.value for p in IR_PRECISIONS)
    asked = precision.value if isinstance(precision, Precision) else str(precision)
    if asked not in offered.split(", "):
        raise UnsupportedPrecisionError(
            f"OpenVINO IR export offers {offered}, not {asked!r}; int8 for OpenVINO is not built yet."
        )
    precision = Precision(asked)
    source = Path(onnx_fp32)
    if not source.is_file():
        raise ExportError(f"ONNX file {source} does not exist; export onnx-fp32 first.")
    try:
        import openvino as ov
    except ImportError:
        raise ExportError("OpenVINO is not installed; install it with `pip install 'edgekit[openvino]'`.") from None
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
                ov.save_model(model, str(tmp), compress_to_fp16=precision is Precision.FP16)
            except Exception as exc:  # OpenVINO raises RuntimeError and its own frontend exception classes
                raise ExportError(f"OpenVINO {precision.value} export of {source.name} failed: {_first(exc)}") from exc
        specs = check_artifact(tmp, sample)
        _move_pair(tmp, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    weights = final.with_suffix(".bin")
    return OpenVINOExport(
        name=f"openvino-{precision.value}",
        path=final,
        weights=weights,
        precision=precision,
        size_bytes=final.stat().st_size + weights.stat().st_size,
        sha256=sha256_file(final),
        weights_sha256=sha256_file(weights),
        input_spec=specs[0],
        output_spec=specs[1],
        seconds=time.perf_counter() - start,
        notes=tuple(dict.fromkeys(notes)),
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
