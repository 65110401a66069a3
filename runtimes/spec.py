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

SPEC_VERSION = 2
READ_VERSIONS = (1, 2)
# Element types a model's input or output may have. Integer I/O without quantization parameters is
# taken as scale 1, zero point 0 (e.g. a uint8 model fed 0..255). class_indices outputs are int32/int64.
DTYPES = ("float32", "int8", "uint8", "int16")
INTEGER_DTYPES = ("int8", "uint8", "int16")
INDEX_DTYPES = ("int32", "int64")
# Layout by input rank: images (N, H, W, C) or feature vectors (N, C). An ONNX source may also take
# channels-first images (N, C, H, W): `RANK_LAYOUTS` lists every layout a rank may have.
LAYOUTS = {4: "NHWC", 2: "NC"}
RANK_LAYOUTS = {4: ("NHWC", "NCHW"), 2: ("NC",)}
OUTPUT_KINDS = ("probabilities", "logits", "values", "boxes", "class_indices")
# Kinds whose output is (N, K): one score or value per class/column.
SCORE_KINDS = ("probabilities", "logits", "values")
# Each box is (x_min, y_min, x_max, y_max) in the units of the model's targets; outputs (N, 4) or (N, K, 4).
BOX_FORMAT = "xyxy"
# Optional, not `int | None`: this alias is evaluated at import, and 32-bit boards run Python 3.9.
Shape = tuple[Optional[int], ...]


