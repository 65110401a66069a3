"""The runner interface: one lifecycle for every runtime (Keras, LiteRT/TFLite, ONNX Runtime).

A runner loads one model file and describes it as a `ModelSpec` (`model_spec()`). Callers pass
float32 batches of the model's input shape, with values in its float range, and get float32
outputs `[N, outputs]` back: `infer(batch)`. Integer I/O is (de)quantized inside the runner.

`infer` is three steps that can also be called one by one, which is how the benchmark times the
model alone: `to_native(batch)` (checks, then the model's input dtype), `run_native(x)` (the model
on native input, raw output), `from_native(out)` (float32).
"""

from __future__ import annotations

import abc
from pathlib import Path
from types import TracebackType
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from runtimes.errors import InputSpecError, ModelLoadError
from runtimes.spec import INTEGER_DTYPES, RANK_LAYOUTS, ModelSpec, SpecError, TensorSpec, shape_text, spec_from_tensors

__all__ = ["FloatArray", "Runner", "TensorSpec", "check_model_file", "dequantize", "io_problem", "quantize"]

FloatArray = npt.NDArray[np.float32]
_FLOAT32 = np.dtype(np.float32)


class Runner(abc.ABC):
    """Base class: subclasses implement `_activate`, `_run`, `_input_spec`, `_output_spec` and
    optionally `_deactivate`.

    Use as a context manager::

        with TFLiteRunner(path, num_threads=1) as runner:
            probs = runner.infer(images)

    Args:
        model_path: the model file.
        num_threads: runtime threads (None: the runtime's default).
        spec: the spec the file is expected to have (e.g. from manifest.json). Its value range,
            output kind and class names are adopted; a file whose input shape or output width
            differs is refused at activation.
    """

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]

    def __init__(
        self, model_path: Path | str, *, num_threads: int | None = None, spec: ModelSpec | None = None
    ) -> None:
        self.model_path = Path(model_path)
        if num_threads is not None and num_threads < 1:
            raise InputSpecError(f"num_threads must be 1 or more, got {num_threads}.")
        self.num_threads = num_threads
        self.expected_spec = spec
        self._active = False
        self._spec: ModelSpec | None = None
        self._rank = 0
        self._tail: tuple[int | None, ...] = ()
        self._classes: int | None = None
        self._native_dtype = _FLOAT32
        # (1 / scale, zero point, iinfo min, max) of integer input; (scale, zero point) of integer output.
        self._in_q: tuple[np.float32, np.float32, int, int] | None = None
        self._out_q: tuple[np.float32, np.float32] | None = None
        # Shape of the last native batch that passed every check in run_native() while active; None
        # otherwise (None never equals a shape, so the fast path also implies "active").
        self._ok_shape: tuple[int, ...] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deactivate()

    @property
    def is_active(self) -> bool:
        return self._active

    def activate(self) -> None:
        """Import the runtime, load the model and read its spec. Raises if already active."""
        if self._active:
            raise RuntimeError(f"{type(self).__name__} for {self.model_path} is already active.")
        check_model_file(self.model_path, self.suffixes)
        self._activate()
        inp, out = self._input_spec(), self._output_spec()
        problem = io_problem(inp, out, self.expected_spec)
        spec: ModelSpec | None = None
        if not problem:
            exp = self.expected_spec
            try:
                spec = spec_from_tensors(
                    inp,
                    out,
                    value_range=exp.value_range if exp else (0.0, 1.0),
                    output_kind=exp.output_kind if exp else "probabilities",
                    class_names=exp.class_names if exp else None,
                    layout=exp.layout if exp and exp.layout in RANK_LAYOUTS.get(len(inp.shape), ()) else None,
                )
            except SpecError as exc:
                problem = str(exc).removeprefix("model spec: ")
        if problem or spec is None:
            self._deactivate()
            raise ModelLoadError(f"{self.model_path} {problem}")
        # Cached for the per-call checks: at batch 1 these models run in ~30 µs, so overhead matters.
        self._spec = spec
        self._rank = len(inp.shape)
        self._tail = inp.shape[1:]
        self._classes = out.shape[1]
        self._native_dtype = np.dtype(inp.dtype)
        self._in_q = _in_quant(inp)
        self._out_q = _out_quant(out)
        self._ok_shape = None
        self._active = True

    def deactivate(self) -> None:
        if self._active:
            self._deactivate()
            self._active = False
            self._ok_shape = None

    # -- queries -------------------------------------------------------------------------------
    def model_spec(self) -> ModelSpec:
        """The model's spec as read from the file (plus the expected spec's range, kind and names)."""
        self._require_active()
        assert self._spec is not None
        return self._spec

    def input_spec(self) -> TensorSpec:
        self._require_active()
        return self._input_spec()

    def output_spec(self) -> TensorSpec:
        self._require_active()
        return self._output_spec()

    @classmethod
    def runtime_version(cls) -> str | None:
        """Version of the runtime library this runner would use, or None if none is installed."""
        return None

    def backend(self) -> str:
        """Name of the library actually in use (e.g. `ai_edge_litert`), valid while active."""
        return self.name

    # -- inference -----------------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> FloatArray:
        """Run a float32 batch of the model's input shape; return float32 outputs `[N, outputs]`."""
        return self.from_native(self.run_native(self.to_native(batch)))

    def to_native(self, batch: np.ndarray) -> np.ndarray:
        """Check a float32 batch against the spec and convert it to the model's input dtype.

        Float inputs come back as they are (made C-contiguous); integer inputs are quantized with
        the tensor's scale and zero point, saturating.

        Raises:
            InputSpecError: not a float32 array of the model's input shape, or empty.
        """
        if not self._active:
            self._require_active()
        if not isinstance(batch, np.ndarray):
            raise InputSpecError(f"input must be a numpy array, got {type(batch).__name__}.")
        if batch.dtype != np.float32:
            lo, hi = self._spec.value_range if self._spec else (0.0, 1.0)
            raise InputSpecError(
                f"input dtype {batch.dtype} received; expected float32 (values in the model's range {lo:g}..{hi:g})."
            )
        self._check_shape(batch.shape)
        if not batch.flags.c_contiguous:
            batch = np.ascontiguousarray(batch)
        if self._in_q is None:
            return batch
        return quantize_with(batch, self._in_q, self._native_dtype)

    def run_native(self, x: np.ndarray) -> np.ndarray:
        """Run the model on input already in its input dtype; return its raw output.

        This is what the benchmark times: a C-contiguous array of the shape and dtype that last
        passed the checks goes straight to the runtime.

        Raises:
            InputSpecError: wrong dtype or shape.
            ModelLoadError: the runtime failed, or returned an output of the wrong shape.
        """
        if (
            type(x) is np.ndarray
            and x.shape == self._ok_shape
            and x.dtype is self._native_dtype
            and x.flags.c_contiguous
        ):
            return self._run(x)
        if not self._active:
            self._require_active()
        if not isinstance(x, np.ndarray):
            raise InputSpecError(f"input must be a numpy array, got {type(x).__name__}.")
        if x.dtype != self._native_dtype:
            raise InputSpecError(
                f"native input dtype {x.dtype} received; {self.model_path.name} takes {self._native_dtype.name} "
                "(use to_native() or infer() for float32 values)."
            )
        self._check_shape(x.shape)
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        self._prepare(x.shape)
        out = self._run(x)
        n = x.shape[0]
        if out.ndim != 2 or out.shape[0] != n or (self._classes is not None and out.shape[1] != self._classes):
            # A dynamic output dimension the declared spec could not show.
            raise ModelLoadError(
                f"{self.model_path} returned output shape {tuple(out.shape)} for a batch of {n}; "
                f"expected ({n}, {self._classes if self._classes is not None else 'outputs'}) "
                f"({self._spec.describe() if self._spec else 'its declared output'})."
            )
        if x.dtype is self._native_dtype:  # a non-canonical dtype object would never hit the fast path
            self._ok_shape = x.shape
        return out

    def from_native(self, out: np.ndarray) -> FloatArray:
        """The model's raw output as float32 (dequantized for integer outputs)."""
        if self._out_q is not None:
            scale, zero_point = self._out_q
            f = out.astype(np.float32)
            f -= zero_point
            f *= scale
            return f
        if out.dtype is _FLOAT32 or out.dtype == _FLOAT32:
            return out
        return out.astype(np.float32)

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) != self._rank or any(e is not None and e != got for e, got in zip(self._tail, shape[1:])):
            spec = self._spec
            raise InputSpecError(
                f"input shape {tuple(shape)} received; expected {shape_text((None, *self._tail))} for "
                f"{self.model_path.name}" + (f" ({spec.describe()})." if spec else ".")
            )
        if shape[0] == 0:
            raise InputSpecError("input batch is empty; pass at least one sample.")

    def _require_active(self) -> None:
        if not self._active:
            raise RuntimeError(f"{type(self).__name__} is not active; use it in a `with` block.")

    # -- hooks ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def _run(self, x: np.ndarray) -> np.ndarray:
        """The model on a checked, C-contiguous native batch; its raw output. Keep it minimal."""

    @abc.abstractmethod
    def _input_spec(self) -> TensorSpec: ...

    @abc.abstractmethod
    def _output_spec(self) -> TensorSpec: ...

    def _prepare(self, shape: tuple[int, ...]) -> None:
        """Get ready for a batch of this (checked) shape; the fast path skips it for a repeated shape."""
        return None

    def _deactivate(self) -> None:
        return None


