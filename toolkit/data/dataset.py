"""Any dataset edgekit runs a model on: shipped MNIST, a user's `.npz`, or a folder of images per class.

A `Dataset` holds the raw arrays as the source had them (uint8 pixels, float vectors, integer or one-hot
labels, regression targets) and turns them into a model's input with `inputs(x, spec)`. The model's
`ModelSpec` decides the shape and dtype; the dataset decides the values (MNIST: pixels / 255, the reference
convention; an `.npz`: as stored, times `scale`; a folder: pixels 0..255 as Keras's
`image_dataset_from_directory` gives them, times `scale`).

Nothing here unpickles: `.npz` files are read with `allow_pickle=False`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from toolkit.errors import DataError

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec
    from toolkit.data.mnist import Mnist
    from toolkit.run.documents import DatasetDocument

MNIST: Final = "mnist"
NPZ: Final = "npz"
FOLDER: Final = "folder"
TEST_FRACTION: Final = 0.2  # the share held out for testing when a source has no split of its own


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test arrays as the source had them, and how to feed them to a model.

    Attributes:
        name: what reports call it ("MNIST", "flowers.npz", "photos/").
        kind: "mnist", "npz" or "folder".
        source: where it came from, for reports.
        path: the file or folder (None for the shipped MNIST).
        sha256: of the `.npz` file, or of a folder's (relative path, file sha256) list; None for MNIST.
        class_names: one per class (a folder's sub-folder names), or None.
        scale: multiply float inputs by this (MNIST: 1/255 through `to_model_input`).
        split: how the test split was obtained, e.g. "given" or "20 % held out, seed 7".
    """

    name: str
    kind: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    path: str | None = None
    sha256: str | None = None
    class_names: tuple[str, ...] | None = None
    scale: float = 1.0
    split: str = "given"
    verified: bool = True
    warnings: tuple[str, ...] = field(default=())

    @classmethod
    def from_mnist(cls, mnist: Mnist) -> Dataset:
        return cls(
            name="MNIST",
            kind=MNIST,
            source=mnist.source,
            x_train=mnist.x_train,
            y_train=mnist.y_train,
            x_test=mnist.x_test,
            y_test=mnist.y_test,
            class_names=tuple(str(d) for d in range(10)),
            scale=1 / 255,
            verified=mnist.verified,
            warnings=mnist.warnings,
        )

    def with_scale(self, scale: float | None) -> Dataset:
        if scale is None or self.kind == MNIST:
            return self
        if not np.isfinite(scale) or scale <= 0:
            raise DataError(f"--input-scale must be a positive number, got {scale}.")
        return replace(self, scale=float(scale))

    # -- feeding a model ------------------------------------------------------------------------
    def inputs(self, x: np.ndarray, spec: ModelSpec) -> np.ndarray:
        """`x` (rows of this dataset) in the model's input shape, dtype and value convention."""
        tail = tuple(int(d) for d in spec.input.shape[1:] if d is not None)
        if self.kind == MNIST and np.issubdtype(np.dtype(spec.input.dtype), np.floating):
            from toolkit.data.mnist import to_model_input

            arr = to_model_input(x)  # the reference convention, bit for bit
        elif np.dtype(spec.input.dtype) == np.uint8:
            arr = np.asarray(x).astype(np.uint8)
        else:
            arr = np.asarray(x).astype(np.float32)
            if self.scale != 1.0:
                arr = arr * np.float32(self.scale)
        if arr.shape[1:] == tail:
            return arr
        if spec.layout == "NCHW" and arr.ndim == 4 and len(tail) == 3 and arr.shape[1:] == (*tail[1:], tail[0]):
            return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))  # channels-last data for a channels-first model
        if int(np.prod(arr.shape[1:])) == int(np.prod(tail)) and _reshape_is_safe(arr.shape[1:], tail):
            return arr.reshape(len(arr), *tail)
        raise DataError(
            f"{self.name} holds samples of shape {_shape(arr.shape[1:])} but the model takes "
            f"{_shape(tail)}; give data that matches the model's input."
        )

    def test_split(self, spec: ModelSpec, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, labels or targets) of the first `limit` test rows."""
        n = len(self.x_test) if limit is None else min(limit, len(self.x_test))
        return self.inputs(self.x_test[:n], spec), targets_for(self.y_test[:n], spec, self.name)

    def calibration(self, spec: ModelSpec, n: int = 500, seed: int = 7) -> np.ndarray:
        """`n` training rows (at most all of them), distinct, drawn with `seed` and kept in index order: what the
        int8 exports are calibrated on."""
        total = len(self.x_train)
        n = min(n, total)
        indices = np.sort(np.random.default_rng(seed).choice(total, n, replace=False))
        return self.inputs(self.x_train[indices], spec)

    def value_range(self, spec: ModelSpec) -> tuple[float, float]:
        """The range of the model's input values over the training split (MNIST: 0..1)."""
        if self.kind == MNIST:
            return (0.0, 1.0)
        if np.issubdtype(self.x_train.dtype, np.integer) and self.x_train.dtype.itemsize == 1:
            info = np.iinfo(self.x_train.dtype)  # pixels: the full range the type allows, not this sample's
            lo, hi = float(info.min) * self.scale, float(info.max) * self.scale
        else:
            sample = self.inputs(self.x_train[: min(len(self.x_train), 5000)], spec)
            lo, hi = float(np.min(sample)), float(np.max(sample))
        return (lo, hi) if hi > lo else (lo, lo + 1.0)

    def check(self, spec: ModelSpec) -> None:
        """Refuse, in one line, data that does not fit the model (shape, class count, labels out of range)."""
        self.inputs(self.x_test[:2], spec)
        targets_for(self.y_train, spec, self.name)
        targets_for(self.y_test, spec, self.name)

    def record(self, spec: ModelSpec, *, seed: int) -> DatasetDocument:
        """dataset.json for this dataset as `spec`'s model takes it (`seed`: of the split and calibration draw)."""
        from toolkit.run.documents import DatasetDocument

        return DatasetDocument(
            schema_version=1,
            **self._facts(),
            seed=seed,
            value_range=self.value_range(spec),
            task="regression" if spec.output_kind == "values" else "classification",
        )

    def _facts(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "path": self.path,
            "sha256": self.sha256,
            "train": len(self.x_train),
            "test": len(self.x_test),
            "sample_shape": list(self.x_train.shape[1:]),
            "dtype": str(self.x_train.dtype),
            "class_names": None if self.class_names is None else list(self.class_names),
            "scale": self.scale,
            "split": self.split,
            "verified": self.verified,
        }


