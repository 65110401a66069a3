"""The rules every report view shares: how a configuration is named, how a machine is labelled, which
bench rows count, and which configuration is recommended. Nothing else in the package re-derives them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.reports.fmt import num
from toolkit.steps import bench_focus

if TYPE_CHECKING:
    from toolkit.run.documents import (
        BenchDocument,
        BenchRow,
        Environment,
        ManifestDocument,
        ParityDocument,
        VerifyDocument,
    )


def config_label(row: BenchRow) -> str:
    """The artifact name plus any non-default runner option, e.g. `tflite-fp32 (no XNNPACK)`."""
    return row.config_label()


def machine_label(doc: BenchDocument | VerifyDocument | Environment | None) -> str:
    """`AMD EPYC · x86_64 · x86-64-avx2 · 2 cores` from a bench.json or verify.json (its `environment` block).

    Args:
        doc: the document, or its environment block itself; None when the run has no bench.json.

    Returns:
        The label, or `unknown machine` when nothing is recorded.
    """
    from toolkit.run.documents import Environment

    if doc is None:
        return "unknown machine"
    env = doc if isinstance(doc, Environment) else doc.environment
    parts = [str(v) for v in (env.cpu_model, env.machine) if v]
    if env.cpu is not None and env.cpu.isa_class:
        parts.append(env.cpu.isa_class)
    cores = env.cores_available or env.cores_logical
    if cores:
        parts.append("1 core" if cores == 1 else f"{cores} cores")
    return " · ".join(parts) or "unknown machine"


def bench_rows(bench: BenchDocument | None) -> list[BenchRow]:
    """The rows of a bench.json with a batch size ≥ 1 and a finite p50 (others are ignored)."""
    if bench is None:
        return []
    return [r for r in bench.results if r.batch_size >= 1 and num(r.p50_ms) is not None]


# How a tie between the fastest configurations is broken, in words for the report and the CLI.
TIE_RULE = "higher accuracy, then the smaller file, then fewer threads, then the lower p50"


@dataclass(frozen=True)
class Recommendation:
    """The configuration to deploy: the fastest (lowest batch-1 p50) among artifacts that passed parity; when
    others are not certainly slower (a tie, `tied_with`), the pick among them by `TIE_RULE`."""

    artifact: str
    configuration: str
    runtime: str
    batch_size: int
    threads: int | None
    p50_ms: float
    accuracy: float | None
    size_bytes: int | None = None
    max_rel_error: float | None = None  # regression runs: no accuracy, the largest relative error instead
    cpu_class: str | None = None  # the instruction-set class it was measured on (bench.json's environment.cpu)
    p50_ci_ms: tuple[float, float] | None = None  # the 95 % interval of its p50
    tied_with: tuple[str, ...] = ()  # other artifacts (configuration labels) the fastest could not be told from
    processes: int = 1  # fresh processes it was measured in (its figures are the fastest one's)

    def interval_name(self) -> str:
        """What `p50_ci_ms` is, in words."""
        if self.processes > 1:
            return f"95 % interval of p50 (best of {self.processes} fresh processes)"
        return "95 % interval of p50"

    def tie_text(self) -> str:
        """One sentence on the tie and how it was broken ("" without a tie)."""
        if not self.tied_with:
            return ""
        # A regression model has no accuracy: the rule's first criterion did not apply, so it is not named.
        rule = TIE_RULE if self.accuracy is not None else TIE_RULE.removeprefix("higher accuracy, then ")
        return (
            f"A tie with {', '.join(self.tied_with)} (within {100 * TIE_MARGIN:g} % of the fastest p50, or their p50 "
            f"intervals overlap): picked by {rule}."
        )

    def scope(self) -> str:
        """Which CPUs the pick holds for, in one sentence ("" when the bench does not say)."""
        if self.cpu_class is None:
            return ""
        return (
            f"It holds for {self.cpu_class} CPUs, where it was measured: int8 speed depends on VNNI/AMX on x86-64 "
            "and on the dot product on Arm, so the ranking may differ on another class (measure there: "
            "`edgekit bench --remote`)."
        )


def recommend(
    parity: ParityDocument | None, bench: BenchDocument | None, manifest: ManifestDocument | None = None
) -> Recommendation | None:
    """The fastest configuration (lowest batch-1 p50 at any thread count) among artifacts that passed parity.

    Falls back to any batch size when no batch-1 row exists.

    Args:
        parity: parity.json; without it nothing is known to be accurate enough, so None.
        bench: bench.json.
        manifest: manifest.json, for the artifact's size (else the bench row's `size_bytes`).

    Returns:
        The recommendation, or None.
    """
    if parity is None or bench is None:
        return None
    passed = parity.passing()
    rows = [r for r in bench_rows(bench) if (r.artifact, r.runtime) in passed]
    candidates = [r for r in rows if r.batch_size == 1] or rows
    if not candidates:
        return None
    sizes = artifact_sizes(manifest, bench)
    fastest = min(candidates, key=lambda r: r.p50_ms)
    tied = [r for r in candidates if _ties(r, fastest, _precision(bench))]

    def tie_order(r: BenchRow) -> tuple[float, float, int, float]:
        accuracy = num(passed[(r.artifact, r.runtime)].accuracy)
        return (-(accuracy or 0.0), sizes.get(r.artifact, 0.0), r.threads or 0, r.p50_ms)

    best = min(tied, key=tie_order)
    size = sizes.get(best.artifact)
    verdict = passed[(best.artifact, best.runtime)]
    others = dict.fromkeys(config_label(r) for r in tied if r.artifact != best.artifact)
    return Recommendation(
        artifact=best.artifact,
        configuration=config_label(best),
        runtime=best.runtime,
        batch_size=best.batch_size,
        threads=best.threads,
        p50_ms=best.p50_ms,
        accuracy=num(verdict.accuracy),
        size_bytes=None if size is None else int(size),
        max_rel_error=num(verdict.max_rel_error),
        cpu_class=cpu_class_of(bench),
        p50_ci_ms=bench_focus.interval(best) if best.p50_ci_low_ms is not None else None,
        tied_with=tuple(others),
        processes=len(best.process_p50_ms or ()) or 1,
    )


# The tie margin lives with the bench step's focus, which measures in more processes what it could tie.
TIE_MARGIN = bench_focus.TIE_MARGIN


def _precision(bench: BenchDocument) -> float:
    return max(bench.method.precision or 0.0, TIE_MARGIN)


def _ties(row: BenchRow, fastest: BenchRow, precision: float) -> bool:
    """Whether `row` cannot be told from the fastest: their p50 intervals overlap, or the p50s differ by less
    than `precision` (`TIE_MARGIN`, or the benchmark's own precision if larger; the same rule for both methods,
    so they agree on the pick)."""
    overlap = bench_focus.interval(row)[0] <= bench_focus.interval(fastest)[1]
    return overlap or row.p50_ms <= fastest.p50_ms * (1 + precision)


def cpu_class_of(doc: BenchDocument | VerifyDocument | None) -> str | None:
    """The instruction-set class in a bench.json or verify.json (None when it predates the record)."""
    cpu = None if doc is None else doc.environment.cpu
    return cpu.isa_class if cpu is not None and cpu.isa_class else None


def artifact_sizes(manifest: ManifestDocument | None, bench: BenchDocument | None) -> dict[str, float]:
    """File size per artifact name, from manifest.json, else from the bench rows."""
    sizes: dict[str, float] = {}
    for a in manifest.artifacts if manifest else []:
        if a.size_bytes > 0:
            sizes[a.name] = float(a.size_bytes)
    for r in bench_rows(bench):
        if r.size_bytes is not None and r.size_bytes > 0:
            sizes.setdefault(r.artifact, float(r.size_bytes))
    return sizes
