"""Every tolerance edgekit judges by, in one place: parity, board verify, emulated CPUs and microcontrollers.

Three questions, three rules:
- **Parity** (`edgekit parity`, the pipeline): does an exported artifact keep the reference model's answers
  on the test set? Judged per precision against the Keras (or source-file) reference (`parity_tolerance`).
- **Same answers on another machine** (`edgekit verify` on a board, `edgekit parity --cpu`): does the same
  file give the same outputs as on the desktop? Judged per output by a float limit or one quantization step
  (`machine_tolerance`).
- **Microcontroller** (`edgekit mcu`): does TFLite Micro compute what LiteRT's built-in kernels compute, to
  within the rounding LiteRT's own two kernel sets show on the same model and data (`MIN_ROUNDING_STEPS`)?

Plain Python (no numpy, no pydantic): a TFLite-only board install reads it. The docs page "Parity and
tolerances" and the commands' help texts are generated from here (`tolerance_markdown`, `*_HELP`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final


@dataclass(frozen=True)
class Tolerance:
    """Parity pass criteria for one precision; None means the criterion does not apply."""

    max_abs_diff: float | None = None
    min_agreement: float | None = None
    max_accuracy_drop: float | None = None  # as a fraction: 0.005 = 0.5 points
    max_rel_error: float | None = None  # regression: max |Δ| / max |reference|
    # Relative to the float model's own error rate: a less accurate model has more borderline images that
    # quantization noise may flip, so its allowance grows with its error rate (never below the fixed floor).
    disagreement_per_error: float | None = None
    drop_per_error: float | None = None
    # Boxes: the |Δ| limit is never below this many steps of the artifact's quantized output, when it has one.
    min_output_steps: float | None = None

    def for_model(self, reference_accuracy: float | None) -> Tolerance:
        """This tolerance with the relative allowances applied to a model of `reference_accuracy`."""
        if reference_accuracy is None:
            return self
        error = 1.0 - reference_accuracy
        agreement, drop = self.min_agreement, self.max_accuracy_drop
        if agreement is not None and self.disagreement_per_error is not None:
            agreement = min(agreement, 1.0 - self.disagreement_per_error * error)
        if drop is not None and self.drop_per_error is not None:
            drop = max(drop, self.drop_per_error * error)
        return replace(self, min_agreement=agreement, max_accuracy_drop=drop)

    def describe(self) -> str:
        parts = []
        if self.max_rel_error is not None:
            steps = "" if self.min_output_steps is None else f" (at least {self.min_output_steps:g} output steps)"
            parts.append(f"max |Δ| ≤ {self.max_rel_error:g} × max |reference|{steps}")
        if self.min_agreement is not None:
            parts.append(f"agreement ≥ {self.min_agreement:.4g}" + (" (2σ)" if self.min_agreement < 1 else ""))
        if self.max_abs_diff is not None:
            parts.append(f"max |Δp| ≤ {self.max_abs_diff:g}")
        if self.max_accuracy_drop is not None:
            parts.append(f"accuracy within {self.max_accuracy_drop * 100:.3g} pt (or 2σ of the paired difference)")
        return ", ".join(parts)

    def describe_relative(self) -> str:
        """How the allowance grows with the reference model's error rate ("" when it does not)."""
        parts = []
        if self.min_agreement is not None and self.disagreement_per_error is not None:
            parts.append(
                f"agreement ≥ 1 − max({(1 - self.min_agreement) * 100:g} %, "
                f"{self.disagreement_per_error:g} × the reference's error rate)"
            )
        if self.max_accuracy_drop is not None and self.drop_per_error is not None:
            parts.append(
                f"drop ≤ max({self.max_accuracy_drop * 100:g} pt, {self.drop_per_error:g} × the reference's error rate)"
            )
        return "; ".join(parts)


