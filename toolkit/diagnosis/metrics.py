"""Per-layer metrics: each probed tensor against its Keras layer's output, the first departure, the ranking.

In a graph with branches the error a layer adds is measured against its Keras inputs (the worst of them
for an Add or Concatenate), not against the row printed above it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from toolkit.diagnosis.channels import channel_stats, hidden_departure
from toolkit.diagnosis.layers import (
    DEPART_COSINE,
    DEPART_SNR_DB,
    IDENTITY_LAYERS,
    INPUT_ROW,
    SNR_CAP_DB,
    Probe,
    Tensor,
    is_input_row,
)


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


def _measured_inputs(p: Probe, by_layer: dict[str, Probe], measured: dict[str, dict[str, Any]]) -> list[str]:
    """The nearest upstream rows that were measured (through layers fused away, which have no row)."""
    out: list[str] = []
    stack, seen = list(p.inbound), set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in measured:
            out.append(name)
        elif name in by_layer:
            stack.extend(by_layer[name].inbound)
    return out


def layer_rows(
    probes: list[Probe],
    values: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    images: np.ndarray,
) -> tuple[list[dict[str, Any]], str | None]:
    """One row of metrics per probe, plus the flatten order found (None if no Flatten layer)."""
    rows: list[dict[str, Any]] = []
    flatten_order = None
    by_layer = {p.layer: p for p in probes}
    measured: dict[str, dict[str, Any]] = {}
    for p in probes:
        ref = reference.get(p.layer, images)  # several inputs: each one's row is in `reference`
        row: dict[str, Any] = {"layer": p.layer, "type": p.type, "note": p.note}
        if p.fused_into:
            row["fused_into"] = p.fused_into
        if p.tensor is None:
            row.update({"tensor": None, "departs": None})
            rows.append(row)
            continue
        t = p.tensor
        got = values[t.read]
        layout = p.layout
        if layout == "NCHW":
            got = got.transpose(0, 2, 3, 1)
        metrics = compare(ref, got)
        upstream = _measured_inputs(p, by_layer, measured)
        prev_ref = reference.get(upstream[0], images) if len(upstream) == 1 else None
        if upstream == [INPUT_ROW]:
            prev_ref = images
        if p.type == "Flatten" and prev_ref is not None and prev_ref.ndim == 4:
            # tf2onnx transposes back to NHWC before Reshape; check which order the export used.
            n, h, w, c = prev_ref.shape
            as_nchw = got.reshape(n, c, h, w).transpose(0, 2, 3, 1).reshape(n, -1)
            other = compare(ref, as_nchw)
            if other["cosine"] > metrics["cosine"] + 1e-6:
                metrics, layout, flatten_order = other, "flat (NCHW order, reordered)", "NCHW"
                got = as_nchw
            else:
                flatten_order = "NHWC"
        # Error power relative to signal power; the error a layer adds is the increase over its inputs' rows
        # (the float image counts as exact, so the input row's own quantization error shows too).
        prev_snr = min((measured[u]["snr_db"] for u in upstream), default=None)
        prev_nsr = max((measured[u]["nsr"] for u in upstream), default=0.0)
        drop = None if prev_snr is None else prev_snr - metrics["snr_db"]
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
                "channels": channel_stats(ref, got, t),
            }
        )
        rows.append(row)
        measured[p.layer] = {"snr_db": metrics["snr_db"], "nsr": nsr}
    return rows, flatten_order


def first_departure(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first row that departs, with the evidence (thresholds crossed, quantized range vs values).

    A row departs by its tensor-wide figures, or, once some row departs that way, by its channels: the
    median channel's SNR below the threshold while one outlier channel, carrying the signal power, keeps
    the tensor-wide SNR high. Such a row is marked `departs_channels`; `tensor_departure` names the first
    row whose tensor-wide figures depart (later, when the channels departed first).
    """
    tensor_first = next((r for r in rows if r.get("departs")), None)
    if tensor_first is None:
        return None
    for r in rows:
        if r.get("tensor") is not None and not r.get("departs") and hidden_departure(r.get("channels"), DEPART_SNR_DB):
            r["departs_channels"] = True
    for i, r in enumerate(rows):
        if not (r.get("departs") or r.get("departs_channels")):
            continue
        reason = []
        if r["snr_db"] < DEPART_SNR_DB:
            reason.append(f"SNR {r['snr_db']:.1f} dB < {DEPART_SNR_DB:g} dB")
        if r["cosine"] < DEPART_COSINE:
            reason.append(f"cosine {r['cosine']:.4f} < {DEPART_COSINE:g}")
        if not r.get("departs"):
            med = r["channels"]["channel_snr_db"]["median"]
            reason.append(
                f"its median channel's SNR is {med:.1f} dB < {DEPART_SNR_DB:g} dB although the tensor-wide SNR "
                f"reads {r['snr_db']:.1f} dB"
            )
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
            "first_keras_layer": following if is_input_row(r["layer"]) else r["layer"],
            "reason": "; ".join(reason),
            "by": "tensor" if r.get("departs") else "channels",
            "tensor_departure": tensor_first["layer"],
        }
    return None


def ranked_by_added_error(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ordered by the error power they add (% of signal power, over their inputs); largest first."""
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
