"""Per-layer diff: every Keras layer's output against the matching tensor inside each export.

The reference is a `keras.Model` over every layer's output (inference mode, so Dropout is the
identity). The export's tensors come from `diagnose_capture`.

Layers are matched to tensors by name (both converters keep Keras layer names in their tensor
names, with a `_N` suffix), then by per-image shape (NCHW conv/pool outputs of ONNX are transposed
back to NHWC), in execution order; a layer with an activation is followed through a separate
activation op (e.g. Dense + SOFTMAX). Dropout (identity at inference) is compared with the previous
layer's tensor. Flatten is checked in both NHWC and NCHW order (tf2onnx transposes back to NHWC
before its Reshape, so the ONNX order matches Keras).
"""

from __future__ import annotations

import math
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


def threshold_text() -> str:
    return (
        f"a layer departs from the Keras reference when its SNR is below {DEPART_SNR_DB:g} dB "
        f"(error power above 1 % of the signal power) or its cosine similarity is below {DEPART_COSINE:g}"
    )


# -- the Keras reference -----------------------------------------------------------------------------
@dataclass(frozen=True)
class KerasLayer:
    name: str
    type: str
    shape: tuple[int, ...]  # per image
    activation: str | None


def keras_layers(model: Any) -> list[KerasLayer]:
    out = []
    for layer in model.layers:
        shape = tuple(int(d) for d in layer.output.shape[1:])
        act = getattr(layer, "activation", None)
        act_name = getattr(act, "__name__", None) if act is not None else None
        out.append(KerasLayer(layer.name, type(layer).__name__, shape, None if act_name == "linear" else act_name))
    return out


