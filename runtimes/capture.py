"""Capture what native libraries write straight to file descriptors 1 and 2.

TensorFlow, LiteRT and the converters print INFO lines from C++ ("oneDNN custom operations are on",
"Created TensorFlow Lite XNNPACK delegate") that Python's logging cannot silence. They are
captured to a temporary file, and returned so that a failure can still show them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


class Captured:
    """Holds the text captured by `native_output`, available after the block ends."""

    def __init__(self) -> None:
        self.text = ""

    def last_line(self) -> str:
        lines = [ln.strip() for ln in self.text.splitlines() if ln.strip()]
        return lines[-1] if lines else ""


@contextlib.contextmanager
def native_output(fds: tuple[int, ...] = (2,)) -> Iterator[Captured]:
    """Redirect the given file descriptors to a temporary file for the duration of the block.

    Set EDGEKIT_NATIVE_LOGS=1 to let everything through (debugging).
    """
    captured = Captured()
    if os.environ.get("EDGEKIT_NATIVE_LOGS") == "1":
        yield captured
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved: list[tuple[int, int]] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            for fd in fds:
                try:
                    saved.append((fd, os.dup(fd)))
                except OSError:
                    continue
                os.dup2(sink.fileno(), fd)
            yield captured
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            captured.text = sink.read().decode(errors="replace")
