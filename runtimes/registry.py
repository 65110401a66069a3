"""Pick a runner by model file suffix; runtime modules are imported only when a runner is made."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from runtimes.base import Runner
from runtimes.errors import ModelLoadError
from runtimes.spec import ModelSpec

# suffix -> "module:Class"; imported on demand so a board without TensorFlow can still list them.
RUNNERS: dict[str, str] = {
    ".tflite": "runtimes.tflite_runner:TFLiteRunner",
    ".onnx": "runtimes.ort_runner:OnnxRuntimeRunner",
    ".keras": "runtimes.keras_runner:KerasRunner",
    ".xml": "runtimes.openvino_runner:OpenVINORunner",
}


def runner_class(model_path: Path | str) -> type[Runner]:
    suffix = Path(model_path).suffix.lower()
    if suffix not in RUNNERS:
        raise ModelLoadError(
            f"{model_path}: unknown model type {suffix or '(no suffix)'!r}; expected one of {', '.join(RUNNERS)}."
        )
    module_name, cls_name = RUNNERS[suffix].split(":")
    cls: type[Runner] = getattr(importlib.import_module(module_name), cls_name)
    return cls


def make_runner(
    model_path: Path | str, *, num_threads: int | None = None, spec: ModelSpec | None = None, **options: Any
) -> Runner:
    """A runner for `model_path` chosen by its suffix (not yet active).

    Args:
        model_path: the model file.
        num_threads: runtime threads (None: the runtime's default).
        spec: the spec the file is expected to have (e.g. from manifest.json), or None.
        **options: runner-specific options (`use_xnnpack`, `graph_optimization`, ...).
    """
    cls = runner_class(model_path)
    return cls(model_path, num_threads=num_threads, spec=spec, **options)


def runtime_versions() -> dict[str, str | None]:
    """Installed runtime versions by runner name (None: not installed)."""
    out: dict[str, str | None] = {}
    for spec in RUNNERS.values():
        module_name, cls_name = spec.split(":")
        cls = getattr(importlib.import_module(module_name), cls_name)
        out[cls.name] = cls.runtime_version()
    return out
