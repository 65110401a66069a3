"""The remote package's user errors: each is one line for the user, exit 1 (see `runtimes.errors`)."""

from __future__ import annotations

from toolkit.errors import ToolkitError


class WheelError(ToolkitError):
    """edgekit's wheel cannot be built (no source tree, or pip failed)."""


class RemoteError(ToolkitError):
    """A host could not be reached or set up, or the remote command failed (one line)."""
