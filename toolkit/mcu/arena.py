"""The tensor arena a model needs in TFLM: measured by search, split by TFLM's recording allocator.

Measured with the host's reference kernels (the `tflite-micro` wheel). Optimized kernels (CMSIS-NN on
Cortex-M) request their own per-op scratch buffers (e.g. im2col buffers for convolutions), which the
reference kernels do not; hence the recommended margin below.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from toolkit.mcu.tflm import McuError, TflmModel, try_arena

ALIGN = 16  # TFLM aligns arena allocations to 16 bytes; the search steps by that much.
# Below a few hundred bytes the tflite-micro wheel crashes (segfault) while placing its own allocator in the
# arena instead of failing; no model fits in 1 KiB anyway, so the search never tries less.
FLOOR = 1024
# A rule of thumb, not a measurement: CMSIS-NN's conv/depthwise/fully-connected kernels ask for scratch
# buffers the reference kernels do not, and their size depends on the CMSIS-NN version and the core's
# extensions (DSP/MVE). 25 % plus 1 KiB covers them for small CNNs; check `arena_used_bytes()` on the board.
CMSIS_NN_MARGIN = 0.25
CMSIS_NN_EXTRA = 1024
MARGIN_REASON = (
    "CMSIS-NN kernels (Cortex-M) request per-op scratch buffers (im2col for convolutions) that the host's "
    "reference kernels do not; 25 % + 1 KiB is a rule of thumb, not a measurement: confirm with "
    "MicroInterpreter::arena_used_bytes() on the board"
)
_TOTAL = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_PART = re.compile(r"'([^']+)' used (\d+) bytes with alignment overhead \(requested (\d+) bytes for (\d+)")


@dataclass(frozen=True)
class Arena:
    """The measured arena and its recorded split (bytes)."""

    min_bytes: int  # the smallest arena (multiple of 16) that allocates and runs one image
    recommended_bytes: int  # min_bytes with the CMSIS-NN margin, rounded up to 16
    recorded_total: int | None  # what the recording allocator reports (head + tail)
    head_bytes: int | None  # non-persistent: activation tensors and per-op scratch, planned to overlap
    tail_bytes: int | None  # persistent: tensor structs, quantization data, kernels' persistent buffers
    parts: dict[str, int] = field(default_factory=dict)  # allocator's categories → bytes used
    measured_with: str = "TFLM reference kernels on the host (x86-64), tflite-micro Python interpreter"
    margin_reason: str = MARGIN_REASON

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_allocations(text: str) -> tuple[dict[str, int], dict[str, int]]:
    """(totals {total, head, tail}, categories {name: bytes}) from `print_allocations` output."""
    totals = {m.group(1): int(m.group(2)) for m in _TOTAL.finditer(text)}
    parts = {m.group(1): int(m.group(2)) for m in _PART.finditer(text)}
    return totals, parts


def find_min_arena(data: bytes, x: np.ndarray | list[np.ndarray], hint: int) -> int:
    """The smallest arena (a multiple of ALIGN) in which the model allocates and runs `x[:1]`."""
    hi = max(FLOOR, -(-hint // ALIGN) * ALIGN)
    while not try_arena(data, x, hi):
        hi *= 2
        if hi > 64 * 1024 * 1024:
            raise McuError("the model does not run in TFLM even with a 64 MiB arena; check it loads at all.")
    lo = FLOOR - ALIGN  # invariant: lo fails (or is below the floor, never tried), hi runs
    while hi - lo > ALIGN:
        mid = (lo + hi) // 2 // ALIGN * ALIGN
        if mid <= lo:
            break
        if try_arena(data, x, mid):
            hi = mid
        else:
            lo = mid
    return hi


def recommended(min_bytes: int) -> int:
    """The arena to build with: the measured minimum plus the CMSIS-NN margin, rounded up to 16 bytes."""
    raw = int(min_bytes * (1 + CMSIS_NN_MARGIN)) + CMSIS_NN_EXTRA
    return -(-raw // ALIGN) * ALIGN


def measure_arena(data: bytes, name: str, x: np.ndarray | list[np.ndarray], outputs: int = 1) -> Arena:
    """Run one image (one row of each input, for a list) with a generous arena to record the split, then search
    for the smallest arena."""
    model = TflmModel(data, name, arena_size=max(len(data) * 2, 1 << 20))
    if isinstance(x, list):
        model.run_all([feed[:1] for feed in x], outputs)
    else:
        model.run(x[:1])
    totals, parts = parse_allocations(model.allocations())
    min_bytes = find_min_arena(data, x, totals.get("total", len(data)))
    return Arena(
        min_bytes=min_bytes,
        recommended_bytes=recommended(min_bytes),
        recorded_total=totals.get("total"),
        head_bytes=totals.get("head"),
        tail_bytes=totals.get("tail"),
        parts=parts,
    )
