"""Every model or dataset edgekit cannot take is refused in one line, exit 1, with nothing written (issue 10)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _models(root: Path) -> dict[str, Path]:
    import keras

    layers = keras.layers
    out: dict[str, Path] = {}

    def save(name: str, model: keras.Model) -> None:
        out[name] = root / f"{name}.keras"
        model.save(out[name])

    a, b = keras.Input((25,), name="left"), keras.Input((25,), name="right")
    save("two_inputs", keras.Model([a, b], layers.Dense(10, activation="softmax")(layers.Concatenate()([a, b]))))
    a = keras.Input((25,), name="x")
    save("two_outputs", keras.Model(a, [layers.Dense(10, name="digit")(a), layers.Dense(2, name="side")(a)]))
    a = keras.Input((None, None, 3), name="image")
    save("dynamic_hw", keras.Model(a, layers.Dense(10, activation="softmax")(layers.GlobalAveragePooling2D()(a))))
    a = keras.Input((25,), name="text", dtype="string")
    save("string_input", keras.Model(a, a))
    a = keras.Input((25,), name="x")
    save("lambda", keras.Model(a, layers.Dense(10, activation="softmax")(layers.Lambda(lambda t: t * 2, name="x2")(a))))
    a = keras.Input((25,), name="x")
    save("mlp", keras.Model(a, layers.Dense(10, activation="softmax")(layers.Dense(8)(a))))
    a = keras.Input((12, 12, 4), name="rgba")
    save("four_channels", keras.Model(a, layers.Dense(10, activation="softmax")(layers.Flatten()(a))))
    (root / "custom").mkdir()
    (root / "custom" / "saved.keras").write_bytes(_custom_archive(root))
    out["unknown_custom"] = root / "custom" / "saved.keras"
    return out


def _custom_archive(root: Path) -> bytes:
    import keras

    @keras.saving.register_keras_serializable(package="elsewhere")
    class Warp(keras.layers.Layer):  # registered only in this test process, never in edgekit's
        def call(self, x):
            return x * 2

    a = keras.Input((25,), name="x")
    path = root / "custom.keras"
    keras.Model(a, layers_dense(keras)(Warp(name="warp")(a))).save(path)
    return path.read_bytes()


def layers_dense(keras):
    return keras.layers.Dense(10, activation="softmax")


def _data(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    out = {}

    def save(name: str, **arrays: np.ndarray) -> None:
        out[name] = root / f"{name}.npz"
        np.savez(out[name], **arrays)

    x = rng.random((60, 25), dtype=np.float32)
    save("good", x=x, y=np.arange(60) % 10)
    save("wrong_shape", x=rng.random((60, 30), dtype=np.float32), y=np.arange(60) % 10)
    save("label_out_of_range", x=x, y=np.arange(60) % 12)
    save("wrong_class_count", x=x, y=np.eye(5, dtype=np.float32)[np.arange(60) % 5])
    save("negative_label", x=x, y=(np.arange(60) % 10) - 1)
    save("pickled", x=np.array([{"a": 1}] * 60, dtype=object), y=np.arange(60) % 10)
    save("unknown_keys", images=x, labels=np.arange(60) % 10)
    save("text_inputs", x=np.array(["a"] * 60), y=np.arange(60) % 10)
    save("length_mismatch", x_train=x, y_train=np.arange(50) % 10, x_test=x, y_test=np.arange(60) % 10)
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], dict[str, Path]]:
    pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("refusals")
    return _models(root), _data(root)


CASES = [
    # (model, data, words the one-line error must contain)
    # several inputs/outputs are taken with named data: x/y arrays are refused, naming the model's tensors
    ("two_inputs", "good", ["2 inputs (left, right) and 1 output", "missing left, right"]),
    ("two_outputs", "good", ["2 outputs (digit, side)", "missing digit, side"]),
    ("dynamic_hw", "good", ["dynamic height/width", "keras.Input(shape=(H, W, C))"]),
    ("string_input", "good", ["dtype string", "float32 or uint8"]),
    ("lambda", "good", ["Lambda", "safe_mode", "registered custom layer"]),
    ("unknown_custom", "good", ["custom class", "Warp", "--custom-objects"]),
    ("four_channels", "good", ["4 channels", "1 (grey) or 3 (RGB)"]),
    ("mlp", "wrong_shape", ["shape (30,)", "model takes (25,)"]),
    ("mlp", "label_out_of_range", ["label 11", "10 classes"]),
    ("mlp", "negative_label", ["label -1", "10 classes"]),
    ("mlp", "wrong_class_count", ["5 classes", "outputs 10"]),
    ("mlp", "pickled", ["pickled", "never loads"]),
    ("mlp", "unknown_keys", ["holds images, labels", "x_train, y_train"]),
    ("mlp", "text_inputs", ["numeric inputs"]),
    ("mlp", "length_mismatch", ["50", "60", "one label per sample"]),
    ("mlp", "missing.npz", ["not found"]),
    ("missing.keras", "good", ["not found"]),
]


@pytest.mark.parametrize("command", ["pipeline", "export"])
@pytest.mark.parametrize(("model", "data", "words"), CASES, ids=[f"{m}-{d}" for m, d, _ in CASES])
def test_refused_in_one_line_and_nothing_written(
    inputs, tmp_path: Path, command: str, model: str, data: str, words
) -> None:
    from typer.testing import CliRunner

    from toolkit.cli import app

    models, datasets = inputs
    model_path = models.get(model, tmp_path / model)
    data_path = datasets.get(data, tmp_path / data)
    target = tmp_path / "out"
    where = ["--runs-dir", str(target)] if command == "pipeline" else [str(target)]
    result = CliRunner().invoke(app, [command, *where, "--model", str(model_path), "--data", str(data_path)])
    assert result.exit_code == 1, result.output
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    assert "Traceback" not in result.output
    for word in words:
        assert word in message, message
    assert not target.exists(), f"{command} left {sorted(p.name for p in target.rglob('*'))}"


def test_regression_needs_float_targets_or_output_values(inputs, tmp_path: Path) -> None:
    """A softmax model given non-integer labels says to declare --output-kind values, in one line."""
    from typer.testing import CliRunner

    from toolkit.cli import app

    models, _ = inputs
    data = tmp_path / "float.npz"
    np.savez(data, x=np.random.default_rng(0).random((40, 25), dtype=np.float32), y=np.linspace(0, 1, 40))
    result = CliRunner().invoke(
        app,
        ["export", str(tmp_path / "r"), "--model", str(models["mlp"]), "--data", str(data), "--output-kind", "logits"],
    )
    assert result.exit_code == 1 and "--output-kind values" in result.stderr
    bad = CliRunner().invoke(
        app, ["export", str(tmp_path / "r"), "--model", str(models["mlp"]), "--output-kind", "scores"]
    )
    assert bad.exit_code == 1 and "probabilities, logits, values" in bad.stderr
    assert not (tmp_path / "r").exists()
