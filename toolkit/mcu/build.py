"""Build TFLM firmware for a Cortex-M core with the Arm GNU toolchain: the library (cached), the image, its sizes.

The sources are the tflite-micro tarball shipped in `third_party/` (checked by sha256 before it is extracted
once into `<edgekit cache>/tflm/`). The library is compiled by this module, not by TFLM's Makefile: the same
flags and sources as its `microlite` target (core at -Os, kernels and CMSIS-NN at -O2, `--gc-sections`
friendly), but only the kernels of the model's ops, as a firmware build does. Objects are cached per TFLM
commit, core and kernel set (`cortex-m4-cmsis_nn`...), so a model with a new op compiles that op's files only.

The image links the generated model_data.cc, a runner (`firmware_src/runner.cc`) or the generated example,
a 16-entry vector table and newlib's semihosting start-up (rdimon) with a linker script for the MPS2 board
QEMU emulates. Its flash and RAM are read from the linker's map: model array, TFLM + kernels, the rest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from toolkit.mcu.tflm import McuError

TFLM_COMMIT: Final = "90b983c2b3f1480642e040bbd2ddb37b998f3424"
TARBALL: Final = "tflite-micro-src.tar.xz"
TARBALL_SHA256: Final = "e7b43bd51e1fbad59249f6fd8e63a9a75edd2474b7660f741759c86c9c004639"
RECIPE_VERSION: Final = 1
PACKAGES: Final = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm"
KERNEL_SETS: Final = ("cmsis_nn", "reference")
FIRMWARE_SRC: Final = Path(__file__).parent / "firmware_src"
DOWNLOADS: Final = "tensorflow/lite/micro/tools/make/downloads"
MIB: Final = 1024 * 1024

Say = Callable[[str, int, int], None]  # (what, files done, files in all)


@dataclass(frozen=True)
class Core:
    """A Cortex-M core: how gcc builds for it, and the MPS2 machine QEMU emulates it on (its memory map)."""

    name: str
    cflags: tuple[str, ...]
    machine: str
    cpu: str
    flash_origin: int
    flash_length: int
    ram_origin: int
    ram_length: int


# QEMU's MPS2 machines (hw/arm/mps2.c, mps2-tz.c): code SSRAM at 0x0 and data SSRAM at 0x20000000, 4 MiB
# each (AN386, AN500); the AN505 (TrustZone) boots secure, code at 0x10000000, data at 0x38000000 (2 MiB).
CORES: Final = {
    "cortex-m4": Core(
        "cortex-m4",
        ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
        "mps2-an386",
        "cortex-m4",
        0x0,
        4 * MIB,
        0x20000000,
        4 * MIB,
    ),
    "cortex-m7": Core(
        "cortex-m7",
        ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"),
        "mps2-an500",
        "cortex-m7",
        0x0,
        4 * MIB,
        0x20000000,
        4 * MIB,
    ),
    "cortex-m33": Core(
        "cortex-m33",
        ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
        "mps2-an505",
        "cortex-m33",
        0x10000000,
        4 * MIB,
        0x38000000,
        2 * MIB,
    ),
}

_COMMON = (
    "-ffunction-sections",
    "-fdata-sections",
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-fmessage-length=0",
    "-funsigned-char",
    "-fomit-frame-pointer",
    "-DTF_LITE_STATIC_MEMORY",
    "-DTF_LITE_DISABLE_X86_NEON",
    "-DTF_LITE_MCU_DEBUG_LOG",
    "-DKERNELS_OPTIMIZED_FOR_SPEED",
    "-DARM_NN_ENABLE_F16=0",
    "-DARM_NN_ENABLE_F32=0",
)
_CXX = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics")
# TFLM's own helpers for tests, not part of a firmware.
_NOT_LIBRARY = {"test_helpers.cc", "test_helper_custom_ops.cc", "fake_micro_context.cc", "mock_micro_graph.cc"}
# Kernel files every op needs (shape and quantization helpers), besides each op's own file and its `_common`.
_KERNEL_UTILS = ("kernel_util.cc", "micro_tensor_utils.cc")


def check_tools() -> None:
    """The Arm toolchain with newlib and libstdc++, and QEMU's system emulator, or one line naming the packages."""
    missing = [t for t in ("arm-none-eabi-g++", "arm-none-eabi-gcc", "arm-none-eabi-size") if not shutil.which(t)]
    if not shutil.which("qemu-system-arm"):
        missing.append("qemu-system-arm")
    if not missing:
        for lib in ("rdimon.specs", "libstdc++.a"):
            found = subprocess.run(
                ["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", f"-print-file-name={lib}"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            if not os.path.isabs(found):
                missing.append(lib)
    if missing:
        raise McuError(
            f"building firmware needs the Arm toolchain and QEMU ({', '.join(missing)} not found); install the "
            f"Debian packages: apt-get install {PACKAGES}"
        )


def tflm_root() -> Path:
    """`<edgekit cache>/tflm`: the extracted sources and the object caches."""
    from toolkit.remote.wheel import cache_root

    return cache_root() / "tflm"


def tarball() -> Path:
    """The shipped tflite-micro sources (`third_party/` of edgekit's source tree)."""
    path = Path(__file__).resolve().parents[2] / "third_party" / TARBALL
    if not path.is_file():
        raise McuError(
            f"{path} is missing: firmware builds need edgekit's source tree (git clone; pip install -e .), which "
            "ships the TFLM sources"
        )
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One process at a time builds into `path` (a second waits, then finds the work done)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def sources() -> Path:
    """The tflite-micro tree, extracted once from the checked tarball; returns its top folder."""
    import tarfile

    dest = tflm_root() / f"src-{TFLM_COMMIT[:12]}"
    tree = dest / "tflite-micro"
    if (dest / "complete").is_file():
        return tree
    with _locked(dest):
        if (dest / "complete").is_file():
            return tree
        from runtimes.files import sha256_file

        blob = tarball()
        digest = sha256_file(blob)
        if digest != TARBALL_SHA256:
            raise McuError(
                f"{blob} has sha256 {digest[:16]}..., not the shipped {TARBALL_SHA256[:16]}...; restore it: "
                f"git checkout -- third_party/{TARBALL}"
            )
        tmp = Path(tempfile.mkdtemp(prefix=".src-", dir=dest.parent))
        try:
            with tarfile.open(blob) as tar:
                tar.extractall(tmp, filter="data")
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        (dest / "complete").write_text(TFLM_COMMIT + "\n")
    return tree


def includes(src: Path) -> list[str]:
    d = src / DOWNLOADS
    dirs = [src, d, d / "gemmlowp", d / "flatbuffers/include", d / "ruy", d / "cmsis", d / "cmsis_nn"]
    dirs += [d / "cmsis/CMSIS/Core/Include", d / "cmsis_nn/Include"]
    return [f"-I{p}" for p in dirs]


def defines(kernels: str) -> tuple[str, ...]:
    return ("-DCMSIS_NN",) if kernels == "cmsis_nn" else ()


def _core_sources(src: Path) -> list[str]:
    """TFLM's runtime without kernels (sources.inc's MICROLITE_CC_BASE_SRCS, minus its test helpers)."""
    micro = src / "tensorflow/lite/micro"
    subs = ("", "arena_allocator", "memory_planner", "tflite_bridge")
    found = [p for sub in subs for p in (micro / sub).glob("*.cc")]
    skip = ("tensorflow/lite/micro/", "tensorflow/lite/experimental/")
    for p in (src / "tensorflow").rglob("*.c*"):
        if p.suffix in (".cc", ".c") and not p.relative_to(src).as_posix().startswith(skip):
            found.append(p)
    return sorted(
        p.relative_to(src).as_posix() for p in found if not p.name.endswith("_test.cc") and p.name not in _NOT_LIBRARY
    )


def kernel_sources(src: Path, kernels: str, ops: tuple[str, ...]) -> list[str]:
    """The kernel files for `ops` (CMSIS-NN's where it has one, as TFLM's Makefile specializes them), their
    `_common.cc` and the shared helpers; CMSIS-NN's own C sources for the CMSIS-NN set."""
    kdir = src / "tensorflow/lite/micro/kernels"
    dirs = [kdir / "cmsis_nn", kdir] if kernels == "cmsis_nn" else [kdir]
    chosen: set[str] = set()
    for op in ops:
        pattern = re.compile(rf"^TFLMRegistration Register_{re.escape(op)}\(\)", re.MULTILINE)
        files = (p for d in dirs for p in sorted(d.glob("*.cc")) if not p.name.endswith("_test.cc"))
        hit = next((p for p in files if pattern.search(p.read_text())), None)
        if hit is None:
            raise McuError(f"TFLM {TFLM_COMMIT[:7]} has no kernel for op {op}; replace the layer that makes it.")
        chosen.add(hit.relative_to(src).as_posix())
        common = kdir / f"{hit.stem}_common.cc"
        if common.is_file():
            chosen.add(common.relative_to(src).as_posix())
    chosen |= {(kdir / name).relative_to(src).as_posix() for name in _KERNEL_UTILS}
    if kernels == "cmsis_nn":
        nn = src / DOWNLOADS / "cmsis_nn/Source"
        chosen |= {
            p.relative_to(src).as_posix()
            for p in nn.rglob("*.c")
            if not p.name.endswith(("_f16.c", "_f32.c")) and p.name != "arm_nntables_flt.c"
        }
    return sorted(chosen)


@dataclass(frozen=True)
class Library:
    """The compiled TFLM objects for one model's ops on one core and kernel set."""

    objects: tuple[Path, ...]
    cache_dir: Path
    compiled: int  # files compiled by this call (0: all cached)
    seconds: float  # time spent compiling them


def _recipe(core: Core, kernels: str) -> dict[str, object]:
    return {
        "version": RECIPE_VERSION,
        "tflm": TFLM_COMMIT,
        "core": core.name,
        "kernels": kernels,
        "flags": [*core.cflags, *_COMMON, *_CXX, *defines(kernels)],
        "gcc": _gcc_version(),
    }


def _gcc_version() -> str:
    out = subprocess.run(["arm-none-eabi-gcc", "-dumpversion"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def compile_command(src: Path, rel: str, out: Path, core: Core, kernels: str) -> list[str]:
    """gcc for C, g++ for C++; -Os for TFLM's runtime, -O2 for kernels and CMSIS-NN (as TFLM's Makefile)."""
    level = "-O2" if "/kernels/" in rel or rel.startswith(DOWNLOADS) else "-Os"
    lang = ["arm-none-eabi-gcc", "-std=c17"] if rel.endswith(".c") else ["arm-none-eabi-g++", *_CXX]
    flags = [level, *core.cflags, *_COMMON, *defines(kernels), *includes(src)]
    return [*lang, *flags, "-c", str(src / rel), "-o", str(out)]


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd)
    if done.returncode != 0:
        text = done.stderr or done.stdout
        # the compiler's "error:" line, or the linker's first undefined symbol (before collect2's summary)
        lines = [ln for ln in text.splitlines() if "error:" in ln or "undefined reference" in ln]
        lines = [ln for ln in lines if "collect2" not in ln] or lines or text.splitlines()
        raise McuError(f"{what} failed: {(lines[:1] or ['no message'])[0][:300]}")


def library(core: Core, kernels: str, ops: tuple[str, ...], say: Say | None = None) -> Library:
    """TFLM's objects for `ops` on `core` with `kernels` ("cmsis_nn" or "reference"), compiling what the cache
    lacks (in parallel, one file per CPU); `say(what, done, total)` reports each file compiled."""
    src = sources()
    cache = tflm_root() / f"{TFLM_COMMIT[:7]}-{core.name}-{kernels}"
    rels = _core_sources(src) + kernel_sources(src, kernels, ops)
    with _locked(cache):
        marker = cache / "edgekit-tflm.json"
        recipe = _recipe(core, kernels)
        if marker.is_file() and json.loads(marker.read_text()) != recipe:
            shutil.rmtree(cache / "obj", ignore_errors=True)
        cache.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(recipe, indent=1) + "\n")
        objects = {rel: cache / "obj" / (rel + ".o") for rel in rels}
        todo = [rel for rel, obj in objects.items() if not obj.is_file()]
        what = f"TFLM for {core.name} ({kernels} kernels)"
        t0 = time.perf_counter()
        done = 0

        def one(rel: str) -> None:
            out = objects[rel]
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".tmp")
            _run(compile_command(src, rel, tmp, core, kernels), f"compiling {rel}")
            tmp.replace(out)

        if todo:
            if say:
                say(what, 0, len(todo))
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                for _ in pool.map(one, todo):
                    done += 1
                    if say:
                        say(what, done, len(todo))
        return Library(tuple(objects[r] for r in rels), cache, len(todo), time.perf_counter() - t0)


@dataclass(frozen=True)
class Sizes:
    """An image's flash and RAM (bytes), split by who owns the input sections (from the linker's map)."""

    text: int  # arm-none-eabi-size: code and read-only data
    data: int  # initialized data (in flash, copied to RAM)
    bss: int  # zeroed RAM
    flash_model: int  # the model array
    flash_tflm: int  # TFLM, its kernels and CMSIS-NN
    flash_rest: int  # start-up, newlib (stdio through semihosting), the runner
    ram_tflm: int  # TFLM's data and bss (not the arena)
    ram_rest: int  # the rest's data and bss, without the static tensor arena
    arena_buffer: int  # the static arena (the runner's size is chosen, not needed)

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def ram_without_arena(self) -> int:
        return self.ram_tflm + self.ram_rest


_OUT_SECTION = re.compile(r"^(\.\S+)")  # an output section starts in column 0 (its addresses may wrap)
_IN_SECTION = re.compile(r"^ (\.\S+|COMMON)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
_IN_NAME = re.compile(r"^ (\.\S+|COMMON)$")
_IN_REST = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")


def map_sizes(map_text: str, cache_dir: Path) -> dict[tuple[str, str], int]:
    """{(output section, owner): bytes} from a GNU ld map; owner is model, tflm, arena or rest."""
    sizes: dict[tuple[str, str], int] = {}
    out = ""
    pending = ""
    started = False
    for line in map_text.splitlines():
        if line.startswith("Linker script and memory map"):
            started = True
            continue
        if not started:
            continue
        m = _OUT_SECTION.match(line)
        if m:
            out, pending = m.group(1), ""
            continue
        m = _IN_NAME.match(line)
        if m:
            pending = m.group(1)
            continue
        m = _IN_SECTION.match(line)
        name, size, owner_file = (m.group(1), int(m.group(3), 16), m.group(4)) if m else ("", 0, "")
        if not m and pending:
            r = _IN_REST.match(line)
            if r:
                name, size, owner_file = pending, int(r.group(2), 16), r.group(3)
            pending = ""
        if not name or not size:
            continue
        if str(cache_dir) in owner_file:
            owner = "tflm"
        elif "g_model_data" in name or name == ".rodata.g_model_data":
            owner = "model"
        elif "tensor_arena" in name:
            owner = "arena"
        else:
            owner = "rest"
        sizes[(out, owner)] = sizes.get((out, owner), 0) + size
    return sizes


def size_of(elf: Path, map_path: Path, cache_dir: Path) -> Sizes:
    """arm-none-eabi-size's text/data/bss of `elf`, split by owner with its map."""
    done = subprocess.run(["arm-none-eabi-size", "-B", str(elf)], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in done.stdout.splitlines()[1].split()[:3])
    parts = map_sizes(map_path.read_text(errors="replace"), cache_dir)

    def total(owner: str, ram: bool) -> int:
        secs = (".data", ".bss") if ram else tuple({s for s, _ in parts} - {".bss"})
        return sum(v for (s, o), v in parts.items() if o == owner and s in secs)

    model = total("model", ram=False)
    tflm = total("tflm", ram=False)
    arena = sum(v for (s, o), v in parts.items() if o == "arena")
    ram_tflm = total("tflm", ram=True)
    return Sizes(
        text=text,
        data=data,
        bss=bss,
        flash_model=model,
        flash_tflm=tflm,
        flash_rest=text + data - model - tflm,
        ram_tflm=ram_tflm,
        ram_rest=data + bss - ram_tflm - arena,
        arena_buffer=arena,
    )


def linker_script(core: Core, dest: Path) -> Path:
    text = (FIRMWARE_SRC / "mps2.ld").read_text()
    for key, value in {
        "FLASH_ORIGIN": core.flash_origin,
        "FLASH_LENGTH": core.flash_length,
        "RAM_ORIGIN": core.ram_origin,
        "RAM_LENGTH": core.ram_length,
    }.items():
        text = text.replace(f"@{key}@", f"0x{value:x}")
    dest.write_text(text)
    return dest


def link(
    core: Core,
    kernels: str,
    lib: Library,
    firmware_dir: Path,
    main: Path,
    build_dir: Path,
    extra_defines: tuple[str, ...] = (),
) -> tuple[Path, Sizes]:
    """Compile model_data.cc (in `firmware_dir`), `main` and the start-up, and link them with `lib` for the MPS2
    board of `core`; returns the ELF and its sizes."""
    src = sources()
    build_dir.mkdir(parents=True, exist_ok=True)
    objs = []
    units = [firmware_dir / "model_data.cc", main, FIRMWARE_SRC / "startup.c"]
    for unit in units:
        obj = build_dir / (unit.name + ".o")
        lang = ["arm-none-eabi-gcc", "-std=c17"] if unit.suffix == ".c" else ["arm-none-eabi-g++", *_CXX]
        cmd = [*lang, "-Os", *core.cflags, *_COMMON, *defines(kernels), *extra_defines]
        _run([*cmd, *includes(src), f"-I{firmware_dir}", "-c", str(unit), "-o", str(obj)], f"compiling {unit.name}")
        objs.append(obj)
    elf = build_dir / "firmware.elf"
    map_path = build_dir / "firmware.map"
    script = linker_script(core, build_dir / "mps2.ld")
    cmd = ["arm-none-eabi-g++", *core.cflags, "--specs=rdimon.specs", "-Wl,--gc-sections", f"-Wl,-Map={map_path}"]
    cmd += ["-T", str(script), *map(str, objs), *map(str, lib.objects), "-lm", "-o", str(elf)]
    _run(cmd, f"linking the firmware for {core.name}")
    return elf, size_of(elf, map_path, lib.cache_dir)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
