"""Data for a model with several inputs and outputs: one `.npz` array per tensor name (toolkit.data.named).

Real MNIST digits; the model is described by a `ModelSpec` with two inputs (an image and four image
statistics) and two outputs (the digit's probabilities and the share of ink in the left half).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtimes.spec import ModelSpec, TensorSpec
from toolkit.data.dataset import NPZ
from toolkit.data.named import NamedDataset, output_targets
from toolkit.data.sources import load_dataset
from toolkit.errors import DataError

N = 600


def two_by_two() -> ModelSpec:
    return ModelSpec(
        inputs=(
            TensorSpec("image", (None, 28, 28, 1), "float32", layout="NHWC", value_range=(0.0, 1.0)),
            TensorSpec("features", (None, 4), "float32", layout="NC", value_range=(0.0, 1.0)),
        ),
        outputs=(
            TensorSpec("digit", (None, 10), "float32", kind="probabilities"),
            TensorSpec("side", (None, 1), "float32", kind="values"),
        ),
    )


def arrays(mnist, n: int = N) -> dict[str, np.ndarray]:
    """The four named arrays for `n` MNIST training images: pixels stay uint8, the rest is derived from them."""
    x = mnist.x_train[:n]
    ink = x.astype(np.float32) / 255
    total = ink.sum((1, 2)) + 1e-6
    features = np.stack(
        [ink.mean((1, 2)), ink.std((1, 2)), ink[:, :14].sum((1, 2)) / total, ink[:, :, :14].sum((1, 2)) / total], 1
    ).astype(np.float32)
    return {
        "image": x,
        "features": features,
        "digit": mnist.y_train[:n].astype(np.int64),
        "side": (ink[:, :, :14].sum((1, 2)) / total).astype(np.float32),
    }


def save(path: Path, data: dict[str, np.ndarray]) -> Path:
    np.savez(path, **data)
    return path


def test_whole_arrays_are_held_out_with_the_seed(tmp_path: Path, mnist) -> None:
    spec = two_by_two()
    data = arrays(mnist)
    ds = load_dataset(save(tmp_path / "named.npz", data), spec=spec, seed=3).with_scale(1 / 255)
    assert isinstance(ds, NamedDataset) and ds.kind == NPZ
    assert len(ds.x_test) == round(N * 0.2) and len(ds.x_train) == N - round(N * 0.2)
    assert ds.split == f"{round(N * 0.2)} of {N} held out for testing, seed 3"
    test = ds.test_named(spec)
    assert set(test.inputs) == {"image", "features"} and set(test.targets) == {"digit", "side"}
    assert test.inputs["image"].shape == (len(test), 28, 28, 1) and test.inputs["image"].dtype == np.float32
    assert float(test.inputs["image"].max()) <= 1.0  # the scale applies to the pixels
    assert test.targets["digit"].dtype == np.int64 and test.targets["side"].shape == (len(test), 1)
    # The same rows were held out of every array: the pixels' ink share is the `side` target of that row.
    image = test.inputs["image"][..., 0]
    left = image[:, :, :14].sum((1, 2)) / (image.sum((1, 2)) + 1e-6)
    np.testing.assert_allclose(left, test.targets["side"][:, 0], atol=1e-4)
    ds.check(spec)


def test_given_splits_and_calibration(tmp_path: Path, mnist) -> None:
    spec = two_by_two()
    data = arrays(mnist)
    split = {f"{k}_train": v[:500] for k, v in data.items()} | {f"{k}_test": v[500:] for k, v in data.items()}
    ds = load_dataset(save(tmp_path / "split.npz", split), spec=spec)
    assert isinstance(ds, NamedDataset) and ds.split == "given"
    assert len(ds.test_named(spec)) == 100 and len(ds.test_named(spec, limit=7)) == 7
    calibration = ds.calibration_named(spec, n=50, seed=1)
    assert {k: v.shape for k, v in calibration.items()} == {"image": (50, 28, 28, 1), "features": (50, 4)}
    again = ds.calibration_named(spec, n=50, seed=1)
    assert all(np.array_equal(calibration[k], again[k]) for k in calibration)
    ranges = ds.value_ranges(spec)
    assert ranges["image"] == (0.0, 255.0)  # uint8 pixels: the type's range
    assert 0.0 <= ranges["features"][0] < ranges["features"][1] <= 1.0
    record = ds.record(spec, seed=7)
    assert record.value_ranges == ranges and record.train == 500 and record.test == 100


def test_single_tensor_views_refuse_several(tmp_path: Path, mnist) -> None:
    spec = two_by_two()
    ds = load_dataset(save(tmp_path / "named.npz", arrays(mnist)), spec=spec)
    assert isinstance(ds, NamedDataset)
    with pytest.raises(DataError, match=r"inputs are \(image, features\) and its outputs \(digit, side\)"):
        ds.test_split(spec)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("features"), r"lacks 'features' \(input\); the model's inputs are \(image, features\)"),
        (lambda d: d.pop("side"), r"lacks 'side' \(output target\)"),
        (lambda d: d.update(extra=d["side"]), r"holds 'extra', which is none of the model's names"),
        (lambda d: d.update(side=d["side"][:-1]), r"same number of samples; found image 600, features 600, .*side 599"),
        (lambda d: d.update(features=d["features"][:, :3]), r"'features' holds samples of shape \(3,\) but .* \(4,\)"),
        (lambda d: d.update(digit=d["digit"] + 5), r"'digit' has label 1\d but the model has 10 classes"),
        (lambda d: d.update(side_train=d["side"]), r"mixes whole arrays and <name>_train/<name>_test"),
    ],
)
def test_refusals_name_the_models_names(tmp_path: Path, mnist, change, message) -> None:
    data = arrays(mnist)
    change(data)
    path = save(tmp_path / "bad.npz", data)
    with pytest.raises(DataError, match=message) as caught:
        load_dataset(path, spec=two_by_two()).check(two_by_two())
    assert "\n" not in str(caught.value)


def test_a_split_half_is_refused(tmp_path: Path, mnist) -> None:
    data = arrays(mnist)
    split = {f"{k}_train": v for k, v in data.items()} | {f"{k}_test": v for k, v in data.items() if k != "side"}
    with pytest.raises(DataError, match="has side_train but lacks side_test"):
        load_dataset(save(tmp_path / "half.npz", split), spec=two_by_two())


def test_one_input_and_output_by_name_and_the_old_layouts(tmp_path: Path, mnist) -> None:
    spec = ModelSpec(
        TensorSpec("pixels", (None, 28, 28, 1), "float32"), TensorSpec("label", (None, 10), "float32"), layout="NHWC"
    )
    x, y = mnist.x_train[:300], mnist.y_train[:300]
    named = load_dataset(save(tmp_path / "named.npz", {"pixels": x, "label": y}), spec=spec)
    assert isinstance(named, NamedDataset)
    images, labels = named.test_split(spec)  # one input and one output: the single-tensor views work
    assert images.shape == (60, 28, 28, 1) and labels.shape == (60,)
    old = load_dataset(save(tmp_path / "old.npz", {"x": x, "y": y}), spec=spec)
    assert not isinstance(old, NamedDataset) and len(old.x_test) == 60
    with pytest.raises(DataError, match="expected x_train, y_train, x_test, y_test"):
        load_dataset(save(tmp_path / "other.npz", {"a": x, "b": y}), spec=spec)


def test_box_and_class_index_targets() -> None:
    boxes = TensorSpec("box", (None, 4), "float32", kind="boxes")
    many = TensorSpec("boxes", (None, 3, 4), "float32", kind="boxes")
    index = TensorSpec("cls", (None,), "int64", kind="class_indices")
    xyxy = np.array([[1, 2, 5, 6], [0, 0, 3, 3]], dtype=np.float64)
    assert output_targets(xyxy, boxes, "t").dtype == np.float32
    assert output_targets(np.zeros((2, 3, 4)), many, "t").shape == (2, 3, 4)
    with pytest.raises(DataError, match=r"boxes of shape \(4,\) .* gives \(3, 4\)"):
        output_targets(xyxy, many, "t")
    np.testing.assert_array_equal(output_targets(np.array([[3], [1]]), index, "t"), [3, 1])
    with pytest.raises(DataError, match="whole, non-negative class index"):
        output_targets(np.array([0.5, 1.0]), index, "t")
