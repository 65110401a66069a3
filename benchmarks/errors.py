"""Errors raised by the benchmark harness.

`BenchmarkError` derives from `EdgekitError` so the CLI prints it as one line and exits 1, like
every other user-facing failure.
"""

from __future__ import annotations

from runtimes.errors import EdgekitError


class BenchmarkError(EdgekitError):
    """A benchmark could not be run: bad inputs, a failed or timed-out worker process, unreadable output."""
