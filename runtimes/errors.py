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


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """An exception (or a tool's output) as one line for an error message: white space folded,
    at most `limit` characters, the exception's class name when it says nothing."""
    text = " ".join(str(exc).split())
    if not text and isinstance(exc, BaseException):
        text = type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def last_line(text: str, prefer: str | None = None, limit: int = 300) -> str:
    """The last non-blank line of a tool's output (the one starting with `prefer` if any does)."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    if prefer:
        lines = [line for line in lines if line.startswith(prefer)] or lines
    return lines[-1][:limit] if lines else "no output"
