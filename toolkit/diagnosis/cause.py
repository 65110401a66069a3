"""The cause of an export's departure, in words a user can act on, from the per-channel figures.

The first row that departs (tensor-wide, or by its channels when an outlier channel hides the loss) is
the cause; rows after it that depart are its consequence (a softmax whose input lost its range departs
too, but keeping it in float would not help). What it is, checked in this order:

1. `outlier_channel`: a few channels set the (per-tensor) int8 scale, and the bulk of the others span
   a handful of levels. Remedy: keep that layer's output in float (`edgekit export --max-accuracy-drop`).
2. `calibration_range`: test values fall outside the range the calibration data gave the tensor.
   Remedy: calibrate on more (or more representative) data.
3. `weight_outlier`: one output channel's weights set a per-tensor weight scale. Remedy: per-channel
   weights.
4. `gain_outlier`: a per-channel multiplier (Normalization of a zero-variance feature divides by ε)
   that int8 cannot hold beside the others. Remedy: keep the layer in float, or fix the model.
5. `other`: none of these; the tensor-wide reason stands.

An optional sensitivity ranking (accuracy with only one layer left in float / only one quantized, from
`exporters.sensitivity` when present) adds its figures to the verdict; without it the verdict stands on
the tensors alone.
"""

from __future__ import annotations

import re
from typing import Any

from toolkit.diagnosis.channels import fmt_num
from toolkit.diagnosis.layers import INPUT_ROW, Tensor, _Owners, is_input_row

FEW_LEVELS = 16  # the bulk of the channels spans at most this many int8 levels (~6 % of 256): range lost
CLIP_PCT = 0.1  # a tensor with more of its test values outside the quantized range than this is clipped
MAX_DROP_HINT = "`edgekit export --max-accuracy-drop 0.3`"


def constants_by_layer(
    constants: list[dict[str, Any]], layer_names: list[str], model_names: tuple[str, ...] = ()
) -> dict[str, list[dict[str, Any]]]:
    """The export's quantized constants (weights, divisors) grouped by the Keras layer their name mentions."""
    fake = [Tensor(f"c{i}", c["name"], (), -1, "int8", "") for i, c in enumerate(constants)]
    owners = _Owners(layer_names, fake, model_names)
    out: dict[str, list[dict[str, Any]]] = {}
    for c, t in zip(constants, fake, strict=True):
        for owner in owners(t):
            out.setdefault(owner, []).append(c)
    return out


def _channels_text(items: list[dict[str, Any]], total: int, count: int) -> str:
    names = ", ".join(str(x["channel"]) for x in items)
    more = f" (and {count - len(items)} more)" if count > len(items) else ""
    return f"channel{'s' if count > 1 else ''} {names}{more} of {total}"


def _outlier(row: dict[str, Any]) -> dict[str, Any] | None:
    ch = row.get("channels") or {}
    setters, rest, levels = ch.get("sets_scale") or [], ch.get("rest"), ch.get("levels")
    if not setters or not rest or not levels or not ch.get("scale"):
        return None
    if rest["levels"] is None or rest["levels"][1] > FEW_LEVELS:
        return None
    lo = min(s["range"][0] for s in setters)
    hi = max(s["range"][1] for s in setters)
    power = sum(s["power_pct"] for s in setters)
    lv_lo, lv_hi = rest["levels"]
    use = f"{lv_lo}" if lv_lo == lv_hi else f"{lv_lo}–{lv_hi}"
    span = f"is constant at {fmt_num(hi)}" if lo == hi else f"spans {fmt_num(lo)}–{fmt_num(hi)}"
    dead = f"; {rest['dead_channels']} more are always 0" if rest.get("dead_channels") else ""
    text = (
        f"{_channels_text(setters, ch['channels'], ch['scale_setters'])} {span} and "
        f"sets the int8 scale ({fmt_num(ch['scale'])} per level); the other {rest['channels']} channels "
        f"({fmt_num(rest['range'][0])}–{fmt_num(rest['range'][1])}{dead}) use {use} of {ch['levels_total']} levels "
        f"(median channel SNR {rest['snr_db_median']:.1f} dB); tensor SNR {row['snr_db']:.1f} dB hides it because "
        f"the outlier carries {power:.1f} % of the signal power"
    )
    advice = (
        f"keep {row['layer']}'s output in float: {MAX_DROP_HINT} keeps the fewest layers in float that meet an "
        "accuracy budget"
    )
    return {"kind": "outlier_channel", "channels": [s["channel"] for s in setters], "text": text, "advice": advice}


