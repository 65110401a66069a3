"""The report's Microcontrollers section: mcu.json (`edgekit mcu`) into the view model, and its Markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.reports.fmt import DASH, fixed, integer, num, pct

if TYPE_CHECKING:
    from toolkit.reports.model import McuRow
    from toolkit.run.documents import McuDocument


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
            )
        )
    return tuple(rows)


def kib(n: float | None) -> str:
    return DASH if n is None else f"{n / 1024:,.1f} KiB"


def mcu_markdown(rows: tuple[McuRow, ...]) -> list[str]:
    from toolkit.reports.markdown import table

    out = [
        "## Microcontrollers",
        "",
        "From `edgekit mcu`: the int8 model in TensorFlow Lite Micro, run on this host with TFLM's reference "
        "kernels. No microcontroller latency: none was run on a device.",
        "",
    ]
    for r in rows:
        facts = [
            ["arena (measured minimum)", f"{integer(r.arena_min)} B"],
            ["arena recommended (+ CMSIS-NN margin)", f"{integer(r.arena_recommended)} B"],
            ["arena head / tail", f"{integer(r.head_bytes)} B / {integer(r.tail_bytes)} B"],
            ["flash: model", f"{integer(r.model_bytes)} B"],
            ["flash: TFLM code", "≥ 16 KiB core runtime (TFLM docs; not measured)"],
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
                kib(b.ram_bytes),
                kib(b.ram_left_bytes),
                "by module" if b.flash_bytes is None else kib(b.flash_bytes),
                kib(b.flash_left_bytes),
                "yes" if b.fits else "**no**",
            ]
            for b in r.boards
        ]
        out += [
            f"### {r.artifact}",
            "",
            table(["", "value"], facts, "ll"),
            "",
            "Fits on (RAM: the recommended arena; flash: the model bytes + 16 KiB TFLM core runtime):",
            "",
            table(["board", "core", "RAM", "RAM left", "flash", "flash left", "fits"], boards, "llrrrrl"),
            "",
            f"Margin: {r.margin_reason}. Flash: {r.flash_note}. Board figures: "
            + "; ".join(f"{b.board}: {b.source}" for b in r.boards)
            + ".",
            "",
            "Firmware files: " + ", ".join(f"[{f}]({f})" for f in r.files) + ".",
            "",
        ]
    return out
