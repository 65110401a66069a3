"""OpenVINO IR from the small run's ONNX fp32 file: the export, the runner against ONNX Runtime, and the refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'edgekit[openvino]')")

from exporters.base import ExportResult, Precision
from exporters.errors import ExportError, UnsupportedPrecisionError
from exporters.openvino_export import export_openvino
from runtimes import InputSpecError, ModelLoadError, make_runner
from runtimes.openvino_runner import STATIC_SHAPES, OpenVINORunner
from toolkit.data.mnist import to_model_input
from toolkit.steps.parity import within_noise
from toolkit.tolerances import PARITY_TOLERANCES

IMAGES = 200


def onnx_fp32(run: Path) -> Path:
    manifest = json.loads((run / "manifest.json").read_text())
    return run / next(a["path"] for a in manifest["artifacts"] if a["name"] == "onnx-fp32")


@pytest.fixture(scope="module")
def images(mnist) -> np.ndarray:
    return to_model_input(mnist.x_test[:IMAGES])


@pytest.fixture(scope="module")
def irs(small_run: Path, images: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ExportResult]:
    out = tmp_path_factory.mktemp("openvino")
    return {p: export_openvino(onnx_fp32(small_run), out, precision=p, sample=images[:4]) for p in ("fp32", "fp16")}


@pytest.fixture(scope="module")
def ort_probs(small_run: Path, images: np.ndarray) -> np.ndarray:
    with make_runner(onnx_fp32(small_run), num_threads=1) as runner:
        return runner.infer(images)


@pytest.fixture(scope="module")
def int8_ir(small_run: Path, mnist, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    pytest.importorskip("nncf", reason="NNCF is not installed (pip install 'edgekit[openvino-int8]')")
    out = tmp_path_factory.mktemp("openvino-int8")
    calibration = to_model_input(mnist.x_train[:200])  # training images, as the run's other int8 artifacts
    return export_openvino(onnx_fp32(small_run), out, precision="int8", calibration_data=calibration)


def margins(probs: np.ndarray) -> np.ndarray:
    """Each image's gap between its two highest scores: a change smaller than half of it cannot flip the answer."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def test_export_writes_the_pair_and_fp16_halves_the_weights(irs: dict[str, ExportResult]) -> None:
    fp32, fp16 = irs["fp32"], irs["fp16"]
    for result in (fp32, fp16):
        assert result.path.suffix == ".xml" and result.weights == result.path.with_suffix(".bin")
        assert result.size_bytes == result.path.stat().st_size + result.weights.stat().st_size
        assert result.input_spec.shape == (None, 28, 28, 1) and result.output_spec.shape == (None, 10)
    assert {p.name for p in fp32.path.parent.iterdir()} == {
        "model_fp32.xml",
        "model_fp32.bin",
        "model_fp16.xml",
        "model_fp16.bin",
    }
    # fp16 stores 2 bytes per weight instead of 4; the .bin is nearly all weights.
    assert fp16.weights.stat().st_size <= 0.51 * fp32.weights.stat().st_size


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_ir_agrees_with_onnx_runtime(
    irs: dict[str, ExportResult], images: np.ndarray, ort_probs: np.ndarray, precision: str
) -> None:
    # The limits are edgekit's parity limits for the precision (fp16: the error of fp16 weights through this CNN);
    # an answer may differ only on an image whose top-2 gap is within twice that limit.
    limit = PARITY_TOLERANCES[precision].max_abs_diff
    assert limit is not None
    with OpenVINORunner(irs[precision].path, num_threads=1) as runner:
        assert runner.backend() == "openvino"
        probs = np.concatenate([runner.infer(images[i : i + 50]) for i in range(0, len(images), 50)])
    assert probs.shape == ort_probs.shape and probs.dtype == np.float32
    assert float(np.abs(probs - ort_probs).max()) <= limit
    flipped = probs.argmax(1) != ort_probs.argmax(1)
    assert np.all(margins(ort_probs)[flipped] <= 2 * limit)