_INT8 = Tolerance(min_agreement=0.995, max_accuracy_drop=0.005, disagreement_per_error=0.25, drop_per_error=0.05)
# Parity against the reference, keyed by precision; int8-mixed artifacts are judged as int8.
# int8: measured, int8 flips 2.5 % as many images as the reference CNN gets wrong, 10-15 % on small user models.
# int4-weights: 16 weight levels instead of 256, twice int8's allowances. Measured on the reference CNN
# (98.81 %): 17 of 10,000 images flipped (14 % of its errors); small user models flip 17-43 % of their errors.
PARITY_TOLERANCES: Final[dict[str, Tolerance]] = {
    "fp32": Tolerance(max_abs_diff=1e-5, min_agreement=1.0),
    "fp16": Tolerance(max_abs_diff=1e-2),
    "int8-dynamic": _INT8,
    "int8": _INT8,
    "int16x8": _INT8,
    "int4-weights": Tolerance(
        min_agreement=0.99, max_accuracy_drop=0.01, disagreement_per_error=0.5, drop_per_error=0.1
    ),
}
# Models whose output is plain values (regression) have no classes to agree on: relative error instead.
VALUE_TOLERANCES: Final[dict[str, Tolerance]] = {
    "fp32": Tolerance(max_rel_error=1e-4),
    "fp16": Tolerance(max_rel_error=1e-2),
    "int8-dynamic": Tolerance(max_rel_error=0.05),
    "int8": Tolerance(max_rel_error=0.05),
    "int16x8": Tolerance(max_rel_error=0.05),
    "int4-weights": Tolerance(max_rel_error=0.1),  # measured 0.077 on a small regression model
}


# Boxes (x_min, y_min, x_max, y_max) are regressed coordinates: the values criteria, relative to the box scale
# (max |reference coordinate|). A quantized output cannot resolve less than its own step, and rounding on the
# way in and out may each cost one: the limit is never below two steps of the artifact's output scale.
BOX_TOLERANCES: Final[dict[str, Tolerance]] = {
    name: replace(t, min_output_steps=None if name in ("fp32", "fp16") else 2.0) for name, t in VALUE_TOLERANCES.items()
}
# Class indices (an argmax inside the graph) are top-1 answers without the scores: agreement and accuracy as
# for probabilities, no |Δp| to bound. fp16 rounds less than int8, so int8's allowances bound it.
CLASS_INDEX_TOLERANCES: Final[dict[str, Tolerance]] = {
    **{name: replace(t, max_abs_diff=None) for name, t in PARITY_TOLERANCES.items()},
    "fp32": Tolerance(min_agreement=1.0),
    "fp16": _INT8,
}
_TABLES: Final[dict[str, dict[str, Tolerance]]] = {
    "values": VALUE_TOLERANCES,
    "boxes": BOX_TOLERANCES,
    "class_indices": CLASS_INDEX_TOLERANCES,
}


def parity_tolerance(precision: str, output_kind: str = "probabilities") -> Tolerance:
    """The parity criteria of one precision for an output of `output_kind` (unknown precisions: as int8)."""
    table = _TABLES.get(output_kind, PARITY_TOLERANCES)
    return table.get(precision, table["int8"])


def parity_table(output_kind: str = "probabilities") -> dict[str, str]:
    """precision → its parity criteria in words (parity.json's `tolerances`)."""
    table = _TABLES.get(output_kind, PARITY_TOLERANCES)
    return {k: v.describe() for k, v in table.items()}


# Same file, another machine (board verify, emulated CPU classes): how far its outputs may be from the desktop's.
FP32_MAX_ABS: Final = 1e-5
FP16_MAX_ABS: Final = 1e-3
DEFAULT_STEP: Final = 1 / 256
# Slack for float rounding when comparing a difference with its limit (a dequantized step is k × scale).
RELATIVE_SLACK: Final = 1e-3
PROBABILITIES: Final = "probabilities"

