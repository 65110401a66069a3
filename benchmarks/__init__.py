"""Latency harness and reports. Imports neither toolkit, exporters nor TensorFlow."""
