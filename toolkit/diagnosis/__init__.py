"""`edgekit diagnose`: where an export departs from the Keras reference, why, and why a quantized one is slower.

`step.py` runs it over a run directory (`diagnose_step`) or over arrays already in the model's input form
(`diagnose_arrays`), and `artifact.py` one export (`diagnose_artifact`);
`layers.py` maps Keras layers (Sequential or functional, with branches) to exported
tensors; `metrics.py` measures the error per layer, `channels.py` per channel (range use, the channels that
set the int8 scale) and the Keras layers' parameter outliers; `cause.py` turns them into the cause and the
advice; `sensitivity.py` brings in the optional per-layer sensitivity ranking; `capture.py` runs TFLite/ONNX
with every intermediate tensor kept; `gallery.py` draws the disagreeing images; `speed.py` and `evidence.py`
explain slowdowns; `render.py` writes the Markdown and tables.
May import `runtimes` (`runtimes.files` for atomic writes), `exporters.sensitivity` (optional, inside a
function), `toolkit.data` and `toolkit.run.layout`; never the CLI.
"""