MACHINE_TOLERANCE_DOC: Final = {
    "fp32": f"max |Δp| ≤ {FP32_MAX_ABS:g}: the same float32 graph; another CPU, kernel library or thread count "
    "changes only rounding",
    "fp16": f"max |Δp| ≤ {FP16_MAX_ABS:g}: float16 weights; a runtime may compute in half precision on CPUs with "
    "FP16 arithmetic (ARMv8.2+), where one float16 step near 1.0 is 9.8e-4",
    "int8": "within one quantization step of the output: the output scale in the model (TFLite int8 I/O, or "
    "the ONNX QDQ output's DequantizeLinear), else 1/256 (one step of an 8-bit probability, e.g. "
    "int8-dynamic, whose activations are quantized at run time)",
}
# Outputs compared raw on another machine, their limits scaled by the outputs' size (`LOGITS_AND_VALUES`).
RAW_KINDS: Final = ("logits", "values", "boxes")
CLASS_INDICES: Final = "class_indices"
# Added to bundle.json's tolerances when a bundled model outputs class indices.
CLASS_INDICES_DOC: Final = (
    "class indices (an argmax inside the model) are compared index by index: fp32 must give every golden row "
    "the desktop's index (the same float graph flips one only on an exact tie); other precisions may differ on "
    "as many rows as the class-indices parity criterion of the precision allows"
)
# Added to bundle.json's tolerances when a bundled model outputs logits or regression values.
LOGITS_AND_VALUES: Final = (
    "logits, regression values and boxes are compared raw (not through a softmax); float rounding is relative, so "
    "the fp32, fp16 and 1/256 limits above are multiplied by max(1, max |output|) over the desktop's outputs "
    "on the golden inputs; an int8 output scale is already in the output's units and is used as it is"
)


def machine_tolerance(
    precision: str,
    output_kind: str = PROBABILITIES,
    *,
    magnitude: float | None = None,
    output_scale: float | None = None,
    scale_source: str = "the model",
) -> dict[str, Any]:
    """How far an artifact's outputs on another machine may be from the desktop's (see MACHINE_TOLERANCE_DOC).

    Args:
        precision: the artifact's precision (fp32, fp16; anything else is quantized).
        output_kind: probabilities, logits, values or boxes (compared raw), or class_indices (compared index
            by index: `kind` "index_agreement" with a `min_agreement`).
        magnitude: max |output| of the desktop's outputs; for logits and values the float limits are
            multiplied by max(1, magnitude) (`LOGITS_AND_VALUES`). Ignored for probabilities.
        output_scale: the quantized output's scale, when the model carries one.
        scale_source: where `output_scale` was read, for the basis text.

    Returns:
        `{"kind": "max_abs" | "quantization_step", "max_abs": float, "step": float | None, "basis": str}`
        (bundle.json's and verify.json's `tolerance`; class indices: "index_agreement", plus `min_agreement`).
    """
    if output_kind == CLASS_INDICES:
        return _index_tolerance(precision)
    kind = output_kind if output_kind in RAW_KINDS else PROBABILITIES
    factor = 1.0 if kind == PROBABILITIES or magnitude is None else max(1.0, float(magnitude))
    scaled = "" if factor == 1.0 else f" × {factor:.4g} (max |{kind}| on the golden inputs)"
    if precision in ("fp32", "fp16"):
        limit = FP32_MAX_ABS if precision == "fp32" else FP16_MAX_ABS
        raw = f"max |Δ| ≤ {limit:g}{scaled}: raw {kind}"
        basis = MACHINE_TOLERANCE_DOC[precision] if kind == PROBABILITIES else raw
        return {"kind": "max_abs", "max_abs": limit * factor, "step": None, "basis": basis}
    if output_scale:
        scale = float(output_scale)
        basis = f"one step of the quantized output (scale {scale:.6g} from {scale_source})"
    elif kind == PROBABILITIES:
        scale, basis = DEFAULT_STEP, "1/256: one step of an 8-bit probability (the output carries no scale)"
    else:
        scale = DEFAULT_STEP * factor
        basis = f"1/256{scaled}: one 8-bit step of the raw {kind} (the output carries no scale)"
    return {"kind": "quantization_step", "max_abs": scale, "step": scale, "basis": basis}


def _index_tolerance(precision: str) -> dict[str, Any]:
    """Class indices on another machine: the share of golden rows that must keep the desktop's index."""
    floor = 1.0 if precision == "fp32" else parity_tolerance(precision, CLASS_INDICES).min_agreement
    floor = 1.0 if floor is None else float(floor)
    basis = f"index agreement ≥ {floor:.4g} with the desktop's class indices"
    return {"kind": "index_agreement", "max_abs": 0.0, "step": None, "min_agreement": floor, "basis": basis}


def allowed_diff(max_abs: float) -> float:
    """The largest |Δ| a `machine_tolerance` of limit `max_abs` lets pass (the limit plus float-rounding slack)."""
    return float(max_abs) * (1 + RELATIVE_SLACK)