def io_problem(inp: TensorSpec, out: TensorSpec, expected: ModelSpec | None = None) -> str | None:
    """What keeps edgekit from running a model with this input/output (None: nothing).

    edgekit runs one input of rank 4 (NHWC images) or 2 (vectors) and one output of rank 2. With an
    `expected` spec, the input shape and output width must also match it (dynamic dims match anything).
    """
    if len(inp.shape) not in (2, 4):
        return f"takes input {shape_text(inp.shape)}; edgekit runs models taking (N, H, W, C) images or (N, C) vectors."
    if len(out.shape) != 2:
        return f"outputs {shape_text(out.shape)}; edgekit runs models with one (N, outputs) output."
    if expected is not None:
        try:
            actual = spec_from_tensors(
                TensorSpec(inp.name, inp.shape, "float32"), TensorSpec(out.name, out.shape, "float32")
            )
        except SpecError as exc:
            return str(exc).removeprefix("model spec: ")
        problem = actual.mismatch(expected)
        if problem:
            return problem + "; pass the model this spec was written for."
    return None


def check_model_file(path: Path, suffixes: tuple[str, ...]) -> None:
    """Fail early, with a clear message, on a missing, empty or misnamed model file."""
    if not path.exists():
        raise ModelLoadError(f"model file {path} does not exist; check the path.")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a directory; expected a model file ({', '.join(suffixes)}).")
    if path.suffix.lower() not in suffixes:
        raise ModelLoadError(f"{path} has suffix {path.suffix or '(none)'!r}; expected one of {', '.join(suffixes)}.")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"model file {path} is empty (0 bytes); re-export it.")


