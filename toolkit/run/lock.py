"""One writer per run directory: an advisory lock held while a command writes into a run."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from toolkit.errors import RunDirError

LOCK_FILE = ".edgekit.lock"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on `run_dir` for the block; refuse at once if another process holds it.

    The kernel drops the lock when the holder exits, even on SIGKILL, so a crashed run never blocks
    the next one. (No-op where fcntl is missing, i.e. Windows.)
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RunDirError(f"cannot lock {run_dir}: {exc.strerror}; check that the directory is writable.") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise RunDirError(
                f"{run_dir} is in use by another edgekit process (pid {holder}); "
                "wait for it or use another run directory."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
