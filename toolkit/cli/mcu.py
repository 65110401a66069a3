"""`edgekit mcu`: the run's int8 model in TensorFlow Lite Micro: arena, flash, ops, parity, boards, firmware files.

Top-level imports stay light (no TensorFlow, no tflite_micro): the work is imported inside the command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.cli.console import out, progress_bar, rich_table
from toolkit.cli.options import (
    RUNS_DIR,
    AllowUnverifiedOpt,
    DataOpt,
    EmulatedImagesOpt,
    Int8ArtifactsOpt,
    LimitOpt,
    McuBoardsOpt,
    RunDirArg,
    RunsDirOpt,
    resolve_run,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from toolkit.run.documents import McuBoardFit, McuDocument, McuEmulated, McuParity


def _kb(n: int | None) -> str:
    return "-" if n is None else f"{n:,} B ({n / 1024:.1f} KiB)"


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f} KiB"


def _print(doc: McuDocument) -> None:
    from rich.markup import escape

    for r in doc.results:
        arena, par, flash = r.arena, r.parity, r.flash
        rows = [
            ["arena (measured minimum)", _kb(arena.min_bytes)],
            ["arena recommended (+ CMSIS-NN margin)", _kb(arena.recommended_bytes)],
            ["  head: activations + per-op scratch", _kb(arena.head_bytes)],
            ["  tail: persistent", _kb(arena.tail_bytes)],
            ["flash: model", _kb(flash.model_bytes)],
            *(
                [["flash: TFLM code", f"≥ {_kb(flash.runtime_code_min_bytes)} (cited, not measured)"]]
                if not r.emulated
                else []
            ),
            ["ops", ", ".join(r.ops)],
            *(_single_rows(par) if par.outputs is None else _output_rows(par)),
            ["parity", "pass" if par.passed else "FAIL: " + "; ".join(par.failures)],
        ]
        title = f"{r.artifact} in TensorFlow Lite Micro (host, reference kernels)"
        out.print(rich_table(title, ["", "value"], rows))
        if r.emulated:
            _print_emulated(r.emulated)
        board_rows = [_board_row(b) for b in r.boards]
        title = (
            "fits on (emulated cores: measured firmware; others: host estimate)"
            if r.emulated
            else "fits on (RAM: recommended arena; flash: model + 16 KiB TFLM core runtime)"
        )
        out.print(
            rich_table(
                title,
                ["board", "core", "RAM needed", "RAM left", "flash needed", "flash left", "fits", "sized"],
                board_rows,
            )
        )
        out.print(f"  {escape(arena.measured_with)}; margin: {escape(arena.margin_reason)}.", highlight=False)
        if r.emulated:
            out.print(f"  Instructions: {escape(r.emulated[0].instructions_note)}.", highlight=False)
            for b in r.boards:
                out.print(f"  {escape(b.board)}: {escape(b.sized_with or '')}.", highlight=False)
        else:
            out.print(f"  flash: {escape(flash.note)}. No microcontroller latency: none was run.", highlight=False)
        out.print(f"  Wrote {escape(', '.join(r.files))}", highlight=False)
    out.print(f"parity.json: {escape(doc.parity_json or '')}", highlight=False)


def _single_rows(par: McuParity) -> list[list[str]]:
    builtin = "–" if par.max_int8_steps_vs_builtin is None else par.max_int8_steps_vs_builtin
    allowed = "–" if par.litert_rounding_steps is None else par.litert_rounding_steps
    return [
        ["TFLM accuracy", f"{par.accuracy or 0:.4f} (reference {par.keras_accuracy or 0:.4f}, {par.images:,} images)"],
        ["top-1 agreement with LiteRT int8", f"{par.agreement_litert or 0:.4f} ({par.disagreements_litert} differ)"],
        ["top-1 agreement with the reference", f"{par.agreement_keras or 0:.4f} ({par.disagreements_keras} differ)"],
        ["max |TFLM - LiteRT| (int8 steps)", str(par.max_int8_steps_vs_litert)],
        [
            "max |TFLM - LiteRT built-in kernels| (int8 steps)",
            f"{builtin} (allowed: {allowed}, LiteRT's own XNNPACK vs built-in)",
        ],
    ]


def _output_rows(par: McuParity) -> list[list[str]]:
    """A model with several outputs: each output against LiteRT's kernels and against Keras."""
    rows = [["images", f"{par.images:,}"]]
    for o in par.outputs or []:
        keras = f"{o.keras_measure} {o.keras_value:.4g}"
        if o.accuracy is not None and o.keras_accuracy is not None:
            keras += f"; accuracy {o.accuracy:.4f} (Keras {o.keras_accuracy:.4f})"
        rows += [
            [f"output {o.output} ({o.kind}) vs Keras", keras],
            [
                f"output {o.output}: max |TFLM - LiteRT built-in| (int8 steps)",
                f"{o.max_int8_steps_vs_builtin} (allowed: {o.litert_rounding_steps}); vs XNNPACK "
                f"{o.max_int8_steps_vs_litert}"
                + ("" if o.agreement_litert is None else f"; top-1 agreement {o.agreement_litert:.4f}"),
            ],
        ]
    return rows


