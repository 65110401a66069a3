"""Running ARM programs (arm64, armhf) in a chroot here: QEMU user-mode, binfmt_misc, mounts, a board's CPU.

`check_host` and `ensure_binfmt` say in one line what is missing (root, QEMU, binfmt_misc with the
F flag). `board_mounts` gives a root the board's view of the CPU: /proc with the board's cpuinfo
bound over /proc/cpuinfo (onnxruntime's cpuinfo parsing segfaults under QEMU without one) and a
minimal /sys/devices/system/cpu with each CPU's topology and MIDR_EL1 (OpenVINO's CPU plugin segfaults
without the topology); `chroot_env` sets `QEMU_CPU` to the board's core. Everything
mounted is unmounted on exit, and `unmount_all` cleans up after a killed run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from runtimes.errors import last_line
from toolkit.emulate.boards import Board
from toolkit.emulate.errors import EmulateError

QEMU: Final = "qemu-aarch64-static"
# QEMU user-mode binary and binfmt_misc entry by Debian architecture.
QEMU_BY_ARCH: Final = {"arm64": ("qemu-aarch64-static", "qemu-aarch64"), "armhf": ("qemu-arm-static", "qemu-arm")}
BINFMT_DIR: Final = Path("/proc/sys/fs/binfmt_misc")
APT_FIX: Final = "apt-get install qemu-user-static binfmt-support debootstrap"
CHROOT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VENV: Final = "/opt/edgekit"  # edgekit's venv inside the root


def run(cmd: list[str], *, what: str, env: dict[str, str] | None = None, log: Path | None = None) -> str:
    """Run a command; raise EmulateError naming `what` and its last output line when it fails."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, errors="replace", check=False)
    if log is not None:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n[exit {proc.returncode}]\n")
    if proc.returncode != 0:
        where = f"; full log: {log}" if log is not None else ""
        raise EmulateError(f"{what} failed (exit {proc.returncode}): {last_line(proc.stderr or proc.stdout)}{where}")
    return proc.stdout