@pytest.mark.parametrize("name", ["onnx-fp32", "tflite-fp32"])
def test_made_directly_it_runs_the_onnx_and_tflite_files(
    small_run: Path, name: str, images: np.ndarray, ort_probs: np.ndarray
) -> None:
    """OpenVINO reads the run's own fp32 ONNX and TFLite files: the same answers as ONNX Runtime, within fp32's
    parity limit; the registry still gives those suffixes to ONNX Runtime and LiteRT."""
    manifest = json.loads((small_run / "manifest.json").read_text())
    path = small_run / next(a["path"] for a in manifest["artifacts"] if a["name"] == name)
    limit = PARITY_TOLERANCES["fp32"].max_abs_diff
    assert limit is not None
    with OpenVINORunner(path, num_threads=1) as runner:
        probs = np.concatenate([runner.infer(images[i : i + 50]) for i in range(0, len(images), 50)])
    assert float(np.abs(probs - ort_probs).max()) <= limit
    assert type(make_runner(path)).__name__ != "OpenVINORunner"


def test_a_corrupt_onnx_file_is_one_line_in_openvino(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ModelLoadError, match=r"could not be loaded as an OpenVINO model") as info:
        OpenVINORunner(bad).activate()
    assert "\n" not in str(info.value)


def test_run_native_reads_each_new_array_and_copies_the_output(irs: dict[str, ExportResult], images) -> None:
    # The input tensor shares the array's memory and the output tensor is the request's own: a second array
    # must be fed, and an earlier result must survive the next call.
    with OpenVINORunner(irs["fp32"].path, num_threads=1) as runner:
        first = runner.run_native(runner.to_native(images[:1]))
        kept = first.copy()
        second = runner.run_native(runner.to_native(images[1:2]))
        again = runner.run_native(runner.to_native(images[:1]))
    np.testing.assert_array_equal(first, kept)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(again, kept)


def test_static_and_dynamic_shapes_give_the_same_answers(irs: dict[str, ExportResult], images) -> None:
    # More batch sizes than STATIC_SHAPES, alternating: the later ones run on the dynamic compilation.
    sizes = [1, 7, 1, 32, 3, 5, 2, 7, 1]
    assert len(set(sizes)) > STATIC_SHAPES
    limit = PARITY_TOLERANCES["fp32"].max_abs_diff
    with OpenVINORunner(irs["fp32"].path, num_threads=1, static_shapes=False) as dynamic:
        expected = [dynamic.infer(images[:n]) for n in sizes]
    with OpenVINORunner(irs["fp32"].path, num_threads=1) as static:
        got = [static.infer(images[:n]) for n in sizes]
    for n, want, have in zip(sizes, expected, got, strict=True):
        assert have.shape == (n, 10)
        np.testing.assert_allclose(have, want, atol=limit)


def test_throughput_hint_and_streams_give_the_same_answers(irs: dict[str, ExportResult], images) -> None:
    with OpenVINORunner(irs["fp32"].path, num_threads=1) as latency:
        expected = latency.infer(images[:32])
    with OpenVINORunner(irs["fp32"].path, performance_hint="throughput", num_streams=2) as throughput:
        got = throughput.infer(images[:32])
    np.testing.assert_allclose(got, expected, atol=PARITY_TOLERANCES["fp32"].max_abs_diff)


def test_missing_weights_are_one_line(irs: dict[str, ExportResult], tmp_path: Path) -> None:
    lone = tmp_path / "model_fp32.xml"
    shutil.copy(irs["fp32"].path, lone)
    with pytest.raises(ModelLoadError, match=r"has no weights file model_fp32\.bin beside it") as err:
        make_runner(lone).activate()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"not xml at all", r"is not an OpenVINO IR file \(not XML\)"),
        (b'<?xml version="1.0"?>\n<net name="x" version="11"><layers><layer id="0"', r"could not be loaded as an"),
    ],
)
def test_corrupt_xml_is_one_line(irs: dict[str, ExportResult], tmp_path: Path, text: bytes, expected: str) -> None:
    bad = tmp_path / "model.xml"
    bad.write_bytes(text)
    shutil.copy(irs["fp32"].weights, bad.with_suffix(".bin"))
    with pytest.raises(ModelLoadError, match=expected) as err:
        make_runner(bad).activate()
    assert "\n" not in str(err.value)


