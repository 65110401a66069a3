"""Post-export check: the written file loads in its runtime and gives finite outputs of its spec's shape."""

from __future__ import annotations

from collections.abc import Mapping
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


def check_named_artifact(
    path: Path, spec: ModelSpec, feeds: Mapping[str, np.ndarray] | None = None
) -> tuple[ModelSpec, tuple[TensorSpec, TensorSpec]]:
    """`check_artifact` for a model with several inputs or outputs: load `path` against `spec` (tensors paired
    by name), run a few samples of every input, and return the file's spec (the model's names, the file's
    dtypes and quantization) and its first input and output as the runtime names them.

    Raises:
        ExportError: the file does not load, does not match `spec`, or gives non-finite outputs.
    """
    try:
        with make_runner(path, spec=spec) as runner:
            file_spec = runner.model_spec()
            if feeds:
                inputs = {n: np.ascontiguousarray(a[:4], dtype=np.float32) for n, a in feeds.items()}
            else:
                inputs = file_spec.sample_feeds(1)
            outputs = runner.infer_named(inputs)
            first = (runner.input_spec(), runner.output_spec())
    except EdgekitError as exc:
        raise ExportError(f"the exported file does not load: {exc}") from exc
    batch = len(next(iter(inputs.values())))
    for tensor in file_spec.outputs:
        out = outputs[tensor.name]
        if out.shape[0] != batch or not np.all(np.isfinite(out)):
            raise ExportError(
                f"the exported model gives {'non-finite' if out.size else 'no'} {tensor.name} of shape {out.shape}; "
                f"expected finite {tensor.kind} of shape {tensor.shape_text()}."
            )
    return file_spec, first
