"""LiteRT / TFLite runner: `ai_edge_litert`, else `tflite_runtime` (numpy<2 only), else `tensorflow.lite`."""

from __future__ import annotations

import importlib
import re
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from runtimes.base import Runner
from runtimes.capture import native_output
from runtimes.errors import ModelLoadError, RuntimeUnavailableError, one_line
from runtimes.spec import ModelSpec, TensorSpec

# Order of preference. tflite_runtime 2.14 (its last release) is built against numpy 1 and fails at
# first use under numpy 2 ("_ARRAY_API not found"), so it is only tried with numpy<2.
BACKENDS: tuple[str, ...] = ("ai_edge_litert", "tflite_runtime", "tensorflow")
# An op version newer than the runtime's kernels: "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'".
_OP_VERSION_GAP = re.compile(r"Didn't find op for builtin opcode '(\w+)' version '(\d+)'")
_INTERPRETER_MODULES = {
    "ai_edge_litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite",
}
INSTALL_HINT = (
    "install a TFLite runtime: `pip install ai-edge-litert` "
    "(or `pip install tflite-runtime 'numpy<2'` on boards without LiteRT wheels)"
)


def _numpy_major() -> int:
    return int(np.__version__.split(".", 1)[0])


def load_interpreter_module(backend: str | None = None) -> tuple[str, Any]:
    """Import the first usable TFLite interpreter module; return (backend name, module)."""
    names = (backend,) if backend else BACKENDS
    problems: list[str] = []
    for name in names:
        if name not in _INTERPRETER_MODULES:
            raise RuntimeUnavailableError(f"unknown TFLite backend {name!r}; choose one of {', '.join(BACKENDS)}.")
        if name == "tflite_runtime" and _numpy_major() >= 2:
            problems.append(f"tflite_runtime needs numpy<2 (numpy {np.__version__} is installed)")
            continue
        try:
            if name == "tensorflow":
                # `import tensorflow.lite` is a lazy stub without Interpreter; the attribute path works.
                from runtimes.tf_import import import_tensorflow

                module = import_tensorflow().lite
            else:
                module = importlib.import_module(_INTERPRETER_MODULES[name])
        except (ImportError, RuntimeUnavailableError):
            problems.append(f"{name} is not installed")
            continue
        return name, module
    raise RuntimeUnavailableError(f"no TFLite runtime could be loaded ({'; '.join(problems)}); {INSTALL_HINT}.")


def backend_version(name: str) -> str | None:
    """Installed version of a backend, from package metadata (imports nothing, so no TensorFlow)."""
    from importlib import metadata

    dists = {
        "ai_edge_litert": ("ai-edge-litert",),
        "tflite_runtime": ("tflite-runtime",),
        "tensorflow": ("tensorflow-cpu", "tensorflow"),
    }[name]
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _spec(detail: dict[str, Any]) -> TensorSpec:
    sig = detail.get("shape_signature")
    dims = list(sig) if sig is not None and len(sig) else list(detail["shape"])
    shape = tuple(None if int(d) < 0 else int(d) for d in dims)
    scale, zero_point = detail.get("quantization", (0.0, 0))
    dtype = np.dtype(detail["dtype"]).name
    quantized = dtype in ("int8", "uint8", "int16") and scale != 0.0
    return TensorSpec(
        name=str(detail["name"]),
        shape=shape,
        dtype=dtype,
        scale=float(scale) if quantized else None,
        zero_point=int(zero_point) if quantized else None,
    )


def looks_like_tflite(head: bytes) -> bool:
    """TFLite flatbuffers carry the file identifier `TFL3` at bytes 4..8."""
    return len(head) >= 8 and head[4:8] == b"TFL3"


