"""Bare scripts to measure edgekit against, the least a user could write (kept verbatim; not imported by edgekit).

`bare_predict.py`: a whole process that classifies one image with `ai_edge_litert` (`startup_check` compares
`edgekit predict` with it). `minimal_loop.py`: the tightest loop over `invoke()` / `session.run()` at batch 1
(`harness_check` and `minimal.py` time the same loop in-process).
"""
