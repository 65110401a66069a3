"""The run directory: its layout and file names, the typed documents written into it (train.json,
manifest.json, parity.json, bench.json, verify.json, gate.json) and the writer lock. The pipeline that runs
the steps in order over a run directory is `toolkit.workflow`, above the steps.

May import: `runtimes` (atomic files, errors), `benchmarks`, pydantic (the documents) and `toolkit.errors`.
Never imports `toolkit.cli`.
"""
