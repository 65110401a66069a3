"""diagnose for a run made from an ONNX or TFLite file (`--model m.onnx|m.tflite`): the reference's "layers" are
the file's own ops.

There is no Keras model: the reference is the file on ONNX Runtime fp32. Each weighted node (Conv, Gemm, MatMul,
ConvTranspose) is a row, named by the tensor that ends it: the node's output, or the output of a bias Add and of
the activation fused after it (Relu, Sigmoid, ...). The exports keep those names: ONNX Runtime's QDQ int8 puts
QuantizeLinear/DequantizeLinear around them (the dequantized value is read) and drops a Relu after a Conv or Gemm
(its output is then the node's own tensor, which the row falls back to); fp16 adds Casts at the graph's ends and
keeps the names in float16. A row with no tensor of its names in an export says so; nothing is matched by shape.
Rank-4 tensors are NCHW (ONNX Conv) and are compared channels-last, so channel statistics are per channel.
With several inputs or outputs (ONNX), every input gets its row and each output the rows it is computed from,
walked back from its tensor; an output no row ends on (skl2onnx's ArgMax `label`) takes the map of the rows it
comes from and a note saying so (`file_outputs`).

For a TFLite file (reference tflite-fp32 on LiteRT, every tensor preserved) a row is a weighted op with its fused
activation, and a separate activation op after it; the AI Edge Quantizer's int8 and int8-dynamic keep the op
output names (int8 values are dequantized with their scale and zero point), as fp16 does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.diagnosis.layers import INPUT_ROW, KerasLayer, Probe, Tensor, input_row

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec
    from toolkit.diagnosis.capture import Feeds
    from toolkit.diagnosis.outputs import ModelOutput

WEIGHTED = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
FUSED_AFTER = frozenset({"Add", "Identity", "Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip", "HardSigmoid", "Softmax"})
DROPPABLE = frozenset({"Relu", "Clip", "Identity"})  # ORT's QDQ int8 drops these (a Relu/Clip: its range clamps)
QDQ_OUTPUT = "{}_QuantizeLinear_Input"  # ORT's QDQ renames the op making a graph output


@dataclass(frozen=True)
class FileReference:
    """The reference file's rows (as `KerasLayer`s named by tensor), each row's fallback names, its outputs."""

    layers: list[KerasLayer]
    names: dict[str, tuple[str, ...]]  # row → the tensor names that hold it, preferred first
    values: dict[str, np.ndarray]  # row → the reference's value over the images (rank 4: channels-last)
    output: str  # the graph output's name (its value is in `values` too)
    input_name: str
    channels_first: bool = True  # ONNX: rank-4 tensors are NCHW; TFLite: NHWC throughout
    inputs: dict[str, str] = field(default_factory=dict)  # input name → its row (empty: `input_name` → INPUT_ROW)
    # An output no row ends on (an ONNX label made by ArgMax): the rows it is computed from and the ops between.
    made_from: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)


def _rows_of(graph: Any) -> tuple[list[tuple[str, str, tuple[str, ...]]], dict[str, str]]:
    """(row name, type, names preferred first) per weighted node in graph order, and every tensor → the row or
    input it comes from (through ops that are no row: Flatten, Reshape, pooling...)."""
    nodes = list(graph.model.graph.node)
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    rows: list[tuple[str, str, tuple[str, ...]]] = []
    owner: dict[str, str] = {}
    for node in nodes:
        if node.op_type not in WEIGHTED:
            continue
        names, types, cur = [node.output[0]], [node.op_type], node.output[0]
        while len(cs := consumers.get(cur, [])) == 1 and cs[0].op_type in FUSED_AFTER and cur not in graph.output_keys:
            if cs[0].op_type == "Add" and not (node.op_type == "MatMul" and types[-1] == "MatMul"):
                break  # only a MatMul's bias Add is part of it (a Conv's Add is a residual)
            cur = cs[0].output[0]
            names.append(cur)
            types.append(cs[0].op_type)
        # The names a row may be read from: its own, then (only across a Relu/Clip an int8 export drops) earlier ones.
        alts = [names[-1], QDQ_OUTPUT.format(names[-1])]
        for name, kind in zip(reversed(names[:-1]), reversed(types[1:]), strict=True):
            if kind not in DROPPABLE:
                break
            alts.append(name)
        rows.append((names[-1], "+".join(types), tuple(alts)))
        owner.update({n: names[-1] for n in names})
    return rows, owner


def _inbound(graph: Any, start: str, owner: dict[str, str], inputs: dict[str, str] | None = None) -> tuple[str, ...]:
    """The rows (or input rows) whose values reach the tensor `start` through ops that are no row."""
    return _walk(graph, start, owner, inputs or {})[0]


def _walk(
    graph: Any, start: str, owner: dict[str, str], inputs: dict[str, str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`_inbound`, and the types of the ops passed through on the way (from `start` back)."""
    producer = {o: node for node in graph.model.graph.node for o in node.output}
    inits = {i.name for i in graph.model.graph.initializer}
    found: list[str] = []
    ops: list[str] = []
    stack, seen = [start], set()
    while stack:
        name = stack.pop()
        if name in seen or name in inits:
            continue
        seen.add(name)
        if name in owner:
            found.append(owner[name])
        elif name in graph.input_keys:
            found.append(inputs.get(name, INPUT_ROW))
        elif name in producer:
            ops.append(producer[name].op_type)
            stack.extend(i for i in producer[name].input if i)
    return tuple(dict.fromkeys(found)), tuple(ops)


