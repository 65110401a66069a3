"""The run directory: its layout and file names, the typed documents written into it (train.json,
manifest.json, parity.json, bench.json, verify.json, gate.json), the writer lock, and the pipeline that
runs the steps in order and resumes an interrupted run.

May import: `exporters` (atomic files), `runtimes`, `benchmarks`, and the rest of `toolkit` below the CLI.
Never imports `toolkit.cli`.
"""