def test_wrong_image_size_is_one_line(irs: dict[str, ExportResult]) -> None:
    with OpenVINORunner(irs["fp32"].path) as runner, pytest.raises(InputSpecError) as err:
        runner.infer(np.zeros((2, 32, 32, 1), np.float32))
    assert str(err.value).startswith("input shape (2, 32, 32, 1) received; expected (N, 28, 28, 1)")
    assert "\n" not in str(err.value)


def test_unknown_options_are_refused(irs: dict[str, ExportResult]) -> None:
    with pytest.raises(ModelLoadError, match="performance hint 'fastest' is unknown; choose one of LATENCY"):
        OpenVINORunner(irs["fp32"].path, performance_hint="fastest")
    with pytest.raises(ModelLoadError, match="inference precision 'f8' is unknown"):
        OpenVINORunner(irs["fp32"].path, inference_precision="f8")


def test_export_refusals_leave_nothing_behind(small_run: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedPrecisionError, match="OpenVINO IR export offers fp32, fp16, int8, not 'int16x8'"):
        export_openvino(onnx_fp32(small_run), tmp_path, precision=Precision.INT16X8)
    with pytest.raises(ExportError, match="does not exist; export onnx-fp32 first"):
        export_openvino(tmp_path / "missing.onnx", tmp_path)
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(onnx_fp32(small_run).read_bytes()[:5000])
    out = tmp_path / "out"
    with pytest.raises(ExportError, match=r"OpenVINO fp32 export of damaged\.onnx failed: ") as err:
        export_openvino(damaged, out)
    assert "\n" not in str(err.value)
    assert list(out.iterdir()) == []


def test_int8_keeps_the_int8_floor_and_quarters_the_weights(
    int8_ir: ExportResult, irs: dict[str, ExportResult], images: np.ndarray, ort_probs: np.ndarray, mnist
) -> None:
    # The floor edgekit's parity step applies to int8 artifacts, relative to the reference's own error rate.
    labels = mnist.y_test[:IMAGES]
    accuracy = float((ort_probs.argmax(1) == labels).mean())
    floor = PARITY_TOLERANCES["int8"].for_model(accuracy)
    assert floor.min_agreement is not None and floor.max_accuracy_drop is not None
    with OpenVINORunner(int8_ir.path, num_threads=1) as runner:
        probs = runner.infer(images)
    disagreements = int((probs.argmax(1) != ort_probs.argmax(1)).sum())
    assert within_noise(disagreements, IMAGES, floor.min_agreement), f"{disagreements} of {IMAGES} answers differ"
    drop = accuracy - float((probs.argmax(1) == labels).mean())
    # As the parity step judges it: within the floor, or within 2σ of the paired difference on a small set.
    assert drop <= max(floor.max_accuracy_drop, 2 * np.sqrt(disagreements) / IMAGES)
    # 1 byte per weight instead of 4, plus per-channel scales.
    assert int8_ir.weights.stat().st_size <= 0.3 * irs["fp32"].weights.stat().st_size
    assert int8_ir.quantization is not None and int8_ir.quantization["calibration_images"] == 200
    from toolkit.run.documents.manifest import QuantizationRecipe

    # What manifest.json records for it (a run with -r openvino stopped here once: the recipe lacked its target).
    recipe = QuantizationRecipe.model_validate(int8_ir.quantization)
    assert recipe.target == "portable" and recipe.portable and recipe.note


def test_int8_export_is_silent_and_needs_calibration(small_run: Path, mnist, tmp_path: Path, capfd) -> None:
    pytest.importorskip("nncf", reason="NNCF is not installed (pip install 'edgekit[openvino-int8]')")
    with pytest.raises(UnsupportedPrecisionError, match="OpenVINO int8 needs calibration images"):
        export_openvino(onnx_fp32(small_run), tmp_path, precision="int8")
    capfd.readouterr()
    export_openvino(
        onnx_fp32(small_run), tmp_path, precision="int8", calibration_data=to_model_input(mnist.x_train[:8])
    )
    printed = capfd.readouterr()
    assert printed.out == "" and printed.err == ""
