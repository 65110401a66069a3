"""Parity's own agreement rule, for tests whose models are trained on the CPU that runs them.

A model trained here differs slightly from one trained on another CPU class (float rounding follows the
instruction set), and so do its near-ties; a fixed agreement figure that one machine meets may fail on
another. Parity's int8 floor is relative to the model's own error rate and to the number of images.
"""

from __future__ import annotations

from toolkit.steps.parity import within_noise
from toolkit.tolerances import PARITY_TOLERANCES as TOLERANCES


def meets_floor(agreement: float | None, n: int, reference_accuracy: float | None, precision: str = "int8") -> bool:
    """True when `agreement` on `n` images meets parity's floor for `precision` and a model of that accuracy."""
    assert agreement is not None and reference_accuracy is not None
    floor = TOLERANCES[precision].for_model(reference_accuracy).min_agreement
    assert floor is not None
    return agreement >= floor or within_noise(round((1 - agreement) * n), n, floor)
