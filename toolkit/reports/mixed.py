"""The report's Mixed precision section: mixed.json (`edgekit export --max-drop`) into the view model, and its Markdown.

For each format: the sensitivity ranking (accuracy with only that layer kept in float) and the curve
(k most sensitive layers in float → accuracy, agreement, size, batch-1 p50), the chosen point marked, so
a user can pick another point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.reports.fmt import DASH, fixed, integer, ms, num, pct

if TYPE_CHECKING:
    from toolkit.run.documents import MixedDocument


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


def build_mixed(doc: MixedDocument) -> MixedView:
    """mixed.json as a view."""
    budget = []
    if doc.max_drop_pt is not None:
        budget.append(f"accuracy within {doc.max_drop_pt:g} pt of Keras")
    if doc.min_agreement is not None:
        budget.append(f"top-1 agreement ≥ {doc.min_agreement:g}")
    formats = []
    for f in doc.formats:
        curve = tuple(
            MixedPointRow(
                k=p.k,
                float_layers=tuple(p.float_layers),
                accuracy=num(p.accuracy),
                agreement=num(p.agreement),
                drop_pt=num(p.drop_pt),
                size_bytes=p.size_bytes,
                p50_ms=num(p.p50_ms),
                meets_budget=p.meets_budget,
                chosen=f.float_layers is not None and p.float_layers == f.float_layers,
            )
            for p in f.curve
        )
        ranking = tuple(
            MixedRanking(
                layer=r.layer,
                float_accuracy=num(r.float_accuracy),
                float_agreement=num(r.float_agreement),
                only_accuracy=num(r.only_accuracy),
            )
            for r in f.ranking
        )
        formats.append(MixedFormatView(format=f.format, artifact=f.artifact, note=f.note, ranking=ranking, curve=curve))
    return MixedView(
        budget=" and ".join(budget) or "none given",
        images=doc.images,
        keras_accuracy=num(doc.keras_accuracy),
        timing=doc.timing,
        formats=tuple(formats),
    )


def mixed_markdown(view: MixedView) -> list[str]:
    from toolkit.reports.markdown import table

    out = [
        "## Mixed precision",
        "",
        f"From `edgekit export --max-drop/--min-agreement`: budget {view.budget}, on the first "
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
