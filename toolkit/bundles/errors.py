"""The bundles package's user error: one line for the user, exit 1 (see `runtimes.errors`)."""

from __future__ import annotations

from toolkit.errors import ToolkitError


class BundleError(ToolkitError):
    """A bundle is missing, malformed, unsafe to extract or does not match its checksums."""
