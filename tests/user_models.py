"""Small user models and datasets made from real MNIST digits, for the bring-your-own-model tests.

Each builder trains briefly (seeded) and saves the model; each dataset is real MNIST pixels reshaped into
what that model takes: tinted RGB 16×16 images, 7×7 average-pooled vectors, 12×12 grey images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

N_TRAIN, N_TEST = 3000, 600


def _mnist(n_train: int = N_TRAIN, n_test: int = N_TEST) -> tuple[np.ndarray, ...]:
    from toolkit.data.mnist import load_mnist

    m = load_mnist()
    return m.x_train[:n_train], m.y_train[:n_train], m.x_test[:n_test], m.y_test[:n_test]


def _resize(x: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(img).resize((side, side), Image.Resampling.BILINEAR)) for img in x])


def rgb_digits(path: Path, side: int = 16, seed: int = 0) -> Path:
    """MNIST digits at side×side, each tinted with a random colour: uint8 [N, side, side, 3], labels 0-9."""
    rng = np.random.default_rng(seed)
    x_train, y_train, x_test, y_test = _mnist()

    def tint(x: np.ndarray) -> np.ndarray:
        small = _resize(x, side).astype(np.float32) / 255
        colours = rng.uniform(0.4, 1.0, size=(len(x), 1, 1, 3))
        return (small[..., None] * colours * 255).round().astype(np.uint8)

    np.savez(path, x_train=tint(x_train), y_train=y_train, x_test=tint(x_test), y_test=y_test)
    return path


def digit_vectors(path: Path) -> Path:
    """MNIST pooled 4×4 → 7×7, the central 5×5 = 25 float features in 0..1, as x/y (edgekit splits them),
    one-hot labels. (The border cells are always 0 in MNIST: a Normalization adapted on them divides by
    ε = 1e-7, a multiplier that per-tensor int8 cannot hold beside the others.)"""
    x_train, y_train, x_test, y_test = _mnist()
    x = np.concatenate([x_train, x_test]).astype(np.float32) / 255
    x = x.reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4))[:, 1:6, 1:6].reshape(-1, 25)
    y = np.eye(10, dtype=np.float32)[np.concatenate([y_train, y_test])]
    np.savez(path, x=x, y=y)
    return path


def grey_digits(path: Path, side: int = 12) -> Path:
    """MNIST digits at side×side grey, uint8 [N, side, side] (no channel axis), labels 0-9."""
    x_train, y_train, x_test, y_test = _mnist()
    np.savez(path, x_train=_resize(x_train, side), y_train=y_train, x_test=_resize(x_test, side), y_test=y_test)
    return path


def ink_targets(path: Path) -> Path:
    """Regression: 49 pooled features → the digit's mean ink and its height of mass (two float targets)."""
    x_train, _, x_test, _ = _mnist()

    def feats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = x.astype(np.float32) / 255
        ink = f.mean(axis=(1, 2))
        rows = (f.sum(axis=2) * np.arange(28)).sum(axis=1) / np.maximum(f.sum(axis=(1, 2)), 1e-6) / 28
        return f.reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(-1, 49), np.stack([ink * 5, rows], axis=1)

    (xt, yt), (xe, ye) = feats(x_train), feats(x_test)
    np.savez(path, x_train=xt, y_train=yt, x_test=xe, y_test=ye)
    return path


