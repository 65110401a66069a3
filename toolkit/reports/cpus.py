"""The report's "Same answers on which CPUs" section: parity.json's `cpu_classes` (`edgekit parity --cpu`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.reports.fmt import DASH, num

if TYPE_CHECKING:
    from toolkit.run.documents import CpuParityRow, ParityDocument


@dataclass(frozen=True)
class CpuColumn:
    """One CPU: this machine (native) or a QEMU model."""

    name: str
    isa_class: str
    features: tuple[str, ...]
    qemu_cpu: str | None
    stands_for: str
    seconds: float | None
    passed: bool


def cell_text(row: CpuParityRow) -> str:
    """One artifact on one CPU in a few words, for Markdown and the CLI: `0.9996, identical, 4.1 s` /
    `0.9964, Δ 7.4e-01, 12 s, FAIL`."""
    agreement, rel = num(row.top1_agreement), num(row.max_rel_error)
    parts = [DASH if agreement is None else f"{agreement:.4f}"]
    if agreement is None and rel is not None:
        parts = [f"rel {rel:.1e}"]
    diff, seconds = num(row.max_abs_diff_vs_native), num(row.seconds)
    if row.identical_to_native:
        parts.append("identical")
    elif diff is not None:
        parts.append(f"Δ {diff:.1e}")
    if seconds is not None:
        parts.append(f"{seconds:.3g} s")
    if not row.passed:
        parts.append("FAIL")
    return ", ".join(parts)


@dataclass(frozen=True)
class CpuClassesView:
    images: float | None
    seconds: float | None
    not_emulated: str
    columns: tuple[CpuColumn, ...]
    rows: tuple[tuple[str, tuple[CpuParityRow | None, ...]], ...]  # (artifact, parity.json's row per column)
    passed: bool


def build_cpus(parity: ParityDocument) -> CpuClassesView | None:
    """The section's view model from parity.json (None when `parity --cpu` never ran on it)."""
    section = parity.cpu_classes
    if section is None:
        return None
    columns = [
        CpuColumn(
            name=c.name,
            isa_class=(c.cpu.isa_class if c.cpu else None) or "unknown",
            features=tuple(c.cpu.features) if c.cpu else (),
            qemu_cpu=c.qemu_cpu,
            stands_for=c.stands_for,
            seconds=num(c.seconds),
            passed=c.passed,
        )
        for c in section.classes
    ]
    artifacts = list(dict.fromkeys(row.artifact for c in section.classes for row in c.rows))
    rows = [
        (name, tuple(next((x for x in c.rows if x.artifact == name), None) for c in section.classes))
        for name in artifacts
    ]
    return CpuClassesView(
        images=section.images,
        seconds=num(section.seconds),
        not_emulated=section.not_emulated,
        columns=tuple(columns),
        rows=tuple(rows),
        passed=section.passed,
    )


def column_title(c: CpuColumn) -> str:
    """`haswell (x86-64-avx2)`, `this machine (x86-64-amx)`."""
    name = "this machine" if c.qemu_cpu is None else c.name
    return f"{name} ({c.isa_class})"


def cpus_table(view: CpuClassesView) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the section's table: one row per artifact, one column per CPU."""
    header = ["artifact", *(column_title(c) for c in view.columns)]
    rows = [[name, *(DASH if cell is None else cell_text(cell) for cell in cells)] for name, cells in view.rows]
    return header, rows


def cpus_markdown(view: CpuClassesView) -> list[str]:
    from toolkit.reports.markdown import table

    images = DASH if view.images is None else f"{view.images:,.0f}"
    out = [
        "## Same answers on which CPUs",
        "",
        f"From `edgekit parity --cpu`: every export over the first {images} test images on this machine and under "
        "QEMU CPU models (only the runtimes run emulated; the Keras reference runs here). Each cell: top-1 "
        "agreement with Keras, then whether the outputs are identical to this machine's or their max |Δ| "
        "(judged by verify's tolerance: 1e-5 for fp32, one output step for int8), then the wall time "
        f"(emulated: not a speed). Not covered: {view.not_emulated}.",
        "",
    ]
    header, rows = cpus_table(view)
    out.append(table(header, rows))
    out.append("")
    for c in view.columns:
        where = "this machine" if c.qemu_cpu is None else f"QEMU `{c.qemu_cpu}`"
        secs = DASH if c.seconds is None else f"{c.seconds:.1f} s"
        features = " ".join(c.features) or "no checked features"
        out.append(f"- **{c.name}** ({where}, {secs}): {c.isa_class}, {features}; {c.stands_for}")
    failed = [
        f"{name} on {c.name}: {'; '.join(cell.failures)}"
        for name, cells in view.rows
        for c, cell in zip(view.columns, cells, strict=True)
        if cell is not None and not cell.passed
    ]
    if failed:
        out += ["", "Failures:", "", *(f"- {f}" for f in failed)]
    out.append("")
    return out
