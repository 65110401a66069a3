"""ModelSpec: one typed description of a model's input and output that every step reads.

A spec says what a model takes (tensor name, shape with None for the batch or any dynamic
dimension, dtype, layout, the float value range callers feed and, for integer I/O, how the
integers map to it) and what it returns (shape, dtype, quantization, kind, class count and names).
It is built from an exported file by its runner (`Runner.model_spec()`), from a Keras model object
without importing TensorFlow (`spec_from_keras`), or from a stored dict (`ModelSpec.from_dict`).

Callers always deal in float32 values in `value_range`; a runner (de)quantizes integer I/O with
the tensors' scale and zero point (real = (q - zero_point) * scale).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Optional

from runtimes.errors import EdgekitError

if TYPE_CHECKING:
    import numpy as np

SPEC_VERSION = 1
# Element types a model's input or output may have. Integer I/O without quantization parameters is
# taken as scale 1, zero point 0 (e.g. a uint8 model fed 0..255).
DTYPES = ("float32", "int8", "uint8", "int16")
INTEGER_DTYPES = ("int8", "uint8", "int16")
# Layout by input rank: images (N, H, W, C) or feature vectors (N, C). An ONNX source may also take
# channels-first images (N, C, H, W): `RANK_LAYOUTS` lists every layout a rank may have.
LAYOUTS = {4: "NHWC", 2: "NC"}
RANK_LAYOUTS = {4: ("NHWC", "NCHW"), 2: ("NC",)}
OUTPUT_KINDS = ("probabilities", "logits", "values")
# Optional, not `int | None`: this alias is evaluated at import, and 32-bit boards run Python 3.9.
Shape = tuple[Optional[int], ...]


class SpecError(EdgekitError):
    """A model spec (or its stored dict) is malformed or does not fit edgekit."""


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the runtime declares it.

    `shape` uses None for a dynamic dimension. `scale`/`zero_point` are set for quantized tensors
    (real = (q - zero_point) * scale).
    """

    name: str
    shape: Shape
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        """True when the tensor holds integers that stand for float values."""
        return self.dtype in INTEGER_DTYPES

    def to_dict(self) -> dict[str, object]:
        """JSON-safe dict with stable keys: name, shape, dtype, scale, zero_point."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], what: str = "tensor") -> TensorSpec:
        """The inverse of `to_dict`.

        Raises:
            SpecError: a missing or mistyped key, on one line.
        """
        if not isinstance(data, Mapping):
            raise SpecError(f"model spec {what} must be an object, got {type(data).__name__}.")
        try:
            shape = tuple(_dim(d) for d in data["shape"])
            scale, zero_point = data.get("scale"), data.get("zero_point")
            return cls(
                name=_text(data["name"], f"{what}.name"),
                shape=shape,
                dtype=_text(data["dtype"], f"{what}.dtype"),
                scale=None if scale is None else _number(scale, f"{what}.scale"),
                zero_point=None if zero_point is None else _whole(zero_point, f"{what}.zero_point"),
            )
        except KeyError as exc:
            raise SpecError(f"model spec {what} lacks {exc.args[0]!r}.") from None
        except TypeError:
            raise SpecError(f"model spec {what}.shape must be a list of sizes or null.") from None


def _dim(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"model spec shape holds {value!r}; expected sizes >= 1 or null for a dynamic dimension.")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise SpecError(f"model spec {what} must be a string, got {value!r}.")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"model spec {what} must be a finite number, got {value!r}.")
    return float(value)


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"model spec {what} must be a whole number, got {value!r}.")
    return value


def shape_text(shape: Sequence[int | None]) -> str:
    """`(N, 28, 28, 1)`: a shape as messages show it, N for the batch (or any dynamic) dimension."""
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


@dataclass(frozen=True)
class ModelSpec:
    """What a model takes and returns.

    Attributes:
        input: the input tensor: rank 4 (N, H, W, C) images or rank 2 (N, C) vectors.
        output: the output tensor, rank 2 (N, classes or values).
        layout: "NHWC" (rank 4) or "NC" (rank 2).
        value_range: the float values the model expects, e.g. (0.0, 1.0) for pixels / 255 or
            (0.0, 255.0) for raw bytes; integer inputs map to it through `input.scale`/`zero_point`.
        output_kind: "probabilities" (softmax), "logits" or "values".
        class_names: one name per output class, or None.
    """

    input: TensorSpec
    output: TensorSpec
    layout: str = "NHWC"
    value_range: tuple[float, float] = (0.0, 1.0)
    output_kind: str = "probabilities"
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise SpecError(f"model spec: {problem}")

    def _problem(self) -> str | None:
        rank = len(self.input.shape)
        if rank not in LAYOUTS:
            shape = shape_text(self.input.shape)
            return f"input {shape} has rank {rank}; expected (N, H, W, C) images or (N, C) vectors."
        if self.layout not in RANK_LAYOUTS[rank]:
            shape = shape_text(self.input.shape)
            return f"layout {self.layout!r} does not fit input {shape}; expected {' or '.join(RANK_LAYOUTS[rank])}."
        if len(self.output.shape) != 2:
            return f"output {shape_text(self.output.shape)} has rank {len(self.output.shape)}; expected (N, classes)."
        for what, tensor in (("input", self.input), ("output", self.output)):
            if tensor.dtype not in DTYPES:
                return f"{what} dtype {tensor.dtype!r} is not supported; expected one of {', '.join(DTYPES)}."
            if tensor.scale is not None and not tensor.scale > 0:
                return f"{what} scale {tensor.scale} must be above 0."
        lo, hi = self.value_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            return f"value range {lo}..{hi} must be two finite numbers, low < high."
        if self.output_kind not in OUTPUT_KINDS:
            return f"output kind {self.output_kind!r} is unknown; expected one of {', '.join(OUTPUT_KINDS)}."
        classes = self.output.shape[1]
        if self.class_names is not None and classes is not None and len(self.class_names) != classes:
            return f"{len(self.class_names)} class names for {classes} outputs."
        return None

    # -- views ------------------------------------------------------------------------------------
    @property
    def input_tail(self) -> Shape:
        """The input shape without the batch dimension, e.g. (28, 28, 1)."""
        return self.input.shape[1:]

    @property
    def num_classes(self) -> int | None:
        """Output width (classes for probabilities/logits); None when the model leaves it dynamic."""
        return self.output.shape[1]

    def input_text(self) -> str:
        """The expected batch shape, e.g. `(N, 28, 28, 1)`."""
        return shape_text((None, *self.input_tail))

    def output_text(self) -> str:
        """The returned batch shape, e.g. `(N, 10)`."""
        return shape_text((None, *self.output.shape[1:]))

    def describe(self) -> str:
        """One short line, e.g. `float32 (N, 28, 28, 1) NHWC 0..1 -> probabilities (N, 10)`."""
        lo, hi = self.value_range
        out_dtype = "" if self.output.dtype == "float32" else f" {self.output.dtype}"
        return (
            f"{self.input.dtype} {self.input_text()} {self.layout} {lo:g}..{hi:g} -> "
            f"{self.output_kind}{out_dtype} {self.output_text()}"
        )

    def sample_shape(self, batch: int) -> tuple[int, ...]:
        """A concrete input shape for `batch` samples; a dynamic non-batch dimension becomes 1."""
        if batch < 1:
            raise ValueError(f"batch must be 1 or more, got {batch}.")
        return (batch, *(d or 1 for d in self.input_tail))

    def sample_batch(self, batch: int = 1, seed: int = 0) -> np.ndarray:
        """Random float32 inputs spread over `value_range`, for smoke tests and timing."""
        import numpy as np  # here: reading a spec (run documents, help texts) needs no numpy

        lo, hi = self.value_range
        x = np.random.default_rng(seed).random(self.sample_shape(batch), dtype=np.float32)
        x *= np.float32(hi - lo)
        x += np.float32(lo)
        return x

    # -- comparison -------------------------------------------------------------------------------
    def mismatch(self, expected: ModelSpec) -> str | None:
        """How this (a file's) spec departs from `expected` in input shape or output width, or None.

        Names, dtypes and quantization are not compared: an int8 export of a float model is expected
        to differ there. Dynamic dimensions on either side match anything.
        """

        def differs(a: Shape, b: Shape) -> bool:
            if len(a) != len(b):
                return True
            return any(x is not None and y is not None and x != y for x, y in zip(a, b))  # lengths checked above

        if differs(self.input_tail, expected.input_tail):
            return f"takes input {self.input_text()}; expected {expected.input_text()} ({expected.describe()})"
        if differs(self.output.shape[1:], expected.output.shape[1:]):
            return f"outputs {self.output_text()}; expected {expected.output_text()} ({expected.describe()})"
        return None

    def with_options(
        self,
        *,
        value_range: tuple[float, float] | None = None,
        output_kind: str | None = None,
        class_names: Sequence[str] | None = None,
    ) -> ModelSpec:
        """A copy with the caller-side facts a model file cannot tell (range, kind, class names)."""
        return replace(
            self,
            value_range=self.value_range if value_range is None else (float(value_range[0]), float(value_range[1])),
            output_kind=self.output_kind if output_kind is None else output_kind,
            class_names=self.class_names if class_names is None else tuple(class_names),
        )

    # -- storage ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, object]:
        """JSON-safe dict with stable keys (what manifest.json stores)."""
        return {
            "spec_version": SPEC_VERSION,
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "layout": self.layout,
            "value_range": [self.value_range[0], self.value_range[1]],
            "output_kind": self.output_kind,
            "num_classes": self.num_classes,
            "class_names": None if self.class_names is None else list(self.class_names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """The inverse of `to_dict`.

        Raises:
            SpecError: a missing, mistyped or inconsistent field, on one line.
        """
        if not isinstance(data, Mapping):
            raise SpecError(f"model spec must be an object, got {type(data).__name__}.")
        version = data.get("spec_version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise SpecError(f"model spec version {version!r} is not supported; this edgekit reads {SPEC_VERSION}.")
        try:
            inp = TensorSpec.from_dict(data["input"], "input")
            out = TensorSpec.from_dict(data["output"], "output")
            raw_range = data.get("value_range", [0.0, 1.0])
            if not isinstance(raw_range, Sequence) or isinstance(raw_range, str) or len(raw_range) != 2:
                raise SpecError(f"model spec value_range must be [low, high], got {raw_range!r}.")
            names = data.get("class_names")
            if names is not None and (
                not isinstance(names, Sequence) or isinstance(names, str) or not all(isinstance(n, str) for n in names)
            ):
                raise SpecError("model spec class_names must be a list of strings or null.")
            spec = cls(
                input=inp,
                output=out,
                layout=_text(data.get("layout", LAYOUTS.get(len(inp.shape), "NHWC")), "layout"),
                value_range=(_number(raw_range[0], "value_range"), _number(raw_range[1], "value_range")),
                output_kind=_text(data.get("output_kind", "probabilities"), "output_kind"),
                class_names=None if names is None else tuple(names),
            )
        except KeyError as exc:
            raise SpecError(f"model spec lacks {exc.args[0]!r}.") from None
        stated = data.get("num_classes")
        if stated is not None and spec.num_classes is not None and stated != spec.num_classes:
            raise SpecError(f"model spec num_classes {stated!r} does not match output {spec.output_text()}.")
        return spec


def spec_from_tensors(
    inp: TensorSpec,
    out: TensorSpec,
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    output_kind: str = "probabilities",
    class_names: Sequence[str] | None = None,
    layout: str | None = None,
) -> ModelSpec:
    """A spec from a runtime's tensor details; the layout follows from the input rank unless given (NCHW).

    Raises:
        SpecError: the tensors do not fit (e.g. rank-3 input, unsupported dtype).
    """
    rank = len(inp.shape)
    return ModelSpec(
        input=inp,
        output=out,
        layout=layout or LAYOUTS.get(rank, f"rank {rank}"),
        value_range=(float(value_range[0]), float(value_range[1])),
        output_kind=output_kind,
        class_names=None if class_names is None else tuple(class_names),
    )


def _keras_shape(value: Any, what: str) -> Shape:
    if isinstance(value, list) or (isinstance(value, tuple) and value and isinstance(value[0], (tuple, list))):
        raise SpecError(f"the Keras model has several {what}s; edgekit runs single-input, single-output models.")
    return tuple(None if d is None else int(d) for d in value)


def _last_activation(model: Any) -> str | None:
    layers = getattr(model, "layers", None) or []
    if not layers:
        return None
    last = layers[-1]
    if type(last).__name__ == "Softmax":
        return "softmax"
    act = getattr(last, "activation", None)
    if act is None:
        return None
    return str(getattr(act, "__name__", act)).lower()


def spec_from_keras(
    model: Any,
    value_range: tuple[float, float] = (0.0, 1.0),
    class_names: Sequence[str] | None = None,
    output_kind: str | None = None,
    *,
    input_name: str = "input",
    output_name: str = "output",
) -> ModelSpec:
    """The spec of a built Keras model, read by duck typing (TensorFlow is not imported).

    Args:
        model: an object with `input_shape`, `output_shape` and `layers` (a Keras model).
        value_range: the float values the model was trained on.
        class_names: one name per output, or None.
        output_kind: "probabilities", "logits" or "values"; None: "probabilities" when the last
            layer's activation is softmax, else "logits".
        input_name: the input's name in the spec (exports name it `input`).
        output_name: the output's name in the spec.

    Raises:
        SpecError: several inputs/outputs, or shapes edgekit cannot run.
    """
    try:
        in_shape, out_shape = model.input_shape, model.output_shape
    except AttributeError as exc:
        missing = exc.name or "input_shape"
        raise SpecError(f"{type(model).__name__} is not a built Keras model (no {missing}).") from None
    inputs = getattr(model, "inputs", None) or []
    dtype = str(getattr(inputs[0], "dtype", "float32")) if len(inputs) == 1 else "float32"
    dtype = dtype.removeprefix("<dtype: '").removesuffix("'>")  # tf.DType's repr, if given one
    if output_kind is None:
        output_kind = "probabilities" if _last_activation(model) == "softmax" else "logits"
    return spec_from_tensors(
        TensorSpec(input_name, _keras_shape(in_shape, "input"), dtype),
        TensorSpec(output_name, _keras_shape(out_shape, "output"), "float32"),
        value_range=value_range,
        output_kind=output_kind,
        class_names=class_names,
    )
