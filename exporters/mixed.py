"""Full-int8 exports with chosen Keras layers kept in float (TFLite and ONNX Runtime), named by Keras layer.

"Keeping layer L in float" means L's computation *and its output tensor* stay float: L's ops are excluded
from quantization, and so are the ops that read L's output, because neither toolchain has a static-int8
op that takes a float input (the consumer would re-quantize the tensor with the same per-tensor scale,
which is exactly what an outlier channel ruins). Everything else is int8 as in `tflite-int8`/`onnx-int8`.

- TFLite: the converter calibrates once, then `tf.lite.experimental.QuantizationDebugger`
  (`QuantizationDebugOptions(denylisted_nodes=[...], fully_quantize=True)`, `get_nondebug_quantized_model()`)
  re-quantizes with the chosen ops left in float. Ops are TFLITE_BUILTINS_INT8 + TFLITE_BUILTINS (float
  kernels for the kept ops, DEQUANTIZE/QUANTIZE around them); input and output stay int8, like tflite-int8.
- ONNX: `onnxruntime.quantization.quantize_static(..., nodes_to_exclude=[...])` on the pre-processed fp32
  graph (static QDQ, per-channel int8 weights, float I/O, the target's recipe: all like onnx-int8).

An ONNX file as the source (`OnnxFileMixed`, `export_onnx_file_mixed`) has no Keras layers: its units are the
nodes of the pre-processed graph that hold weights (Conv, Gemm, MatMul with an initializer of rank 2 or more),
named as in that graph (`MatMul/MatMulAddFusion` after pre-processing fused the file's MatMul and Add); a node
without weights (Relu, Softmax, Flatten) belongs to the unit that feeds it, as a Keras activation does.

Keras layers are found in the converted graphs by name: both converters keep the layer name as a component
of their op/tensor names (`model_1/dense_outlier_1/MatMul`); ops that carry no layer name (a TFLite
SOFTMAX output called `StatefulPartitionedCall:0`) belong to the layer of the op that feeds them.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import ExportFormat, ExportResult, Precision, artifact_filename
from exporters.check import check_artifact
from exporters.errors import ExportError, UnsupportedPrecisionError
from exporters.int8_recipe import ONNX_RECIPES, Int8Target, quantization_record
from exporters.quiet import captured
from runtimes.errors import one_line
from runtimes.files import atomic_path, ensure_dir
from runtimes.tf_import import import_tensorflow

# Ops that only compute shapes: never "a layer's work" and never worth keeping in float.
_SHAPE_OPS = frozenset({"SHAPE", "STRIDED_SLICE", "PACK", "Shape", "Gather", "Cast", "Slice", "Concat", "Unsqueeze"})


@dataclass(frozen=True)
class _Op:
    name: str  # what the toolchain's exclusion list takes: TFLite output tensor name, ONNX node name
    type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    label: str  # the names searched for layer names


def _components(name: str) -> set[str]:
    return {re.sub(r":\d+$", "", c) for part in name.split(";") for c in part.split("/")}


class _Graph:
    """A converted graph's ops with the Keras layer each belongs to."""

    def __init__(self, ops: list[_Op], layer_names: list[str], model_name: str) -> None:
        self.ops = ops
        comps = set().union(*(_components(op.label) for op in ops)) if ops else set()
        # TF uniquifies scopes (`dense` -> `dense_1`); the suffix the model's own scope got is the one
        # every layer scope got, so `dense_1` is layer `dense` when the model scope is `model_1`.
        hits = sorted((c for c in comps if re.fullmatch(re.escape(model_name) + r"(_\d+)*", c)), key=len)
        suffix = hits[0][len(model_name) :] if hits else ""
        exact = {n: n for n in layer_names}
        exact.update({n + suffix: n for n in layer_names})
        producer = {t: op for op in ops for t in op.outputs}
        self.owner: dict[str, str | None] = {}
        for op in ops:  # graph order: a producer is owned before its consumers
            found = [exact[c] for c in _components(op.label) if c in exact]
            if not found and op.type not in _SHAPE_OPS:
                feeding = [producer[t] for t in op.inputs if t in producer]
                found = [o for f in feeding[:1] if (o := self.owner.get(f.name))]
            self.owner[op.name] = found[0] if found else None
        self.layers = [n for n in layer_names if any(v == n for v in self.owner.values())]

    def ops_of(self, layer: str) -> list[_Op]:
        return [op for op in self.ops if self.owner[op.name] == layer and op.type not in _SHAPE_OPS]

    def check(self, layers: Iterable[str], what: str) -> None:
        missing = [n for n in layers if n not in self.layers]
        if missing:
            raise ExportError(
                f"{what}: no op of layer(s) {', '.join(missing)} found; layers with ops: {', '.join(self.layers)}."
            )

    def float_ops(self, layers: Iterable[str]) -> list[str]:
        """Op names to exclude so that `layers` and their output tensors stay float."""
        own = [op for n in layers for op in self.ops_of(n)]
        own_names = {op.name for op in own}
        out_tensors = {t for op in own for t in op.outputs}
        readers = [op for op in self.ops if op.name not in own_names and out_tensors & set(op.inputs)]
        return list(dict.fromkeys([op.name for op in own] + [op.name for op in readers]))

    def all_but(self, layer: str) -> list[str]:
        """Op names to exclude so that only `layer` is quantized."""
        own = {op.name for op in self.ops_of(layer)}
        return [op.name for op in self.ops if op.name not in own]


