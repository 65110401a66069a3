"""The export step: every (format, precision) target from the run's reference model (model.keras, or model.onnx
for an ONNX source), listed in manifest.json."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporters.base import (
    DEFAULT_FORMATS,
    NEEDS_CALIBRATION,
    OPT_IN,
    SUPPORTED,
    ExportFormat,
    Precision,
    artifact_name,
)
from toolkit.errors import ToolkitError
from toolkit.model.run_source import is_user_run, run_dataset, run_spec
from toolkit.progress import ProgressCallback, as_progress
from toolkit.run import layout as A

if TYPE_CHECKING:
    import numpy as np

    from exporters.base import ExportResult
    from exporters.int8_recipe import Int8Target
    from exporters.tflite_export import KerasSavedModel
    from runtimes.spec import ModelSpec
    from toolkit.run.documents import ArtifactEntry, ManifestDocument


# What an ONNX file as the source can become: the fp32 artifact is the reference file itself.
ONNX_SOURCE_SUPPORTED: dict[ExportFormat, tuple[Precision, ...]] = {
    ExportFormat.ONNX: (Precision.FP32, Precision.FP16, Precision.INT8),
    ExportFormat.OPENVINO: SUPPORTED[ExportFormat.OPENVINO],
}
NO_OPENVINO_FROM_TFLITE = (
    "OpenVINO IR is converted from the run's ONNX fp32 file, which a TFLite source does not make by default; "
    "export OpenVINO from the original model (Keras or ONNX) instead."
)
NO_TFLITE_FROM_ONNX = (
    "TFLite from an ONNX source is out of reach of this stack: onnx2tf pins numpy 1.26 / TensorFlow 2.19 in its "
    "1.x line and needs Python >= 3.12 in its 2.x line; export TFLite from the original framework (e.g. "
    "litert-torch) or use the ONNX artifacts."
)
TFLITE_SKIPPED = "ONNX source: the TFLite targets are skipped (onnx2tf cannot be installed with this stack)."


def source_format(model: Path | str | None = None, run_dir: Path | str | None = None) -> str:
    """The reference's format a target choice is for: "onnx" / "tflite" for an ONNX / TFLite `--model` (or a run
    made from one), else "keras"."""
    from toolkit.model.onnx_source import is_onnx_source
    from toolkit.model.run_source import is_onnx_source as run_is_onnx
    from toolkit.model.run_source import is_tflite_source as run_is_tflite
    from toolkit.model.tflite_source import is_tflite_source

    if model is not None:
        return "onnx" if is_onnx_source(model) else ("tflite" if is_tflite_source(model) else "keras")
    if run_dir is not None and Path(run_dir).is_dir() and run_is_onnx(Path(run_dir)):
        return "onnx"
    if run_dir is not None and Path(run_dir).is_dir() and run_is_tflite(Path(run_dir)):
        return "tflite"
    return "keras"


def skipped_message(source: str) -> str | None:
    """The one line a file source's default targets print: what they leave out, and why (None: nothing)."""
    from toolkit.steps.tflite_source import ONNX_SKIPPED

    return {"onnx": TFLITE_SKIPPED, "tflite": ONNX_SKIPPED}.get(source)


