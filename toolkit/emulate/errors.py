"""The emulate package's user error: one line for the user, exit 1 (see `runtimes.errors`)."""

from __future__ import annotations

from toolkit.errors import ToolkitError


class EmulateError(ToolkitError):
    """Emulation cannot run here (not root, missing tools) or an ARM root could not be built."""
