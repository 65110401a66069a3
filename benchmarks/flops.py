"""Floating-point operations per image, counted from the model file itself (no TensorFlow).

FLOPs are 2 x multiply-accumulates of the compute-heavy ops (convolutions, fully connected layers,
matrix multiplies) at batch 1; activations, pooling, bias adds and softmax are left out, as is usual
for "model FLOPs" (they are under 2 % of the reference CNN). Quantized models count the same
operations (as "equivalent" FLOPs), so achieved GFLOP/s compares across precisions.

- `.tflite`: the op list and tensor shapes of a LiteRT interpreter created WITHOUT the XNNPACK
  delegate (a delegated graph shows one opaque DELEGATE op instead of the layers it took).
- `.onnx`: the graph with its batch dimension pinned to 1 and shapes inferred (with data
  propagation) by `onnx` (`pip install onnx`, part of the `train` extra); None when `onnx` is not
  installed.
- `.keras` and anything else: None (counting would need TensorFlow).

The reference CNN gives 2,103,808 FLOPs: conv 24x24x32 x 5x5x1 = 460,800 MACs, dense 4608x128 =
589,824 and dense 128x10 = 1,280, i.e. 1,051,904 MACs, for every precision and format.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runtimes.errors import EdgekitError, RuntimeUnavailableError

# TFLite builtin op names counted, and ONNX op types counted (with the input index of the weights
# for the quantized forms, whose other inputs are scales and zero points).
TFLITE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL")
ONNX_CONV_WEIGHT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
ONNX_MATMUL_B = {"MatMul": 1, "MatMulInteger": 1, "QLinearMatMul": 3}


def _prod(dims: Sequence[int]) -> int:
    return math.prod(int(d) for d in dims)


def flops_per_image(model_path: Path | str) -> int | None:
    """FLOPs (2 x MACs of conv / dense / matmul ops) for one image.

    Args:
        model_path: a `.tflite` or `.onnx` model (anything else gives None).

    Returns:
        The count, or None when it cannot be had here: a `.keras` model (needs TensorFlow), no
        `onnx` package, no TFLite runtime, or a graph whose shapes are not all known.

    Raises:
        EdgekitError: if the model file cannot be loaded (missing, corrupt; the runner's error).
    """
    path = Path(model_path)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        try:
            return _tflite_flops(path)
        except RuntimeUnavailableError:  # a board without LiteRT can still bench its ONNX models
            return None
    if suffix == ".onnx":
        return _onnx_flops(path)
    return None


# -- TFLite ----------------------------------------------------------------------------------------
def _tflite_flops(path: Path) -> int | None:
    from runtimes.tflite_runner import TFLiteRunner

    # Reference kernels only: with XNNPACK the counted ops would be folded into DELEGATE nodes.
    runner = TFLiteRunner(path, num_threads=1, use_xnnpack=False)
    with runner:
        # The interpreter's op list is not part of the runner's interface; only this module needs it.
        interp: Any = runner._interp
        shapes = {int(t["index"]): [int(d) for d in t["shape"]] for t in interp.get_tensor_details()}
        ops = interp._get_ops_details()
        in_shape = [int(d) for d in interp.get_input_details()[0]["shape"]]
    # Shapes are those of the allocated input batch (1 for edgekit's exports); divide in case not.
    batch = max(in_shape[0], 1) if in_shape else 1
    macs = 0
    for op in ops:
        name = op.get("op_name")
        if name not in TFLITE_OPS:
            continue
        ins = [shapes.get(int(i)) for i in op["inputs"] if int(i) >= 0]
        outs = [shapes.get(int(i)) for i in op["outputs"]]
        if len(ins) < 2 or not outs or ins[1] is None or outs[0] is None or ins[0] is None:
            return None
        macs += _tflite_op_macs(str(name), ins[0], ins[1], outs[0])
    return 2 * macs // batch


def _tflite_op_macs(name: str, a: list[int], w: list[int], out: list[int]) -> int:
    if name == "CONV_2D":
        # filter [out_ch, kh, kw, in_ch / groups]; one kh*kw*in_ch dot product per output element.
        return _prod(out) * _prod(w[1:])
    if name == "DEPTHWISE_CONV_2D":
        # filter [1, kh, kw, out_ch]; each output element reads one kh*kw window of one channel.
        return _prod(out) * w[1] * w[2]
    if name == "FULLY_CONNECTED":
        # weights [units, inputs]; inputs is the reduced dimension.
        return _prod(out) * w[-1]
    # BATCH_MATMUL: the options (adj_x) are not in the op details, but the reduced dimension K
    # follows anyway: a's last two dims are {M, K} in some order and the output's are [M, N].
    m = out[-2] if len(out) >= 2 else 1
    k = _prod(a[-2:]) // m if len(a) >= 2 and m else a[-1]
    return _prod(out) * k


# -- ONNX ------------------------------------------------------------------------------------------
def _onnx_flops(path: Path) -> int | None:
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends for a damaged file
        raise EdgekitError(f"{path} could not be read as an ONNX model: {type(exc).__name__}") from None
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    for value in graph.input:
        if value.name in initializers or not value.type.tensor_type.shape.dim:
            continue
        first = value.type.tensor_type.shape.dim[0]
        first.ClearField("dim_param")
        first.dim_value = 1
    try:
        # data_prop: tf2onnx's Flatten computes its target shape (Shape -> Slice -> Concat), which
        # plain inference leaves unknown, and with it the shapes of every dense layer.
        inferred = shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # onnx.shape_inference.InferenceError and checker errors: shapes unknown
        return None
    shapes = _onnx_shapes(inferred.graph)
    macs = 0
    for node in inferred.graph.node:
        op = node.op_type
        if op in ONNX_CONV_WEIGHT:
            out, w = _get(shapes, node.output, 0), _get(shapes, node.input, ONNX_CONV_WEIGHT[op])
            if out is None or w is None:
                return None
            # W is [M, C / group, kH, kW]: each output element is a C/group x kH x kW dot product.
            macs += _prod(out) * _prod(w[1:])
        elif op in ONNX_MATMUL_B or op == "Gemm":
            out, a = _get(shapes, node.output, 0), _get(shapes, node.input, 0)
            if out is None or a is None or not a:
                return None
            k = a[-1]
            if op == "Gemm" and any(attr.name == "transA" and attr.i for attr in node.attribute):
                k = a[0]
            macs += _prod(out) * k
    return 2 * macs


def _onnx_shapes(graph: Any) -> dict[str, list[int] | None]:
    """Static shape of every named tensor (None when a dimension is symbolic or unknown)."""
    shapes: dict[str, list[int] | None] = {}
    for init in graph.initializer:
        shapes[init.name] = [int(d) for d in init.dims]
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if value.name in shapes:
            continue
        tensor = value.type.tensor_type
        if not tensor.HasField("shape"):
            shapes[value.name] = None
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        shapes[value.name] = None if any(d is None for d in dims) else [int(d) for d in dims if d is not None]
    return shapes


def _get(shapes: dict[str, list[int] | None], names: Sequence[str], index: int) -> list[int] | None:
    return shapes.get(names[index]) if index < len(names) else None
