"""The `edgekit` command line: a thin Typer adapter over the `toolkit` API.

`app.py` holds the Typer app and registers one module per command group: `run.py` (train, export, parity,
report, pipeline), `bench.py` (bench, gate), `device.py` (predict, bundle, verify), `diagnose.py`.
`options.py` has the shared options, `show.py` the tables commands print, `console.py` the consoles, the
user-error boundary (one line, exit 1) and progress bars.

May import everything in `toolkit`, `exporters`, `runtimes` and `benchmarks`; nothing imports it. Top-level
imports stay light (no TensorFlow, no matplotlib, no pydantic) so `--help` and `predict` start fast.
"""

from toolkit.cli.app import app, main

__all__ = ["app", "main"]
