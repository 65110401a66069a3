"""Per-layer diff: which tensor inside each export holds every Keras layer's output.

The reference is a `keras.Model` over every layer's output (inference mode, so Dropout is the
identity); the export's tensors come from `capture.py`; the metrics are in `metrics.py`.

Mapping, for Sequential and functional graphs with branches:
1. By name. Both converters keep Keras layer names in tensor names (with a `_N` suffix); a TFLite
   tensor fused from several layers names all of them (`relu;bn;conv`) and holds the output of the
   last one in Keras order. A layer takes the last tensor carrying its name whose per-image shape
   matches (ONNX tensors between tf2onnx's Transposes are NCHW and are transposed back), then follows
   a separate activation op (e.g. Dense + SOFTMAX).
2. Through the graph. An unnamed tensor (tf2onnx names a Conv with folded BatchNorm `Conv__40`) is
   the layer's if it is the one unclaimed input, of the right shape, of the op where a Keras consumer
   starts, or the one such output of the op reading the layer's Keras input.
3. Otherwise the layer has no tensor of its own: BatchNormalization folded into the conv before it,
   an activation fused into its op; its row says "folded into"/"fused into" the layer that holds the
   value, or "no matching tensor". Dropout and other identity layers are compared with their input's
   tensor. Nothing is matched by shape and order alone.
Flatten is checked in both NHWC and NCHW order (tf2onnx transposes back to NHWC before its Reshape).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

# A layer departs from the reference when its SNR falls below DEPART_SNR_DB (error power above 1 %
# of the signal power) or its cosine similarity below DEPART_COSINE.
DEPART_SNR_DB = 20.0
DEPART_COSINE = 0.99
SNR_CAP_DB = 200.0  # an exact match (zero error) is reported as this
INPUT_ROW = "(input)"
IDENTITY_LAYERS = frozenset(
    {
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "ActivityRegularization",
    }
)
QUANT_DTYPES = ("int8", "uint8", "int16")
# Runtime op types (lower case, no underscores) → Keras activation names.
ACTIVATION_OPS = {"relu": "relu", "softmax": "softmax", "logistic": "sigmoid", "sigmoid": "sigmoid", "tanh": "tanh"}
CHUNK = 250  # images per runtime call


def input_row(name: str, several: bool) -> str:
    """The row of a model input: `(input)` for a model with one input, `(input <name>)` for each of several."""
    return f"(input {name})" if several else INPUT_ROW


def is_input_row(layer: str) -> bool:
    return layer == INPUT_ROW or (layer.startswith("(input ") and layer.endswith(")"))


def input_rows(model: Any) -> dict[str, str]:
    """Input layer name → its row (`input_row`), in the model's input order."""
    out: dict[str, str] = {}
    several = len(model.inputs) > 1
    for t in model.inputs:
        history = getattr(t, "_keras_history", None)
        layer = str(history[0].name) if history else str(getattr(t, "name", "input"))
        out[layer] = input_row(str(getattr(t, "name", layer)), several)
    return out


# -- the Keras reference -----------------------------------------------------------------------------
@dataclass(frozen=True)
class KerasLayer:
    name: str
    type: str
    shape: tuple[int, ...]  # per image
    activation: str | None
    inbound: tuple[str, ...] = ()  # Keras layers feeding it (INPUT_ROW for the model input)


def _inbound(layer: Any, input_layers: dict[str, str]) -> tuple[str, ...]:
    from runtimes.tf_import import import_keras

    keras = import_keras()
    try:
        tensors = keras.tree.flatten(layer.input)
    except (AttributeError, ValueError):  # a layer without a (single) inbound node
        return ()
    names = []
    for t in tensors:
        history = getattr(t, "_keras_history", None)
        op = history[0] if history else None
        name = getattr(op, "name", None)
        if name is not None:
            names.append(input_layers.get(str(name), str(name)))
    return tuple(dict.fromkeys(names))


def _model_layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def keras_layers(model: Any) -> list[KerasLayer]:
    """The model's layers in execution order (no InputLayer), with output shapes and Keras inputs."""
    several = len(model.inputs) > 1
    input_layers = {
        layer.name: input_row(layer.name, several) for layer in model.layers if type(layer).__name__ == "InputLayer"
    }
    input_layers.update(input_rows(model))
    out = []
    for layer in _model_layers(model):
        shape = tuple(int(d) for d in layer.output.shape[1:])
        act = getattr(layer, "activation", None)
        act_name = getattr(act, "__name__", None) if act is not None else None
        act_name = None if act_name == "linear" else act_name
        out.append(KerasLayer(layer.name, type(layer).__name__, shape, act_name, _inbound(layer, input_layers)))
    return out