class TFLiteRunner(Runner):
    """Runs a `.tflite` model with the LiteRT interpreter.

    Args:
        model_path: the `.tflite` file.
        num_threads: interpreter threads (None: the runtime's default).
        backend: force one of `BACKENDS` instead of the first available.
        use_xnnpack: False disables the default XNNPACK delegate (reference kernels only).
        spec: the expected model spec (see `Runner`).
    """

    name: ClassVar[str] = "tflite"
    suffixes: ClassVar[tuple[str, ...]] = (".tflite",)

    def __init__(
        self,
        model_path: Any,
        *,
        num_threads: int | None = None,
        backend: str | None = None,
        use_xnnpack: bool = True,
        spec: ModelSpec | None = None,
    ) -> None:
        super().__init__(model_path, num_threads=num_threads, spec=spec)
        self._requested_backend = backend
        self.use_xnnpack = use_xnnpack
        self._backend = ""
        self._interp: Any = None
        self._in_spec = self._out_spec = TensorSpec("", (), "float32")
        self._in_index = self._out_index = 0
        # The interpreter's bound methods, looked up once per activation for _run (see there).
        self._set_tensor: Any = None
        self._invoke: Any = None
        self._get_tensor: Any = None
        self._in: dict[str, Any] = {}
        self._out: dict[str, Any] = {}
        self._batch = -1
        # A file whose batch axis is fixed (shape_signature[0] > 0; litert-torch writes 1) is run one sample at a
        # time: resizing it fails or breaks on its fixed RESHAPE shapes.
        self._fixed_batch: int | None = None
        self._per_row = False
        # Several inputs/outputs (named by the model's signature), run through its signature runner.
        self._several_in: tuple[TensorSpec, ...] = ()
        self._several_out: tuple[TensorSpec, ...] = ()
        self._signature: Any = None
        self._indices_by_name: dict[str, int] = {}

    @classmethod
    def runtime_version(cls) -> str | None:
        for name in BACKENDS:
            if name == "tflite_runtime" and _numpy_major() >= 2:
                continue
            version = backend_version(name)
            if version:
                return f"{name} {version}"
        return None

    def backend(self) -> str:
        return self._backend

    def _activate(self) -> None:
        with open(self.model_path, "rb") as fh:
            head = fh.read(8)
        if not looks_like_tflite(head):
            hint = " It looks like an ONNX model: name it .onnx." if head[:1] == b"\x08" else ""
            raise ModelLoadError(
                f"{self.model_path} is not a TFLite model (no TFL3 identifier).{hint} "
                "Re-export it with `edgekit export`."
            )
        self._backend, module = load_interpreter_module(self._requested_backend)
        kwargs: dict[str, Any] = {"model_path": str(self.model_path), "num_threads": self.num_threads}
        if not self.use_xnnpack:
            resolver = getattr(module, "OpResolverType", None) or module.experimental.OpResolverType
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" from C++; keep it for errors.
            with native_output() as native:
                self._interp = module.Interpreter(**kwargs)
                self._interp.allocate_tensors()
                # A damaged flatbuffer can load and then fail here (tensor names that are not UTF-8, ...).
                inputs = self._interp.get_input_details()
                outputs = self._interp.get_output_details()
                self._in, self._out = inputs[0], outputs[0]
                self._cache_io()
                if len(inputs) != 1 or len(outputs) != 1:
                    self._cache_several(inputs, outputs)
        except (ValueError, RuntimeError, IndexError, KeyError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            detail = native.last_line()
            gap = _OP_VERSION_GAP.search(str(exc))
            if gap is not None:  # a runtime older than the converter (tflite-runtime 2.13 on 32-bit ARM)
                raise RuntimeUnavailableError(
                    f"{self.runtime_version()} has no kernel for {gap.group(1)} version {gap.group(2)}, which this "
                    "model uses (its converter is newer); run it on ai-edge-litert (a 64-bit OS) or a newer runtime"
                ) from exc
            raise ModelLoadError(
                f"{self.model_path} could not be loaded as a TFLite model: {first}" + (f" ({detail})" if detail else "")
            ) from exc
        self._batch = int(self._in["shape"][0])
        signature = self._in.get("shape_signature")
        fixed = signature is not None and len(signature) > 0 and int(signature[0]) > 0
        self._fixed_batch, self._per_row = (self._batch if fixed else None), False
        self._set_tensor = self._interp.set_tensor
        self._invoke = self._interp.invoke
        self._get_tensor = self._interp.get_tensor

    def _cache_io(self) -> None:
        self._in_spec, self._out_spec = _spec(self._in), _spec(self._out)
        # Plain ints: pybind converts them faster than numpy integers on every call.
        self._in_index, self._out_index = int(self._in["index"]), int(self._out["index"])

    def _cache_several(self, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> None:
        """Tensors of a model with several inputs/outputs, named as its signature names them.

        Converters name the tensors themselves (`serving_default_image:0`, `StatefulPartitionedCall:1`);
        the signature keeps the model's own names (`image`, `digit`), so tensors are matched by those.
        """
        signatures = self._interp.get_signature_list()
        if signatures:
            key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
            self._signature = self._interp.get_signature_runner(key)
            sig_in = self._signature.get_input_details()
            sig_out = self._signature.get_output_details()
            self._several_in = tuple(replace(_spec(d), name=name) for name, d in sig_in.items())
            self._several_out = tuple(replace(_spec(d), name=name) for name, d in sig_out.items())
        else:
            self._signature = None
            self._several_in = tuple(_spec(d) for d in inputs)
            self._several_out = tuple(_spec(d) for d in outputs)
            self._indices_by_name = {
                **{str(d["name"]): int(d["index"]) for d in inputs},
                **{str(d["name"]): int(d["index"]) for d in outputs},
            }

    def _input_specs(self) -> tuple[TensorSpec, ...]:
        return self._several_in or (self._in_spec,)

    def _output_specs(self) -> tuple[TensorSpec, ...]:
        return self._several_out or (self._out_spec,)

    def _run_all(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            if self._signature is not None:
                # The signature runner resizes its inputs to each feed's shape itself.
                return dict(self._signature(**feeds))
            return self._run_by_index(feeds)
        except (RuntimeError, ValueError) as exc:
            raise ModelLoadError(
                f"{self.model_path} could not be run as a TFLite model: {one_line(exc)}; re-export it."
            ) from exc

    def _run_by_index(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A model without signatures: set each input by its tensor index (resizing to the batch first)."""
        interp, index = self._interp, self._indices_by_name
        current = {int(d["index"]): tuple(d["shape"]) for d in interp.get_input_details()}
        if any(current[index[name]] != x.shape for name, x in feeds.items()):
            for name, x in feeds.items():
                interp.resize_tensor_input(index[name], list(x.shape), strict=False)
            interp.allocate_tensors()
        for name, x in feeds.items():
            interp.set_tensor(index[name], x)
        interp.invoke()
        return {t.name: interp.get_tensor(index[t.name]) for t in self._several_out}

    def _deactivate(self) -> None:
        self._interp = self._set_tensor = self._invoke = self._get_tensor = None
        self._signature = None

    def _input_spec(self) -> TensorSpec:
        return self._in_spec

    def _output_spec(self) -> TensorSpec:
        return self._out_spec

    def is_delegated(self) -> bool:
        """True when at least part of the graph runs in a delegate (XNNPACK)."""
        self._require_active()
        ops = self._interp._get_ops_details()
        return any(op.get("op_name") == "DELEGATE" for op in ops)

    def _prepare(self, shape: tuple[int, ...]) -> None:
        n = shape[0]
        if self._fixed_batch is not None:
            self._per_row = n != self._fixed_batch
            if self._per_row and self._fixed_batch != 1:
                raise ModelLoadError(
                    f"{self.model_path} has a fixed batch of {self._fixed_batch}; edgekit runs fixed-batch files one "
                    "sample at a time (batch 1) or any batch with a dynamic batch axis: re-export it so."
                )
            return
        if n == self._batch:
            return
        try:
            self._interp.resize_tensor_input(self._in["index"], list(shape), strict=False)
            self._interp.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise ModelLoadError(
                f"{self.model_path} could not be resized to a batch of {n}: {one_line(exc)}; re-export it."
            ) from exc
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self._cache_io()
        self._batch = n

    def _run(self, x: np.ndarray) -> np.ndarray:
        # Hot path (~40 µs per call at batch 1): cached indices and bound methods only, and the
        # interpreter's public set_tensor/invoke/get_tensor, so a timed call costs what a user's
        # hand-written loop costs (benchmarks.harness_check compares the two).
        # The try costs nothing in Python 3.11+ until something raises.
        # The batch size is settled in _prepare (the checked path) before a new shape gets here.
        if self._per_row:
            return self._run_rows(x)
        try:
            self._set_tensor(self._in_index, x)
            self._invoke()
            out: np.ndarray = self._get_tensor(self._out_index)
        except (RuntimeError, ValueError) as exc:
            # A damaged model can load and still fail when a kernel is prepared ("NumInputs(node) != 2").
            raise ModelLoadError(
                f"{self.model_path} could not be run as a TFLite model: {one_line(exc)}; re-export it."
            ) from exc
        return out

    def _run_rows(self, x: np.ndarray) -> np.ndarray:
        """A batch through a fixed-batch-1 file, one sample per invoke (its outputs copied out between calls)."""
        rows = [self._run_one(x[i : i + 1]) for i in range(len(x))]
        return np.concatenate(rows, axis=0)

    def _run_one(self, x: np.ndarray) -> np.ndarray:
        try:
            self._set_tensor(self._in_index, x)
            self._invoke()
            return np.array(self._get_tensor(self._out_index))
        except (RuntimeError, ValueError) as exc:
            raise ModelLoadError(
                f"{self.model_path} could not be run as a TFLite model: {one_line(exc)}; re-export it."
            ) from exc
