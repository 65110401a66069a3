"""OpenVINO runner (CPU plugin) for OpenVINO IR: a `.xml` graph with its `.bin` weights beside it; made directly, also
for the `.onnx` and `.tflite` files OpenVINO reads."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from runtimes.base import Runner
from runtimes.capture import native_output
from runtimes.errors import ModelLoadError, one_line
from runtimes.openvino_import import import_openvino
from runtimes.spec import ModelSpec, TensorSpec

PERFORMANCE_HINTS: tuple[str, ...] = ("LATENCY", "THROUGHPUT")
# The CPU plugin's own default is the fastest precision the CPU has: bf16 on AVX512-BF16/AMX Xeons, f16 on some
# Arm cores, f32 elsewhere. An fp32 file would then compute in bf16 on one machine and in f32 on another (measured:
# |Δp| 3e-4 against ONNX Runtime on an AMX Xeon, 30x the fp32 parity limit), so f32 is edgekit's default and the
# lower precisions are opt-in; "default" leaves the choice to the plugin.
INFERENCE_PRECISIONS: tuple[str, ...] = ("f32", "bf16", "f16", "default")
# OpenVINO element type names (`Type.get_type_name()`) -> numpy dtype names edgekit's specs use.
_OV_TYPES = {
    "f32": "float32",
    "f16": "float16",
    "i64": "int64",
    "i32": "int32",
    "i8": "int8",
    "u8": "uint8",
}
# Batch shapes compiled statically per activation; further shapes run on the dynamic-batch compilation.
STATIC_SHAPES = 4


def _tensor(port: Any) -> TensorSpec:
    """An OpenVINO model port as a TensorSpec (its first name, shape with None for dynamic axes, dtype)."""
    names = sorted(port.get_names())
    dims = tuple(int(d.get_length()) if d.is_static else None for d in port.get_partial_shape())
    kind = port.get_element_type().get_type_name()
    return TensorSpec(names[0] if names else f"port{port.get_index()}", dims, _OV_TYPES.get(kind, kind))


class OpenVINORunner(Runner):
    """Runs an OpenVINO IR model (`.xml` + `.bin`) with OpenVINO's CPU plugin.

    Args:
        model_path: the `.xml` file; its weights are the `.bin` of the same name beside it.
        num_threads: INFERENCE_NUM_THREADS (None: OpenVINO's default, every core).
        performance_hint: `LATENCY` (default: one request as fast as it goes) or `THROUGHPUT`.
        num_streams: parallel inference streams (default 1: one request at a time, as the harness runs it).
        inference_precision: INFERENCE_PRECISION_HINT, one of `INFERENCE_PRECISIONS` (default `f32`: an fp32 or
            fp16-compressed file computes in float32 on every CPU; see there).
        static_shapes: compile the model for each batch size it is given (up to `STATIC_SHAPES` of them), as a
            deployment that reshapes to its batch does; False runs every batch on the dynamic-batch compilation.
            Measured on the reference CNN (2-vCPU Xeon, 1 thread): 10-14 % less time per call at batch 1 and 32,
            for ~65 ms of compiling per batch size.
        spec: the expected model spec (see `Runner`).
    """

    name: ClassVar[str] = "openvino"
    # IR is what the registry gives this runner; made directly (`OpenVinoRunner(path)`), it also runs the ONNX and
    # TFLite files OpenVINO's frontends read, to compare OpenVINO with ONNX Runtime and LiteRT on the same file.
    suffixes: ClassVar[tuple[str, ...]] = (".xml", ".onnx", ".tflite")

    def __init__(
        self,
        model_path: Any,
        *,
        num_threads: int | None = None,
        performance_hint: str = "LATENCY",
        num_streams: int = 1,
        inference_precision: str = "f32",
        static_shapes: bool = True,
        spec: ModelSpec | None = None,
    ) -> None:
        super().__init__(model_path, num_threads=num_threads, spec=spec)
        hint = str(performance_hint).upper()
        if hint not in PERFORMANCE_HINTS:
            raise ModelLoadError(
                f"performance hint {performance_hint!r} is unknown; choose one of {', '.join(PERFORMANCE_HINTS)}."
            )
        if num_streams < 1:
            raise ModelLoadError(f"num_streams must be 1 or more, got {num_streams}.")
        if inference_precision not in INFERENCE_PRECISIONS:
            raise ModelLoadError(
                f"inference precision {inference_precision!r} is unknown; "
                f"choose one of {', '.join(INFERENCE_PRECISIONS)}."
            )
        self.performance_hint = hint
        self.inference_precision = inference_precision
        self.static_shapes = static_shapes
        self._core: Any = None
        self._model: Any = None
        self._config: dict[str, Any] = {}
        self._dynamic: Any = None  # the compilation activation made (the file's own shapes)
        # Batch shape -> (compiled model, its request); None where the model would not reshape to it.
        self._by_shape: dict[tuple[int, ...], tuple[Any, Any] | None] = {}
        self.num_streams = num_streams
        self._compiled: Any = None
        self._request: Any = None
        self._inputs: tuple[TensorSpec, ...] = ()
        self._outputs: tuple[TensorSpec, ...] = ()
        # Cached for _run: the request's bound methods, and the array whose memory the input tensor shares.
        self._infer: Any = None
        self._set_input: Any = None
        self._make_tensor: Any = None
        self._fed: np.ndarray | None = None

    @classmethod
    def runtime_version(cls) -> str | None:
        from importlib import metadata

        try:
            return f"openvino {metadata.version('openvino')}"
        except metadata.PackageNotFoundError:
            return None

    def _activate(self) -> None:
        ov = import_openvino()
        ir = self.model_path.suffix.lower() == ".xml"
        weights = self.model_path.with_suffix(".bin")
        if ir and not weights.is_file():
            raise ModelLoadError(
                f"{self.model_path} has no weights file {weights.name} beside it; copy the .bin with the .xml "
                "(or re-export it)."
            )
        with open(self.model_path, "rb") as fh:
            head = fh.read(64).lstrip()
        if ir and not head.startswith(b"<"):
            raise ModelLoadError(f"{self.model_path} is not an OpenVINO IR file (not XML); re-export it.")
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": self.performance_hint,
            "NUM_STREAMS": str(self.num_streams),
        }
        if self.num_threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.num_threads
        if self.inference_precision != "default":
            config["INFERENCE_PRECISION_HINT"] = self.inference_precision
        try:
            # The CPU plugin writes its warnings to fd 2 from C++; keep them for the error message only.
            with native_output() as native:
                core = ov.Core()
                model = (
                    core.read_model(str(self.model_path), str(weights)) if ir else core.read_model(str(self.model_path))
                )
                compiled = core.compile_model(model, "CPU", config)
                request = compiled.create_infer_request()
        except Exception as exc:  # OpenVINO raises RuntimeError and its own GeneralFailure classes
            detail = native.last_line()
            raise ModelLoadError(
                f"{self.model_path} could not be loaded as an OpenVINO {'IR ' if ir else ''}model: {_first_error(exc)}"
                + (f" ({detail})" if detail else "")
                + "; re-export it."
            ) from exc
        self._core, self._model, self._config = core, model, config
        self._dynamic, self._by_shape = (compiled, request), {}
        self._inputs = tuple(_tensor(p) for p in compiled.inputs)
        self._outputs = tuple(_tensor(p) for p in compiled.outputs)
        self._make_tensor = ov.Tensor
        self._use(compiled, request)

    def _use(self, compiled: Any, request: Any) -> None:
        """Make `request` the one `_run` calls (its bound methods cached: they are looked up once, not per call)."""
        self._compiled, self._request = compiled, request
        self._infer = request.infer
        self._set_input = request.set_input_tensor
        self._fed = None

    def _prepare(self, shape: tuple[int, ...]) -> None:
        if not self.static_shapes or len(self._inputs) != 1 or None not in self._inputs[0].shape:
            return
        if shape not in self._by_shape and len(self._by_shape) < STATIC_SHAPES:
            self._by_shape[shape] = self._compile_static(shape)
        self._use(*(self._by_shape.get(shape) or self._dynamic))

    def _compile_static(self, shape: tuple[int, ...]) -> tuple[Any, Any] | None:
        """The model compiled for exactly `shape`, or None if it does not reshape to it (e.g. a Reshape with a
        fixed batch): that shape then runs on the dynamic compilation activation made."""
        try:
            with native_output():
                model = self._model.clone()
                model.reshape(list(shape))
                compiled = self._core.compile_model(model, "CPU", self._config)
                return compiled, compiled.create_infer_request()
        except Exception:  # OpenVINO's own exception classes; the dynamic compilation still serves
            return None

    def last_call_ms(self) -> float:
        """OpenVINO's own timing of the last `run_native` call, in ms: `InferRequest.latency`, taken in C++ around
        the inference (what `benchmark_app` reports), so it leaves out the Python binding and the output copy."""
        self._require_active()
        return float(self._request.latency)

    def _deactivate(self) -> None:
        self._compiled = self._request = self._infer = self._set_input = None
        self._core = self._model = self._dynamic = None
        self._by_shape = {}
        self._fed = None

    def _input_spec(self) -> TensorSpec:
        return self._inputs[0]

    def _output_spec(self) -> TensorSpec:
        return self._outputs[0]

    def _input_specs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    def _output_specs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    def _run_all(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            compiled, request = self._dynamic
            result = request.infer(dict(feeds), share_inputs=False)
        except Exception as exc:  # OpenVINO's own exception classes: a model that loads but does not run
            raise ModelLoadError(
                f"{self.model_path} could not be run as an OpenVINO model: {_first_error(exc)}; re-export it."
            ) from exc
        out: dict[str, np.ndarray] = {}
        for port, spec in zip(compiled.outputs, self._outputs):
            out[spec.name] = np.array(result[port])
        return out

    def _run(self, x: np.ndarray) -> np.ndarray:
        # Hot path: the input tensor shares `x`'s memory and is set only when a new array comes in, so a timed
        # call is the request's public infer(), what a user's own loop calls. Its result holds copies of the outputs
        # (share_outputs=False), which matters: the output tensors are the request's and the next call overwrites
        # them. Measured against `infer()` alone: +1 µs this way, +3 µs through get_output_tensor(0).data.copy().
        try:
            if x is not self._fed:
                self._set_input(self._make_tensor(x, shared_memory=True))
                self._fed = x  # also keeps the shared memory alive
            out: np.ndarray = self._infer().to_tuple()[0]
        except Exception as exc:  # OpenVINO's own exception classes: a model that loads but does not run
            self._fed = None
            raise ModelLoadError(
                f"{self.model_path} could not be run as an OpenVINO model: {_first_error(exc)}; re-export it."
            ) from exc
        return out


def _first_error(exc: BaseException) -> str:
    """OpenVINO's messages are several lines of C++ context ("Exception from src/...cpp:123:"); the line that
    names the problem is the last non-empty one that is not a source location."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '", "[ GENERAL_ERROR ]"))]
    return one_line((useful or lines or [type(exc).__name__])[-1])
