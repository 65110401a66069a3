"""mcu.json: the run's int8 models in TensorFlow Lite Micro (`edgekit mcu`): ops, arena, flash, parity, boards."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from toolkit.run.documents.base import Document, Part
from toolkit.run.documents.common import CpuInfo
from toolkit.run.documents.parity import ParityData, ParityRow


class McuTensor(Part):
    """The model's input or output as TFLM sees it."""

    name: str | None = Field(default=None, description="The model's name for it (a model with several tensors).")

    shape: list[int]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None


class McuArena(Part):
    """The arena, measured with the host's reference kernels."""

    OPEN: ClassVar[bool] = True  # `parts` names the allocator's categories, which vary between TFLM versions

    min_bytes: int = Field(description="The smallest arena that loads and runs (16-byte search).")
    recommended_bytes: int = Field(description="min_bytes plus the CMSIS-NN margin.")
    recorded_total: int | None = None
    head_bytes: int | None = Field(default=None, description="Activations and per-op scratch.")
    tail_bytes: int | None = Field(default=None, description="Persistent allocations.")
    parts: dict[str, int] = Field(default_factory=dict, description="The recording allocator's categories.")
    measured_with: str
    margin_reason: str


class McuFlash(Part):
    """Flash: the model's bytes; TFLM's own code is cited as a lower bound, not measured."""

    model_bytes: int
    runtime_code_bytes: int | None = Field(default=None, description="Measured TFLM code size (None: not measured).")
    runtime_code_min_bytes: int | None = Field(default=None, description="Cited lower bound for TFLM's core runtime.")
    note: str


class McuOutputParity(Part):
    """One output of a model with several outputs, through TFLM: against LiteRT's kernels and against Keras."""

    output: str
    kind: str
    max_int8_steps_vs_builtin: int = Field(description="Largest |TFLM - LiteRT built-in kernels| on this output.")
    litert_rounding_steps: int = Field(
        description="Largest |LiteRT XNNPACK - built-in| here (at least 1): the allowance."
    )
    max_int8_steps_vs_litert: int
    agreement_litert: float | None = Field(description="Top-1 agreement with LiteRT (classifying kinds), else None.")
    keras_measure: str = Field(description="How the output is compared with Keras (`toolkit.diagnosis.outputs`).")
    keras_value: float
    accuracy: float | None = None
    keras_accuracy: float | None = None
    passed: bool
    failures: list[str]


class McuParity(Part):
    """The test split through TFLM against LiteRT's run of the same file and against Keras."""

    images: int
    accuracy: float | None = Field(description="None for a model with several outputs: see `outputs`.")
    keras_accuracy: float | None
    agreement_litert: float | None
    disagreements_litert: int | None
    near_tie_disagreements_litert: int | None = Field(
        default=None, description="Of those, swaps between outputs LiteRT had within twice litert_rounding_steps."
    )
    max_int8_steps_vs_builtin: int | None = Field(
        default=None,
        description="Largest |TFLM - LiteRT with XNNPACK off| (the built-in kernels TFLM's are ported from).",
    )
    litert_rounding_steps: int | None = Field(
        default=None,
        description="Largest |LiteRT XNNPACK - LiteRT built-in| on these images (at least 1): TFLM's allowance.",
    )
    litert_backend: str | None = None
    agreement_keras: float | None
    disagreements_keras: int | None
    max_int8_steps_vs_litert: int
    passed: bool
    failures: list[str]
    outputs: list[McuOutputParity] | None = Field(
        default=None,
        description="A model with several outputs: each output's figures (above, the per-output fields are "
        "None and max_int8_steps_vs_litert is the largest over the outputs).",
    )


class McuBoardFit(Part):
    """One board of `toolkit.mcu.boards.BOARDS` (a `McuBoard`) against the model: what is left, and whether it fits."""

    board: str
    mcu: str
    core: str
    ram_bytes: int
    flash_bytes: int | None
    ram_left_bytes: int
    flash_left_bytes: int | None
    fits: bool
    source: str
    note: str = ""
    ram_needed_bytes: int | None = Field(default=None, description="The RAM the fit was judged with.")
    flash_needed_bytes: int | None = Field(default=None, description="The flash the fit was judged with.")
    sized_with: str | None = Field(
        default=None,
        description="Where the needed RAM and flash come from: the firmware measured on the emulated core, or "
        "the host estimate (when the board's core was not emulated, and why).",
    )


