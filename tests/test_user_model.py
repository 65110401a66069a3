"""Bring your own model and data (issue 10): real user models through every step, and every refusal.

The models are built in the test run from real MNIST digits (tests/user_models.py): a functional RGB CNN
with BatchNorm, DepthwiseConv2D, SeparableConv2D and a residual Add; an MLP on vectors with Normalization;
a grey CNN with Concatenate branches that outputs logits; a regression MLP; and the RGB CNN on a folder of
PNG files, one sub-folder per class.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import USER_CASES

SEVEN = {"keras-fp32", "tflite-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8", "onnx-fp32", "onnx-int8"}


def _read(run: Path, name: str) -> dict:
    return json.loads((run / name).read_text())


@pytest.mark.parametrize("case", USER_CASES)
def test_pipeline_takes_the_users_model_through_every_step(case: str, user_runs: dict[str, Path], user_files) -> None:
    run = user_runs[case]
    model_file, data = user_files[case]
    manifest, parity, bench = _read(run, "manifest.json"), _read(run, "parity.json"), _read(run, "bench.json")
    assert {a["name"] for a in manifest["artifacts"]} == SEVEN
    assert not (run / "train.json").exists()  # imported, not trained
    model_doc, data_doc = _read(run, "model.json"), _read(run, "dataset.json")
    assert model_doc["name"] == model_file.name and Path(model_doc["source"]) == model_file.resolve()
    assert data_doc["path"] == str(data.resolve())
    assert parity["passed"], [r["failures"] for r in parity["results"] if not r["passed"]]
    rows = {r["artifact"]: r for r in parity["results"]}
    if case == "regression":
        assert parity["reference"]["output_kind"] == "values" and parity["reference"]["accuracy"] is None
        for name in ("tflite-fp32", "onnx-fp32"):
            assert rows[name]["max_rel_error"] < 1e-4 and rows[name]["accuracy"] is None
    else:
        assert parity["reference"]["accuracy"] > 0.8  # the model really learned the task
        for name in ("tflite-fp32", "onnx-fp32", "tflite-fp16"):
            assert rows[name]["top1_agreement"] == 1.0
    assert {r["artifact"] for r in bench["results"]} == SEVEN
    # the spec each export recorded says what the model takes, from the user's data
    spec = next(a for a in manifest["artifacts"] if a["name"] == "tflite-fp32")["model_spec"]
    assert spec["input"]["shape"][1:] == model_doc["model_spec"]["input"]["shape"][1:]
    assert spec["value_range"] == data_doc["value_range"]


def test_logits_are_detected_and_compared_as_softmax(user_runs: dict[str, Path]) -> None:
    parity = _read(user_runs["logits"], "parity.json")
    assert parity["reference"]["output_kind"] == "logits"
    keras_row = next(r for r in parity["results"] if r["artifact"] == "tflite-fp32")
    assert keras_row["max_abs_diff"] < 1e-5  # probabilities, not raw logits (those differ by more)


def test_folder_dataset_records_its_classes_and_split(user_runs: dict[str, Path]) -> None:
    doc = _read(user_runs["folder"], "dataset.json")
    assert doc["kind"] == "folder" and doc["class_names"] == ["one", "seven", "zero"]
    assert doc["train"] + doc["test"] == 900 and "held out" in doc["split"]
    spec = _read(user_runs["folder"], "model.json")["model_spec"]
    assert spec["class_names"] == ["one", "seven", "zero"] and spec["value_range"] == [0.0, 255.0]


def test_a_folder_with_train_and_test_subfolders_keeps_that_split(tmp_path: Path) -> None:
    from runtimes.spec import ModelSpec, TensorSpec
    from tests import user_models as U
    from toolkit.data.sources import load_dataset

    U.digit_folder(tmp_path / "d" / "train", per_class=10)
    U.digit_folder(tmp_path / "d" / "test", per_class=4)
    spec = ModelSpec(input=TensorSpec("x", (None, 8, 8, 1), "float32"), output=TensorSpec("y", (None, 3), "float32"))
    data = load_dataset(tmp_path / "d", spec=spec)
    assert data.x_train.shape == (30, 8, 8, 1) and data.x_test.shape == (12, 8, 8, 1)
    assert data.split.startswith("given")


def test_npz_x_y_split_is_seeded_and_one_hot_labels_become_classes(user_files) -> None:
    from runtimes.spec import ModelSpec, TensorSpec
    from toolkit.data.sources import load_dataset

    _, data = user_files["mlp"]
    spec = ModelSpec(
        input=TensorSpec("x", (None, 25), "float32"), output=TensorSpec("y", (None, 10), "float32"), layout="NC"
    )
    a, b, c = load_dataset(data, seed=7), load_dataset(data, seed=7), load_dataset(data, seed=8)
    assert np.array_equal(a.x_test, b.x_test) and not np.array_equal(a.x_test, c.x_test)
    _, labels = a.test_split(spec)
    assert labels.dtype == np.int64 and labels.ndim == 1 and set(labels) <= set(range(10))


def test_later_steps_find_the_runs_own_data(user_runs: dict[str, Path], tmp_path: Path, edgekit) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(user_runs["mlp"], run)
    result = edgekit("parity", str(run), "--limit", "100")
    assert result.returncode == 0, result.stderr
    assert _read(run, "parity.json")["data"]["name"] == "pooled.npz"


def test_changed_data_is_refused_in_one_line(user_runs: dict[str, Path], tmp_path: Path, edgekit) -> None:
    import shutil

    run, data = tmp_path / "run", tmp_path / "data.npz"
    shutil.copytree(user_runs["mlp"], run)
    doc = _read(run, "dataset.json")
    shutil.copyfile(doc["path"], data)
    doc["path"] = str(data)
    (run / "dataset.json").write_text(json.dumps(doc))
    with np.load(data) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["x"][0, 0] += 1
    np.savez(data, **arrays)
    result = edgekit("parity", str(run))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "changed since the run recorded it" in result.stderr


@pytest.mark.parametrize("fmt", ["h5", "savedmodel", "custom", "subclassed"])
def test_h5_savedmodel_and_custom_layers_export_and_pass_parity(fmt: str, user_files, tmp_path: Path, edgekit) -> None:
    import keras

    model_file, data = user_files["mlp"]
    extra: list[str] = []
    if fmt == "h5":
        source = tmp_path / "mlp.h5"
        keras.saving.load_model(model_file).save(source)
    elif fmt == "savedmodel":
        source = tmp_path / "mlp_savedmodel"
        keras.saving.load_model(model_file).export(source, verbose=False)
    else:
        code = tmp_path / "my_layers.py"
        code.write_text(CUSTOM_LAYER)
        source = tmp_path / f"{fmt}.keras"
        _custom_model(code, source, subclassed=fmt == "subclassed")
        extra = ["--custom-objects", str(code)]
    run = tmp_path / "run"
    result = edgekit(
        "export", str(run), "--model", str(source), "--data", str(data), "-f", "tflite", "-p", "fp32", *extra
    )
    assert result.returncode == 0, result.stderr
    parity = edgekit("parity", str(run))
    assert parity.returncode == 0, parity.stderr
    assert _read(run, "model.json")["format"] == {"custom": "keras", "subclassed": "keras"}.get(fmt, fmt)
    if fmt == "savedmodel":  # the run keeps its own copy and does not depend on where it came from
        import shutil

        shutil.rmtree(source)
        assert edgekit("parity", str(run), "--limit", "50").returncode == 0


CUSTOM_LAYER = """
import keras


