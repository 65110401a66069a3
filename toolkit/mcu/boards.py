"""Common microcontroller boards: RAM, flash and core, each with the document the figure comes from.

KB here is 1,024 bytes, as in the vendors' datasheets. Only what the cited document states is listed; flash
that depends on the module fitted is left as None and said so.
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


BOARDS: tuple[McuBoard, ...] = (
    McuBoard(
        name="Arduino Nano 33 BLE Sense",
        mcu="nRF52840",
        core="Cortex-M4F, 64 MHz",
        ram_bytes=256 * KIB,
        flash_bytes=1024 * KIB,
        source="Arduino Nano 33 BLE Sense product page (docs.arduino.cc); Nordic nRF52840 Product Specification",
    ),
    McuBoard(
        name="STM32F746G-DISCO",
        mcu="STM32F746NG",
        core="Cortex-M7, 216 MHz",
        ram_bytes=320 * KIB,
        flash_bytes=1024 * KIB,
        source="ST STM32F745xx/STM32F746xx datasheet (DS10916): 1 MB flash, 320 KB SRAM incl. 64 KB DTCM",
        note="plus 16 KB ITCM RAM, not counted",
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
    ),
    McuBoard(
        name="ESP32-S3 (DevKitC-1)",
        mcu="ESP32-S3",
        core="dual Xtensa LX7, 240 MHz",
        ram_bytes=512 * KIB,
        flash_bytes=None,
        source="Espressif ESP32-S3 Series datasheet (512 KB SRAM; flash is external, in the module)",
        note="flash depends on the module (ESP32-S3-WROOM-1: 4 to 16 MB); optional PSRAM not counted",
    ),
)


def fits(arena_bytes: int, flash_needed: int, board: McuBoard) -> McuBoardFit:
    """Whether a model needing `arena_bytes` of RAM and `flash_needed` of flash fits `board`, and by how much.

    RAM headroom is what the arena leaves for the stack, the application and the runtime's globals.
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
    )
