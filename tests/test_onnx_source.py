"""An ONNX file as the source (`--model model.onnx`, issue 21 point 2): small real ONNX models built with
onnx.helper from real MNIST data (tests/onnx_models.py), taken through pipeline, bundle + verify, and the
one-line refusals. The reference is the file itself on ONNX Runtime fp32: no Keras anywhere in these runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtimes.files import sha256_file
from tests import onnx_models as O
from tests import user_models as U
from tests.floors import meets_floor
from tests.test_cli import assert_one_line_error

QUICK = ("--quick", "-b", "1", "-t", "1", "--no-peak")


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx-source")
    rgb, ink = U.rgb_digits(root / "rgb.npz"), U.ink_targets(root / "ink.npz")
    return {
        "rgb": rgb,
        "ink": ink,
        "cnn": O.nchw_cnn(root / "cnn.onnx", rgb),
        "regressor": O.vector_regressor(root / "regressor.onnx", ink),
    }


@pytest.fixture(scope="module")
def cnn_run(edgekit, files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:  # type: ignore[no-untyped-def]
    runs = tmp_path_factory.mktemp("runs")
    proc = edgekit(
        "pipeline", "--model", str(files["cnn"]), "--data", str(files["rgb"]), "--runs-dir", str(runs), *QUICK
    )
    return (runs / "latest").resolve(), proc


def test_pipeline_on_an_nchw_onnx_classifier(cnn_run: tuple[Path, Any], files: dict[str, Path]) -> None:
    run, proc = cnn_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the TFLite targets are skipped" in proc.stdout
    assert not (run / "model.keras").exists() and not (run / "train.json").exists()
    # the reference is the user's file itself, byte for byte
    assert sha256_file(run / "model.onnx") == sha256_file(files["cnn"])
    model = _json(run / "model.json")
    assert model["format"] == "onnx" and model["layout"] == "NCHW" and model["layout_from"] == "input shape"
    assert model["model_spec"]["input"]["name"] == "pixels" and model["model_spec"]["input"]["shape"] == [
        None,
        3,
        16,
        16,
    ]
    assert model["output_kind"] == "probabilities" and model["source_sha256"] == sha256_file(files["cnn"])
    manifest = _json(run / "manifest.json")
    assert manifest["reference"] == "onnx-fp32"
    names = {a["name"]: a for a in manifest["artifacts"]}
    assert set(names) == {"onnx-fp32", "onnx-fp16", "onnx-int8"}
    assert names["onnx-fp32"]["path"] == "model.onnx" and names["onnx-fp32"]["runtime"] == "onnxruntime"
    assert names["onnx-int8"]["quantization"]["recipe"] == "qdq-u8s8-7bit"
    assert names["onnx-fp16"]["size_bytes"] < 0.6 * names["onnx-fp32"]["size_bytes"]
    parity = _json(run / "parity.json")
    assert parity["reference"]["artifact"] == "onnx-fp32" and parity["passed"]
    rows = {r["artifact"]: r for r in parity["results"]}
    # the reference's accuracy is ONNX Runtime's on the channels-last data, transposed to NCHW
    d = np.load(files["rgb"])
    import onnxruntime as ort

    session = ort.InferenceSession(str(files["cnn"]), providers=["CPUExecutionProvider"])
    probs = session.run(None, {"pixels": d["x_test"].astype(np.float32).transpose(0, 3, 1, 2)})[0]
    assert parity["reference"]["accuracy"] == pytest.approx(float((probs.argmax(1) == d["y_test"]).mean()))
    assert parity["reference"]["accuracy"] > 0.8
    assert rows["onnx-fp32"]["max_abs_diff"] == 0.0
    # Judged by parity's own floors for a model of this accuracy on this many images (tests/floors.py), not by a
    # figure measured on one CPU.
    n, acc = len(d["y_test"]), parity["reference"]["accuracy"]
    assert rows["onnx-fp16"]["max_abs_diff"] <= 1e-2 and rows["onnx-fp16"]["passed"]
    assert meets_floor(rows["onnx-int8"]["top1_agreement"], n, acc) and rows["onnx-int8"]["passed"]
    bench = _json(run / "bench.json")
    assert set(bench["artifacts"]) == {"onnx-fp32", "onnx-fp16", "onnx-int8"}
    report = (run / "report.md").read_text()
    assert "against the ONNX source's reference (onnx-fp32)" in report


def test_bundle_and_verify_an_onnx_source_run(edgekit, cnn_run: tuple[Path, Any], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run, _ = cnn_run
    out = tmp_path / "bundle"
    proc = edgekit("bundle", str(run), "--out", str(out), "--golden", "40")
    assert proc.returncode == 0, proc.stderr
    doc = _json(out / "bundle.json")
    assert {a["name"] for a in doc["artifacts"]} == {"onnx-fp32", "onnx-fp16", "onnx-int8"}
    assert np.load(out / "golden" / "inputs.npy").shape == (40, 3, 16, 16)
    proc = edgekit("verify", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verify = _json(out / "verify.json")
    assert verify["passed"] and len(verify["results"]) == 3


def test_mcu_refuses_an_onnx_source(edgekit, cnn_run: tuple[Path, Any]) -> None:  # type: ignore[no-untyped-def]
    run, _ = cnn_run  # diagnose takes it: tests/test_diagnose_file_source.py
    assert_one_line_error(edgekit("mcu", str(run)), "mcu builds TFLite Micro firmware", "made from an ONNX file")
    assert_one_line_error(edgekit("export", str(run), "-f", "tflite"), "TFLite from an ONNX source is out of reach")


def test_onnx_regressor_with_named_vector_input(edgekit, files: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # int8 is left out: on this random-feature regressor ORT's 7-bit int8 is ~6 % off (the values tolerance is 5 %)
    args = ("--model", str(files["regressor"]), "--data", str(files["ink"]), "-p", "fp32", "-p", "fp16")
    proc = edgekit("pipeline", *args, "--runs-dir", str(tmp_path), *QUICK)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = (tmp_path / "latest").resolve()
    model = _json(run / "model.json")
    assert model["layout"] == "NC" and model["output_kind"] == "values"
    assert model["model_spec"]["input"]["name"] == "features"
    parity = _json(run / "parity.json")
    assert parity["reference"]["output_kind"] == "values" and parity["passed"]
    assert {r["artifact"] for r in parity["results"]} == {"onnx-fp32", "onnx-fp16"}


def test_export_with_an_onnx_model_imports_it(edgekit, files: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    proc = edgekit("export", str(run), "--model", str(files["cnn"]), "--data", str(files["rgb"]), "-p", "fp16")
    assert proc.returncode == 0, proc.stderr
    assert {a["name"] for a in _json(run / "manifest.json")["artifacts"]} == {"onnx-fp32", "onnx-fp16"}


REFUSALS = {
    # several inputs/outputs are taken from named data only: x/y arrays are refused, naming the tensors
    "two-outputs": (O.two_outputs, "the model has 1 input (features) and 2 outputs (digit, side): give one array per"),
    "two-inputs": (O.two_inputs, "the model has 2 inputs (image, meta) and 1 output (sum): give one array per input"),
    "sequence": (O.sequence_output, "is a sequence, not a tensor (scikit-learn's ZipMap: convert with zipmap=False"),
    "int64": (O.int64_input, "input 'ids' has dtype int64; edgekit takes float32 inputs."),
    "uint8": (lambda p: O.typed_input(p, "uint8"), "has dtype uint8; edgekit takes float32 inputs: export it with"),
    "float16": (
        lambda p: O.typed_input(p, "float16"),
        "has dtype float16; edgekit takes float32 inputs: give the fp32",
    ),
    "dynamic-hw": (O.dynamic_spatial, "input 'image' has dynamic sizes [N, 3, ?, ?]; exports and benchmarks need"),
    "opset": (O.opset_too_new, "newer than the installed onnx/onnxruntime support (up to opset"),
    "not-onnx": (O.not_onnx, "could not be read as an ONNX model (DecodeError); give an .onnx file."),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_onnx_files_write_nothing(edgekit, files: dict[str, Path], tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    build, message = REFUSALS[case]
    model = build(tmp_path / f"{case}.onnx")
    runs = tmp_path / "runs"
    proc = edgekit("pipeline", "--model", str(model), "--data", str(files["ink"]), "--runs-dir", str(runs))
    assert_one_line_error(proc, message)
    assert not runs.exists()


def test_refused_files_made_from_real_models(
    edgekit, files: dict[str, Path], cnn_run: tuple[Path, Any], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    runs = tmp_path / "runs"
    data = ("--data", str(files["ink"]), "--runs-dir", str(runs))
    fixed = O.fixed_batch(tmp_path / "fixed.onnx", files["ink"], batch=4)
    assert_one_line_error(edgekit("pipeline", "--model", str(fixed), *data), "has a fixed batch of 4", "dynamic")
    held = O.batch_one_reshape(tmp_path / "view.onnx", files["ink"])
    proc = edgekit("pipeline", "--model", str(held), *data)
    assert_one_line_error(proc, "fixed batch of 1 and the graph does not run at another batch (its Reshape node 'view'")
    (tmp_path / "ext").mkdir()
    external = O.external_data_missing(tmp_path / "ext" / "model.onnx", files["ink"])
    assert_one_line_error(edgekit("pipeline", "--model", str(external), *data), "external data 'weights.bin'")
    quantized = cnn_run[0] / "exports" / "model_int8.onnx"
    proc = edgekit("pipeline", "--model", str(quantized), "--data", str(files["rgb"]), "--runs-dir", str(runs))
    assert_one_line_error(proc, "is already quantized", "give the fp32 model")
    proc = edgekit("pipeline", "--model", str(files["cnn"]), "-f", "tflite", *data)
    assert_one_line_error(proc, "TFLite from an ONNX source is out of reach of this stack: onnx2tf pins numpy 1.26")
    assert not runs.exists()


def test_a_batch_one_file_gets_a_dynamic_batch_axis(edgekit, files: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import onnx

    fixed = O.fixed_batch(tmp_path / "fixed.onnx", files["ink"])
    run = tmp_path / "run"
    proc = edgekit("export", str(run), "--model", str(fixed), "--data", str(files["ink"]), "-p", "fp16")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model = _json(run / "model.json")
    assert model["model_spec"]["input"]["shape"] == [None, 49] and model["source_sha256"] == sha256_file(fixed)
    copy = onnx.load(str(run / "model.onnx"))
    assert [
        d.dim_param
        for d in (copy.graph.input[0].type.tensor_type.shape.dim[0], copy.graph.output[0].type.tensor_type.shape.dim[0])
    ] == ["N", "N"]
    proc = edgekit("parity", str(run))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    parity = _json(run / "parity.json")
    assert {r["artifact"] for r in parity["results"]} == {"onnx-fp32", "onnx-fp16"} and parity["passed"]


def test_a_budget_on_a_regressor_is_refused_before_anything_is_written(  # type: ignore[no-untyped-def]
    edgekit, files: dict[str, Path], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    args = ("--model", str(files["regressor"]), "--data", str(files["ink"]), "--max-accuracy-drop", "0.5")
    message = "--max-accuracy-drop/--min-agreement need a classifier (top-1 accuracy); this model outputs plain values"
    assert_one_line_error(edgekit("pipeline", *args, "--runs-dir", str(runs)), message)
    assert_one_line_error(edgekit("export", str(runs / "run"), *args), message)
    assert not runs.exists()


def test_two_inputs_and_two_outputs_from_named_data(edgekit, files: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = O.two_input_regressor(tmp_path / "two_in.onnx", files["ink"])
    data = O.two_input_data(tmp_path / "two_in.npz", files["ink"])
    runs = tmp_path / "runs"
    args = ("--model", str(model), "--data", str(data), "--runs-dir", str(runs))
    proc = edgekit("pipeline", *args, "--output-kind", "values")
    assert_one_line_error(proc, "--output-kind names the kind of one output; two_in.onnx has 2 inputs (pooled, thumb)")
    assert not runs.exists()
    proc = edgekit("pipeline", *args, *QUICK)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = (runs / "latest").resolve()
    spec = _json(run / "model.json")["model_spec"]
    assert [(t["name"], t["layout"]) for t in spec["inputs"]] == [("pooled", "NC"), ("thumb", "NHWC")]
    # no Softmax and float targets: both outputs are a regression's values (as for one output)
    assert [(t["name"], t["shape"], t["kind"]) for t in spec["outputs"]] == [
        ("values", [None, 2], "values"),
        ("mean_ink", [None, 1], "values"),
    ]
    int8 = next(a for a in _json(run / "manifest.json")["artifacts"] if a["name"] == "onnx-int8")
    assert [t["name"] for t in int8["model_spec"]["inputs"]] == ["pooled", "thumb"]  # calibrated by input name
    parity = _json(run / "parity.json")
    assert parity["passed"], proc.stdout
    assert {(r["artifact"], r["output"]) for r in parity["results"]} == {
        (a, o) for a in ("onnx-fp32", "onnx-fp16", "onnx-int8") for o in ("values", "mean_ink")
    }
    bundle = tmp_path / "bundle"
    assert edgekit("bundle", str(run), "-o", str(bundle)).returncode == 0
    proc = edgekit("verify", str(bundle))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verify = _json(bundle / "verify.json")
    assert verify["passed"] and len(verify["results"]) == 6  # 3 artifacts × 2 outputs, both inputs fed by name
    proc = edgekit("diagnose", str(run))  # every input fed by name, one map per output of the file's nodes
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (res,) = _json(run / "diagnose" / "diagnose.json")["artifacts"]
    assert res["artifact"] == "onnx-int8" and all(r["tensor"] is not None for r in res["layers"])
    assert {"(input pooled)", "(input thumb)"} <= {r["layer"] for r in res["layers"]}
    sections = {s["output"]: s for s in res["outputs"]}
    assert set(sections) == {"values", "mean_ink"}
    for s in sections.values():  # each ends on its own node, measured as a regression's values
        assert s["layer"] == s["output"] and s["snr_db"] is not None and not s["note"]
        assert s["error"]["measure"] == "max relative error" and s["error"]["max_abs_err"] > 0
