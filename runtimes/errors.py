"""User-facing errors shared by every edgekit package.

`EdgekitError` lives here, in the lowest layer, because `runtimes/` must run on a board alone and
every other package may import it. The CLI prints an `EdgekitError` as one line and exits 1; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """A problem with the user's input or environment, not a bug in edgekit.

    The message says what was wrong and how to fix it, on one line.
    """


class RuntimeUnavailableError(EdgekitError):
    """No usable installation of the runtime a model needs."""


class ModelLoadError(EdgekitError):
    """A model file is missing, unreadable, corrupt or of the wrong kind."""


class InputSpecError(EdgekitError):
    """An input batch does not match what the model expects."""
