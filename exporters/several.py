"""Keras models with several inputs or outputs -> TFLite and ONNX, keeping the model's tensor names.

TFLite: the model is written as a SavedModel whose serving signature takes the Keras inputs by name and returns
a dict keyed by the Keras output names, then converted from that SavedModel: the converter renames tensors
(`serving_default_image:0`, `StatefulPartitionedCall:1`) but the signature keeps the model's names, which is how
the LiteRT runner matches them. (`TFLiteConverter.from_keras_model` fails on Keras 3 models with dict inputs,
and converting a traced function leaves READ_VARIABLE ops that read nothing.)

ONNX: tf2onnx's `from_function` with one named TensorSpec per input; the graph outputs (named `Identity:0`, ...)
are renamed to the Keras output names.

Calibration for several inputs is a `CalibrationFeeds`: one float32 array per input name, all with the same
number of samples.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from exporters.errors import ExportError, UnsupportedPrecisionError
from runtimes.spec import ModelSpec, SpecError
from runtimes.tf_import import import_tensorflow

# Calibration data for a model with several inputs: input name -> float32 samples (same count for every input).
CalibrationFeeds = Mapping[str, np.ndarray]


def keras_spec(model: Any) -> ModelSpec:
    """The model's spec (Keras names), or one line saying why edgekit cannot describe it."""
    from runtimes.spec import spec_from_keras

    try:
        return spec_from_keras(model)
    except SpecError as exc:
        raise ExportError(f"the Keras model cannot be exported: {str(exc).removeprefix('model spec: ')}") from None


def has_several_tensors(model: Any) -> bool:
    """True for a Keras model with more than one input or output."""
    inputs = getattr(model, "inputs", None) or [None]
    outputs = getattr(model, "outputs", None) or [None]
    return len(inputs) > 1 or len(outputs) > 1


def check_feeds(calibration: object, spec: ModelSpec) -> dict[str, np.ndarray]:
    """`calibration` as float32 feeds for every input of `spec`, or one line naming what is missing or extra."""
    if not isinstance(calibration, Mapping):
        raise UnsupportedPrecisionError(
            f"the model has {len(spec.inputs)} inputs ({', '.join(spec.input_names)}); pass calibration data as "
            "one array per input name."
        )
    missing = [n for n in spec.input_names if n not in calibration]
    extra = [str(n) for n in calibration if n not in spec.input_names]
    if missing or extra:
        raise UnsupportedPrecisionError(
            f"calibration data: {'missing ' + ', '.join(missing) if missing else ''}"
            f"{'; ' if missing and extra else ''}{'unknown ' + ', '.join(extra) if extra else ''}; "
            f"the model takes {', '.join(spec.input_names)}."
        )
    feeds = {n: np.ascontiguousarray(calibration[n], dtype=np.float32) for n in spec.input_names}
    counts = {len(a) for a in feeds.values()}
    if len(counts) != 1 or 0 in counts:
        sizes = ", ".join(f"{n}: {len(a)}" for n, a in feeds.items())
        raise UnsupportedPrecisionError(
            f"calibration data needs the same, non-zero number of samples per input ({sizes})."
        )
    return feeds


def single_feed(feeds: CalibrationFeeds) -> np.ndarray:
    """The one array of named calibration data given for a single-input model."""
    if len(feeds) != 1:
        raise UnsupportedPrecisionError(
            f"calibration data holds {len(feeds)} inputs ({', '.join(feeds)}); the model takes one."
        )
    return np.asarray(next(iter(feeds.values())), dtype=np.float32)


def samples(feeds: Mapping[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """One-sample feeds, in order (what both calibrators consume)."""
    count = len(next(iter(feeds.values())))
    for i in range(count):
        yield {name: array[i : i + 1] for name, array in feeds.items()}


def _named_call(model: Any, spec: ModelSpec) -> Callable[..., dict[str, Any]]:
    """The model as a function of its inputs in spec order, returning its outputs keyed by name."""
    in_names, out_names = spec.input_names, spec.output_names

    def call(*args: Any) -> dict[str, Any]:
        # One input goes in as itself: a dict would make Keras warn that the structure differs.
        out = model(dict(zip(in_names, args, strict=True)) if len(args) > 1 else args[0], training=False)
        if isinstance(out, Mapping):
            return {name: out[name] for name in out_names}
        return dict(zip(out_names, out if isinstance(out, (list, tuple)) else [out], strict=True))

    return call


def _signature(spec: ModelSpec) -> list[Any]:
    tf = import_tensorflow()
    return [
        tf.TensorSpec([None, *t.shape[1:]], tf.uint8 if t.dtype == "uint8" else tf.float32, name=t.name)
        for t in spec.inputs
    ]


def write_savedmodel(model: Any, spec: ModelSpec, dest: Path) -> None:
    """A SavedModel whose serving signature takes and returns the model's tensors by their Keras names."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serve", fn=_named_call(model, spec), input_signature=_signature(spec))
    archive.write_out(str(dest), verbose=False)


def tflite_flatbuffer(model: Any, spec: ModelSpec, configure: Callable[[Any], None]) -> bytes:
    """Convert through a temporary SavedModel; `configure` sets the converter's precision options."""
    tf = import_tensorflow()
    with tempfile.TemporaryDirectory(prefix="edgekit-savedmodel-") as work:
        folder = Path(work) / "model"
        write_savedmodel(model, spec, folder)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(folder), signature_keys=["serving_default"])
        configure(converter)
        flatbuffer: bytes = converter.convert()
    return flatbuffer


def onnx_proto(model: Any, spec: ModelSpec, opset: int) -> tuple[Any, Any]:
    """The model as an ONNX proto with the Keras input and output names, and the traced function."""
    tf = import_tensorflow()
    import tf2onnx

    call, names = _named_call(model, spec), spec.output_names
    signature = _signature(spec)
    fn = tf.function(lambda *args: tuple(call(*args)[n] for n in names), input_signature=signature)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
    rename_outputs(proto, names)
    return proto, fn.get_concrete_function()


def rename_outputs(proto: Any, names: tuple[str, ...]) -> None:
    """Name the graph's outputs (in order) `names`, rewiring every node that produces or reads them."""
    outputs = list(proto.graph.output)
    if len(outputs) != len(names):
        raise ExportError(f"the ONNX graph has {len(outputs)} outputs; the Keras model has {len(names)}.")
    renames = {o.name: n for o, n in zip(outputs, names, strict=True) if o.name != n}
    for node in proto.graph.node:
        for i, name in enumerate(node.output):
            if name in renames:
                node.output[i] = renames[name]
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    for out in proto.graph.output:
        out.name = renames.get(out.name, out.name)
