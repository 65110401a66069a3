"""The cached ARM Debian roots that `verify --emulate` runs edgekit in, and how they are built.

Once per architecture (`ROOTS`): an arm64 Debian bookworm root (debootstrap, minbase + python3) with a
venv holding the aarch64 wheels of numpy, ai-edge-litert 2.x and onnxruntime (pinned by constraints.txt)
and the edgekit core wheel (`wheel.build_wheel`); or an armhf bullseye root (Python 3.9, as Raspberry
Pi OS 32-bit) with the TFLite-only install (`lite.py`: tflite-runtime 2.13, numpy built there from
source once, Rich). Built in a temporary folder next to the cache and renamed when complete,
so an interrupted build is never reused. `edgekit-emulate.json` (the marker) records what was
installed; when only edgekit's sources change, only its wheel is re-installed; other changes (suite,
constraints, edgekit's dependencies) rebuild the root.

The roots are `root_dir(kind)`: `<edgekit cache>/arm64-bookworm` (see `wheel.cache_root`; ~560 MB) and
`<edgekit cache>/armhf-bullseye` (~420 MB with the compiler that builds numpy).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from runtimes.files import sha256_file
from toolkit.emulate.boards import BOARDS, Board
from toolkit.emulate.chroot import (
    VENV,
    board_mounts,
    check_host,
    chroot_env,
    qemu_version,
    remove_tree,
    run,
    unmount_all,
)
from toolkit.emulate.errors import EmulateError

SUITE: Final = "bookworm"  # this machine's Debian: its apt sources name the mirror (`debian_mirror`)
DEFAULT_MIRROR: Final = "http://deb.debian.org/debian"
MARKER: Final = "edgekit-emulate.json"  # at the top of a complete root
RECIPE_VERSION: Final = 1
# numpy 1.23's own build requirements (pyproject.toml), fetched here for `build_numpy` without an index.
NUMPY_BUILD_DEPS: Final = ("setuptools==59.2.0", "wheel==0.37.0", "Cython>=0.29.30,<3.0")


@dataclass(frozen=True)
class RootKind:
    """One emulated root: its Debian architecture and suite, the suite's python3, what debootstrap adds."""

    arch: str
    suite: str
    python: str
    include: tuple[str, ...]
    machine: str  # uname -m inside
    lite: bool  # the TFLite-only install (`lite.py`) instead of the core install
    recorded: tuple[str, ...]  # distributions whose versions the marker records
    imports: str  # what the build imports to check the runtimes load

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.suite}"


ROOTS: Final = {
    "arm64": RootKind(
        arch="arm64",
        suite="bookworm",
        python="3.11",
        include=("python3", "python3-venv", "ca-certificates"),
        machine="aarch64",
        lite=False,
        recorded=("edgekit", "numpy", "ai-edge-litert", "onnxruntime", "typer", "rich", "pillow"),
        imports="numpy, onnxruntime, ai_edge_litert.interpreter",
    ),
    # bullseye's Python 3.9 is one tflite-runtime 2.13 has armv7l wheels for; gcc and python3-dev build numpy.
    "armhf": RootKind(
        arch="armhf",
        suite="bullseye",
        python="3.9",
        include=("python3", "python3-venv", "python3-dev", "gcc", "g++", "ca-certificates"),
        machine="armv7l",
        lite=True,
        recorded=("edgekit", "numpy", "tflite-runtime", "rich"),
        imports="numpy, tflite_runtime.interpreter",
    ),
}
ARM64: Final = ROOTS["arm64"]

Say = Callable[[str], None]


def root_dir(kind: RootKind = ARM64) -> Path:
    """Where a root lives: `<edgekit cache>/<arch>-<suite>` (default `~/.cache/edgekit/arm64-bookworm`)."""
    from toolkit.remote.wheel import cache_root

    return cache_root() / kind.name