def keras_outputs(model: Any, images: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output for `images`, in inference mode (Dropout is the identity)."""
    from runtimes.tf_import import import_keras

    keras = import_keras()
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    probe = keras.Model(inputs=inputs, outputs=[layer.output for layer in model.layers])
    parts: list[list[np.ndarray]] = [[] for _ in model.layers]
    for i in range(0, len(images), CHUNK):
        outs = probe(images[i : i + CHUNK], training=False)
        for j, o in enumerate(outs):
            parts[j].append(np.asarray(o, dtype=np.float32))
    return {layer.name: np.concatenate(p) for layer, p in zip(model.layers, parts, strict=True)}


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


def _components(name: str) -> set[str]:
    comps = set()
    for part in name.split(";"):
        for c in part.split("/"):
            comps.add(re.sub(r"(:\d+)$", "", c))
    return comps


def _name_group(name: str, layer: str) -> str | None:
    """The scope component of `name` that belongs to `layer` (`dense`, `dense_1`, `dense_1_2`...)."""
    pattern = re.compile(re.escape(layer) + r"(_\d+)*")
    hits = sorted(c for c in _components(name) if pattern.fullmatch(c))
    return hits[0] if hits else None


def _layout(shape: tuple[int, ...], want: tuple[int, ...]) -> str | None:
    if shape == want:
        return "NHWC" if len(want) == 3 else "flat"
    if len(want) == 3 and shape == (want[2], want[0], want[1]):
        return "NCHW"
    return None


def map_layers(layers: list[KerasLayer], input_shape: tuple[int, ...], tensors: list[Tensor]) -> list[Probe]:
    """Assign each Keras layer (and the input) the export tensor that holds its output."""
    by_key = {t.key: t for t in tensors}
    probes: list[Probe] = []
    first_order = 10**9
    # The input as the first layer sees it: the last input-shaped tensor before any layer tensor.
    for layer in layers:
        hits = [t for t in tensors if _name_group(t.name, layer.name) and _layout(t.shape, layer.shape)]
        if hits:
            first_order = min(t.order for t in hits)
            break
    inputs = [t for t in tensors if t.order < first_order and _layout(t.shape, input_shape)]
    src = max(inputs, key=lambda t: t.order) if inputs else None
    probes.append(Probe(INPUT_ROW, "Input", src, _layout(src.shape, input_shape) or "" if src else ""))
    after = src.order if src else -2
    previous = probes[0]
    for layer in layers:
        if layer.type in IDENTITY_LAYERS:
            probe = Probe(layer.name, layer.type, previous.tensor, previous.layout, "identity at inference")
            if previous.tensor is not None:
                probe.note += f": compared with {previous.layer}'s tensor"
            probes.append(probe)
            previous = probe
            continue
        cands = [
            (t, _name_group(t.name, layer.name))
            for t in tensors
            if t.order > after and _layout(t.shape, layer.shape) is not None
        ]
        named = [(t, g) for t, g in cands if g]
        note = ""
        if named:
            # All tensors of one Keras layer share one scope component; take the earliest such
            # group, then the group's last tensor (e.g. Relu after BiasAdd).
            group = min(named, key=lambda tg: tg[0].order)[1]
            chosen = max((t for t, g in named if g == group), key=lambda t: t.order)
        elif cands:
            chosen = min((t for t, _ in cands), key=lambda t: t.order)
            note = "matched by shape and order only (no tensor carries the layer's name)"
        else:
            probe = Probe(layer.name, layer.type, None, "", "no tensor of this shape after the previous layer")
            probes.append(probe)
            continue
        # Follow a separate activation op (Dense → SOFTMAX) when the layer has one.
        seen = 0
        while layer.activation and chosen.next_op == layer.activation and chosen.next_key in by_key and seen < 4:
            nxt = by_key[chosen.next_key]
            if _layout(nxt.shape, layer.shape) is None:
                break
            chosen, seen = nxt, seen + 1
            note = note or f"after the separate {layer.activation} op"
        probe = Probe(layer.name, layer.type, chosen, _layout(chosen.shape, layer.shape) or "", note)
        probes.append(probe)
        previous = probe
        after = chosen.order
    return probes


# -- metrics -----------------------------------------------------------------------------------------
def compare(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Max/mean absolute error, cosine similarity and SNR (dB) of `got` against `ref` (all images)."""
    r = ref.reshape(len(ref), -1).astype(np.float64)
    g = got.reshape(len(got), -1).astype(np.float64)
    err = g - r
    signal, noise = float(np.sum(r * r)), float(np.sum(err * err))
    if noise == 0.0:
        snr = SNR_CAP_DB
    elif signal == 0.0:
        snr = -SNR_CAP_DB
    else:
        snr = max(-SNR_CAP_DB, min(SNR_CAP_DB, 10.0 * math.log10(signal / noise)))
    nr, ng = math.sqrt(signal), math.sqrt(float(np.sum(g * g)))
    if nr == 0.0 and ng == 0.0:
        cosine = 1.0
    elif nr == 0.0 or ng == 0.0:
        cosine = 0.0
    else:
        cosine = float(np.sum(r * g)) / (nr * ng)
    return {
        "max_abs_err": float(np.max(np.abs(err))) if err.size else 0.0,
        "mean_abs_err": float(np.mean(np.abs(err))) if err.size else 0.0,
        "cosine": cosine,
        "snr_db": snr,
    }


def quant_range(t: Tensor) -> tuple[float, float] | None:
    """The float range a quantized tensor can represent."""
    if t.scale is None or t.qdtype is None:
        return None
    info = np.iinfo(np.dtype(t.qdtype))
    zp = t.zero_point or 0
    return (info.min - zp) * t.scale, (info.max - zp) * t.scale


def clipped_pct(ref: np.ndarray, t: Tensor) -> float | None:
    """Share of reference values outside the range the tensor's quantization can represent."""
    rng = quant_range(t)
    if rng is None or t.scale is None:
        return None
    half = t.scale / 2
    return float(np.mean((ref < rng[0] - half) | (ref > rng[1] + half)) * 100.0)


def layer_rows(
    probes: list[Probe],
    values: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    images: np.ndarray,
) -> tuple[list[dict[str, Any]], str | None]:
    """One row of metrics per probe, plus the flatten order found (None if no Flatten layer)."""
    rows: list[dict[str, Any]] = []
    flatten_order = None
    prev_snr: float | None = None
    prev_nsr = 0.0
    prev_ref: np.ndarray | None = None
    for p in probes:
        ref = images if p.layer == INPUT_ROW else reference[p.layer]
        row: dict[str, Any] = {"layer": p.layer, "type": p.type, "note": p.note}
        if p.tensor is None:
            row.update({"tensor": None, "departs": None})
            rows.append(row)
            prev_ref = ref
            continue
        t = p.tensor
        got = values[t.read]
        layout = p.layout
        if layout == "NCHW":
            got = got.transpose(0, 2, 3, 1)
        metrics = compare(ref, got)
        if p.type == "Flatten" and prev_ref is not None and prev_ref.ndim == 4:
            # tf2onnx transposes back to NHWC before Reshape; check which order the export used.
            n, h, w, c = prev_ref.shape
            as_nchw = got.reshape(n, c, h, w).transpose(0, 2, 3, 1).reshape(n, -1)
            other = compare(ref, as_nchw)
            if other["cosine"] > metrics["cosine"] + 1e-6:
                metrics, layout, flatten_order = other, "flat (NCHW order, reordered)", "NCHW"
            else:
                flatten_order = "NHWC"
        drop = None if prev_snr is None else prev_snr - metrics["snr_db"]
        # Error power relative to signal power; the error a layer adds is the increase over the previous
        # row (the float image counts as exact, so the input row's own quantization error shows too).
        nsr = 10.0 ** (-metrics["snr_db"] / 10.0)
        rng = quant_range(t)
        row.update(
            {
                "tensor": t.name,
                "read_from": t.read if t.read != t.key else None,
                "dtype": t.describe(),
                "layout": layout,
                **metrics,
                "snr_drop_db": drop,
                "added_error_pct": 100.0 * (nsr - prev_nsr),
                "clipped_pct": clipped_pct(ref, t),
                "quant_range": None if rng is None else [rng[0], rng[1]],
                "ref_range": [float(ref.min()), float(ref.max())],
                "departs": metrics["snr_db"] < DEPART_SNR_DB or metrics["cosine"] < DEPART_COSINE,
            }
        )
        rows.append(row)
        prev_snr, prev_ref, prev_nsr = metrics["snr_db"], ref, nsr
    return rows, flatten_order


def first_departure(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first row that departs, with the evidence (thresholds crossed, quantized range vs values)."""
    for i, r in enumerate(rows):
        if not r.get("departs"):
            continue
        reason = []
        if r["snr_db"] < DEPART_SNR_DB:
            reason.append(f"SNR {r['snr_db']:.1f} dB < {DEPART_SNR_DB:g} dB")
        if r["cosine"] < DEPART_COSINE:
            reason.append(f"cosine {r['cosine']:.4f} < {DEPART_COSINE:g}")
        if r.get("quant_range") and r.get("clipped_pct"):
            lo, hi = r["quant_range"]
            rlo, rhi = r["ref_range"]
            reason.append(
                f"its {r['dtype']} covers only [{lo:.3g}, {hi:.3g}] while the Keras values span "
                f"[{rlo:.3g}, {rhi:.3g}], so {r['clipped_pct']:.1f} % of them clip"
            )
        following = next((x["layer"] for x in rows[i + 1 :] if x["type"] not in IDENTITY_LAYERS), None)
        return {
            "layer": r["layer"],
            "tensor": r["tensor"],
            "snr_db": r["snr_db"],
            "cosine": r["cosine"],
            "clipped_pct": r.get("clipped_pct"),
            "quant_range": r.get("quant_range"),
            "ref_range": r.get("ref_range"),
            "first_keras_layer": following if r["layer"] == INPUT_ROW else r["layer"],
            "reason": "; ".join(reason),
        }
    return None


def ranked_by_added_error(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ordered by the error power they add (% of signal power, over the previous row); largest first."""
    scored = [r for r in rows if r.get("added_error_pct") is not None and r["type"] not in IDENTITY_LAYERS]
    return [
        {
            "layer": r["layer"],
            "added_error_pct": r["added_error_pct"],
            "snr_drop_db": r["snr_drop_db"],
            "snr_db": r["snr_db"],
        }
        for r in sorted(scored, key=lambda r: -r["added_error_pct"])
    ]
