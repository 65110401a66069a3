"""edgekit's Python API, one function per step; `toolkit/__init__.py` re-exports it.

`steps.py`: new_run, train, export, parity, bench, gate, report, diagnose, pipeline (the run directory);
`device.py`: predict, bundle, verify, verify_remote, bench_remote (devices and boards).
Importing it is cheap: every heavy library loads inside the function that needs it.
May import everything below the CLI; never `toolkit.cli`, Rich or Typer.
"""

from toolkit.api.device import bench_remote, bundle, predict, remote_bench_path, verify, verify_remote
from toolkit.api.steps import (
    PipelineResult,
    bench,
    diagnose,
    export,
    gate,
    load_data,
    new_run,
    parity,
    pipeline,
    pipeline_options,
    report,
    train,
)

__all__ = [
    "PipelineResult",
    "bench",
    "bench_remote",
    "bundle",
    "diagnose",
    "export",
    "gate",
    "load_data",
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
