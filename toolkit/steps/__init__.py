"""The workflow steps over a run directory: train, export, parity, bench and the gate.

Each step reads what earlier steps wrote, writes its own files atomically, reports progress through a plain
callback (`toolkit.progress`) and returns what it wrote. May import `exporters`, `runtimes`, `benchmarks`,
`toolkit.data`, `toolkit.model` and `toolkit.run.layout`; never the CLI.
"""
