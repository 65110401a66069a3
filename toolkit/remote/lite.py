"""The TFLite-only install for 32-bit ARM boards (armv7l): what it holds, its wheels, its numpy.

Raspberry Pi OS 32-bit and similar images (armv7l) have no ai-edge-litert, onnxruntime, Pillow or numpy
wheels on PyPI. tflite-runtime 2.13 has armv7l wheels for CPython 3.9 and 3.10, built against numpy's C
API 0xe: numpy >= 1.21.2 and < 2 (Debian bullseye's python3-numpy 1.19.5 fails at the first model load:
"module compiled against API version 0xe but this version of numpy is 0xd"). So on such a host edgekit
installs its own wheel without dependencies (`--ignore-requires-python`: the full install needs 3.10+),
then `REQUIREMENTS`; `edgekit verify` runs there without Typer (`toolkit.cli.board`) and skips ONNX
artifacts in one line.

numpy for armv7l comes from the host's index (Raspberry Pi OS points pip at piwheels) or, offline and
under `verify --emulate pi3`, from a wheel built from source once in the armhf root under QEMU
(`toolkit.emulate.rootfs.build_numpy`, ~10-20 min) and kept in `numpy_wheel_dir()`
(`<edgekit cache>/built-wheels/`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Final

from runtimes.errors import last_line

MACHINES: Final = ("armv7l",)
PYTHONS: Final = ("3.9", "3.10")
TFLITE_RUNTIME: Final = "tflite-runtime==2.13.0"
NUMPY_RANGE: Final = "numpy>=1.21.2,<2"  # tflite-runtime 2.13's armv7l wheels: numpy C API 0xe, numpy 1
NUMPY_BUILT: Final = "1.23.5"  # the numpy built from source for armv7l (supports CPython 3.8-3.11)
REQUIREMENTS: Final = (TFLITE_RUNTIME, NUMPY_RANGE, "rich>=13")


def fits(machine: str, python: str) -> bool:
    """Whether a host with this `uname -m` and Python ("3.9") takes the TFLite-only install."""
    return machine in MACHINES and python in PYTHONS


def platforms(machine: str, glibc_minor: int) -> list[str]:
    """pip `--platform` tags of a glibc armv7l host (tflite-runtime's wheels are manylinux2014)."""
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(glibc_minor, 16, -1)]
    return [*tags, f"manylinux2014_{machine}", f"linux_{machine}"]


def run_pip(args: list[str], what: str) -> None:
    from toolkit.remote.errors import RemoteError

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    cmd = [sys.executable, "-m", "pip", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False, env=env)
    if proc.returncode != 0:
        raise RemoteError(f"{what} failed: {last_line(proc.stderr + proc.stdout)}")


def download_wheels(dest: Path, python: str, platform_tags: list[str]) -> None:
    """tflite-runtime and Rich (with its pure-Python dependencies) for the host, into `dest` (not numpy)."""
    args = ["download", "-q", "--disable-pip-version-check", "--only-binary=:all:", "-d", str(dest)]
    args += ["--python-version", python, "--implementation", "cp"]
    for tag in platform_tags:
        args += ["--platform", tag]
    # numpy is a dependency of tflite-runtime with no armv7l wheel: fetched without dependencies, then Rich's.
    run_pip([*args, "--no-deps", TFLITE_RUNTIME], f"downloading {TFLITE_RUNTIME} for armv7l cp{python}")
    run_pip([*args, "rich>=13"], f"downloading Rich for cp{python}")


def numpy_wheel_dir() -> Path:
    from toolkit.remote.wheel import cache_root

    return cache_root() / "built-wheels"


def built_numpy(python: str, machine: str) -> Path | None:
    """The numpy wheel built earlier for this Python and machine, if any."""
    tag = f"cp{python.replace('.', '')}"
    found = sorted(numpy_wheel_dir().glob(f"numpy-{NUMPY_BUILT}-{tag}-{tag}-*{machine}.whl"))
    return found[-1] if found else None
