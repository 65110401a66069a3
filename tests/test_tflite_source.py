"""A TFLite file as the source (`--model model.tflite`, issue 21 point 3): real fp32 .tflite files converted by
TFLiteConverter from small Keras models trained on real MNIST digits (tests/tflite_models.py), taken through
pipeline (AI Edge Quantizer artifacts, tf2onnx ONNX), bundle + verify, predict, mcu and the one-line refusals.
The reference is the file itself on LiteRT: no Keras model in these runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtimes.files import sha256_file
from tests import tflite_models as T
from tests import user_models as U
from tests.floors import meets_floor
from tests.test_cli import assert_one_line_error

QUICK = ("--quick", "-b", "1", "-t", "1", "--no-peak")
TFLITE_PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8", "int4-weights")


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _litert_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    """The file's own outputs on LiteRT, one sample per invoke (as a user's loop would run a batch-1 file)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for row in x.astype(np.float32):
        interp.set_tensor(inp["index"], row[None])
        interp.invoke()
        rows.append(interp.get_tensor(out["index"])[0].copy())
    return np.stack(rows)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tflite-source")
    rgb = U.rgb_digits(root / "rgb.npz")
    nhwc, nchw = T.cnn_files(root, rgb)
    return {"rgb": rgb, "nhwc": nhwc, "nchw": nchw}


