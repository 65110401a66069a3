"""`toolkit.mcu(run_dir)`: the run's full-int8 TFLite model in TensorFlow Lite Micro, sized for microcontrollers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.data.mnist import Mnist
    from toolkit.progress import ProgressCallback
    from toolkit.run.documents import McuDocument


def mcu(
    run_dir: Path | str,
    *,
    artifacts: Sequence[str] | None = None,
    limit: int | None = None,
    data: str | Path | Mnist | None = None,
    progress: ProgressCallback | None = None,
    boards: Sequence[str] | None = None,
    emulated_images: int = 500,
) -> McuDocument:
    """Run each full-int8 TFLite artifact in TFLM: op check, measured arena, flash, parity, boards, firmware.

    Needs the `mcu` extra (`pip install 'edgekit[mcu]'`). Writes `mcu/<artifact>/model_data.h`,
    `model_data.cc`, `main_example.cc` and `mcu.json` into the run, adds `runtime: tflm` rows to parity.json
    when it measured the same images, and returns mcu.json.

    Args:
        artifacts: manifest names (default: every TFLite int8 artifact); a float one is refused in one line.
        limit: the first N test images (default: the whole test split).
        data: the test data: the run's own when None (dataset.json, or shipped MNIST for a reference run);
            else an .npz, a folder of images per class, an MNIST source (see `toolkit.load_data`) or data loaded.
        boards: board keys of `toolkit.mcu.boards.BOARDS` (or "all"): build the firmware with TFLM for each one's
            Cortex-M core (CMSIS-NN and reference kernels), run it on QEMU's MPS2 machine over the first
            `emulated_images` test images, and size those boards with what it measured. Needs the Debian
            packages gcc-arm-none-eabi, libnewlib-arm-none-eabi, libstdc++-arm-none-eabi-newlib, qemu-system-arm.
    """
    from toolkit.mcu.step import mcu_step
    from toolkit.mcu.tflm import load_tflm
    from toolkit.run import layout
    from toolkit.run.lock import run_lock

    load_tflm()
    run = layout.resolve_run_dir(Path(run_dir))
    with run_lock(run):
        return mcu_step(
            run,
            artifact_names=list(artifacts) if artifacts else None,
            limit=limit,
            data=data,
            progress=progress,
            boards=list(boards) if boards else None,
            emulated_images=emulated_images,
        )
