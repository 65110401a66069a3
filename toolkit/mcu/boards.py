"""Common microcontroller boards: RAM, flash and core, each with the document the figure comes from.

KB here is 1,024 bytes, as in the vendors' datasheets. Only what the cited document states is listed; flash
that depends on the module fitted is left as None and said so. `emulated_core` names the QEMU core
(`toolkit.mcu.build.CORES`) that runs the board's firmware for `edgekit mcu --board`; a board without one says
why in `not_emulated`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.run.documents import McuBoardFit

KIB = 1024


@dataclass(frozen=True)
class McuBoard:
    """A microcontroller board: its RAM, flash and core (not a single-board computer: `toolkit.emulate.boards`)."""

    name: str
    mcu: str
    core: str
    ram_bytes: int
    flash_bytes: int | None  # None: depends on the module or external chip fitted
    source: str
    note: str = ""
    key: str = ""  # what `edgekit mcu --board` takes
    emulated_core: str | None = None
    not_emulated: str = ""


BOARDS: tuple[McuBoard, ...] = (
    McuBoard(
        name="Arduino Nano 33 BLE Sense",
        mcu="nRF52840",
        core="Cortex-M4F, 64 MHz",
        ram_bytes=256 * KIB,
        flash_bytes=1024 * KIB,
        source="Arduino Nano 33 BLE Sense product page (docs.arduino.cc); Nordic nRF52840 Product Specification",
        key="nano33ble",
        emulated_core="cortex-m4",
    ),
    McuBoard(
        name="STM32F746G-DISCO",
        mcu="STM32F746NG",
        core="Cortex-M7, 216 MHz",
        ram_bytes=320 * KIB,
        flash_bytes=1024 * KIB,
        source="ST STM32F745xx/STM32F746xx datasheet (DS10916): 1 MB flash, 320 KB SRAM incl. 64 KB DTCM",
        note="plus 16 KB ITCM RAM, not counted",
        key="stm32f746g-disco",
        emulated_core="cortex-m7",
    ),
    McuBoard(
        name="nRF5340 DK",
        mcu="nRF5340",
        core="Cortex-M33 (application core), 128 MHz",
        ram_bytes=512 * KIB,
        flash_bytes=1024 * KIB,
        source="Nordic nRF5340 Product Specification: application core with 1 MB flash and 512 KB RAM",
        note="the network core's own 256 KB flash and 64 KB RAM not counted",
        key="nrf5340dk",
        emulated_core="cortex-m33",
    ),
    McuBoard(
        name="Raspberry Pi Pico",
        mcu="RP2040",
        core="dual Cortex-M0+, 133 MHz",
        ram_bytes=264 * KIB,
        flash_bytes=2048 * KIB,
        source="Raspberry Pi Pico datasheet; RP2040 datasheet (264 KB on-chip SRAM, 2 MB external QSPI flash on the "
        "board)",
        note="Cortex-M0+: no FPU, no DSP instructions",
        key="pico",
        not_emulated="QEMU 7.2 has no Cortex-M0+ machine (its only ARMv6-M board, microbit, has 16 KB RAM)",
    ),
    McuBoard(
        name="ESP32-S3 (DevKitC-1)",
        mcu="ESP32-S3",
        core="dual Xtensa LX7, 240 MHz",
        ram_bytes=512 * KIB,
        flash_bytes=None,
        source="Espressif ESP32-S3 Series datasheet (512 KB SRAM; flash is external, in the module)",
        note="flash depends on the module (ESP32-S3-WROOM-1: 4 to 16 MB); optional PSRAM not counted",
        key="esp32s3",
        not_emulated="an Xtensa core: Debian's QEMU has no Xtensa ESP32-S3 machine (Espressif's QEMU fork does)",
    ),
)


def find_board(name: str) -> McuBoard:
    """The board `name` names (its key, or its name in any case), or a one-line error listing the keys."""
    from toolkit.mcu.tflm import McuError

    for board in BOARDS:
        if name.lower() in (board.key, board.name.lower()):
            return board
    raise McuError(f"no board {name!r}; choose one of: {', '.join(b.key for b in BOARDS)} (or all)")


def emulated_boards(names: list[str]) -> list[McuBoard]:
    """The boards `--board` names ("all": every board whose core QEMU emulates); refuses one it cannot run."""
    from toolkit.mcu.tflm import McuError

    if any(n.lower() == "all" for n in names):
        return [b for b in BOARDS if b.emulated_core]
    chosen = [find_board(n) for n in names]
    for board in chosen:
        if board.emulated_core is None:
            runs = ", ".join(b.key for b in BOARDS if b.emulated_core)
            raise McuError(f"{board.name} cannot be emulated here: {board.not_emulated}; boards that can: {runs}")
    return list(dict.fromkeys(chosen))


def fits(arena_bytes: int, flash_needed: int, board: McuBoard, sized_with: str | None = None) -> McuBoardFit:
    """Whether a model needing `arena_bytes` of RAM and `flash_needed` of flash fits `board`, and by how much.

    RAM headroom is what the arena (or, when measured on an emulated core, the firmware's RAM) leaves for the
    stack, the application and the runtime's globals.
    """
    from toolkit.run.documents import McuBoardFit

    ram_left = board.ram_bytes - arena_bytes
    flash_left = None if board.flash_bytes is None else board.flash_bytes - flash_needed
    return McuBoardFit(
        board=board.name,
        mcu=board.mcu,
        core=board.core,
        ram_bytes=board.ram_bytes,
        flash_bytes=board.flash_bytes,
        ram_left_bytes=ram_left,
        flash_left_bytes=flash_left,
        fits=ram_left >= 0 and (flash_left is None or flash_left >= 0),
        source=board.source,
        note=board.note,
        ram_needed_bytes=arena_bytes,
        flash_needed_bytes=flash_needed,
        sized_with=sized_with,
    )
