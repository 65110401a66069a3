"""The inputs package's user error: one line for the user, exit 1 (see `runtimes.errors`)."""

from __future__ import annotations

from toolkit.errors import ToolkitError


class ImageError(ToolkitError):
    """An input image is missing, unreadable, not an image, too large or blank."""