def _in_quant(spec: TensorSpec) -> tuple[np.float32, np.float32, int, int] | None:
    # Integer input without quantization parameters is fed as is (scale 1, zero point 0).
    if spec.dtype not in INTEGER_DTYPES:
        return None
    info = np.iinfo(np.dtype(spec.dtype))
    scale = spec.scale or 1.0
    return np.float32(1.0 / scale), np.float32(spec.zero_point or 0), int(info.min), int(info.max)


def _out_quant(spec: TensorSpec) -> tuple[np.float32, np.float32] | None:
    if spec.dtype not in INTEGER_DTYPES:
        return None
    return np.float32(spec.scale or 1.0), np.float32(spec.zero_point or 0)


def quantize_with(x: FloatArray, q: tuple[np.float32, np.float32, int, int], dtype: np.dtype[np.generic]) -> np.ndarray:
    """float -> integer with precomputed (1 / scale, zero point, min, max), saturating."""
    inv_scale, zero_point, lo, hi = q
    y = x * inv_scale
    y += zero_point
    np.rint(y, out=y)
    # maximum/minimum in place: about half the cost of np.clip on small inputs.
    np.maximum(y, lo, out=y)
    np.minimum(y, hi, out=y)
    out: np.ndarray = y.astype(dtype)
    return out


def quantize(x: FloatArray, spec: TensorSpec, dtype: np.dtype[np.generic]) -> np.ndarray:
    """float -> integer tensor with the tensor's scale/zero point, saturating."""
    q = _in_quant(TensorSpec(spec.name, spec.shape, np.dtype(dtype).name, spec.scale, spec.zero_point))
    assert q is not None, f"{dtype} is not an integer dtype"
    return quantize_with(x, q, dtype)


def dequantize(q: np.ndarray, spec: TensorSpec) -> FloatArray:
    """integer tensor -> float32 with the tensor's scale/zero point."""
    out = q.astype(np.float32)
    out -= np.float32(spec.zero_point or 0)
    out *= np.float32(spec.scale or 1.0)
    return out
