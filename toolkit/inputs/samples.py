"""`edgekit predict` on a model with several inputs: samples from an `.npz` with one array per input name.

Each array is a batch `(N, *shape)` or one sample without the batch axis, holding the values the model takes
(the same convention as the data `.npz` of such a model): they are fed as float32, as they are. Each input's
value range (`--value-range` for every input, else the run's or bundle's spec, else an int8 input's
quantization) is only checked: samples outside it get a note, since an int8 input would clip them.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from toolkit.inputs.model_input import PredictInputError
from toolkit.inputs.photo import Prepared

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec, TensorSpec

RANGE_SLACK: Final = 0.01  # of the range's span: samples this far outside still read as inside (rounding)


@dataclass(frozen=True)
class Sample(Prepared):
    """One row of an `.npz` of samples (`samples.npz[2]`); no pixels of its own, the feeds hold its values."""

    def to_dict(self) -> dict[str, Any]:
        return {"sample": self.name}


@dataclass(frozen=True)
class InputRange:
    """One input's value range as predict knows it, where it came from, and the span of the samples fed."""

    name: str
    shape: tuple[int | None, ...]
    value_range: tuple[float, float] | None
    source: str
    span: tuple[float, float]

    def outside(self) -> bool:
        if self.value_range is None:
            return False
        lo, hi = self.value_range
        slack = RANGE_SLACK * (hi - lo)
        return self.span[0] < lo - slack or self.span[1] > hi + slack

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "value_range": None if self.value_range is None else list(self.value_range),
            "value_range_from": self.source,
            "samples_span": list(self.span),
        }

    def describe(self) -> str:
        if self.value_range is None:
            return f"{self.name} (no range known)"
        lo, hi = self.value_range
        return f"{self.name} {lo:g}..{hi:g} ({self.source})"


@dataclass(frozen=True)
class SampleFeeds:
    """What `read_samples` found: one float32 array per input name, a `Sample` per row, each input's range."""

    feeds: dict[str, np.ndarray]
    rows: tuple[Sample, ...]
    ranges: tuple[InputRange, ...]

    def notes(self) -> tuple[str, ...]:
        notes = [
            f"{r.name}: the samples span {r.span[0]:.4g}..{r.span[1]:.4g}, outside its value range "
            f"{r.value_range[0]:g}..{r.value_range[1]:g} ({r.source}); an int8 input clips them"
            for r in self.ranges
            if r.outside() and r.value_range is not None
        ]
        if any(r.value_range is None for r in self.ranges):
            unknown = ", ".join(r.name for r in self.ranges if r.value_range is None)
            notes.append(
                f"no value range known for {unknown} (a bare model file): samples fed as they are; "
                "pass --value-range LO,HI to check them"
            )
        return tuple(notes)

    def describe(self) -> str:
        return "samples fed as they are; value ranges " + ", ".join(r.describe() for r in self.ranges)


def read_samples(
    files: list[Path],
    spec: ModelSpec,
    model: Path,
    *,
    declared: bool,
    value_range: tuple[float, float] | None,
) -> SampleFeeds:
    """The samples in `files` (`.npz`, one array per input name) as feeds of `spec`'s inputs, rows of every file
    in order.

    Raises:
        PredictInputError: one line: a file that is not an `.npz`, a missing or extra name, a shape that is not
            the input's, non-numeric values, or arrays of different sample counts.
    """
    parts: dict[str, list[np.ndarray]] = {t.name: [] for t in spec.inputs}
    rows: list[Sample] = []
    for path in files:
        arrays = _load_npz(path, spec, model)
        count = _count(arrays, path)
        for tensor in spec.inputs:
            parts[tensor.name].append(arrays[tensor.name])
        rows.extend(Sample(f"{path.name}[{i}]", np.zeros((0,), np.float32), (0, 0)) for i in range(count))
    feeds = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    ranges = tuple(
        InputRange(t.name, t.shape, *_range(t, declared, value_range), _span(feeds[t.name])) for t in spec.inputs
    )
    return SampleFeeds(feeds, tuple(rows), ranges)


def _load_npz(path: Path, spec: ModelSpec, model: Path) -> dict[str, np.ndarray]:
    """The arrays of one `.npz`, each float32 with the batch axis, checked against the model's inputs."""
    names = ", ".join(spec.input_names)
    how = f"predict feeds {model.name}'s {len(spec.inputs)} inputs ({names}) from an .npz with one array per input name"
    if not path.is_file():
        raise PredictInputError(f"{path} does not exist; {how}.")
    if not zipfile.is_zipfile(path):
        raise PredictInputError(
            f"{path.name} is not an .npz; {how}, e.g. numpy.savez('samples.npz', "
            + ", ".join(f"{n}=..." for n in spec.input_names)
            + ")."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            raw = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise PredictInputError(f"cannot read {path.name} as an .npz ({exc}); {how}.") from exc
    missing = [n for n in spec.input_names if n not in raw]
    extra = sorted(k for k in raw if k not in spec.input_names)
    if missing or extra:
        what = "; ".join(
            p
            for p in (f"lacks {', '.join(missing)}" if missing else "", f"has {', '.join(extra)}" if extra else "")
            if p
        )
        raise PredictInputError(f"{path.name} {what}; {model.name} takes {names} (one array each, keyed by name).")
    return {t.name: _batch(raw[t.name], t, path) for t in spec.inputs}


def _batch(x: np.ndarray, tensor: TensorSpec, path: Path) -> np.ndarray:
    """One input's array with the batch axis: (N, *tail) as is, or one sample of shape `tail` gets N = 1."""
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise PredictInputError(f"{path.name}'s {tensor.name} has dtype {x.dtype}; give numbers.")
    tail = tensor.shape[1:]

    def fits(shape: tuple[int, ...]) -> bool:
        return len(shape) == len(tail) and all(e is None or e == s for e, s in zip(tail, shape, strict=True))

    if fits(x.shape[1:]) and x.shape[0] > 0:
        return x.astype(np.float32)
    if fits(x.shape):
        return x.astype(np.float32)[np.newaxis]
    dims = ", ".join("?" if d is None else str(d) for d in tail)
    one = f"({dims},)" if len(tail) == 1 else f"({dims})"
    raise PredictInputError(
        f"{path.name}'s {tensor.name} has shape {tuple(x.shape)}; the model's input {tensor.name} takes "
        f"{tensor.shape_text()}: give {one} for one sample or (N, {dims}) for N of them."
    )


def _count(arrays: dict[str, np.ndarray], path: Path) -> int:
    counts = {name: len(x) for name, x in arrays.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name} {n}" for name, n in counts.items())
        raise PredictInputError(
            f"{path.name}'s arrays hold different numbers of samples ({listed}); give every input the same N."
        )
    return next(iter(counts.values()))


def _range(
    tensor: TensorSpec, declared: bool, value_range: tuple[float, float] | None
) -> tuple[tuple[float, float] | None, str]:
    """An input's value range and its source, in the one-input path's order (see `model_input.plan_input`)."""
    from toolkit.inputs.model_input import quantized_range

    if value_range is not None:
        return value_range, "--value-range"
    if declared and tensor.value_range is not None:
        return tensor.value_range, "model spec"
    quantized = quantized_range(tensor)
    return (quantized, "input quantization") if quantized is not None else (None, "unknown")


def _span(x: np.ndarray) -> tuple[float, float]:
    return round(float(x.min()), 6), round(float(x.max()), 6)
