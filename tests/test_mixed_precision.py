"""Mixed precision (issue 11): chosen Keras layers kept in float, the sensitivity ranking, `export --max-accuracy-drop`.

Real TF/LiteRT/ORT on real MNIST test images; the sensitive model is the reference CNN of `small_run` with an
outlier unit (~2,000) in its Dense(128) (tests/sensitive_models.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.cpu import detect_cpu
from tests.floors import meets_floor
from tests.sensitive_models import outlier_channel

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")

N_TEST = 2000


@pytest.fixture(scope="module")
def outlier_run(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of small_run whose model.keras is the outlier-channel model (exports not yet redone)."""
    import keras

    run = tmp_path_factory.mktemp("outlier") / "run"
    shutil.copytree(small_run, run)
    built = outlier_channel(keras.models.load_model(small_run / "model.keras"), run.parent / "outlier.keras")
    shutil.copyfile(built, run / "model.keras")
    return run


@pytest.fixture(scope="module")
def outlier_data(outlier_run: Path, mnist):
    import keras

    from toolkit.model.run_source import run_dataset
    from toolkit.steps.export import model_spec_of

    model = keras.models.load_model(outlier_run / "model.keras")
    ds = run_dataset(outlier_run, mnist, spec=model_spec_of(model))
    spec = model_spec_of(model)
    x, y = ds.test_split(spec, N_TEST)
    return model, ds.calibration(spec, n=200, seed=7), x, np.asarray(y).astype(int)


def _accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from exporters.sensitivity import run_file

    return float((run_file(path, x).argmax(axis=1) == y).mean())


def test_outlier_layer_in_float_restores_accuracy(outlier_data, tmp_path: Path) -> None:
    from exporters.mixed import export_onnx_mixed, export_tflite_mixed

    model, cal, x, y = outlier_data
    keras_acc = float((model.predict(x, verbose=0).argmax(axis=1) == y).mean())
    for export in (export_tflite_mixed, export_onnx_mixed):
        full = export(model, tmp_path / "full", calibration_data=cal, float_layers=[])
        mixed = export(model, tmp_path / "mixed", calibration_data=cal, float_layers=["dense_outlier"])
        assert mixed.name.endswith("-int8-mixed") and mixed.float_layers == ("dense_outlier",)
        assert mixed.manifest_entry(tmp_path)["float_layers"] == ["dense_outlier"]
        full_acc, mixed_acc = _accuracy(full.path, x, y), _accuracy(mixed.path, x, y)
        assert keras_acc - full_acc > 0.02, (export.__name__, keras_acc, full_acc)  # the outlier ruins int8
        assert keras_acc - mixed_acc <= 0.003, (export.__name__, keras_acc, mixed_acc)


def test_unknown_layer_name_is_an_error_naming_it(outlier_data, tmp_path: Path) -> None:
    from exporters.errors import ExportError
    from exporters.mixed import export_onnx_mixed, export_tflite_mixed

    model, cal, _, _ = outlier_data
    for export in (export_tflite_mixed, export_onnx_mixed):
        with pytest.raises(ExportError, match="no_such_layer") as info:
            export(model, tmp_path, calibration_data=cal, float_layers=["dense_outlier", "no_such_layer"])
        assert "\n" not in str(info.value) and "dense_outlier," in str(info.value)  # lists the layers it has


def test_ranking_names_the_outlier_layer_first(outlier_data) -> None:
    from exporters.sensitivity import rank_layers

    model, cal, x, y = outlier_data
    n = 500
    rankings = rank_layers(model, calibration_data=cal, images=x[:n], labels=y[:n])
    assert set(rankings) == {"tflite", "onnx"}
    for fmt, r in rankings.items():
        assert r.order()[0] == "dense_outlier", (fmt, r)
        assert {"conv2d", "dense_outlier", "probs"} <= set(r.order())
        # Judged by parity's int8 floor for a model of this accuracy (trained on this CPU: tests/floors.py).
        top, acc = r.layers[0], r.keras_accuracy
        assert meets_floor(top.float_agreement, n, acc) and not meets_floor(r.int8_agreement, n, acc), (fmt, r)
        # Quantizing only the conv layer (everything else float) leaves the model intact.
        conv = next(s for s in r.layers if s.layer == "conv2d")
        assert meets_floor(conv.only_agreement, n, acc), (fmt, conv)