def recipe(root: Path, kind: RootKind = ARM64) -> dict[str, Any]:
    """What a root's contents depend on besides edgekit's own code; a change means a rebuild."""
    import tomllib

    from toolkit.remote import lite

    deps = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    constraints = root / "constraints.txt"
    return {
        "version": RECIPE_VERSION,
        "suite": kind.suite,
        "arch": kind.arch,
        "include": list(kind.include),
        "python": kind.python,
        "dependencies": sorted(lite.REQUIREMENTS) if kind.lite else sorted(deps),
        "constraints_sha256": sha256_file(constraints) if constraints.is_file() and not kind.lite else None,
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


@contextlib.contextmanager
def cache_lock(cache: Path, say: Say) -> Iterator[None]:
    """One emulated run or build per cache at a time (mounts and the wheel update are not shareable)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / f"{cache.name}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another --emulate run using {cache}")
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


def _download_wheels(wheel: Path | None, dest: Path, src: Path, log: Path, requirements: Sequence[str] = ()) -> None:
    """aarch64 cp311 wheels of edgekit's dependencies (or of `requirements`), fetched by this machine's pip.

    ai-edge-litert 2.x is tagged manylinux_2_27_aarch64 only: without that platform pip silently falls
    back to 1.4.0, so every manylinux_2_17 … 2_36 tag (bookworm's glibc is 2.36) is offered (openvino's
    aarch64 wheels are manylinux_2_35).
    """
    platforms = [f"manylinux_2_{minor}_aarch64" for minor in range(36, 16, -1)] + ["manylinux2014_aarch64"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "-d", str(dest)]
    cmd += ["--only-binary=:all:", "--python-version", ARM64.python, "--implementation", "cp"]
    cmd += ["--abi", "cp" + ARM64.python.replace(".", ""), "--abi", "abi3", "--abi", "none"]
    for plat in platforms:
        cmd += ["--platform", plat]
    if (src / "constraints.txt").is_file():
        cmd += ["-c", str(src / "constraints.txt")]
    targets = [str(wheel)] if wheel is not None else list(requirements)
    run([*cmd, *targets], what="downloading the aarch64 wheels (pip download)", log=log)


def _installed_versions(root: Path, board: Board, kind: RootKind = ARM64) -> dict[str, Any]:
    """Import the runtimes inside the root under emulation and report versions (fails loudly if one crashes)."""
    code = (
        "import json, platform, importlib.metadata as m\n"
        f"import {kind.imports}\n"
        f"v = {{d: m.version(d) for d in {list(kind.recorded)!r}}}\n"
        "print(json.dumps({'python': platform.python_version(), 'machine': platform.machine(), 'packages': v}))\n"
    )
    doc: dict[str, Any] = _json_from_root(root, board, code, f"importing {kind.imports} in the {kind.arch} root")
    litert = str(doc["packages"].get("ai-edge-litert", "0"))
    if not kind.lite and int(litert.split(".")[0]) < 2:
        raise EmulateError(
            f"pip installed ai-edge-litert {litert} in the arm64 root (expected 2.x: its aarch64 wheels are "
            "tagged manylinux_2_27 only)."
        )
    if doc.get("machine") != kind.machine:
        raise EmulateError(
            f"the {kind.arch} root reports machine {doc.get('machine')!r}, not {kind.machine}; check binfmt_misc."
        )
    return doc


def _install_edgekit(root: Path, wheel: Path, *, deps: bool, log: Path, kind: RootKind = ARM64) -> None:
    """pip install the edgekit wheel in the root's venv (with its dependencies from /tmp/edgekit-wheels).

    The TFLite-only install takes edgekit without its dependencies (they have no armv7l wheels; the full
    install needs Python 3.10+), then `lite.REQUIREMENTS`, as `toolkit.remote.provision` does on a 32-bit host.
    """
    from toolkit.remote import lite

    inbox = root / "tmp" / "edgekit-wheels"
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.copy2(wheel, inbox / wheel.name)
    cmd = ["chroot", str(root), f"{VENV}/bin/python", "-m", "pip", "install", "-q", "--no-index"]
    cmd += ["--find-links", "/tmp/edgekit-wheels"]
    steps = [[*cmd, *([] if deps else ["--no-deps", "--force-reinstall"]), f"/tmp/edgekit-wheels/{wheel.name}"]]
    if kind.lite:
        steps = [[*cmd, "--ignore-requires-python", "--no-deps", "--force-reinstall", steps[0][-1]]]
        steps += [[*cmd, *lite.REQUIREMENTS]] if deps else []
    try:
        for step in steps:
            run(step, what=f"pip install in the {kind.arch} root", env=chroot_env(None), log=log)
    finally:
        shutil.rmtree(inbox, ignore_errors=True)


def _wheel_record(wheel: Path, src: Path) -> dict[str, str]:
    """What the marker says about the installed edgekit wheel (its source digest decides re-installs)."""
    from toolkit.remote.wheel import source_digest

    return {"name": wheel.name, "sha256": sha256_file(wheel), "source_digest": source_digest(src)}


def build_root(cache: Path, src: Path, say: Say, kind: RootKind = ARM64) -> dict[str, Any]:
    """Build a root into a temporary folder beside `cache`, then rename it into place.

    Returns the marker written into it. A folder left by an interrupted build is removed first.
    """
    from toolkit.remote.wheel import build_wheel

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
        say(f"building the {kind.arch} Debian {kind.suite} root in {parent} (once; ~4 min debootstrap from {mirror}) …")
        cmd = ["debootstrap", f"--arch={kind.arch}", "--variant=minbase", f"--include={','.join(kind.include)}"]
        run([*cmd, kind.suite, str(rootfs), mirror], what="debootstrap", log=log)
        unmount_all(rootfs)
        say(f"building edgekit's wheel and fetching {kind.machine} wheels …")
        wheel = build_wheel(work / "build", src, log=log)
        inbox = rootfs / "tmp" / "edgekit-wheels"
        if not kind.lite:
            _download_wheels(wheel, inbox, src, log)
        say("creating the venv and installing the wheels under emulation …")
        run(
            ["chroot", str(rootfs), "python3", "-m", "venv", VENV],
            what=f"python3 -m venv in the {kind.arch} root",
            env=chroot_env(None),
            log=log,
        )
        if kind.lite:
            _lite_wheels(rootfs, inbox, kind, log, say)
        _install_edgekit(rootfs, wheel, deps=True, log=log, kind=kind)
        board = next(b for b in BOARDS.values() if b.arch == kind.arch)
        versions = _installed_versions(rootfs, board, kind)
        marker = {
            "schema_version": 1,
            "recipe": recipe(src, kind),
            "mirror": mirror,
            "qemu": qemu_version(kind.arch),
            "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.perf_counter() - started, 1),
            "python": versions["python"],
            "packages": versions["packages"],
            "edgekit_wheel": _wheel_record(wheel, src),
        }
        (rootfs / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        unmount_all(work)
        old = parent / f".{cache.name}.old-{os.getpid()}"
        if cache.exists():
            unmount_all(cache)
            os.rename(cache, old)
        os.rename(rootfs, cache)
        remove_tree(old)
        say(f"{kind.arch} root ready in {marker['build_seconds']:.0f} s: {cache}")
        return marker
    finally:
        remove_tree(work)


def _lite_wheels(root: Path, inbox: Path, kind: RootKind, log: Path, say: Say) -> None:
    """The TFLite-only install's wheels into `inbox`: tflite-runtime and Rich fetched here, numpy built in the root
    (PyPI has no armv7l numpy) unless a wheel built earlier is cached."""
    from toolkit.remote import lite

    lite.download_wheels(inbox, kind.python, lite.platforms(kind.machine, 31))  # bullseye: glibc 2.31
    numpy = lite.built_numpy(kind.python, kind.machine)
    if numpy is None:
        say(f"building numpy {lite.NUMPY_BUILT} from source under QEMU (no armv7l wheels on PyPI; once, ~15 min) …")
        numpy = build_numpy(root, VENV, kind.python, chroot_env(None), log)
    shutil.copy2(numpy, inbox / numpy.name)


def build_numpy(root: Path, venv: str, python: str, env: dict[str, str], log: Path) -> Path:
    """Build numpy from source in an armhf root under QEMU (its gcc and python3-dev); cache and return the wheel.

    `venv`: the root's venv (its pip builds). The sdist and build requirements are fetched here first, so
    the build needs no index. The finished wheel is moved into `lite.numpy_wheel_dir()`, where a remote
    armv7l host's wheelhouse finds it too.
    """
    from toolkit.remote import lite

    found = lite.built_numpy(python, "armv7l")
    if found is not None:
        return found
    version = lite.NUMPY_BUILT
    inbox = root / "tmp" / "edgekit-numpy-src"
    shutil.rmtree(inbox, ignore_errors=True)
    inbox.mkdir(parents=True)
    try:
        # --no-binary=numpy, not :all:: pip prepares the sdist's metadata here, and its build tools must stay wheels
        # (setuptools 59 from source no longer builds with a current pip).
        source = ["download", "-q", "--no-deps", "--no-binary=numpy", f"numpy=={version}", "-d", str(inbox)]
        lite.run_pip(source, "downloading the numpy source")
        tools = ["download", "-q", "--only-binary=:all:", "--python-version", python, "--platform", "any"]
        tools += ["--implementation", "py", *NUMPY_BUILD_DEPS, "-d", str(inbox)]
        lite.run_pip(tools, "downloading numpy's build tools")
        # No BLAS in the root: numpy uses its bundled lapack_lite (enough for verify's comparisons).
        jobs = str(os.cpu_count() or 1)
        build_env = {**env, "NPY_BLAS_ORDER": "", "NPY_LAPACK_ORDER": "", "NPY_NUM_BUILD_JOBS": jobs}
        cmd = ["chroot", str(root), f"{venv}/bin/python", "-m", "pip", "wheel", "-q", "--no-index", "--no-deps"]
        cmd += ["--find-links", "/tmp/edgekit-numpy-src", "-w", "/tmp/edgekit-numpy-src/out"]
        what = f"building numpy {version} from source under QEMU"
        run([*cmd, f"numpy=={version}"], what=what, env=build_env, log=log)
        wheel = next((inbox / "out").glob("numpy-*.whl"))
        lite.numpy_wheel_dir().mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=lite.numpy_wheel_dir(), delete=False, suffix=".partial") as tmp:
            shutil.copyfileobj(wheel.open("rb"), tmp)
        final = lite.numpy_wheel_dir() / wheel.name
        os.replace(tmp.name, final)
        return final
    finally:
        shutil.rmtree(inbox, ignore_errors=True)


def update_wheel(cache: Path, src: Path, marker: dict[str, Any], say: Say, kind: RootKind = ARM64) -> dict[str, Any]:
    """Re-install only edgekit's wheel (its sources changed); the marker is rewritten after success."""
    from toolkit.remote.wheel import build_wheel

    log = cache.parent / f"{cache.name}.build.log"
    say(f"edgekit changed since the {kind.arch} root was built: re-installing its wheel …")
    with tempfile.TemporaryDirectory(prefix="edgekit-wheel-") as tmp:
        wheel = build_wheel(Path(tmp), src, log=log)
        _install_edgekit(cache, wheel, deps=False, log=log, kind=kind)
        board = next(b for b in BOARDS.values() if b.arch == kind.arch)
        versions = _installed_versions(cache, board, kind)
        marker = {
            **marker,
            "packages": versions["packages"],
            "edgekit_wheel": _wheel_record(wheel, src),
            "wheel_updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    tmp_marker = cache / f".{MARKER}.tmp"
    tmp_marker.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_marker, cache / MARKER)
    return marker


def ensure_extras(
    cache: Path, marker: dict[str, Any], extras: Sequence[str], say: Say, kind: RootKind = ARM64
) -> dict[str, Any]:
    """Add edgekit's optional runtimes `extras` (e.g. ("openvino",), `toolkit.remote.extras.bundle_extras`) to a
    ready root, once: their aarch64 wheels fetched here, installed under emulation, imported as a board would.

    The root's recipe is unchanged (a bundle without them runs in the same root); the marker's `extras` records
    what was added, and a rebuilt root starts without. The armhf root takes none (no armv7l wheels): verify
    there skips such artifacts in one line. Call under `cache_lock`; returns the marker.
    """
    from toolkit.remote.extras import extra_requirements, supported
    from toolkit.remote.wheel import build_wheel, source_root

    have = dict(marker.get("extras") or {})
    missing = [e for e in supported(extras, kind.machine) if e not in have]
    if not missing:
        return marker
    log = cache.parent / f"{cache.name}.build.log"
    src = source_root()
    with tempfile.TemporaryDirectory(prefix="edgekit-wheel-") as tmp:
        requirements = extra_requirements(build_wheel(Path(tmp), src, log=log), missing)
    say(f"adding {', '.join(requirements)} to the {kind.arch} root (once) …")
    inbox = cache / "tmp" / "edgekit-extras"
    shutil.rmtree(inbox, ignore_errors=True)
    try:
        _download_wheels(None, inbox, src, log, requirements)
        cmd = ["chroot", str(cache), f"{VENV}/bin/python", "-m", "pip", "install", "-q", "--no-index"]
        cmd += ["--find-links", "/tmp/edgekit-extras", *requirements]
        run(cmd, what=f"pip install {' '.join(requirements)} in the {kind.arch} root", env=chroot_env(None), log=log)
    finally:
        shutil.rmtree(inbox, ignore_errors=True)
    board = next(b for b in BOARDS.values() if b.arch == kind.arch)
    for extra in missing:
        have[extra] = _extra_versions(cache, board, extra)
    marker = {**marker, "extras": have}
    tmp_marker = cache / f".{MARKER}.tmp"
    tmp_marker.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_marker, cache / MARKER)
    return marker


