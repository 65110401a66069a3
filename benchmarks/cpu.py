"""The CPU's instruction-set class: which int8 and float kernels a runtime will pick on this machine.

Int8 results and int8 speed depend on it. On x86-64 without VNNI, ONNX Runtime multiplies u8×s8 pairs with
16-bit saturation (VPMADDUBSW), so a full-range int8 model gives other answers there than on a VNNI CPU;
LiteRT's int8 is slower than its fp32 on an AVX2-only CPU and faster on a VNNI one. Benchmarks and parity
results therefore record the class they were measured on, and comparisons across classes are flagged.

Sources, in order of trust:
- x86-64: CPUID as numpy reads it at import (with the OS support checks, XGETBV), which is also what the
  runtimes' kernel dispatch sees, including under QEMU user-mode; /proc/cpuinfo adds the features numpy does
  not know (AVX-VNNI, AMX) when it agrees with CPUID on the ones both know (under emulation it describes the
  host, not the CPU the process runs on).
- arm64 and 32-bit Arm: the kernel's hardware capabilities (AT_HWCAP/AT_HWCAP2 in /proc/self/auxv), which
  QEMU user-mode emulates for its CPU model; else the "Features" line of /proc/cpuinfo.
"""

from __future__ import annotations

import platform
import struct
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
AUXV = Path("/proc/self/auxv")

# The features that decide kernel choice, per architecture, in the order reports list them.
X86_FEATURES: tuple[str, ...] = ("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx")
ARM64_FEATURES: tuple[str, ...] = ("asimd", "asimddp", "i8mm", "sve", "bf16")
ARMV7_FEATURES: tuple[str, ...] = ("neon", "vfpv4")

# numpy's CPUID feature names for the x86 features it detects.
_NUMPY_X86: dict[str, str] = {
    "sse4.2": "SSE42",
    "avx": "AVX",
    "avx2": "AVX2",
    "fma": "FMA3",
    "avx512f": "AVX512F",
    "avx512_vnni": "AVX512VNNI",
}
# /proc/cpuinfo flag names (Linux) for each x86 feature; "amx" needs both tile and int8 support.
_CPUINFO_X86: dict[str, tuple[str, ...]] = {
    "sse4.2": ("sse4_2",),
    "avx": ("avx",),
    "avx2": ("avx2",),
    "fma": ("fma",),
    "avx512f": ("avx512f",),
    "avx512_vnni": ("avx512_vnni",),
    "avx_vnni": ("avx_vnni",),
    "amx": ("amx_tile", "amx_int8"),
}

# Linux hwcap bits (arch/arm64/include/uapi/asm/hwcap.h, arch/arm/include/uapi/asm/hwcap.h).
AT_HWCAP, AT_HWCAP2 = 16, 26
_ARM64_HWCAP: dict[str, tuple[int, int]] = {  # feature -> (AT_HWCAP or AT_HWCAP2, bit)
    "asimd": (AT_HWCAP, 1),
    "asimddp": (AT_HWCAP, 20),
    "sve": (AT_HWCAP, 22),
    "i8mm": (AT_HWCAP2, 13),
    "bf16": (AT_HWCAP2, 14),
}
_ARMV7_HWCAP: dict[str, tuple[int, int]] = {"neon": (AT_HWCAP, 12), "vfpv4": (AT_HWCAP, 16)}

_ARCH_BY_MACHINE: dict[str, str] = {
    "x86_64": "x86-64",
    "amd64": "x86-64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "armv7",
    "armv8l": "armv7",  # a 32-bit userland on a 64-bit core
    "armv6l": "armv7",
}


@dataclass(frozen=True)
class CpuDescription:
    """What this process's CPU offers the runtimes' kernels.

    Attributes:
        arch: "x86-64", "arm64", "armv7", or `platform.machine()` for anything else.
        isa_class: the kernel class, e.g. "x86-64-avx512-vnni", "x86-64-avx2", "arm64-dotprod" (`isa_class`).
        features: the checked features this CPU has, in `checked` order.
        checked: every feature that was looked for (absent ones are missing, not unknown).
        source: where the features came from: "cpuid", "cpuid+cpuinfo", "hwcap", "cpuinfo" or "none".
        note: set when the sources disagree (e.g. an emulated or masked CPU), else None.
    """

    arch: str
    isa_class: str
    features: tuple[str, ...]
    checked: tuple[str, ...]
    source: str
    note: str | None = None

    @property
    def int8_dot_product(self) -> bool | None:
        """True when the CPU has an int8 dot-product instruction (VNNI/AMX, Arm SDOT/UDOT or I8MM)."""
        if self.source == "none":
            return None
        return bool({"avx512_vnni", "avx_vnni", "amx", "asimddp", "i8mm"} & set(self.features))

    def describe(self) -> str:
        """`x86-64-avx2 (sse4.2 avx avx2 fma)`: the class and its features, for reports."""
        return f"{self.isa_class} ({' '.join(self.features) or 'none of ' + ' '.join(self.checked)})"

    def to_dict(self) -> dict[str, object]:
        return {
            "arch": self.arch,
            "isa_class": self.isa_class,
            "features": list(self.features),
            "checked": list(self.checked),
            "source": self.source,
            "int8_dot_product": self.int8_dot_product,
            "note": self.note,
        }


def arch_name(machine: str | None = None) -> str:
    """`x86-64`, `arm64` or `armv7` for a `platform.machine()` value (default: this one); else it unchanged."""
    raw = machine if machine is not None else platform.machine()
    return _ARCH_BY_MACHINE.get(raw.lower(), raw or "unknown")


