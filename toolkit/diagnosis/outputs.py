"""Each output of a model with several outputs: its part of the per-layer map, where its error enters, its
error measured by its kind, and which output the export hurts most.

The per-layer rows are measured once per export (`metrics.layer_rows`); an output's map is the rows of the
layers it depends on (its Keras layer and everything upstream, down to the inputs it reads), so its first
departure and its added-error ranking leave out the branches that feed only the other outputs. Its error
is measured as parity judges that kind (`toolkit.steps.parity`): probabilities and logits (as their softmax)
by top-1 agreement, values by max |Δ| over the largest |reference value|, boxes by coordinate |Δ| over the box
scale (the largest |reference coordinate|) and their IoU with the reference's boxes, class indices by agreement.
The output hurt most is the one whose Keras layer ends with the lowest SNR: error power relative to its
own signal, comparable across kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.diagnosis.layers import KerasLayer

if TYPE_CHECKING:
    from toolkit.run.documents import OutputKindError


@dataclass(frozen=True)
class ModelOutput:
    """One output of the model as diagnose measures it."""

    name: str
    kind: str  # one of runtimes.spec.OUTPUT_KINDS
    layer: str  # the Keras layer that produces it
    labels: np.ndarray | None  # integer class labels for a classifying output, else None
    # An output no row ends on (a file source's ArgMax label): the rows it is computed from, and why it has none.
    depends: tuple[str, ...] = ()
    note: str = ""


def upstream(layers: list[KerasLayer], layer: str) -> set[str]:
    """`layer` and every layer (and input row) it depends on."""
    inbound = {lay.name: lay.inbound for lay in layers}
    seen: set[str] = set()
    stack = [layer]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(inbound.get(name, ()))
    return seen


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def mean_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Mean IoU of paired xyxy boxes (`runtimes.spec.BOX_FORMAT`); a pair of empty boxes counts as 1."""
    lo, hi = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[..., 2:] - a[..., :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), axis=-1)
    union = area_a + area_b - inter
    return float(np.where(union > 0, inter / np.where(union > 0, union, 1.0), 1.0).mean())


def kind_error(kind: str, ref: np.ndarray, got: np.ndarray, labels: np.ndarray | None) -> OutputKindError:
    """One output's error against Keras, measured as its kind is judged (logits as their softmax, as parity)."""
    from toolkit.run.documents import OutputKindError

    if kind == "logits":
        ref, got = _softmax(ref), _softmax(got)
    r, g = ref.astype(np.float64), got.astype(np.float64)
    err = np.abs(g - r.reshape(g.shape))
    scale = float(np.max(np.abs(r))) if r.size else 0.0
    max_abs = float(err.max()) if err.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    out = OutputKindError(
        measure="max relative error",
        value=max_rel,
        max_abs_err=max_abs,
        mean_abs_err=float(err.mean()) if err.size else 0.0,
        max_rel_err=max_rel,
        relative_to="the box scale (largest |reference coordinate|)"
        if kind == "boxes"
        else "the largest |reference value|",
    )
    if kind in ("probabilities", "logits", "class_indices"):
        top_g, top_r = (g.reshape(len(g)), r.reshape(len(r))) if kind == "class_indices" else (g.argmax(1), r.argmax(1))
        agree = top_g == top_r
        out.measure, out.value, out.disagreements = "top-1 agreement", float(agree.mean()), int((~agree).sum())
        if labels is not None:
            out.accuracy = float((top_g == labels).mean())
            out.reference_accuracy = float((top_r == labels).mean())
    elif kind == "boxes":
        out.measure = "max coordinate |Δ| / box scale"
        out.iou_with_reference = mean_iou(g.reshape(r.shape), r)
    return out


def diagnose_outputs(
    outputs: list[ModelOutput],
    layers: list[KerasLayer],
    rows: list[dict[str, Any]],
    reference: dict[str, np.ndarray],
    plain: dict[str, np.ndarray],
    explain: Any,
) -> list[dict[str, Any]]:
    """One section per output: its error by kind, its map (layer names), first departure, cause and ranking.

    `plain` holds the export's uninstrumented outputs by name; `explain(rows, departure)` gives the cause.
    The output hurt most is marked `hurt` and its cause names it.
    """
    from toolkit.diagnosis.cause import cause_text
    from toolkit.diagnosis.metrics import first_departure, ranked_by_added_error

    sections = []
    for out in outputs:
        on_path = upstream(layers, out.layer).union(*(upstream(layers, d) for d in out.depends))
        path_rows = [r for r in rows if r["layer"] in on_path]
        departure = first_departure(path_rows)
        end = next((r for r in path_rows if r["layer"] == out.layer), None)
        got = plain[out.name]
        sections.append(
            {
                "output": out.name,
                "kind": out.kind,
                "layer": out.layer,
                "snr_db": None if end is None else end.get("snr_db"),
                "error": kind_error(out.kind, reference[out.layer], got, out.labels).model_dump(),
                "layers": [r["layer"] for r in path_rows],
                "first_departure": departure,
                "cause": explain(path_rows, departure),
                "added_error_ranking": ranked_by_added_error(path_rows)[:5],
                "hurt": False,
                "note": out.note,
            }
        )
    scored = [s for s in sections if s["snr_db"] is not None]
    if scored:
        worst = min(scored, key=lambda s: s["snr_db"])
        worst["hurt"] = True
    for s in sections:
        if s["cause"] is not None:
            s["cause"] = {**s["cause"], "output": s["output"]}
            s["cause"]["summary"] = cause_text(s["cause"]).replace("**", "")
    return sections
