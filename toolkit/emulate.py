"""ARM parity under emulation: `edgekit verify BUNDLE --emulate pi4|pi5`.

Runs the core install's `edgekit verify` on a Raspberry Pi-like arm64 Linux without the board:

1. Once, a cached arm64 Debian bookworm root (debootstrap, minbase + python3) with a venv holding
   the aarch64 wheels of numpy, ai-edge-litert 2.x and onnxruntime (pinned by constraints.txt) and
   the edgekit core wheel built from this source tree. Built in a temporary folder next to the
   cache and renamed when complete, so an interrupted build is never reused. `edgekit-emulate.json`
   (the marker) records what was installed; when only edgekit's sources change, only its wheel is
   re-installed; other changes (suite, constraints, edgekit's dependencies) rebuild the root.
2. Each run copies the bundle into the root, mounts /proc and binds a board-like /proc/cpuinfo over
   it (onnxruntime's cpuinfo parsing segfaults under QEMU without one), then runs `edgekit verify`
   chrooted under QEMU user-mode with `QEMU_CPU` set to the board's core (cortex-a72 / cortex-a76),
   copies verify.json out with an `emulation` section added, and unmounts (also on errors).

The cache is `$EDGEKIT_CACHE/arm64-bookworm` (default `~/.cache/edgekit/arm64-bookworm`; ~560 MB).
Needs root (debootstrap, mount, chroot) and `apt-get install qemu-user-static binfmt-support
debootstrap`. Emulation checks the arm64 builds of the runtimes and their kernels as QEMU executes
them; it says nothing about speed on a real board (QEMU is ~10-50x slower), and QEMU's CPU models
may offer instructions the real SoC lacks (QEMU's cortex-a72 has the crypto extension, the Pi 4's
BCM2711 does not).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from rich.markup import escape

from toolkit.errors import ToolkitError

SUITE: Final = "bookworm"
ROOT_NAME: Final = f"arm64-{SUITE}"
DEBIAN_PYTHON: Final = "3.11"  # bookworm's python3
DEFAULT_MIRROR: Final = "http://deb.debian.org/debian"
INCLUDE: Final = ("python3", "python3-venv", "ca-certificates")
MARKER: Final = "edgekit-emulate.json"  # at the top of a complete root
VENV: Final = "/opt/edgekit"
RECIPE_VERSION: Final = 1
QEMU: Final = "qemu-aarch64-static"
BINFMT_DIR: Final = Path("/proc/sys/fs/binfmt_misc")
APT_FIX: Final = "apt-get install qemu-user-static binfmt-support debootstrap"
SOURCES: Final = ("pyproject.toml", "README.md", "toolkit", "exporters", "runtimes", "benchmarks")
# Distributions whose versions the marker records (and the build checks).
RECORDED: Final = ("edgekit", "numpy", "ai-edge-litert", "onnxruntime", "typer", "rich", "pillow")
CHROOT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class EmulateError(ToolkitError):
    """Emulation cannot run here (not root, missing tools) or the arm64 root could not be built."""


@dataclass(frozen=True)
class Board:
    """A board emulated by QEMU user-mode: its core for QEMU_CPU and what its /proc/cpuinfo says."""

    name: str
    model: str
    qemu_cpu: str
    core: str
    cpu_part: str
    cpu_variant: str
    cpu_revision: int
    features: str
    revision_code: str

    def cpuinfo(self, cpus: Sequence[int] = (0, 1, 2, 3)) -> str:
        """A /proc/cpuinfo like the board's (Raspberry Pi OS 64-bit), naming the emulation in `Model`.

        `cpus`: the processor numbers to list (a Pi has 0-3; under QEMU, the host CPUs it may use).
        """
        blocks = [
            f"processor\t: {i}\n"
            "BogoMIPS\t: 108.00\n"
            f"Features\t: {self.features}\n"
            "CPU implementer\t: 0x41\n"
            "CPU architecture: 8\n"
            f"CPU variant\t: {self.cpu_variant}\n"
            f"CPU part\t: {self.cpu_part}\n"
            f"CPU revision\t: {self.cpu_revision}\n"
            for i in cpus
        ]
        tail = (
            f"Revision\t: {self.revision_code}\n"
            "Serial\t\t: 0000000000000000\n"
            f"Model\t\t: {self.model} (QEMU {self.qemu_cpu} emulation)\n"
        )
        return "\n".join(blocks) + "\n" + tail


BOARDS: Final[dict[str, Board]] = {
    "pi4": Board(
        name="pi4",
        model="Raspberry Pi 4 Model B Rev 1.4",
        qemu_cpu="cortex-a72",
        core="Cortex-A72",
        cpu_part="0xd08",
        cpu_variant="0x0",
        cpu_revision=3,
        features="fp asimd evtstrm crc32 cpuid",
        revision_code="d03114",
    ),
    "pi5": Board(
        name="pi5",
        model="Raspberry Pi 5 Model B Rev 1.0",
        qemu_cpu="cortex-a76",
        core="Cortex-A76",
        cpu_part="0xd0b",
        cpu_variant="0x4",
        cpu_revision=1,
        features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
        revision_code="d04170",
    ),
}


# -- small helpers -----------------------------------------------------------------------------------
def _say(msg: str) -> None:
    from toolkit.cli.console import err

    err.print(f"[dim]emulate:[/] {escape(msg)}", highlight=False)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def _run(cmd: list[str], *, what: str, env: dict[str, str] | None = None, log: Path | None = None) -> str:
    """Run a command; raise EmulateError naming `what` and its last output line when it fails."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, errors="replace", check=False)
    if log is not None:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n[exit {proc.returncode}]\n")
    if proc.returncode != 0:
        where = f"; full log: {log}" if log is not None else ""
        raise EmulateError(f"{what} failed (exit {proc.returncode}): {_last_line(proc.stderr or proc.stdout)}{where}")
    return proc.stdout


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    """Where the arm64 root lives: `$EDGEKIT_CACHE/arm64-bookworm`, else `~/.cache/edgekit/arm64-bookworm`."""
    base = os.environ.get("EDGEKIT_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "edgekit"
    return root.expanduser().absolute() / ROOT_NAME


def source_root() -> Path:
    """The edgekit source tree this module comes from (the wheel installed in the root is built from it)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise EmulateError(
            f"--emulate builds edgekit's wheel from its source tree, but {root} has no pyproject.toml; "
            "run it from a checkout (pip install -e .)."
        )
    return root


def source_digest(root: Path) -> str:
    """sha256 over the files that go into the edgekit wheel (names and contents)."""
    h = hashlib.sha256()
    for name in SOURCES:
        top = root / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            rel = path.relative_to(root).as_posix()
            if "__pycache__" in rel or rel.endswith(".pyc") or ".egg-info" in rel:
                continue
            h.update(rel.encode() + b"\0" + _sha256(path).encode() + b"\0")
    return h.hexdigest()


def recipe(root: Path) -> dict[str, Any]:
    """What the root's contents depend on besides edgekit's own code; a change means a rebuild."""
    import tomllib

    deps = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    constraints = root / "constraints.txt"
    return {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "arch": "arm64",
        "include": list(INCLUDE),
        "python": DEBIAN_PYTHON,
        "dependencies": sorted(deps),
        "constraints_sha256": _sha256(constraints) if constraints.is_file() else None,
    }


def debian_mirror() -> str:
    """The Debian archive this machine's apt uses for bookworm (sources.list or deb822 .sources files)."""
    if mirror := os.environ.get("EDGEKIT_DEBIAN_MIRROR"):
        return mirror
    apt = Path("/etc/apt")
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for path in files:
        with contextlib.suppress(OSError):
            found = mirror_from_list(path.read_text(encoding="utf-8", errors="replace"))
            if found:
                return found
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        with contextlib.suppress(OSError):
            found = mirror_from_deb822(path.read_text(encoding="utf-8", errors="replace"))
            if found:
                return found
    return DEFAULT_MIRROR


def mirror_from_list(text: str) -> str | None:
    """The first `deb URI bookworm …` URI of a one-line-style sources.list."""
    for line in text.splitlines():
        parts = [p for p in line.split("#", 1)[0].split() if p]
        if len(parts) >= 3 and parts[0] == "deb":
            rest = parts[1:]
            if rest[0].startswith("["):  # options: [arch=amd64 signed-by=…]
                while rest and not rest[0].endswith("]"):
                    rest = rest[1:]
                rest = rest[1:]
            if len(rest) >= 2 and rest[1] == SUITE and rest[0].startswith(("http://", "https://")):
                return rest[0].rstrip("/")
    return None


def mirror_from_deb822(text: str) -> str | None:
    """The first URI of a deb822 stanza with `Types: deb` and `Suites: bookworm`."""
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and SUITE in fields.get("suites", "").split():
            for uri in fields.get("uris", "").split():
                if uri.startswith(("http://", "https://")):
                    return uri.rstrip("/")
    return None


# -- host checks -------------------------------------------------------------------------------------
def check_host(*, need_debootstrap: bool) -> None:
    """Root, Linux, QEMU (and debootstrap for a build); one-line EmulateError with the fix otherwise."""
    if sys.platform != "linux":
        raise EmulateError(f"--emulate needs Linux (QEMU user-mode, chroot); this is {sys.platform}.")
    if os.geteuid() != 0:
        raise EmulateError("--emulate needs root (debootstrap, mount and chroot); run it again with sudo.")
    if shutil.which(QEMU) is None:
        raise EmulateError(f"{QEMU} not found; install it with: {APT_FIX}")
    if need_debootstrap and shutil.which("debootstrap") is None:
        raise EmulateError(f"debootstrap not found; install it with: {APT_FIX}")
    for tool in ("chroot", "mount", "umount"):
        if shutil.which(tool) is None:
            raise EmulateError(f"{tool} not found; install util-linux/coreutils.")


def ensure_binfmt() -> None:
    """Make sure the kernel runs aarch64 ELF files with QEMU (binfmt_misc, flag F for chroots)."""
    entry = BINFMT_DIR / "qemu-aarch64"
    if not (BINFMT_DIR / "status").exists():
        _run(["mount", "binfmt_misc", "-t", "binfmt_misc", str(BINFMT_DIR)], what="mounting binfmt_misc")
        _say(f"mounted binfmt_misc on {BINFMT_DIR} (system-wide; left mounted, as binfmt-support does at boot)")
    if not _binfmt_enabled(entry) and shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True, check=False)
    if not _binfmt_enabled(entry):
        raise EmulateError(
            f"qemu-aarch64 is not registered with binfmt_misc; run: {APT_FIX} && update-binfmts --enable qemu-aarch64"
        )
    flags = next((ln.split(":", 1)[1].strip() for ln in entry.read_text().splitlines() if ln.startswith("flags:")), "")
    if "F" not in flags:
        raise EmulateError(
            f"qemu-aarch64's binfmt_misc entry lacks the F flag (flags: {flags or 'none'}), so it cannot run inside "
            "a chroot; use Debian's qemu-user-static package (it registers with F)."
        )


