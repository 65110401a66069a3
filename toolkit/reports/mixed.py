"""The report's Mixed precision section: mixed.json (`edgekit export --max-accuracy-drop`) into the view model,
and its Markdown.

For each format: the sensitivity ranking (accuracy with only that layer kept in float) and the curve
(k most sensitive layers in float → accuracy, agreement, size, batch-1 p50), the chosen point marked, so
a user can pick another point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolkit.reports.fmt import DASH, as_dict, as_list, fixed, integer, ms, num, pct

Doc = dict[str, Any]


@dataclass(frozen=True)
class MixedPointRow:
    k: int
    float_layers: tuple[str, ...]
    accuracy: float | None
    agreement: float | None
    drop_pt: float | None
    size_bytes: float | None
    p50_ms: float | None
    meets_budget: bool
    chosen: bool


@dataclass(frozen=True)
class MixedRanking:
    layer: str
    float_accuracy: float | None
    float_agreement: float | None
    only_accuracy: float | None


@dataclass(frozen=True)
class MixedFormatView:
    format: str
    artifact: str | None
    note: str
    ranking: tuple[MixedRanking, ...]
    curve: tuple[MixedPointRow, ...]


@dataclass(frozen=True)
class MixedView:
    budget: str
    images: int | None
    keras_accuracy: float | None
    timing: str
    formats: tuple[MixedFormatView, ...]


def build_mixed(doc: Doc) -> MixedView:
    """mixed.json as a view (missing fields become None, never an exception)."""
    d = as_dict(doc)
    budget = []
    if d.get("max_drop_pt") is not None:
        budget.append(f"accuracy within {d['max_drop_pt']:g} pt of Keras")
    if d.get("min_agreement") is not None:
        budget.append(f"top-1 agreement ≥ {d['min_agreement']:g}")
    formats = []
    for f in map(as_dict, as_list(d.get("formats"))):
        chosen = [str(x) for x in as_list(f.get("float_layers"))] if f.get("float_layers") is not None else None
        curve = tuple(
            MixedPointRow(
                k=int(num(p.get("k")) or 0),
                float_layers=tuple(str(x) for x in as_list(p.get("float_layers"))),
                accuracy=num(p.get("accuracy")),
                agreement=num(p.get("agreement")),
                drop_pt=num(p.get("drop_pt")),
                size_bytes=num(p.get("size_bytes")),
                p50_ms=num(p.get("p50_ms")),
                meets_budget=bool(p.get("meets_budget")),
                chosen=chosen is not None and [str(x) for x in as_list(p.get("float_layers"))] == chosen,
            )
            for p in map(as_dict, as_list(f.get("curve")))
        )
        ranking = tuple(
            MixedRanking(
                layer=str(r.get("layer", "?")),
                float_accuracy=num(r.get("float_accuracy")),
                float_agreement=num(r.get("float_agreement")),
                only_accuracy=num(r.get("only_accuracy")),
            )
            for r in map(as_dict, as_list(f.get("ranking")))
        )
        formats.append(
            MixedFormatView(
                format=str(f.get("format", "?")),
                artifact=None if f.get("artifact") is None else str(f["artifact"]),
                note=str(f.get("note", "")),
                ranking=ranking,
                curve=curve,
            )
        )
    images = num(d.get("images"))
    return MixedView(
        budget=" and ".join(budget) or "none given",
        images=None if images is None else int(images),
        keras_accuracy=num(d.get("keras_accuracy")),
        timing=str(d.get("timing", "")),
        formats=tuple(formats),
    )


def mixed_markdown(view: MixedView) -> list[str]:
    from toolkit.reports.markdown import table

    out = [
        "## Mixed precision",
        "",
        f"From `edgekit export --max-accuracy-drop/--min-agreement`: budget {view.budget}, on the first "
        f"{integer(view.images)} test images (Keras {pct(view.keras_accuracy)}). Full int8 first; then the most "
        "sensitive layers are kept in float one at a time. p50: " + (view.timing or DASH) + ".",
        "",
    ]
    for f in view.formats:
        out += [f"### {f.format}: {f.artifact or 'no mixed artifact written'}", "", f.note, ""]
        rows = [
            [
                ("**" if p.chosen else "") + str(p.k) + ("**" if p.chosen else ""),
                ", ".join(p.float_layers) or "none (full int8)",
                pct(p.accuracy),
                fixed(None if p.drop_pt is None else -p.drop_pt, 2),
                fixed(p.agreement, 4),
                integer(p.size_bytes),
                ms(p.p50_ms),
                "yes" if p.meets_budget else "no",
            ]
            for p in f.curve
        ]
        header = [
            "float layers (k)",
            "kept in float",
            "accuracy",
            "Δ pt",
            "agreement",
            "bytes",
            "b1 p50 ms",
            "in budget",
        ]
        out += [table(header, rows, "llrrrrrl"), ""]
        if f.ranking:
            ranked = [
                [r.layer, pct(r.float_accuracy), fixed(r.float_agreement, 4), pct(r.only_accuracy)] for r in f.ranking
            ]
            out += [
                "Sensitivity, most sensitive first:",
                "",
                table(
                    ["layer", "only it in float: accuracy", "agreement", "only it quantized: accuracy"], ranked, "lrrr"
                ),
                "",
            ]
    return out