class _NodeGraph(_Graph):
    """An ONNX file's graph with weighted nodes as its units (no Keras layers to name them)."""

    def __init__(self, ops: list[_Op], weights: dict[str, int]) -> None:
        self.ops = ops
        producer = {t: op for op in ops for t in op.outputs}
        self.owner = {}
        for op in ops:  # graph order: a producer is owned before its consumers
            if any(weights.get(t, 0) >= 2 for t in op.inputs):
                self.owner[op.name] = op.name
                continue
            feeding = [producer[t] for t in op.inputs if t in producer]
            inherited = self.owner.get(feeding[0].name) if feeding and op.type not in _SHAPE_OPS else None
            self.owner[op.name] = inherited
        self.layers = [op.name for op in ops if self.owner[op.name] == op.name]

    def check(self, layers: Iterable[str], what: str) -> None:
        missing = [n for n in layers if n not in self.layers]
        if missing:
            raise ExportError(
                f"{what}: no weighted node named {', '.join(missing)} in the pre-processed graph; its weighted "
                f"nodes: {', '.join(self.layers) or 'none'}."
            )


# -- TFLite --------------------------------------------------------------------------------------------------
class TFLiteMixed:
    """Calibrates once; `quantize(exclude)` returns an int8 flatbuffer with the named ops left in float."""

    def __init__(self, model: Any, calibration: np.ndarray) -> None:
        tf = import_tensorflow()
        self._tf = tf
        cal = np.asarray(calibration, dtype=np.float32)

        def representative() -> Iterator[list[np.ndarray]]:
            for i in range(len(cal)):
                yield [cal[i : i + 1]]

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        self.notes: list[str] = []
        with captured(self.notes):
            self._debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=representative, debug_options=self._options([])
            )
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_content=self._debugger.calibrated_model)
        names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
        ops = []
        for d in interp._get_ops_details():  # the public API has no op list; the debugger uses the same
            outs = tuple(names[i] for i in d["outputs"] if i >= 0)
            ops.append(_Op(outs[0], d["op_name"], tuple(names[i] for i in d["inputs"] if i >= 0), outs, ";".join(outs)))
        self.graph = _Graph(ops, [layer.name for layer in model.layers], model.name)

    def _options(self, exclude: list[str]) -> Any:
        return self._tf.lite.experimental.QuantizationDebugOptions(fully_quantize=True, denylisted_nodes=exclude)

    def quantize(self, exclude: list[str]) -> bytes:
        with captured(self.notes):
            try:
                self._debugger.options = self._options(exclude)
            except ValueError as exc:
                # The setter stores the options, then builds an instrumented (debug) model and refuses it
                # when no quantized op is left to verify (e.g. every op but a Normalization kept in float).
                # The non-debug model below needs only the stored options.
                if "debug mode" not in str(exc):
                    raise
            return bytes(self._debugger.get_nondebug_quantized_model())