def test_export_max_drop_writes_mixed_artifacts_that_pass_parity(outlier_run: Path, edgekit) -> None:
    done = edgekit("export", str(outlier_run), "--max-accuracy-drop", "0.3")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tflite-int8-mixed" in done.stdout and "onnx-int8-mixed" in done.stdout
    manifest = json.loads((outlier_run / "manifest.json").read_text())
    by_name = {a["name"]: a for a in manifest["artifacts"]}
    for name in ("tflite-int8-mixed", "onnx-int8-mixed"):
        assert by_name[name]["float_layers"] == ["dense_outlier"], by_name[name]
        assert by_name[name]["precision"] == "int8-mixed" and (outlier_run / by_name[name]["path"]).is_file()
    assert "float_layers" not in by_name["tflite-int8"]
    mixed = json.loads((outlier_run / "mixed.json").read_text())
    assert mixed["max_drop_pt"] == 0.3 and mixed["images"] == N_TEST
    for fmt in mixed["formats"]:
        assert fmt["float_layers"] == ["dense_outlier"] and fmt["ranking"][0]["layer"] == "dense_outlier"
        k0, k1 = fmt["curve"][0], fmt["curve"][1]
        assert not k0["meets_budget"] and k1["meets_budget"] and k1["drop_pt"] <= 0.3
        assert k1["size_bytes"] > 0 and k1["p50_ms"] > 0
    parity = edgekit("parity", str(outlier_run))
    assert parity.returncode == 3  # full int8 fails parity ...
    rows = {r["artifact"]: r for r in json.loads((outlier_run / "parity.json").read_text())["results"]}
    assert not rows["tflite-int8"]["passed"] and not rows["onnx-int8"]["passed"]
    for name in ("tflite-int8-mixed", "onnx-int8-mixed"):  # ... the mixed artifacts pass with int8 tolerances
        assert rows[name]["passed"], rows[name]
    if shutil.which("qemu-x86_64-static") and detect_cpu().arch == "x86-64":  # ... and answer the same on AVX2
        mixed_args = ["-a", "tflite-int8-mixed", "-a", "onnx-int8-mixed", "--cpu", "haswell", "--cpu-images", "300"]
        emulated = edgekit("parity", str(outlier_run), *mixed_args)
        assert emulated.returncode == 0, emulated.stdout[-3000:] + emulated.stderr[-2000:]
    # the curve is in both reports, so a user can pick another point
    report = edgekit("report", str(outlier_run))
    assert report.returncode == 0, report.stderr
    md = (outlier_run / "report.md").read_text()
    section = md.split("## Mixed precision\n", 1)[1].split("\n## ", 1)[0]
    assert "### tflite: tflite-int8-mixed" in section and "### onnx: onnx-int8-mixed" in section
    assert "| **1** | dense_outlier |" in section and "none (full int8)" in section
    html = (outlier_run / "report.html").read_text()
    assert 'id="mixed"' in html and "dense_outlier" in html.split('id="mixed"', 1)[1]


def test_max_drop_changes_nothing_on_the_reference(run_copy: Path, mnist) -> None:
    import toolkit

    before = json.loads((run_copy / "manifest.json").read_text())["artifacts"]
    said: list[str] = []
    manifest = toolkit.export(
        run_copy,
        formats=["tflite"],
        precisions=["int8"],
        data=mnist,
        calibration_size=200,
        max_drop=0.3,
        on_message=said.append,
    )
    assert not (run_copy / "mixed.json").exists()
    assert [a.name for a in manifest.artifacts] == [a["name"] for a in before]
    assert all("-mixed" not in a.name for a in manifest.artifacts)
    assert len(said) == 2 and all("full int8 meets the budget" in s for s in said), said


def test_budget_and_target_refusals(run_copy: Path, edgekit) -> None:
    done = edgekit("export", str(run_copy), "-p", "int8-mixed")
    assert done.returncode == 1 and "--max-accuracy-drop" in done.stderr and "Traceback" not in done.stderr
    done = edgekit("export", str(run_copy), "--min-agreement", "1.5")
    assert done.returncode == 1 and "--min-agreement" in done.stderr and "Traceback" not in done.stderr


def test_constant_feature_mlp_gets_its_normalization_kept_in_float(tmp_path: Path, edgekit) -> None:
    """A second kind of sensitivity: a Normalization dividing zero-variance features by ε (user model + .npz)."""
    from tests.sensitive_models import constant_feature_mlp, constant_feature_vectors

    npz = constant_feature_vectors(tmp_path / "features.npz")
    model = constant_feature_mlp(tmp_path / "mlp.keras", npz)
    run = tmp_path / "run"
    done = edgekit("export", str(run), "--model", str(model), "--data", str(npz), "--max-accuracy-drop", "0.3")
    assert done.returncode == 0, done.stderr[-2000:]
    mixed = json.loads((run / "mixed.json").read_text())
    for fmt in mixed["formats"]:
        assert fmt["ranking"][0]["layer"] == "norm", fmt["ranking"]
        assert fmt["curve"][0]["accuracy"] < 0.5  # full int8 collapses
        assert fmt["float_layers"][0] == "norm" and fmt["curve"][len(fmt["float_layers"])]["drop_pt"] <= 0.3
    names = {a["name"] for a in json.loads((run / "manifest.json").read_text())["artifacts"]}
    assert {"tflite-int8-mixed", "onnx-int8-mixed"} <= names
