"""Shared CLI plumbing: consoles, the user-error boundary, progress bars and tables."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from runtimes.errors import EdgekitError
from toolkit.progress import ProgressEvent

# Piped output (CI logs, `| tee`) would otherwise wrap tables at 80 columns.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
out = Console(width=_WIDTH)
err = Console(stderr=True, width=_WIDTH)

EXIT_USER_ERROR = 1
EXIT_THRESHOLD = 3

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Print user errors as one line (exit 1) and interruptions as one line (exit 130); bugs keep tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EdgekitError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except OSError as exc:
            if exc.filename is None:
                raise
            err.print(
                f"[bold red]error:[/] cannot use {escape(str(exc.filename))}: {exc.strerror or exc}; check the path, "
                "permissions and free disk space.",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/]: finished files are kept; unfinished ones were removed.")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


class RichProgress(Progress):
    """Rich progress bars that also take the API's plain `ProgressEvent` callbacks (call the object)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ids: dict[int, TaskID] = {}

    def __call__(self, event: ProgressEvent) -> None:
        task = self._ids.get(event.task)
        if event.removed:
            if task is not None:
                self.remove_task(task)
                del self._ids[event.task]
            return
        if task is None:
            self._ids[event.task] = self.add_task(event.description, total=event.total, completed=int(event.completed))
        else:
            self.update(task, description=event.description, completed=event.completed, total=event.total)


def progress_bar() -> RichProgress:
    return RichProgress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal and os.environ.get("EDGEKIT_PROGRESS") != "1",
    )


def rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=escape(title), title_justify="left", header_style="bold")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for r in rows:
        table.add_row(*[escape(c.replace("**", "")) for c in r])
    return table


def install_interrupt_handling() -> None:
    """Make Ctrl-C always stop the command, even when it lands inside a finaliser.

    Python reports a KeyboardInterrupt raised inside a weakref callback or `__del__` as "Exception
    ignored" (with a traceback) and carries on, so the command would not stop. Re-deliver it to the main
    thread instead, where `user_errors` turns it into a one-line "interrupted" and exit 130.
    """
    import _thread

    default = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            _thread.interrupt_main()
            return
        default(unraisable)

    sys.unraisablehook = hook
