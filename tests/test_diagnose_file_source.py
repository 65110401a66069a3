"""diagnose on a run made from an ONNX or TFLite file (issue 21): the rows are the file's weighted ops, named by
their tensors, found by name in each export (ORT's QDQ int8, fp16; the AI Edge Quantizer's int8, int8-dynamic).
Small real models (tests/onnx_models.py, tests/tflite_models.py) on real data; the reference is the file itself
(ONNX Runtime / LiteRT fp32), no Keras model in the runs.

- the NCHW CNN: every row of int8 and fp16 is matched (int8 drops the Relu after the Conv; its output is the
  Conv's tensor, clamped by its range), the document and report name onnx-fp32 as the reference;
- scikit-learn's MLP with an outlier hidden unit: int8 departs at the hidden node, whose cause names the
  outlier channel;
- a TFLite CNN: every row of int8, int8-dynamic and fp16 is matched (also for its NCHW batch-1 variant, fed one
  image at a time); with an outlier conv2 channel, int8 departs
  at conv2 and the cause names the channel;
- an export whose tensors were all renamed says so instead of failing; --sensitivity is refused in one line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import onnx_models as O
from tests import tflite_models as T
from tests import user_models as U
from tests.test_cli import assert_one_line_error

QUICK = ("--quick", "-b", "1", "-t", "1", "--no-peak")
TFLITE = ("-f", "tflite")
FP16_SNR_DB = 40.0  # fp16 keeps 11 significant bits (~66 dB per value); a tensor well above 40 dB on any CPU


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _pipeline(edgekit, model: Path, data: Path, runs: Path, *args: str) -> Path:  # type: ignore[no-untyped-def]
    proc = edgekit("pipeline", "--model", str(model), "--data", str(data), "--runs-dir", str(runs), *args, *QUICK)
    assert proc.returncode == 0 or "parity failed" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return (runs / "latest").resolve()


@pytest.fixture(scope="module")
def cnn_run(edgekit, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("diag-onnx-cnn")
    rgb = U.rgb_digits(root / "rgb.npz")
    return _pipeline(edgekit, O.nchw_cnn(root / "cnn.onnx", rgb), rgb, root / "runs")


@pytest.fixture(scope="module")
def outlier_run(edgekit, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    pytest.importorskip("skl2onnx")
    root = tmp_path_factory.mktemp("diag-onnx-outlier")
    pixels = O.mnist_pixels(root / "pixels.npz")
    two = O.sklearn_mlp(root / "two.onnx", pixels, zipmap=False)
    outlier = O.outlier_unit(root / "outlier.onnx", O.probabilities_only(root / "one.onnx", two))
    return _pipeline(edgekit, outlier, pixels, root / "runs")


@pytest.fixture(scope="module")
def tflite_runs(edgekit, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("diag-tflite")
    rgb = U.rgb_digits(root / "rgb.npz")
    cnn, nchw = T.cnn_files(root, rgb)
    outlier = T.outlier_cnn(root / "outlier.tflite", rgb)
    return {
        "cnn": _pipeline(edgekit, cnn, rgb, root / "cnn", *TFLITE),
        "nchw": _pipeline(edgekit, nchw, rgb, root / "nchw", *TFLITE, "-p", "int8"),
        "outlier": _pipeline(edgekit, outlier, rgb, root / "outlier", *TFLITE, "-p", "int8"),
    }


def test_every_node_of_an_onnx_cnn_is_matched_in_int8_and_fp16(edgekit, cnn_run: Path) -> None:  # type: ignore[no-untyped-def]
    proc = edgekit("diagnose", str(cnn_run), "-a", "onnx-int8", "-a", "onnx-fp16", "--limit", "300")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "per-layer error vs onnx-fp32" in proc.stdout
    doc = _json(cnn_run / "diagnose" / "diagnose.json")
    assert doc["reference"]["artifact"] == "onnx-fp32" and doc["images"] == 300
    ref = {r["name"]: r for r in doc["reference"]["layers"]}
    assert list(ref) == ["relu", "probabilities"]  # Conv+Relu, Gemm+Softmax: named by the tensors that end them
    assert ref["relu"]["type"] == "Conv+Relu" and ref["relu"]["shape"] == [8, 8, 8]  # channels-last
    assert ref["probabilities"]["inputs"] == ["relu"]  # through the Flatten, which is no row
    by = {a["artifact"]: a for a in doc["artifacts"]}
    for name in ("onnx-int8", "onnx-fp16"):
        rows = {r["layer"]: r for r in by[name]["layers"]}
        assert list(rows) == ["(input)", "relu", "probabilities"]
        assert all(r["tensor"] is not None for r in rows.values()), rows
    int8 = {r["layer"]: r for r in by["onnx-int8"]["layers"]}
    assert int8["relu"]["tensor"] == "relu" and int8["relu"]["read_from"] == "relu_QuantizeLinear_Output"
    assert int8["relu"]["dtype"].startswith(("uint8", "int8"))
    lo, hi = int8["relu"]["quant_range"]  # the Relu's range (ORT's int8 clamps it instead of running a Relu)
    assert lo <= 0 < hi and int8["relu"]["ref_range"][0] >= 0
    assert int8["probabilities"]["tensor"] == "probabilities_QuantizeLinear_Input"  # ORT renames an output's op
    fp16 = {r["layer"]: r for r in by["onnx-fp16"]["layers"]}
    assert fp16["relu"]["dtype"] == "float16"
    assert all(r["snr_db"] > FP16_SNR_DB for r in fp16.values()) and by["onnx-fp16"]["first_departure"] is None
    assert int8["relu"]["snr_db"] < fp16["relu"]["snr_db"]  # 8 bits lose more than 11
    md = (cnn_run / "diagnose" / "diagnose.md").read_text()
    assert "Top-1 agreement with onnx-fp32" in md and "Each export against the reference (onnx-fp32)" in md


def test_int8_of_an_outlier_mlp_departs_at_the_hidden_node(edgekit, outlier_run: Path) -> None:  # type: ignore[no-untyped-def]
    proc = edgekit("diagnose", str(outlier_run), "--limit", "500")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = _json(outlier_run / "diagnose" / "diagnose.json")
    assert [r["type"] for r in doc["reference"]["layers"]] == ["MatMul+Add+Relu", "MatMul+Add+Softmax+Identity"]
    hidden = doc["reference"]["layers"][0]["name"]  # skl2onnx's Relu output
    (res,) = doc["artifacts"]
    assert res["artifact"] == "onnx-int8"
    assert res["first_departure"]["layer"] == hidden
    cause = res["cause"]
    assert cause["layer"] == hidden and cause["kind"] == "outlier_channel", cause
    width = doc["reference"]["layers"][0]["shape"][0]
    assert width - 1 in cause["channels"]  # the unit outlier_unit appended is the last one
    assert res["top1_agreement"] < 1.0  # the departure is real: int8 changes answers
    assert f"the error starts at {hidden}" in proc.stdout.replace("\n", " ")


def test_an_export_with_renamed_tensors_is_said_unmatched(cnn_run: Path, tmp_path: Path) -> None:
    import onnx

    from toolkit.diagnosis.capture import OnnxGraph
    from toolkit.diagnosis.file_source import onnx_reference, probes_by_name, unmatched

    model = onnx.load(str(cnn_run / "exports" / "model_fp16.onnx"))
    outputs = {o.name for o in model.graph.output}
    renamed = {o: f"t{i}" for i, node in enumerate(model.graph.node) for o in node.output if o not in outputs}
    for node in model.graph.node:
        node.input[:] = [renamed.get(i, i) for i in node.input]
        node.output[:] = [renamed.get(o, o) for o in node.output]
    path = tmp_path / "renamed.onnx"
    onnx.save(model, str(path))
    images = np.random.default_rng(0).random((4, 3, 16, 16), dtype=np.float32) * 255
    ref = onnx_reference(cnn_run / "model.onnx", images)
    probes = probes_by_name(ref, OnnxGraph(path, half=True))
    # the graph output keeps its name (it is the file's interface), the rest are gone
    assert [p.tensor is None for p in probes[1:]] == [True, False]
    assert "no tensor named relu or relu_QuantizeLinear_Input or conv" in probes[1].note
    assert not unmatched(probes)
    probes[2].tensor = None
    assert unmatched(probes)


def test_sensitivity_is_refused_for_an_onnx_source(edgekit, cnn_run: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    shutil.copytree(cnn_run, run)
    assert_one_line_error(edgekit("diagnose", str(run), "--sensitivity"), "run diagnose without --sensitivity")


def test_every_op_of_a_tflite_cnn_is_matched_in_its_exports(edgekit, tflite_runs: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    run = tflite_runs["cnn"]
    args = ("-a", "tflite-int8", "-a", "tflite-int8-dynamic", "-a", "tflite-fp16", "--limit", "300")
    proc = edgekit("diagnose", str(run), *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "per-layer error vs tflite-fp32" in proc.stdout
    doc = _json(run / "diagnose" / "diagnose.json")
    assert doc["reference"]["artifact"] == "tflite-fp32"
    ref = doc["reference"]["layers"]
    # the fused ops' first name part (the op that ends them); the Dense's SOFTMAX is its own op, the row ends there
    assert [r["name"].split("/")[-2:] for r in ref[:2]] == [["conv1_1", "Relu"], ["conv2_1", "Relu"]]
    assert [r["type"] for r in ref] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED+SOFTMAX"]
    assert ref[1]["inputs"] == [ref[0]["name"]] and ref[2]["inputs"] == [ref[1]["name"]]  # through pool, reshape
    assert ref[0]["shape"] == [14, 14, 12]
    by = {a["artifact"]: a for a in doc["artifacts"]}
    assert set(by) == {"tflite-int8", "tflite-int8-dynamic", "tflite-fp16"}
    for res in by.values():
        assert all(r["tensor"] is not None for r in res["layers"]), res["layers"]
    assert all(r["dtype"].startswith("int8") for r in by["tflite-int8"]["layers"])
    assert all(r["snr_db"] > FP16_SNR_DB for r in by["tflite-fp16"]["layers"])
    int8 = [r["snr_db"] for r in by["tflite-int8"]["layers"][1:]]
    dynamic = [r["snr_db"] for r in by["tflite-int8-dynamic"]["layers"][1:]]
    assert all(d > i for d, i in zip(dynamic, int8, strict=True))  # float activations lose less than int8 ones


def test_int8_of_a_tflite_outlier_cnn_departs_at_conv2(edgekit, tflite_runs: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    run = tflite_runs["outlier"]
    proc = edgekit("diagnose", str(run), "--limit", "300")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = _json(run / "diagnose" / "diagnose.json")
    conv2 = doc["reference"]["layers"][1]["name"]
    assert conv2.endswith("conv2_1/Relu")
    (res,) = doc["artifacts"]
    assert res["first_departure"]["layer"] == conv2
    assert res["cause"]["layer"] == conv2 and res["cause"]["kind"] == "outlier_channel", res["cause"]
    assert 16 in res["cause"]["channels"]  # the channel outlier_cnn appended
    assert "not offered for a TFLite source" in res["cause"]["advice"]  # int8-mixed is refused for one
    assert res["top1_agreement"] < 0.9


def test_a_fixed_batch_tflite_file_is_diagnosed_one_image_at_a_time(edgekit, tflite_runs: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    run = tflite_runs["nchw"]
    proc = edgekit("diagnose", str(run), "--limit", "40")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = _json(run / "diagnose" / "diagnose.json")
    (res,) = doc["artifacts"]
    assert res["artifact"] == "tflite-int8" and doc["images"] == 40
    assert all(r["tensor"] is not None for r in res["layers"]), res["layers"]
    assert [r["layout"] for r in res["layers"][1:]] == ["NHWC", "NHWC", "flat"]  # the Permute is the file's first op
