"""Exporters: a Keras model -> TFLite and ONNX artifacts (float and quantized), one module per format.

`base.py` (formats, precisions, `ExportResult`), `tflite_export.py`, `int4_export.py` (int4 weights via the
optional AI Edge Quantizer), `onnx_export.py`, `check.py` (load and run each written file against the
model's `runtimes.spec.ModelSpec`), `quiet.py` (converter chatter), `mixed.py` (full int8 with chosen Keras
layers kept in float: TFLite's quantization debugger denylist, ORT's nodes_to_exclude) and `sensitivity.py`
(per-layer int8 ranking).
They write and return: never print, never exit.
Files are written through `runtimes.files` (atomic writes, sha256).
May import `runtimes` and TensorFlow/tf2onnx/onnx/ai_edge_quantizer (inside functions); never `toolkit`.
"""
