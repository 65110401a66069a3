"""Progress reporting for the Python API: a plain callback receives `ProgressEvent`s; no Rich.

Steps talk to a `Progress` (task handles with add/update/advance/remove, the vocabulary of progress bars);
it turns each change into one event for the caller's callback, or into nothing when there is none. The CLI's
callback draws Rich bars (`toolkit.cli.bars.RichProgress`); a notebook or a service can log or ignore them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """One change to one task.

    Attributes:
        task: a number that identifies the task within one call.
        description: what is happening, e.g. "export: tflite-int8".
        completed: units done so far.
        total: units in all, or None while unknown.
        removed: True when the task is finished and its display can go.
    """

    task: int
    description: str
    completed: float
    total: float | None
    removed: bool = False


ProgressCallback = Callable[[ProgressEvent], None]


class Progress:
    """Task handles for steps; each change is sent to `callback` (None: progress is not reported)."""

    def __init__(self, callback: ProgressCallback | None = None) -> None:
        self._callback = callback
        self._tasks: dict[int, ProgressEvent] = {}

    def add_task(self, description: str, total: float | None = None) -> int:
        task = len(self._tasks)
        self._emit(ProgressEvent(task, description, 0, total))
        return task

    def update(
        self, task: int, *, description: str | None = None, completed: float | None = None, total: float | None = None
    ) -> None:
        old = self._tasks[task]
        self._emit(
            ProgressEvent(
                task,
                old.description if description is None else description,
                old.completed if completed is None else completed,
                old.total if total is None else total,
            )
        )

    def advance(self, task: int, amount: float = 1) -> None:
        self.update(task, completed=self._tasks[task].completed + amount)

    def add_total(self, task: int, more: float) -> None:
        """Grow the task's total by `more` units (work found along the way)."""
        self.update(task, total=(self._tasks[task].total or 0) + more)

    def remove_task(self, task: int) -> None:
        old = self._tasks[task]
        self._emit(ProgressEvent(task, old.description, old.completed, old.total, removed=True))

    def _emit(self, event: ProgressEvent) -> None:
        self._tasks[event.task] = event
        if self._callback is not None:
            self._callback(event)


def as_progress(progress: Progress | ProgressCallback | None) -> Progress:
    """A `Progress` for a step, from what the caller passed (a callback, a `Progress`, or None)."""
    return progress if isinstance(progress, Progress) else Progress(progress)
