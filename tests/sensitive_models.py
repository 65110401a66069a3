"""Models that full int8 quantization hurts, for issue 11 (diagnosis that finds the cause, mixed precision).

- `outlier_channel`: the reference CNN with one extra unit in its Dense(128) layer whose activation is a large
  constant (about 2,000) and whose weight into the output layer is zero. Float outputs are exactly the
  original's; per-tensor int8 of that layer's output spends its 256 levels on the outlier, leaving the other
  128 channels (values 0–10) with one or two levels.
- `constant_feature_mlp`: an MLP whose first layer is a Normalization adapted on 49 pooled MNIST features,
  some of which are always 0 (the image border): their variance is 0, so Keras divides by ε = 1e-7, a
  multiplier per-tensor int8 cannot hold beside the others (full int8 collapses to one class).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

OUTLIER_VALUE = 2000.0


def outlier_channel(base: Any, dest: Path, *, value: float = OUTLIER_VALUE) -> Path:
    """Copy of the reference CNN `base` (a Keras model) with an outlier unit added to its Dense(128)."""
    import keras

    layers = keras.layers
    dense = [layer for layer in base.layers if isinstance(layer, layers.Dense)]
    hidden, head = dense[-2], dense[-1]
    model = keras.Sequential(name="reference_with_outlier")
    model.add(keras.Input(base.input_shape[1:], name="image"))
    for layer in base.layers:
        if layer is hidden:
            model.add(layers.Dense(hidden.units + 1, activation="relu", name="dense_outlier"))
        elif layer is head:
            model.add(layers.Dense(head.units, activation="softmax", name="probs"))
        else:
            model.add(layer.__class__.from_config(layer.get_config()))
    for new, old in zip(model.layers, base.layers, strict=True):
        if old is hidden:
            kernel, bias = old.get_weights()
            kernel = np.concatenate([kernel, np.zeros((kernel.shape[0], 1), kernel.dtype)], axis=1)
            bias = np.concatenate([bias, np.array([value], bias.dtype)])
            new.set_weights([kernel, bias])
        elif old is head:
            kernel, bias = old.get_weights()
            new.set_weights([np.concatenate([kernel, np.zeros((1, kernel.shape[1]), kernel.dtype)]), bias])
        else:
            new.set_weights(old.get_weights())
    model.save(dest)
    return dest


def constant_feature_vectors(path: Path, n_train: int = 3000, n_test: int = 600) -> Path:
    """MNIST pooled 4×4 → 49 features in 0..1 (the border ones always 0), x_train/y_train/x_test/y_test."""
    from toolkit.data.mnist import load_mnist

    m = load_mnist()

    def pool(x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) / 255).reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(-1, 49)

    np.savez(
        path,
        x_train=pool(m.x_train[:n_train]),
        y_train=m.y_train[:n_train],
        x_test=pool(m.x_test[:n_test]),
        y_test=m.y_test[:n_test],
    )
    return path


def constant_feature_mlp(dest: Path, data: Path, *, epochs: int = 8) -> Path:
    """Normalization (adapted, with zero-variance features) → Dense 64 relu → Dense 10 softmax."""
    import keras

    keras.utils.set_random_seed(7)
    layers = keras.layers
    with np.load(data) as d:
        x, y = d["x_train"], d["y_train"]
    norm = layers.Normalization(name="norm")
    norm.adapt(x)
    model = keras.Sequential(
        [
            keras.Input((49,), name="features"),
            norm,
            layers.Dense(64, activation="relu", name="hidden"),
            layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="constant_feature_mlp",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    model.save(dest)
    return dest
