"""Gzipped tar archives of a folder: written reproducibly (`write_tar`), extracted safely (`safe_extract`).

Bundles travel as `.tar.gz` files to boards, over scp to remote hosts and into the emulated root. An
archive from elsewhere is untrusted: `safe_extract` refuses absolute paths, `..`, links, devices,
duplicate names and archives that would extract to more than `MAX_ARCHIVE_BYTES`, before writing.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Final

from runtimes.errors import one_line
from toolkit.bundles.errors import BundleError

if TYPE_CHECKING:
    import tarfile

TAR_SUFFIXES: Final = (".tar.gz", ".tgz")
MAX_ARCHIVE_BYTES: Final = 2 << 30  # extracted size limit: bundles are a few MB
MAX_ARCHIVE_MEMBERS: Final = 10_000


def is_archive(path: Path) -> bool:
    """Whether `path` names a .tar.gz/.tgz (by its name; the file need not exist)."""
    return path.name.lower().endswith(TAR_SUFFIXES)


def archive_stem(path: Path) -> str:
    """The name without .tar.gz/.tgz: `b.tar.gz` → `b`; any other name as it is."""
    name = path.name
    for suffix in TAR_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def unsafe_reason(name: str) -> str | None:
    """Why a relative path from a bundle (tar member or bundle.json entry) is unsafe, or None."""
    if not name or name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "has an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "points outside the bundle ('..')"
    return None


def write_tar(folder: Path, dest: Path, top: str) -> None:
    """Write `folder` as a gzipped tar holding `top/…`, reproducibly (fixed owner, mode and time)."""
    import gzip
    import tarfile
    import time

    mtime = int(time.time())

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = mtime
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    with (
        open(dest, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.add(folder, arcname=top, recursive=False, filter=normalise)
        for path in sorted(folder.rglob("*")):
            arcname = f"{top}/{path.relative_to(folder).as_posix()}"
            tar.add(path, arcname=arcname, recursive=False, filter=normalise)


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a .tar.gz into `dest`, refusing anything but plain files and folders inside it.

    Every member is checked before anything is written: absolute paths, `..` components,
    symbolic and hard links, devices and FIFOs, duplicate names, and more than
    `MAX_ARCHIVE_MEMBERS` members or `MAX_ARCHIVE_BYTES` bytes are refused, naming the member.

    Raises:
        BundleError: the archive is unreadable or holds an unsafe member.
    """
    import shutil
    import tarfile
    import zlib

    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            _check_members(archive, members)
            for m in members:
                target = dest.joinpath(*PurePosixPath(m.name).parts)
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                if src is None:
                    raise BundleError(f"{archive}: member {m.name!r} cannot be read; re-create the bundle.")
                with src, open(target, "xb") as fh:
                    shutil.copyfileobj(src, fh)
    except BundleError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise BundleError(f"cannot extract {archive}: {exc.strerror or exc} ({exc.filename}).") from exc
        raise BundleError(
            f"{archive} is not a readable .tar.gz bundle ({one_line(exc, 200)}); copy it again or re-create it "
            "with `edgekit bundle`."
        ) from exc


def _check_members(archive: Path, members: list[tarfile.TarInfo]) -> None:
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise BundleError(f"{archive} holds {len(members)} members, more than a bundle ever has; refused.")
    total = 0
    seen: set[str] = set()
    for m in members:
        reason = unsafe_reason(m.name)
        if reason is None and m.issym():
            reason = f"is a symbolic link (to {m.linkname!r})"
        elif reason is None and m.islnk():
            reason = f"is a hard link (to {m.linkname!r})"
        elif reason is None and not (m.isfile() or m.isdir()):
            reason = "is a device, FIFO or other special file"
        if reason:
            raise BundleError(
                f"{archive}: member {m.name!r} {reason}; bundles hold only plain files and folders, so the "
                "archive was refused. Re-create it with `edgekit bundle`."
            )
        key = PurePosixPath(m.name).as_posix()
        if key in seen and not m.isdir():
            raise BundleError(f"{archive}: member {m.name!r} appears twice; refused. Re-create the bundle.")
        seen.add(key)
        total += m.size
        if total > MAX_ARCHIVE_BYTES:
            raise BundleError(f"{archive} would extract to more than {MAX_ARCHIVE_BYTES >> 30} GiB; refused.")
