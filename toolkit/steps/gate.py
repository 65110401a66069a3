"""The regression gate: compare a bench.json with a baseline and write gate.json."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.gate import Limits, Regression, check
from toolkit.errors import ToolkitError
from toolkit.run import layout as A

if TYPE_CHECKING:
    from toolkit.run.documents import BenchDocument, GateDocument, GateRegression

GATE_JSON = "gate.json"


def bench_path(path: Path, what: str) -> Path:
    """The bench.json a path names (the file itself, or the one in a run directory)."""
    found = path / A.BENCH_JSON if path.is_dir() else path
    if not found.is_file():
        raise ToolkitError(f"{what} {path} has no bench.json; pass a bench.json or a run directory.")
    return found


def load_bench(path: Path, what: str = "--baseline") -> BenchDocument:
    """Load and validate a bench.json (or a run directory's) for the gate."""
    from toolkit.run.documents import BenchDocument, load_document

    return load_document(bench_path(path, what), BenchDocument)


def isa_class(bench: BenchDocument) -> str | None:
    """The instruction-set class a bench.json was measured on (None: an older file that does not say)."""
    cpu = bench.environment.cpu
    return None if cpu is None else cpu.isa_class


def check_same_cpu(current: str | None, baseline: str | None, *, allow_other_cpu: bool) -> None:
    """Refuse to compare latencies across instruction-set classes unless told (`--allow-other-cpu`).

    Raises:
        ToolkitError: both classes are known and differ, and `allow_other_cpu` is False.
    """
    if allow_other_cpu or current is None or baseline is None or current == baseline:
        return
    raise ToolkitError(
        f"the baseline was measured on {baseline} and this bench on {current}: latency and int8 speed differ "
        "between instruction-set classes, so a difference is not a regression; compare benches of one class, or "
        "pass --allow-other-cpu to compare anyway."
    )


def run_gate(
    current: BenchDocument,
    baseline: BenchDocument,
    baseline_path: Path,
    limits: Limits,
    out_dir: Path,
    *,
    allow_other_cpu: bool = False,
) -> GateDocument:
    """Compare `current` with `baseline` under `limits`; write `out_dir/gate.json` and return it.

    The caller decides what a failure means (the CLI exits 3); `doc.passed` and `doc.regressions` say it. A
    latency change past the limit that the 95 % intervals do not confirm is in `doc.inconclusive` and does not fail.

    Raises:
        ToolkitError: the two were measured on different instruction-set classes and `allow_other_cpu` is False.
    """
    from toolkit.run.documents import GateCpu, GateDocument, GateLimits, GateRegression, dump_document, write_document

    classes = isa_class(current), isa_class(baseline)
    check_same_cpu(*classes, allow_other_cpu=allow_other_cpu)
    # benchmarks.gate runs on boards too (no pydantic): it compares the documents as JSON.
    findings = check(dump_document(current), dump_document(baseline), limits)
    regressions: list[Regression] = findings.regressions
    doc = GateDocument(
        schema_version=A.SCHEMA_VERSION,
        cpu=GateCpu(current=classes[0], baseline=classes[1], other_cpu_allowed=allow_other_cpu),
        baseline=str(baseline_path),
        limits=GateLimits.model_validate(asdict(limits)),
        passed=not regressions,
        regressions=[_document(GateRegression, r) for r in regressions],
        inconclusive=[_document(GateRegression, r) for r in findings.inconclusive],
    )
    write_document(out_dir / GATE_JSON, doc)
    return doc


def _document(cls: type[GateRegression], found: Regression) -> GateRegression:
    return cls.model_validate(asdict(found) | {"message": found.describe()})
