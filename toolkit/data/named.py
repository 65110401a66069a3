"""Data for a model with several inputs or outputs: an `.npz` holding one array per tensor, matched by name.

Keys are the model's input names (what it is fed) and output names (the targets it is judged against), each
either whole (`image`, then `TEST_FRACTION` is held out with the seed, the same rows for every array) or split
(`image_train` and `image_test`). Every name must be there and nothing else may be; all arrays of a split hold
the same number of samples. Each refusal is one line naming the model's inputs and outputs.

Targets by the output's kind: probabilities/logits take integer class labels (N,) or one-hot rows (N, K);
values take floats in the output's shape; boxes take floats (N, 4) or (N, K, 4) as (x_min, y_min, x_max,
y_max) (`BOX_FORMAT`); class_indices take whole numbers (N,) or (N, 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from toolkit.data.dataset import NPZ, TEST_FRACTION, Dataset, _reshape_is_safe, _shape, sha256_file, tensor_targets
from toolkit.errors import DataError

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec, TensorSpec
    from toolkit.run.documents import DatasetDocument

SPLITS: Final = ("train", "test")


@dataclass(frozen=True)
class NamedSplit:
    """One split as the model takes it: a feed per input name, a target per output name, all of `len(self)` rows."""

    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))


@dataclass(frozen=True, eq=False)
class NamedDataset(Dataset):
    """A `Dataset` whose arrays are keyed by the model's tensor names (`x_train`/`y_train`: the first of each).

    The single-tensor views (`test_split`, `inputs`) serve a model with one input and one output; for several,
    `test_named`, `calibration_named` and `value_ranges` give one array per name (`calibration` serves both).
    """

    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    train_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    test_arrays: dict[str, np.ndarray] = field(default_factory=dict)

    # -- several tensors ---------------------------------------------------------------------------
    def test_named(self, spec: ModelSpec, limit: int | None = None) -> NamedSplit:
        """The first `limit` test rows: feeds in each input's shape and dtype, targets per output's kind."""
        n = len(self.x_test) if limit is None else min(limit, len(self.x_test))
        return self._split(self.test_arrays, spec, slice(0, n))

    def train_named(self, spec: ModelSpec) -> NamedSplit:
        """Every training row, as the model takes it."""
        return self._split(self.train_arrays, spec, slice(None))

    def calibration_named(self, spec: ModelSpec, n: int = 500, seed: int = 7) -> dict[str, np.ndarray]:
        """`n` training rows drawn with `seed` (the same rows of every input, in index order): int8 calibration."""
        total = len(self.x_train)
        rows = np.sort(np.random.default_rng(seed).choice(total, min(n, total), replace=False))
        return {t.name: self._feed(self.train_arrays[t.name][rows], t) for t in spec.inputs}

    def value_ranges(self, spec: ModelSpec) -> dict[str, tuple[float, float]]:
        """Each input's value range over the training split (bytes: the full range the type allows)."""
        ranges = {}
        for tensor in spec.inputs:
            raw = self.train_arrays[tensor.name]
            if np.issubdtype(raw.dtype, np.integer) and raw.dtype.itemsize == 1:
                info = np.iinfo(raw.dtype)
                lo, hi = float(info.min) * self.scale, float(info.max) * self.scale
            else:
                sample = self._feed(raw[: min(len(raw), 5000)], tensor)
                lo, hi = float(np.min(sample)), float(np.max(sample))
            ranges[tensor.name] = (lo, hi) if hi > lo else (lo, lo + 1.0)
        return ranges

    # -- the single-tensor views, refused for several tensors ----------------------------------------
    def inputs(self, x: np.ndarray, spec: ModelSpec) -> np.ndarray:
        self._single(spec)
        return super().inputs(x, spec)

    def test_split(self, spec: ModelSpec, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        self._single(spec)
        return super().test_split(spec, limit)

    def calibration(self, spec: ModelSpec, n: int = 500, seed: int = 7) -> Any:
        """One array for a single input; for several, name → array (what the exporters' calibration_data takes)."""
        if not spec.is_single:
            return self.calibration_named(spec, n, seed)
        return super().calibration(spec, n, seed)

    def value_range(self, spec: ModelSpec) -> tuple[float, float]:
        return self.value_ranges(spec)[spec.inputs[0].name]

    def check(self, spec: ModelSpec) -> None:
        """Refuse, in one line, arrays that are not the model's names, shapes, classes or sample counts."""
        check_names(self.name, set(self.train_arrays), spec)
        for arrays in (self.test_arrays, self.train_arrays):
            self._split(arrays, spec, slice(0, 2))  # the inputs' shapes, on two rows
            for t in spec.outputs:  # every target: a label out of range may be anywhere
                output_targets(arrays[t.name], t, self._what(t))

    def record(self, spec: ModelSpec, *, seed: int) -> DatasetDocument:
        document = super().record(spec, seed=seed)
        if spec.is_single:
            return document
        return document.model_copy(update={"value_ranges": self.value_ranges(spec), "task": "several outputs"})

    # -- helpers ------------------------------------------------------------------------------------
    def _single(self, spec: ModelSpec) -> None:
        if not spec.is_single:
            raise DataError(
                f"this step feeds one input and reads one output, but {_model_names(spec)}; run it on a model "
                "with one input and one output."
            )

    def _split(self, arrays: dict[str, np.ndarray], spec: ModelSpec, rows: slice) -> NamedSplit:
        return NamedSplit(
            inputs={t.name: self._feed(arrays[t.name][rows], t) for t in spec.inputs},
            targets={t.name: output_targets(arrays[t.name][rows], t, self._what(t)) for t in spec.outputs},
        )

    def _feed(self, x: np.ndarray, tensor: TensorSpec) -> np.ndarray:
        return input_feed(x, tensor, self.scale, self._what(tensor))

    def _what(self, tensor: TensorSpec) -> str:
        return f"{self.name}'s {tensor.name!r}"


def names_text(names: tuple[str, ...] | list[str]) -> str:
    return "(" + ", ".join(names) + ")"


def _model_names(spec: ModelSpec) -> str:
    return f"the model's inputs are {names_text(spec.input_names)} and its outputs {names_text(spec.output_names)}"


def input_feed(x: np.ndarray, tensor: TensorSpec, scale: float, what: str) -> np.ndarray:
    """Stored rows `x` as `tensor` takes them: its dtype (uint8 kept, else float32 × `scale`) and shape."""
    tail = tuple(int(d) for d in tensor.shape[1:] if d is not None)
    if not np.issubdtype(np.asarray(x).dtype, np.number):
        raise DataError(f"{what} has dtype {np.asarray(x).dtype}; give numeric arrays (no strings).")
    arr: np.ndarray
    if tensor.dtype == "uint8":
        arr = np.asarray(x).astype(np.uint8)
    else:
        arr = np.asarray(x).astype(np.float32)
        if scale != 1.0:
            arr = arr * np.float32(scale)
    if arr.shape[1:] == tail:
        return arr
    layout = tensor.layout
    if layout == "NCHW" and arr.ndim == 4 and len(tail) == 3 and arr.shape[1:] == (*tail[1:], tail[0]):
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
    if arr.ndim > 1 and int(np.prod(arr.shape[1:])) == int(np.prod(tail)) and _reshape_is_safe(arr.shape[1:], tail):
        return arr.reshape(len(arr), *tail)
    raise DataError(
        f"{what} holds samples of shape {_shape(arr.shape[1:])} but the model's input {tensor.name!r} takes "
        f"{_shape(tail)}; give one array per input in its shape."
    )


def output_targets(y: np.ndarray, tensor: TensorSpec, what: str) -> np.ndarray:
    """Targets for one output by its kind: int64 labels, float32 values or boxes, int64 class indices."""
    kind = tensor.kind or "probabilities"
    y = np.asarray(y)
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise DataError(f"{what} has dtype {y.dtype}; give numbers for the output {tensor.name!r}.")
    tail = tuple(int(d) for d in tensor.shape[1:] if d is not None)
    if kind == "boxes":
        boxes = y.astype(np.float32)
        if boxes.shape[1:] != tail or tail[-1:] != (4,):
            raise DataError(
                f"{what} holds boxes of shape {_shape(boxes.shape[1:])} per sample but the output {tensor.name!r} "
                f"gives {_shape(tail)}; give (x_min, y_min, x_max, y_max) boxes in the output's shape."
            )
        return boxes
    if kind == "class_indices":
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or (y.size and not np.all(np.mod(y, 1) == 0)) or (y.size and y.min() < 0):
            raise DataError(
                f"{what} must hold one whole, non-negative class index per sample (N,) for the output "
                f"{tensor.name!r}; got shape {_shape(y.shape)}."
            )
        return y.astype(np.int64)
    # probabilities, logits, values: the single-output rules; an (N,) values output is one value per sample
    targets = tensor_targets(y, tail or (1,), kind, tail[-1] if tail else 0, what)
    return targets.reshape(len(targets)) if not tail and kind == "values" else targets


def check_names(name: str, keys: set[str], spec: ModelSpec) -> None:
    """Refuse keys that are not exactly the model's input and output names."""
    wanted = [*spec.input_names, *spec.output_names]
    missing = [n for n in wanted if n not in keys]
    if missing:
        roles = ", ".join(f"{n!r} ({'input' if n in spec.input_names else 'output target'})" for n in missing)
        raise DataError(
            f"{name} lacks {roles}; {_model_names(spec)}: save one array per name (or <name>_train and <name>_test)."
        )
    extra = sorted(keys - set(wanted))
    if extra:
        raise DataError(
            f"{name} holds {', '.join(repr(k) for k in extra)}, which {'is' if len(extra) == 1 else 'are'} none "
            f"of the model's names; {_model_names(spec)}: remove or rename {'it' if len(extra) == 1 else 'them'}."
        )


def load_named_npz(path: Path, arrays: dict[str, np.ndarray], spec: ModelSpec, *, seed: int = 7) -> NamedDataset:
    """`arrays` (read from `path`) as one array per model tensor name, split as given or held out with `seed`."""
    train, test, split = _named_splits(path.name, arrays, spec, seed)
    first_in, first_out = spec.input_names[0], spec.output_names[0]
    names = arrays.get("class_names")
    return NamedDataset(
        name=path.name,
        kind=NPZ,
        source=str(path),
        path=str(path.resolve()),
        sha256=sha256_file(path),
        x_train=train[first_in],
        y_train=train[first_out],
        x_test=test[first_in],
        y_test=test[first_out],
        class_names=None if names is None else tuple(str(n) for n in names),
        split=split,
        input_names=tuple(spec.input_names),
        output_names=tuple(spec.output_names),
        train_arrays=train,
        test_arrays=test,
    )


def _named_splits(
    name: str, arrays: dict[str, np.ndarray], spec: ModelSpec, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], str]:
    """(train arrays, test arrays, how split) keyed by tensor name; one-line refusals for anything else."""
    arrays = {k: v for k, v in arrays.items() if k != "class_names"}
    wanted = [*spec.input_names, *spec.output_names]
    split_keys = {f"{n}_{s}" for n in wanted for s in SPLITS}
    given = [k for k in arrays if k in split_keys]
    if given and any(n in arrays for n in wanted):
        raise DataError(
            f"{name} mixes whole arrays and <name>_train/<name>_test arrays; give every name one way "
            f"({_model_names(spec)})."
        )
    if given:
        stems = {k.rsplit("_", 1)[0] for k in given}
        for stem in sorted(stems):
            for s in SPLITS:
                if f"{stem}_{s}" not in arrays:
                    raise DataError(f"{name} has {stem}_{'test' if s == 'train' else 'train'} but lacks {stem}_{s}.")
        check_names(name, {k for k in arrays if k not in split_keys} | stems, spec)
        train = {n: arrays[f"{n}_train"] for n in wanted}
        test = {n: arrays[f"{n}_test"] for n in wanted}
        _same_count(name, train, "train")
        _same_count(name, test, "test")
        return train, test, "given"
    check_names(name, set(arrays), spec)
    whole = {n: arrays[n] for n in wanted}
    n = _same_count(name, whole, "")
    if n < 2:
        raise DataError(f"{name} holds {n} sample; need at least 2 to split into train and test.")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * TEST_FRACTION))
    test_rows, train_rows = np.sort(order[:n_test]), np.sort(order[n_test:])
    train = {k: v[train_rows] for k, v in whole.items()}
    test = {k: v[test_rows] for k, v in whole.items()}
    return train, test, f"{n_test} of {n} held out for testing, seed {seed}"


def _same_count(name: str, arrays: dict[str, np.ndarray], split: str) -> int:
    counts = {k: (len(v) if np.ndim(v) else 0) for k, v in arrays.items()}
    if len(set(counts.values())) != 1:
        suffix = f"_{split}" if split else ""
        listed = ", ".join(f"{k}{suffix} {c}" for k, c in counts.items())
        raise DataError(f"{name}: every array needs the same number of samples; found {listed}.")
    n = next(iter(counts.values()))
    if n == 0:
        raise DataError(f"{name}: the {split or 'data'} arrays are empty.")
    return n


def is_named_layout(keys: set[str]) -> bool:
    """False for the single-tensor layouts (x/y, x_train/y_train/x_test/y_test): those keep their meaning."""
    legacy = {"x", "y"} <= keys or {"x_train", "y_train", "x_test", "y_test"} <= keys
    return not legacy


__all__ = ["NamedDataset", "NamedSplit", "is_named_layout", "load_named_npz"]
