"""Exporter errors (user errors: one line, exit 1)."""

from __future__ import annotations

from runtimes.errors import EdgekitError


class ExportError(EdgekitError):
    """A conversion failed or produced a model that does not load or run."""


class UnsupportedPrecisionError(ExportError):
    """A format/precision combination that cannot be built, or one missing its calibration data."""