def parse_targets(
    formats: list[ExportFormat] | None,
    precisions: list[Precision] | None,
    *,
    source: str = "keras",
    model: Path | str | None = None,
) -> list[tuple[ExportFormat, Precision]]:
    """The (format, precision) pairs to export. Unsupported explicit pairs are an error.

    `source` is the reference's format: "keras" (trained or a Keras --model) or "onnx" (an ONNX --model, which
    offers ONNX fp32 (the file itself), fp16 and int8, and refuses TFLite in one line) or "tflite" (a TFLite
    --model `model`, whose ONNX targets are checked against the file before anything is written).
    """
    from toolkit.steps.tflite_source import TFLITE_SOURCE_SUPPORTED

    supported = {"onnx": ONNX_SOURCE_SUPPORTED, "tflite": TFLITE_SOURCE_SUPPORTED}.get(source, SUPPORTED)
    if source == "onnx" and formats and ExportFormat.TFLITE in formats:
        raise ToolkitError(NO_TFLITE_FROM_ONNX)
    if source == "tflite" and formats and ExportFormat.OPENVINO in formats:
        raise ToolkitError(NO_OPENVINO_FROM_TFLITE)
    default = [ExportFormat.TFLITE] if source == "tflite" else list(DEFAULT_FORMATS)  # ONNX from TFLite: opt-in
    fmts = [f for f in (formats or default) if f in supported]
    if precisions and Precision.INT8_MIXED in precisions:
        raise ToolkitError(
            "int8-mixed is chosen by a budget, not a target: use --max-accuracy-drop PT or --min-agreement X."
        )
    targets: list[tuple[ExportFormat, Precision]] = []
    for fmt in fmts:
        wanted = precisions or [p for p in supported[fmt] if p not in OPT_IN]
        targets.extend((fmt, p) for p in wanted if p in supported[fmt])
    if source == "keras" and any(f is ExportFormat.OPENVINO for f, _ in targets):
        targets = _with_onnx_fp32(targets)
    if not targets:
        offered = "; ".join(f"{f.value}: {', '.join(p.value for p in supported[f])}" for f in fmts)
        if source in ("onnx", "tflite"):
            offered += " (an ONNX source)" if source == "onnx" else " (a TFLite source)"
        raise ToolkitError(f"no artifact matches that --format/--precision choice; offered: {offered}.")
    if source == "tflite" and model is not None:
        from toolkit.steps.tflite_source import plan

        plan(Path(model).expanduser(), targets)  # ONNX from a fixed-batch file: refused before the run exists
    return targets


def _with_onnx_fp32(targets: list[tuple[ExportFormat, Precision]]) -> list[tuple[ExportFormat, Precision]]:
    """OpenVINO IR converts from the onnx-fp32 file: it is exported first when OpenVINO is asked for."""
    onnx_fp32 = (ExportFormat.ONNX, Precision.FP32)
    rest = [t for t in targets if t != onnx_fp32]
    first = next(i for i, (f, _) in enumerate(rest) if f in (ExportFormat.ONNX, ExportFormat.OPENVINO))
    return [*rest[:first], onnx_fp32, *rest[first:]]


def _samples(calibration: Any) -> int:
    """How many calibration samples: an array's length, or for several inputs (name -> array) one array's."""
    from collections.abc import Mapping

    if calibration is None:
        return 0
    if isinstance(calibration, Mapping):
        return len(next(iter(calibration.values()))) if calibration else 0
    return len(calibration)


def check_int8_target(value: str) -> Int8Target:
    """The int8 target named by `value` (`exporters.int8_recipe`); a one-line ToolkitError for an unknown one."""
    from exporters.int8_recipe import parse_target

    try:
        return parse_target(value)
    except ValueError as exc:
        raise ToolkitError(f"--target: {exc}") from None