# -- ONNX ----------------------------------------------------------------------------------------------------
class OnnxMixed:
    """Converts and pre-processes once; `quantize(exclude, dest)` writes static int8 QDQ without those nodes."""

    def __init__(
        self, model: Any, calibration: np.ndarray, work: Path, target: Int8Target = Int8Target.PORTABLE
    ) -> None:
        import onnx
        from onnxruntime.quantization.shape_inference import quant_pre_process

        from exporters.onnx_export import DEFAULT_OPSET, INPUT_NAME, _convert_fp32, flatten_gemm_bias

        self.notes: list[str] = []
        self.target = target
        self.input_name = INPUT_NAME
        self._calibration = np.asarray(calibration, dtype=np.float32)
        fp32, self.pre = work / "fp32.onnx", work / "pre.onnx"
        with captured(self.notes):
            _convert_fp32(model, fp32, DEFAULT_OPSET)
            quant_pre_process(str(fp32), str(self.pre), skip_symbolic_shape=True)
            flatten_gemm_bias(self.pre)
        graph = onnx.load(str(self.pre)).graph
        ops = [
            _Op(n.name, n.op_type, tuple(n.input), tuple(n.output), ";".join([n.name, *n.output])) for n in graph.node
        ]
        self.graph = _Graph(ops, [layer.name for layer in model.layers], model.name)

    def quantize(self, exclude: list[str], dest: Path) -> None:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, quantize_static

        from exporters.onnx_export import _CalibrationReader

        class Reader(_CalibrationReader, CalibrationDataReader):  # type: ignore[misc]
            pass

        with captured(self.notes):
            quantize_static(
                str(self.pre),
                str(dest),
                Reader(self.input_name, self._calibration),
                nodes_to_exclude=exclude,
                **ONNX_RECIPES[self.target].quantize_options(),
            )
        onnx.checker.check_model(str(dest), full_check=True)


class OnnxFileMixed(OnnxMixed):
    """`OnnxMixed` for an fp32 ONNX file as the source: pre-processed once as onnx-int8 is, its units are the
    graph's weighted nodes (`_NodeGraph`), and calibration feeds the file's own input name."""

    def __init__(
        self,
        source: Path,
        input_name: str,
        calibration: np.ndarray,
        work: Path,
        target: Int8Target = Int8Target.PORTABLE,
    ) -> None:
        import onnx
        from onnxruntime.quantization.shape_inference import quant_pre_process

        from exporters.onnx_export import flatten_gemm_bias

        self.notes = []
        self.target = target
        self.input_name = input_name
        self._calibration = np.asarray(calibration, dtype=np.float32)
        self.pre = work / "pre.onnx"
        with captured(self.notes):
            quant_pre_process(str(source), str(self.pre), skip_symbolic_shape=True)
            flatten_gemm_bias(self.pre)
        model = onnx.load(str(self.pre))
        if _name_nodes(model.graph):  # the quantizer excludes nodes by name: every node needs its own
            onnx.save_model(model, str(self.pre))
        graph = model.graph
        weights = {t.name: len(t.dims) for t in graph.initializer}
        ops = [_Op(n.name, n.op_type, tuple(n.input), tuple(n.output), n.name) for n in graph.node]
        self.graph = _NodeGraph(ops, weights)


def _name_nodes(graph: Any) -> bool:
    """Name the nodes that have no name or share one (`<op_type>_<index>`); True when any was renamed."""
    seen: set[str] = set()
    renamed = False
    for i, node in enumerate(graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
            renamed = True
        seen.add(node.name)
    return renamed


def _written(
    path: Path,
    fmt: ExportFormat,
    specs: Any,
    start: float,
    notes: list[str],
    float_layers: list[str],
    target: Int8Target,
) -> ExportResult:
    """The record of a written int8-mixed file: its float layers and its int8 recipe."""
    recipe = quantization_record(fmt, Precision.INT8_MIXED, target)
    return ExportResult.written(
        path, fmt, Precision.INT8_MIXED, specs, start, notes, float_layers=list(float_layers), quantization=recipe
    )


def _need_calibration(calibration_data: np.ndarray | None) -> np.ndarray:
    if calibration_data is None or len(calibration_data) == 0:
        raise UnsupportedPrecisionError("int8-mixed needs calibration images; pass calibration data.")
    return np.asarray(calibration_data, dtype=np.float32)


def export_tflite_mixed(
    model: Any,
    out_dir: Path,
    *,
    calibration_data: np.ndarray | None,
    float_layers: list[str],
    name: str | None = None,
    quantizer: TFLiteMixed | None = None,
) -> ExportResult:
    """Write a full-int8 `.tflite` (int8 input and output) with `float_layers` and their outputs in float.

    Args:
        model: the built Keras model.
        out_dir: directory for the artifact.
        calibration_data: float32 calibration images (as for tflite-int8).
        float_layers: Keras layer names to keep in float (may be empty: plain full int8).
        name: file name (default `model_int8_mixed.tflite`).
        quantizer: an already calibrated `TFLiteMixed` for this model (saves re-calibrating).

    Raises:
        ExportError: a layer name that matches no op, or conversion/check failure.
    """
    cal = _need_calibration(calibration_data)
    path = Path(out_dir) / (name or artifact_filename(ExportFormat.TFLITE, Precision.INT8_MIXED))
    ensure_dir(path.parent)
    start = time.perf_counter()
    try:
        q = quantizer or TFLiteMixed(model, cal)
        q.graph.check(float_layers, "TFLite int8-mixed")
        flatbuffer = q.quantize(q.graph.float_ops(float_layers))
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"TFLite int8-mixed conversion failed: {one_line(exc)}") from exc
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
        specs = check_artifact(tmp, cal)
    return _written(path, ExportFormat.TFLITE, specs, start, q.notes, float_layers, Int8Target.PORTABLE)


