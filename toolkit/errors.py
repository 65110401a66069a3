"""Toolkit-level user errors. All derive from `runtimes.errors.EdgekitError` (one line, exit 1)."""

from __future__ import annotations

from runtimes.errors import EdgekitError


class ToolkitError(EdgekitError):
    """A user error raised by the toolkit (CLI, pipeline, data, parity)."""


class DataError(ToolkitError):
    """The dataset is missing, malformed, or does not match its checksums."""


class RunDirError(ToolkitError):
    """A run directory is missing, incomplete, or its files do not match the manifest."""
