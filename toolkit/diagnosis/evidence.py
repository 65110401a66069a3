"""Evidence for the slowdown explainer, per runtime, and the paragraph it supports.

- TFLite/LiteRT: which ops the XNNPACK delegate took (`_get_ops_details()`: DELEGATE nodes and the
  built-in ops inside their partitions), the activation dtypes, and timings with XNNPACK on and off
  (the LiteRT Python interpreter has no per-op profiler).
- ONNX Runtime: per-op-type kernel time from ORT's profiler (`SessionOptions.enable_profiling`), the
  op types left after ORT's graph optimisations, and the CPU's int8 dot-product features.
"""

from __future__ import annotations

import bisect
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_Q_PLUMBING = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
_LAYOUT = {"Transpose", "ReorderInput", "ReorderOutput"}
# ORT op types by what they compute (after graph optimisation), to split a profile into int8 and float work.
_INT8_COMPUTE = {
    "QLinearConv",
    "QGemm",
    "QLinearMatMul",
    "MatMulInteger",
    "ConvInteger",
    "QLinearSoftmax",
    "QLinearAdd",
    "QLinearMul",
    "QLinearGlobalAveragePool",
    "QLinearAveragePool",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
}
_FLOAT_COMPUTE = {
    "Conv",
    "FusedConv",
    "Gemm",
    "FusedGemm",
    "MatMul",
    "FusedMatMul",
    "Softmax",
    "MaxPool",
    "Relu",
    "Add",
}


# -- shared ------------------------------------------------------------------------------------------
def cpu_features() -> dict[str, Any]:
    """This CPU for the speed evidence: its name and instruction-set class (`benchmarks.cpu.detect_cpu`)."""
    from benchmarks.cpu import detect_cpu
    from benchmarks.environment import cpu_model

    cpu = detect_cpu().to_dict()
    return {"machine": platform.machine(), "model": cpu_model() or platform.processor(), **cpu}


