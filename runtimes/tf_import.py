"""Import TensorFlow/Keras quietly, with an install hint when they are missing.

Every TensorFlow import in edgekit goes through here, inside the function that needs it, so that
`edgekit --help`, `import runtimes` and the board-side commands never pay for it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from runtimes.capture import native_output

TRAIN_EXTRA_HINT = "install the training extra: `pip install 'edgekit[train]'` (adds tensorflow-cpu, tf2onnx, onnx)"


def import_tensorflow() -> Any:
    # TF's C++ INFO/WARNING lines (oneDNN notices, "Ignored output_format", ...) are noise for users;
    # a user who sets TF_CPP_MIN_LOG_LEVEL keeps their own choice.
    # The variable only takes effect for later native logs; the import's own INFO lines are
    # captured below (they are written before TF's logging is initialised).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    try:
        with native_output():
            import tensorflow as tf
    except ImportError as exc:
        from runtimes.errors import RuntimeUnavailableError

        raise RuntimeUnavailableError(f"TensorFlow is not installed; {TRAIN_EXTRA_HINT}.") from exc
    return tf


def import_keras() -> Any:
    import_tensorflow()
    import keras

    return keras