def isa_class(arch: str, features: tuple[str, ...]) -> str:
    """The kernel class of a CPU: its architecture and the best tier its features reach.

    Tiers (best first): x86-64: amx, avx512-vnni, avx-vnni, avx512, avx2, avx, sse4.2; arm64: i8mm, dotprod;
    armv7: neon-vfpv4, neon. A CPU below every tier is its bare architecture ("x86-64", "arm64").
    """
    have = set(features)
    tiers: tuple[tuple[str, tuple[str, ...]], ...]
    if arch == "x86-64":
        tiers = (
            ("amx", ("amx",)),
            ("avx512-vnni", ("avx512_vnni",)),
            ("avx-vnni", ("avx_vnni",)),
            ("avx512", ("avx512f",)),
            ("avx2", ("avx2", "fma")),
            ("avx", ("avx",)),
            ("sse4.2", ("sse4.2",)),
        )
    elif arch == "arm64":
        tiers = (("i8mm", ("i8mm",)), ("dotprod", ("asimddp",)))
    elif arch == "armv7":
        tiers = (("neon-vfpv4", ("neon", "vfpv4")), ("neon", ("neon",)))
    else:
        return arch
    for name, needs in tiers:
        if have.issuperset(needs):
            return f"{arch}-{name}"
    return arch


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def cpuinfo_flags(text: str | None = None) -> set[str] | None:
    """The first "flags" (x86) or "Features" (Arm) line of /proc/cpuinfo as a set; None when there is none."""
    if text is None:
        raw = _read(CPUINFO)
        text = raw.decode("utf-8", "replace") if raw is not None else ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return None


def auxv_hwcaps(data: bytes | None = None) -> dict[int, int] | None:
    """AT_HWCAP and AT_HWCAP2 from /proc/self/auxv (native word size); None when it cannot be read."""
    if data is None:
        data = _read(AUXV)
    if not data:
        return None
    word = struct.calcsize("@L")
    usable = len(data) - len(data) % (2 * word)
    out: dict[int, int] = {}
    for key, value in struct.iter_unpack(f"@{'L' * 2}", data[:usable]):
        if key in (AT_HWCAP, AT_HWCAP2):
            out[key] = value
        if key == 0:  # AT_NULL ends the vector
            break
    return out


def _numpy_cpuid() -> dict[str, bool] | None:
    """numpy's runtime CPUID features (its private but long-stable `__cpu_features__`), or None."""
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            features = getattr(__import__(module, fromlist=["__cpu_features__"]), "__cpu_features__", None)
        except Exception:  # an old or broken numpy: fall back to /proc/cpuinfo
            continue
        if isinstance(features, dict):
            return {str(k): bool(v) for k, v in features.items()}
    return None


def _x86(cpuid: dict[str, bool] | None, flags: set[str] | None) -> CpuDescription:
    from_flags = None
    if flags is not None:
        from_flags = {f for f, names in _CPUINFO_X86.items() if all(n in flags for n in names)}
    if cpuid is None:
        found = from_flags or set()
        source = "cpuinfo" if from_flags is not None else "none"
        return _made("x86-64", X86_FEATURES, found, source)
    found = {f for f, key in _NUMPY_X86.items() if cpuid.get(key)}
    if from_flags is None:
        return _made("x86-64", X86_FEATURES, found, "cpuid")
    known = set(_NUMPY_X86)
    if from_flags & known == found:
        return _made("x86-64", X86_FEATURES, found | (from_flags - known), "cpuid+cpuinfo")
    differ = sorted((from_flags ^ found) & known)
    note = (
        f"/proc/cpuinfo and CPUID disagree on {', '.join(differ)} (an emulated or masked CPU); CPUID kept, "
        "avx_vnni and amx not checked"
    )
    return _made("x86-64", X86_FEATURES, found, "cpuid", note, checked=tuple(known))


def _arm(arch: str, hwcap_bits: dict[str, tuple[int, int]], order: tuple[str, ...]) -> CpuDescription:
    caps = auxv_hwcaps()
    if caps and AT_HWCAP in caps:
        found = {f for f, (key, bit) in hwcap_bits.items() if caps.get(key, 0) >> bit & 1}
        return _made(arch, order, found, "hwcap")
    flags = cpuinfo_flags()
    if flags is None:
        return _made(arch, order, set(), "none")
    return _made(arch, order, {f for f in order if f in flags}, "cpuinfo")


def _made(
    arch: str,
    order: tuple[str, ...],
    found: set[str],
    source: str,
    note: str | None = None,
    checked: tuple[str, ...] | None = None,
) -> CpuDescription:
    looked = tuple(f for f in order if checked is None or f in checked)
    features = tuple(f for f in order if f in found)
    return CpuDescription(arch, isa_class(arch, features), features, looked, source, note)


def detect_cpu() -> CpuDescription:
    """This process's CPU: architecture, kernel class and features (never raises; unknown gives source "none")."""
    try:
        arch = arch_name()
        if arch == "x86-64":
            return _x86(_numpy_cpuid(), cpuinfo_flags())
        if arch == "arm64":
            return _arm(arch, _ARM64_HWCAP, ARM64_FEATURES)
        if arch == "armv7":
            return _arm(arch, _ARMV7_HWCAP, ARMV7_FEATURES)
        return CpuDescription(arch, arch, (), (), "none")
    except Exception as exc:  # a description must never stop a benchmark or a parity run
        return CpuDescription(arch_name(), arch_name(), (), (), "none", f"detection failed: {exc}")


def main() -> int:
    """`python -m benchmarks.cpu`: this machine's class and features (`--json` for the record documents hold)."""
    import json
    import sys

    cpu = detect_cpu()
    if "--json" in sys.argv[1:]:
        print(json.dumps(cpu.to_dict(), indent=1))
    else:
        print(cpu.describe() + (f"; note: {cpu.note}" if cpu.note else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
