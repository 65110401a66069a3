"""Slowdown evidence for OpenVINO IR artifacts: the CPU plugin's performance counters, and the paragraph they support.

The model is compiled as edgekit's runner compiles it (1 thread, LATENCY hint, 1 stream, f32 inference precision,
static batch-1 shape) plus `PERF_COUNT=YES`; `InferRequest.get_profiling_info()` then gives, after each call, every
node the plugin kept: its type, the kernel it chose (`exec_type`, e.g. `brgconv_avx512_amx_I8`, `jit_avx2_f32`,
`ref_any_f32`) and its real time. Medians over many calls, per node. A node's name is its source's (the ONNX
node's, so a Keras layer's scope such as `model/conv2d/...`), which pairs the int8 graph's nodes with the fp32
graph's by layer.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.diagnosis.evidence import cpu_features, cpu_sentence, time_calls

# As `runtimes.openvino_runner.OpenVINORunner(num_threads=1)` compiles a model, plus the counters.
PROFILE_CONFIG = {
    "PERFORMANCE_HINT": "LATENCY",
    "NUM_STREAMS": "1",
    "INFERENCE_NUM_THREADS": "1",
    "INFERENCE_PRECISION_HINT": "f32",
    "PERF_COUNT": "YES",
}
# Nodes that only move or convert data: work an int8 graph adds around its integer kernels.
_PLUMBING = {"Reorder", "Convert", "FakeQuantize", "Transpose"}


def _compile(path: Path, shape: tuple[int, ...], *, profile: bool) -> Any:
    """A request for the IR compiled for `shape` as the runner compiles it (with the counters when `profile`)."""
    from runtimes.capture import native_output
    from runtimes.openvino_import import import_openvino

    ov = import_openvino()
    config = dict(PROFILE_CONFIG)
    if not profile:
        config.pop("PERF_COUNT")
    with native_output():
        core = ov.Core()
        model = core.read_model(str(path), str(path.with_suffix(".bin")))
        model.reshape(list(shape))
        return core.compile_model(model, "CPU", config).create_infer_request()


def ov_time(path: Path, image: np.ndarray) -> float:
    """Median wall time of one batch-1 call in ms, compiled as the runner compiles it (no counters)."""
    request = _compile(path, tuple(image.shape), profile=False)
    x = np.ascontiguousarray(image, dtype=np.float32)
    request.infer({0: x})  # binds the input; the timed calls reuse it
    return time_calls(request.infer)


def ov_profile(path: Path, image: np.ndarray, runs: int = 200, warmup: int = 20) -> dict[str, Any]:
    """Per-node medians of the CPU plugin's performance counters over `runs` batch-1 calls.

    Returns:
        runs, the median call latency (µs, OpenVINO's own timing), and the executed nodes sorted by time: name,
        layer scope, node type, kernel (`exec_type`) and median real time in µs.
    """
    request = _compile(path, tuple(image.shape), profile=True)
    request.infer({0: np.ascontiguousarray(image, dtype=np.float32)})
    for _ in range(warmup):
        request.infer()
    times: dict[str, list[float]] = {}
    kinds: dict[str, tuple[str, str]] = {}
    latency: list[float] = []
    for _ in range(runs):
        request.infer()
        latency.append(float(request.latency) * 1000)
        for info in request.get_profiling_info():
            if str(info.status).endswith("EXECUTED"):
                times.setdefault(info.node_name, []).append(info.real_time.total_seconds() * 1e6)
                kinds[info.node_name] = (str(info.node_type), str(info.exec_type))
    nodes: list[dict[str, Any]] = [
        {"node": name, "layer": layer_scope(name), "type": kinds[name][0], "exec_type": kinds[name][1], "us": us}
        for name, us in ((n, statistics.median(t)) for n, t in times.items())
    ]
    nodes.sort(key=lambda n: -n["us"])
    return {
        "runs": runs,
        "latency_median_us": statistics.median(latency),
        "nodes": nodes,
        "total_us": sum(n["us"] for n in nodes),
    }


def layer_scope(node: str) -> str:
    """`model/dense_1/MatMul/DequantizationMultiply` -> `model/dense_1`: the Keras layer a node came from (the
    name without its last two parts when it has three or more, else the name)."""
    parts = node.split("/")
    return "/".join(parts[:2]) if len(parts) >= 3 else node


def explain_openvino(path: Path, sibling_path: Path, image: np.ndarray) -> dict[str, Any]:
    """The evidence record: both artifacts' counters and this CPU."""
    return {
        "profile": ov_profile(path, image),
        "sibling_profile": ov_profile(sibling_path, image),
        "cpu": cpu_features(),
    }


def by_layer(nodes: list[dict[str, Any]]) -> dict[str, tuple[float, str]]:
    """µs per layer scope, and the kernels its nodes ran."""
    out: dict[str, tuple[float, str]] = {}
    for n in nodes:
        us, kernels = out.get(n["layer"], (0.0, ""))
        out[n["layer"]] = (us + n["us"], ", ".join(k for k in (kernels, n["exec_type"]) if k))
    return out


def _top(nodes: list[dict[str, Any]], k: int) -> str:
    return ", ".join(f"{n['type']} {n['exec_type']} {n['us']:.0f}" for n in nodes[:k])


def openvino_reason(sibling: str, ev: dict[str, Any], headline: str) -> str:
    """The paragraph: where the calls' time goes in both graphs, the layer that changed most, and the CPU."""
    prof, base, cpu = ev["profile"], ev["sibling_profile"], ev["cpu"]
    parts = [
        headline,
        f"OpenVINO's performance counters ({prof['runs']} batch-1 runs, 1 thread, f32 inference precision, medians; "
        f"counting adds overhead, so compare the two rather than with the timing above): a call takes "
        f"{prof['latency_median_us']:.0f} µs against {base['latency_median_us']:.0f} µs for {sibling}, of which "
        f"{len(prof['nodes'])} executed nodes take {prof['total_us']:.0f} µs against {len(base['nodes'])} taking "
        f"{base['total_us']:.0f} µs (top, type kernel µs: {_top(prof['nodes'], 4)}; "
        f"{sibling}: {_top(base['nodes'], 3)}).",
    ]
    int8 = [n for n in prof["nodes"] if n["exec_type"].lower().endswith(("_i8", "_u8"))]
    if int8:
        kernels = ", ".join(sorted({n["exec_type"] for n in int8}))
        parts.append(f"{len(int8)} nodes run int8 kernels ({kernels}), {sum(n['us'] for n in int8):.0f} µs.")
    else:
        parts.append("No node runs an int8 kernel: the plugin computes this graph in float.")
    ref = [n for n in prof["nodes"] if n["exec_type"].startswith("ref")]
    if ref:
        parts.append(
            f"{len(ref)} nodes run OpenVINO's reference kernels ({', '.join(n['type'] for n in ref)}: "
            f"{sum(n['us'] for n in ref):.0f} µs), the slow fallback for what has no optimised kernel on this CPU."
        )
    plumbing = [n for n in prof["nodes"] if n["type"] in _PLUMBING]
    if plumbing:
        parts.append(
            f"{len(plumbing)} Reorder/Convert/FakeQuantize nodes run ({sum(n['us'] for n in plumbing):.0f} µs): "
            "layout and precision changes around the int8 kernels."
        )
    mine, theirs = by_layer(prof["nodes"]), by_layer(base["nodes"])
    common = [layer for layer in mine if layer in theirs]
    if common:
        layer = max(common, key=lambda name: abs(mine[name][0] - theirs[name][0]))
        parts.append(
            f"The layer that changed most is {layer}: {mine[layer][0]:.0f} µs ({mine[layer][1]}) against "
            f"{theirs[layer][0]:.0f} µs ({theirs[layer][1]}) in {sibling}."
        )
    parts.append(cpu_sentence(cpu))
    return " ".join(parts)
