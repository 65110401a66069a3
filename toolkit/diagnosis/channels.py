"""Per-channel view of a quantized tensor against Keras, and of the Keras layer's own parameters.

A tensor-wide SNR is dominated by the channels with the most signal power: one outlier channel of
129 that sets a per-tensor int8 scale of ~8 carries almost all the power, so the tensor reads 40 dB
while the other 128 channels are left with one or two int8 levels. The figures here show that:

- per channel (the last axis of the Keras output: NHWC channels, Dense units, vector features):
  max |Δ|, SNR, the range the channel actually uses (min/max over the images) and how many of the
  int8 levels that range spans under the tensor's (per-tensor) scale;
- "range use": the share of the 2^bits levels the bulk of the channels (median, 90th percentile)
  spans; "sets the scale": channels whose max |value| is more than SETS_SCALE_RATIO times the median
  channel's and that reach the top of the tensor's range;
- channels whose test values fall outside the quantized range (calibration narrower than the data);
- per Keras layer, its parameters per output channel: a kernel row/filter far above the others (it sets
  a per-tensor weight scale) or a per-channel gain far above the others (Normalization of a feature
  with zero variance divides by ε).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from toolkit.diagnosis.layers import SNR_CAP_DB, Tensor

SETS_SCALE_RATIO = 10.0  # a channel whose max |value| is this many times the median channel's sets the scale
GAIN_RATIO = 100.0  # a per-channel multiplier this many times the median one is out of int8's reach
LISTED = 5  # channels named in the JSON per list
_LEVELS = {"int8": 256, "uint8": 256, "int16": 65536}


def _snr(sig: np.ndarray, noise: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = 10.0 * np.log10(sig / noise)
    snr = np.where(noise == 0, SNR_CAP_DB, snr)
    out: np.ndarray = np.clip(np.nan_to_num(snr, nan=-SNR_CAP_DB, neginf=-SNR_CAP_DB), -SNR_CAP_DB, SNR_CAP_DB)
    return out


def _q(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if values.size else 0.0


def channel_stats(ref: np.ndarray, got: np.ndarray, t: Tensor | None) -> dict[str, Any] | None:
    """Per-channel figures of `got` (the export's tensor, in Keras layout) against `ref`; None for scalars."""
    if ref.ndim < 2 or ref.shape[-1] < 2:
        return None
    c = ref.shape[-1]
    # float32 arrays with float64 sums: a large activation tensor is not copied in float64.
    r = ref.reshape(-1, c).astype(np.float32, copy=False)
    err = got.reshape(-1, c).astype(np.float32) - r
    lo, hi = r.min(0).astype(np.float64), r.max(0).astype(np.float64)
    peak = np.maximum(np.abs(lo), np.abs(hi))
    live = np.flatnonzero(peak > 0)  # a channel that is always 0 carries nothing to lose
    power = np.einsum("ij,ij->j", r, r, dtype=np.float64)
    snr = _snr(power, np.einsum("ij,ij->j", err, err, dtype=np.float64))
    max_err = np.abs(err).max(0).astype(np.float64)
    scale = t.scale if t is not None else None
    levels_total = _LEVELS.get(t.qdtype or "", 0) if t is not None else 0
    out: dict[str, Any] = {
        "channels": c,
        "live_channels": int(live.size),
        "scale": scale,
        "scale_kind": "per-tensor" if scale is not None else None,
        "levels_total": levels_total or None,
        "peak": {"median": _q(peak[live], 0.5), "p90": _q(peak[live], 0.9), "max": float(peak.max())},
        "channel_snr_db": {
            "min": _q(snr[live], 0.0),
            "p10": _q(snr[live], 0.1),
            "median": _q(snr[live], 0.5),
        },
        "channel_max_abs_err": {"median": _q(max_err[live], 0.5), "max": float(max_err.max())},
        "worst_channels": [
            {
                "channel": int(i),
                "snr_db": float(snr[i]),
                "max_abs_err": float(max_err[i]),
                "range": [float(lo[i]), float(hi[i])],
            }
            for i in live[np.argsort(snr[live])][:3]
        ],
        "levels": None,
        "range_use_pct": None,
        "sets_scale": [],
        "rest": None,
        "clipped_channels": [],
    }
    levels = _levels(out, lo, hi, live, scale, levels_total)
    _scale_setters(out, lo, hi, peak, live, power, snr, levels)
    if scale is not None and t is not None and t.qdtype in _LEVELS:
        _clipped(out, r, lo, hi, t, scale)
    return out


def _levels(
    out: dict[str, Any], lo: np.ndarray, hi: np.ndarray, live: np.ndarray, scale: float | None, levels_total: int
) -> np.ndarray | None:
    """The int8 levels each channel's values land on (from its lowest to its highest quantized value), and how
    much of the type's range that is; None without a quantization scale."""
    if not scale:
        return None
    levels = np.rint(hi / scale) - np.rint(lo / scale) + 1
    if levels_total:
        levels = np.minimum(levels, levels_total)  # values beyond the range clip onto its ends
    out["levels"] = {"median": _q(levels[live], 0.5), "p90": _q(levels[live], 0.9), "max": float(levels.max())}
    out["range_use_pct"] = {k: 100.0 * v / levels_total for k, v in out["levels"].items() if levels_total}
    return levels


def _scale_setters(
    out: dict[str, Any],
    lo: np.ndarray,
    hi: np.ndarray,
    peak: np.ndarray,
    live: np.ndarray,
    power: np.ndarray,
    snr: np.ndarray,
    levels: np.ndarray | None,
) -> None:
    """The few channels whose peaks set a per-tensor scale (far above the median channel), and the rest."""
    med = out["peak"]["median"]
    setters = [
        int(i) for i in live if med > 0 and peak[i] > SETS_SCALE_RATIO * med and peak[i] >= 0.5 * out["peak"]["max"]
    ]
    setters.sort(key=lambda i: -peak[i])
    out["sets_scale"] = [
        {
            "channel": i,
            "range": [float(lo[i]), float(hi[i])],
            "levels": None if levels is None else int(levels[i]),
            "power_pct": float(100.0 * power[i] / max(float(power.sum()), 1e-300)),
        }
        for i in setters[:LISTED]
    ]
    out["scale_setters"] = len(setters)
    rest = np.setdiff1d(live, setters)
    if setters and rest.size:
        out["rest"] = {
            "channels": int(rest.size),
            "dead_channels": int(out["channels"] - live.size),
            "range": [float(lo[rest].min()), float(hi[rest].max())],
            "peak_median": _q(peak[rest], 0.5),
            "levels": None if levels is None else [int(levels[rest].min()), int(_q(levels[rest], 0.9))],
            "snr_db_median": _q(snr[rest], 0.5),
        }


def _clipped(out: dict[str, Any], r: np.ndarray, lo: np.ndarray, hi: np.ndarray, t: Tensor, scale: float) -> None:
    """The channels whose reference values fall outside the quantized type's range, and that range."""
    info = np.iinfo(np.dtype(t.qdtype))
    zp = t.zero_point or 0
    qlo, qhi = (info.min - zp - 0.5) * scale, (info.max - zp + 0.5) * scale
    share = ((r < qlo) | (r > qhi)).mean(0) * 100.0
    clipped = [int(i) for i in np.argsort(-share) if share[i] > 0][:LISTED]
    out["clipped_channels"] = [
        {"channel": i, "clipped_pct": float(share[i]), "range": [float(lo[i]), float(hi[i])]} for i in clipped
    ]
    out["quant_range"] = [float(qlo + scale / 2), float(qhi - scale / 2)]


def hidden_departure(stats: dict[str, Any] | None, threshold_db: float) -> bool:
    """Whether the bulk of the channels departs although the tensor-wide figures may not show it."""
    if not stats:
        return False
    return bool(stats["live_channels"] > 1 and stats["channel_snr_db"]["median"] < threshold_db)


# -- the Keras layer's parameters ----------------------------------------------------------------------
def _outliers(per_channel: np.ndarray, ratio: float) -> tuple[list[int], float]:
    live = per_channel[per_channel > 0]
    med = float(np.median(live)) if live.size else 0.0
    if med <= 0:
        return [], med
    idx = [int(i) for i in np.argsort(-per_channel) if per_channel[i] > ratio * med]
    return idx, med


def layer_parameters(model: Any) -> dict[str, dict[str, Any]]:
    """Per Keras layer with weights: kernel rows or per-channel gains far above the median (JSON-ready)."""
    out: dict[str, dict[str, Any]] = {}
    for layer in model.layers:
        kind = type(layer).__name__
        try:
            weights = {w.path.rsplit("/", 1)[-1]: np.asarray(w.numpy(), np.float64) for w in layer.weights}
        except (AttributeError, ValueError):
            continue
        info: dict[str, Any] = {}
        if kind == "Normalization" and "variance" in weights:
            eps = 1e-7  # keras.config.epsilon(): Normalization divides by max(sqrt(var), ε)
            var = weights["variance"].reshape(-1)
            gain = 1.0 / np.maximum(np.sqrt(np.maximum(var, 0.0)), eps)
            info["gain"] = _gain(gain, var <= 0)
        elif kind == "BatchNormalization" and "moving_variance" in weights:
            gamma = weights.get("gamma", np.ones_like(weights["moving_variance"]))
            eps = float(getattr(layer, "epsilon", 1e-3))
            info["gain"] = _gain(np.abs(gamma) / np.sqrt(weights["moving_variance"] + eps), None)
        kernel = weights.get("kernel")
        if kernel is not None and kernel.ndim >= 2:
            # Output channels are the last axis (Dense [in, out], Conv [kh, kw, in, out]).
            per_out = np.abs(kernel.reshape(-1, kernel.shape[-1])).max(0)
            idx, med = _outliers(per_out, SETS_SCALE_RATIO)
            info["kernel"] = {
                "out_channels": int(per_out.size),
                "max_abs": float(per_out.max()),
                "median_channel_max_abs": med,
                "sets_scale": [{"channel": i, "max_abs": float(per_out[i])} for i in idx[:LISTED]],
                "scale_setters": len(idx),
            }
        if info:
            out[layer.name] = info
    return out


def _gain(gain: np.ndarray, zero_var: np.ndarray | None) -> dict[str, Any]:
    idx, med = _outliers(gain, GAIN_RATIO)
    return {
        "channels": int(gain.size),
        "median": med,
        "max": float(gain.max()),
        "outliers": [{"channel": i, "gain": float(gain[i])} for i in idx[:LISTED]],
        "outlier_count": len(idx),
        "zero_variance": None if zero_var is None else [int(i) for i in np.flatnonzero(zero_var)][:LISTED],
        "zero_variance_count": None if zero_var is None else int(zero_var.sum()),
    }


def fmt_num(v: float) -> str:
    """A compact number for the verdict: 2000, 7.8, 0.0039, 1e+07."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.2g}"
    digits = min(4, max(0, 2 - math.floor(math.log10(a))))
    text = f"{v:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
