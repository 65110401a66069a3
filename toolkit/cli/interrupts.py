"""Ctrl-C handling shared by every command (Typer's and `predict`'s fast path); no Rich."""

from __future__ import annotations

import signal
import sys
from typing import Any

_interrupted = False


def was_interrupted() -> bool:
    """True once Ctrl-C (SIGINT) has reached this process."""
    return _interrupted


def _on_sigint(signum: int, frame: Any) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


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
    # TensorFlow can catch the KeyboardInterrupt mid-trace and re-raise it as an unrelated error
    # (a TypeError from Flatten.call() was seen): remember that the user pressed Ctrl-C so the
    # user-error boundary reports any such error as the interruption it is.
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)
