"""The reference CNN's ModelSpec: MNIST pixels /255 `[N, 28, 28, 1]` in, 10 digit probabilities out.

Light to import (no numpy, no TensorFlow): `predict` and parity read it to check a model file before use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec

NUM_CLASSES = 10


def reference_spec() -> ModelSpec:
    """What the reference CNN takes and gives: MNIST pixels /255 `[N, 28, 28, 1]` -> 10 digit probabilities."""
    from runtimes.spec import ModelSpec, TensorSpec

    return ModelSpec(
        input=TensorSpec("image", (None, 28, 28, 1), "float32"),
        output=TensorSpec("output", (None, NUM_CLASSES), "float32"),
        layout="NHWC",
        value_range=(0.0, 1.0),
        output_kind="probabilities",
        class_names=tuple(str(d) for d in range(NUM_CLASSES)),
    )