@keras.saving.register_keras_serializable(package="mine")
class Gain(keras.layers.Layer):
    def __init__(self, gain=2.0, **kwargs):
        super().__init__(**kwargs)
        self.gain = gain

    def call(self, x):
        return x * self.gain

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


@keras.saving.register_keras_serializable(package="mine")
class GainNet(keras.Model):
    def __init__(self, classes=10, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.gain = Gain(name="gain")
        self.head = keras.layers.Dense(classes, activation="softmax")

    def call(self, x):
        return self.head(self.gain(x))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}
"""


def _custom_model(code: Path, dest: Path, *, subclassed: bool = False) -> None:
    import importlib.util

    import keras

    spec = importlib.util.spec_from_file_location("my_layers_for_test", code)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    keras.utils.set_random_seed(1)
    if subclassed:  # a subclassed model with get_config, built by calling it once
        model = module.GainNet()
        model(np.zeros((1, 25), dtype=np.float32))
        model.save(dest)
        return
    inp = keras.Input((25,))
    out = keras.layers.Dense(10, activation="softmax")(module.Gain(name="gain")(inp))
    keras.Model(inp, out).save(dest)


@pytest.mark.parametrize("case", ["rgb", "regression"])
def test_diagnose_runs_on_the_users_model_and_data(
    case: str, user_runs: dict[str, Path], tmp_path: Path, edgekit
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(user_runs[case], run)
    result = edgekit("diagnose", str(run), "-a", "tflite-int8", "-a", "onnx-int8", "--limit", "100")
    assert result.returncode == 0, result.stderr
    report = _read(run, "diagnose/diagnose.json")
    assert report["images"] == 100
    layers = {row["layer"] for art in report["artifacts"] for row in art["layers"]}
    if case == "rgb":  # every branch of the residual block is named
        assert {"residual", "dw", "dw_bn", "stem_relu6", "sep", "probs"} <= layers
    else:
        assert all(art["accuracy"] is None for art in report["artifacts"])


def test_pipeline_diagnoses_and_bundles_when_asked(user_files, tmp_path: Path, edgekit) -> None:
    model, data = user_files["mlp"]
    bundle = tmp_path / "mlp.tar.gz"
    result = edgekit(
        "pipeline",
        "--model",
        str(model),
        "--data",
        str(data),
        "--runs-dir",
        str(tmp_path / "runs"),
        "-f",
        "tflite",
        "-p",
        "fp32",
        "-p",
        "int8",
        "--quick",
        "-b",
        "1",
        "-t",
        "1",
        "--no-peak",
        "--diagnose",
        "--bundle",
        str(bundle),
    )
    assert result.returncode == 0, result.stderr
    run = (tmp_path / "runs" / "latest").resolve()
    assert {a["artifact"] for a in _read(run, "diagnose/diagnose.json")["artifacts"]} == {"tflite-int8"}
    assert "Diagnosis" in (run / "report.md").read_text() or "diagnos" in (run / "report.md").read_text().lower()
    verified = edgekit("verify", str(bundle))
    assert verified.returncode == 0, verified.stdout + verified.stderr