def _channels_last(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x


def onnx_reference(path: Path, images: Feeds) -> FileReference:
    """The rows of an ONNX file and their fp32 values on `images` (one batch, or one per input name; ONNX Runtime,
    the rows as extra outputs)."""
    from toolkit.diagnosis.capture import OnnxGraph

    graph = OnnxGraph(path)
    several = len(graph.input_names) > 1
    inputs = {name: input_row(name, several) for name in graph.input_names}
    rows, owner = _rows_of(graph)
    producer = {o: node for node in graph.model.graph.node for o in node.output}
    cap = graph.capture([row for row, _, _ in rows], images)
    layers, values = [], {}
    for row, kind, _ in rows:
        first = producer[next(n for n, who in owner.items() if who == row)]  # the weighted node (first of its chain)
        value = cap.values[row]
        values[row] = _channels_last(value)
        shape = tuple(int(d) for d in values[row].shape[1:])
        layers.append(KerasLayer(row, kind, shape, None, _inbound(graph, first.input[0], owner, inputs)))
    output = graph.output_name
    assert cap.plain_probs is not None
    values[output] = cap.plain_probs
    made_from = {}
    for name in graph.output_keys:
        values.setdefault(name, cap.plain_outputs[name])
        if name not in owner:
            made_from[name] = _walk(graph, name, owner, inputs)
    names = {row: alts for row, _, alts in rows}
    return FileReference(layers, names, values, output, graph.input_name, True, inputs, made_from)


TFLITE_WEIGHTED = frozenset(
    {"CONV_2D", "CONV_3D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL"}
)


def tflite_reference(path: Path, images: np.ndarray) -> FileReference:
    """The rows of a TFLite file and their fp32 values on `images` (LiteRT, every tensor preserved).

    A row is a weighted op (its fused activation is in the op, its name lists it) and a separate activation op
    after it (FULLY_CONNECTED + SOFTMAX), named by the tensor that ends it; the exports keep the names."""
    from toolkit.diagnosis.capture import TFLiteGraph

    graph = TFLiteGraph(path)
    by_key = {t.key: t for t in graph.tensors}
    chains: list[list[Tensor]] = []
    owner: dict[str, str] = {}
    for t in graph.tensors:
        if t.op not in TFLITE_WEIGHTED:
            continue
        chain = [t, by_key[t.next_key]] if t.next_op and t.next_key in by_key else [t]
        chains.append(chain)
    rows = _short_names([c[-1].name for c in chains])
    for chain, row in zip(chains, rows, strict=True):
        owner.update({c.key: row for c in chain})
    cap = graph.capture([c[-1].key for c in chains], images)
    layers, values = [], {}
    for chain, row in zip(chains, rows, strict=True):
        values[row] = cap.values[chain[-1].key]
        kind = "+".join(c.op for c in chain)
        layers.append(KerasLayer(row, kind, chain[-1].shape, None, _tflite_inbound(chain[0], by_key, owner)))
    output = by_key[str(graph.output_index)].name
    assert cap.plain_probs is not None
    values[output] = cap.plain_probs
    names: dict[str, tuple[str, ...]] = {row: (chain[-1].name,) for chain, row in zip(chains, rows, strict=True)}
    return FileReference(layers, names, values, output, by_key[str(graph.input_index)].name, channels_first=False)


def _short_names(names: list[str]) -> list[str]:
    """A row's name: the first part of a fused tensor name (`conv1/Relu;conv1/BiasAdd;...` → `conv1/Relu`, the
    op that ends it), or the whole name where two rows would share it."""
    short = [n.split(";")[0] for n in names]
    return [s if short.count(s) == 1 else n for s, n in zip(short, names, strict=True)]


def _tflite_inbound(t: Tensor, by_key: dict[str, Tensor], owner: dict[str, str]) -> tuple[str, ...]:
    """The rows (or the input row) whose values reach the op making `t` through ops that are no row."""
    found: list[str] = []
    stack, seen = list(t.inputs), set()
    while stack:
        key = stack.pop()
        if key in seen or key not in by_key:
            continue
        seen.add(key)
        if key in owner:
            found.append(owner[key])
        elif by_key[key].order < 0:
            found.append(INPUT_ROW)
        else:
            stack.extend(by_key[key].inputs)
    return tuple(dict.fromkeys(found))


def file_reference(path: Path, images: np.ndarray) -> FileReference:
    """The rows of the run's reference file (.onnx or .tflite) and their values on `images`."""
    return tflite_reference(path, images) if path.suffix == ".tflite" else onnx_reference(path, images)


def probes_by_name(reference: FileReference, graph: Any) -> list[Probe]:
    """Each reference row's tensor in an export, by name (the dequantized value in QDQ); none: says so."""
    by_name: dict[str, Tensor] = {t.name: t for t in graph.tensors}
    probes = []
    for name, row in (reference.inputs or {reference.input_name: INPUT_ROW}).items():
        src = by_name.get(name)
        probes.append(Probe(row, "Input", src, "flat" if src else "", "" if src else f"no tensor named {name}"))
    for lay in reference.layers:
        names = reference.names[lay.name]
        hit = next((n for n in names if n in by_name), None)
        if hit is None:
            note = f"no tensor named {' or '.join(names)} in this export"
            probes.append(Probe(lay.name, lay.type, None, "", note, lay.inbound))
            continue
        t = by_name[hit]
        note = "" if hit == lay.name else f"read from {hit}: the export dropped the ops after it"
        layout = ("NCHW" if reference.channels_first else "NHWC") if len(t.shape) == 3 else "flat"
        probes.append(Probe(lay.name, lay.type, t, layout, note, lay.inbound))
    return probes


def unmatched(probes: list[Probe]) -> bool:
    """True when no row of the reference has a tensor in the export (its names were all changed)."""
    return all(p.tensor is None for p in probes if p.layer != INPUT_ROW)


def file_outputs(reference: FileReference, spec: ModelSpec, targets: dict[str, np.ndarray]) -> list[ModelOutput]:
    """Each output of `spec` with the row that ends on it, its labels when it classifies, and, for an output no
    row ends on (skl2onnx's `label`: ArgMax of the probabilities), the rows it is computed from and a note."""
    from toolkit.diagnosis.outputs import ModelOutput

    rows = {lay.name for lay in reference.layers}
    out = []
    for t in spec.outputs:
        kind = t.kind or "probabilities"
        labels = targets.get(t.name) if kind in ("probabilities", "logits", "class_indices") else None
        labels = None if labels is None else labels.reshape(len(labels))
        if t.name in rows or t.name not in reference.made_from:
            out.append(ModelOutput(t.name, kind, t.name, labels))
            continue
        sources, ops = reference.made_from[t.name]
        made = " → ".join(reversed(ops)) or "no op"
        note = f"{t.name} is made by {made} from {', '.join(sources)}: no row of its own"
        if "ArgMax" in ops:
            note += (
                " (integer class indices from an ArgMax have no SNR rows); it is measured by its agreement with the "
                f"reference's indices{' and its accuracy' if labels is not None else ''}"
            )
        out.append(
            ModelOutput(t.name, kind, t.name, labels, sources, note + f"; its map is that of {', '.join(sources)}")
        )
    return out
