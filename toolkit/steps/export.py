"""The export step: every (format, precision) target from model.keras, listed in manifest.json."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporters.base import NEEDS_CALIBRATION, OPT_IN, SUPPORTED, ExportFormat, Precision, artifact_name
from toolkit.errors import ToolkitError
from toolkit.model.run_source import is_user_run, run_dataset, run_spec
from toolkit.progress import ProgressCallback, as_progress
from toolkit.run import layout as A

if TYPE_CHECKING:
    from exporters.base import ExportResult
    from exporters.int8_recipe import Int8Target
    from runtimes.spec import ModelSpec
    from toolkit.run.documents import ArtifactEntry, ManifestDocument


def parse_targets(
    formats: list[ExportFormat] | None, precisions: list[Precision] | None
) -> list[tuple[ExportFormat, Precision]]:
    """The (format, precision) pairs to export. Unsupported explicit pairs are an error."""
    fmts = formats or list(SUPPORTED)
    if precisions and Precision.INT8_MIXED in precisions:
        raise ToolkitError(
            "int8-mixed is chosen by a budget, not a target: use --max-accuracy-drop PT or --min-agreement X."
        )
    targets: list[tuple[ExportFormat, Precision]] = []
    for fmt in fmts:
        wanted = precisions or [p for p in SUPPORTED[fmt] if p not in OPT_IN]
        targets.extend((fmt, p) for p in wanted if p in SUPPORTED[fmt])
    if not targets:
        offered = "; ".join(f"{f.value}: {', '.join(p.value for p in SUPPORTED[f])}" for f in fmts)
        raise ToolkitError(f"no artifact matches that --format/--precision choice; offered: {offered}.")
    return targets


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
    """Export model.keras to every target, write manifest.json, and return it.

    `int8_target`: the CPU class the int8 exports are for (`exporters.int8_recipe`: portable, x86-vnni, arm64).
    """
    from exporters.onnx_export import export_onnx
    from exporters.tflite_export import export_tflite
    from runtimes.keras_runner import load_keras_model
    from toolkit.run.documents import Calibration, ManifestDocument, TrainDocument, TrainingSummary

    model_path = A.require_file(run_dir, A.MODEL_FILE, "run `edgekit train` first (it writes model.keras)")
    if calibration_size < 1:
        raise ToolkitError(f"--calibration-size must be 1 or more, got {calibration_size}.")
    target = check_int8_target(int8_target)
    run = A.Run(run_dir)
    reference = A.reference_entry(run_dir)
    model = load_keras_model(model_path)
    spec = run_spec(run_dir) if is_user_run(run_dir) else model_spec_of(model)
    reference.model_spec = spec
    calibration = None
    dataset = None
    if any(p in NEEDS_CALIBRATION for _, p in targets):
        dataset = run_dataset(run_dir, data, spec=spec)
        calibration = dataset.calibration(spec, n=calibration_size, seed=seed)
    out_dir = run_dir / A.EXPORTS_DIR
    p = as_progress(progress)
    task = p.add_task("export", total=len(targets))
    train = run.find(TrainDocument)
    cal = Calibration(
        images=0 if calibration is None else len(calibration),
        seed=seed,
        source="training set",
        data=None if dataset is None else dataset.name,
    )
    training = None if train is None else TrainingSummary(config=train.config, test_accuracy=train.test_accuracy)

    def record(entry: ArtifactEntry) -> ManifestDocument:
        return A.write_manifest(run_dir, [entry], int8_target=target.value, calibration=cal, training=training)

    previous = run.path(ManifestDocument)
    if previous.exists() and A.reference_sha(run.manifest()) != reference.sha256:
        previous.unlink()  # exports of an earlier model: none of them may be kept
    manifest = record(reference)
    for fmt, precision in targets:
        p.update(task, description=f"export: {artifact_name(fmt, precision)}")
        if fmt is ExportFormat.TFLITE:
            result = export_tflite(model, out_dir, precision=precision, calibration_data=calibration)
        else:
            result = export_onnx(model, out_dir, precision=precision, calibration_data=calibration, target=target)
        # The manifest grows artifact by artifact, so an interrupted export keeps what it finished.
        manifest = record(artifact_entry(run_dir, result, spec))
        p.advance(task)
    p.update(task, description="export: done")
    return manifest


def artifact_entry(run_dir: Path, result: ExportResult, spec: ModelSpec) -> ArtifactEntry:
    """The manifest entry of an exported file: its own tensors (dtype, quantization) with what the Keras model
    means by them (`spec`: value range, output kind, class names)."""
    from runtimes.spec import spec_from_tensors
    from toolkit.run.documents import ArtifactEntry

    entry = ArtifactEntry.model_validate(result.manifest_entry(run_dir))
    entry.model_spec = spec_from_tensors(
        result.input_spec,
        result.output_spec,
        value_range=spec.value_range,
        output_kind=spec.output_kind,
        class_names=spec.class_names,
    )
    return entry


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
