"""Runtime adapters: one runner per runtime behind one interface. Importable without TensorFlow."""

from runtimes.base import Runner, TensorSpec
from runtimes.errors import EdgekitError, InputSpecError, ModelLoadError, RuntimeUnavailableError
from runtimes.registry import make_runner, runner_class, runtime_versions

__all__ = [
    "EdgekitError",
    "InputSpecError",
    "ModelLoadError",
    "Runner",
    "RuntimeUnavailableError",
    "TensorSpec",
    "make_runner",
    "runner_class",
    "runtime_versions",
]
