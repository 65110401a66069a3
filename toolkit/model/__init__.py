"""Models edgekit trains: the reference MNIST CNN (seed 7, the tutorial's architecture) and its training.

May import `toolkit.data` and `runtimes` (`runtimes.files` for atomic writes; TensorFlow only inside functions).
"""