def keras_outputs(model: Any, images: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every layer's output for `images` (or one feed per input name), in inference mode (Dropout is the identity)."""
    from runtimes.tf_import import import_keras

    keras = import_keras()
    layers = _model_layers(model)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    probe = keras.Model(inputs=inputs, outputs=[layer.output for layer in layers])
    parts: list[list[np.ndarray]] = [[] for _ in layers]
    feeds = [images[str(t.name)] for t in model.inputs] if isinstance(images, dict) else [images]
    for i in range(0, len(feeds[0]), CHUNK):
        chunk = [f[i : i + CHUNK] for f in feeds]
        outs = probe(chunk[0] if len(chunk) == 1 else chunk, training=False)
        for j, o in enumerate(outs):
            parts[j].append(np.asarray(o, dtype=np.float32))
    return {layer.name: np.concatenate(p) for layer, p in zip(layers, parts, strict=True)}


# -- an export's tensors -----------------------------------------------------------------------------
@dataclass
class Tensor:
    """An activation tensor in an export's graph (one that depends on the model input)."""

    key: str  # the runtime's handle: TFLite tensor index or ONNX value name
    name: str
    shape: tuple[int, ...]  # per image
    order: int  # execution position of the producing op (-1: a graph input)
    dtype: str
    read: str  # key of the tensor actually read (itself, or the QuantizeLinear output it feeds)
    scale: float | None = None
    zero_point: int | None = None
    qdtype: str | None = None  # dtype of the read tensor when it is quantized
    next_op: str = ""  # activation kind of the single op consuming it ("" if none or not an activation)
    next_key: str = ""  # that op's output tensor
    inputs: tuple[str, ...] = ()  # keys of the activation tensors its producing op reads (through Q/DQ)
    layout: str | None = None  # "NHWC"/"NCHW" when the graph says (ONNX Transposes); None: unknown
    op: str = ""  # the producing op's type (TFLite op name or ONNX op type)

    def describe(self) -> str:
        if self.scale is None:
            return self.dtype
        return f"{self.qdtype} (scale {self.scale:.3g}, zero point {self.zero_point})"


@dataclass
class Probe:
    """Where one Keras layer's output is read in an export."""

    layer: str
    type: str
    tensor: Tensor | None
    layout: str = "NHWC"  # NHWC, NCHW (transposed back) or flat
    note: str = ""
    inbound: tuple[str, ...] = ()
    fused_into: str | None = None  # the layer whose tensor holds this layer's work, when it has none


def _components(name: str) -> set[str]:
    comps = set()
    for part in name.split(";"):
        for c in part.split("/"):
            comps.add(re.sub(r"(:\d+)$", "", c))
    return comps


class _Owners:
    """Which Keras layers a tensor name mentions.

    TF scopes get a uniquifying suffix (`dense` → `dense_1`), so `dense_1` may be layer `dense` or layer
    `dense_1`. The suffix the model's own scope got (`sequential` → `sequential_1`) decides: a component
    equal to a layer name plus that suffix is that layer's; otherwise the longest layer name it extends.
    """

    def __init__(self, names: list[str], tensors: list[Tensor], model_names: tuple[str, ...] = ()) -> None:
        comps = set().union(*(_components(t.name) for t in tensors)) if tensors else set()
        suffixes = [""]
        for m in model_names:
            hits = sorted((c for c in comps if re.fullmatch(re.escape(m) + r"(_\d+)*", c)), key=len)
            if hits:
                suffixes.insert(0, hits[0][len(m) :])
                break
        else:
            # No model scope in the names: the suffix most layer names carry.
            counts: dict[str, int] = {}
            for n in names:
                for c in comps:
                    m2 = re.fullmatch(re.escape(n) + r"((?:_\d+)*)", c)
                    if m2:
                        counts[m2.group(1)] = counts.get(m2.group(1), 0) + 1
            if counts:
                suffixes.insert(0, max(counts, key=lambda s: (counts[s], -len(s))))
        self.exact: dict[str, str] = {}
        for suffix in suffixes[::-1]:  # the preferred suffix last, so it wins
            self.exact.update({n + suffix: n for n in names})
        self.patterns = [(n, re.compile(re.escape(n) + r"(_\d+)*")) for n in sorted(names, key=len, reverse=True)]
        self.cache: dict[str, frozenset[str]] = {}

    def __call__(self, t: Tensor) -> frozenset[str]:
        if t.key not in self.cache:
            found = set()
            for c in _components(t.name):
                if c in self.exact:
                    found.add(self.exact[c])
                    continue
                owner = next((n for n, pat in self.patterns if pat.fullmatch(c)), None)
                if owner:
                    found.add(owner)
            self.cache[t.key] = frozenset(found)
        return self.cache[t.key]


def _layout(shape: tuple[int, ...], want: tuple[int, ...], hint: str | None = None) -> str | None:
    if len(want) == 3 and hint == "NCHW":
        return "NCHW" if shape == (want[2], want[0], want[1]) else None
    if shape == want:
        return "NHWC" if len(want) == 3 else "flat"
    if len(want) == 3 and hint is None and shape == (want[2], want[0], want[1]):
        return "NCHW"
    return None


def _follow_activation(
    layer: KerasLayer, chosen: Tensor, by_key: dict[str, Tensor], tail: Any = None
) -> tuple[Tensor, str]:
    """Follow an unnamed bias Add or Identity (`tail`), then a separate activation op (Dense → SOFTMAX)."""
    note, seen = "", 0
    while tail is not None and (nxt := tail(chosen, layer)) is not None and seen < 4:
        chosen, seen = nxt, seen + 1
    seen = 0
    while layer.activation and chosen.next_op == layer.activation and chosen.next_key in by_key and seen < 4:
        nxt = by_key[chosen.next_key]
        if _layout(nxt.shape, layer.shape, nxt.layout) is None:
            break
        chosen, seen = nxt, seen + 1
        note = f"after the separate {layer.activation} op"
    return chosen, note


FOLDING = frozenset({"BatchNormalization"})
AFFINE = frozenset({"BatchNormalization", "Rescaling", "Normalization"})
LINEAR = frozenset({"Dense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "EinsumDense"})


def map_layers(
    layers: list[KerasLayer],
    input_shape: tuple[int, ...],
    tensors: list[Tensor],
    model_names: tuple[str, ...] = (),
    inputs: dict[str, tuple[str, tuple[int, ...]]] | None = None,
) -> list[Probe]:
    """Assign each Keras layer (and the input) the export tensor that holds its output.

    `model_names` (the Keras model's name) helps tell `dense_1` the layer from `dense` uniquified. `inputs`
    (a model with several inputs): each input's row → (the export's tensor key for it, its per-example shape);
    each row then holds the tensor that input's first ops read. The three steps of the module docstring:
    `_by_name`, `_through_graph`, then `_rows`.
    """
    graph = _Graph(layers, tensors, model_names)
    groups, chosen = _by_name(graph)
    if inputs is None:
        srcs = {INPUT_ROW: (_input_tensor(tensors, groups, input_shape), input_shape)}
    else:
        srcs = {row: (_input_chain(graph, groups, key, shape), shape) for row, (key, shape) in inputs.items()}
    _through_graph(graph, groups, chosen, {row: t for row, (t, _) in srcs.items()})
    return _rows(graph, chosen, srcs)


# Ops between a graph input and the first layer's op that keep the input's values (requantized or reordered).
_INPUT_PASS = frozenset({"quantize", "quantizelinear", "transpose", "reshape", "cast", "identity"})


def _input_chain(graph: _Graph, groups: dict[str, list[Tensor]], key: str, shape: tuple[int, ...]) -> Tensor | None:
    """The tensor the first layers read for the graph input `key`: the input itself, or what a Quantize,
    Transpose or Reshape of it (claimed by no layer) makes."""
    in_groups = {t.key for g in groups.values() for t in g}
    t = graph.by_key.get(key)
    for _ in range(4):
        if t is None:
            return None
        nxt = graph.readers.get(t.key, [])
        if len(nxt) != 1 or nxt[0].op.lower().replace("_", "") not in _INPUT_PASS or nxt[0].key in in_groups:
            break
        if _layout(nxt[0].shape, shape, nxt[0].layout) is None:
            break
        t = nxt[0]
    return t if t is not None and _layout(t.shape, shape, t.layout) else None


class _Graph:
    """An export's tensors indexed for the mapping, beside the Keras layers they are matched to."""

    def __init__(self, layers: list[KerasLayer], tensors: list[Tensor], model_names: tuple[str, ...]) -> None:
        self.layers = layers
        self.tensors = tensors
        self.by_key = {t.key: t for t in tensors}
        self.index = {lay.name: i for i, lay in enumerate(layers)}
        self.owners = _Owners([lay.name for lay in layers], tensors, model_names)
        self.shape_of = {lay.name: lay.shape for lay in layers}
        self.readers: dict[str, list[Tensor]] = {}  # tensor key → the ops' outputs that read it
        for t in tensors:
            for i in t.inputs:
                self.readers.setdefault(i, []).append(t)
        self.consumers: dict[str, list[str]] = {}  # Keras layer → the layers it feeds
        for lay in layers:
            for i in lay.inbound:
                self.consumers.setdefault(i, []).append(lay.name)

    def tail(self, t: Tensor, lay: KerasLayer) -> Tensor | None:
        # tf2onnx leaves a Dense's bias Add (and the graph's final Identity) unnamed: the layer ends there.
        nxt = self.readers.get(t.key, [])
        if len(nxt) != 1 or len(nxt[0].inputs) != 1 or nxt[0].op.lower() not in ("add", "biasadd", "identity"):
            return None
        r = nxt[0]
        return r if not self.owners(r) and _layout(r.shape, lay.shape, r.layout) else None


def _by_name(graph: _Graph) -> tuple[dict[str, list[Tensor]], dict[str, tuple[Tensor, str]]]:
    """1. By name: a tensor is the output of the last layer (Keras order) it names whose shape it has.
    The tensors each layer's name claims, and the one chosen per layer (with a note)."""
    groups: dict[str, list[Tensor]] = {}
    for t in graph.tensors:
        fits = [n for n in graph.owners(t) if _layout(t.shape, graph.shape_of[n], t.layout)]
        if fits:
            groups.setdefault(max(fits, key=graph.index.__getitem__), []).append(t)
    chosen: dict[str, tuple[Tensor, str]] = {}
    for lay in graph.layers:
        if lay.name in groups and lay.type not in IDENTITY_LAYERS:
            last = max(groups[lay.name], key=lambda t: t.order)
            chosen[lay.name] = _follow_activation(lay, last, graph.by_key, graph.tail)
    return groups, chosen


def _input_tensor(
    tensors: list[Tensor], groups: dict[str, list[Tensor]], input_shape: tuple[int, ...]
) -> Tensor | None:
    """The input as the first layer sees it: the last input-shaped tensor before any layer's tensor (tf2onnx's
    NHWC→NCHW Reshape/Transpose of the input may carry the first layer's name, yet holds the input)."""
    first_order = min((t.order for g in groups.values() for t in g), default=10**9)
    in_groups = {t.key for g in groups.values() for t in g}
    inputs = [
        t
        for t in tensors
        if t.order < first_order and _layout(t.shape, input_shape, t.layout) and t.key not in in_groups
    ]
    return max(inputs, key=lambda t: t.order) if inputs else None


def _through_graph(
    graph: _Graph,
    groups: dict[str, list[Tensor]],
    chosen: dict[str, tuple[Tensor, str]],
    srcs: dict[str, Tensor | None],
) -> None:
    """2. Through the graph, for layers no tensor names: adds them to `chosen`."""
    claimed = {t.key for t, _ in chosen.values()} | {t.key for g in groups.values() for t in g}
    claimed |= {t.key for t in srcs.values() if t is not None}

    def free(t: Tensor, lay: KerasLayer) -> bool:
        return t.key not in claimed and graph.owners(t) <= {lay.name} and bool(_layout(t.shape, lay.shape, t.layout))

    def tensor_of(name: str) -> Tensor | None:
        if name in srcs:
            return srcs[name]
        return chosen[name][0] if name in chosen else None

    for _ in range(3):
        changed = False
        for lay in reversed(graph.layers):
            if lay.name in chosen or lay.type in IDENTITY_LAYERS:
                continue
            # Backward: an input of the first op of a consumer.
            found: list[Tensor] = []
            for c in graph.consumers.get(lay.name, []):
                starts = groups.get(c) or ([chosen[c][0]] if c in chosen else [])
                if starts:
                    first = min(starts, key=lambda t: t.order)
                    found += [graph.by_key[k] for k in first.inputs if k in graph.by_key and free(graph.by_key[k], lay)]
            # Forward: an output of an op reading the layer's (single) Keras input.
            if not found and len(lay.inbound) == 1 and (up := tensor_of(lay.inbound[0])) is not None:
                found = [t for t in graph.readers.get(up.key, []) if free(t, lay)]
            found = list({t.key: t for t in found}.values())
            if len(found) == 1:
                t, _ = _follow_activation(lay, found[0], graph.by_key, graph.tail)
                chosen[lay.name] = (t, "found through the graph (the tensor carries no layer name)")
                claimed.add(t.key)
                changed = True
        if not changed:
            break


def _rows(
    graph: _Graph,
    chosen: dict[str, tuple[Tensor, str]],
    srcs: dict[str, tuple[Tensor | None, tuple[int, ...]]],
) -> list[Probe]:
    """3. Rows, in Keras order: identity layers read their input's tensor; the rest say where they went."""
    probes = [
        Probe(row, "Input", src, (_layout(src.shape, shape, src.layout) or "") if src else "")
        for row, (src, shape) in srcs.items()
    ]
    by_name: dict[str, Probe] = {p.layer: p for p in probes}
    for lay in graph.layers:
        if lay.name in chosen:
            t, note = chosen[lay.name]
            probe = Probe(lay.name, lay.type, t, _layout(t.shape, lay.shape, t.layout) or "", note, lay.inbound)
        elif lay.type in IDENTITY_LAYERS and len(lay.inbound) == 1 and lay.inbound[0] in by_name:
            feed = by_name[lay.inbound[0]]
            probe = Probe(lay.name, lay.type, feed.tensor, feed.layout, "identity at inference", lay.inbound)
            if feed.tensor is not None:
                probe.note += f": compared with {feed.layer}'s tensor"
        else:
            probe = Probe(lay.name, lay.type, None, "", "no matching tensor", lay.inbound)
        probes.append(probe)
        by_name[lay.name] = probe
    for probe in probes[: len(srcs) - 1 : -1]:
        if probe.tensor is None and probe.type not in IDENTITY_LAYERS:
            _explain_missing(probe, by_name, graph.consumers, graph.owners, graph.layers)
    return probes


def _explain_missing(
    probe: Probe,
    by_name: dict[str, Probe],
    consumers: dict[str, list[str]],
    owners: _Owners,
    layers: list[KerasLayer],
) -> None:
    """Say which layer's tensor holds the work of a layer that has none, if the converter fused it."""
    nxt = consumers.get(probe.layer, [])
    if probe.type in AFFINE and len(nxt) > 1 and all(by_name[c].type in LINEAR for c in nxt if c in by_name):
        # x·a + b feeding several convs/Dense (a Rescaling before two branches) folds into each one's weights.
        probe.fused_into = nxt[0]
        probe.note = "folded into " + ", ".join(f"{c} ({by_name[c].type})" for c in nxt if c in by_name)
        return
    if len(nxt) != 1 or nxt[0] not in by_name:
        return
    target = by_name[nxt[0]]
    if len(target.inbound) != 1:
        return
    named = target.tensor is not None and probe.layer in owners(target.tensor)
    fusing = target.type in FOLDING or target.type in ("ReLU", "Activation", "PReLU", "LeakyReLU", "ELU")
    # A per-channel affine layer (x·a + b) folds into the weights of the linear layer after it.
    fusing = fusing or (probe.type in AFFINE and target.type in LINEAR)
    if not (named or fusing or target.fused_into):
        return
    folded = target.type in FOLDING or (probe.type in AFFINE and target.type in LINEAR)
    verb = "folded into" if folded else "fused into"
    probe.fused_into = target.layer
    probe.note = f"{verb} {target.layer} ({target.type})"
    if target.tensor is None and target.fused_into:
        probe.note += f", itself {target.note}"
    elif target.tensor is None:
        probe.note += ", which has no matching tensor either"
