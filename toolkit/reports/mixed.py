"""The report's Mixed precision section: mixed.json (`edgekit export --max-accuracy-drop`) into the view model,
and its Markdown.

For each format: the sensitivity ranking (accuracy with only that layer kept in float) and the curve
(k most sensitive layers in float → accuracy, agreement, size, batch-1 p50), the chosen point marked, so
a user can pick another point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.reports.fmt import DASH, fixed, integer, ms, num, pct

if TYPE_CHECKING:
    from toolkit.run.documents import MixedDocument, MixedFormat, MixedPoint


@dataclass(frozen=True)
class MixedView:
    """mixed.json for the report: the budget in words, and each format's record as mixed.json holds it."""

    budget: str
    images: int | None
    keras_accuracy: float | None
    reference: str  # Keras, or onnx-fp32 for an ONNX source
    timing: str
    formats: tuple[MixedFormat, ...]

    @property
    def units(self) -> str:
        """What the search keeps in float: Keras layers, or an ONNX source's weighted nodes."""
        return "layers" if self.reference == "Keras" else "weighted nodes"

    @staticmethod
    def chosen(f: MixedFormat, p: MixedPoint) -> bool:
        """Whether `p` is the point the search chose (the one written as `<format>-int8-mixed`)."""
        return f.float_layers is not None and p.float_layers == f.float_layers


def build_mixed(doc: MixedDocument) -> MixedView:
    """mixed.json as a view."""
    budget = []
    if doc.max_drop_pt is not None:
        budget.append(f"accuracy within {doc.max_drop_pt:g} pt of {doc.reference}")
    if doc.min_agreement is not None:
        budget.append(f"top-1 agreement ≥ {doc.min_agreement:g}")
    return MixedView(
        budget=" and ".join(budget) or "none given",
        images=doc.images,
        keras_accuracy=num(doc.keras_accuracy),
        reference=doc.reference,
        timing=doc.timing,
        formats=tuple(doc.formats),
    )


def mixed_markdown(view: MixedView) -> list[str]:
    from toolkit.reports.markdown import table

    out = [
        "## Mixed precision",
        "",
        f"From `edgekit export --max-accuracy-drop/--min-agreement`: budget {view.budget}, on the first "
        f"{integer(view.images)} test images ({view.reference} {pct(view.keras_accuracy)}). Full int8 first; then "
        f"the most sensitive {view.units} are kept in float one at a time. p50: " + (view.timing or DASH) + ".",
        "",
    ]
    for f in view.formats:
        out += [f"### {f.format}: {f.artifact or 'no mixed artifact written'}", "", f.note, ""]
        rows = [
            [
                f"**{p.k}**" if view.chosen(f, p) else str(p.k),
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
