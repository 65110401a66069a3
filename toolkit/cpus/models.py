"""The CPU classes `edgekit parity --cpu NAME` can emulate: one list of names, QEMU models and what they stand for.

x86-64 models run this machine's own Python under `qemu-x86_64-static -cpu MODEL` (no root needed). arm64
models run in the cached arm64 Debian root that `verify --emulate` uses (root, QEMU_CPU, a matching
/proc/cpuinfo). QEMU's TCG cannot emulate AVX-512, VNNI or AMX, so the x86-64 classes above AVX2 can only be
measured natively; and emulation says nothing about speed. Light on purpose (help texts import it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from toolkit.emulate.boards import BOARDS, Board

X86_64: Final = "x86-64"
ARM64: Final = "arm64"


@dataclass(frozen=True)
class CpuModel:
    """One emulated CPU: its name on the command line, QEMU's model, the class it has and what it stands for.

    `board`: arm64 only, the /proc/cpuinfo shown inside the root (ONNX Runtime needs one that names the core).
    """

    name: str
    arch: str
    qemu_cpu: str
    isa_class: str
    stands_for: str
    board: Board | None = None


def _server(name: str, qemu_cpu: str, core: str, part: str, features: str) -> Board:
    """A /proc/cpuinfo for an arm64 core that no Raspberry Pi has (the Pi-only fields stay neutral)."""
    return Board(name, f"QEMU {qemu_cpu} ({core}-like)", qemu_cpu, core, part, "0x1", 1, features, "0")


_NEOVERSE_N1 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs"
_MAX = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 "
    "sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng"
)
_A53 = "fp asimd evtstrm crc32 cpuid"

# fmt: off
CPU_MODELS: Final[dict[str, CpuModel]] = {m.name: m for m in (
    CpuModel("haswell", X86_64, "Haswell-v4", "x86-64-avx2",
             "AVX2 + FMA without AVX-512 or VNNI: Intel Core 4th-10th generation, AMD Zen 1-3, most x86 servers "
             "before 2019"),
    CpuModel("sandybridge", X86_64, "SandyBridge-v2", "x86-64-avx",
             "AVX without AVX2: Intel Core 2nd-3rd generation, older edge PCs"),
    CpuModel("nehalem", X86_64, "Nehalem-v2", "x86-64-sse4.2",
             "SSE4.2 only: x86-64-v2, Intel Atom/Celeron edge boxes"),
    CpuModel("cortex-a53", ARM64, "cortex-a53", "arm64",
             "Armv8.0 without the dot product, in-order: Raspberry Pi 3 and Zero 2 W on a 64-bit OS",
             _server("cortex-a53", "cortex-a53", "Cortex-A53", "0xd03", _A53)),
    CpuModel("cortex-a72", ARM64, "cortex-a72", "arm64",
             "Armv8.0 without the dot product: Raspberry Pi 4", BOARDS["pi4"]),
    CpuModel("cortex-a76", ARM64, "cortex-a76", "arm64-dotprod",
             "Armv8.2 with the dot product (SDOT/UDOT): Raspberry Pi 5", BOARDS["pi5"]),
    CpuModel("neoverse-n1", ARM64, "neoverse-n1", "arm64-dotprod",
             "Armv8.2 server core with the dot product: AWS Graviton2, Ampere Altra",
             _server("neoverse-n1", "neoverse-n1", "Neoverse-N1", "0xd0c", _NEOVERSE_N1)),
    CpuModel("max", ARM64, "max", "arm64-i8mm",
             "every Arm feature QEMU emulates (SVE, I8MM, BF16): stands for Armv8.6+/Armv9 cores (Graviton3/4)",
             _server("max", "max", "Neoverse-V1", "0xd40", _MAX)),
)}
# fmt: on


def cpu_help() -> str:
    """`x86-64: haswell, … ; arm64: cortex-a72, …` for help texts."""
    by_arch: dict[str, list[str]] = {}
    for model in CPU_MODELS.values():
        by_arch.setdefault(model.arch, []).append(model.name)
    return "; ".join(f"{arch}: {', '.join(names)}" for arch, names in by_arch.items())
