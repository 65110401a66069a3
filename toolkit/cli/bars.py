"""Rich progress bars that also take the API's plain progress callbacks."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from toolkit.progress import ProgressEvent


class RichProgress(Progress):
    """Rich progress bars that also take the API's plain `ProgressEvent` callbacks (call the object)."""

    def __init__(self, console: Console, *, disable: bool) -> None:
        super().__init__(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=disable,
        )
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
