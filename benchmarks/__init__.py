"""Benchmark harness: the fresh-process worker and its parent (`harness`, `worker`), latency timing and
statistics (`latency`, `stats`), the bare-runtime comparison (`harness_check`, `minimal`), environment
capture, FLOPs, peak matmul rate and the gate. Shapes come from the model's `runtimes.spec.ModelSpec`.

May import numpy, `runtimes` and the runtimes themselves; never `toolkit`, `exporters`, TensorFlow or Rich.
"""