@pytest.fixture(scope="module")
def nhwc_run(edgekit, files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:  # type: ignore[no-untyped-def]
    runs = tmp_path_factory.mktemp("runs")
    targets = ("-f", "tflite", "-f", "onnx", *(a for p in TFLITE_PRECISIONS for a in ("-p", p)))
    model = ("--model", str(files["nhwc"]), "--data", str(files["rgb"]))
    proc = edgekit("pipeline", *model, *targets, "--runs-dir", str(runs), *QUICK)
    return (runs / "latest").resolve(), proc


@pytest.fixture(scope="module")
def nchw_run(edgekit, files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:  # type: ignore[no-untyped-def]
    runs = tmp_path_factory.mktemp("runs-nchw")
    proc = edgekit(
        "pipeline", "--model", str(files["nchw"]), "--data", str(files["rgb"]), "--runs-dir", str(runs), *QUICK
    )
    return (runs / "latest").resolve(), proc


def test_pipeline_on_a_dynamic_batch_nhwc_file(nhwc_run: tuple[Path, Any], files: dict[str, Path]) -> None:
    run, proc = nhwc_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (run / "model.keras").exists() and not (run / "train.json").exists()
    assert sha256_file(run / "model.tflite") == sha256_file(files["nhwc"])  # the reference is the file itself
    model = _json(run / "model.json")
    assert model["format"] == "tflite" and model["layout"] == "NHWC" and model["fixed_batch"] is None
    assert model["output_kind"] == "probabilities" and model["model_spec"]["input"]["shape"] == [None, 16, 16, 3]
    manifest = _json(run / "manifest.json")
    assert manifest["reference"] == "tflite-fp32"
    entries = {a["name"]: a for a in manifest["artifacts"]}
    assert set(entries) == {f"tflite-{p}" for p in TFLITE_PRECISIONS} | {"onnx-fp32", "onnx-fp16", "onnx-int8"}
    assert entries["tflite-fp32"]["path"] == "model.tflite" and entries["tflite-fp32"]["runtime"] == "tflite"
    int8 = entries["tflite-int8"]
    assert int8["quantization"]["recipe"] == "aeq-static-wi8-ai8" and int8["input"]["dtype"] == "int8"
    size = {p: entries[f"tflite-{p}"]["size_bytes"] for p in TFLITE_PRECISIONS}
    assert size["fp16"] < size["fp32"] and size["int8"] < size["fp16"] and size["int4-weights"] < size["int8"]
    parity = _json(run / "parity.json")
    assert parity["reference"]["artifact"] == "tflite-fp32" and parity["passed"], proc.stdout
    d = np.load(files["rgb"])
    probs = _litert_outputs(files["nhwc"], d["x_test"])
    accuracy = float((probs.argmax(1) == d["y_test"]).mean())
    assert parity["reference"]["accuracy"] == pytest.approx(accuracy) and accuracy > 0.8
    rows = {r["artifact"]: r for r in parity["results"]}
    n = len(d["y_test"])
    assert rows["tflite-fp32"]["max_abs_diff"] == 0.0
    assert rows["tflite-fp16"]["max_abs_diff"] <= 1e-2
    assert rows["onnx-fp32"]["max_abs_diff"] <= 1e-5
    for name in ("tflite-int8-dynamic", "tflite-int8", "tflite-int4-weights", "onnx-int8"):
        precision = name.split("-", 1)[1]
        assert meets_floor(rows[name]["top1_agreement"], n, accuracy, precision), (name, rows[name])
    assert all(r["passed"] for r in rows.values())
    assert set(_json(run / "bench.json")["artifacts"]) == set(entries)
    assert "against the TFLite source's reference (tflite-fp32)" in (run / "report.md").read_text()


def test_fixed_batch_nchw_file_as_litert_torch_writes_it(nchw_run: tuple[Path, Any], files: dict[str, Path]) -> None:
    run, proc = nchw_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ONNX artifacts are made only when asked" in proc.stdout
    model = _json(run / "model.json")
    assert model["layout"] == "NCHW" and model["layout_from"] == "input shape" and model["fixed_batch"] == 1
    assert model["model_spec"]["input"]["shape"] == [None, 3, 16, 16]
    entries = {a["name"] for a in _json(run / "manifest.json")["artifacts"]}
    assert entries == {"tflite-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8"}  # int4: opt-in
    parity = _json(run / "parity.json")
    assert parity["passed"]
    # LiteRT runs the batch-1 file one sample at a time; the channels-last data is transposed to NCHW for it.
    d = np.load(files["rgb"])
    probs = _litert_outputs(files["nchw"], d["x_test"].transpose(0, 3, 1, 2))
    assert parity["reference"]["accuracy"] == pytest.approx(float((probs.argmax(1) == d["y_test"]).mean()))
    rows = {r["artifact"]: r for r in parity["results"]}
    n, accuracy = len(d["y_test"]), parity["reference"]["accuracy"]
    assert meets_floor(rows["tflite-int8"]["top1_agreement"], n, accuracy)


def test_bundle_verify_and_predict_on_a_tflite_source_run(edgekit, nchw_run: tuple[Path, Any], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    run, _ = nchw_run
    out = tmp_path / "bundle"
    proc = edgekit("bundle", str(run), "--out", str(out), "--golden", "40")
    assert proc.returncode == 0, proc.stderr
    assert np.load(out / "golden" / "inputs.npy").shape == (40, 3, 16, 16)
    proc = edgekit("verify", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _json(out / "verify.json")["passed"]
    image = tmp_path / "digit.png"
    Image.fromarray(np.full((16, 16, 3), 40, np.uint8)).save(image)
    proc = edgekit("predict", str(run), str(image))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Predictions by tflite-fp32" in proc.stdout


def test_mcu_runs_the_quantizers_int8_in_tflm(edgekit, nchw_run: tuple[Path, Any]) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("tflite_micro")
    run, _ = nchw_run
    proc = edgekit("mcu", str(run), "--limit", "200")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = _json(run / "mcu.json")
    assert doc["passed"] and doc["results"][0]["artifact"] == "tflite-int8"


def test_steps_needing_keras_refuse_a_tflite_source(edgekit, nchw_run: tuple[Path, Any]) -> None:  # type: ignore[no-untyped-def]
    run, _ = nchw_run  # diagnose takes it: tests/test_diagnose_file_source.py
    proc = edgekit("export", str(run), "--max-accuracy-drop", "1")
    assert_one_line_error(proc, "int8-mixed", "made from a TFLite file")
    proc = edgekit("export", str(run), "-f", "onnx")
    assert_one_line_error(proc, "its input has a fixed batch of 1, which tf2onnx keeps")
    assert_one_line_error(edgekit("export", str(run), "-p", "int16x8"), "no artifact matches", "(a TFLite source)")


def test_export_with_a_tflite_model_imports_it(edgekit, files: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    proc = edgekit("export", str(run), "--model", str(files["nhwc"]), "--data", str(files["rgb"]), "-p", "fp16")
    assert proc.returncode == 0, proc.stderr
    manifest = _json(run / "manifest.json")
    assert manifest["reference"] == "tflite-fp32"
    assert {a["name"] for a in manifest["artifacts"]} == {"tflite-fp32", "tflite-fp16"}
    proc = edgekit("parity", str(run))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _json(run / "parity.json")["passed"]


REFUSALS = {
    "two-signatures": (T.two_signatures, "has 2 subgraphs and 2 signatures (embed, predict)"),
    "int64": (T.int64_input, "input 'ids' has dtype int64; edgekit takes float32 inputs"),
    "dynamic-size": (T.dynamic_size, "has dynamic sizes [N, N, N, 1]; exports and benchmarks need fixed sizes"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_tflite_files_write_nothing(edgekit, files: dict[str, Path], tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    build, message = REFUSALS[case]
    model = build(tmp_path / f"{case}.tflite")
    runs = tmp_path / "runs"
    proc = edgekit("pipeline", "--model", str(model), "--data", str(files["rgb"]), "--runs-dir", str(runs))
    assert_one_line_error(proc, message)
    assert not runs.exists()


def test_refused_quantized_files_and_non_flatbuffers(
    edgekit, files: dict[str, Path], nchw_run: tuple[Path, Any], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    runs = tmp_path / "runs"
    data = ("--data", str(files["rgb"]), "--runs-dir", str(runs))
    exports = nchw_run[0] / "exports"
    proc = edgekit("pipeline", "--model", str(exports / "model_int8.tflite"), *data)
    assert_one_line_error(proc, "is already quantized (input 'serving_default_pixels:0' is int8)", "give the fp32")
    proc = edgekit("pipeline", "--model", str(exports / "model_int8_dynamic.tflite"), *data)
    assert_one_line_error(proc, "is already quantized (int8 tensors)")
    onnx_named = tmp_path / "model.tflite"
    onnx_named.write_bytes(b"\x08\x07\x12\x04onnx" + bytes(64))
    assert_one_line_error(edgekit("pipeline", "--model", str(onnx_named), *data), "is not a TFLite flatbuffer")
    proc = edgekit("pipeline", "--model", str(files["nchw"]), "-f", "onnx", *data)
    assert_one_line_error(proc, "ONNX from nchw_fixed.tflite: its input has a fixed batch of 1")
    assert not runs.exists()
