"""Post-export check: the written file loads in its runtime and gives finite probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exporters.errors import ExportError
from runtimes.base import TensorSpec
from runtimes.errors import EdgekitError
from runtimes.registry import make_runner


def check_artifact(path: Path, sample: np.ndarray | None = None) -> tuple[TensorSpec, TensorSpec]:
    """Load `path` with its runner and run a few images; return its input and output specs.

    Catches converters that write a model which loads but computes garbage (e.g. TFLite's
    uninitialised-variable models that output NaN).
    """
    images = sample[:4] if sample is not None and len(sample) else np.zeros((1, 28, 28, 1), np.float32)
    try:
        with make_runner(path) as runner:
            probs = runner.infer(np.ascontiguousarray(images, dtype=np.float32))
            in_spec, out_spec = runner.input_spec(), runner.output_spec()
    except EdgekitError as exc:
        raise ExportError(f"the exported file does not load: {exc}") from exc
    if probs.shape != (len(images), 10) or not np.all(np.isfinite(probs)):
        raise ExportError(
            f"the exported model gives {'non-finite' if probs.size else 'no'} outputs of shape {probs.shape}; "
            "expected finite probabilities of shape (N, 10)."
        )
    return in_spec, out_spec