def targets_for(y: np.ndarray, spec: ModelSpec, name: str = "the data") -> np.ndarray:
    """Labels as int64 class indices (classification) or float32 targets (spec output kind "values")."""
    out_tail = tuple(int(d) for d in spec.output.shape[1:] if d is not None)
    return tensor_targets(y, out_tail, spec.output_kind, spec.num_classes or 0, name)


def tensor_targets(y: np.ndarray, out_tail: tuple[int, ...], kind: str, classes: int, name: str) -> np.ndarray:
    """`targets_for` for one output of shape (N, *out_tail) and `kind` over `classes` classes."""
    y = np.asarray(y)
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise DataError(f"{name}'s labels have dtype {y.dtype}; give integer class labels or numeric targets.")
    if kind == "values":
        targets = y.astype(np.float32)
        if targets.shape[1:] == out_tail or (targets.ndim == 1 and out_tail == (1,)):
            return targets.reshape(len(targets), *out_tail)
        raise DataError(
            f"{name}'s targets have shape {_shape(targets.shape[1:])} per sample but the model outputs "
            f"{_shape(out_tail)}; give one target per model output."
        )
    if y.ndim == 2 and y.shape[1] > 1:
        if y.shape[1] != classes:
            raise DataError(
                f"{name}'s one-hot labels have {y.shape[1]} classes but the model outputs {classes}; "
                "give labels for the model's classes."
            )
        y = y.argmax(1)
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{name}'s labels have shape {_shape(y.shape)}; give one integer class label per sample.")
    if y.size and np.issubdtype(y.dtype, np.floating) and not np.all(np.mod(y, 1) == 0):
        raise DataError(
            f"{name}'s labels are not whole numbers, but the model outputs {kind} over "
            f"{classes} classes; for a regression model pass --output-kind values."
        )
    labels = y.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        found = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise DataError(
            f"{name} has label {found} but the model has {classes} classes (0..{classes - 1}); "
            "give labels in the model's class range."
        )
    return labels


def split_seeded(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """Hold out `TEST_FRACTION` of (x, y) for testing, shuffled with `seed`."""
    n = len(x)
    if n < 2:
        raise DataError(f"need at least 2 samples to split into train and test, got {n}.")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * TEST_FRACTION))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return x[train], y[train], x[test], y[test]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reshape_is_safe(have: tuple[int, ...], want: tuple[int, ...]) -> bool:
    # Adding or dropping a channel axis of 1, or flattening images to vectors, keeps element order.
    return len(want) == 1 or tuple(d for d in have if d != 1) == tuple(d for d in want if d != 1)


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")" if len(shape) != 1 else f"({shape[0]},)"
