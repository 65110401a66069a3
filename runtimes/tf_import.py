"""Import TensorFlow/Keras quietly, with an install hint when they are missing.

Every TensorFlow import in edgekit goes through here, inside the function that needs it, so that
`edgekit --help`, `import runtimes` and the board-side commands never pay for it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from runtimes.capture import native_output

# Keras imports scikit-learn (and with it much of scipy) whenever it is installed, for its scikit-learn wrappers
# alone: about 1 s of TensorFlow's import. The CLI never uses those wrappers and sets this variable to "1", which
# its worker processes (bench's Keras workers) inherit; the Python API leaves it unset, since a notebook may use
# them in the same process.
WITHOUT_SKLEARN_WRAPPERS = "EDGEKIT_KERAS_WITHOUT_SKLEARN"

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
        with (
            native_output(),
            _sklearn_hidden() if os.environ.get(WITHOUT_SKLEARN_WRAPPERS) == "1" else contextlib.nullcontext(),
        ):
            import tensorflow as tf
    except ImportError as exc:
        from runtimes.errors import RuntimeUnavailableError

        raise RuntimeUnavailableError(f"TensorFlow is not installed; {TRAIN_EXTRA_HINT}.") from exc
    return tf


@contextlib.contextmanager
def _sklearn_hidden() -> Iterator[None]:
    """scikit-learn reads as not installed inside the block (Keras then skips it); a later `import sklearn` works."""
    if "sklearn" in sys.modules:
        yield
        return
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # None: import raises ImportError
    try:
        yield
    finally:
        if sys.modules.get("sklearn", "") is None:
            del sys.modules["sklearn"]


def import_keras() -> Any:
    import_tensorflow()
    import keras

    return keras