def _print_emulated(runs: list[McuEmulated]) -> None:
    """One column per firmware run on QEMU (core x kernel set)."""
    head = ["", *(f"{e.core} {e.kernels}" for e in runs)]

    def row(label: str, cell: Callable[[McuEmulated], str]) -> list[str]:
        return [label, *(cell(e) for e in runs)]

    rows = [
        row("QEMU machine", lambda e: e.machine),
        row("arena used (arena_used_bytes)", lambda e: _kb(e.arena_used_bytes)),
        row("smallest arena that allocates", lambda e: _kb(e.min_arena_bytes)),
        row("flash: model", lambda e: _kb(e.size.flash_model)),
        row("flash: TFLM + kernels", lambda e: _kb(e.size.flash_tflm)),
        row("flash: the rest (start-up, newlib, runner)", lambda e: _kb(e.size.flash_rest)),
        row("flash in all (text + data)", lambda e: _kb(e.size.flash_bytes)),
        row("RAM besides the arena (data + bss)", lambda e: _kb(e.size.ram_tflm + e.size.ram_rest)),
        row("stack (deepest, painted)", lambda e: _kb(e.stack_bytes)),
        row("RAM needed (arena + data + bss + stack)", lambda e: _kb(e.ram_needed_bytes)),
        row("images", lambda e: f"{e.images:,}"),
        row("accuracy (Keras)", lambda e: f"{e.accuracy:.4f} ({e.keras_accuracy:.4f})"),
        row("top-1 agreement with LiteRT", lambda e: f"{e.agreement_litert:.4f} ({e.disagreements_litert} differ)"),
        row("top-1 agreement with Keras", lambda e: f"{e.agreement_keras:.4f} ({e.disagreements_keras} differ)"),
        row(
            "max int8 steps vs LiteRT built-in",
            lambda e: f"{e.max_int8_steps_vs_builtin} (≤ {e.litert_rounding_steps})",
        ),
        row("max int8 steps vs LiteRT XNNPACK", lambda e: str(e.max_int8_steps_vs_litert)),
        row("max int8 steps vs TFLM on the host", lambda e: str(e.max_int8_steps_vs_host_tflm)),
        row(
            "instructions per inference (not latency)",
            lambda e: "-" if e.instructions_per_inference is None else f"{e.instructions_per_inference:,.0f}",
        ),
        row("QEMU wall time", lambda e: f"{e.wall_seconds:.1f} s"),
        row(
            "TFLM build",
            lambda e: (
                "cached"
                if not e.library_compiled_files
                else f"{e.library_compiled_files} files, {e.library_seconds:.0f} s"
            ),
        ),
        row("parity", lambda e: "pass" if e.passed else "FAIL: " + "; ".join(e.failures)),
    ]
    out.print(rich_table("firmware on emulated Cortex-M (TFLM built with the Arm GNU toolchain)", head, rows))


def _board_row(board: McuBoardFit) -> list[str]:
    flash = "by module" if board.flash_bytes is None else _kib(board.flash_bytes)
    measured = (board.sized_with or "").startswith("measured")
    return [
        board.board,
        board.core,
        f"{_kib(board.ram_needed_bytes)} of {_kib(board.ram_bytes)}",
        _kib(board.ram_left_bytes),
        f"{_kib(board.flash_needed_bytes)} of {flash}",
        _kib(board.flash_left_bytes),
        "yes" if board.fits else "no",
        "measured" if measured else "host estimate",
    ]


def mcu(
    run_dir: RunDirArg = None,
    runs_dir: RunsDirOpt = RUNS_DIR,
    artifact: Int8ArtifactsOpt = None,
    limit: LimitOpt = None,
    data: DataOpt = None,
    allow_unverified: AllowUnverifiedOpt = False,
    board: McuBoardsOpt = None,
    emulated_images: EmulatedImagesOpt = 500,
) -> None:
    """Run the int8 model in TensorFlow Lite Micro: op check, arena, flash, parity and which boards it fits.

    With --board (e.g. [b]edgekit mcu runs/latest --board nano33ble[/]): also builds the firmware with TFLM
    (CMSIS-NN and reference kernels) for the board's Cortex-M core, runs it on QEMU's MPS2 machine and
    reports the arena, flash, stack and parity measured there.

    Measures the smallest tensor arena (TFLM reference kernels, on this host), checks every test image
    against LiteRT and Keras, and writes mcu/<artifact>/model_data.h, model_data.cc, main_example.cc and
    mcu.json. Needs the `mcu` extra: pip install 'edgekit\\[mcu]'.
    Example: [b]edgekit mcu runs/latest[/]
    """
    import toolkit
    from toolkit.cli.show import _load_data

    run = resolve_run(run_dir, runs_dir)
    dataset = _load_data(data, allow_unverified, run)
    with progress_bar() as progress:
        doc = toolkit.mcu(
            run,
            artifacts=artifact,
            limit=limit,
            data=dataset,
            progress=progress,
            boards=board,
            emulated_images=emulated_images,
        )
    _print(doc)