def export_step(
    run_dir: Path,
    targets: list[tuple[ExportFormat, Precision]],
    *,
    data: Any = None,
    calibration_size: int = 500,
    seed: int = 7,
    progress: ProgressCallback | None = None,
    int8_target: str = "portable",
) -> ManifestDocument:
    """Export the run's reference (model.keras, or model.onnx for an ONNX source) to every target, write
    manifest.json, and return it.

    `int8_target`: the CPU class the int8 exports are for (`exporters.int8_recipe`: portable, x86-vnni, arm64).
    An ONNX source's reference is its onnx-fp32 artifact; its fp16 and int8 are made from that file, and TFLite
    targets are refused (`NO_TFLITE_FROM_ONNX`). A TFLite source's reference is its tflite-fp32 artifact; the
    rest is made from that file (`toolkit.steps.tflite_source`).
    """
    from exporters.onnx_export import export_onnx_file
    from exporters.tflite_export import keras_saved_model
    from runtimes.keras_runner import load_keras_model
    from toolkit.run.documents import Calibration, ManifestDocument, TrainDocument, TrainingSummary

    kind = A.reference_kind(run_dir)
    model_path = run_dir / kind.file
    if calibration_size < 1:
        raise ToolkitError(f"--calibration-size must be 1 or more, got {calibration_size}.")
    target = check_int8_target(int8_target)
    run = A.Run(run_dir)
    reference = A.reference_entry(run_dir)
    onnx_source, tflite_plan = kind is A.ONNX_REFERENCE, None
    if kind is A.TFLITE_REFERENCE:
        from toolkit.steps import tflite_source

        tflite_plan = tflite_source.plan(model_path, targets)
        targets, model, spec = tflite_plan.targets, None, run_spec(run_dir)
    elif onnx_source:
        if any(f is ExportFormat.TFLITE for f, _ in targets):
            raise ToolkitError(NO_TFLITE_FROM_ONNX)
        offered = ONNX_SOURCE_SUPPORTED[ExportFormat.ONNX]
        other = [artifact_name(f, p) for f, p in targets if f is ExportFormat.ONNX and p not in offered]
        if other:
            raise ToolkitError(f"an ONNX source offers {', '.join(p.value for p in offered)}, not {', '.join(other)}.")
        # onnx-fp32 is the reference itself
        targets = [(f, p) for f, p in targets if (f, p) != (ExportFormat.ONNX, Precision.FP32)]
        model = None
        spec = run_spec(run_dir)
    else:
        model = load_keras_model(model_path)
        spec = run_spec(run_dir) if is_user_run(run_dir) else model_spec_of(model)
    reference.model_spec = spec
    calibration: np.ndarray | dict[str, np.ndarray] | None = None
    dataset = None
    if any(p in NEEDS_CALIBRATION for _, p in targets):
        dataset = run_dataset(run_dir, data, spec=spec)
        if spec.is_single:
            calibration = dataset.calibration(spec, n=calibration_size, seed=seed)
        else:  # several inputs: the exporters calibrate on one array per input name
            from toolkit.steps.parity import named_dataset

            calibration = named_dataset(dataset, spec).calibration_named(spec, n=calibration_size, seed=seed)
    out_dir = run_dir / A.EXPORTS_DIR
    p = as_progress(progress)
    task = p.add_task("export", total=len(targets))
    train = run.find(TrainDocument)
    cal = Calibration(
        images=_samples(calibration),
        seed=seed,
        source="training set",
        data=None if dataset is None else dataset.name,
    )
    training = None if train is None else TrainingSummary(config=train.config, test_accuracy=train.test_accuracy)

    def record(entry: ArtifactEntry) -> ManifestDocument:
        return A.write_manifest(
            run_dir, [entry], int8_target=target.value, calibration=cal, training=training, reference=reference.name
        )

    previous = run.path(ManifestDocument)
    if previous.exists() and A.reference_sha(run.manifest()) != reference.sha256:
        previous.unlink()  # exports of an earlier model: none of them may be kept
    manifest = record(reference)
    onnx_fp32: Path | None = None  # written by this loop: onnx-int8 quantizes it instead of converting again
    # Several TFLite precisions convert from one SavedModel of the model instead of writing one each.
    several_tflite = model is not None and sum(f is ExportFormat.TFLITE for f, _ in targets) > 1
    with keras_saved_model(model) if several_tflite else contextlib.nullcontext() as saved:
        for fmt, precision in targets:
            p.update(task, description=f"export: {artifact_name(fmt, precision)}")
            if fmt is ExportFormat.OPENVINO:
                result = _export_openvino(model_path if onnx_source else onnx_fp32, out_dir, precision, calibration)
            elif tflite_plan is not None:
                result = tflite_source.export_target(
                    model_path,
                    out_dir,
                    (fmt, precision),
                    calibration=None if isinstance(calibration, dict) else calibration,  # one input: refused otherwise
                    signature=tflite_plan.signature,
                    int8_target=target,
                )
            elif onnx_source:
                result = export_onnx_file(
                    model_path,
                    out_dir,
                    precision=precision,
                    input_name=spec.input.name,
                    calibration_data=calibration,  # several inputs: one array per input name
                    target=target,
                    spec=spec,
                )
            else:
                result = _export_keras(model, out_dir, (fmt, precision), calibration, target, saved, onnx_fp32)
                if (fmt, precision) == (ExportFormat.ONNX, Precision.FP32):
                    onnx_fp32 = result.path
            # The manifest grows artifact by artifact, so an interrupted export keeps what it finished.
            manifest = record(artifact_entry(run_dir, result, spec))
            p.advance(task)
    p.update(task, description="export: done")
    return manifest


