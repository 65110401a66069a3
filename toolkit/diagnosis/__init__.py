"""`edgekit diagnose`: where an export departs from the Keras reference, and why a quantized one is slower.

`step.py` runs it over a run directory (`diagnose_step`) or over arrays already in the model's input form
(`diagnose_arrays`); `layers.py` maps Keras layers (Sequential or functional, with branches) to exported
tensors; `metrics.py` measures the error per layer; `capture.py` runs TFLite/ONNX with every intermediate tensor
kept; `gallery.py` draws the disagreeing images; `speed.py` and `evidence.py` explain slowdowns; `render.py`
writes the Markdown and tables.
May import `runtimes`, `exporters.files`, `toolkit.data` and `toolkit.run.layout`; never the CLI.
"""
