"""Wheelhouses for offline hosts: edgekit's runtime dependencies downloaded here for the host's platform.

`pip download --only-binary=:all: --platform … --python-version X.Y --implementation cp` fetches the
edgekit wheel's core dependencies (no TensorFlow; versions pinned by constraints.txt when it fits
the host's Python) for the platform the host reported (`HostFacts`). A wheelhouse is kept under
`cache_root()/wheelhouses/cp<XY>-<machine>-<libc>/<requirements digest>/` and reused until the
wheel's dependencies or the constraints change. The host installs it with `pip --no-index --find-links`.
A 32-bit ARM host with Python 3.9/3.10 gets the TFLite-only set instead (`lite.py`): tflite-runtime and
Rich from PyPI, and numpy built under QEMU by `verify --emulate pi3` (PyPI has no armv7l numpy).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from runtimes.errors import last_line
from toolkit.remote.errors import RemoteError
from toolkit.remote.wheel import cache_root

# The oldest manylinux any wheel we need uses; pip accepts one --platform per compatible tag.
OLDEST_GLIBC_MINOR: Final = 17
_build_lock = threading.Lock()  # hosts set up in parallel threads share one download per platform


@dataclass(frozen=True)
class HostFacts:
    """What `provision.probe` found on a host (empty strings where it could not tell)."""

    machine: str = ""  # uname -m
    python: str = ""  # "3.11"; "" when python3 is missing
    libc: str = ""  # "glibc-2.36", "" for musl or unknown
    venv: bool = True  # the venv and ensurepip modules import
    free_mb: int | None = None  # free space in the remote dir

    @property
    def key(self) -> str:
        """The wheelhouse's cache folder name: `cp311-aarch64-glibc-2.36`."""
        return f"cp{self.python.replace('.', '')}-{self.machine}-{self.libc or 'unknown'}"

    def platforms(self) -> list[str]:
        """pip `--platform` tags the host accepts: every manylinux up to its glibc (musllinux without glibc)."""
        match = re.fullmatch(r"glibc-2\.(\d+)", self.libc)
        if match is None:
            return [f"musllinux_1_{minor}_{self.machine}" for minor in (1, 2)]
        newest = int(match.group(1))
        tags = [f"manylinux_2_{minor}_{self.machine}" for minor in range(newest, OLDEST_GLIBC_MINOR - 1, -1)]
        return [*tags, f"manylinux2014_{self.machine}", f"linux_{self.machine}"]


def _requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist lines without extras (the core install)."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(name).decode()
    lines = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
    return sorted(line for line in lines if "extra ==" not in line)


def _constraints() -> Path | None:
    with contextlib.suppress(Exception):
        from toolkit.remote.wheel import source_root

        path = source_root() / "constraints.txt"
        return path if path.is_file() else None
    return None


def build_wheelhouse(wheel: Path, facts: HostFacts, extras: Sequence[str] = ()) -> tuple[Path, bool]:
    """A folder of wheels that installs `wheel` with `pip --no-index` on the host; (folder, reused from cache).

    `extras`: edgekit extras to include (("openvino",): openvino and openvino-telemetry for the host's platform);
    a wheelhouse with them is cached apart from the core one.

    Raises:
        RemoteError: pip here could not download wheels for that platform (its last line).
    """
    from toolkit.remote import lite

    constraints = _constraints()
    from toolkit.remote.extras import extra_requirements

    digest = hashlib.sha256("\n".join(_requirements(wheel) + extra_requirements(wheel, extras)).encode())
    if constraints is not None:
        digest.update(constraints.read_bytes())
    numpy: Path | None = None
    if lite.fits(facts.machine, facts.python):
        numpy = lite.built_numpy(facts.python, facts.machine)
        if numpy is None:
            raise RemoteError(
                f"no numpy wheel for {facts.machine} with Python {facts.python} here for an offline install (PyPI has "
                "none): run `sudo edgekit verify BUNDLE --emulate pi3` once on this machine (it builds one for "
                "Python 3.9 under QEMU), or let the host reach an index with armv7l wheels (piwheels)"
            )
        digest = hashlib.sha256("\n".join([*lite.REQUIREMENTS, numpy.name]).encode())
    cache = cache_root() / "wheelhouses" / facts.key / digest.hexdigest()[:16]
    with _build_lock:
        if cache.is_dir() and any(cache.glob("*.whl")):
            return cache, True
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{cache.name}.partial-", dir=cache.parent))
        try:
            if numpy is not None:
                glibc = re.fullmatch(r"glibc-2\.(\d+)", facts.libc)
                lite.download_wheels(
                    partial, facts.python, lite.platforms(facts.machine, int(glibc.group(1)) if glibc else 17)
                )
                shutil.copy2(numpy, partial / numpy.name)
                os.rename(partial, cache)
                return cache, False
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "-q",
                "--only-binary=:all:",
                "--python-version",
                facts.python,
                "--implementation",
                "cp",
                "-d",
                str(partial),
            ]
            for tag in facts.platforms():
                cmd += ["--platform", tag]
            # The edgekit wheel itself pulls its dependencies (pip evaluates their markers here, which is
            # right for the 64-bit hosts we install on). The pins first; when they do not exist for the
            # host's Python (numpy 2.4 needs 3.11), the newest versions that fit.
            attempts = [["-c", str(constraints)], []] if constraints is not None else [[]]
            target = str(wheel) + (f"[{','.join(sorted(extras))}]" if extras else "")
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
            for extra in attempts:
                proc = subprocess.run(
                    [*cmd, *extra, target], capture_output=True, text=True, timeout=1800, check=False, env=env
                )
                if proc.returncode == 0:
                    break
            else:
                raise RemoteError(
                    f"cannot download wheels for {facts.key} here for an offline install: "
                    f"{last_line(proc.stderr + proc.stdout)}"
                )
            (partial / wheel.name).unlink(missing_ok=True)  # the host gets the wheel on its own
            try:
                os.rename(partial, cache)
            except OSError:  # another process cached it first
                shutil.rmtree(partial, ignore_errors=True)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
        return cache, False
