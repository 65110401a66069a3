"""The boards `edgekit verify --emulate` imitates: the one list of their names, cores and /proc/cpuinfo.

The CLI's `--emulate` choice, its help text and the emulated run all read `BOARDS`; adding a board
here adds it everywhere. Light on purpose (the CLI imports it at start-up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Board:
    """A board emulated by QEMU user-mode: its core for QEMU_CPU and what its /proc/cpuinfo says.

    `cpu_part`, `cpu_variant`, `cpu_revision` and `features` are the board's own /proc/cpuinfo values
    (Raspberry Pi OS 64-bit, or 32-bit for an `armhf` board); `revision_code` is the Pi's board revision.
    `arch` is the Debian architecture of its root: `arm64` (the full install) or `armhf` (32-bit ARM:
    the TFLite-only install, `toolkit.remote.lite`).
    """

    name: str
    model: str
    qemu_cpu: str
    core: str
    cpu_part: str
    cpu_variant: str
    cpu_revision: int
    features: str
    revision_code: str
    arch: str = "arm64"

    @property
    def midr(self) -> int:
        """The core's MIDR_EL1 (implementer Arm, variant, architecture 0xf, part, revision), as Linux shows it in
        /sys/devices/system/cpu/cpuN/regs/identification/midr_el1."""
        return (
            0x41 << 24 | int(self.cpu_variant, 16) << 20 | 0xF << 16 | int(self.cpu_part, 16) << 4 | self.cpu_revision
        )

    @property
    def machine(self) -> str:
        """What `uname -m` prints on the board."""
        return "armv7l" if self.arch == "armhf" else "aarch64"

    def cpuinfo(self, cpus: Sequence[int] = (0, 1, 2, 3)) -> str:
        """A /proc/cpuinfo like the board's (Raspberry Pi OS 64- or 32-bit), naming the emulation in `Model`.

        `cpus`: the processor numbers to list (a Pi has 0-3; under QEMU, the host CPUs it may use).
        """
        v7 = self.arch == "armhf"  # a 64-bit core running a 32-bit kernel says ARMv7
        head = "model name\t: ARMv7 Processor rev 4 (v7l)\nBogoMIPS\t: 38.40\n" if v7 else "BogoMIPS\t: 108.00\n"
        blocks = [
            f"processor\t: {i}\n"
            f"{head}"
            f"Features\t: {self.features}\n"
            "CPU implementer\t: 0x41\n"
            f"CPU architecture: {7 if v7 else 8}\n"
            f"CPU variant\t: {self.cpu_variant}\n"
            f"CPU part\t: {self.cpu_part}\n"
            f"CPU revision\t: {self.cpu_revision}\n"
            for i in cpus
        ]
        tail = (
            ("Hardware\t: BCM2835\n" if v7 else "") + f"Revision\t: {self.revision_code}\n"
            "Serial\t\t: 0000000000000000\n"
            f"Model\t\t: {self.model} (QEMU {self.qemu_cpu} emulation)\n"
        )
        return "\n".join(blocks) + "\n" + tail


_PI4_FEATURES: Final = "fp asimd evtstrm crc32 cpuid"
# Raspberry Pi OS 32-bit on a Pi 3 (Cortex-A53 in AArch32). QEMU's arm user-mode has no A53: cortex-a7 is
# the ARMv7 core with the same NEON/VFPv4/idiv that armv7l wheels are built for.
_PI3_FEATURES: Final = "half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32"
_PI5_FEATURES: Final = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
)
# One row a board (formatted by hand: a row reads like /proc/cpuinfo's fields, in the Board's order).
# fmt: off
BOARDS: Final[dict[str, Board]] = {b.name: b for b in (
    Board("pi3", "Raspberry Pi 3 Model B Rev 1.2", "cortex-a7", "Cortex-A53", "0xd03", "0x0", 4,
          _PI3_FEATURES, "a02082", arch="armhf"),
    Board("pi4", "Raspberry Pi 4 Model B Rev 1.4", "cortex-a72", "Cortex-A72", "0xd08", "0x0", 3, _PI4_FEATURES,
          "d03114"),
    Board("pi5", "Raspberry Pi 5 Model B Rev 1.0", "cortex-a76", "Cortex-A76", "0xd0b", "0x4", 1, _PI5_FEATURES,
          "d04170"),
)}
# fmt: on


def board_help() -> str:
    """`pi4: cortex-a72, pi5: cortex-a76`: the boards and their QEMU CPUs, for help texts."""
    return ", ".join(f"{b.name}: {b.qemu_cpu}" for b in BOARDS.values())
