"""The device package's user errors: each is one line for the user, exit 1 (see `runtimes.errors`)."""

from __future__ import annotations

from toolkit.errors import ToolkitError


class BundleError(ToolkitError):
    """A bundle is missing, malformed, unsafe to extract or does not match its checksums."""


class ImageError(ToolkitError):
    """An input image is missing, unreadable, not an image, too large or blank."""


class WheelError(ToolkitError):
    """edgekit's wheel cannot be built (no source tree, or pip failed)."""


class RemoteError(ToolkitError):
    """A host could not be reached or set up, or the remote command failed (one line)."""


class EmulateError(ToolkitError):
    """Emulation cannot run here (not root, missing tools) or the arm64 root could not be built."""
