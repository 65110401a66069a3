"""ModelSpec: stored form, messages, and runners + the bench worker on a non-MNIST (16x16x3, 5-class) model."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks.harness import module_command, worker_env
from runtimes import InputSpecError, ModelLoadError, ModelSpec, SpecError, TensorSpec, make_runner, spec_from_keras

MNIST = ModelSpec(
    input=TensorSpec("input", (None, 28, 28, 1), "float32"),
    output=TensorSpec("output", (None, 10), "float32"),
)


# -- the spec on its own ------------------------------------------------------------------------------
def test_round_trip_through_json() -> None:
    spec = ModelSpec(
        input=TensorSpec("x", (None, 16, 16, 3), "int8", scale=1 / 255, zero_point=-128),
        output=TensorSpec("y", (None, 3), "int8", scale=1 / 256, zero_point=-128),
        value_range=(0.0, 1.0),
        output_kind="probabilities",
        class_names=("cat", "dog", "bird"),
    )
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["num_classes"] == 3 and data["layout"] == "NHWC" and data["input"]["shape"] == [None, 16, 16, 3]
    assert ModelSpec.from_dict(data) == spec
    vectors = ModelSpec(TensorSpec("v", (None, 8), "float32"), TensorSpec("o", (None, 1), "float32"), layout="NC")
    assert ModelSpec.from_dict(vectors.to_dict()) == vectors


def test_describe_and_shapes() -> None:
    assert MNIST.describe() == "float32 (N, 28, 28, 1) NHWC 0..1 -> probabilities (N, 10)"
    assert MNIST.num_classes == 10 and MNIST.input_tail == (28, 28, 1)
    assert MNIST.sample_shape(4) == (4, 28, 28, 1)
    x = MNIST.sample_batch(2)
    assert x.dtype == np.float32 and x.shape == (2, 28, 28, 1) and x.min() >= 0 and x.max() <= 1
    raw = MNIST.with_options(value_range=(0, 255), output_kind="logits")
    assert raw.describe() == "float32 (N, 28, 28, 1) NHWC 0..255 -> logits (N, 10)"
    assert 1 < raw.sample_batch(8).max() <= 255


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("input"), "lacks 'input'"),
        (lambda d: d["input"].update(shape=[None, 28, 28]), "rank 3"),
        (lambda d: d["input"].update(shape=[None, 0, 28, 1]), "sizes >= 1"),
        (lambda d: d["input"].update(dtype="float64"), "float64"),
        (lambda d: d.update(layout="NWHC"), "layout 'NWHC'"),  # NCHW is valid since ONNX sources (issue 21)
        (lambda d: d.update(value_range=[1, 0]), "low < high"),
        (lambda d: d.update(value_range="0..1"), "value_range"),
        (lambda d: d.update(output_kind="scores"), "output kind 'scores'"),
        (lambda d: d.update(num_classes=5), "num_classes 5"),
        (lambda d: d.update(class_names=["a", "b"]), "2 class names for 10 outputs"),
        (lambda d: d.update(spec_version=99), "version 99"),
        (lambda d: d["output"].update(scale="big"), "output.scale"),
    ],
)
def test_malformed_dicts_raise_one_line(change, message: str) -> None:
    data = json.loads(json.dumps(MNIST.to_dict()))
    change(data)
    with pytest.raises(SpecError, match=message) as info:
        ModelSpec.from_dict(data)
    assert "\n" not in str(info.value)
    with pytest.raises(SpecError, match="must be an object"):
        ModelSpec.from_dict([])  # type: ignore[arg-type]


def test_mismatch_names_both_sides() -> None:
    other = ModelSpec(TensorSpec("i", (None, 16, 16, 3), "float32"), TensorSpec("o", (None, 5), "float32"))
    assert other.mismatch(other) is None
    assert MNIST.mismatch(MNIST.with_options(output_kind="logits")) is None  # kind is not a shape
    problem = other.mismatch(MNIST)
    assert problem is not None and "(N, 16, 16, 3)" in problem and "(N, 28, 28, 1)" in problem
    five = ModelSpec(TensorSpec("i", (None, 28, 28, 1), "float32"), TensorSpec("o", (None, 5), "float32"))
    problem = five.mismatch(MNIST)
    assert problem is not None and "outputs (N, 5)" in problem and "(N, 10)" in problem


def test_spec_from_keras_needs_a_built_model() -> None:
    with pytest.raises(SpecError, match="not a built Keras model"):
        spec_from_keras(object())


# -- a non-MNIST model through every runner and the bench worker ------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A 16x16x3 -> 5-class Keras model, as .keras, fp32 and int8 (int8 I/O) .tflite, and .onnx."""
    pytest.importorskip("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf2onnx

    keras = tf.keras
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x))
    out = tmp_path_factory.mktemp("tiny16")
    paths = {"keras": out / "tiny.keras", "tflite-fp32": out / "fp32.tflite", "tflite-int8": out / "int8.tflite"}
    model.save(paths["keras"])
    paths["tflite-fp32"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    calibration = np.random.default_rng(0).random((16, 16, 16, 3), dtype=np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    paths["tflite-int8"].write_bytes(converter.convert())
    # The recipe of exporters/onnx_export.py: from_function with an explicit input signature.
    signature = (tf.TensorSpec([None, 16, 16, 3], tf.float32, name="input"),)
    fn = tf.function(lambda t: model(t, training=False), input_signature=signature)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=17)
    paths["onnx"] = out / "tiny.onnx"
    paths["onnx"].write_bytes(proto.SerializeToString())
    x_test = np.random.default_rng(1).random((6, 16, 16, 3), dtype=np.float32)
    np.save(out / "inputs.npy", x_test)
    return {"paths": paths, "spec": spec_from_keras(model), "x": x_test, "probs": model(x_test).numpy()}


def test_spec_from_keras_reads_the_model(tiny: dict[str, object]) -> None:
    spec = tiny["spec"]
    assert isinstance(spec, ModelSpec)
    assert spec.describe() == "float32 (N, 16, 16, 3) NHWC 0..1 -> probabilities (N, 5)"
    assert spec.num_classes == 5 and spec.layout == "NHWC"


@pytest.mark.parametrize("name", ["keras", "tflite-fp32", "tflite-int8", "onnx"])
def test_runners_read_the_spec_of_a_non_mnist_model(tiny: dict[str, object], name: str) -> None:
    path = tiny["paths"][name]  # type: ignore[index]
    x, expected = tiny["x"], tiny["probs"]
    assert isinstance(x, np.ndarray) and isinstance(expected, np.ndarray)
    with make_runner(path, spec=tiny["spec"]) as runner:  # type: ignore[arg-type]
        spec = runner.model_spec()
        assert spec.input_tail == (16, 16, 3) and spec.num_classes == 5 and spec.layout == "NHWC"
        int8 = name == "tflite-int8"
        assert spec.input.dtype == spec.output.dtype == ("int8" if int8 else "float32")
        if int8:
            assert spec.input.scale is not None and spec.input.zero_point is not None
            assert spec.output.scale is not None and spec.output.zero_point is not None
        else:
            assert spec.input.scale is None and spec.output.scale is None
        probs = runner.infer(x)
        assert probs.dtype == np.float32 and probs.shape == (6, 5)
        np.testing.assert_allclose(probs, expected, atol=0.05 if int8 else 1e-5)
        native = runner.to_native(x[:1])
        assert native.dtype == np.dtype(spec.input.dtype)
        np.testing.assert_array_equal(runner.from_native(runner.run_native(native)), runner.infer(x[:1]))
        with pytest.raises(InputSpecError, match=r"\(2, 28, 28, 1\) received; expected \(N, 16, 16, 3\)") as info:
            runner.infer(np.zeros((2, 28, 28, 1), np.float32))
        assert "\n" not in str(info.value) and "probabilities" in str(info.value)


@pytest.mark.parametrize("name", ["tflite-fp32", "onnx"])
def test_a_file_that_does_not_match_the_expected_spec_is_refused(tiny: dict[str, object], name: str) -> None:
    path = tiny["paths"][name]  # type: ignore[index]
    with pytest.raises(ModelLoadError, match=r"takes input \(N, 16, 16, 3\); expected \(N, 28, 28, 1\)") as info:
        make_runner(path, spec=MNIST).activate()  # type: ignore[arg-type]
    assert "\n" not in str(info.value) and path.name in str(info.value)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["tflite-fp32", "tflite-int8", "onnx"])
def test_bench_worker_runs_a_non_mnist_model(tiny: dict[str, object], name: str, tmp_path: Path) -> None:
    path = tiny["paths"][name]  # type: ignore[index]
    inputs = Path(str(path)).parent / "inputs.npy"
    cmd = [*module_command("benchmarks.worker"), "--model", str(path), "--inputs", str(inputs), "--batch", "1"]
    cmd += ["--min-runs", "16", "--min-seconds", "0", "--warmup-runs", "1", "--warmup-seconds", "0"]
    proc = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    (result,) = out["results"]
    assert result["batch_size"] == 1 and result["runs"] >= 16 and result["p50_ms"] > 0
    assert result["io_p50_ms"] is not None and result["io_p50_ms"] >= 0
    # Inputs of another shape: one JSON error line naming both shapes.
    np.save(tmp_path / "mnist.npy", np.zeros((2, 28, 28, 1), np.float32))
    cmd[cmd.index(str(inputs))] = str(tmp_path / "mnist.npy")
    proc = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert "(2, 28, 28, 1)" in error and "(N, 16, 16, 3)" in error