# What each extra's check imports under emulation (as edgekit does: OpenVINO with its telemetry declined), and
# the distributions whose versions the marker records.
_EXTRA_CHECKS: Final = {
    "openvino": (
        "from runtimes.openvino_import import import_openvino\n"
        "ov = import_openvino()\n"
        "devices = ov.Core().available_devices\n",
        ("openvino", "openvino-telemetry"),
    )
}


def _extra_versions(root: Path, board: Board, extra: str) -> dict[str, str]:
    """Import the extra's runtime in the root as `board` (fails loudly if it crashes); its packages' versions."""
    check, dists = _EXTRA_CHECKS[extra]
    code = check + (
        f"import json, importlib.metadata as m\nprint(json.dumps({{d: m.version(d) for d in {list(dists)!r}}}))\n"
    )
    versions: dict[str, str] = _json_from_root(
        root, board, code, f"importing {extra} in the {board.arch} root as {board.name}"
    )
    return versions


def _json_from_root(root: Path, board: Board, code: str, what: str) -> Any:
    """Run `code` with the root's Python under emulation as `board` (its mounts and environment); the JSON it
    prints last."""
    with tempfile.TemporaryDirectory(prefix="edgekit-emulate-") as scratch, board_mounts(root, board, Path(scratch)):
        stdout = run(["chroot", str(root), f"{VENV}/bin/python", "-c", code], what=what, env=chroot_env(board))
    return json.loads(stdout.strip().splitlines()[-1])


def ensure_root(cache: Path, say: Say, kind: RootKind = ARM64) -> tuple[Path, dict[str, Any], str]:
    """The ready root at `cache` (see `root_dir`): (path, marker, "cached" | "built" | "wheel updated").

    Call under `cache_lock`. `say` gets a line for each slow step (a build takes minutes).
    """
    from toolkit.remote.wheel import source_digest, source_root

    src = source_root()
    marker = read_marker(cache) if cache.is_dir() else None
    if marker is None or marker.get("recipe") != recipe(src, kind):
        check_host(need_debootstrap=True, arch=kind.arch)
        if marker is not None:
            say(f"the {kind.arch} root was built for other dependencies or constraints; rebuilding it")
        return cache, build_root(cache, src, say, kind), "built"
    if marker.get("edgekit_wheel", {}).get("source_digest") != source_digest(src):
        return cache, update_wheel(cache, src, marker, say, kind), "wheel updated"
    return cache, marker, "cached"
