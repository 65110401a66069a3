"""Small fp32 .tflite files for the TFLite-source tests, converted by TFLiteConverter from Keras models trained
briefly (seeded) on real MNIST digits (tests/user_models.py's data), and files edgekit must refuse.

`nchw_fixed` stands in for what litert-torch writes from a PyTorch module: a channels-first input with a fixed
batch of 1 (litert-torch traces with sample arguments); here the same trained layers behind a Permute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _write(path: Path, converter: Any) -> Path:
    path.write_bytes(converter.convert())
    return path


def _cnn(data: Path, *, epochs: int = 4) -> Any:
    """RGB 16×16 CNN: Rescaling, Conv+ReLU, MaxPool, Conv+ReLU, Flatten, Dense softmax (12k weights)."""
    import keras

    keras.utils.set_random_seed(7)
    layers = keras.layers
    d = np.load(data)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3), name="image"),
            layers.Rescaling(1 / 255, name="rescale"),
            layers.Conv2D(12, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool"),
            layers.Conv2D(16, 3, activation="relu", name="conv2"),
            layers.Flatten(name="flat"),
            layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="tflite_cnn",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(d["x_train"], d["y_train"], epochs=epochs, batch_size=64, verbose=0)
    return model


def cnn_files(root: Path, data: Path) -> tuple[Path, Path]:
    """(NHWC with a dynamic batch, as TFLiteConverter writes a Keras model; NCHW with a fixed batch of 1, as
    litert-torch writes a PyTorch module), the same trained weights in both."""
    import keras
    import tensorflow as tf

    model = _cnn(data)
    nhwc = _write(root / "cnn.tflite", tf.lite.TFLiteConverter.from_keras_model(model))
    inp = keras.Input((3, 16, 16), batch_size=1, name="pixels")
    nchw = keras.Model(inp, model(keras.layers.Permute((2, 3, 1), name="to_nhwc")(inp)), name="nchw_fixed")
    return nhwc, _write(root / "nchw_fixed.tflite", tf.lite.TFLiteConverter.from_keras_model(nchw))


def two_signatures(path: Path) -> Path:
    """A module with two functions (`predict`, `embed`), each a signature and a subgraph."""
    import tensorflow as tf

    class Module(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.ones((4, 2)))

        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32)])
        def predict(self, x: Any) -> Any:
            return tf.nn.softmax(tf.matmul(x, self.w))

        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32)])
        def embed(self, x: Any) -> Any:
            return tf.matmul(x, self.w)

    module = Module()
    functions = [module.predict.get_concrete_function(), module.embed.get_concrete_function()]
    return _write(path, tf.lite.TFLiteConverter.from_concrete_functions(functions, module))


def int64_input(path: Path) -> Path:
    """Token ids in (int64), an embedding mean out: an input edgekit cannot feed from images or vectors."""
    import tensorflow as tf

    table = tf.Variable(tf.random.stateless_normal((50, 10), seed=(1, 2)))

    @tf.function(input_signature=[tf.TensorSpec((None, 8), tf.int64)])
    def embed(ids: Any) -> Any:
        return tf.nn.softmax(tf.reduce_mean(tf.gather(table, ids), axis=1))

    return _write(path, tf.lite.TFLiteConverter.from_concrete_functions([embed.get_concrete_function()]))


def dynamic_size(path: Path) -> Path:
    """A fully convolutional classifier taking any height and width ([N, ?, ?, 1])."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(7)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((None, None, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    return _write(path, tf.lite.TFLiteConverter.from_keras_model(model))


def outlier_cnn(path: Path, data: Path, *, value: float = 2000.0) -> Path:
    """The trained CNN with one more conv2 channel, constant at `value` (zero filter, bias `value`) and read with
    weight 0 by the Dense: the same probabilities in float, but per-tensor int8 of conv2's output spends its
    256 levels on the outlier (as tests/sensitive_models.py does for Keras)."""
    import keras
    import tensorflow as tf

    base = _cnn(data)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3), name="image"),
            layers.Rescaling(1 / 255, name="rescale"),
            layers.Conv2D(12, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool"),
            layers.Conv2D(17, 3, activation="relu", name="conv2"),
            layers.Flatten(name="flat"),
            layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="tflite_outlier_cnn",
    )
    old = {layer.name: layer.get_weights() for layer in base.layers}
    model.get_layer("conv1").set_weights(old["conv1"])
    kernel, bias = old["conv2"]
    model.get_layer("conv2").set_weights(
        [np.concatenate([kernel, np.zeros((*kernel.shape[:3], 1), kernel.dtype)], axis=3), np.append(bias, value)]
    )
    dense, dense_bias = old["probs"]  # rows in NHWC flatten order: (h, w, channel)
    grid = dense.reshape(5, 5, 16, 10)
    dense = np.concatenate([grid, np.zeros((5, 5, 1, 10), dense.dtype)], axis=2).reshape(-1, 10)
    model.get_layer("probs").set_weights([dense, dense_bias])
    return _write(path, tf.lite.TFLiteConverter.from_keras_model(model))
