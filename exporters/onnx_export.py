"""Keras -> ONNX fp32 (tf2onnx `from_function`) and ONNX int8 (static QDQ, per-channel, via ORT).

The int8 recipe follows the CPU class the export targets (`exporters.int8_recipe`): by default 7-bit
weights, which give the same answers on every x86-64 and Arm CPU.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import (
    SUPPORTED,
    ExportFormat,
    ExportResult,
    Precision,
    artifact_filename,
)
from exporters.check import check_artifact, check_named_artifact
from exporters.errors import ExportError, UnsupportedPrecisionError
from exporters.int8_recipe import ONNX_RECIPES, Int8Target, OnnxInt8Recipe, parse_target, quantization_record
from exporters.quiet import captured
from exporters.several import (
    CalibrationFeeds,
    check_feeds,
    has_several_tensors,
    keras_spec,
    onnx_proto,
    samples,
    single_feed,
)
from runtimes.errors import one_line
from runtimes.files import atomic_path
from runtimes.spec import ModelSpec
from runtimes.tf_import import import_tensorflow

DEFAULT_OPSET = 17
INPUT_NAME = "input"


def _convert_fp32(model: Any, dest: Path, opset: int) -> None:
    # tf2onnx's from_keras fails on Keras 3 Sequential models (KeyError 'keras_tensor_…'); a
    # tf.function with an explicit input signature converts the same graph reliably.
    tf = import_tensorflow()
    import onnx
    import tf2onnx

    if has_several_tensors(model):  # named inputs and outputs (exporters.several)
        proto, concrete = onnx_proto(model, keras_spec(model), opset)
        _freeze_captured_tensors(proto, concrete)
        onnx.checker.check_model(proto, full_check=True)
        onnx.save_model(proto, str(dest))
        return

    shape = [None, *[int(d) for d in model.input_shape[1:]]]
    dtype = tf.uint8 if str(getattr(model.inputs[0], "dtype", "float32")) == "uint8" else tf.float32
    signature = (tf.TensorSpec(shape, dtype, name=INPUT_NAME),)
    fn = tf.function(lambda x: model(x, training=False), input_signature=signature)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
    _freeze_captured_tensors(proto, fn.get_concrete_function())
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, str(dest))


def _freeze_captured_tensors(proto: Any, concrete: Any) -> None:
    """Turn graph inputs that are captured constants into initializers.

    tf2onnx freezes captured variables but leaves captured eager tensors as graph inputs; Keras 3 layers
    such as an adapted `Normalization` keep their statistics that way, which would give the ONNX file
    extra inputs (e.g. `norm/Sub/y:0`) that no caller can feed.
    """
    from onnx import numpy_helper

    values = {}
    for placeholder, value in zip(concrete.graph.internal_captures, concrete.captured_inputs, strict=False):
        if getattr(value, "dtype", None) is not None and value.dtype.name != "resource":
            values[placeholder.name] = value.numpy()
    inputs = list(proto.graph.input)
    for graph_input in inputs:
        if graph_input.name in values:
            proto.graph.initializer.append(numpy_helper.from_array(values[graph_input.name], graph_input.name))
            proto.graph.input.remove(graph_input)


class _CalibrationReader:
    """Feeds calibration samples one at a time, as onnxruntime.quantization expects: images of the one input,
    or one array per input name for several inputs."""

    def __init__(self, input_name: str, images: np.ndarray | CalibrationFeeds) -> None:
        self._iter: Iterator[dict[str, np.ndarray]] = (
            samples(images)
            if isinstance(images, Mapping)
            else ({input_name: images[i : i + 1].astype(np.float32)} for i in range(len(images)))
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)


def _quantize_int8(
    fp32: Path,
    dest: Path,
    calibration: np.ndarray | CalibrationFeeds,
    recipe: OnnxInt8Recipe,
    input_name: str = INPUT_NAME,
) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_CalibrationReader, CalibrationDataReader):  # type: ignore[misc]
        pass

    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".onnx-quant-") as work:
        pre = Path(work) / "pre.onnx"
        # Pre-processing fuses MatMul+Add into Gemm before quantization; the symbolic shape pass
        # would need sympy, which this static-shape model does not need.
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        flatten_gemm_bias(pre)
        quantize_static(str(pre), str(dest), Reader(input_name, calibration), **recipe.quantize_options())
    onnx.checker.check_model(str(dest), full_check=True)


def flatten_gemm_bias(path: Path) -> None:
    """Give each Gemm a 1-D bias where it holds a [1, N] one (rewrites `path` only when one is found).

    skl2onnx writes biases as [1, N] and pre-processing fuses MatMul+Add into Gemm with that bias; ONNX
    Runtime 1.32's per-channel bias check (`_adjust_weight_scale_for_int32_bias`) indexes the bias per output
    channel and fails on a 2-D one. [N] broadcasts exactly as [1, N] does, so the graph computes the same.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    users: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    changed = False
    for node in model.graph.node:
        bias = inits.get(node.input[2]) if node.op_type == "Gemm" and len(node.input) > 2 else None
        if bias is None or len(bias.dims) != 2 or bias.dims[0] != 1 or users[bias.name] != 1:
            continue
        bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias).reshape(-1), bias.name))
        changed = True
    if changed:
        onnx.save_model(model, str(path))


