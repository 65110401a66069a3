"""Your own Keras model through edgekit, end to end: the README's "Your own model" example, runnable.

    python examples/your_own_model.py            # writes my_model/ (model + data), then runs the pipeline

It builds and trains a small functional CNN on 16×16 RGB images (real MNIST digits, tinted), saves the
model as `my_model/model.keras` and the data as `my_model/data.npz` (x_train, y_train, x_test, y_test),
then runs `edgekit pipeline --model my_model/model.keras --data my_model/data.npz`: seven exports, parity,
latency and a report naming the model and the data. With your own files, only that last command is needed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np


def make_data(path: Path) -> None:
    from PIL import Image

    from toolkit.data.mnist import load_mnist

    mnist = load_mnist()
    rng = np.random.default_rng(0)

    def rgb(x: np.ndarray) -> np.ndarray:
        small = np.stack([np.asarray(Image.fromarray(i).resize((16, 16), Image.Resampling.BILINEAR)) for i in x])
        tint = rng.uniform(0.4, 1.0, size=(len(x), 1, 1, 3))
        return (small[..., None] * tint).round().astype(np.uint8)

    np.savez(
        path,
        x_train=rgb(mnist.x_train[:5000]),
        y_train=mnist.y_train[:5000],
        x_test=rgb(mnist.x_test[:1000]),
        y_test=mnist.y_test[:1000],
    )


def make_model(path: Path, data: Path) -> None:
    import keras
    from keras import layers

    keras.utils.set_random_seed(7)
    inputs = keras.Input((16, 16, 3), name="image")  # uint8 pixels 0..255, as stored
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    y = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization()(y)
    x = layers.Add()([x, layers.ReLU()(y)])  # residual
    x = layers.SeparableConv2D(32, 3, strides=2, padding="same", activation="hard_silu")(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="tinted_digits")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with np.load(data) as d:
        model.fit(d["x_train"], d["y_train"], epochs=8, batch_size=64, verbose=2)
    model.save(path)


def main() -> int:
    out = Path("my_model")
    out.mkdir(exist_ok=True)
    make_data(out / "data.npz")
    make_model(out / "model.keras", out / "data.npz")
    command = [
        sys.executable,
        "-m",
        "toolkit.cli",
        "pipeline",
        "--model",
        str(out / "model.keras"),
        "--data",
        str(out / "data.npz"),
        *sys.argv[1:],
    ]
    print("$", " ".join(command[2:]).replace("toolkit.cli", "edgekit"), flush=True)
    return subprocess.call(command)


if __name__ == "__main__":
    raise SystemExit(main())
