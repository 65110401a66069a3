"""Load an int8 `.tflite` in TensorFlow Lite Micro's Python interpreter and run it, one image at a time.

The interpreter runs TFLM's reference kernels on the host (x86-64); a board with CMSIS-NN runs other kernels
that give the same int8 results for these ops but need other scratch buffers (see `arena.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtimes.capture import native_output
from runtimes.errors import one_line
from toolkit.errors import ToolkitError

EXTRA_HINT = "pip install 'edgekit[mcu]'"
INT8_FIX = "export full int8: edgekit export -p int8"
# TFLM prints this line (to stderr, from C++) when its op resolver lacks a builtin the model uses.
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '([A-Z0-9_]+)'")


class McuError(ToolkitError):
    """The model cannot run on TFLM (float model, unsupported op, arena too small) or the extra is missing."""


def load_tflm() -> Any:
    """The `tflite_micro.runtime` module, or a one-line error naming the extra that installs it."""
    try:
        from tflite_micro import runtime
    except ImportError as exc:
        raise McuError(f"TensorFlow Lite Micro is not installed ({one_line(exc, 120)}); {EXTRA_HINT}.") from exc
    return runtime


@dataclass(frozen=True)
class TensorInfo:
    """An input or output tensor of the flatbuffer: shape, dtype, and int8 quantization."""

    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int


@dataclass(frozen=True)
class ModelInfo:
    """What the flatbuffer says, read without running it."""

    ops: tuple[str, ...]  # builtin op names in order of first use, e.g. ("QUANTIZE", "CONV_2D", ...)
    op_count: int  # operators in the graph (an op can appear several times)
    input: TensorInfo
    output: TensorInfo
    size_bytes: int
    inputs: tuple[TensorInfo, ...] = ()  # every input, in the graph's order (TFLM's index): `input` is the first
    outputs: tuple[TensorInfo, ...] = ()  # every output, likewise


def read_model(data: bytes, name: str) -> ModelInfo:
    """Ops and I/O tensors of a `.tflite` flatbuffer (through TFLM's own schema reader)."""
    runtime = load_tflm()
    if data[4:8] != b"TFL3":
        raise McuError(f"{name} is not a TFLite flatbuffer (no TFL3 identifier); {INT8_FIX}.")
    try:
        model = runtime.convert_bytearray_to_object(bytearray(data))
    except Exception as exc:  # a damaged flatbuffer raises anything from struct.error to IndexError
        raise McuError(f"{name} could not be read as a TFLite model ({one_line(exc, 120)}); {INT8_FIX}.") from exc
    names = {v: k for k, v in vars(runtime.schema_fb.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k.lower() for k, v in vars(runtime.schema_fb.TensorType).items() if not k.startswith("_")}
    if len(model.subgraphs) != 1:
        raise McuError(f"{name} has {len(model.subgraphs)} subgraphs; edgekit sizes single-graph models.")
    graph = model.subgraphs[0]
    ops: list[str] = []
    for op in graph.operators or []:
        code = runtime.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
        op_name = names.get(code, f"BUILTIN_{code}")
        if op_name == "CUSTOM":
            op_name = "CUSTOM:" + (model.operatorCodes[op.opcodeIndex].customCode or b"?").decode(errors="replace")
        if op_name not in ops:
            ops.append(op_name)

    def info(index: int) -> TensorInfo:
        t = graph.tensors[index]
        q = t.quantization
        scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else 0.0
        zp = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None and len(q.zeroPoint) else 0
        return TensorInfo(tuple(int(d) for d in t.shape), types.get(t.type, str(t.type)), scale, zp)

    ins, outs = tuple(info(i) for i in graph.inputs), tuple(info(i) for i in graph.outputs)
    return ModelInfo(tuple(ops), len(graph.operators or []), ins[0], outs[0], len(data), ins, outs)


def require_int8(info: ModelInfo, name: str) -> None:
    """Refuse a model whose input or output is not int8 (float, dynamic-range, fp16), in one line."""
    tensors = [("input", t) for t in info.inputs or (info.input,)] + [
        ("output", t) for t in info.outputs or (info.output,)
    ]
    for role, t in tensors:
        if t.dtype != "int8":
            raise McuError(
                f"{name} has a {t.dtype} {role}; TFLM on microcontrollers runs full-integer models: {INT8_FIX}."
            )
    floats = [op for op in info.ops if op in {"DEQUANTIZE"}]
    if floats:
        raise McuError(f"{name} computes in float inside the graph (op DEQUANTIZE); {INT8_FIX}.")


class TflmModel:
    """One TFLM interpreter over a model held in memory, with a fixed arena (batch 1, as on a board)."""

    def __init__(self, data: bytes, name: str, arena_size: int) -> None:
        runtime = load_tflm()
        self.name, self.arena_size = name, arena_size
        with native_output() as native:
            try:
                self._interp = runtime.Interpreter.from_bytes(data, arena_size=arena_size)
                ok, error = True, ""
            except (RuntimeError, ValueError) as exc:
                ok, error = False, one_line(exc, 120)
        if not ok:
            missing = _MISSING_OP.search(native.text)
            if missing:
                raise McuError(
                    f"{name} uses op {missing.group(1)}, which TensorFlow Lite Micro does not implement; replace the "
                    f"layer that makes it (if it is a float-only op, {INT8_FIX})."
                )
            raise McuError(
                f"{name} does not load in TFLM with a {arena_size:,}-byte arena: {error} "
                f"({native.last_line() or 'no detail'})."
            )

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw int8 outputs `[N, classes]` for int8 inputs `[N, ...]`, one invoke per image."""
        out = []
        for i in range(len(x)):
            self._interp.set_input(x[i : i + 1], 0)
            self._interp.invoke()
            out.append(np.array(self._interp.get_output(0)).reshape(1, -1))
        return np.concatenate(out)

    def run_all(self, xs: list[np.ndarray], outputs: int) -> list[np.ndarray]:
        """Raw int8 outputs, one array `[N, ...]` per output index, for one int8 array per input index (TFLM's
        order), one invoke per row: every input set by its index, every output read by its own."""
        parts: list[list[np.ndarray]] = [[] for _ in range(outputs)]
        for i in range(len(xs[0])):
            for index, x in enumerate(xs):
                self._interp.set_input(x[i : i + 1], index)
            self._interp.invoke()
            for index in range(outputs):
                parts[index].append(np.array(self._interp.get_output(index)))
        return [np.concatenate(p) for p in parts]

    def allocations(self) -> str:
        """The recording allocator's report (after one invoke), which TFLM writes to stderr."""
        with native_output() as native:
            self._interp.print_allocations()
        return native.text


def try_arena(data: bytes, x: np.ndarray | list[np.ndarray], arena_size: int) -> bool:
    """True when the model allocates and runs one image (one row of each input) in `arena_size` bytes."""
    runtime = load_tflm()
    if arena_size < 1024:  # the wheel segfaults on arenas of a few hundred bytes (see arena.FLOOR)
        return False
    with native_output():
        try:
            interp = runtime.Interpreter.from_bytes(data, arena_size=arena_size)
            for index, feed in enumerate(x if isinstance(x, list) else [x]):
                interp.set_input(feed[:1], index)
            interp.invoke()
        except (RuntimeError, ValueError):
            return False
    return True
