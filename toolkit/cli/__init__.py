"""The `edgekit` command line: a thin Typer adapter over the `toolkit` API.

`typer_app.py` holds the Typer app and registers every command, one way, from one list: `run.py` (train, export,
parity, report, pipeline), `bench.py` (bench, gate), `device.py` (predict, bundle, verify), `diagnose.py`,
`mcu.py`. `options.py` declares every shared option once and resolves the run directory (docs/cli-options.md
lists the names), `specs.py` predict's options as plain data, `show.py` and `present.py` what commands print,
`console.py` the consoles and the user-error boundary (one line, exit 1), `bars.py` the progress bars,
`fast.py` the Typer-free start of `predict` (boards run it most), `board.py` the command line of a TFLite-only
board install.

May import everything in `toolkit`, `exporters`, `runtimes` and `benchmarks`; nothing imports it. Top-level
imports stay light (no TensorFlow, no matplotlib) so `--help` and `predict` start fast.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any


def main() -> None:
    """Console-script entry point: `predict` on its fast path when it can, everything else through Typer."""
    argv = sys.argv[1:]
    if importlib.util.find_spec("typer") is None:  # a TFLite-only board install (32-bit ARM)
        from toolkit.cli.board import main as board_main

        sys.exit(board_main(argv))
    if argv[:1] == ["predict"]:
        from toolkit.cli.fast import try_predict

        code = try_predict(argv[1:])
        if code is not None:
            sys.exit(code)
    from runtimes import tf_import
    from toolkit.cli.typer_app import main as typer_main

    # ~1 s of TensorFlow's import, for wrappers the CLI never uses; its bench workers inherit the variable.
    os.environ.setdefault(tf_import.WITHOUT_SKLEARN_WRAPPERS, "1")
    typer_main()


def __getattr__(name: str) -> Any:
    if name == "app":  # the Typer app, built on first use (tests and `python -m toolkit.cli --help` use it)
        from toolkit.cli.typer_app import app

        return app
    raise AttributeError(f"module 'toolkit.cli' has no attribute {name!r}")
