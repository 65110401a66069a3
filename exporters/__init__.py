"""Exporters: Keras model -> TFLite and ONNX artifacts (float and quantized). They write and return."""