def _export_keras(
    model: Any,
    out_dir: Path,
    target: tuple[ExportFormat, Precision],
    calibration: np.ndarray | dict[str, np.ndarray] | None,
    int8_target: Int8Target,
    saved: KerasSavedModel | None,
    onnx_fp32: Path | None,
) -> ExportResult:
    """One target of a Keras model: TFLite from the step's one SavedModel of it (`saved`), onnx-int8 by quantizing
    the onnx-fp32 file the step wrote (`onnx_fp32`) instead of converting the model again."""
    from exporters.onnx_export import export_onnx
    from exporters.tflite_export import export_tflite

    fmt, precision = target
    if fmt is ExportFormat.TFLITE:
        return export_tflite(model, out_dir, precision=precision, calibration_data=calibration, saved=saved)
    fp32 = onnx_fp32 if precision is Precision.INT8 else None
    return export_onnx(
        model, out_dir, precision=precision, calibration_data=calibration, target=int8_target, fp32_file=fp32
    )


def _export_openvino(
    onnx_fp32: Path | None,
    out_dir: Path,
    precision: Precision,
    calibration: np.ndarray | dict[str, np.ndarray] | None,
) -> ExportResult:
    """One OpenVINO IR target, converted from the onnx-fp32 file (`parse_targets` puts it first)."""
    from exporters.openvino_export import export_openvino

    if onnx_fp32 is None:
        raise ToolkitError("OpenVINO IR converts from onnx-fp32; export it too (--format onnx --precision fp32).")
    if isinstance(calibration, dict):
        raise ToolkitError("OpenVINO int8 of a model with several inputs is not offered yet; use onnx-int8.")
    return export_openvino(onnx_fp32, out_dir, precision=precision, calibration_data=calibration)


def artifact_entry(run_dir: Path, result: ExportResult, spec: ModelSpec) -> ArtifactEntry:
    """The manifest entry of an exported file: its own tensors (dtype, quantization) with what the Keras model
    means by them (`spec`: value range, output kind, class names)."""
    from runtimes.spec import spec_from_tensors
    from toolkit.run.documents import ArtifactEntry

    entry = ArtifactEntry.model_validate(result.manifest_entry(run_dir))
    if result.model_spec is not None or not spec.is_single:
        entry.model_spec = several_entry_spec(result, spec)
        return entry
    entry.model_spec = spec_from_tensors(
        result.input_spec,
        result.output_spec,
        value_range=spec.value_range,
        output_kind=spec.output_kind,
        class_names=spec.class_names,
        layout=spec.layout if len(result.input_spec.shape) == len(spec.input.shape) else None,
    )
    return entry


def several_entry_spec(result: ExportResult, spec: ModelSpec) -> ModelSpec:
    """An artifact's spec for a model with several inputs/outputs: the file's tensors (dtypes, quantization)
    under the model's names, with what the run's spec says of each (layout, value range, kind, class names)."""
    from dataclasses import replace

    if result.model_spec is None:
        raise ToolkitError(
            f"{result.name} was exported without a description of its {len(spec.inputs)} inputs and "
            f"{len(spec.outputs)} outputs; export it again."
        )
    mine = result.model_spec
    if set(mine.input_names) != set(spec.input_names) or set(mine.output_names) != set(spec.output_names):
        raise ToolkitError(
            f"{result.name} has tensors {', '.join(mine.input_names + mine.output_names)}; the run's model has "
            f"{', '.join(spec.input_names + spec.output_names)}: export it again from the run's model."
        )
    inputs = []
    for t in spec.inputs:
        inputs.append(replace(mine.input_named(t.name), layout=t.layout, value_range=t.value_range))
    outputs = []
    for t in spec.outputs:
        outputs.append(replace(mine.output_named(t.name), kind=t.kind, class_names=t.class_names))
    return mine.with_tensors(inputs=inputs, outputs=outputs)


def model_spec_of(model: Any) -> ModelSpec:
    """The ModelSpec of a Keras model: its shapes, with the reference CNN's meaning (pixels 0..1, digits)
    when it has the reference's shapes."""
    from runtimes.spec import spec_from_keras
    from toolkit.model.spec import reference_spec

    spec = spec_from_keras(model)
    ref = reference_spec()
    if spec.mismatch(ref) is None:
        return spec.with_options(value_range=ref.value_range, class_names=ref.class_names)
    return spec
