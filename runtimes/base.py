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
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from runtimes.errors import InputSpecError, ModelLoadError
from runtimes.spec import (
    INDEX_DTYPES,
    INTEGER_DTYPES,
    RANK_LAYOUTS,
    ModelSpec,
    SpecError,
    TensorSpec,
    shape_text,
    spec_from_tensors,
)

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
        self._out_rank = 2
        self._indices = False  # a single class_indices output: infer_named returns int64
        # Several inputs/outputs: infer_named only. Spec names -> the file's tensor names, and the file's tensors.
        self._several = False
        self._named_spec: ModelSpec | None = None
        self._feed_names: dict[str, str] = {}
        self._fetch_names: dict[str, str] = {}
        self._file_inputs: dict[str, TensorSpec] = {}
        self._file_outputs: dict[str, TensorSpec] = {}

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
        ins, outs = self._input_specs(), self._output_specs()
        if len(ins) != 1 or len(outs) != 1 or (self.expected_spec is not None and not self.expected_spec.is_single):
            self._activate_several(ins, outs)
            return
        inp, out = ins[0], outs[0]
        problem = io_problem(inp, out, self.expected_spec)
        spec: ModelSpec | None = None
        if not problem:
            exp = self.expected_spec
            try:
                spec = spec_from_tensors(
                    inp,
                    out,
                    value_range=exp.value_range if exp else (0.0, 1.0),
                    output_kind=exp.output_kind if exp else single_kind(out),
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
        self._several = False
        # infer_named keys: the expected spec's names (the source model's), else the file's own.
        exp_names = (self.expected_spec.input.name, self.expected_spec.output.name) if self.expected_spec else None
        self._feed_names = {(exp_names[0] if exp_names else inp.name): inp.name}
        self._fetch_names = {(exp_names[1] if exp_names else out.name): out.name}
        self._named_spec = spec.with_tensors(
            inputs=[replace(spec.input, name=next(iter(self._feed_names)))],
            outputs=[replace(spec.output, name=next(iter(self._fetch_names)))],
        )
        self._rank = len(inp.shape)
        self._tail = inp.shape[1:]
        self._classes = out.shape[1] if len(out.shape) > 1 else None
        self._out_rank = len(out.shape)
        self._indices = spec.output_kind == "class_indices"
        self._native_dtype = np.dtype(inp.dtype)
        self._in_q = _in_quant(inp)
        self._out_q = _out_quant(out)
        self._ok_shape = None
        self._active = True

    def _activate_several(self, ins: tuple[TensorSpec, ...], outs: tuple[TensorSpec, ...]) -> None:
        """Activation of a model with several inputs or outputs: `infer_named` only."""
        try:
            spec, feed_names, fetch_names = several_spec(ins, outs, self.expected_spec)
        except SpecError as exc:
            self._deactivate()
            raise ModelLoadError(f"{self.model_path} {str(exc).removeprefix('model spec: ')}") from None
        self._spec = self._named_spec = spec
        self._feed_names, self._fetch_names = feed_names, fetch_names
        # The file's own tensors (dtype, quantization): inputs keyed by spec name, outputs by file name.
        files = {t.name: t for t in ins}
        self._file_inputs = {name: files[file] for name, file in feed_names.items()}
        self._file_outputs = {t.name: t for t in outs}
        self._several = True
        self._ok_shape = None
        self._active = True

    def deactivate(self) -> None:
        if self._active:
            self._deactivate()
            self._active = False
            self._ok_shape = None

    # -- queries -------------------------------------------------------------------------------
    def model_spec(self) -> ModelSpec:
        """The model's spec as read from the file (plus the expected spec's ranges, kinds and names).

        A single-input, single-output model's tensors keep the file's names; with several tensors they are
        the names `infer_named` takes: the expected spec's (the source model's) when one was given.
        """
        self._require_active()
        assert self._spec is not None
        return self._spec

    def named_spec(self) -> ModelSpec:
        """The spec keyed as `infer_named` keys feeds and outputs (the expected spec's names when given)."""
        self._require_active()
        assert self._named_spec is not None
        return self._named_spec

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

    def infer_named(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run float32 feeds keyed by input name (all with the same batch N, values in each input's range);
        return every output keyed by name: float32 (dequantized), int64 for class_indices outputs.

        The names are `named_spec()`'s: the expected spec's (the source model's) when one was given.

        Raises:
            InputSpecError: a missing or extra name, a feed that is not float32 of its input's shape, or
                feeds of different batch sizes.
            ModelLoadError: the runtime failed or returned an output of the wrong shape.
        """
        self._require_active()
        spec = self._named_spec
        assert spec is not None
        missing = [n for n in self._feed_names if n not in feeds]
        extra = [str(n) for n in feeds if n not in self._feed_names]
        if missing or extra:
            what = "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(extra)}" if extra else "",
                )
                if part
            )
            raise InputSpecError(
                f"feeds for {self.model_path.name}: {what}; it takes {', '.join(self._feed_names)} "
                "(one float32 array each)."
            )
        if not self._several:
            (name,) = self._feed_names
            (out_name,) = self._fetch_names
            result = self.from_native(self.run_native(self.to_native(feeds[name])))
            return {out_name: result.astype(np.int64) if self._indices else result}
        native: dict[str, np.ndarray] = {}
        batch: int | None = None
        for tensor in spec.inputs:
            x = check_feed(feeds[tensor.name], tensor, self.model_path.name)
            if batch is not None and x.shape[0] != batch:
                raise InputSpecError(
                    f"feed {tensor.name} has {x.shape[0]} samples and an earlier feed {batch}; "
                    "every input needs the same batch."
                )
            batch = x.shape[0]
            q = _in_quant(self._file_inputs[tensor.name])
            file_dtype = np.dtype(self._file_inputs[tensor.name].dtype)
            native[self._feed_names[tensor.name]] = x if q is None else quantize_with(x, q, file_dtype)
        assert batch is not None
        raw = self._run_all(native)
        return {t.name: self._output_from_native(raw, t, batch) for t in spec.outputs}

    def _output_from_native(self, raw: Mapping[str, np.ndarray], tensor: TensorSpec, batch: int) -> np.ndarray:
        file_name = self._fetch_names[tensor.name]
        out = raw.get(file_name)
        if out is None:
            raise ModelLoadError(f"{self.model_path} returned no output {file_name!r}; re-export it.")
        out = np.asarray(out)
        tail = tensor.shape[1:]
        if (
            out.ndim != len(tensor.shape)
            or out.shape[0] != batch
            or any(e is not None and e != got for e, got in zip(tail, out.shape[1:]))
        ):
            raise ModelLoadError(
                f"{self.model_path} returned {tensor.name} of shape {tuple(out.shape)} for a batch of {batch}; "
                f"expected {tensor.shape_text()}."
            )
        if tensor.kind == "class_indices":
            return out.astype(np.int64)
        file_tensor = self._file_outputs[file_name]
        if file_tensor.dtype in INTEGER_DTYPES:
            return dequantize(out, file_tensor)
        return out.astype(np.float32, copy=False)

    def _refuse_several(self) -> None:
        spec = self._named_spec
        assert spec is not None
        if len(spec.inputs) > 1:
            what = f"{len(spec.inputs)} inputs ({', '.join(spec.input_names)})"
        else:
            what = f"{len(spec.outputs)} outputs ({', '.join(spec.output_names)})"
        raise InputSpecError(f"{self.model_path.name} has {what}; use infer_named with one array per input name.")

    def to_native(self, batch: np.ndarray) -> np.ndarray:
        """Check a float32 batch against the spec and convert it to the model's input dtype.

        Float inputs come back as they are (made C-contiguous); integer inputs are quantized with
        the tensor's scale and zero point, saturating.

        Raises:
            InputSpecError: not a float32 array of the model's input shape, or empty.
        """
        if not self._active:
            self._require_active()
        if self._several:
            self._refuse_several()
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
        if self._several:
            self._refuse_several()
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
        if (
            out.ndim != self._out_rank
            or out.shape[0] != n
            or (self._classes is not None and out.shape[1] != self._classes)
        ):
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

    def _input_specs(self) -> tuple[TensorSpec, ...]:
        """Every input the file declares (runners of several-tensor models override this)."""
        return (self._input_spec(),)

    def _output_specs(self) -> tuple[TensorSpec, ...]:
        """Every output the file declares (runners of several-tensor models override this)."""
        return (self._output_spec(),)

    def _run_all(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Several-tensor models: native, C-contiguous feeds keyed by the file's input names; every raw
        output keyed by the file's output names."""
        raise NotImplementedError(f"{type(self).__name__} runs single-input, single-output models only.")

    def _prepare(self, shape: tuple[int, ...]) -> None:
        """Get ready for a batch of this (checked) shape; the fast path skips it for a repeated shape."""
        return None

    def _deactivate(self) -> None:
        return None


def default_kind(out: TensorSpec) -> str:
    """An output's kind when no expected spec says it: class_indices for integer (N,)/(N, 1) outputs,
    boxes for (N, K, 4) or an (N, 4) output named like `boxes`, values for (N, 1), else probabilities (what
    edgekit assumed before kinds)."""
    rank = len(out.shape)
    if out.dtype in INDEX_DTYPES and rank in (1, 2):
        return "class_indices"
    if (rank == 3 and out.shape[-1] in (4, None)) or (rank == 2 and out.shape[-1] == 4 and "box" in out.name.lower()):
        return "boxes"
    if rank == 2 and out.shape[-1] == 1 and out.dtype == "float32":
        return "values"
    return "probabilities"


def single_kind(out: TensorSpec) -> str:
    """The kind of a bare file's only output: an (N, K) float output reads as probabilities, as it always has
    (predict tells logits and values from the numbers); other shapes and integer outputs as `default_kind`."""
    if len(out.shape) == 2 and out.dtype not in INDEX_DTYPES:
        return "probabilities"
    return default_kind(out)


def _output_rank_problem(out: TensorSpec, kind: str) -> str | None:
    rank = len(out.shape)
    if kind == "boxes":
        ok, expected = rank in (2, 3), "(N, 4) or (N, K, 4) boxes"
    elif kind == "class_indices":
        ok, expected = rank in (1, 2), "(N,) or (N, 1) class indices"
    else:
        ok, expected = rank == 2, "(N, outputs)"
    if ok:
        return None
    return f"outputs {shape_text(out.shape)}; edgekit runs models with {expected} outputs."


def io_problem(inp: TensorSpec, out: TensorSpec, expected: ModelSpec | None = None) -> str | None:
    """What keeps edgekit from running a model with this input/output (None: nothing).

    edgekit runs inputs of rank 4 (NHWC images) or 2 (vectors) and outputs of rank 2 ((N, K)
    probabilities, logits or values; (N, 4) boxes), 3 ((N, K, 4) boxes) or 1 ((N,) class indices). With
    an `expected` spec, the input shape and output shape must also match it (dynamic dims match anything).
    """
    if len(inp.shape) not in (2, 4):
        return f"takes input {shape_text(inp.shape)}; edgekit runs models taking (N, H, W, C) images or (N, C) vectors."
    kind = expected.output_kind if expected is not None else single_kind(out)
    problem = _output_rank_problem(out, kind)
    if problem:
        return problem
    if expected is not None:
        try:
            actual = spec_from_tensors(
                TensorSpec(inp.name, inp.shape, "float32"),
                TensorSpec(out.name, out.shape, out.dtype if kind == "class_indices" else "float32"),
                output_kind=kind,
            )
        except SpecError as exc:
            return str(exc).removeprefix("model spec: ")
        problem = actual.mismatch(expected)
        if problem:
            return problem + "; pass the model this spec was written for."
    return None


def several_spec(
    ins: tuple[TensorSpec, ...], outs: tuple[TensorSpec, ...], expected: ModelSpec | None
) -> tuple[ModelSpec, dict[str, str], dict[str, str]]:
    """The spec of a file with several inputs or outputs, and the maps from spec names to the file's names.

    With an `expected` spec, tensors pair by name when the file uses the expected names (in any order),
    else by position; the spec takes the expected names, order, layouts, value ranges, kinds and class
    names. Without one, the file's names and order, and default layouts and kinds.

    Raises:
        SpecError: tensor counts or shapes differ from `expected`, or a tensor edgekit cannot run.
    """
    if expected is None:
        spec = ModelSpec(
            inputs=list(ins),
            outputs=[replace(t, kind=t.kind or default_kind(t)) for t in outs],
        )
        return spec, {t.name: t.name for t in ins}, {t.name: t.name for t in outs}
    paired_in = _pair(ins, expected.inputs, "input")
    paired_out = _pair(outs, expected.outputs, "output")
    spec = ModelSpec(
        inputs=[
            replace(file, name=exp.name, layout=exp.layout, value_range=exp.value_range) for file, exp in paired_in
        ],
        outputs=[replace(file, name=exp.name, kind=exp.kind, class_names=exp.class_names) for file, exp in paired_out],
    )
    problem = spec.mismatch(expected)
    if problem:
        raise SpecError(problem + "; pass the model this spec was written for.")
    return (
        spec,
        {exp.name: file.name for file, exp in paired_in},
        {exp.name: file.name for file, exp in paired_out},
    )


def _pair(
    files: tuple[TensorSpec, ...], expected: tuple[TensorSpec, ...], what: str
) -> list[tuple[TensorSpec, TensorSpec]]:
    if len(files) != len(expected):
        raise SpecError(
            f"has {len(files)} {what}s ({', '.join(t.name for t in files)}); expected {len(expected)} "
            f"({', '.join(t.name for t in expected)}); pass the model this spec was written for."
        )
    by_name = {t.name: t for t in files}
    if all(t.name in by_name for t in expected):
        return [(by_name[t.name], t) for t in expected]
    return list(zip(files, expected))


def check_feed(x: object, tensor: TensorSpec, model_name: str) -> np.ndarray:
    """A float32, C-contiguous feed of `tensor`'s shape, or one line saying what is wrong with it."""
    if not isinstance(x, np.ndarray):
        raise InputSpecError(f"feed {tensor.name} must be a numpy array, got {type(x).__name__}.")
    if x.dtype != np.float32:
        lo, hi = tensor.value_range or (0.0, 1.0)
        raise InputSpecError(f"feed {tensor.name} has dtype {x.dtype}; expected float32 (values in {lo:g}..{hi:g}).")
    tail = tensor.shape[1:]
    if x.ndim != len(tensor.shape) or any(e is not None and e != got for e, got in zip(tail, x.shape[1:])):
        raise InputSpecError(
            f"feed {tensor.name} has shape {tuple(x.shape)}; {model_name} takes {tensor.shape_text()} there."
        )
    if x.shape[0] == 0:
        raise InputSpecError(f"feed {tensor.name} is empty; pass at least one sample.")
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


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