def _calibration(row: dict[str, Any]) -> dict[str, Any] | None:
    if not row.get("quant_range") or (row.get("clipped_pct") or 0.0) <= CLIP_PCT:
        return None
    lo, hi = row["quant_range"]
    rlo, rhi = row["ref_range"]
    ch = row.get("channels") or {}
    clipped = ch.get("clipped_channels") or []
    which = ""
    if clipped and ch.get("channels", 0) > 1:
        which = " (most in " + ", ".join(f"channel {c['channel']} {c['clipped_pct']:.1f} %" for c in clipped[:3]) + ")"
    where = _where(row["layer"]).replace("**", "")
    text = (
        f"the int8 range of {where} from the calibration data, [{fmt_num(lo)}, {fmt_num(hi)}], is narrower than the "
        f"test data's [{fmt_num(rlo)}, {fmt_num(rhi)}]: {row['clipped_pct']:.1f} % of the values clip{which}"
    )
    advice = (
        "calibrate on more data: a larger `--calibration-size`, or calibration examples drawn like the test set "
        "(the calibration range must cover the values the model meets)"
    )
    return {"kind": "calibration_range", "channels": [c["channel"] for c in clipped], "text": text, "advice": advice}


def _per_tensor(consts: list[dict[str, Any]], min_rank: int) -> list[dict[str, Any]]:
    return [c for c in consts if c["scales"] == 1 and len(c["shape"]) >= min_rank and max(c["shape"], default=0) > 1]


def _weights(row: dict[str, Any], params: dict[str, Any], consts: list[dict[str, Any]]) -> dict[str, Any] | None:
    k = params.get("kernel")
    if not k or not k["sets_scale"]:
        return None
    per_tensor = _per_tensor(consts, 2)
    if not per_tensor:
        return None  # the export already scales its weights per channel (or holds them in float)
    text = (
        f"its weights are quantized with one scale for the whole tensor ({per_tensor[0]['name']}), and "
        f"{_channels_text(k['sets_scale'], k['out_channels'], k['scale_setters'])} reaches |w| "
        f"{fmt_num(k['max_abs'])} against a median of {fmt_num(k['median_channel_max_abs'])} per output channel, "
        "so it sets that scale and the other channels' weights keep few levels"
    )
    advice = f"use per-channel weights for {row['layer']} (one scale per output channel)"
    return {
        "kind": "weight_outlier",
        "channels": [c["channel"] for c in k["sets_scale"]],
        "text": text,
        "advice": advice,
    }


def _gain(row: dict[str, Any], params: dict[str, Any], consts: list[dict[str, Any]]) -> dict[str, Any] | None:
    g = params.get("gain")
    if not g or not g["outliers"]:
        return None
    why = ""
    if g.get("zero_variance_count"):
        why = (
            f" ({g['zero_variance_count']} feature{'s have' if g['zero_variance_count'] > 1 else ' has'} zero variance "
            "in the data the layer was adapted on, so Keras divides by ε)"
        )
    per_tensor = _per_tensor(consts, 1)
    held = (
        f"the export holds it as one int8 constant with a single scale ({per_tensor[0]['name']}), so the other "
        "channels' multipliers round away"
        if per_tensor
        else "int8 cannot hold it beside the others"
    )
    ch = row.get("channels") or {}
    med = ch.get("channel_snr_db", {}).get("median")
    text = (
        f"its per-channel multiplier reaches {fmt_num(g['max'])} for "
        f"{_channels_text(g['outliers'], g['channels'], g['outlier_count'])}{why}, against a median of "
        f"{fmt_num(g['median'])}; {held}" + (f" (median channel SNR {med:.1f} dB)" if med is not None else "")
    )
    advice = (
        f"keep {row['layer']} in float ({MAX_DROP_HINT}), or fix the model: drop the constant features or give the "
        "normalization a variance floor"
    )
    return {"kind": "gain_outlier", "channels": [c["channel"] for c in g["outliers"]], "text": text, "advice": advice}


