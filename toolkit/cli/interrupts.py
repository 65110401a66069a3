"""Ctrl-C handling shared by every command (Typer's and `predict`'s fast path); no Rich."""

from __future__ import annotations

import sys
from typing import Any


def install_interrupt_handling() -> None:
    """Make Ctrl-C always stop the command, even when it lands inside a finaliser.

    Python reports a KeyboardInterrupt raised inside a weakref callback or `__del__` as "Exception
    ignored" (with a traceback) and carries on, so the command would not stop. Re-deliver it to the main
    thread instead, where the user-error boundary turns it into a one-line "interrupted" and exit 130.
    """
    import _thread

    default = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            _thread.interrupt_main()
            return
        default(unraisable)

    sys.unraisablehook = hook
