"""Exporters: every artifact is written atomically, checked, listed in the manifest, and exporters stay silent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from exporters.base import ExportFormat, Precision
from exporters.errors import UnsupportedPrecisionError
from runtimes.files import atomic_path, sha256_file
from toolkit.steps.export import parse_targets

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def model(small_run: Path):
    from runtimes.keras_runner import load_keras_model

    return load_keras_model(small_run / "model.keras")


def test_manifest_lists_every_artifact_with_checksums(small_run: Path) -> None:
    manifest = json.loads((small_run / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    names = [a["name"] for a in manifest["artifacts"]]
    assert names == [
        "keras-fp32",
        "tflite-fp32",
        "tflite-fp16",
        "tflite-int8-dynamic",
        "tflite-int8",
        "onnx-fp32",
        "onnx-int8",
    ]
    assert len(parse_targets(None, None)) == 6  # the default exports: every format and precision not opt-in
    for a in manifest["artifacts"]:
        path = small_run / a["path"]
        assert path.stat().st_size == a["size_bytes"]
        assert sha256_file(path) == a["sha256"]
    assert manifest["calibration"]["images"] == 200
    assert "tensorflow-cpu" in manifest["libraries"] or "tensorflow" in manifest["libraries"]
    leftovers = [p.name for p in (small_run / "exports").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_int8_tflite_records_quantization_parameters(small_run: Path) -> None:
    manifest = json.loads((small_run / "manifest.json").read_text())
    int8 = next(a for a in manifest["artifacts"] if a["name"] == "tflite-int8")
    assert int8["input"]["dtype"] == "int8" and int8["output"]["dtype"] == "int8"
    assert int8["input"]["scale"] == pytest.approx(1 / 255, rel=1e-3)
    assert int8["input"]["zero_point"] == -128
    fp32 = next(a for a in manifest["artifacts"] if a["name"] == "onnx-fp32")
    assert fp32["input"]["dtype"] == "float32" and fp32["input"]["shape"] == [None, 28, 28, 1]


def test_onnx_artifacts_pass_the_checker_and_int8_is_qdq(small_run: Path) -> None:
    import onnx

    for name in ("model_fp32.onnx", "model_int8.onnx"):
        onnx.checker.check_model(str(small_run / "exports" / name), full_check=True)
    ops = {n.op_type for n in onnx.load(str(small_run / "exports" / "model_int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_export_is_silent_and_leaves_no_temp_files(model, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from exporters.onnx_export import export_onnx
    from exporters.tflite_export import export_tflite

    capfd.readouterr()
    result = export_tflite(model, tmp_path, precision=Precision.FP16)
    onnx_result = export_onnx(model, tmp_path, precision=Precision.FP32)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_fp16.tflite", "model_fp32.onnx"]
    assert result.format is ExportFormat.TFLITE and result.sha256 == sha256_file(result.path)
    assert onnx_result.input_spec.shape == (None, 28, 28, 1)


@pytest.mark.parametrize(
    ("fmt", "precision", "message"),
    [
        (ExportFormat.TFLITE, Precision.INT8, "needs calibration images"),
        (ExportFormat.ONNX, Precision.INT8, "needs calibration images"),
        (ExportFormat.ONNX, Precision.FP16, "use TFLite for fp16"),
        (ExportFormat.ONNX, Precision.INT8_DYNAMIC, "use TFLite"),
    ],
)
def test_invalid_combinations(model, tmp_path: Path, fmt: ExportFormat, precision: Precision, message: str) -> None:
    from exporters.onnx_export import export_onnx
    from exporters.tflite_export import export_tflite

    exporter = export_tflite if fmt is ExportFormat.TFLITE else export_onnx
    with pytest.raises(UnsupportedPrecisionError, match=message):
        exporter(model, tmp_path, precision=precision)
    assert list(tmp_path.iterdir()) == []


def test_int8_export_with_calibration(model, mnist, tmp_path: Path) -> None:
    from exporters.tflite_export import export_tflite
    from toolkit.data.dataset import Dataset
    from toolkit.model.spec import reference_spec

    calibration = Dataset.from_mnist(mnist).calibration(reference_spec(), n=20)
    result = export_tflite(model, tmp_path, precision=Precision.INT8, calibration_data=calibration)
    assert result.input_spec.dtype == "int8" and result.size_bytes < 700_000


def test_onnx_int8_from_the_fp32_file_is_the_int8_of_a_fresh_conversion(model, mnist, tmp_path: Path) -> None:
    """The export step quantizes its onnx-fp32 artifact instead of converting the model again: same answers."""
    from exporters.onnx_export import export_onnx
    from runtimes.registry import make_runner
    from toolkit.data.dataset import Dataset
    from toolkit.model.spec import reference_spec

    dataset = Dataset.from_mnist(mnist)
    calibration = dataset.calibration(reference_spec(), n=50)
    images = dataset.test_split(reference_spec(), 300)[0]
    fp32 = export_onnx(model, tmp_path / "reused", precision=Precision.FP32)
    reused = export_onnx(model, tmp_path / "reused", precision=Precision.INT8, calibration_data=calibration,
                         fp32_file=fp32.path)  # fmt: skip
    fresh = export_onnx(model, tmp_path / "fresh", precision=Precision.INT8, calibration_data=calibration)
    assert sorted(p.name for p in (tmp_path / "reused").iterdir()) == ["model_fp32.onnx", "model_int8.onnx"]
    assert sha256_file(fp32.path) == fp32.sha256  # quantizing read the fp32 file, never rewrote it
    outputs = []
    for path in (reused.path, fresh.path):
        with make_runner(path) as runner:
            outputs.append(runner.infer(images))
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("precision", [Precision.FP16, Precision.INT8])
def test_tflite_from_one_saved_model_is_byte_identical(model, mnist, tmp_path: Path, precision: Precision) -> None:
    """The export step converts every TFLite precision from one SavedModel of the model (`keras_saved_model`)
    instead of the converter writing one per precision: the files must not change."""
    from exporters.tflite_export import export_tflite, keras_saved_model
    from toolkit.data.dataset import Dataset
    from toolkit.model.spec import reference_spec

    calibration = Dataset.from_mnist(mnist).calibration(reference_spec(), n=20)
    fresh = export_tflite(model, tmp_path / "fresh", precision=precision, calibration_data=calibration)
    with keras_saved_model(model) as saved:
        assert saved is not None and saved.path.is_dir()
        shared = export_tflite(model, tmp_path / "shared", precision=precision, calibration_data=calibration,
                               saved=saved)  # fmt: skip
    assert not saved.path.exists()  # the SavedModel goes with the block
    assert shared.sha256 == fresh.sha256 and shared.path.read_bytes() == fresh.path.read_bytes()


def test_atomic_path_never_leaves_a_partial_file(tmp_path: Path) -> None:
    final = tmp_path / "model.tflite"
    with pytest.raises(KeyboardInterrupt), atomic_path(final) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    final.write_bytes(b"old")
    with pytest.raises(ValueError), atomic_path(final) as tmp:
        tmp.write_bytes(b"new but broken")
        raise ValueError("converter crashed")
    assert final.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.tflite"]
    with atomic_path(final) as tmp:
        tmp.write_bytes(b"new")
    assert final.read_bytes() == b"new"


def test_each_tflite_precision_has_its_own_tensor_types(small_run: Path) -> None:
    """int8-dynamic keeps float activations; int8 is integer end to end (guards the converter settings)."""
    from runtimes.tflite_runner import load_interpreter_module

    _, module = load_interpreter_module()

    def dtypes(name: str) -> set[str]:
        interp = module.Interpreter(model_path=str(small_run / "exports" / name))
        return {np.dtype(t["dtype"]).name for t in interp.get_tensor_details()}

    dynamic, full = dtypes("model_int8_dynamic.tflite"), dtypes("model_int8.tflite")
    assert "float32" in dynamic and "int8" in dynamic and "int16" not in dynamic
    assert "int16" not in full and "int8" in full
    assert "float16" in dtypes("model_fp16.tflite")


def test_atomic_files_get_normal_permissions(tmp_path: Path) -> None:
    final = tmp_path / "report.json"
    with atomic_path(final) as tmp:
        tmp.write_text("{}")
    umask = os.umask(0)
    os.umask(umask)
    assert final.stat().st_mode & 0o777 == 0o666 & ~umask