def export_onnx(
    model: Any,
    out_dir: Path,
    *,
    precision: Precision = Precision.FP32,
    calibration_data: np.ndarray | CalibrationFeeds | None = None,
    opset: int = DEFAULT_OPSET,
    target: Int8Target | str = Int8Target.PORTABLE,
    fp32_file: Path | None = None,
) -> ExportResult:
    """Convert a Keras model to `.onnx` in `out_dir`, checked with `onnx.checker` and ONNX Runtime.

    Args:
        model: a built Keras model (its ModelSpec says what it takes and gives); one with several inputs or
            outputs keeps the Keras input and output names in the graph (`exporters.several`).
        out_dir: directory for the artifact (created if missing).
        precision: `fp32`, or `int8` (static QDQ, per-channel int8 weights, the recipe of `target`).
        calibration_data: float32 samples for int8 calibration (required for `int8`): an array, or for
            several inputs one array per input name.
        opset: ONNX opset for the float graph.
        target: the CPU class the int8 file is for: `portable` (default: the same answers on every CPU),
            `x86-vnni` or `arm64` (full 8-bit weights for that class; see `exporters.int8_recipe`).
        fp32_file: for `int8`, the fp32 `.onnx` this function just wrote for the same `model` and `opset`:
            quantized as it is instead of converting the model a second time (an export step writes onnx-fp32
            before onnx-int8; tf2onnx is the costlier half of an int8 export).

    Returns:
        The artifact's `ExportResult`.

    Raises:
        UnsupportedPrecisionError: a precision ONNX export does not offer, or int8 without data.
        ExportError: conversion, quantization or the post-export check failed.
    """
    precision = Precision(precision)
    try:
        target = parse_target(target)
    except ValueError as exc:
        raise UnsupportedPrecisionError(str(exc)) from None
    if precision not in SUPPORTED[ExportFormat.ONNX]:
        raise UnsupportedPrecisionError(
            f"ONNX export offers {', '.join(p.value for p in SUPPORTED[ExportFormat.ONNX])}, "
            f"not {precision.value!r}; use TFLite for fp16 and int8-dynamic."
        )
    if precision is Precision.INT8 and (calibration_data is None or len(calibration_data) == 0):
        raise UnsupportedPrecisionError("ONNX int8 needs calibration images; pass calibration data.")
    spec = keras_spec(model) if has_several_tensors(model) else None
    cal: np.ndarray | CalibrationFeeds | None = None
    if precision is Precision.INT8:
        if spec is not None:
            cal = check_feeds(calibration_data, spec)
        elif isinstance(calibration_data, Mapping):
            cal = single_feed(calibration_data)
        else:
            cal = np.asarray(calibration_data, dtype=np.float32)
    path = Path(out_dir) / artifact_filename(ExportFormat.ONNX, precision)
    notes: list[str] = []
    start = time.perf_counter()
    with atomic_path(path) as tmp:
        with captured(notes):
            try:
                if precision is Precision.FP32:
                    _convert_fp32(model, tmp, opset)
                elif fp32_file is not None:
                    assert cal is not None
                    _quantize_int8(Path(fp32_file), tmp, cal, ONNX_RECIPES[target])
                else:
                    assert cal is not None
                    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".onnx-fp32-") as work:
                        fp32 = Path(work) / "fp32.onnx"
                        _convert_fp32(model, fp32, opset)
                        _quantize_int8(fp32, tmp, cal, ONNX_RECIPES[target])
            except ExportError:
                raise
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [""])[0]  # tf2onnx's first line names the problem
                raise ExportError(f"ONNX {precision.value} export failed: {one_line(first or exc)}") from exc
        file_spec = None
        if spec is not None:
            file_spec, specs = check_named_artifact(tmp, spec, cal if isinstance(cal, Mapping) else None)
        else:
            specs = check_artifact(tmp, cal if isinstance(cal, np.ndarray) else None)
    recipe = quantization_record(ExportFormat.ONNX, precision, target)
    return ExportResult.written(
        path, ExportFormat.ONNX, precision, specs, start, notes, quantization=recipe, model_spec=file_spec
    )


