"""Runtime adapters: one runner per runtime behind one interface, and the ModelSpec they read.

The lowest layer: imports numpy and the runtimes only (TensorFlow lazily, for Keras models), never
`toolkit`, `exporters`, `benchmarks` or Rich, so it runs on a board alone. Everything may import it.
"""

from runtimes.base import Runner
from runtimes.errors import EdgekitError, InputSpecError, ModelLoadError, RuntimeUnavailableError
from runtimes.registry import make_runner, runner_class, runtime_versions
from runtimes.spec import ModelSpec, SpecError, TensorSpec, spec_from_keras, spec_from_tensors

__all__ = [
    "EdgekitError",
    "InputSpecError",
    "ModelLoadError",
    "ModelSpec",
    "Runner",
    "RuntimeUnavailableError",
    "SpecError",
    "TensorSpec",
    "make_runner",
    "runner_class",
    "runtime_versions",
    "spec_from_keras",
    "spec_from_tensors",
]
