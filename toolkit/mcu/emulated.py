"""Run the firmware of `build.py` on QEMU's MPS2 machines and read what TFLM measured on the emulated core.

Test images reach the firmware through semihosting (`fopen` of a host file), not linked into flash: any
number of images run in one boot and the flash figures stay those of the model and the runtime. QEMU runs
with `-icount shift=0` (one virtual nanosecond per instruction) so SysTick ticks count instructions; the
firmware times a loop of known length to convert ticks to instructions. An instruction count is no latency:
QEMU does not model pipelines, caches, wait states or the flash accelerator.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from toolkit.mcu.build import CORES, FIRMWARE_SRC, Core, Library, Say, Sizes, check_tools, library, link
from toolkit.mcu.tflm import McuError

# The calibration loop (runner.cc): 2 instructions per iteration and 4 around it.
CALIBRATION_EXTRA: Final = 4
INSTRUCTIONS_NOTE: Final = (
    "instructions retired per inference on QEMU (-icount shift=0, SysTick calibrated by a loop of known length): "
    "not a latency (QEMU models no pipeline, cache, memory wait states or flash accelerator)"
)
_LINE = re.compile(r"^edgekit (\w+) ?(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Emulated:
    """One firmware (core + kernel set) built and run on QEMU over the test images."""

    core: Core
    kernels: str
    arena_used_bytes: int
    min_arena_bytes: int
    sizes: Sizes
    outputs: np.ndarray  # raw int8 [N, ...] as the firmware wrote them
    instructions_per_inference: float | None
    stack_bytes: int  # the deepest stack below main (painted region)
    seconds: float  # QEMU's wall time for the whole run (bisection included)
    library: Library
    qemu: str


def qemu_version() -> str:
    out = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else "qemu-system-arm"


def qemu_command(core: Core, elf: Path) -> list[str]:
    return [
        "qemu-system-arm",
        "-M",
        core.machine,
        "-cpu",
        core.cpu,
        "-nographic",
        "-monitor",
        "none",
        "-semihosting",
        "-icount",
        "shift=0",
        "-kernel",
        str(elf),
    ]


def boot(core: Core, elf: Path, workdir: Path, timeout: float) -> str:
    """Run `elf` on QEMU with `workdir` as semihosting's current folder; its console output."""
    try:
        done = subprocess.run(
            qemu_command(core, elf), cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise McuError(f"the firmware did not finish on QEMU {core.machine} within {timeout:.0f} s") from exc
    text = done.stdout + done.stderr
    if done.returncode != 0 or "edgekit done" not in text:
        errors = [m.group(2) for m in _LINE.finditer(text) if m.group(1) == "error"]
        why = f"firmware error {errors[0]}" if errors else f"exit code {done.returncode}"
        last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "no output")
        raise McuError(f"the firmware failed on QEMU {core.machine} ({why}): {last[:200]}")
    return text


def figures(text: str) -> dict[str, list[int]]:
    return {m.group(1): [int(v) for v in m.group(2).split()] for m in _LINE.finditer(text) if m.group(1) != "error"}


def run_emulated(
    core_name: str,
    kernels: str,
    firmware_dir: Path,
    ops: tuple[str, ...],
    native: np.ndarray,
    arena_max: int,
    out_dir: Path,
    say: Say | None = None,
) -> Emulated:
    """Build the runner for `core_name` with `kernels` against the model files in `firmware_dir`, run every row
    of `native` (int8, batch first) on QEMU; keep the ELF in `out_dir`."""
    check_tools()
    core = CORES[core_name]
    lib = library(core, kernels, ops, say)
    with tempfile.TemporaryDirectory(prefix="edgekit-fw-") as tmp:
        work = Path(tmp)
        elf, sizes = link(
            core, kernels, lib, firmware_dir, FIRMWARE_SRC / "runner.cc", work, (f"-DEDGEKIT_ARENA_MAX={arena_max}",)
        )
        (work / "edgekit_in.bin").write_bytes(np.ascontiguousarray(native, dtype=np.int8).tobytes())
        t0 = time.perf_counter()
        text = boot(core, elf, work, timeout=120 + 2.0 * len(native))
        seconds = time.perf_counter() - t0
        got = figures(text)
        raw = np.frombuffer((work / "edgekit_out.bin").read_bytes(), dtype=np.int8)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{core.name}-{kernels}.elf").write_bytes(elf.read_bytes())
    images, ticks = got["images"]
    if images != len(native):
        raise McuError(f"the firmware ran {images} of {len(native)} images on QEMU {core.machine}")
    stack, painted = got["stack_bytes"]
    if stack >= painted:
        raise McuError(f"the firmware used more than the {painted:,} bytes of stack edgekit measures on {core.machine}")
    loop, loop_ticks = got["calibration"]
    per_tick = (2 * loop + CALIBRATION_EXTRA) / loop_ticks if loop_ticks else None
    return Emulated(
        core=core,
        kernels=kernels,
        arena_used_bytes=got["arena_used_bytes"][0],
        min_arena_bytes=got["min_arena_bytes"][0],
        sizes=sizes,
        outputs=raw.reshape(len(native), -1),
        instructions_per_inference=None if per_tick is None or not images else ticks * per_tick / images,
        stack_bytes=stack,
        seconds=seconds,
        library=lib,
        qemu=qemu_version(),
    )
