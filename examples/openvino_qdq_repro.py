"""Minimal repro: OpenVINO's CPU plugin refuses an int8-activation (S8S8) QDQ convolution in bf16.

One Conv in ONNX Runtime's QDQ form (Q/DQ on the input, DQ on per-channel int8 weights, Q/DQ on the output),
as `quantize_static` writes it for edgekit's `arm64` int8 target (int8 activations). With uint8 activations (the
`portable` and `x86-vnni` targets) it compiles. Run: `python examples/openvino_qdq_repro.py` (needs onnx and
openvino). Findings: benchmarks/results/openvino-qdq-2026-12-05-x86_64-xeon-2cpu.md.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np


def conv_qdq(activations: str) -> bytes:
    """Input -> Q/DQ -> Conv(DQ int8 weights) -> Q/DQ (the Relu in the zero point); `activations`: int8 or uint8."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    act = np.int8 if activations == "int8" else np.uint8
    # Activations in [0, 1] (the input) and >= 0 (after a Relu): zero point -128 in int8, 0 in uint8. ORT's
    # quantizer then drops the Relu, which the output's zero point already clamps, as it does in edgekit's file.
    zero = np.array(np.iinfo(act).min, dtype=act)
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array(1 / 255, np.float32), "s"),
        numpy_helper.from_array(zero, "z"),
        numpy_helper.from_array(rng.integers(-127, 128, (8, 1, 3, 3)).astype(np.int8), "w_q"),
        numpy_helper.from_array(np.full(8, 0.01, np.float32), "w_s"),
        numpy_helper.from_array(np.zeros(8, np.int8), "w_z"),
        numpy_helper.from_array(np.array(0.05, np.float32), "o_s"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "s", "z"], ["x_dq"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], axis=0),
        helper.make_node("Conv", ["x_dq", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["c", "o_s", "z"], ["r_q"]),
        helper.make_node("DequantizeLinear", ["r_q", "o_s", "z"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 28, 28])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())


def main() -> int:
    import openvino as ov

    core = ov.Core()
    print(ov.get_version(), core.get_property("CPU", "FULL_DEVICE_NAME"))
    print("plugin default precision:", core.get_property("CPU", "INFERENCE_PRECISION_HINT"))
    with tempfile.TemporaryDirectory() as work:
        for activations in ("uint8", "int8"):
            path = Path(work) / f"{activations}.onnx"
            path.write_bytes(conv_qdq(activations))
            for precision in ("f32", "bf16"):
                try:
                    core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": precision})
                    result = "compiles"
                except RuntimeError as exc:
                    result = "FAILS: " + [ln for ln in str(exc).splitlines() if ln.strip()][-1]
                print(f"{activations} activations, {precision}: {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
