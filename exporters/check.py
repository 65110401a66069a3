"""Post-export check: the written file loads in its runtime and gives finite outputs of its spec's shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exporters.errors import ExportError
from runtimes.errors import EdgekitError
from runtimes.registry import make_runner
from runtimes.spec import ModelSpec, TensorSpec


def check_artifact(
    path: Path, sample: np.ndarray | None = None, *, spec: ModelSpec | None = None
) -> tuple[TensorSpec, TensorSpec]:
    """Load `path` with its runner and run a few samples; return its input and output specs.

    Catches converters that write a model which loads but computes garbage (e.g. TFLite's
    uninitialised-variable models that output NaN).

    Args:
        path: the exported file.
        sample: float32 inputs to run (the first 4 are used); None: one random sample over the
            model's value range, shaped from the file's own spec.
        spec: the spec the file should have (e.g. the Keras model's); None checks the file alone.

    Raises:
        ExportError: the file does not load, does not match `spec`, or gives non-finite outputs.
    """
    try:
        with make_runner(path, spec=spec) as runner:
            model_spec = runner.model_spec()
            if sample is not None and len(sample):
                inputs = np.ascontiguousarray(sample[:4], dtype=np.float32)
            else:
                inputs = model_spec.sample_batch(1)
            outputs = runner.infer(inputs)
            in_spec, out_spec = runner.input_spec(), runner.output_spec()
    except EdgekitError as exc:
        raise ExportError(f"the exported file does not load: {exc}") from exc
    if outputs.shape[0] != len(inputs) or not np.all(np.isfinite(outputs)):
        raise ExportError(
            f"the exported model gives {'non-finite' if outputs.size else 'no'} outputs of shape {outputs.shape}; "
            f"expected finite {model_spec.output_kind} of shape {model_spec.output_text()}."
        )
    return in_spec, out_spec