def digit_folder(root: Path, classes: tuple[int, ...] = (0, 1, 7), per_class: int = 300, side: int = 20) -> Path:
    """PNG files of real MNIST digits in root/<name>/, one sub-folder per class (resized later by edgekit)."""
    from PIL import Image

    x_train, y_train, _, _ = _mnist(n_train=6000)
    names = {0: "zero", 1: "one", 7: "seven"}
    for digit in classes:
        folder = root / names.get(digit, str(digit))
        folder.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(x_train[y_train == digit][:per_class]):
            rgb = np.stack([img, img // 2, 255 - img], axis=-1).astype(np.uint8)  # colour, so RGB matters
            Image.fromarray(rgb).resize((side, side)).save(folder / f"{i:03d}.png")
    return root


def _fit(model: Any, x: np.ndarray, y: np.ndarray, epochs: int, loss: str) -> Any:
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


def rgb_cnn(
    path: Path, data: Path | tuple[np.ndarray, np.ndarray], *, classes: int = 10, epochs: int = 8, head: str = "flatten"
) -> Path:
    """Functional CNN on RGB: Rescaling, Conv+BatchNorm+ReLU6, DepthwiseConv+BatchNorm, residual Add,
    SeparableConv, hard-swish-style activation, AveragePooling, then Flatten (or GlobalAveragePooling), Dense softmax.

    `data`: an .npz with x_train/y_train, or (x, y) arrays.
    """
    import keras

    keras.utils.set_random_seed(7)
    layers = keras.layers
    if isinstance(data, tuple):
        x_train, y_train = data
    else:
        d = np.load(data)
        x_train, y_train = d["x_train"], d["y_train"]
    inp = keras.Input(x_train.shape[1:], name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inp)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu6")(x)
    y = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    y = layers.BatchNormalization(name="dw_bn")(y)
    y = layers.ReLU(name="dw_relu")(y)
    x = layers.Add(name="residual")([x, y])
    x = layers.SeparableConv2D(32, 3, strides=2, padding="same", name="sep")(x)
    x = layers.Activation("hard_silu", name="hswish")(x)
    x = layers.AveragePooling2D(2, name="avgpool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x) if head == "gap" else layers.Flatten(name="flat")(x)
    out = layers.Dense(classes, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out, name="rgb_cnn")
    _fit(model, x_train, y_train, epochs, "sparse_categorical_crossentropy")
    model.save(path)
    return path


def mlp(path: Path, data: Path, *, epochs: int = 8) -> Path:
    """MLP on 25-feature vectors: Normalization (adapted), Dense relu, Dense hard-swish, Dense softmax."""
    import keras

    keras.utils.set_random_seed(7)
    layers = keras.layers
    d = np.load(data)
    norm = layers.Normalization(name="norm")
    norm.adapt(d["x"])
    model = keras.Sequential(
        [
            keras.Input((25,), name="features"),
            norm,
            layers.Dense(64, activation="relu", name="hidden1"),
            layers.Dense(32, activation="hard_silu", name="hidden2"),
            layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="mlp",
    )
    _fit(model, d["x"], d["y"], epochs, "categorical_crossentropy")
    model.save(path)
    return path


def logits_cnn(path: Path, data: Path, *, epochs: int = 4) -> Path:
    """Grey 12×12 CNN with two branches (Conv and AveragePooling) joined by Concatenate; Dense logits out."""
    import keras

    keras.utils.set_random_seed(7)
    layers = keras.layers
    d = np.load(data)
    inp = keras.Input((12, 12, 1), name="grey")
    x = layers.Rescaling(1 / 255, name="rescale")(inp)
    a = layers.Conv2D(8, 3, padding="same", activation="relu", name="branch_conv")(x)
    b = layers.AveragePooling2D(3, strides=1, padding="same", name="branch_pool")(x)
    x = layers.Concatenate(name="join")([a, b])
    pooled = layers.Flatten(name="flat")(layers.MaxPooling2D(2, name="pool")(x))
    x = layers.Concatenate(name="features")([pooled, layers.GlobalAveragePooling2D(name="gap")(x)])
    x = layers.Dense(32, activation="relu", name="hidden")(x)
    out = layers.Dense(10, name="logits")(x)
    model = keras.Model(inp, out, name="logits_cnn")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(d["x_train"][..., None], d["y_train"], epochs=epochs, batch_size=64, verbose=0)
    model.save(path)
    return path


def regressor(path: Path, data: Path, *, epochs: int = 10) -> Path:
    """MLP regression 49 → 2 linear values."""
    import keras

    keras.utils.set_random_seed(7)
    layers = keras.layers
    d = np.load(data)
    model = keras.Sequential(
        [keras.Input((49,)), layers.Dense(32, activation="relu"), layers.Dense(2, name="values")], name="regressor"
    )
    _fit(model, d["x_train"], d["y_train"], epochs, "mse")
    model.save(path)
    return path


def folder_cnn(path: Path, root: Path, *, epochs: int = 10) -> Path:
    """The RGB CNN trained on a folder of images as edgekit reads it (16×16 RGB)."""
    from runtimes.spec import ModelSpec, TensorSpec
    from toolkit.data.sources import load_folder

    classes = sum(1 for d in root.iterdir() if d.is_dir())
    spec = ModelSpec(
        input=TensorSpec("image", (None, 16, 16, 3), "float32"), output=TensorSpec("probs", (None, classes), "float32")
    )
    data = load_folder(root, spec)
    return rgb_cnn(path, (data.x_train, data.y_train), classes=classes, epochs=epochs)


# -- several inputs and outputs ----------------------------------------------------------------------
def _ink_box(x: np.ndarray) -> np.ndarray:
    """Each digit's ink bounding box, (x_min, y_min, x_max, y_max) in 0..1 of the image side (xyxy)."""
    ink = x > 64
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    side = x.shape[1]

    def span(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first = mask.argmax(axis=1)
        last = side - 1 - mask[:, ::-1].argmax(axis=1)
        return first / side, (last + 1) / side

    y0, y1 = span(rows)
    x0, x1 = span(cols)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)


def digits_and_side_data(path: Path) -> Path:
    """Two inputs, two targets, keyed by the model's tensor names: `image` (pixels /255, [N, 28, 28, 1]),
    `features` (4 floats: the ink in each image quadrant), `digit` (label 0-9) and `side` (1.0 when the
    digit's ink leans right, else 0.0), split as <name>_train / <name>_test."""
    x_train, y_train, x_test, y_test = _mnist()

    def arrays(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        f = x.astype(np.float32) / 255
        quads = f.reshape(-1, 2, 14, 2, 14).mean(axis=(2, 4)).reshape(-1, 4)
        right = (quads[:, 1] + quads[:, 3] > quads[:, 0] + quads[:, 2]).astype(np.float32)
        return {"image": f[..., None], "features": quads, "digit": y.astype(np.int64), "side": right[:, None]}

    train, test = arrays(x_train, y_train), arrays(x_test, y_test)
    np.savez(path, **{f"{k}_train": v for k, v in train.items()}, **{f"{k}_test": v for k, v in test.items()})
    return path


def digits_and_side(path: Path, data: Path, *, epochs: int = 3) -> Path:
    """Two inputs (`image` 28×28×1, `features` 4) → two outputs (`digit`: 10 softmax probabilities,
    `side`: one value), a functional model with a conv branch and a dense branch joined by Concatenate."""
    import keras

    keras.utils.set_random_seed(7)
    layers = keras.layers
    d = np.load(data)
    image = keras.Input((28, 28, 1), name="image")
    features = keras.Input((4,), name="features")
    x = layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(image)
    x = layers.Flatten(name="flat")(layers.MaxPooling2D(2, name="pool")(x))
    f = layers.Dense(8, activation="relu", name="feat_dense")(features)
    x = layers.Concatenate(name="join")([x, f])
    x = layers.Dense(32, activation="relu", name="hidden")(x)
    digit = layers.Dense(10, activation="softmax", name="digit")(x)
    side = layers.Dense(1, name="side")(x)
    model = keras.Model({"image": image, "features": features}, {"digit": digit, "side": side}, name="digit_side")
    model.compile(optimizer="adam", loss={"digit": "sparse_categorical_crossentropy", "side": "mse"})
    feeds = {"image": d["image_train"], "features": d["features_train"]}
    targets = {"digit": d["digit_train"], "side": d["side_train"]}
    model.fit(feeds, targets, epochs=epochs, batch_size=64, verbose=0)
    model.save(path)
    return path


def detector_data(path: Path) -> Path:
    """One input, two targets: `image` (pixels /255), `boxes` (the ink bounding box, xyxy in 0..1) and
    `scores` (label 0-9), split as <name>_train / <name>_test."""
    x_train, y_train, x_test, y_test = _mnist()
    arrays = {
        "image_train": x_train.astype(np.float32)[..., None] / 255,
        "boxes_train": _ink_box(x_train),
        "scores_train": y_train.astype(np.int64),
        "image_test": x_test.astype(np.float32)[..., None] / 255,
        "boxes_test": _ink_box(x_test),
        "scores_test": y_test.astype(np.int64),
    }
    np.savez(path, **arrays)
    return path


def detector(path: Path, data: Path, *, epochs: int = 3) -> Path:
    """A detector-like model: `image` 28×28×1 → `boxes` (N, 4) sigmoid (xyxy in 0..1 of the image) and
    `scores` (N, 10) softmax."""
    import keras

    keras.utils.set_random_seed(7)
    layers = keras.layers
    d = np.load(data)
    image = keras.Input((28, 28, 1), name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(image)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.Flatten(name="flat")(layers.MaxPooling2D(2, name="pool2")(x))
    x = layers.Dense(32, activation="relu", name="hidden")(x)
    boxes = layers.Dense(4, activation="sigmoid", name="boxes")(x)
    scores = layers.Dense(10, activation="softmax", name="scores")(x)
    model = keras.Model(image, {"boxes": boxes, "scores": scores}, name="detector")
    model.compile(optimizer="adam", loss={"boxes": "mse", "scores": "sparse_categorical_crossentropy"})
    targets = {"boxes": d["boxes_train"], "scores": d["scores_train"]}
    model.fit(d["image_train"], targets, epochs=epochs, batch_size=64, verbose=0)
    model.save(path)
    return path