def time_calls(fn: Callable[[], Any], *, warmup: int = 10, min_runs: int = 200, min_seconds: float = 0.3) -> float:
    """Median wall time of `fn()` in ms (at least min_runs calls and min_seconds, at most ~3 s)."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
        if time.perf_counter() - start > 3.0 and len(samples) >= 20:
            break
    return statistics.median(samples)


def fmt_ms(ms: float) -> str:
    return f"{ms:.3f} ms" if ms < 10 else f"{ms:.1f} ms"


# -- TFLite ------------------------------------------------------------------------------------------
def _tflite_interpreter(path: Path, *, xnnpack: bool, threads: int = 1) -> tuple[str, Any]:
    from runtimes.capture import native_output
    from runtimes.tflite_runner import load_interpreter_module

    backend, module = load_interpreter_module()
    kwargs: dict[str, Any] = {"model_path": str(path), "num_threads": threads}
    if not xnnpack:
        resolver = getattr(module, "OpResolverType", None) or module.experimental.OpResolverType
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with native_output():
        interp = module.Interpreter(**kwargs)
        interp.allocate_tensors()
    return backend, interp


def tflite_ops(path: Path) -> dict[str, Any]:
    """Built-in ops, which of them run inside an XNNPACK DELEGATE node, and the activation dtypes."""
    backend, interp = _tflite_interpreter(path, xnnpack=True)
    ops = interp._get_ops_details()
    builtin = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {int(o): op for op in builtin for o in op["outputs"]}
    delegated: set[int] = set()
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    for d in delegates:
        boundary = {int(i) for i in d["inputs"]}
        stack = [int(o) for o in d["outputs"]]
        while stack:
            t = stack.pop()
            op = producer.get(t)
            if t in boundary or op is None or int(op["index"]) in delegated:
                continue
            delegated.add(int(op["index"]))
            stack.extend(int(i) for i in op["inputs"] if int(i) >= 0)
    rows = [
        {
            "op": op["op_name"],
            "delegated": int(op["index"]) in delegated,
            "types": sorted({np.dtype(t).name for t in op.get("result_types", [])}),
        }
        for op in builtin
    ]
    act_dtypes = sorted(
        {
            np.dtype(t).name
            for op in builtin
            if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "SOFTMAX")
            for t in op.get("result_types", [])
        }
    )
    profiler = any(hasattr(interp, a) for a in ("get_profiling_data", "experimental_get_profile", "profile"))
    return {
        "backend": backend,
        "delegate_nodes": len(delegates),
        "ops": rows,
        "activation_dtypes": act_dtypes,
        "per_op_profiler": profiler,
    }


def tflite_time(path: Path, image: np.ndarray, *, xnnpack: bool) -> float:
    _, interp = _tflite_interpreter(path, xnnpack=xnnpack)
    d = interp.get_input_details()[0]
    scale, zp = d["quantization"]
    data = image
    if np.dtype(d["dtype"]).kind in "iu" and scale:
        info = np.iinfo(d["dtype"])
        data = np.clip(np.rint(image / scale + zp), info.min, info.max).astype(d["dtype"])
    out_index = interp.get_output_details()[0]["index"]

    def call() -> None:
        interp.set_tensor(d["index"], data)
        interp.invoke()
        interp.get_tensor(out_index)

    return time_calls(call)


def _count(ops: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for op in ops:
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    return ", ".join(f"{k}×{v}" if v > 1 else k for k, v in counts.items())


def explain_tflite(entry: dict[str, Any], path: Path, sibling_path: Path, image: np.ndarray) -> dict[str, Any]:
    ops = tflite_ops(path)
    base_ops = tflite_ops(sibling_path)
    timings = {
        "xnnpack_on_ms": tflite_time(path, image, xnnpack=True),
        "xnnpack_off_ms": tflite_time(path, image, xnnpack=False),
        "sibling_xnnpack_on_ms": tflite_time(sibling_path, image, xnnpack=True),
        "sibling_xnnpack_off_ms": tflite_time(sibling_path, image, xnnpack=False),
    }
    return {"ops": ops, "sibling_ops": base_ops, "timings": timings, "cpu": cpu_features()}


def tflite_reason(sibling: str, ev: dict[str, Any], headline: str) -> str:
    ops, tm = ev["ops"], ev["timings"]
    heavy = [o for o in ops["ops"] if o["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D")]
    on_ref = [o for o in ops["ops"] if not o["delegated"]]
    parts = [headline]
    if ops["delegate_nodes"] == 0:
        parts.append(
            f"Its graph is not delegated: `_get_ops_details()` lists no DELEGATE node, so all {len(ops['ops'])} ops "
            f"({_count(ops['ops'])}) run on TFLite's built-in kernels, while {sibling} hands its "
            f"{sum(o['delegated'] for o in ev['sibling_ops']['ops'])} heavy ops to XNNPACK."
        )
        if "int16" in ops["activation_dtypes"]:
            parts.append(
                "Its activations are int16 (16x8 quantization); XNNPACK has no int16-activation kernels, so "
                "CONV_2D and FULLY_CONNECTED use the int16x8 reference kernels."
            )
    else:
        slow_heavy = [o for o in heavy if not o["delegated"]]
        parts.append(
            f"XNNPACK takes {sum(o['delegated'] for o in ops['ops'])} of its {len(ops['ops'])} ops "
            f"({ops['delegate_nodes']} DELEGATE node(s)); "
            + (
                f"these heavy ops stay on built-in kernels: {_count(slow_heavy)}."
                if slow_heavy
                else f"the ops left on built-in kernels are light ({_count(on_ref) or 'none'})."
            )
        )
    ratio_off = tm["xnnpack_off_ms"] / tm["xnnpack_on_ms"]
    parts.append(
        f"Timed here (batch 1, 1 thread, median): {fmt_ms(tm['xnnpack_on_ms'])} with XNNPACK and "
        f"{fmt_ms(tm['xnnpack_off_ms'])} without ({ratio_off:.2f}x), against {fmt_ms(tm['sibling_xnnpack_on_ms'])} "
        f"and {fmt_ms(tm['sibling_xnnpack_off_ms'])} for {sibling}"
        + (
            "; turning XNNPACK off barely changes it, which confirms that the delegate does not run this model."
            if 0.8 <= ratio_off <= 1.25 and ops["delegate_nodes"] == 0
            else "."
        )
    )
    if not ops["per_op_profiler"]:
        parts.append(
            f"The installed LiteRT Python interpreter ({ops['backend']}) offers no per-op profiler, so per-op "
            "times are not available; the XNNPACK on/off timing stands in for them."
        )
    if "cpu" in ev:
        parts.append(cpu_sentence(ev["cpu"], delegated=ops["delegate_nodes"] > 0))
    return " ".join(parts)


# -- ONNX Runtime ------------------------------------------------------------------------------------
def ort_profile(path: Path, image: np.ndarray, runs: int = 200, warmup: int = 20) -> dict[str, Any]:
    """Per-op-type kernel time (µs per inference) from ORT's profiler, and the optimised graph's ops.

    The first `warmup` runs (memory arena growth, first-touch) are left out of the sums.
    """
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgekit-diagnose-") as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort")
        so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for _ in range(warmup + runs):
            sess.run(None, {name: image})
        trace = Path(sess.end_profiling())
        events = json.loads(trace.read_text())
        optimized = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    # Kernel time per op type in each run, then the median over runs: robust to a noisy neighbour.
    spans = sorted(
        (float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0)))
        for e in events
        if e.get("cat") == "Session" and e.get("name") == "model_run"
    )[warmup:]
    starts = [a for a, _ in spans]
    per_run: list[dict[str, float]] = [{} for _ in spans]
    kernel_types: dict[str, set[str]] = {}
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        ts = float(e.get("ts", 0))
        k = bisect.bisect_right(starts, ts) - 1
        if k < 0 or ts > spans[k][1]:
            continue
        op = e.get("args", {}).get("op_name", "?")
        per_run[k][op] = per_run[k].get(op, 0.0) + float(e.get("dur", 0))
        for io in e.get("args", {}).get("input_type_shape", [])[:1]:
            kernel_types.setdefault(op, set()).update(io.keys())
    ops = {op for run in per_run for op in run}
    median_by_op = {op: statistics.median(run.get(op, 0.0) for run in per_run) for op in ops}
    median_by_op = dict(sorted(median_by_op.items(), key=lambda kv: -kv[1]))
    totals = [sum(run.values()) for run in per_run]
    return {
        "runs": len(spans),
        "warmup_runs_excluded": warmup,
        "statistic": "median over runs of each op type's summed kernel time",
        "kernel_us_per_inference": median_by_op,
        "kernel_total_us": statistics.median(totals) if totals else 0.0,
        "model_run_median_us": statistics.median(b - a for a, b in spans) if spans else None,
        "optimized_ops": optimized,
        "kernel_input_types": {k: sorted(v) for k, v in kernel_types.items()},
    }


def ort_time(path: Path, image: np.ndarray) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return time_calls(lambda: sess.run(None, {name: image}))


def explain_onnx(entry: dict[str, Any], path: Path, sibling_path: Path, image: np.ndarray) -> dict[str, Any]:
    return {
        "profile": ort_profile(path, image),
        "sibling_profile": ort_profile(sibling_path, image),
        "cpu": cpu_features(),
    }


def _group(profile: dict[str, Any]) -> dict[str, float]:
    groups = {"int8 compute": 0.0, "float compute": 0.0, "quantize/dequantize": 0.0, "layout": 0.0, "other": 0.0}
    for op, us in profile["kernel_us_per_inference"].items():
        if op in _INT8_COMPUTE:
            groups["int8 compute"] += us
        elif op in _Q_PLUMBING:
            groups["quantize/dequantize"] += us
        elif op in _LAYOUT:
            groups["layout"] += us
        elif op in _FLOAT_COMPUTE:
            groups["float compute"] += us
        else:
            groups["other"] += us
    return groups


def onnx_reason(sibling: str, ev: dict[str, Any], headline: str) -> str:
    prof, base, cpu = ev["profile"], ev["sibling_profile"], ev["cpu"]
    g, gb = _group(prof), _group(base)
    total, base_total = prof["kernel_total_us"], base["kernel_total_us"]
    run, base_run = prof["model_run_median_us"] or 0.0, base["model_run_median_us"] or 0.0
    nodes, base_nodes = len(prof["optimized_ops"]), len(base["optimized_ops"])
    top = ", ".join(f"{op} {us:.0f}" for op, us in list(prof["kernel_us_per_inference"].items())[:5])
    base_top = ", ".join(f"{op} {us:.0f}" for op, us in list(base["kernel_us_per_inference"].items())[:4])
    parts = [headline]
    parts.append(
        f"ORT's profiler ({prof['runs']} batch-1 runs, 1 thread, medians; profiling adds overhead, so compare the "
        f"two rather than with the timing above): a run takes {run:.0f} µs against {base_run:.0f} µs for {sibling}, "
        f"of which kernels take {total:.0f} µs against {base_total:.0f} µs, over {nodes} nodes against "
        f"{base_nodes} after ORT's graph optimisations (top ops, µs: {top}; {sibling}: {base_top})."
    )
    plumbing = g["quantize/dequantize"] + g["layout"]
    n_q = sum(op in _Q_PLUMBING for op in prof["optimized_ops"])
    n_layout = sum(op in _LAYOUT for op in prof["optimized_ops"])
    int8_ops = ", ".join(sorted({op for op in prof["optimized_ops"] if op in _INT8_COMPUTE})) or "none"
    if total > 0:
        compute = (
            f"the int8 compute kernels ({int8_ops}) take {g['int8 compute']:.0f} µs against "
            f"{gb['float compute']:.0f} µs of float compute in {sibling}"
        )
        faster = g["int8 compute"] < gb["float compute"]
        parts.append(
            f"The int8 graph keeps {n_q} QuantizeLinear/DequantizeLinear and {n_layout} Transpose/Reorder nodes, "
            f"which take {plumbing:.0f} µs ({100 * plumbing / total:.0f} % of its kernel time), work the fp32 graph "
            f"does not do; {compute}"
            + (
                ", so the int8 arithmetic itself is faster and the extra nodes (and the per-node dispatch cost of "
                f"{nodes - base_nodes:+d} nodes) eat the gain."
                if faster
                else ", so even the int8 arithmetic is not faster here."
            )
        )
    if "DynamicQuantizeLinear" in prof["kernel_us_per_inference"]:
        parts.append("DynamicQuantizeLinear recomputes activation ranges on every inference.")
    float_ops = sorted({op for op in prof["optimized_ops"] if op in _FLOAT_COMPUTE})
    if float_ops:
        parts.append(
            f"{', '.join(float_ops)} still run{'s' if len(float_ops) == 1 else ''} in float between "
            f"DequantizeLinear and QuantizeLinear ({g['float compute']:.0f} µs)."
        )
    u8 = sorted(op for op, types in prof["kernel_input_types"].items() if "uint8" in types and op in _INT8_COMPUTE)
    if u8:
        parts.append(f"The int8 activations run as uint8 in {', '.join(u8)} (ORT's x86 S8→U8 conversion).")
    parts.append(cpu_sentence(cpu))
    return " ".join(parts)


def cpu_sentence(cpu: dict[str, Any], *, delegated: bool = True) -> str:
    """What this CPU's instruction set means for int8 speed (`cpu`: `cpu_features()`).

    `delegated`: False when a TFLite graph is not run by XNNPACK, so the built-in kernels, not the CPU's int8
    instructions, decide its speed.
    """
    feats = set(cpu.get("features") or [])
    name = f"This CPU ({cpu.get('model') or 'unknown'}; {cpu.get('isa_class', 'unknown class')})"
    if not delegated:
        return f"{name}: its int8 instructions do not matter while the graph runs on the built-in kernels."
    if cpu.get("arch") == "x86-64":
        dot = next((f for f in ("amx", "avx512_vnni", "avx_vnni") if f in feats), None)
        if dot is not None:
            return (
                f"{name} has {dot}, so int8 dot products are native: if int8 is slower here, it is not missing "
                "hardware support but the fixed per-node costs (quantize/dequantize, layout), which weigh as much "
                "as the arithmetic in a model this small."
            )
        if "avx2" in feats:
            return (
                f"{name} has AVX2 but no VNNI: each int8 dot product takes several instructions (vpmaddubsw + "
                "vpmaddwd), so int8 kernels gain little or nothing over fp32 FMA here, while on a CPU with VNNI (or "
                "an Arm core with the dot product) int8 is usually the faster one: the ranking belongs to this CPU "
                "class, so measure on the target (`edgekit bench --remote`)."
            )
        return (
            f"{name} has neither AVX2 nor VNNI: the runtimes fall back to SSE int8 kernels, which gain little over "
            "fp32; on a CPU with VNNI or an Arm dot product int8 is usually faster."
        )
    if cpu.get("arch") == "arm64":
        if feats & {"asimddp", "i8mm"}:
            extensions = "asimddp, i8mm" if "i8mm" in feats else "asimddp"
            return f"{name} has the dot-product extension ({extensions}): int8 GEMM is native."
        return (
            f"{name} lacks the dot-product extension (asimddp): int8 GEMM widens to 16 bits, so int8 gains less over "
            "fp32 than on a core with it (Cortex-A76, Raspberry Pi 5)."
        )
    return f"{name}: features {', '.join(sorted(feats)) or 'unknown'}."
