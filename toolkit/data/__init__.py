"""Datasets: the shipped MNIST (verified by checksum) and the other MNIST sources `--data` accepts.

The only place, with the reference model and predict's MNIST-photo preprocessing, that knows MNIST's shapes.
May import `runtimes.errors` and `toolkit.errors`; nothing heavier (no TensorFlow).
"""
