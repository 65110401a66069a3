"""Models edgekit trains: the reference MNIST CNN (seed 7, the tutorial's architecture) and its training.

May import `toolkit.data`, `runtimes.files` and `runtimes` (TensorFlow only inside functions).
"""
