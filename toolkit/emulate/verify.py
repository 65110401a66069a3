"""ARM parity under emulation: `edgekit verify BUNDLE --emulate pi3|pi4|pi5`.

Runs `edgekit verify` on a Raspberry Pi-like Linux without the board: in the cached Debian root of the
board's architecture (`rootfs.py`, built once: arm64 with the core install for pi4/pi5, armhf with the
TFLite-only install for pi3), chrooted under QEMU user-mode with the board's core as `QEMU_CPU` and
its /proc/cpuinfo (`chroot.py`, `boards.py`). A bundle with OpenVINO IR adds OpenVINO to the arm64 root
once (`rootfs.ensure_extras`; the armhf root has no wheel for it). verify.json is copied
out with an `emulation` section added; everything mounted is unmounted, also on errors.

Needs root (debootstrap, mount, chroot) and `apt-get install qemu-user-static binfmt-support
debootstrap`. Emulation checks the arm64 builds of the runtimes and their kernels as QEMU executes
them; it says nothing about speed on a real board (QEMU is ~10-50x slower), and QEMU's CPU models
may offer instructions the real SoC lacks (QEMU's cortex-a72 has the crypto extension, the Pi 4's
BCM2711 does not).
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtimes.errors import last_line
from toolkit.bundles.archive import archive_stem
from toolkit.bundles.errors import BundleError
from toolkit.emulate.boards import BOARDS, Board
from toolkit.emulate.chroot import VENV, board_mounts, check_host, chroot_env, ensure_binfmt, qemu_version, unmount_all
from toolkit.emulate.errors import EmulateError
from toolkit.emulate.rootfs import ROOTS, cache_lock, ensure_extras, ensure_root, root_dir
from toolkit.remote.extras import bundle_extras

if TYPE_CHECKING:
    from toolkit.run.documents import VerifyDocument


def default_output(bundle: Path, board: str) -> Path:
    """`<bundle>.emulate-<board>.verify.json` beside the bundle folder or archive."""
    bundle = bundle.absolute()
    return bundle.parent / f"{archive_stem(bundle)}.emulate-{board}.verify.json"


def emulated_verify(
    bundle: Path, board_name: str, out: Path | None = None, *, say: Callable[[str], None] | None = None
) -> tuple[Path, VerifyDocument]:
    """Run `edgekit verify` on `bundle` in the board's root under QEMU as `board_name`; write verify.json.

    Args:
        bundle: a bundle folder or .tar.gz.
        board_name: a key of `boards.BOARDS`.
        out: where to write verify.json (default: `default_output`).
        say: gets a line for each slow step (default: nothing).

    Returns:
        (where verify.json was written, verify.json: the emulated machine's report plus `emulation`).

    Raises:
        EmulateError: not root, tools missing, the root cannot be built, or verify crashed.
        BundleError: the bundle is missing or malformed (as reported by verify inside the root).
    """
    from toolkit.bundles.format import check_bundle_path
    from toolkit.run.documents import VerifyDocument, parse_document, write_document

    if say is None:
        say = _quiet
    board = BOARDS.get(board_name)
    if board is None:
        raise EmulateError(f"unknown board {board_name!r}; choose one of {', '.join(BOARDS)}.")
    kind = ROOTS[board.arch]
    check_host(need_debootstrap=False, arch=kind.arch)
    bundle = Path(bundle).absolute()
    check_bundle_path(bundle)
    target = out or default_output(bundle, board.name)
    ensure_binfmt(say, kind.arch)
    started = time.perf_counter()
    cache = root_dir(kind)
    with cache_lock(cache, say):
        root, marker, state = ensure_root(cache, say, kind)
        marker = ensure_extras(root, marker, bundle_extras(bundle), say, kind)
        prepared = time.perf_counter() - started
        unmount_all(root)  # left by a killed run
        say(f"running edgekit verify as {board.name} (QEMU_CPU={board.qemu_cpu}, {kind.arch} root {state}) …")
        report, verify_seconds = _verify_in_root(root, board, bundle)
    report["bundle"]["path"] = str(bundle)
    report["emulation"] = {
        "board": board.name,
        "model": board.model,
        "qemu_cpu": board.qemu_cpu,
        "core": board.core,
        "cpuinfo_features": board.features,
        "qemu": marker.get("qemu") or qemu_version(kind.arch),
        "host": {"machine": platform.machine(), "cpu_model": _host_cpu()},
        "rootfs": {
            "path": str(root),
            "state": state,
            "suite": kind.suite,
            "arch": kind.arch,
            "python": marker.get("python"),
            "packages": _packages(marker),
            "edgekit_wheel_sha256": marker.get("edgekit_wheel", {}).get("sha256"),
            "build_seconds": marker.get("build_seconds"),
        },
        "prepare_seconds": round(prepared, 1),
        "verify_seconds": round(verify_seconds, 1),
        "note": f"QEMU user-mode: checks the {kind.arch} runtimes' numerics, not a board's speed",
    }
    doc = parse_document(report, VerifyDocument, source=target)
    write_document(target, doc)
    return target, doc


def _verify_in_root(root: Path, board: Board, bundle: Path) -> tuple[dict[str, Any], float]:
    """Copy the bundle into the root, run the root's `edgekit verify` as `board`: (its verify.json, seconds)."""
    scratch = Path(tempfile.mkdtemp(prefix="edgekit-emulate-", dir=root / "tmp"))
    try:
        inside = Path("/tmp") / scratch.name
        if bundle.is_dir():
            shutil.copytree(bundle, scratch / bundle.name, symlinks=True)
        else:
            shutil.copy2(bundle, scratch / bundle.name)
        cmd = ["chroot", str(root), f"{VENV}/bin/edgekit", "verify", str(inside / bundle.name)]
        cmd += ["--out", str(inside / "verify.json")]
        started = time.perf_counter()
        with board_mounts(root, board, scratch):
            env = {**chroot_env(board), "COLUMNS": "200"}
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, errors="replace", check=False)
        seconds = time.perf_counter() - started
        if proc.returncode == 1:
            msg = last_line(proc.stderr).removeprefix("error:").strip()
            raise BundleError(f"{msg.replace(str(inside / bundle.name), str(bundle))} (under emulation)")
        if proc.returncode not in (0, 3) or not (scratch / "verify.json").is_file():
            signal = f" (signal {-proc.returncode})" if proc.returncode < 0 else ""
            raise EmulateError(
                f"edgekit verify under QEMU ({board.qemu_cpu}) exited {proc.returncode}{signal}: "
                f"{last_line(proc.stderr or proc.stdout)}"
            )
        report: dict[str, Any] = json.loads((scratch / "verify.json").read_text(encoding="utf-8"))
        return report, seconds
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _packages(marker: dict[str, Any]) -> dict[str, str] | None:
    """The root's packages with those of the extras added for bundles that needed them (OpenVINO)."""
    packages = marker.get("packages")
    if packages is None:
        return None
    for versions in (marker.get("extras") or {}).values():
        packages = {**packages, **versions}
    return dict(packages)


def _host_cpu() -> str | None:
    try:
        from benchmarks.environment import cpu_model

        return cpu_model()
    except Exception:  # best effort, as in capture_environment
        return None


def _quiet(message: str) -> None:
    """The default `say`: the API prints nothing; the CLI passes its own."""