def export_onnx_mixed(
    model: Any,
    out_dir: Path,
    *,
    calibration_data: np.ndarray | None,
    float_layers: list[str],
    name: str | None = None,
    quantizer: OnnxMixed | None = None,
    target: Int8Target = Int8Target.PORTABLE,
) -> ExportResult:
    """Write a static-int8 QDQ `.onnx` (float I/O) with `float_layers` and their outputs in float.

    Args and errors as `export_tflite_mixed` (`quantizer`: an `OnnxMixed` for this model, whose target wins;
    `target`: the int8 recipe's CPU class, as for `export_onnx`).
    """
    cal = _need_calibration(calibration_data)
    path = Path(out_dir) / (name or artifact_filename(ExportFormat.ONNX, Precision.INT8_MIXED))
    ensure_dir(path.parent)
    start = time.perf_counter()
    with atomic_path(path) as tmp, tempfile.TemporaryDirectory(dir=path.parent, prefix=".onnx-mixed-") as work:
        try:
            q = quantizer or OnnxMixed(model, cal, Path(work), target)
            q.graph.check(float_layers, "ONNX int8-mixed")
            q.quantize(q.graph.float_ops(float_layers), tmp)
        except ExportError:
            raise
        except Exception as exc:
            raise ExportError(f"ONNX int8-mixed export failed: {one_line(exc)}") from exc
        specs = check_artifact(tmp, cal)
    return _written(path, ExportFormat.ONNX, specs, start, q.notes, float_layers, q.target)


def export_onnx_file_mixed(
    source: Path,
    out_dir: Path,
    *,
    input_name: str,
    calibration_data: np.ndarray | None,
    float_nodes: list[str],
    quantizer: OnnxFileMixed | None = None,
    target: Int8Target = Int8Target.PORTABLE,
) -> ExportResult:
    """Write `model_int8_mixed.onnx` from an fp32 ONNX file: static int8 QDQ (float I/O, the recipe of `target`)
    with `float_nodes` (weighted nodes of the pre-processed graph, `OnnxFileMixed.graph.layers`) and the nodes
    reading their outputs in float. Errors as `export_onnx_mixed`.
    """
    cal = _need_calibration(calibration_data)
    path = Path(out_dir) / artifact_filename(ExportFormat.ONNX, Precision.INT8_MIXED)
    ensure_dir(path.parent)
    start = time.perf_counter()
    with atomic_path(path) as tmp, tempfile.TemporaryDirectory(dir=path.parent, prefix=".onnx-mixed-") as work:
        try:
            q = quantizer or OnnxFileMixed(Path(source), input_name, cal, Path(work), target)
            q.graph.check(float_nodes, "ONNX int8-mixed")
            q.quantize(q.graph.float_ops(float_nodes), tmp)
        except ExportError:
            raise
        except Exception as exc:
            raise ExportError(f"ONNX int8-mixed export failed: {one_line(exc)}") from exc
        specs = check_artifact(tmp, cal)
    return _written(path, ExportFormat.ONNX, specs, start, q.notes, float_nodes, q.target)