def chroot_env(board: Board | None) -> dict[str, str]:
    """The environment of a command in the root; with a board, QEMU emulates its core (`QEMU_CPU`)."""
    env = {"PATH": CHROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if board is not None:
        env["QEMU_CPU"] = board.qemu_cpu
    return env


def check_host(*, need_debootstrap: bool, arch: str = "arm64") -> None:
    """Root, Linux, QEMU for `arch` (and debootstrap for a build); one-line EmulateError with the fix otherwise."""
    qemu = QEMU_BY_ARCH[arch][0]
    if sys.platform != "linux":
        raise EmulateError(f"--emulate needs Linux (QEMU user-mode, chroot); this is {sys.platform}.")
    if os.geteuid() != 0:
        raise EmulateError("--emulate needs root (debootstrap, mount and chroot); run it again with sudo.")
    if shutil.which(qemu) is None:
        raise EmulateError(f"{qemu} not found; install it with: {APT_FIX}")
    if need_debootstrap and shutil.which("debootstrap") is None:
        raise EmulateError(f"debootstrap not found; install it with: {APT_FIX}")
    for tool in ("chroot", "mount", "umount"):
        if shutil.which(tool) is None:
            raise EmulateError(f"{tool} not found; install util-linux/coreutils.")


def ensure_binfmt(say: Callable[[str], None], arch: str = "arm64") -> None:
    """Make sure the kernel runs `arch`'s ELF files with QEMU (binfmt_misc, flag F for chroots)."""
    name = QEMU_BY_ARCH[arch][1]
    entry = BINFMT_DIR / name
    if not (BINFMT_DIR / "status").exists():
        run(["mount", "binfmt_misc", "-t", "binfmt_misc", str(BINFMT_DIR)], what="mounting binfmt_misc")
        say(f"mounted binfmt_misc on {BINFMT_DIR} (system-wide; left mounted, as binfmt-support does at boot)")
    if not _binfmt_enabled(entry) and shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", name], capture_output=True, check=False)
    if not _binfmt_enabled(entry):
        fix = f"{APT_FIX} && update-binfmts --enable {name}"
        raise EmulateError(f"{name} is not registered with binfmt_misc; run: {fix}")
    flags = next((ln.split(":", 1)[1].strip() for ln in entry.read_text().splitlines() if ln.startswith("flags:")), "")
    if "F" not in flags:
        raise EmulateError(
            f"{name}'s binfmt_misc entry lacks the F flag (flags: {flags or 'none'}), so it cannot run inside "
            "a chroot; use Debian's qemu-user-static package (it registers with F)."
        )


def _binfmt_enabled(entry: Path) -> bool:
    try:
        return entry.read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        return False


def qemu_version(arch: str = "arm64") -> str:
    proc = subprocess.run([QEMU_BY_ARCH[arch][0], "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.splitlines()[0].strip() if proc.stdout else "unknown"


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below `path` (from /proc/self/mountinfo), deepest first."""
    prefix = str(path.resolve())
    found: list[Path] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) < 5:
                continue
            point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _umount(point: Path) -> None:
    proc = subprocess.run(["umount", str(point)], capture_output=True, check=False)
    if proc.returncode != 0:  # busy: detach now, the kernel frees it when the last user is gone
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def unmount_all(path: Path) -> None:
    """Unmount everything mounted at or below `path` (left over by a killed run or debootstrap)."""
    for point in mounts_under(path):
        _umount(point)
    left = mounts_under(path)
    if left:
        raise EmulateError(f"cannot unmount {left[0]}; unmount it by hand (umount -l {left[0]}) and retry.")


def remove_tree(path: Path) -> None:
    """rm -rf a (partial) root, but only once nothing is mounted inside it."""
    if not path.exists() and not path.is_symlink():
        return
    unmount_all(path)
    shutil.rmtree(path, ignore_errors=True)


def host_cpus() -> list[int]:
    """The host CPUs this process may run on: QEMU user-mode runs the board's threads on them, so the board
    shows these (not a Pi's four) and runtimes that pin threads (onnxruntime) pin them to CPUs that exist."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _cpu_entries(cpu_dir: Path, board: Board, cpus: list[int]) -> None:
    """`cpuN/topology/*` and `cpuN/regs/identification/midr_el1` as on the board (one package, one core a CPU).

    OpenVINO's CPU plugin needs them: without the topology its TBB/hwloc discovery gives up and compile_model
    segfaults under QEMU; its ARM JIT (xbyak_aarch64) reads the core's MIDR there.
    """
    listed = f"{min(cpus)}-{max(cpus)}" if cpus == list(range(min(cpus), max(cpus) + 1)) else ",".join(map(str, cpus))
    for index, cpu in enumerate(cpus):
        topology = cpu_dir / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True, exist_ok=True)
        values = {
            "core_id": str(index),
            "physical_package_id": "0",
            "cluster_id": "0",
            "core_cpus_list": str(cpu),
            "thread_siblings_list": str(cpu),
            "cluster_cpus_list": listed,
            "core_siblings_list": listed,
            "package_cpus_list": listed,
        }
        # hwloc looks for the mask files (thread_siblings, core_siblings), the cpuinfo library for the lists.
        values.update(
            {
                "core_cpus": _cpu_mask([cpu]),
                "thread_siblings": _cpu_mask([cpu]),
                "cluster_cpus": _cpu_mask(cpus),
                "core_siblings": _cpu_mask(cpus),
                "package_cpus": _cpu_mask(cpus),
            }
        )
        for name, value in values.items():
            (topology / name).write_text(value + "\n", encoding="utf-8")
        regs = cpu_dir / f"cpu{cpu}" / "regs" / "identification"
        regs.mkdir(parents=True, exist_ok=True)
        (regs / "midr_el1").write_text(f"0x{board.midr:016x}\n", encoding="utf-8")
        (regs / "revidr_el1").write_text(f"0x{0:016x}\n", encoding="utf-8")


def _cpu_mask(cpus: list[int]) -> str:
    """A CPU set as Linux prints a cpumask in sysfs: hex, in comma-separated groups of 32 bits."""
    mask = sum(1 << c for c in cpus)
    text = f"{mask:x}"
    groups = [text[max(0, end - 8) : end] for end in range(len(text), 0, -8)]
    return ",".join(reversed(groups))


@contextlib.contextmanager
def board_mounts(root: Path, board: Board, scratch: Path) -> Iterator[None]:
    """The board's view of the CPU inside the root; everything mounted is unmounted on exit.

    /proc (mounted) with the board's cpuinfo bound over /proc/cpuinfo, and a /sys holding only
    devices/system/cpu/{possible,present,online,kernel_max} and each CPU's topology and MIDR (bound from
    `scratch`): the cpuinfo library in onnxruntime and XNNPACK reads both, and without them it cannot detect
    the CPU's features; OpenVINO's CPU plugin reads the topology (hwloc) and the MIDR.
    """
    cpus = host_cpus()
    cpuinfo = scratch / f"cpuinfo-{board.name}"
    cpuinfo.write_text(board.cpuinfo(cpus), encoding="utf-8")
    sys_dir = scratch / "sys"
    cpu_dir = sys_dir / "devices" / "system" / "cpu"
    cpu_dir.mkdir(parents=True, exist_ok=True)
    for name in ("possible", "present", "online"):
        (cpu_dir / name).write_text(",".join(map(str, cpus)) + "\n", encoding="utf-8")
    (cpu_dir / "kernel_max").write_text(f"{max(cpus)}\n", encoding="utf-8")
    _cpu_entries(cpu_dir, board, cpus)
    proc_dir, root_sys = root / "proc", root / "sys"
    proc_dir.mkdir(exist_ok=True)
    root_sys.mkdir(exist_ok=True)
    mounted: list[Path] = []
    try:
        run(["mount", "-t", "proc", "proc", str(proc_dir)], what=f"mounting /proc in {root}")
        mounted.append(proc_dir)
        run(["mount", "--bind", str(cpuinfo), str(proc_dir / "cpuinfo")], what="binding the board's /proc/cpuinfo")
        mounted.append(proc_dir / "cpuinfo")
        run(["mount", "--bind", str(sys_dir), str(root_sys)], what="binding the board's /sys/devices/system/cpu")
        mounted.append(root_sys)
        yield
    finally:
        for point in reversed(mounted):
            _umount(point)
        for point in (proc_dir, root_sys):
            with contextlib.suppress(EmulateError):
                unmount_all(point)
