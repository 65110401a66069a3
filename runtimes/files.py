"""Atomic file writes and checksums: a final name only ever holds a complete file."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtimes.errors import one_line


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def ensure_dir(directory: Path) -> None:
    """`mkdir -p`, but a file in the way is reported as such (mkdir says "File exists" or names a child)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        blocker = next((p for p in (directory, *directory.parents) if p.exists() and not p.is_dir()), None)
        if blocker is None:
            raise
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a directory", str(blocker)) from exc


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final` (same suffix); rename it into place on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed and `final` is
    left as it was. The suffix is kept because some writers (Keras) insist on it.
    """
    final = Path(final)
    ensure_dir(final.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".partial{final.suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise OSError(errno.EIO, "nothing was written", str(final))
        # mkstemp creates 0600 files; give the result the permissions a plain open() would have.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, final)
    except OSError as exc:
        # A full disk or a file-size limit fails inside the writer, often with no file name (numpy's
        # tofile, Path.write_bytes) or with the temporary one: name the final file, so the CLI prints
        # one line ("cannot use <file>: File too large; ...") instead of a traceback.
        if exc.filename is None or str(exc.filename) == str(tmp):
            raise OSError(exc.errno or errno.EIO, exc.strerror or one_line(exc, 200), str(final)) from exc
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(final: Path, obj: Any) -> None:
    write_bytes_atomic(final, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def write_text_atomic(final: Path, text: str) -> None:
    write_bytes_atomic(final, text.encode())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
