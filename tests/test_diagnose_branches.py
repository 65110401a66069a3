"""Per-layer diagnosis on user models: functional graphs with branches, BatchNorm, an MLP, logits, regression.

The models (tests/diagnose_models.py) are trained briefly on small synthetic but learnable data and exported
with the real exporters; each Keras layer must get the export tensor that holds its output (fp32 rows exact to
> 60 dB), or say which layer it was folded/fused into, never a wrong match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.floors import meets_floor
from toolkit.tolerances import VALUE_TOLERANCES

pytest.importorskip("tensorflow")
pytest.importorskip("onnx")

ARTIFACTS = ["tflite-fp32", "onnx-fp32", "tflite-int8", "onnx-int8"]
EXACT_DB = 60.0


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    from tests.diagnose_models import build_all

    return build_all(tmp_path_factory.mktemp("user-models"))


def _inputs(name: str) -> np.ndarray:
    from tests.diagnose_models import colour_images, vectors

    return colour_images(64, 9)[0] if name.endswith("cnn") else vectors(64, 9)[0]


def _rows(model: Any, path: Path, x: np.ndarray) -> dict[str, dict[str, Any]]:
    """The per-layer core on one artifact: rows keyed by layer name (plus `(input)`)."""
    from toolkit.diagnosis.capture import OnnxGraph, TFLiteGraph
    from toolkit.diagnosis.layers import keras_layers, keras_outputs, map_layers
    from toolkit.diagnosis.metrics import layer_rows

    graph = TFLiteGraph(path) if path.suffix == ".tflite" else OnnxGraph(path)
    probes = map_layers(keras_layers(model), tuple(x.shape[1:]), graph.tensors, (model.name,))
    cap = graph.capture([p.tensor.read for p in probes if p.tensor is not None], x)
    rows, _ = layer_rows(probes, cap.values, keras_outputs(model, x), x)
    # No export tensor stands for two layers (identity layers such as Dropout read their input's).
    tensors = [r["tensor"] for r in rows if r["tensor"] is not None and not r["note"].startswith("identity")]
    assert len(tensors) == len(set(tensors)), path.name
    return {r["layer"]: r for r in rows}


def _check_common(rows: dict[str, dict[str, Any]], artifact: str) -> None:
    for name, r in rows.items():
        if r["tensor"] is None:
            # Every layer without a tensor says where its work went.
            assert r.get("fused_into") and r["note"].startswith(("folded into", "fused into")), (artifact, r)
            assert r["fused_into"] in rows
        elif artifact.endswith("fp32"):
            assert r["snr_db"] > EXACT_DB and r["cosine"] > 0.99999, (artifact, name, r["tensor"], r["snr_db"])
        else:
            assert r["snr_db"] > 15 and r["cosine"] > 0.99, (artifact, name, r["tensor"], r["snr_db"])


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_branch_cnn_maps_every_layer(models: dict[str, dict[str, Any]], artifact: str) -> None:
    m = models["branch_cnn"]
    rows = _rows(m["model"], m["files"][artifact], _inputs("branch_cnn"))
    from toolkit.diagnosis.layers import INPUT_ROW, keras_layers

    # One row per Keras layer (no InputLayer row), in Keras order, after the input row.
    assert list(rows) == [INPUT_ROW, *[lay.name for lay in keras_layers(m["model"])]]
    assert "input_layer" not in rows and len(rows) == 15
    _check_common(rows, artifact)
    # The branch layers are each named against their own tensor: the residual Add and both its inputs,
    # the SeparableConv2D, the hard-swish 1x1 conv, the Concatenate, the pooling layers and the head.
    for name in ("residual", "stem_relu", "dw_relu6", "sep", "pw", "concat", "avgpool", "gap", "probs", "scale"):
        assert rows[name]["tensor"], (artifact, name, rows[name]["note"])
        assert rows[name]["note"] != "no matching tensor"
    assert rows["residual"]["type"] == "Add" and rows["concat"]["type"] == "Concatenate"
    # BatchNorm is folded into the conv before it: the conv row says so; the BN value is compared where it
    # exists (the fused conv tensor), or the BN row says which fused op holds it.
    assert rows["stem"]["tensor"] is None and rows["stem"]["note"].startswith("folded into stem_bn")
    for bn, after in (("stem_bn", "stem_relu"), ("dw_bn", "dw_relu6")):
        assert rows[bn]["tensor"] or rows[bn]["fused_into"] == after, (artifact, bn, rows[bn])
    assert rows["dw"]["tensor"] or rows["dw"]["fused_into"] == "dw_bn"
    if artifact == "onnx-fp32":  # tf2onnx folds BN into the Conv it names `Conv__N`: found through the graph
        assert rows["stem_bn"]["tensor"] and "through the graph" in rows["stem_bn"]["note"]
        assert rows["dw"]["tensor"] and rows["avgpool"]["layout"] == "NCHW"
    if artifact.startswith("tflite"):
        assert all(r["layout"] in ("NHWC", "flat") for r in rows.values() if r["tensor"])
    if artifact.endswith("int8"):
        assert rows["residual"]["dtype"].startswith(("int8", "uint8"))
    # The added error of the Add is measured against its two inputs, not against the row printed above it.
    assert rows["residual"]["snr_drop_db"] == pytest.approx(
        min(rows["stem_relu"]["snr_db"], rows["dw_relu6"]["snr_db"]) - rows["residual"]["snr_db"]
    )


@pytest.mark.parametrize("name", ["mlp", "logits_cnn", "regression", "auto_cnn", "norm_cnn"])
@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_mlp_logits_regression_and_auto_named_models_map_every_layer(
    models: dict[str, dict[str, Any]], name: str, artifact: str
) -> None:
    m = models[name]
    if artifact not in m["files"]:
        pytest.skip(f"{name} is exported to TFLite only (see diagnose_models.TFLITE_ONLY)")
    rows = _rows(m["model"], m["files"][artifact], _inputs(name))
    _check_common(rows, artifact)
    last = m["model"].layers[-1].name
    assert rows[last]["tensor"], (artifact, rows[last])  # the output layer (logits / values too)
    if name == "mlp":
        assert rows["hidden"]["tensor"] and rows["hidden2"]["tensor"] and rows["act"]["tensor"]
        # Rescaling and BN on vectors fold into the Dense after them (TFLite) or keep their own tensor (ONNX).
        assert rows["norm"]["tensor"] or rows["norm"]["fused_into"] == "hidden"
        assert rows["hidden_bn"]["tensor"] or rows["hidden_bn"]["fused_into"] == "hidden2"
    if name in ("auto_cnn", "norm_cnn"):
        # Keras' own names: conv2d vs conv2d_1 (TF scopes conv2d_1 and conv2d_1_2) are not confused; both
        # branches of the Add have their own tensor; Dropout reads the pooling's tensor.
        by_type: dict[str, list[dict[str, Any]]] = {}
        for r in rows.values():
            by_type.setdefault(r["type"], []).append(r)
        first, second, third = by_type["Conv2D"]
        assert first["tensor"] and second["tensor"] and first["tensor"] != second["tensor"]
        assert third["tensor"] or third["fused_into"] == by_type["BatchNormalization"][0]["layer"]
        assert by_type["Add"][0]["tensor"] and by_type["GlobalAveragePooling2D"][0]["tensor"]
        dropout = by_type["Dropout"][0]
        assert dropout["tensor"] == by_type["GlobalAveragePooling2D"][0]["tensor"]
        assert dropout["note"].startswith("identity at inference")
        head = by_type["Rescaling" if name == "auto_cnn" else "Normalization"][0]
        assert head["tensor"] or head["note"].startswith("folded into")


def test_diagnose_arrays_reports_classification_gallery_and_regression_error(
    models: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    from PIL import Image

    from toolkit.diagnosis.render import render_markdown
    from toolkit.diagnosis.step import diagnose_arrays

    def entries(name: str) -> list[tuple[dict[str, Any], Path]]:
        out = []
        for art in ("tflite-int8", "onnx-int8"):
            fmt, precision = art.split("-")
            path = models[name]["files"][art]
            entry = {"name": art, "format": fmt, "precision": precision, "runtime": fmt, "path": path.name}
            out.append((entry, path))
        return out

    from tests.diagnose_models import colour_images

    # RGB images (16x16x3, values 0..1), labels given: accuracy, agreement and (if any) a gallery.
    x, y = colour_images(64, 9)
    body = diagnose_arrays(models["branch_cnn"]["model"], entries("branch_cnn"), x, y, tmp_path / "cnn")
    assert body["images"] == 64 and not body["speed"]
    md = render_markdown({**body, "run": "demo", "data": {"subset": "64 images", "source": "synthetic"}})
    # Every Keras layer has a row in the per-layer tables; folded layers say where they went.
    for name in ("stem", "stem_bn", "dw", "residual", "sep", "concat", "gap", "probs"):
        assert f"| {name} |" in md
    assert "folded into stem_bn (BatchNormalization)" in md and "| fused |" in md
    for res in body["artifacts"]:
        assert res["task"] == "classification" and res["accuracy"] > 0.5
        assert meets_floor(res["top1_agreement"], len(x), res["reference_accuracy"]), res  # parity's int8 floor
        assert abs(res["accuracy"] - res["reference_accuracy"]) < 0.1
        assert res["output_error"]["max_abs_err"] < 0.2
        assert {r["layer"] for r in res["layers"]} >= {"residual", "dw", "stem_bn", "concat"}
    # A gallery of RGB images in any value range: force disagreements by comparing with shuffled outputs.
    from toolkit.diagnosis.gallery import write_gallery

    ref = np.eye(3, dtype=np.float32)[y]
    info = write_gallery(tmp_path / "g.png", x * 40 - 7, y, ref, np.roll(ref, 1, axis=1), "demo")
    assert info["count"] == 64 and info["shown"] == 64
    with Image.open(tmp_path / "g.png") as img:
        assert img.mode == "RGB" and img.width > 16 * 8

    # Vectors with labels: accuracy, but no gallery (not images).
    xv, yv = models["mlp"]["x"][:64], models["mlp"]["y"][:64]
    body = diagnose_arrays(models["mlp"]["model"], entries("mlp"), xv, yv, tmp_path / "mlp")
    for res in body["artifacts"]:
        assert res["accuracy"] is not None and res["gallery"]["file"] is None
        assert "not an image" in res["gallery"]["skipped"]

    # Regression, no labels: max abs / relative output error instead of accuracy; no gallery.
    xr = models["regression"]["x"][:64]
    body = diagnose_arrays(models["regression"]["model"], entries("regression"), xr, None, tmp_path / "reg")
    for res in body["artifacts"]:
        assert res["task"] == "regression" and res["accuracy"] is None and res["top1_agreement"] is None
        err = res["output_error"]
        # Within parity's int8 tolerance for values (measured 0.007 TFLite, 0.013 ONNX on AVX-512/AMX and on
        # emulated AVX2 and SSE4.2: identical outputs).
        assert err["max_abs_err"] > 0 and 0 < err["max_rel_err"] <= VALUE_TOLERANCES["int8"].max_rel_error
        assert res["gallery"]["file"] is None and res["gallery"]["skipped"].startswith("regression")
    report = {**body, "run": "demo", "data": {"subset": "64 vectors", "source": "synthetic"}}
    md = render_markdown(report)
    assert "max |error|" in md and "value" in md
    assert not list((tmp_path / "reg").glob("*.png"))


def _user_run(root: Path, m: dict[str, Any]) -> tuple[Path, Any]:
    """A run of the user's own model, as `edgekit export --model M --data D` makes it: imported (model.json,
    dataset.json), then exported to fp32 and int8 in both formats. Returns (run directory, its dataset)."""
    from exporters.base import ExportFormat, Precision
    from toolkit.steps.export import export_step
    from toolkit.steps.user_model import import_into_run, prepare_user_model

    root.mkdir(parents=True, exist_ok=True)
    m["model"].save(root / "model.keras")
    x, y = m["x"], m["y"]
    np.savez(root / "data.npz", x_train=x[64:], y_train=y[64:], x_test=x[:64], y_test=y[:64])
    user = prepare_user_model(root / "model.keras", root / "data.npz")
    run = root / "run"
    import_into_run(run, user)
    targets = [(f, p) for p in (Precision.FP32, Precision.INT8) for f in (ExportFormat.TFLITE, ExportFormat.ONNX)]
    export_step(run, targets, data=user.dataset, calibration_size=64)
    return run, user.dataset


def test_diagnose_step_on_a_regression_run_writes_the_report_without_accuracy(
    models: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    from toolkit.diagnosis.step import DIAGNOSE_DIR, DIAGNOSE_MD, diagnose_step
    from toolkit.run.documents import DiagnoseDocument
    from toolkit.run.layout import Run

    run, dataset = _user_run(tmp_path, models["regression"])
    report = diagnose_step(run, artifact_names=["onnx-int8", "tflite-fp32"], limit=50, data=dataset)
    assert report.model_dump_json() == Run(run).load(DiagnoseDocument).model_dump_json()  # returned = written
    assert report.images == 50 and report.data.subset == "the first 50 of the test set"
    by_name = {r.artifact: r for r in report.artifacts}
    assert by_name["tflite-fp32"].output_error.max_rel_err < 1e-4
    assert all(r.accuracy is None and r.task == "regression" and r.gallery.file is None for r in by_name.values())
    assert [lay.name for lay in report.reference.layers] == ["hidden", "value"]
    assert report.speed and report.speed[0].artifact == "onnx-int8"
    md = (run / DIAGNOSE_DIR / DIAGNOSE_MD).read_text()
    assert "| hidden |" in md and "| value |" in md and "Top-1 agreement" not in md
    assert "none: regression (no labels)" in md
    assert not list((run / DIAGNOSE_DIR).glob("*.png"))
