"""Small functional Keras models with branches, trained briefly on synthetic learnable data, for diagnose tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# Models exported to TFLite only (none now: the ONNX exporter freezes Normalization's captured statistics).
TFLITE_ONLY: frozenset[str] = frozenset()


def colour_images(n: int, seed: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """RGB images in 0..1 whose class (0, 1, 2) is the dominant colour channel."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.random((n, size, size, 3), dtype=np.float32) * 0.5
    x[np.arange(n), :, :, y] += 0.5
    return x.astype(np.float32), y.astype(np.int64)


def vectors(n: int, seed: int, features: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Vectors whose class is the sign of a fixed linear rule."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    w = np.linspace(-1.0, 1.0, features, dtype=np.float32)
    return x, (x @ w > 0).astype(np.int64)


def branch_cnn(keras: Any) -> Any:
    """Rescaling, Conv+BN+ReLU, DepthwiseConv2D+BN+ReLU6 in a residual Add, SeparableConv2D, Concatenate, GAP."""
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="scale")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    d = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    d = keras.layers.BatchNormalization(name="dw_bn")(d)
    d = keras.layers.ReLU(6.0, name="dw_relu6")(d)
    x = keras.layers.Add(name="residual")([x, d])
    x = keras.layers.AveragePooling2D(2, name="avgpool")(x)
    a = keras.layers.SeparableConv2D(8, 3, padding="same", activation="relu", name="sep")(x)
    b = keras.layers.Conv2D(4, 1, activation="hard_swish", name="pw")(x)
    x = keras.layers.Concatenate(name="concat")([a, b])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="branch_cnn")


def mlp(keras: Any, features: int = 8) -> Any:
    inp = keras.Input((features,))
    x = keras.layers.Rescaling(0.5, name="norm")(inp)  # Normalization: tf2onnx makes its stats graph inputs
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    x = keras.layers.BatchNormalization(name="hidden_bn")(x)
    x = keras.layers.Dense(8, name="hidden2")(x)
    x = keras.layers.Activation("tanh", name="act")(x)
    out = keras.layers.Dense(2, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="mlp")


def logits_cnn(keras: Any) -> Any:
    """A small CNN whose last Dense outputs logits (no softmax)."""
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    out = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inp, out, name="logits_cnn")


def regression_mlp(keras: Any, features: int = 8) -> Any:
    inp = keras.Input((features,))
    x = keras.layers.Dense(8, activation="relu", name="hidden")(inp)
    out = keras.layers.Dense(1, name="value")(x)
    return keras.Model(inp, out, name="regression")


def train(model: Any, x: np.ndarray, y: np.ndarray, *, loss: str, epochs: int = 2) -> None:
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)


def build_all(root: Path) -> dict[str, dict[str, Any]]:
    """Build, train and export the test models under `root`; return {name: {model, x, y, files}}."""
    from exporters.onnx_export import export_onnx
    from exporters.tflite_export import export_tflite
    from runtimes.tf_import import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    out: dict[str, dict[str, Any]] = {}
    xi, yi = colour_images(256, 1)
    xv, yv = vectors(256, 2)
    rv = (xv @ np.linspace(0.5, -0.5, xv.shape[1], dtype=np.float32))[:, None].astype(np.float32)
    specs = [
        ("branch_cnn", branch_cnn(keras), xi, yi, "sparse_categorical_crossentropy"),
        ("mlp", mlp(keras), xv, yv, "sparse_categorical_crossentropy"),
        ("logits_cnn", logits_cnn(keras), xi, yi, None),
        ("regression", regression_mlp(keras), xv, rv, "mse"),
        ("auto_cnn", auto_named(keras, xi, normalization=False), xi, yi, "sparse_categorical_crossentropy"),
        ("norm_cnn", auto_named(keras, xi, normalization=True), xi, yi, "sparse_categorical_crossentropy"),
    ]
    for name, model, x, y, loss in specs:
        if loss is None:
            model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            model.fit(x, y, epochs=2, batch_size=32, verbose=0)
        else:
            train(model, x, y, loss=loss)
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        model.save(d / "model.keras")
        files = {}
        calib = x[:64]
        for prec in ("fp32", "int8"):
            files[f"tflite-{prec}"] = export_tflite(model, d, precision=prec, calibration_data=calib).path
            if name not in TFLITE_ONLY:
                files[f"onnx-{prec}"] = export_onnx(model, d, precision=prec, calibration_data=calib).path
        out[name] = {"model": model, "x": x, "y": y, "files": files}
    return out


def auto_named(keras: Any, x: np.ndarray, *, normalization: bool) -> Any:
    """Keras' own layer names (conv2d, conv2d_1, dense, dense_1...), two parallel same-shape convs into an Add,
    a tail with BatchNormalization and Dropout; with `normalization`, a Normalization layer adapted on `x`."""
    inp = keras.Input(x.shape[1:])
    if normalization:
        norm = keras.layers.Normalization()
        norm.adapt(x)
        h = norm(inp)
    else:
        h = keras.layers.Rescaling(1.0 / 0.5)(inp)
    a = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(h)
    b = keras.layers.Conv2D(6, 1, padding="same")(h)
    h = keras.layers.Add()([a, b])
    h = keras.layers.Conv2D(8, 3, strides=2)(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Activation("relu6")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(0.3)(h)
    h = keras.layers.Dense(8, activation="relu")(h)
    out = keras.layers.Dense(3, activation="softmax")(h)
    return keras.Model(inp, out)
