"""The report's Microcontrollers section: mcu.json (`edgekit mcu`) into the view model, and its Markdown."""

from __future__ import annotations

from typing import Any

from toolkit.reports.fmt import DASH, as_dict, as_list, fixed, integer, num, pct

Doc = dict[str, Any]


def build_mcu(doc: Doc) -> tuple[Any, ...]:
    """One `McuRow` per artifact of mcu.json (missing fields become None, never an exception)."""
    from toolkit.reports.model import McuBoard, McuRow

    rows = []
    for r in map(as_dict, as_list(as_dict(doc).get("results"))):
        arena, par, flash = as_dict(r.get("arena")), as_dict(r.get("parity")), as_dict(r.get("flash"))
        boards = tuple(
            McuBoard(
                board=str(b.get("board", "?")),
                core=str(b.get("core", "")),
                ram_bytes=num(b.get("ram_bytes")),
                ram_left_bytes=num(b.get("ram_left_bytes")),
                flash_bytes=num(b.get("flash_bytes")),
                flash_left_bytes=num(b.get("flash_left_bytes")),
                fits=bool(b.get("fits")),
                source=str(b.get("source", "")),
            )
            for b in map(as_dict, as_list(r.get("boards")))
        )
        rows.append(
            McuRow(
                artifact=str(r.get("artifact", "?")),
                ops=tuple(str(o) for o in as_list(r.get("ops"))),
                arena_min=num(arena.get("min_bytes")),
                arena_recommended=num(arena.get("recommended_bytes")),
                head_bytes=num(arena.get("head_bytes")),
                tail_bytes=num(arena.get("tail_bytes")),
                model_bytes=num(flash.get("model_bytes")),
                images=num(par.get("images")),
                accuracy=num(par.get("accuracy")),
                agreement_litert=num(par.get("agreement_litert")),
                agreement_keras=num(par.get("agreement_keras")),
                max_int8_steps=num(par.get("max_int8_steps_vs_litert")),
                passed=bool(par.get("passed")),
                failures=tuple(str(f) for f in as_list(par.get("failures"))),
                boards=boards,
                files=tuple(str(f) for f in as_list(r.get("files"))),
                margin_reason=str(arena.get("margin_reason", "")),
                flash_note=str(flash.get("note", "")),
            )
        )
    return tuple(rows)


def kib(n: float | None) -> str:
    return DASH if n is None else f"{n / 1024:,.1f} KiB"


def mcu_markdown(rows: tuple[Any, ...]) -> list[str]:
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
            [b.board, b.core, kib(b.ram_bytes), kib(b.ram_left_bytes),
             "by module" if b.flash_bytes is None else kib(b.flash_bytes), kib(b.flash_left_bytes),
             "yes" if b.fits else "**no**"]
            for b in r.boards
        ]  # fmt: skip
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