class McuFirmwareSize(Part):
    """The linked firmware image (arm-none-eabi-size), split by owner with the linker's map (bytes)."""

    text: int
    data: int
    bss: int
    flash_bytes: int = Field(description="text + data: what the image puts in flash.")
    flash_model: int = Field(description="The model array (g_model_data).")
    flash_tflm: int = Field(description="TFLM's runtime, the model's kernels and CMSIS-NN.")
    flash_rest: int = Field(description="Start-up, newlib (stdio through semihosting) and the runner.")
    ram_tflm: int = Field(description="TFLM's own data and bss (the arena aside).")
    ram_rest: int = Field(description="The rest's data and bss, without the static tensor arena.")


class McuEmulated(Part):
    """The firmware built for one core with one kernel set and run on QEMU's MPS2 machine for that core."""

    core: str
    kernels: str = Field(description="cmsis_nn (TFLM's CMSIS-NN kernels) or reference (TFLM's portable kernels).")
    machine: str = Field(description="The QEMU machine and CPU, e.g. mps2-an386 / cortex-m4.")
    qemu: str
    arena_used_bytes: int = Field(description="MicroInterpreter::arena_used_bytes() on the emulated core.")
    min_arena_bytes: int = Field(description="The smallest arena (multiple of 16) in which AllocateTensors succeeds.")
    size: McuFirmwareSize
    stack_bytes: int = Field(
        description="The deepest stack below main over the whole run (TFLM, newlib's stdio over semihosting), "
        "measured by painting 64 KiB under main's frame: an upper bound for TFLM's own."
    )
    ram_needed_bytes: int = Field(description="min_arena_bytes + the image's data and bss + stack_bytes.")
    images: int
    accuracy: float
    keras_accuracy: float
    agreement_litert: float
    disagreements_litert: int
    agreement_keras: float
    disagreements_keras: int
    max_int8_steps_vs_litert: int = Field(description="Largest |emulated - LiteRT (XNNPACK)| in int8 steps.")
    max_int8_steps_vs_builtin: int = Field(description="Largest |emulated - LiteRT built-in kernels| in int8 steps.")
    litert_rounding_steps: int = Field(description="The allowance: LiteRT's own XNNPACK vs built-in (at least 1).")
    max_int8_steps_vs_host_tflm: int = Field(description="Largest |emulated - TFLM on the host (reference kernels)|.")
    passed: bool
    failures: list[str]
    instructions_per_inference: float | None = Field(description="Instructions per image on QEMU: not a latency.")
    instructions_note: str
    wall_seconds: float = Field(description="QEMU's wall time for the run (bisection and all images).")
    library_compiled_files: int = Field(description="TFLM files compiled for this run (0: all from the cache).")
    library_seconds: float = Field(description="Time spent compiling them.")
    elf: str = Field(description="The firmware image, relative to the run directory.")


class McuResult(Part):
    """One artifact in TFLM."""

    artifact: str
    path: str
    sha256: str
    ops: list[str]
    op_count: int
    input: McuTensor
    output: McuTensor
    arena: McuArena
    flash: McuFlash
    parity: McuParity
    parity_row: ParityRow
    parity_rows: list[ParityRow] | None = Field(
        default=None, description="A model with several outputs: one parity row per output (`parity_row`: the first)."
    )
    inputs: list[McuTensor] | None = Field(default=None, description="Every input (several tensors), by TFLM index.")
    outputs: list[McuTensor] | None = Field(default=None, description="Every output (several tensors), by TFLM index.")
    emulated: list[McuEmulated] | None = Field(
        default=None, description="`edgekit mcu --board`: the firmware run on emulated Cortex-M cores."
    )
    boards: list[McuBoardFit]
    boards_sized_with: str
    files: list[str]
    latency: str


class McuDocument(Document):
    """mcu.json: every full-int8 TFLite artifact of a run in TensorFlow Lite Micro."""

    FILE: ClassVar[str] = "mcu.json"
    FIX: ClassVar[str] = "re-run `edgekit mcu`"

    created_utc: str
    cpu: CpuInfo | None = Field(
        default=None, description="The instruction-set class and features of the machine that ran it."
    )
    tflite_micro: str = Field(description="The tflite-micro package version that ran the models.")
    data: ParityData = Field(description="The test images used (as parity.json's `data`).")
    results: list[McuResult]
    passed: bool
    parity_json: str | None = Field(default=None, description="What happened to parity.json's TFLM rows.")
