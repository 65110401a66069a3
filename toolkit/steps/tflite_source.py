"""The export step's part for a run made from a TFLite file (`--model model.tflite`): which targets it offers,
and each artifact made from model.tflite (`exporters.tflite_source_export`).

TFLite targets come from the AI Edge Quantizer; ONNX targets (asked with `-f onnx`) from tf2onnx's
`from_tflite`, then fp16/int8 from that onnx-fp32 as for an ONNX source. tflite-fp32 is the reference itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from exporters.base import ExportFormat, Precision, artifact_name
from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    import numpy as np

    from exporters.base import ExportResult
    from exporters.int8_recipe import Int8Target

TFLITE_SOURCE_SUPPORTED: dict[ExportFormat, tuple[Precision, ...]] = {
    ExportFormat.TFLITE: (
        Precision.FP32,
        Precision.FP16,
        Precision.INT8_DYNAMIC,
        Precision.INT8,
        Precision.INT4_WEIGHTS,
    ),
    ExportFormat.ONNX: (Precision.FP32, Precision.FP16, Precision.INT8),
}
# ONNX from a TFLite source is opt-in: tf2onnx keeps a fixed batch (litert-torch's), which ONNX Runtime cannot
# feed with other batches, so the default targets must work for every file.
ONNX_SKIPPED = "TFLite source: ONNX artifacts are made only when asked (-f onnx: tf2onnx, dynamic-batch files only)."
NO_ONNX_FROM_FIXED_BATCH = (
    "ONNX from {path}: its input has a fixed batch of 1, which tf2onnx keeps and ONNX Runtime then cannot feed "
    "with batches; export ONNX from the original framework (e.g. torch.onnx.export with a dynamic batch) "
    "and give edgekit that file, or use the TFLite artifacts."
)


@dataclass(frozen=True)
class TfliteSourcePlan:
    """What the export step makes from model.tflite: the targets (tflite-fp32 left out: it is the reference),
    and the signature (key, input name) int8 calibration feeds."""

    targets: list[tuple[ExportFormat, Precision]]
    signature: tuple[str, str] | None


def plan(model_path: Path, targets: list[tuple[ExportFormat, Precision]]) -> TfliteSourcePlan:
    """Check the targets against the file before anything is written; onnx-fp32 is made whenever another ONNX
    target is (they are made from it).

    Raises:
        ToolkitError: a target a TFLite source does not offer, or ONNX from a fixed-batch file (one line).
    """
    from toolkit.model.tflite_source import load_tflite_source

    other = [artifact_name(f, p) for f, p in targets if p not in TFLITE_SOURCE_SUPPORTED[f]]
    if other:
        offered = "; ".join(f"{f.value}: {', '.join(p.value for p in ps)}" for f, ps in TFLITE_SOURCE_SUPPORTED.items())
        raise ToolkitError(f"a TFLite source offers {offered}; not {', '.join(other)}.")
    source = load_tflite_source(model_path)
    wanted = [(f, p) for f, p in targets if (f, p) != (ExportFormat.TFLITE, Precision.FP32)]
    if any(f is ExportFormat.ONNX for f, _ in wanted):
        if source.fixed_batch is not None:
            raise ToolkitError(NO_ONNX_FROM_FIXED_BATCH.format(path=model_path.name))
        onnx = [(f, p) for f, p in wanted if f is ExportFormat.ONNX and p is not Precision.FP32]
        wanted = [t for t in wanted if t[0] is ExportFormat.TFLITE] + [(ExportFormat.ONNX, Precision.FP32), *onnx]
    signature = None
    if source.signature is not None and source.signature_input is not None:
        signature = (source.signature, source.signature_input)
    return TfliteSourcePlan(targets=wanted, signature=signature)


def export_target(
    model_path: Path,
    out_dir: Path,
    target: tuple[ExportFormat, Precision],
    *,
    calibration: np.ndarray | None,
    signature: tuple[str, str] | None,
    int8_target: Int8Target,
) -> ExportResult:
    """One artifact from model.tflite (ONNX fp16/int8 from the onnx-fp32 made before them)."""
    from exporters.base import artifact_filename
    from exporters.onnx_export import export_onnx_file
    from exporters.tflite_source_export import export_onnx_from_tflite, export_tflite_file
    from runtimes.ort_runner import OnnxRuntimeRunner

    fmt, precision = target
    if fmt is ExportFormat.TFLITE:
        return export_tflite_file(
            model_path, out_dir, precision=precision, calibration_data=calibration, signature=signature
        )
    if precision is Precision.FP32:
        return export_onnx_from_tflite(model_path, out_dir, calibration)
    fp32 = out_dir / artifact_filename(ExportFormat.ONNX, Precision.FP32)
    with OnnxRuntimeRunner(fp32) as runner:
        input_name = runner.input_spec().name  # tf2onnx names it after the TFLite tensor (serving_default_x:0)
    return export_onnx_file(
        fp32, out_dir, precision=precision, input_name=input_name, calibration_data=calibration, target=int8_target
    )
