"""Shared CLI plumbing: consoles, the user-error boundary, progress bars and tables (Rich loads only what is used)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.markup import escape

from runtimes.errors import EdgekitError

if TYPE_CHECKING:
    from rich.table import Table

    from toolkit.cli.bars import RichProgress

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
        except (EdgekitError, OSError, KeyboardInterrupt) as exc:
            code = report_error(exc)
            if code is None:
                raise
            import typer

            raise typer.Exit(code) from None
        except Exception:
            from toolkit.cli.interrupts import was_interrupted

            if not was_interrupted():
                raise
            # An error raised after Ctrl-C is a consequence of the interruption (a library caught the
            # KeyboardInterrupt and raised its own error): report the interruption, not a traceback.
            import typer

            raise typer.Exit(report_error(KeyboardInterrupt()) or 130) from None

    return wrapper  # type: ignore[return-value]


def report_error(exc: BaseException) -> int | None:
    """Print a user error or an interruption as one line and return the exit code; None: a bug (re-raise it)."""
    if isinstance(exc, EdgekitError):
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_USER_ERROR
    if isinstance(exc, OSError) and exc.filename is not None:
        err.print(
            f"[bold red]error:[/] cannot use {escape(str(exc.filename))}: {exc.strerror or exc}; check the path, "
            "permissions and free disk space.",
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_USER_ERROR
    if isinstance(exc, KeyboardInterrupt):
        err.print("[bold red]interrupted[/]: finished files are kept; unfinished ones were removed.")
        return 130
    return None


def progress_bar() -> RichProgress:
    """Progress bars on stderr (off when stderr is not a terminal, unless EDGEKIT_PROGRESS=1)."""
    from toolkit.cli.bars import RichProgress

    return RichProgress(err, disable=not err.is_terminal and os.environ.get("EDGEKIT_PROGRESS") != "1")


def rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left", header_style="bold")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for r in rows:
        table.add_row(*[escape(c.replace("**", "")) for c in r])
    return table