def _binfmt_enabled(entry: Path) -> bool:
    try:
        return entry.read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        return False


def qemu_version() -> str:
    proc = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.splitlines()[0].strip() if proc.stdout else "unknown"


# -- mounts ------------------------------------------------------------------------------------------
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


@contextlib.contextmanager
def board_mounts(root: Path, board: Board, scratch: Path) -> Iterator[None]:
    """The board's view of the CPU inside the root; everything mounted is unmounted on exit.

    /proc (mounted) with the board's cpuinfo bound over /proc/cpuinfo, and a /sys holding only
    devices/system/cpu/{possible,present,online,kernel_max} (bound from `scratch`): the cpuinfo library
    in onnxruntime and XNNPACK reads both, and without them it cannot detect the CPU's features.
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
    proc_dir, root_sys = root / "proc", root / "sys"
    proc_dir.mkdir(exist_ok=True)
    root_sys.mkdir(exist_ok=True)
    mounted: list[Path] = []
    try:
        _run(["mount", "-t", "proc", "proc", str(proc_dir)], what=f"mounting /proc in {root}")
        mounted.append(proc_dir)
        _run(["mount", "--bind", str(cpuinfo), str(proc_dir / "cpuinfo")], what="binding the board's /proc/cpuinfo")
        mounted.append(proc_dir / "cpuinfo")
        _run(["mount", "--bind", str(sys_dir), str(root_sys)], what="binding the board's /sys/devices/system/cpu")
        mounted.append(root_sys)
        yield
    finally:
        for point in reversed(mounted):
            _umount(point)
        for point in (proc_dir, root_sys):
            with contextlib.suppress(EmulateError):
                unmount_all(point)


def _chroot_env(board: Board | None) -> dict[str, str]:
    env = {"PATH": CHROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if board is not None:
        env["QEMU_CPU"] = board.qemu_cpu
    return env


@contextlib.contextmanager
def cache_lock(cache: Path) -> Iterator[None]:
    """One emulated run or build per cache at a time (mounts and the wheel update are not shareable)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / f"{cache.name}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"waiting for another --emulate run using {cache}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- building the root -------------------------------------------------------------------------------
