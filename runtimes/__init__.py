"""Runtime adapters: one runner per runtime behind one interface, and the ModelSpec they read.

The lowest layer: imports numpy and the runtimes only (TensorFlow lazily, for Keras models), never
`toolkit`, `exporters`, `benchmarks` or Rich, so it runs on a board alone. Everything may import it.
It also holds what both sides need: `errors.py` (the one-line user errors) and `files.py` (atomic writes,
sha256, `ensure_dir`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtimes.base import Runner
    from runtimes.errors import EdgekitError, InputSpecError, ModelLoadError, RuntimeUnavailableError
    from runtimes.registry import make_runner, runner_class, runtime_versions
    from runtimes.spec import ModelSpec, SpecError, TensorSpec, spec_from_keras, spec_from_tensors

# Names load on first use (PEP 562), so `import runtimes.errors` (every edgekit command does) costs no numpy.
_EXPORTS = {
    "Runner": "runtimes.base",
    "EdgekitError": "runtimes.errors",
    "InputSpecError": "runtimes.errors",
    "ModelLoadError": "runtimes.errors",
    "RuntimeUnavailableError": "runtimes.errors",
    "make_runner": "runtimes.registry",
    "runner_class": "runtimes.registry",
    "runtime_versions": "runtimes.registry",
    "ModelSpec": "runtimes.spec",
    "SpecError": "runtimes.spec",
    "TensorSpec": "runtimes.spec",
    "spec_from_keras": "runtimes.spec",
    "spec_from_tensors": "runtimes.spec",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'runtimes' has no attribute {name!r}")


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
