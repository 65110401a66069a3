"""Collect what converters print, warn and log, so exporters stay silent and the report can cite it."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

from runtimes.capture import native_output

# Loggers the converters write to: absl (TFLite converter), tf2onnx, and the root logger, which
# onnxruntime.quantization uses directly.
_LOGGERS = ("absl", "tf2onnx", "", "tensorflow")


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.levelname.lower()}: {record.getMessage().strip().splitlines()[0][:300]}")


@contextlib.contextmanager
def captured(notes: list[str]) -> Iterator[None]:
    """Swallow stdout prints, Python warnings and WARNING+ log records; append them to `notes`."""
    handler = _ListHandler(notes)
    saved: list[tuple[logging.Logger, int, list[logging.Handler], bool]] = []
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, list(logger.handlers), logger.propagate))
        logger.handlers = [handler]
        logger.propagate = False
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
    out = io.StringIO()
    try:
        # Converters also print from C++ ("fully_quantize: 0, ..."), straight to fds 1 and 2.
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), native_output((1, 2)):
            warnings.simplefilter("always")
            yield
    finally:
        for logger, level, handlers, propagate in saved:
            logger.handlers = handlers
            logger.setLevel(level)
            logger.propagate = propagate
        for w in caught:
            notes.append(f"warning: {w.category.__name__}: {str(w.message).strip().splitlines()[0][:300]}")