def _sensitivity_text(layer: str, ranking: list[dict[str, Any]] | None) -> str | None:
    row = next((r for r in ranking or [] if r.get("layer") == layer), None)
    if not row:
        return None
    parts = []
    if row.get("only_float") is not None:
        parts.append(f"with only {layer} in float the model scores {_score(row['only_float'])}")
    if row.get("only_quantized") is not None:
        parts.append(f"with only {layer} quantized it scores {_score(row['only_quantized'])}")
    top = str((ranking or [{}])[0].get("layer"))
    if parts and top != layer:
        parts.append(f"the ranking puts {top} first")
    return "; ".join(parts) or None


def _score(v: float) -> str:
    return f"{100 * v:.2f} %" if v <= 1 else f"{v:.2f}"


def explain_cause(
    rows: list[dict[str, Any]],
    departure: dict[str, Any] | None,
    params: dict[str, dict[str, Any]],
    consts: dict[str, list[dict[str, Any]]],
    sensitivity: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """The cause of `departure` (from `first_departure`): its kind, the channels, the evidence and the advice."""
    if departure is None:
        return None
    row = next(r for r in rows if r["layer"] == departure["layer"])
    name = row["layer"]
    found = (
        _outlier(row)
        or _calibration(row)
        or _weights(row, params.get(name, {}), consts.get(name, []))
        or _gain(row, params.get(name, {}), consts.get(name, []))
    )
    if found is None:
        found = {"kind": "other", "channels": [], "text": departure["reason"], "advice": None}
        if row.get("quant_range") is not None:
            found["advice"] = f"keep {name} in float ({MAX_DROP_HINT} finds the fewest layers to keep)"
    i = rows.index(row)
    later = [r["layer"] for r in rows[i + 1 :] if r.get("departs")]
    cause = {
        "layer": name,
        **found,
        "consequences": later,
        "tensor_departure": departure.get("tensor_departure"),
        "sensitivity": _sensitivity_text(name, sensitivity),
    }
    cause["summary"] = cause_text(cause).replace("**", "")  # plain text, for the run's report
    return cause


def _where(layer: str) -> str:
    """How a row is named in a sentence: the model input, one of several inputs, or a layer (bold)."""
    if layer == INPUT_ROW:
        return "the model input"
    if is_input_row(layer):
        return f"the input {layer[len('(input ') : -1]}"
    return f"**{layer}**"


def cause_text(cause: dict[str, Any]) -> str:
    """One paragraph: the layer, what happened, what follows from it."""
    where = _where(cause["layer"])
    text = f"{where}: {cause['text']}"
    if cause.get("output"):  # a model with several outputs: the one this departure hurts
        text = f"output **{cause['output']}** is hurt first at {text}"
    if cause["consequences"]:
        rest = ", ".join(cause["consequences"])
        text += f". {rest} depart{'s' if len(cause['consequences']) == 1 else ''} as a consequence"
        if cause.get("tensor_departure") and cause["tensor_departure"] != cause["layer"]:
            text += (
                f" (the tensor-wide figures first depart at {cause['tensor_departure']}; its error is explained by "
                "the range lost upstream)"
            )
    if cause.get("sensitivity"):
        text += f". Sensitivity: {cause['sensitivity']}"
    return re.sub(r"\s+", " ", text) + "."
