"""The one edgekit wheel builder, and edgekit's local cache folder.

`verify --remote`/`bench --remote` install this wheel on each host and `verify --emulate` into the
arm64 root. It is built from a copy of the source tree (so the checkout stays clean) with a fixed
SOURCE_DATE_EPOCH, so the same sources give the same wheel and `source_digest` identifies it: a
built wheel is kept under `cache_root()/wheels/<source digest>/` and reused until a source changes.

The cache is `$EDGEKIT_CACHE_DIR` (default `$XDG_CACHE_HOME/edgekit`, else `~/.cache/edgekit`);
`EDGEKIT_CACHE`, the name `--emulate` used before, is still read when `EDGEKIT_CACHE_DIR` is unset.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

from runtimes.errors import last_line
from toolkit.remote.errors import WheelError

CACHE_ENV: Final = "EDGEKIT_CACHE_DIR"
OLD_CACHE_ENV: Final = "EDGEKIT_CACHE"  # read only when CACHE_ENV is unset
# What the wheel is built from (as tests/test_core_install.py does).
SOURCES: Final = ("pyproject.toml", "README.md", "toolkit", "exporters", "runtimes", "benchmarks")
IGNORED: Final = ("__pycache__", "build")  # folder names left out of the copy and the digest
IGNORED_SUFFIXES: Final = (".pyc", ".egg-info")
# Any fixed time makes the wheel reproducible, so its sha256 identifies the source (1980-01-01: the zip minimum).
SOURCE_DATE_EPOCH: Final = "315532800"


def cache_root() -> Path:
    """edgekit's local cache: `$EDGEKIT_CACHE_DIR`, else `$EDGEKIT_CACHE`, else `$XDG_CACHE_HOME/edgekit`
    or `~/.cache/edgekit`. Holds built wheels (`wheels/`) and the emulation root (`arm64-bookworm/`)."""
    explicit = os.environ.get(CACHE_ENV) or os.environ.get(OLD_CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().absolute() / "edgekit"


def source_root() -> Path:
    """The edgekit source tree this process runs from (needs pyproject.toml beside the packages)."""
    root = Path(__file__).resolve().parents[2]  # toolkit/remote/wheel.py -> the tree holding toolkit/
    if not (root / "pyproject.toml").is_file():
        raise WheelError(
            f"edgekit is installed without its source tree ({root} has no pyproject.toml), so its wheel cannot be "
            "built for the hosts or the emulated board; install it with `pip install -e .` (for --remote, "
            "EDGEKIT_REMOTE_WHEEL may name a prebuilt edgekit wheel instead)."
        )
    return root


def _ignored(part: str) -> bool:
    return part in IGNORED or part.endswith(IGNORED_SUFFIXES)


def source_files(root: Path) -> list[Path]:
    """The files the wheel is built from, sorted (caches, builds and egg-info left out)."""
    files: list[Path] = []
    for name in SOURCES:
        path = root / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(_ignored(part) for part in p.relative_to(root).parts)
            )
    return files


def source_digest(root: Path) -> str:
    """sha256 over the names, executable bits and bytes of the files the wheel is built from."""
    digest = hashlib.sha256()
    for path in source_files(root):
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_mode & 0o111}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_wheel(dest: Path, source: Path | None = None, *, log: Path | None = None) -> Path:
    """edgekit's wheel (no dependencies), built reproducibly from a copy of the source.

    Reuses the wheel cached under `cache_root()/wheels/<source digest>/` when the source is
    unchanged; otherwise builds into `dest` (an empty or new folder) and caches it (best effort).

    Args:
        dest: a scratch folder for the copy and the build.
        source: the source tree (default: `source_root()`).
        log: a file to append pip's output to (the emulation's build log).

    Raises:
        WheelError: no source tree, or pip could not build the wheel (its last output line).
    """
    root = source or source_root()
    cache = cache_root() / "wheels" / source_digest(root)
    cached = sorted(cache.glob("edgekit-*.whl")) if cache.is_dir() else []
    if len(cached) == 1:
        return cached[0]
    src = dest / "src"
    src.mkdir(parents=True)
    for path in source_files(root):
        target = src / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["SOURCE_DATE_EPOCH"] = SOURCE_DATE_EPOCH
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check"]
    cmd += ["-w", str(dest / "wheels"), str(src)]
    proc = subprocess.run(cmd, cwd=dest, env=env, capture_output=True, text=True, timeout=600, check=False)
    if log is not None:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n[exit {proc.returncode}]\n")
    shutil.rmtree(src, ignore_errors=True)
    wheels = sorted((dest / "wheels").glob("edgekit-*.whl")) if proc.returncode == 0 else []
    if len(wheels) != 1:
        raise WheelError(f"could not build the edgekit wheel: {last_line(proc.stderr + proc.stdout)}")
    with contextlib.suppress(OSError):  # a read-only home only costs a rebuild next time
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{cache.name}.partial-", dir=cache.parent))
        shutil.copy2(wheels[0], partial / wheels[0].name)
        try:
            os.rename(partial, cache)
        except OSError:  # another process cached it first
            shutil.rmtree(partial, ignore_errors=True)
    return wheels[0]
