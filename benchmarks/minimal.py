"""The bare loops `benchmarks.harness_check` compares the harness with: a runtime used directly.

Written the way a user would (as benchmarks/anchors/minimal_loop.py does): LiteRT
`set_tensor`/`invoke`/`get_tensor`, ONNX Runtime `session.run`, OpenVINO `request.infer`, on input already
converted to the model's input type, one `perf_counter_ns` pair around each call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.latency import LatencyStats, summarise
from runtimes.capture import native_output
from runtimes.spec import TensorSpec

_NS_PER_S = 1_000_000_000


def minimal_tflite(model: Path, backend: str, threads: int, shape: tuple[int, ...]) -> Callable[[np.ndarray], object]:
    from runtimes.tflite_runner import load_interpreter_module

    _, module = load_interpreter_module(backend)
    with native_output():
        interp = module.Interpreter(model_path=str(model), num_threads=threads)
        interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(shape), strict=False)
        interp.allocate_tensors()
    (inp,), (outp,) = interp.get_input_details(), interp.get_output_details()
    in_index, out_index = int(inp["index"]), int(outp["index"])
    set_tensor, invoke, get_tensor = interp.set_tensor, interp.invoke, interp.get_tensor

    def call(x: np.ndarray) -> object:
        set_tensor(in_index, x)
        invoke()
        return get_tensor(out_index)

    return call


def minimal_ort(model: Path, threads: int) -> Callable[[np.ndarray], object]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
    inp, outp = session.get_inputs()[0], session.get_outputs()[0]
    in_name, out_name = inp.name, outp.name
    run = session.run

    def call(x: np.ndarray) -> object:
        return run([out_name], {in_name: x})

    return call


def minimal_openvino(model: Path, shape: tuple[int, ...], config: dict[str, str]) -> Callable[[np.ndarray], object]:
    """OpenVINO's CPU plugin used directly: the IR compiled for `shape` with `config`, then `request.infer()`.

    The input is bound once as a tensor sharing `x`'s memory (again only for a new array), the fastest public way
    from Python: passing the array to each call (`request.infer({0: x})`) cost 35-45 µs more per call on the
    reference CNN (2-vCPU Xeon, 1 thread; 120 µs vs 160 µs), which a loop on one input need not pay.
    """
    from runtimes.openvino_import import import_openvino

    ov = import_openvino()
    with native_output():
        core = ov.Core()
        net = core.read_model(str(model), str(model.with_suffix(".bin")))
        net.reshape(list(shape))
        request = core.compile_model(net, "CPU", config).create_infer_request()
    infer, bind, fed = request.infer, request.set_input_tensor, [np.empty(0)]

    def call(x: np.ndarray) -> object:
        if x is not fed[0]:
            bind(ov.Tensor(x, shared_memory=True))
            fed[0] = x  # keeps the shared memory alive
        return infer()

    return call


def time_minimal(
    call: Callable[[np.ndarray], object],
    x: np.ndarray,
    *,
    warmup_runs: int,
    warmup_seconds: float,
    min_runs: int,
    min_seconds: float,
) -> LatencyStats:
    """The minimal loop: warm-up, then one `perf_counter_ns` pair around each call, as `measure_latency` does.

    Args:
        call: one inference on `x`.
        x: the input.
        warmup_runs: minimum warm-up calls.
        warmup_seconds: minimum warm-up duration.
        min_runs: minimum timed calls.
        min_seconds: minimum timed duration.

    Returns:
        The calls summarised by the harness's own `summarise`, so both sides share the statistics.
    """
    clock = time.perf_counter_ns
    start, done = clock(), 0
    while done < warmup_runs or clock() - start < warmup_seconds * _NS_PER_S:
        call(x)
        done += 1
    durations: list[int] = []
    start = clock()
    while len(durations) < min_runs or clock() - start < min_seconds * _NS_PER_S:
        t0 = clock()
        call(x)
        durations.append(clock() - t0)
    total_s = (clock() - start) / _NS_PER_S
    return summarise(durations, batch_size=int(x.shape[0]), threads=1, total_s=total_s)


def minimal_input(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """`x` in the model's input type, converted the plain way a user would (minimal_loop.py's recipe).

    Independent of the runner's own conversion on purpose: both sides must get equal input.
    """
    if spec.dtype == "float32":
        return x
    info = np.iinfo(np.dtype(spec.dtype))
    scale, zero_point = spec.scale or 1.0, spec.zero_point or 0
    q = np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(spec.dtype)
    return np.ascontiguousarray(q)
