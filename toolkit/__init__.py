"""edgekit: from a Keras model to checked, measured TFLite and ONNX artifacts on CPUs and ARM boards.

The Python API (typed arguments, typed results, progress through a plain callback); the `edgekit` command
line (`toolkit.cli`) is a thin adapter over it:

    import toolkit

    run = toolkit.new_run("runs")
    toolkit.train(run, epochs=1, train_limit=4000)
    toolkit.export(run, formats=["tflite"], precisions=["fp32", "int8"])
    print(toolkit.parity(run, limit=1000).passed)

Packages: `cli` (the command line), `api` (this API), `workflow` (the pipeline: every step in order,
resumable), `run` (run directory, typed documents, lock), `steps` (train, export, parity, bench, gate), `data`,
`model`, `diagnosis`, `inputs` (images for predict), `bundles` (bundle, verify), `remote` (boards over SSH),
`emulate` (QEMU-emulated boards), `cpus` (parity under other CPU classes), `mcu` (TensorFlow Lite Micro: arena,
boards, firmware files), `reports` (report.md and report.html).
Importing `toolkit` is cheap: heavy libraries load inside functions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from toolkit.version import __version__

if TYPE_CHECKING:
    from toolkit.api.device import bench_remote, bundle, predict, remote_bench_path, verify, verify_remote
    from toolkit.api.mcu import mcu
    from toolkit.api.pipeline import PipelineResult, pipeline, pipeline_options
    from toolkit.api.steps import (
        bench,
        diagnose,
        export,
        gate,
        load_data,
        new_run,
        parity,
        report,
        train,
    )
    from toolkit.progress import ProgressEvent
    from toolkit.steps.bench_settings import BenchSettings

# Each name loads its module on first use (PEP 562): `edgekit predict` on a board pays only for what it runs.
_HOMES = {
    **dict.fromkeys(
        ("bench_remote", "bundle", "predict", "remote_bench_path", "verify", "verify_remote"), "toolkit.api.device"
    ),
    "mcu": "toolkit.api.mcu",
    **dict.fromkeys(
        ("bench", "diagnose", "export", "gate", "load_data", "new_run", "parity", "report", "train"),
        "toolkit.api.steps",
    ),
    **dict.fromkeys(("PipelineResult", "pipeline", "pipeline_options"), "toolkit.api.pipeline"),
    "ProgressEvent": "toolkit.progress",
    "BenchSettings": "toolkit.steps.bench_settings",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")


__all__ = [
    "BenchSettings",
    "PipelineResult",
    "ProgressEvent",
    "__version__",
    "bench",
    "bench_remote",
    "bundle",
    "diagnose",
    "export",
    "gate",
    "load_data",
    "mcu",
    "new_run",
    "parity",
    "pipeline",
    "pipeline_options",
    "predict",
    "remote_bench_path",
    "report",
    "train",
    "verify",
    "verify_remote",
]
