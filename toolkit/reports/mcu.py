"""The report's Microcontrollers section: mcu.json (`edgekit mcu`) into the view model, and its Markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.reports.fmt import DASH, fixed, integer, num, pct

if TYPE_CHECKING:
    from toolkit.reports.model import McuRow
    from toolkit.run.documents import McuDocument, McuEmulated


def build_mcu(doc: McuDocument) -> tuple[McuRow, ...]:
    """One `McuRow` per artifact of mcu.json."""
    from toolkit.reports.model import McuRow

    rows = []
    for r in doc.results:
        arena, par, flash = r.arena, r.parity, r.flash
        rows.append(
            McuRow(
                artifact=r.artifact,
                ops=tuple(r.ops),
                arena_min=arena.min_bytes,
                arena_recommended=arena.recommended_bytes,
                head_bytes=arena.head_bytes,
                tail_bytes=arena.tail_bytes,
                model_bytes=flash.model_bytes,
                images=par.images,
                accuracy=num(par.accuracy),
                agreement_litert=num(par.agreement_litert),
                agreement_keras=num(par.agreement_keras),
                max_int8_steps=par.max_int8_steps_vs_litert,
                passed=par.passed,
                failures=tuple(par.failures),
                boards=tuple(r.boards),
                files=tuple(r.files),
                margin_reason=arena.margin_reason,
                flash_note=flash.note,
                emulated=tuple(r.emulated or ()),
                sized_with=r.boards_sized_with,
            )
        )
    return tuple(rows)


def kib(n: float | None) -> str:
    return DASH if n is None else f"{n / 1024:,.1f} KiB"


def emulated_facts(runs: tuple[McuEmulated, ...]) -> tuple[list[str], list[list[str]]]:
    """The firmware runs on QEMU as a table: one column per core and kernel set (header, rows)."""
    head = ["", *(f"{e.core} {e.kernels}" for e in runs)]

    def row(label: str, cells: list[str]) -> list[str]:
        return [label, *cells]

    def b(n: int) -> str:
        return f"{integer(n)} B"

    rows = [
        row("QEMU machine", [e.machine for e in runs]),
        row("arena used (arena_used_bytes)", [b(e.arena_used_bytes) for e in runs]),
        row("smallest arena that allocates", [b(e.min_arena_bytes) for e in runs]),
        row("flash: model", [b(e.size.flash_model) for e in runs]),
        row("flash: TFLM + kernels", [b(e.size.flash_tflm) for e in runs]),
        row("flash: the rest (start-up, newlib, runner)", [b(e.size.flash_rest) for e in runs]),
        row("flash in all (text + data)", [b(e.size.flash_bytes) for e in runs]),
        row("stack (deepest, painted)", [b(e.stack_bytes) for e in runs]),
        row("RAM needed (arena + data + bss + stack)", [b(e.ram_needed_bytes) for e in runs]),
        row("images", [integer(e.images) for e in runs]),
        row("accuracy (Keras)", [f"{pct(e.accuracy)} ({pct(e.keras_accuracy)})" for e in runs]),
        row(
            "top-1 agreement with LiteRT", [f"{fixed(e.agreement_litert, 4)} ({e.disagreements_litert})" for e in runs]
        ),
        row("top-1 agreement with Keras", [f"{fixed(e.agreement_keras, 4)} ({e.disagreements_keras})" for e in runs]),
        row(
            "max int8 steps vs LiteRT built-in (allowed)",
            [f"{e.max_int8_steps_vs_builtin} ({e.litert_rounding_steps})" for e in runs],
        ),
        row("max int8 steps vs TFLM on the host", [str(e.max_int8_steps_vs_host_tflm) for e in runs]),
        row(
            "instructions per inference (not latency)",
            [DASH if e.instructions_per_inference is None else integer(e.instructions_per_inference) for e in runs],
        ),
        row("parity", ["pass" if e.passed else "FAIL " + "; ".join(e.failures) for e in runs]),
    ]
    return head, rows


def mcu_markdown(rows: tuple[McuRow, ...]) -> list[str]:
    from toolkit.reports.markdown import table

    out = [
        "## Microcontrollers",
        "",
        "From `edgekit mcu`: the int8 model in TensorFlow Lite Micro, run on this host with TFLM's reference "
        "kernels"
        + (
            ", and as firmware built for Cortex-M cores and run on QEMU's MPS2 machines (`--board`). No "
            "microcontroller latency: QEMU counts instructions, it times no device."
            if any(r.emulated for r in rows)
            else ". No microcontroller latency: none was run on a device."
        ),
        "",
    ]
    for r in rows:
        facts = [
            ["arena (measured minimum)", f"{integer(r.arena_min)} B"],
            ["arena recommended (+ CMSIS-NN margin)", f"{integer(r.arena_recommended)} B"],
            ["arena head / tail", f"{integer(r.head_bytes)} B / {integer(r.tail_bytes)} B"],
            ["flash: model", f"{integer(r.model_bytes)} B"],
            *(
                [["flash: TFLM code", "≥ 16 KiB core runtime (TFLM docs; not measured)"]]
                if not r.emulated
                else [["flash: TFLM code", "measured on the emulated cores (below)"]]
            ),
            ["ops", ", ".join(r.ops) or DASH],
            ["accuracy", f"{pct(r.accuracy)} on {integer(r.images)} images"],
            ["top-1 agreement with LiteRT int8", fixed(r.agreement_litert, 4)],
            ["top-1 agreement with Keras", fixed(r.agreement_keras, 4)],
            ["max difference from LiteRT (int8 steps)", integer(r.max_int8_steps)],
            ["parity", "pass" if r.passed else "**FAIL** " + "; ".join(r.failures)],
        ]
        boards = [
            [
                b.board,
                b.core,
                kib(b.ram_needed_bytes),
                kib(b.ram_bytes),
                kib(b.flash_needed_bytes),
                "by module" if b.flash_bytes is None else kib(b.flash_bytes),
                "yes" if b.fits else "**no**",
                "measured" if (b.sized_with or "").startswith("measured") else "host estimate",
            ]
            for b in r.boards
        ]
        emulated: list[str] = []
        if r.emulated:
            head, facts_emu = emulated_facts(r.emulated)
            emulated = [
                "Firmware on emulated Cortex-M cores (TFLM built with the Arm GNU toolchain, run on QEMU):",
                "",
                table(head, facts_emu, "l" + "r" * len(r.emulated)),
                "",
                f"Instructions: {r.emulated[0].instructions_note}.",
                "",
            ]
        out += [
            f"### {r.artifact}",
            "",
            table(["", "value"], facts, "ll"),
            "",
            *emulated,
            f"Fits on ({r.sized_with}):",
            "",
            table(["board", "core", "RAM needed", "RAM", "flash needed", "flash", "fits", "sized"], boards, "llrrrrll"),
            "",
            *(f"- {b.board}: {b.sized_with}." for b in r.boards if b.sized_with),
            "",
            f"Margin: {r.margin_reason}. Flash: {r.flash_note}. Board figures: "
            + "; ".join(f"{b.board}: {b.source}" for b in r.boards)
            + ".",
            "",
            "Firmware files: " + ", ".join(f"[{f}]({f})" for f in r.files) + ".",
            "",
        ]
    return out