# -- an ONNX file as the source -----------------------------------------------------------------------
SOURCE_PRECISIONS = (Precision.FP32, Precision.FP16, Precision.INT8)  # what an ONNX source offers


def _convert_fp16(fp32: Path, dest: Path) -> None:
    """fp16 weights and compute with float32 inputs and outputs (`keep_io_types`), by ONNX Runtime's own float16
    converter (`onnxruntime.transformers.float16`, the maintained copy of onnxconverter-common's)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True, disable_shape_infer=False)
    _sort_nodes(model.graph)  # keep_io_types appends its input Casts at the end of the node list
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, str(dest))


def _sort_nodes(graph: Any) -> None:
    """Order `graph`'s nodes topologically (stable: a node stays where it was unless an input comes later)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    nodes, ordered = list(graph.node), []
    while nodes:
        rest = []
        for node in nodes:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(nodes):
            raise ExportError("the fp16 graph has a cycle or an input nothing produces; it cannot be ordered.")
        nodes = rest
    del graph.node[:]
    graph.node.extend(ordered)


def export_onnx_file(
    source: Path,
    out_dir: Path,
    *,
    precision: Precision,
    input_name: str,
    calibration_data: np.ndarray | CalibrationFeeds | None = None,
    target: Int8Target | str = Int8Target.PORTABLE,
    spec: ModelSpec | None = None,
) -> ExportResult:
    """An artifact made from an fp32 ONNX file (the run's reference, model.onnx): fp16 or int8 (static QDQ,
    per-channel, the recipe of `target`, calibrated on `calibration_data`).

    A file with several inputs or outputs passes its `spec` (the run's, named as the file names its tensors):
    int8 is calibrated on one array per input name, and the artifact is checked and described tensor by tensor
    (`ExportResult.model_spec`).

    The fp32 artifact of an ONNX source is the reference file itself (`toolkit.run.layout.ONNX_REFERENCE`), so
    it is not written again here.

    Raises:
        UnsupportedPrecisionError: a precision an ONNX source does not offer, or int8 without data.
        ExportError: conversion, quantization or the post-export check failed.
    """
    precision = Precision(precision)
    try:
        target = parse_target(target)
    except ValueError as exc:
        raise UnsupportedPrecisionError(str(exc)) from None
    if precision not in (Precision.FP16, Precision.INT8):
        offered = ", ".join(p.value for p in SOURCE_PRECISIONS)
        raise UnsupportedPrecisionError(f"an ONNX source offers {offered}, not {precision.value!r}.")
    if precision is Precision.INT8 and (calibration_data is None or len(calibration_data) == 0):
        raise UnsupportedPrecisionError("ONNX int8 needs calibration images; pass calibration data.")
    several = spec is not None and not spec.is_single
    cal: np.ndarray | CalibrationFeeds | None = None
    if spec is not None and several and (precision is Precision.INT8 or calibration_data is not None):
        cal = check_feeds(calibration_data, spec)  # fp16: the samples the post-export check runs
    elif isinstance(calibration_data, Mapping):
        cal = single_feed(calibration_data)
    elif calibration_data is not None:
        cal = np.asarray(calibration_data, dtype=np.float32)
    path = Path(out_dir) / artifact_filename(ExportFormat.ONNX, precision)
    path.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    start = time.perf_counter()
    with atomic_path(path) as tmp:
        with captured(notes):
            try:
                if precision is Precision.FP16:
                    _convert_fp16(Path(source), tmp)
                else:
                    assert cal is not None
                    _quantize_int8(Path(source), tmp, cal, ONNX_RECIPES[target], input_name)
            except ExportError:
                raise
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [""])[0]
                raise ExportError(f"ONNX {precision.value} export failed: {one_line(first or exc)}") from exc
        file_spec = None
        if spec is not None and several:
            file_spec, specs = check_named_artifact(tmp, spec, cal if isinstance(cal, Mapping) else None)
        else:
            specs = check_artifact(tmp, cal if isinstance(cal, np.ndarray) else None)
    recipe = quantization_record(ExportFormat.ONNX, precision, target)
    return ExportResult.written(
        path, ExportFormat.ONNX, precision, specs, start, notes, quantization=recipe, model_spec=file_spec
    )