# Microcontrollers: TFLM runs ports of TFLite's reference kernels. The like-for-like check is against LiteRT's
# built-in kernels (XNNPACK off); how far two correct kernel sets may round apart *on this model and data* is
# measured, not assumed: LiteRT's XNNPACK against its built-in kernels (measured 6-7 int8 steps on small CNNs,
# 0 on others). TFLM passes when it is no further from the built-in kernels than that (at least one step).
MIN_ROUNDING_STEPS: Final = 1
MCU_RULE: Final = (
    "TFLM's int8 outputs within the int8 steps LiteRT's XNNPACK and built-in kernels differ by on the same images "
    f"(at least {MIN_ROUNDING_STEPS}) of LiteRT's built-in kernels, and the int8 parity criteria against the reference"
)


def _short(t: Tolerance) -> str:
    parts = []
    if t.min_agreement is not None:
        parts.append(f"agreement ≥ {t.min_agreement:g}")
    if t.max_abs_diff is not None:
        parts.append(f"max |Δp| ≤ {t.max_abs_diff:g}")
    if t.max_accuracy_drop is not None:
        parts.append(f"accuracy within {t.max_accuracy_drop * 100:g} pt")
    return " and ".join(parts)


# One-line summaries for the commands' help texts.
PARITY_HELP: Final = (
    f"fp32: {_short(PARITY_TOLERANCES['fp32'])}; fp16: {_short(PARITY_TOLERANCES['fp16'])}; "
    f"int8: {_short(PARITY_TOLERANCES['int8'])} (looser for less accurate models; see the docs' tolerance page)"
)
MACHINE_HELP: Final = (
    f"fp32 {FP32_MAX_ABS:g}; fp16 {FP16_MAX_ABS:g}; int8 one quantization step of the output (its scale, else 1/256)"
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # |Δ| inside a Markdown table cell


def tolerance_markdown() -> str:
    """The docs page's tables: every tolerance above, in Markdown."""
    lines = [
        "## Parity against the reference",
        "",
        "`edgekit parity` (and the pipeline) judges every artifact on the whole test set against the reference "
        "model. An artifact passes when every criterion of its precision holds. int8-mixed artifacts are judged "
        "as int8.",
        "",
        "| precision | classification (probabilities, logits) | grows with the reference's error rate |",
        "|---|---|---|",
    ]
    for name, t in PARITY_TOLERANCES.items():
        lines.append(f"| {name} | {_cell(t.describe())} | {_cell(t.describe_relative()) or '—'} |")
    lines += [
        "",
        'Agreement is top-1 agreement with the reference; "2σ" means a shortfall within two standard deviations '
        "of the binomial noise of the test set is not a failure.",
        "",
        "| precision | regression (values) |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_cell(t.describe())} |" for name, t in VALUE_TOLERANCES.items()]
    lines += [
        "",
        "A model with several outputs is judged output by output, each by its kind's criteria; an artifact passes "
        "when every output does. Boxes (x_min, y_min, x_max, y_max) are regressed coordinates, judged like values "
        "against the box scale (max |reference coordinate|), and never asked to be closer than two steps of a "
        "quantized output; mean IoU with the reference's and the targets' boxes is reported. Class indices "
        "(an argmax inside the model) are judged by agreement and accuracy like probabilities, with no |Δp|.",
        "",
        "| precision | boxes | class indices |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {_cell(t.describe())} | {_cell(CLASS_INDEX_TOLERANCES[name].describe())} |"
        for name, t in BOX_TOLERANCES.items()
    ]
    lines += [
        "",
        "## Same answers on another machine",
        "",
        "`edgekit verify` (on a board, over SSH or emulated) and `edgekit parity --cpu` compare the same file's "
        "outputs with the desktop's, output by output.",
        "",
        "| precision | limit on max \\|Δ\\| |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_cell(text)} |" for name, text in MACHINE_TOLERANCE_DOC.items()]
    lines += [
        "",
        f"Logits, regression values and boxes: {LOGITS_AND_VALUES}. A difference is compared with its limit plus a "
        f"relative slack of {RELATIVE_SLACK:g} for float rounding. A model with several outputs is checked output "
        f"by output, each by its kind; an artifact passes when every output does. Class indices: "
        f"{CLASS_INDICES_DOC}.",
        "",
        "## Microcontrollers",
        "",
        f"`edgekit mcu` passes an artifact when: {MCU_RULE}.",
        "",
    ]
    return "\n".join(lines)
