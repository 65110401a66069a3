"""Microcontrollers: run an int8 `.tflite` in TensorFlow Lite Micro (TFLM) on the host and size it for a board.

`tflm.py` loads a model in TFLM's Python interpreter (the `tflite-micro` package, extra `mcu`) and refuses
float models and ops TFLM lacks; `arena.py` measures the tensor arena; `boards.py` is the table of boards
(RAM, flash, core, and where each figure comes from); `firmware.py` writes `model_data.h/.cc` and an example;
`step.py` is the `mcu` step over a run directory (mcu/ files and mcu.json). `build.py` compiles TFLM (the shipped
sources in `third_party/`, cached per commit, core and kernel set) and links the firmware with the Arm GNU
toolchain; `emulated.py` runs it on QEMU's MPS2 machines (`edgekit mcu --board`); `firmware_src/` holds the
runner, the start-up and the linker script.

May import `runtimes`, `toolkit.data`, `toolkit.model.run_source`, `toolkit.run`, `toolkit.steps`,
`toolkit.remote.wheel` (edgekit's cache folder) and `toolkit.errors`; never Rich, Typer or `toolkit.cli`
(progress goes through the plain callback of `toolkit.progress`). `tflite_micro` loads inside the functions
that need it.
"""
