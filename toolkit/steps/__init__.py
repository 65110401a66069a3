"""The workflow steps over a run directory: train, export, parity, bench and the gate.

Each step reads what earlier steps wrote (typed, through `toolkit.run.layout.Run`), writes its own files
atomically, reports progress through a plain callback (`toolkit.progress`) and returns the document it wrote
(`toolkit.run.documents`: TrainDocument, ManifestDocument, ParityDocument, BenchDocument, GateDocument,
MixedDocument). May import `exporters`, `runtimes`, `benchmarks`,
`toolkit.data`, `toolkit.model` and `toolkit.run.layout`; never the CLI.
"""
