"""An ONNX file from a framework other than Keras: scikit-learn's MLPClassifier fit on 2,000 real MNIST digits and
converted by skl2onnx (tests/onnx_models.py), and int8-mixed for an ONNX source (issue 21 points 2 and 5).

- with its ZipMap (skl2onnx's default) it is refused in one line that says how to convert it (`zipmap=False`);
- with `zipmap=False` it has two outputs (the int64 `label`: class_indices, and `probabilities`); wrapped to take
  NCHW images [N, 1, 28, 28], it goes through the pipeline on named data (the same digit labels as the target of
  each output), `predict` prints each output, bundle + verify check each output, diagnose gives each output its
  map (the ArgMax label takes the probabilities' rows), and mcu and int8-mixed refuse it in one line;
- its probabilities alone (the label output dropped) go through the pipeline: fp32 (the file), fp16, int8;
- with an outlier hidden unit (float outputs unchanged), full int8 misses a 0.5-point budget and
  `pipeline`/`export --max-accuracy-drop 0.5` keep the hidden Gemm in float: onnx-int8-mixed, recorded as for
  Keras.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import onnx_models as O
from tests.floors import meets_floor
from tests.test_cli import assert_one_line_error

pytest.importorskip("skl2onnx")

QUICK = ("--quick", "-b", "1", "-t", "1", "--no-peak")
HIDDEN = "MatMul/MatMulAddFusion"  # the MLP's hidden MatMul+Add, as ORT's pre-processing fuses and names it


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def skl(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sklearn")
    pixels = O.mnist_pixels(root / "pixels.npz")
    two = O.sklearn_mlp(root / "mlp_two_outputs.onnx", pixels, zipmap=False)
    one = O.probabilities_only(root / "mlp.onnx", two)
    return {
        "pixels": pixels,
        "images": O.mnist_pixels(root / "images.npz", images=True),
        "zipmap": O.sklearn_mlp(root / "mlp_zipmap.onnx", pixels),
        "two": two,
        "nchw_two": O.nchw_wrapped(root / "mlp_nchw_two_outputs.onnx", two),
        "named": O.named_images(root / "named.npz"),
        "one": one,
        "outlier": O.outlier_unit(root / "mlp_outlier.onnx", one),
    }


def test_sklearn_files_as_converted_are_refused_with_the_fix(edgekit, skl: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runs = tmp_path / "runs"

    def pipeline(model: str, data: str) -> Any:
        return edgekit("pipeline", "--model", str(skl[model]), "--data", str(skl[data]), "--runs-dir", str(runs))

    assert_one_line_error(pipeline("zipmap", "pixels"), "'output_probability' is a sequence", "zipmap=False")
    # two outputs are taken, from named data: x/y arrays cannot say which output a target is for
    names = "the model has 1 input (X) and 2 outputs (label, probabilities): give one array per input and target"
    assert_one_line_error(pipeline("two", "pixels"), names, "missing X, label, probabilities")
    assert not runs.exists()


def test_nchw_variant_computes_what_the_mlp_does(skl: dict[str, Path]) -> None:
    import onnxruntime as ort

    d = np.load(skl["images"])
    flat = ort.InferenceSession(str(skl["two"]), providers=["CPUExecutionProvider"])
    nchw = ort.InferenceSession(str(skl["nchw_two"]), providers=["CPUExecutionProvider"])
    assert nchw.get_inputs()[0].shape == ["N", 1, 28, 28] and len(nchw.get_outputs()) == 2
    x = d["x_test"][:200]
    label, probs = nchw.run(None, {"image": x.transpose(0, 3, 1, 2)})
    want_label, want_probs = flat.run(None, {"X": x.reshape(len(x), -1)})
    assert np.array_equal(label, want_label) and np.allclose(probs, want_probs, atol=1e-6)
    assert (label == d["y_test"][:200]).mean() > 0.8  # a real classifier, not a constant


@pytest.fixture(scope="module")
def nchw_run(edgekit, skl: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:  # type: ignore[no-untyped-def]
    runs = tmp_path_factory.mktemp("nchw-runs")
    args = ("--model", str(skl["nchw_two"]), "--data", str(skl["named"]), "--runs-dir", str(runs))
    return (runs / "latest").resolve(), edgekit("pipeline", *args, *QUICK)


def test_pipeline_on_the_nchw_two_output_mlp(nchw_run: tuple[Path, Any]) -> None:
    run, proc = nchw_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model = _json(run / "model.json")
    assert model["producer"].startswith("skl2onnx") and model["layout"] == "NCHW"
    spec = model["model_spec"]
    assert spec["spec_version"] == 2
    assert [(t["name"], t["shape"], t["layout"], t["value_range"]) for t in spec["inputs"]] == [
        ("image", [None, 1, 28, 28], "NCHW", [0.0, 1.0])
    ]
    assert [(t["name"], t["shape"], t["dtype"], t["kind"]) for t in spec["outputs"]] == [
        ("label", [None], "int64", "class_indices"),
        ("probabilities", [None, 10], "float32", "probabilities"),  # Softmax → Identity: still probabilities
    ]
    artifacts = {a["name"]: a for a in _json(run / "manifest.json")["artifacts"]}
    assert set(artifacts) == {"onnx-fp32", "onnx-fp16", "onnx-int8"}
    for entry in artifacts.values():  # every artifact described tensor by tensor, under the file's names
        assert [t["name"] for t in entry["model_spec"]["outputs"]] == ["label", "probabilities"]
        assert entry["model_spec"]["outputs"][0]["kind"] == "class_indices"
    parity = _json(run / "parity.json")
    assert parity["passed"]
    rows = {(r["artifact"], r["output"]): r for r in parity["results"]}
    assert set(rows) == {(a, o) for a in artifacts for o in ("label", "probabilities")}
    n = parity["data"]["images"]
    accuracy = {o["name"]: o["value"] for o in parity["reference"]["outputs"]}
    assert accuracy["label"] > 0.8 and accuracy["label"] == accuracy["probabilities"]  # the label is the argmax
    assert rows[("onnx-fp16", "probabilities")]["max_abs_diff"] <= 1e-2
    for output in ("label", "probabilities"):
        assert rows[("onnx-fp32", output)]["top1_agreement"] == 1.0
        assert meets_floor(rows[("onnx-int8", output)]["top1_agreement"], n, accuracy[output])
    assert set(_json(run / "bench.json")["artifacts"]) == set(artifacts)


def test_predict_prints_each_output_of_the_nchw_mlp(
    edgekit,  # type: ignore[no-untyped-def]
    nchw_run: tuple[Path, Any],
    skl: dict[str, Path],
    tmp_path: Path,
) -> None:
    import re

    from PIL import Image

    run, _ = nchw_run
    image = tmp_path / "digit.png"
    x = np.load(skl["named"])["image_test"][0, 0]
    Image.fromarray(np.round(x * 255).astype(np.uint8)).save(image)
    for artifact in ("onnx-fp32", "onnx-int8"):
        proc = edgekit("predict", str(run), "-a", artifact, str(image))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        found = re.search(r"label: (\d); probabilities: (\d) \(", proc.stdout)
        assert found and found.group(1) == found.group(2), proc.stdout  # both outputs name the same digit
        assert "boxes are xyxy" not in proc.stdout  # the caption names box coordinates only for a boxes output


def test_bundle_and_verify_check_each_output_of_the_nchw_mlp(
    edgekit,  # type: ignore[no-untyped-def]
    nchw_run: tuple[Path, Any],
    tmp_path: Path,
) -> None:
    run, _ = nchw_run
    bundle = tmp_path / "bundle"
    proc = edgekit("bundle", str(run), "-o", str(bundle))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = edgekit("verify", str(bundle))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verify = _json(bundle / "verify.json")
    assert verify["passed"]
    rows = {(r["artifact"], r["output"]): r for r in verify["results"]}
    assert set(rows) == {(a, o) for a in ("onnx-fp32", "onnx-fp16", "onnx-int8") for o in ("label", "probabilities")}
    assert rows[("onnx-int8", "label")]["output_kind"] == "class_indices"
    for row in rows.values():  # the same machine: every output as the desktop computed it
        assert row["passed"] and row["accuracy"] == row["desktop_accuracy"]


def test_diagnose_gives_each_output_of_the_nchw_mlp_its_map(
    edgekit,  # type: ignore[no-untyped-def]
    nchw_run: tuple[Path, Any],
) -> None:
    run, _ = nchw_run
    proc = edgekit("diagnose", str(run), "-a", "onnx-fp16", "-a", "onnx-int8")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = _json(run / "diagnose" / "diagnose.json")
    assert report["reference"]["artifact"] == "onnx-fp32"
    rows = [r["name"] for r in report["reference"]["layers"]]
    assert len(rows) == 2 and rows[-1] == "probabilities"  # the hidden MatMul+Add+Relu, then the output's
    n = report["images"]
    accuracy = {o["name"]: o["value"] for o in _json(run / "parity.json")["reference"]["outputs"]}
    for res in report["artifacts"]:
        sections = {s["output"]: s for s in res["outputs"]}
        assert set(sections) == {"label", "probabilities"}, res["artifact"]
        label, probs = sections["label"], sections["probabilities"]
        assert label["kind"] == "class_indices" and label["snr_db"] is None and "ArgMax" in label["note"]
        assert probs["snr_db"] is not None and probs["hurt"] and not label["hurt"]
        # the label is the probabilities' argmax: its map is theirs, and both agree with the reference alike
        assert label["layers"] == probs["layers"] == ["(input)", *rows]
        for s in (label, probs):
            assert s["error"]["measure"] == "top-1 agreement"
            assert s["error"]["reference_accuracy"] == label["error"]["reference_accuracy"] > 0.8
        assert label["error"]["value"] == probs["error"]["value"]
        assert meets_floor(label["error"]["value"], n, accuracy["label"])  # fp16 rounds less: int8's floor bounds it
        assert all(r["tensor"] is not None for r in res["layers"]), res["artifact"]  # every row found by name
    md = (run / "diagnose" / "diagnose.md").read_text()
    assert "Error against onnx-fp32" in md and "made by ArgMax" in md


def test_steps_that_cannot_take_the_two_output_mlp_refuse_in_one_line(
    edgekit,  # type: ignore[no-untyped-def]
    nchw_run: tuple[Path, Any],
    skl: dict[str, Path],
    tmp_path: Path,
) -> None:
    run, _ = nchw_run
    tensors = "this model has 1 input (image) and 2 outputs (label, probabilities)"
    assert_one_line_error(edgekit("mcu", str(run)), "mcu builds TFLite Micro firmware", "made from an ONNX file")
    runs = tmp_path / "runs"
    args = ("--model", str(skl["nchw_two"]), "--data", str(skl["named"]), "--runs-dir", str(runs))
    proc = edgekit("pipeline", *args, "--max-accuracy-drop", "0.5")
    assert_one_line_error(proc, "int8-mixed (--max-accuracy-drop, --min-agreement) runs single-input", tensors)
    assert not runs.exists()


@pytest.fixture(scope="module")
def mlp_run(edgekit, skl: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:  # type: ignore[no-untyped-def]
    runs = tmp_path_factory.mktemp("runs")
    args = ("--model", str(skl["one"]), "--data", str(skl["pixels"]), "--runs-dir", str(runs))
    return (runs / "latest").resolve(), edgekit("pipeline", *args, *QUICK)


def test_pipeline_on_the_sklearn_probabilities(mlp_run: tuple[Path, Any]) -> None:
    run, proc = mlp_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model = _json(run / "model.json")
    # skl2onnx ends with Softmax → Identity: still probabilities
    assert model["output_kind"] == "probabilities" and model["producer"].startswith("skl2onnx")
    assert model["layout"] == "NC" and model["model_spec"]["input"]["shape"] == [None, 784]
    parity = _json(run / "parity.json")
    rows = {r["artifact"]: r for r in parity["results"]}
    assert set(rows) == {"onnx-fp32", "onnx-fp16", "onnx-int8"} and parity["passed"]
    n, acc = parity["data"]["images"], parity["reference"]["accuracy"]
    assert acc > 0.8
    assert rows["onnx-fp16"]["max_abs_diff"] <= 1e-2
    assert meets_floor(rows["onnx-int8"]["top1_agreement"], n, acc)


def test_full_int8_within_the_budget_writes_no_mixed_artifact(
    edgekit,  # type: ignore[no-untyped-def]
    mlp_run: tuple[Path, Any],
    skl: dict[str, Path],
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    shutil.copytree(mlp_run[0], run)
    proc = edgekit("export", str(run), "--max-accuracy-drop", "5", "-p", "int8")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "onnx: full int8 meets the budget (accuracy" in proc.stdout and "vs onnx-fp32" in proc.stdout
    assert not (run / "mixed.json").exists() and not (run / "exports" / "model_int8_mixed.onnx").exists()


def test_pipeline_max_accuracy_drop_keeps_the_outlier_node_in_float(
    edgekit,  # type: ignore[no-untyped-def]
    skl: dict[str, Path],
    tmp_path: Path,
) -> None:
    args = ("--model", str(skl["outlier"]), "--data", str(skl["pixels"]), "--max-accuracy-drop", "0.5")
    proc = edgekit("pipeline", *args, "--runs-dir", str(tmp_path), *QUICK)
    assert proc.returncode == 3, proc.stdout + proc.stderr  # full int8 fails parity ...
    run = (tmp_path / "latest").resolve()
    assert _json(run / "run.json")["max_drop"] == 0.5  # --resume repeats the search
    assert "onnx-int8-mixed: full int8 accuracy" in proc.stdout and "vs onnx-fp32" in proc.stdout
    rows = {r["artifact"]: r for r in _json(run / "parity.json")["results"]}
    assert not rows["onnx-int8"]["passed"] and rows["onnx-int8-mixed"]["passed"]  # ... the mixed file passes
    by_name = {a["name"]: a for a in _json(run / "manifest.json")["artifacts"]}
    mixed_entry = by_name["onnx-int8-mixed"]
    assert mixed_entry["float_layers"] == [HIDDEN] and mixed_entry["precision"] == "int8-mixed"
    assert mixed_entry["quantization"] == by_name["onnx-int8"]["quantization"]  # the same int8 recipe
    assert "onnx-int8-mixed" in _json(run / "bench.json")["artifacts"]
    mixed = _json(run / "mixed.json")
    assert [f["format"] for f in mixed["formats"]] == ["onnx"] and mixed["max_drop_pt"] == 0.5
    assert mixed["reference"] == "onnx-fp32" and rows["onnx-fp32"]["accuracy"] == pytest.approx(mixed["keras_accuracy"])
    onnx_search = mixed["formats"][0]
    assert onnx_search["float_layers"] == [HIDDEN] and onnx_search["ranking"][0]["layer"] == HIDDEN
    assert f"1 node(s) in float ({HIDDEN})" in onnx_search["note"]
    k0, k1 = onnx_search["curve"][0], onnx_search["curve"][1]
    assert not k0["meets_budget"] and k0["drop_pt"] > 0.5  # the outlier's levels cost full int8 the budget
    assert k1["meets_budget"] and k1["drop_pt"] <= 0.5 and k1["float_layers"] == [HIDDEN]
    section = (run / "report.md").read_text().split("## Mixed precision\n", 1)[1].split("\n## ", 1)[0]
    assert "within 0.5 pt of onnx-fp32" in section and "most sensitive weighted nodes" in section
    assert f"| **1** | {HIDDEN} |" in section


def test_export_max_accuracy_drop_on_an_onnx_model(edgekit, skl: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    args = ("--model", str(skl["outlier"]), "--data", str(skl["pixels"]), "--max-accuracy-drop", "0.5", "-p", "int8")
    proc = edgekit("export", str(run), *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "onnx-int8-mixed: full int8 accuracy" in proc.stdout and f"1 node(s) in float ({HIDDEN})" in proc.stdout
    assert {a["name"] for a in _json(run / "manifest.json")["artifacts"]} == {
        "onnx-fp32",
        "onnx-int8",
        "onnx-int8-mixed",
    }


def test_unknown_node_name_is_an_error_naming_the_weighted_nodes(skl: dict[str, Path], tmp_path: Path) -> None:
    from exporters.errors import ExportError
    from exporters.mixed import export_onnx_file_mixed

    cal = np.load(skl["pixels"])["x_train"][:50]
    out = tmp_path / "exports"
    with pytest.raises(
        ExportError,
        match=f"no weighted node named MatMul in the pre-processed graph; its weighted nodes: {HIDDEN}, MatMul1/",
    ):
        export_onnx_file_mixed(skl["outlier"], out, input_name="X", calibration_data=cal, float_nodes=["MatMul"])
    assert list(out.iterdir()) == []  # nothing half-written
