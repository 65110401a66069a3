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
        raise RuntimeUnavailableError(not_installed(platform.machine())) from exc
    return openvino


# `uname -m` of the machines OpenVINO publishes wheels for (Linux, macOS, Windows).
WHEEL_MACHINES = ("x86_64", "AMD64", "aarch64", "arm64")


def not_installed(machine: str) -> str:
    """Why an IR cannot run here, in one line: the install hint, or (32-bit ARM) that no wheel exists."""
    if machine in WHEEL_MACHINES:
        return f"OpenVINO is not installed; {INSTALL_HINT}."
    return (
        f"OpenVINO has no wheels for {machine}; verify OpenVINO IR artifacts on a 64-bit OS (aarch64 or x86_64), "
        "or with `edgekit verify --emulate pi5` on the desktop"
    )