class SpecError(EdgekitError):
    """A model spec (or its stored dict) is malformed or does not fit edgekit."""


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the runtime declares it.

    `shape` uses None for a dynamic dimension. `scale`/`zero_point` are set for quantized tensors
    (real = (q - zero_point) * scale). The caller-side facts a file cannot tell are None until a
    `ModelSpec` fills them: `layout` and `value_range` for inputs, `kind` and `class_names` for outputs.
    """

    name: str
    shape: Shape
    dtype: str
    scale: float | None = None
    zero_point: int | None = None
    layout: str | None = None
    value_range: tuple[float, float] | None = None
    kind: str | None = None
    class_names: tuple[str, ...] | None = None

    @property
    def quantized(self) -> bool:
        """True when the tensor holds integers that stand for float values."""
        return self.dtype in INTEGER_DTYPES

    def to_dict(self) -> dict[str, object]:
        """JSON-safe dict: name, shape, dtype, scale, zero_point, and whichever of layout, value_range,
        kind and class_names are set (a runtime's own tensor details set none of them)."""
        data: dict[str, object] = {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }
        if self.layout is not None:
            data["layout"] = self.layout
        if self.value_range is not None:
            data["value_range"] = [self.value_range[0], self.value_range[1]]
        if self.kind is not None:
            data["kind"] = self.kind
        if self.class_names is not None:
            data["class_names"] = list(self.class_names)
        return data

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
            layout, kind = data.get("layout"), data.get("kind")
            raw_range, names = data.get("value_range"), data.get("class_names")
            return cls(
                name=_text(data["name"], f"{what}.name"),
                shape=shape,
                dtype=_text(data["dtype"], f"{what}.dtype"),
                scale=None if scale is None else _number(scale, f"{what}.scale"),
                zero_point=None if zero_point is None else _whole(zero_point, f"{what}.zero_point"),
                layout=None if layout is None else _text(layout, f"{what}.layout"),
                value_range=None if raw_range is None else _range(raw_range, f"{what}.value_range"),
                kind=None if kind is None else _text(kind, f"{what}.kind"),
                class_names=None if names is None else _names(names, f"{what}.class_names"),
            )
        except KeyError as exc:
            raise SpecError(f"model spec {what} lacks {exc.args[0]!r}.") from None
        except TypeError:
            raise SpecError(f"model spec {what}.shape must be a list of sizes or null.") from None

    def shape_text(self) -> str:
        """The batch shape, e.g. `(N, 28, 28, 1)`."""
        return shape_text((None, *self.shape[1:]))


def _range(value: Any, what: str) -> tuple[float, float]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise SpecError(f"model spec {what} must be [low, high], got {value!r}.")
    return _number(value[0], what), _number(value[1], what)


def _names(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not all(isinstance(n, str) for n in value):
        raise SpecError(f"model spec {what} must be a list of strings or null.")
    return tuple(value)


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


@dataclass(frozen=True, init=False)
class ModelSpec:
    """What a model takes and returns: every input and output, in the model's order, names unique.

    Each input carries its layout ("NHWC"/"NCHW" for rank 4, "NC" for rank 2) and the float value range
    callers feed (integer inputs map to it through `scale`/`zero_point`); each output its kind (one of
    `OUTPUT_KINDS`) and optional class names. Build it from lists (`ModelSpec(inputs=..., outputs=...)`)
    or, for a single-input, single-output model, as before: `ModelSpec(input, output, layout=...,
    value_range=..., output_kind=..., class_names=...)`. Those keywords (and the `.input`, `.output`,
    `.layout`, ... views) refer to the first input and the first output.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def __init__(
        self,
        input: TensorSpec | None = None,
        output: TensorSpec | None = None,
        layout: str | None = None,
        value_range: Sequence[float] | None = None,
        output_kind: str | None = None,
        class_names: Sequence[str] | None = None,
        *,
        inputs: Sequence[TensorSpec] | None = None,
        outputs: Sequence[TensorSpec] | None = None,
    ) -> None:
        ins = _replace_first(inputs, input, "input")
        outs = _replace_first(outputs, output, "output")
        # The first tensors take the single-view keywords; every tensor gets defaults for what is unset.
        first_in = ins[0]
        ins[0] = replace(
            first_in,
            layout=layout or first_in.layout,
            value_range=first_in.value_range if value_range is None else (float(value_range[0]), float(value_range[1])),
        )
        first_out = outs[0]
        outs[0] = replace(
            first_out,
            kind=output_kind or first_out.kind,
            class_names=first_out.class_names if class_names is None else tuple(class_names),
        )
        object.__setattr__(self, "inputs", tuple(_input_defaults(t) for t in ins))
        object.__setattr__(self, "outputs", tuple(replace(t, kind=t.kind or "probabilities") for t in outs))
        problem = self._problem()
        if problem:
            raise SpecError(f"model spec: {problem}")

    def _problem(self) -> str | None:
        names = [t.name for t in (*self.inputs, *self.outputs)]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            return f"tensor name(s) {', '.join(twice)} used more than once; inputs and outputs need unique names."
        for i, tensor in enumerate(self.inputs):
            problem = _input_problem(tensor, self._label("input", i))
            if problem:
                return problem
        for i, tensor in enumerate(self.outputs):
            problem = _output_problem(tensor, self._label("output", i))
            if problem:
                return problem
        return None

    def _label(self, what: str, index: int) -> str:
        several = len(self.inputs if what == "input" else self.outputs) > 1
        return f"{what} {(self.inputs if what == 'input' else self.outputs)[index].name!r}" if several else what

    # -- single-tensor views (the first input and output) -----------------------------------------
    @property
    def input(self) -> TensorSpec:
        """The first input (the only one of a single-input model)."""
        return self.inputs[0]

    @property
    def output(self) -> TensorSpec:
        """The first output (the only one of a single-output model)."""
        return self.outputs[0]

    @property
    def layout(self) -> str:
        """The first input's layout: "NHWC", "NCHW" or "NC"."""
        return self.inputs[0].layout or LAYOUTS.get(len(self.inputs[0].shape), "NHWC")

    @property
    def value_range(self) -> tuple[float, float]:
        """The float values the first input expects, e.g. (0.0, 1.0) for pixels / 255."""
        return self.inputs[0].value_range or (0.0, 1.0)

    @property
    def output_kind(self) -> str:
        """The first output's kind: one of `OUTPUT_KINDS`."""
        return self.outputs[0].kind or "probabilities"

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """One name per class of the first output, or None."""
        return self.outputs[0].class_names

    @property
    def is_single(self) -> bool:
        """True for one input and one output (what every step handled before several tensors)."""
        return len(self.inputs) == 1 and len(self.outputs) == 1

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def tensors_text(self) -> str:
        """`2 inputs (image, features) and 1 output (digit)`: the tensors as refusals name them."""

        def part(tensors: tuple[TensorSpec, ...], word: str) -> str:
            return f"{len(tensors)} {word}{'' if len(tensors) == 1 else 's'} ({', '.join(t.name for t in tensors)})"

        return f"{part(self.inputs, 'input')} and {part(self.outputs, 'output')}"

    def input_named(self, name: str) -> TensorSpec:
        """The input called `name`.

        Raises:
            SpecError: no such input (the message lists the model's inputs).
        """
        for tensor in self.inputs:
            if tensor.name == name:
                return tensor
        raise SpecError(f"the model has no input {name!r}; its inputs are {', '.join(self.input_names)}.")

    def output_named(self, name: str) -> TensorSpec:
        """The output called `name`.

        Raises:
            SpecError: no such output (the message lists the model's outputs).
        """
        for tensor in self.outputs:
            if tensor.name == name:
                return tensor
        raise SpecError(f"the model has no output {name!r}; its outputs are {', '.join(self.output_names)}.")

    @property
    def input_tail(self) -> Shape:
        """The first input's shape without the batch dimension, e.g. (28, 28, 1)."""
        return self.input.shape[1:]

    @property
    def num_classes(self) -> int | None:
        """First output's width (classes for probabilities/logits); None when dynamic or rank 1."""
        return self.output.shape[1] if len(self.output.shape) > 1 else None

    def input_text(self) -> str:
        """The first input's batch shape, e.g. `(N, 28, 28, 1)`."""
        return shape_text((None, *self.input_tail))

    def output_text(self) -> str:
        """The first output's batch shape, e.g. `(N, 10)`."""
        return shape_text((None, *self.output.shape[1:]))

    def describe(self) -> str:
        """One short line, e.g. `float32 (N, 28, 28, 1) NHWC 0..1 -> probabilities (N, 10)`; with several
        tensors each is named: `image float32 (N, 28, 28, 1) NHWC 0..1 + ... -> digit probabilities (N, 10) + ...`."""
        named = not self.is_single

        def side_in(t: TensorSpec) -> str:
            lo, hi = t.value_range or (0.0, 1.0)
            return f"{t.name + ' ' if named else ''}{t.dtype} {t.shape_text()} {t.layout} {lo:g}..{hi:g}"

        def side_out(t: TensorSpec) -> str:
            dtype = "" if t.dtype == "float32" else f" {t.dtype}"
            return f"{t.name + ' ' if named else ''}{t.kind}{dtype} {t.shape_text()}"

        return " + ".join(map(side_in, self.inputs)) + " -> " + " + ".join(map(side_out, self.outputs))

    def sample_shape(self, batch: int, name: str | None = None) -> tuple[int, ...]:
        """A concrete shape for `batch` samples of an input (the first unless named); a dynamic
        non-batch dimension becomes 1."""
        if batch < 1:
            raise ValueError(f"batch must be 1 or more, got {batch}.")
        tensor = self.input if name is None else self.input_named(name)
        return (batch, *(d or 1 for d in tensor.shape[1:]))

    def sample_batch(self, batch: int = 1, seed: int = 0, name: str | None = None) -> np.ndarray:
        """Random float32 values spread over an input's value range (the first input unless named)."""
        import numpy as np  # here: reading a spec (run documents, help texts) needs no numpy

        tensor = self.input if name is None else self.input_named(name)
        lo, hi = tensor.value_range or (0.0, 1.0)
        x = np.random.default_rng(seed).random(self.sample_shape(batch, tensor.name), dtype=np.float32)
        x *= np.float32(hi - lo)
        x += np.float32(lo)
        return x

    def sample_feeds(self, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
        """Random float32 feeds for every input (keyed by name), for smoke tests and timing."""
        return {t.name: self.sample_batch(batch, seed + i, t.name) for i, t in enumerate(self.inputs)}

    # -- comparison -------------------------------------------------------------------------------
    def mismatch(self, expected: ModelSpec) -> str | None:
        """How this (a file's) spec departs from `expected` in tensor count, input shapes or output
        shapes, or None.

        Tensors are paired by name when both sides use the same names, else by position. Names, dtypes
        and quantization are not compared otherwise: an int8 export of a float model is expected to
        differ there. Dynamic dimensions on either side match anything.
        """
        for what, mine, theirs in (("input", self.inputs, expected.inputs), ("output", self.outputs, expected.outputs)):
            if len(mine) != len(theirs):
                return (
                    f"has {len(mine)} {what}s ({', '.join(t.name for t in mine)}); expected {len(theirs)} "
                    f"({', '.join(t.name for t in theirs)})"
                )
            if {t.name for t in mine} == {t.name for t in theirs}:
                order = {t.name: i for i, t in enumerate(mine)}
                mine = tuple(mine[order[t.name]] for t in theirs)
            for a, b in zip(mine, theirs):  # lengths checked above
                if _differs(a.shape, b.shape):
                    verb = "takes input" if what == "input" else "outputs"
                    label = f" {b.name}" if len(theirs) > 1 else ""
                    return f"{verb}{label} {a.shape_text()}; expected {b.shape_text()} ({expected.describe()})"
        return None

    def with_options(
        self,
        *,
        value_range: tuple[float, float] | None = None,
        output_kind: str | None = None,
        class_names: Sequence[str] | None = None,
    ) -> ModelSpec:
        """A copy with the caller-side facts a model file cannot tell (range, kind, class names) for the
        first input and output."""
        return ModelSpec(
            inputs=self.inputs,
            outputs=self.outputs,
            value_range=value_range,
            output_kind=output_kind,
            class_names=class_names,
        )

    def with_tensors(
        self, inputs: Sequence[TensorSpec] | None = None, outputs: Sequence[TensorSpec] | None = None
    ) -> ModelSpec:
        """A copy with other inputs and/or outputs (each checked again)."""
        return ModelSpec(
            inputs=self.inputs if inputs is None else inputs, outputs=self.outputs if outputs is None else outputs
        )

    # -- storage ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, object]:
        """JSON-safe dict with stable keys (what manifest.json stores).

        Several inputs or outputs: spec_version 2 with "inputs" and "outputs" lists. A single-input,
        single-output spec keeps the version-1 form byte for byte (input, output, layout, value_range,
        output_kind, num_classes, class_names), so the files of such runs (and the bundle readers on
        boards) stay as they were; `from_dict` reads both.
        """
        if not self.is_single:
            return {
                "spec_version": SPEC_VERSION,
                "inputs": [t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs],
            }
        return {
            "spec_version": 1,
            "input": _plain(self.input).to_dict(),
            "output": _plain(self.output).to_dict(),
            "layout": self.layout,
            "value_range": [self.value_range[0], self.value_range[1]],
            "output_kind": self.output_kind,
            "num_classes": self.num_classes,
            "class_names": None if self.class_names is None else list(self.class_names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """The inverse of `to_dict`; also reads version-1 dicts (one input, one output).

        Raises:
            SpecError: a missing, mistyped or inconsistent field, on one line.
        """
        if not isinstance(data, Mapping):
            raise SpecError(f"model spec must be an object, got {type(data).__name__}.")
        version = data.get("spec_version", 1)
        if version not in READ_VERSIONS:
            raise SpecError(
                f"model spec version {version!r} is not supported; this edgekit reads "
                f"{' and '.join(map(str, READ_VERSIONS))}."
            )
        spec = _from_v1(cls, data) if version == 1 else _from_v2(cls, data)
        stated = data.get("num_classes")
        if stated is not None and spec.num_classes is not None and stated != spec.num_classes:
            raise SpecError(f"model spec num_classes {stated!r} does not match output {spec.output_text()}.")
        return spec


def _from_v1(cls: type[ModelSpec], data: Mapping[str, Any]) -> ModelSpec:
    try:
        inp = TensorSpec.from_dict(data["input"], "input")
        out = TensorSpec.from_dict(data["output"], "output")
    except KeyError as exc:
        raise SpecError(f"model spec lacks {exc.args[0]!r}.") from None
    names = data.get("class_names")
    return cls(
        input=inp,
        output=out,
        layout=_text(data.get("layout", LAYOUTS.get(len(inp.shape), "NHWC")), "layout"),
        value_range=_range(data.get("value_range", [0.0, 1.0]), "value_range"),
        output_kind=_text(data.get("output_kind", "probabilities"), "output_kind"),
        class_names=None if names is None else _names(names, "class_names"),
    )


def _from_v2(cls: type[ModelSpec], data: Mapping[str, Any]) -> ModelSpec:
    tensors: dict[str, list[TensorSpec]] = {}
    for key in ("inputs", "outputs"):
        raw = data.get(key)
        if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
            raise SpecError(f"model spec {key} must be a non-empty list of tensors, got {raw!r}.")
        tensors[key] = [TensorSpec.from_dict(t, f"{key}[{i}]") for i, t in enumerate(raw)]
    return cls(inputs=tensors["inputs"], outputs=tensors["outputs"])


def _replace_first(tensors: Sequence[TensorSpec] | None, first: TensorSpec | None, what: str) -> list[TensorSpec]:
    if tensors is None:
        if first is None:
            raise SpecError(f"model spec needs at least one {what}.")
        return [first]
    if not tensors:
        raise SpecError(f"model spec needs at least one {what}.")
    # `dataclasses.replace(spec, output=...)` passes both: the single keyword replaces the first tensor.
    return [first, *tensors[1:]] if first is not None else list(tensors)


def _input_defaults(t: TensorSpec) -> TensorSpec:
    return replace(
        t,
        layout=t.layout or LAYOUTS.get(len(t.shape), f"rank {len(t.shape)}"),
        value_range=t.value_range or (0.0, 1.0),
    )


def _plain(t: TensorSpec) -> TensorSpec:
    """The tensor without the caller-side facts (version-1 dicts keep those at the spec level)."""
    return replace(t, layout=None, value_range=None, kind=None, class_names=None)


def _differs(a: Shape, b: Shape) -> bool:
    if len(a) != len(b):
        return True
    return any(x is not None and y is not None and x != y for x, y in zip(a[1:], b[1:]))  # lengths checked above


def _input_problem(t: TensorSpec, label: str) -> str | None:
    rank = len(t.shape)
    if rank not in LAYOUTS:
        return f"{label} {t.shape_text()} has rank {rank}; expected (N, H, W, C) images or (N, C) vectors."
    if t.layout not in RANK_LAYOUTS[rank]:
        return f"layout {t.layout!r} does not fit {label} {t.shape_text()}; expected {' or '.join(RANK_LAYOUTS[rank])}."
    problem = _dtype_problem(t, label, DTYPES)
    if problem:
        return problem
    lo, hi = t.value_range or (0.0, 1.0)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        return f"value range {lo}..{hi} must be two finite numbers, low < high."
    return None


def _output_problem(t: TensorSpec, label: str) -> str | None:
    kind, rank, shape = t.kind, len(t.shape), t.shape_text()
    if kind not in OUTPUT_KINDS:
        return f"output kind {kind!r} is unknown; expected one of {', '.join(OUTPUT_KINDS)}."
    if kind in SCORE_KINDS and rank != 2:
        return f"{label} {shape} has rank {rank}; expected (N, classes) for {kind}."
    if kind == "boxes" and (rank not in (2, 3) or t.shape[-1] not in (4, None)):
        return f"{label} {shape} is not boxes; expected (N, 4) or (N, K, 4) ({BOX_FORMAT})."
    if kind == "class_indices":
        if rank not in (1, 2) or (rank == 2 and t.shape[1] not in (1, None)):
            return f"{label} {shape} is not class indices; expected (N,) or (N, 1)."
        return _dtype_problem(t, label, INDEX_DTYPES)
    problem = _dtype_problem(t, label, DTYPES)
    if problem:
        return problem
    classes = t.shape[1] if kind in SCORE_KINDS else None
    if t.class_names is not None and classes is not None and len(t.class_names) != classes:
        return f"{len(t.class_names)} class names for {classes} outputs."
    return None


def _dtype_problem(t: TensorSpec, label: str, allowed: tuple[str, ...]) -> str | None:
    if t.dtype not in allowed:
        return f"{label} dtype {t.dtype!r} is not supported; expected one of {', '.join(allowed)}."
    if t.scale is not None and not t.scale > 0:
        return f"{label} scale {t.scale} must be above 0."
    return None


def spec_from_tensors(
    inp: TensorSpec,
    out: TensorSpec,
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    output_kind: str = "probabilities",
    class_names: Sequence[str] | None = None,
    layout: str | None = None,
) -> ModelSpec:
    """A single-input, single-output spec from a runtime's tensor details; the layout follows from the
    input rank unless given (NCHW).

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


def _keras_shapes(value: Any) -> list[Shape]:
    """Keras's input_shape/output_shape: one shape, or a list/tuple/dict of them for several tensors."""
    if isinstance(value, Mapping):
        value = list(value.values())
    several = isinstance(value, list) or (isinstance(value, tuple) and value and isinstance(value[0], (tuple, list)))
    shapes = value if several else [value]
    return [tuple(None if d is None else int(d) for d in s) for s in shapes]


def _activation_of(layer: Any) -> str | None:
    if layer is None:
        return None
    if type(layer).__name__ == "Softmax":
        return "softmax"
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    return str(getattr(act, "__name__", act)).lower()


def _last_activation(model: Any) -> str | None:
    layers = getattr(model, "layers", None) or []
    return _activation_of(layers[-1]) if layers else None


def _dtype_name(tensor: Any, default: str = "float32") -> str:
    dtype = str(getattr(tensor, "dtype", default))
    return dtype.removeprefix("<dtype: '").removesuffix("'>")  # tf.DType's repr, if given one


def guess_kind(name: str, shape: Shape, dtype: str, activation: str | None) -> str:
    """An output's kind from its name, shape, dtype and last activation (a Keras model's or an ONNX file's)."""
    return _guess_kind(name, shape, dtype, activation)


def _guess_kind(name: str, shape: Shape, dtype: str, activation: str | None) -> str:
    """An output's kind from its shape, dtype and last activation (override with `output_kinds`)."""
    if dtype in INDEX_DTYPES and len(shape) in (1, 2):
        return "class_indices"
    if len(shape) == 3 and shape[-1] == 4:
        return "boxes"
    if len(shape) == 2 and shape[-1] == 4 and "box" in name.lower():
        return "boxes"
    if activation == "softmax":
        return "probabilities"
    return "values" if len(shape) == 2 and shape[-1] == 1 else "logits"


def spec_from_keras(
    model: Any,
    value_range: tuple[float, float] = (0.0, 1.0),
    class_names: Sequence[str] | None = None,
    output_kind: str | None = None,
    *,
    input_name: str = "input",
    output_name: str = "output",
    value_ranges: Mapping[str, tuple[float, float]] | None = None,
    output_kinds: Mapping[str, str] | None = None,
) -> ModelSpec:
    """The spec of a built Keras model, read by duck typing (TensorFlow is not imported).

    A single-input, single-output model keeps the names `input_name`/`output_name` (exports name them so)
    and `value_range`, `class_names`, `output_kind` describe its tensors. A model with several inputs or
    outputs keeps the Keras names (`model.inputs[i].name`, `model.output_names`); `value_ranges` and
    `output_kinds` give per-name facts (else `value_range` for every input, and the kind guessed from each
    output's shape, dtype and last activation: softmax -> probabilities, (N, K, 4) or a "box" name ->
    boxes, integer -> class_indices, width 1 -> values, else logits).

    Raises:
        SpecError: not a built Keras model, or shapes edgekit cannot run.
    """
    try:
        in_shapes, out_shapes = _keras_shapes(model.input_shape), _keras_shapes(model.output_shape)
    except AttributeError as exc:
        missing = exc.name or "input_shape"
        raise SpecError(f"{type(model).__name__} is not a built Keras model (no {missing}).") from None
    inputs = list(getattr(model, "inputs", None) or [])
    outputs = list(getattr(model, "outputs", None) or [])
    if len(in_shapes) == 1 and len(out_shapes) == 1:
        dtype = _dtype_name(inputs[0]) if len(inputs) == 1 else "float32"
        if output_kind is None:
            output_kind = "probabilities" if _last_activation(model) == "softmax" else "logits"
        return spec_from_tensors(
            TensorSpec(input_name, in_shapes[0], dtype),
            TensorSpec(output_name, out_shapes[0], "float32"),
            value_range=value_range,
            output_kind=output_kind,
            class_names=class_names,
        )
    in_names = [str(getattr(t, "name", f"input_{i}")) for i, t in enumerate(inputs)] or [
        f"input_{i}" for i in range(len(in_shapes))
    ]
    out_names = list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(out_shapes))])
    ranges, kinds = dict(value_ranges or {}), dict(output_kinds or {})
    spec_in = [
        TensorSpec(
            name,
            shape,
            _dtype_name(inputs[i]) if i < len(inputs) else "float32",
            value_range=tuple(ranges.get(name, value_range)),  # type: ignore[arg-type]
        )
        for i, (name, shape) in enumerate(zip(in_names, in_shapes))
    ]
    spec_out = []
    for i, (name, shape) in enumerate(zip(out_names, out_shapes)):
        tensor = outputs[i] if i < len(outputs) else None
        dtype = _dtype_name(tensor) if tensor is not None else "float32"
        dtype = dtype if dtype in INDEX_DTYPES else "float32"
        history = getattr(tensor, "_keras_history", None)
        activation = _activation_of(getattr(history, "operation", None))
        kind = kinds.get(name) or _guess_kind(name, shape, dtype, activation)
        spec_out.append(
            TensorSpec(
                name, shape, dtype, kind=kind, class_names=tuple(class_names) if class_names and i == 0 else None
            )
        )
    return ModelSpec(inputs=spec_in, outputs=spec_out)
