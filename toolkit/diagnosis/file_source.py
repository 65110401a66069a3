"""diagnose for a run made from an ONNX file (`--model m.onnx`): the reference's "layers" are the file's own ops.

There is no Keras model: the reference is the file on ONNX Runtime fp32. Each weighted node (Conv, Gemm, MatMul,
ConvTranspose) is a row, named by the tensor that ends it: the node's output, or the output of a bias Add and of
the activation fused after it (Relu, Sigmoid, ...). The exports keep those names: ONNX Runtime's QDQ int8 puts
QuantizeLinear/DequantizeLinear around them (the dequantized value is read) and drops a Relu after a Conv or Gemm
(its output is then the node's own tensor, which the row falls back to); fp16 adds Casts at the graph's ends and
keeps the names in float16. A row with no tensor of its names in an export says so; nothing is matched by shape.
Rank-4 tensors are NCHW (ONNX Conv) and are compared channels-last, so channel statistics are per channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.diagnosis.layers import INPUT_ROW, KerasLayer, Probe, Tensor

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


def _inbound(graph: Any, start: str, owner: dict[str, str]) -> tuple[str, ...]:
    """The rows (or the input row) whose values reach the tensor `start` through ops that are no row."""
    producer = {o: node for node in graph.model.graph.node for o in node.output}
    inits = {i.name for i in graph.model.graph.initializer}
    found: list[str] = []
    stack, seen = [start], set()
    while stack:
        name = stack.pop()
        if name in seen or name in inits:
            continue
        seen.add(name)
        if name in owner:
            found.append(owner[name])
        elif name in graph.input_keys:
            found.append(INPUT_ROW)
        elif name in producer:
            stack.extend(i for i in producer[name].input if i)
    return tuple(dict.fromkeys(found))


def _channels_last(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x


def onnx_reference(path: Path, images: np.ndarray) -> FileReference:
    """The rows of an ONNX file and their fp32 values on `images` (ONNX Runtime, the rows as extra outputs)."""
    from toolkit.diagnosis.capture import OnnxGraph

    graph = OnnxGraph(path)
    rows, owner = _rows_of(graph)
    producer = {o: node for node in graph.model.graph.node for o in node.output}
    cap = graph.capture([row for row, _, _ in rows], images)
    layers, values = [], {}
    for row, kind, _ in rows:
        first = producer[next(n for n, who in owner.items() if who == row)]  # the weighted node (first of its chain)
        value = cap.values[row]
        values[row] = _channels_last(value)
        shape = tuple(int(d) for d in values[row].shape[1:])
        layers.append(KerasLayer(row, kind, shape, None, _inbound(graph, first.input[0], owner)))
    output = graph.output_name
    assert cap.plain_probs is not None
    values[output] = cap.plain_probs
    return FileReference(layers, {row: names for row, _, names in rows}, values, output, graph.input_name)


def probes_by_name(reference: FileReference, graph: Any) -> list[Probe]:
    """Each reference row's tensor in an export, by name (the dequantized value in QDQ); none: says so."""
    by_name: dict[str, Tensor] = {t.name: t for t in graph.tensors}
    src = by_name.get(reference.input_name)
    probes = [Probe(INPUT_ROW, "Input", src, "flat" if src else "", "" if src else "no tensor named the input")]
    for lay in reference.layers:
        names = reference.names[lay.name]
        hit = next((n for n in names if n in by_name), None)
        if hit is None:
            note = f"no tensor named {' or '.join(names)} in this export"
            probes.append(Probe(lay.name, lay.type, None, "", note, lay.inbound))
            continue
        t = by_name[hit]
        note = "" if hit == lay.name else f"read from {hit}: the export dropped the ops after it"
        probes.append(Probe(lay.name, lay.type, t, "NCHW" if len(t.shape) == 3 else "flat", note, lay.inbound))
    return probes


def unmatched(probes: list[Probe]) -> bool:
    """True when no row of the reference has a tensor in the export (its names were all changed)."""
    return all(p.tensor is None for p in probes if p.layer != INPUT_ROW)
