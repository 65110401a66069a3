"""The optional runtimes a board install adds when a bundle needs them: OpenVINO, and only then.

A bundle holding an OpenVINO IR (an artifact whose runtime is "openvino") makes a 64-bit board's install
`edgekit[openvino]`: openvino, its openvino-telemetry and numpy, for the board's architecture (the aarch64
wheels need glibc 2.35+: Debian bookworm, Raspberry Pi OS 12). Any other bundle installs exactly the core
set, as before. OpenVINO publishes no 32-bit ARM wheels, nor aarch64 ones for an older glibc: such a board
gets no OpenVINO (an armv7l one keeps its TFLite-only install) and its `edgekit verify` skips the IR in one
line saying why (`runtimes.openvino_import.not_installed`).

The installed extras are part of a host's install marker (`marker_value`): a venv with OpenVINO serves a
bundle without it, the other way round means an install.
"""

from __future__ import annotations

import json
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

# An artifact's runtime -> the edgekit extra that installs it on a board (the core install has the others).
EXTRA_OF_RUNTIME: Final = {"openvino": "openvino"}


def bundle_extras(bundle: Path) -> tuple[str, ...]:
    """The extras a board needs for `bundle` (folder or .tar.gz), sorted: ("openvino",) or ().

    Reads only bundle.json (from an archive without extracting the rest); an unreadable one gives () and
    is refused in one line by verify itself.
    """
    try:
        doc = json.loads(_bundle_json(Path(bundle)))
    except (OSError, ValueError, tarfile.TarError):
        return ()
    artifacts = doc.get("artifacts") if isinstance(doc, dict) else None
    runtimes = {str(a.get("runtime")) for a in artifacts or [] if isinstance(a, dict)}
    return tuple(sorted({EXTRA_OF_RUNTIME[r] for r in runtimes if r in EXTRA_OF_RUNTIME}))


def _bundle_json(bundle: Path) -> str:
    if bundle.is_dir():
        return (bundle / "bundle.json").read_text(encoding="utf-8")
    with tarfile.open(bundle, "r:*") as tar:
        for member in tar:
            if member.isfile() and Path(member.name).name == "bundle.json" and len(Path(member.name).parts) <= 2:
                fh = tar.extractfile(member)
                if fh is not None:
                    return fh.read().decode("utf-8")
    raise OSError(f"{bundle} holds no bundle.json")


def supported(extras: Sequence[str], machine: str, libc: str = "") -> tuple[str, ...]:
    """The extras that have wheels for a board with this `uname -m` and libc ("glibc-2.36"; "" when unknown).

    OpenVINO: x86_64, and aarch64 with glibc 2.35+. Where it has none, the install leaves it out and verify
    skips each IR in one line saying why (`runtimes.openvino_import.not_installed`), instead of a failed set-up.
    """
    from runtimes.openvino_import import has_wheel

    return tuple(e for e in extras if e != "openvino" or has_wheel(machine, libc))


def marker_value(sha: str, extras: Sequence[str]) -> str:
    """What a host's install marker records: the wheel's sha256, then `+extra` for each extra installed."""
    return "+".join([sha, *sorted(extras)])


def covers(installed: str, sha: str, extras: Sequence[str]) -> bool:
    """Whether the install recorded as `installed` is this wheel with (at least) these extras."""
    head, *have = installed.split("+")
    return head == sha and set(extras) <= set(have)


def extra_requirements(wheel: Path, extras: Sequence[str]) -> list[str]:
    """The wheel's Requires-Dist lines for `extras`, without their markers (e.g. `openvino==2026.4.1`)."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(name).decode()
    found: list[str] = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement, _, marker = line.split(":", 1)[1].partition(";")
        if any(f'extra == "{e}"' in marker or f"extra == '{e}'" in marker for e in extras):
            found.append(requirement.strip())
    return sorted(found)
