"""Import OpenVINO without its usage telemetry, unless the user opted in.

`import openvino` imports its model converter (`openvino.tools.ovc`), which starts `openvino_telemetry` at import
time (and `import nncf` starts it again): with no consent file (`~/intel/openvino_telemetry`) it counts as
consent and sends usage events to Intel. edgekit runs offline and on boards in the field; it must not send
anything on a user's behalf. The telemetry declines by itself in CI (`CI=true`); edgekit sets that for the import
alone, unless the user's consent file says they opted in (`opt_in_out --opt_in`), which is then respected. The
variable is restored right after, so nothing else in the process (or its children) sees it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtimes.errors import RuntimeUnavailableError

INSTALL_HINT = "install it with `pip install 'edgekit[openvino]'`"


def consent_file() -> Path:
    """Where `openvino_telemetry` keeps the user's choice (Linux and macOS)."""
    return Path.home() / "intel" / "openvino_telemetry"


def opted_in() -> bool:
    """Whether the user told OpenVINO's telemetry yes (the consent file holds "1")."""
    try:
        return consent_file().read_text(encoding="utf-8").strip() == "1"
    except OSError:
        return False


@contextlib.contextmanager
def telemetry_declined() -> Iterator[None]:
    """Within: OpenVINO's telemetry (started by `import openvino`, and again by `import nncf`) sees `CI=true` and
    declines, unless the user opted in. Afterwards `CI` is as it was."""
    saved = os.environ.get("CI")
    if not opted_in():
        os.environ["CI"] = "true"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = saved


def import_openvino() -> Any:
    """The `openvino` module, imported with its telemetry declined unless the user opted in.

    Raises:
        RuntimeUnavailableError: OpenVINO is not installed (with the install hint).
    """
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    try:
        with telemetry_declined():
            import openvino
    except ImportError as exc:
        libc = "-".join(platform.libc_ver()).strip("-")
        raise RuntimeUnavailableError(not_installed(platform.machine(), libc)) from exc
    return openvino


# `uname -m` of the machines OpenVINO publishes wheels for (Linux, macOS, Windows).
WHEEL_MACHINES = ("x86_64", "AMD64", "aarch64", "arm64")
# OpenVINO 2026.4's Linux aarch64 wheels are tagged manylinux_2_35: an older glibc (Debian 11: 2.31) has none.
AARCH64_GLIBC = (2, 35)


def has_wheel(machine: str, libc: str = "") -> bool:
    """Whether OpenVINO publishes a wheel for this `uname -m` and libc ("glibc-2.36"; "" when unknown)."""
    if machine not in WHEEL_MACHINES:
        return False
    glibc = _glibc(libc)
    return not (machine == "aarch64" and glibc is not None and glibc < AARCH64_GLIBC)


def _glibc(libc: str) -> tuple[int, int] | None:
    name, _, version = libc.partition("-")
    parts = version.split(".")
    if name != "glibc" or len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        return None
    return int(parts[0]), int(parts[1])


def not_installed(machine: str, libc: str = "") -> str:
    """Why an IR cannot run here, in one line: the install hint, or that no wheel exists for this machine."""
    if has_wheel(machine, libc):
        return f"OpenVINO is not installed; {INSTALL_HINT}."
    if machine in WHEEL_MACHINES:
        return (
            f"OpenVINO's {machine} wheels need glibc {'.'.join(map(str, AARCH64_GLIBC))} or newer and this OS has "
            f"{libc.replace('-', ' ')}; verify OpenVINO IR artifacts on a newer OS (Debian 12, Raspberry Pi OS 12)"
        )
    return (
        f"OpenVINO has no wheels for {machine}; verify OpenVINO IR artifacts on a 64-bit OS (aarch64 or x86_64), "
        "or with `edgekit verify --emulate pi5` on the desktop"
    )