def read_marker(root: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _build_wheel(src: Path, dest: Path, log: Path) -> Path:
    """edgekit's wheel, built from a copy of the source tree (the build leaves nothing in the checkout)."""
    copy = dest / "src"
    copy.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        if (src / name).is_dir():
            shutil.copytree(src / name, copy / name, ignore=ignore)
        elif (src / name).is_file():
            shutil.copy2(src / name, copy / name)
    out = dest / "wheel"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check"]
    _run([*cmd, "-w", str(out), str(copy)], what="building the edgekit wheel", log=log)
    shutil.rmtree(copy, ignore_errors=True)
    wheels = sorted(out.glob("edgekit-*.whl"))
    if len(wheels) != 1:
        raise EmulateError(f"building the edgekit wheel gave {len(wheels)} wheels in {out}; expected one.")
    return wheels[0]


def _download_wheels(wheel: Path, dest: Path, src: Path, log: Path) -> None:
    """aarch64 cp311 wheels of edgekit's dependencies, fetched by this machine's pip (native speed).

    ai-edge-litert 2.x is tagged manylinux_2_27_aarch64 only: without that platform pip silently falls
    back to 1.4.0, so every manylinux_2_17 … 2_36 tag (bookworm's glibc is 2.36) is offered.
    """
    platforms = [f"manylinux_2_{minor}_aarch64" for minor in range(36, 16, -1)] + ["manylinux2014_aarch64"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "-d", str(dest)]
    cmd += ["--only-binary=:all:", "--python-version", DEBIAN_PYTHON, "--implementation", "cp"]
    cmd += ["--abi", "cp" + DEBIAN_PYTHON.replace(".", ""), "--abi", "abi3", "--abi", "none"]
    for plat in platforms:
        cmd += ["--platform", plat]
    if (src / "constraints.txt").is_file():
        cmd += ["-c", str(src / "constraints.txt")]
    _run([*cmd, str(wheel)], what="downloading the aarch64 wheels (pip download)", log=log)


def _installed_versions(root: Path, board: Board) -> dict[str, Any]:
    """Import the runtimes inside the root under emulation and report versions (fails loudly if one crashes)."""
    code = (
        "import json, platform, importlib.metadata as m\n"
        "import numpy, onnxruntime, ai_edge_litert.interpreter\n"
        f"v = {{d: m.version(d) for d in {list(RECORDED)!r}}}\n"
        "print(json.dumps({'python': platform.python_version(), 'machine': platform.machine(), 'packages': v}))\n"
    )
    with tempfile.TemporaryDirectory(prefix="edgekit-emulate-") as scratch, board_mounts(root, board, Path(scratch)):
        stdout = _run(
            ["chroot", str(root), f"{VENV}/bin/python", "-c", code],
            what="importing numpy, onnxruntime and ai_edge_litert in the arm64 root",
            env=_chroot_env(board),
        )
    doc: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    litert = str(doc["packages"].get("ai-edge-litert", "0"))
    if int(litert.split(".")[0]) < 2:
        raise EmulateError(
            f"pip installed ai-edge-litert {litert} in the arm64 root (expected 2.x: its aarch64 wheels are "
            "tagged manylinux_2_27 only)."
        )
    if doc.get("machine") != "aarch64":
        raise EmulateError(f"the arm64 root reports machine {doc.get('machine')!r}, not aarch64; check binfmt_misc.")
    return doc


def _install_edgekit(root: Path, wheel: Path, *, deps: bool, log: Path) -> None:
    inbox = root / "tmp" / "edgekit-wheels"
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.copy2(wheel, inbox / wheel.name)
    cmd = ["chroot", str(root), f"{VENV}/bin/python", "-m", "pip", "install", "-q", "--no-index"]
    cmd += ["--find-links", "/tmp/edgekit-wheels"]
    cmd += [] if deps else ["--no-deps", "--force-reinstall"]
    try:
        _run(
            [*cmd, f"/tmp/edgekit-wheels/{wheel.name}"],
            what="pip install in the arm64 root",
            env=_chroot_env(None),
            log=log,
        )
    finally:
        shutil.rmtree(inbox, ignore_errors=True)


def build_root(cache: Path, src: Path) -> dict[str, Any]:
    """Build the arm64 root into a temporary folder beside `cache`, then rename it into place.

    Returns the marker written into it. A folder left by an interrupted build is removed first.
    """
    started = time.perf_counter()
    parent = cache.parent
    for stale in parent.glob(f".{cache.name}.partial-*"):
        remove_tree(stale)
    work = Path(tempfile.mkdtemp(prefix=f".{cache.name}.partial-", dir=parent))
    log = parent / f"{cache.name}.build.log"
    log.write_text(f"edgekit --emulate build of {cache}\n", encoding="utf-8")
    mirror = debian_mirror()
    try:
        rootfs = work / "root"
        _say(f"building the arm64 Debian {SUITE} root in {parent} (once; ~4 min debootstrap from {mirror}) …")
        cmd = ["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE]
        _run([*cmd, str(rootfs), mirror], what="debootstrap", log=log)
        unmount_all(rootfs)
        _say("building edgekit's wheel and fetching aarch64 wheels …")
        wheel = _build_wheel(src, work / "build", log)
        inbox = rootfs / "tmp" / "edgekit-wheels"
        _download_wheels(wheel, inbox, src, log)
        _say("creating the venv and installing the wheels under emulation …")
        _run(["chroot", str(rootfs), "python3", "-m", "venv", VENV], what="python3 -m venv in the arm64 root",
             env=_chroot_env(None), log=log)  # fmt: skip
        _install_edgekit(rootfs, wheel, deps=True, log=log)
        versions = _installed_versions(rootfs, BOARDS["pi4"])
        marker = {
            "schema_version": 1,
            "recipe": recipe(src),
            "mirror": mirror,
            "qemu": qemu_version(),
            "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.perf_counter() - started, 1),
            "python": versions["python"],
            "packages": versions["packages"],
            "edgekit_wheel": {"name": wheel.name, "sha256": _sha256(wheel), "source_digest": source_digest(src)},
        }
        (rootfs / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        unmount_all(work)
        old = parent / f".{cache.name}.old-{os.getpid()}"
        if cache.exists():
            unmount_all(cache)
            os.rename(cache, old)
        os.rename(rootfs, cache)
        remove_tree(old)
        _say(f"arm64 root ready in {marker['build_seconds']:.0f} s: {cache}")
        return marker
    finally:
        remove_tree(work)


def update_wheel(cache: Path, src: Path, marker: dict[str, Any]) -> dict[str, Any]:
    """Re-install only edgekit's wheel (its sources changed); the marker is rewritten after success."""
    log = cache.parent / f"{cache.name}.build.log"
    _say("edgekit changed since the arm64 root was built: re-installing its wheel …")
    with tempfile.TemporaryDirectory(prefix="edgekit-wheel-") as tmp:
        wheel = _build_wheel(src, Path(tmp), log)
        _install_edgekit(cache, wheel, deps=False, log=log)
        versions = _installed_versions(cache, BOARDS["pi4"])
        marker = {
            **marker,
            "packages": versions["packages"],
            "edgekit_wheel": {"name": wheel.name, "sha256": _sha256(wheel), "source_digest": source_digest(src)},
            "wheel_updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    tmp_marker = cache / f".{MARKER}.tmp"
    tmp_marker.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_marker, cache / MARKER)
    return marker


def ensure_root(cache: Path | None = None) -> tuple[Path, dict[str, Any], str]:
    """The ready arm64 root: (path, marker, "cached" | "built" | "wheel updated"). Call under `cache_lock`."""
    cache = cache or cache_dir()
    src = source_root()
    marker = read_marker(cache) if cache.is_dir() else None
    if marker is None or marker.get("recipe") != recipe(src):
        check_host(need_debootstrap=True)
        if marker is not None:
            _say("the arm64 root was built for other dependencies or constraints; rebuilding it")
        return cache, build_root(cache, src), "built"
    if marker.get("edgekit_wheel", {}).get("source_digest") != source_digest(src):
        return cache, update_wheel(cache, src, marker), "wheel updated"
    return cache, marker, "cached"


# -- running verify ----------------------------------------------------------------------------------
def default_output(bundle: Path, board: str) -> Path:
    """`<bundle>.emulate-<board>.verify.json` beside the bundle folder or archive."""
    from toolkit.bundle import archive_stem

    bundle = bundle.absolute()
    return bundle.parent / f"{archive_stem(bundle)}.emulate-{board}.verify.json"


def emulated_verify(bundle: Path, board_name: str, out: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Run `edgekit verify` on `bundle` in the arm64 root under QEMU as `board_name`; write verify.json.

    Returns:
        (where verify.json was written, its content: the emulated machine's report plus `emulation`).

    Raises:
        EmulateError: not root, tools missing, the root cannot be built, or verify crashed.
        BundleError: the bundle is missing or malformed (as reported by verify inside the root).
    """
    from exporters.files import write_json_atomic
    from toolkit.bundle import BundleError, is_archive

    board = BOARDS.get(board_name)
    if board is None:
        raise EmulateError(f"unknown board {board_name!r}; choose one of {', '.join(BOARDS)}.")
    check_host(need_debootstrap=False)
    bundle = Path(bundle).absolute()
    if not bundle.exists():
        raise BundleError(f"bundle {bundle} does not exist; pass a folder or .tar.gz made by `edgekit bundle`.")
    if not (bundle.is_dir() or is_archive(bundle)):
        raise BundleError(f"{bundle} is neither a bundle folder nor a .tar.gz; pass what `edgekit bundle` wrote.")
    target = out or default_output(bundle, board.name)
    ensure_binfmt()
    started = time.perf_counter()
    cache = cache_dir()
    with cache_lock(cache):
        root, marker, state = ensure_root(cache)
        prepared = time.perf_counter() - started
        unmount_all(root)  # left by a killed run
        scratch = Path(tempfile.mkdtemp(prefix="edgekit-emulate-", dir=root / "tmp"))
        try:
            inside = Path("/tmp") / scratch.name
            if bundle.is_dir():
                shutil.copytree(bundle, scratch / bundle.name, symlinks=True)
            else:
                shutil.copy2(bundle, scratch / bundle.name)
            _say(f"running edgekit verify as {board.name} (QEMU_CPU={board.qemu_cpu}, arm64 root {state}) …")
            cmd = ["chroot", str(root), f"{VENV}/bin/edgekit", "verify", str(inside / bundle.name)]
            cmd += ["--out", str(inside / "verify.json")]
            t0 = time.perf_counter()
            with board_mounts(root, board, scratch):
                env = {**_chroot_env(board), "COLUMNS": "200"}
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, errors="replace", check=False)
            verify_seconds = time.perf_counter() - t0
            if proc.returncode == 1:
                msg = _last_line(proc.stderr).removeprefix("error:").strip()
                raise BundleError(f"{msg.replace(str(inside / bundle.name), str(bundle))} (under emulation)")
            if proc.returncode not in (0, 3) or not (scratch / "verify.json").is_file():
                signal = f" (signal {-proc.returncode})" if proc.returncode < 0 else ""
                raise EmulateError(
                    f"edgekit verify under QEMU ({board.qemu_cpu}) exited {proc.returncode}{signal}: "
                    f"{_last_line(proc.stderr or proc.stdout)}"
                )
            report: dict[str, Any] = json.loads((scratch / "verify.json").read_text(encoding="utf-8"))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    report["bundle"]["path"] = str(bundle)
    report["emulation"] = {
        "board": board.name,
        "model": board.model,
        "qemu_cpu": board.qemu_cpu,
        "core": board.core,
        "cpuinfo_features": board.features,
        "qemu": marker.get("qemu") or qemu_version(),
        "host": {"machine": platform.machine(), "cpu_model": _host_cpu()},
        "rootfs": {
            "path": str(root),
            "state": state,
            "suite": SUITE,
            "python": marker.get("python"),
            "packages": marker.get("packages"),
            "edgekit_wheel_sha256": marker.get("edgekit_wheel", {}).get("sha256"),
            "build_seconds": marker.get("build_seconds"),
        },
        "prepare_seconds": round(prepared, 1),
        "verify_seconds": round(verify_seconds, 1),
        "note": "QEMU user-mode: checks the arm64 runtimes' numerics, not a board's speed",
    }
    write_json_atomic(target, report)
    return target, report


def _host_cpu() -> str | None:
    try:
        from benchmarks.environment import cpu_model

        return cpu_model()
    except Exception:  # best effort, as in capture_environment
        return None


def print_report(bundle: Path, target: Path, report: dict[str, Any]) -> None:
    """The per-artifact table: max |Δp| between the emulated board and the desktop's outputs, and time."""
    from toolkit.cli.console import err, out, rich_table

    emu = report["emulation"]
    rows = []
    for r in report["results"]:
        if r["status"] == "error":
            rows.append([r["artifact"], r.get("runtime") or "", "-", "-", "-", "-", "error"])
            continue
        tol = r["tolerance"]
        allowed = (
            f"1 step {float(tol['max_abs']):.2g}" if tol.get("kind") == "quantization_step" else f"{tol['max_abs']:g}"
        )
        rows.append(
            [
                r["artifact"],
                r.get("backend") or "",
                f"{r['max_abs_diff']:.2e}",
                allowed,
                f"{r['agreement']:.4f}",
                f"{r.get('seconds', 0):.2f}",
                r["status"],
            ]
        )
    images = report["golden"]["images"]
    out.print(
        rich_table(
            f"Verify {bundle} as {emu['board']} under QEMU ({emu['qemu_cpu']}; {images} golden images)",
            ["artifact", "backend", "max |Δp| vs x86", "allowed", "agreement", "seconds", "result"],
            rows,
        )
    )
    for s in report["skipped"]:
        err.print(f"[yellow]skipped[/] {escape(s['artifact'])}: {escape(s['reason'])}", highlight=False)
    for r in report["results"]:
        if r["status"] == "error":
            err.print(f"[bold red]{escape(r['artifact'])}[/]: {escape(r['error'])}", highlight=False)
    rootfs = emu["rootfs"]
    built = f"built in {rootfs['build_seconds']:.0f} s" if rootfs["state"] == "built" else rootfs["state"]
    out.print(
        f"Emulated verify: {emu['verify_seconds']:.1f} s (arm64 root {built}: {rootfs['path']}; "
        f"{emu['prepare_seconds']:.1f} s to prepare)",
        highlight=False,
    )
    out.print(f"Wrote {escape(str(target))}", highlight=False)
