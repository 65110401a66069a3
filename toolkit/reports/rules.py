"""The rules every report view shares: how a configuration is named, how a machine is labelled, which
bench rows count, and which configuration is recommended. Nothing else in the package re-derives them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.reports.fmt import num

if TYPE_CHECKING:
    from toolkit.run.documents import (
        BenchDocument,
        BenchRow,
        Environment,
        ManifestDocument,
        ParityDocument,
        ParityRow,
        VerifyDocument,
    )


def config_label(row: BenchRow) -> str:
    """The artifact name plus any non-default runner option, e.g. `tflite-fp32 (no XNNPACK)`.

    ORT's `all` is the default optimisation level and is not shown.
    """
    options = row.options
    extras = []
    if options is not None and options.xnnpack is False:
        extras.append("no XNNPACK")
    # Older bench.json rows kept the level beside the row's fields instead of in `options`.
    level = options.graph_optimization if options is not None else None
    level = level or (row.model_extra or {}).get("graph_optimization")
    if level not in (None, "", "all"):
        extras.append(f"ORT opt {level}")
    return f"{row.artifact} ({', '.join(extras)})" if extras else row.artifact


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


@dataclass(frozen=True)
class Recommendation:
    """The configuration to deploy: the fastest (lowest batch-1 p50) among artifacts that passed parity."""

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
    # Keyed by artifact and runtime: a row from another runtime (TFLM's run of tflite-int8, from `edgekit mcu`)
    # says nothing about the runtime the benchmark measured.
    # A model with several outputs has one row per output: the artifact passed when every one of them did.
    failed = {(r.artifact, r.runtime) for r in parity.results if not r.passed}
    passed: dict[tuple[str, str], ParityRow] = {}
    for r in parity.results:
        if (r.artifact, r.runtime) not in failed:
            passed.setdefault((r.artifact, r.runtime), r)
    rows = [r for r in bench_rows(bench) if (r.artifact, r.runtime) in passed]
    candidates = [r for r in rows if r.batch_size == 1] or rows
    if not candidates:
        return None
    best = min(candidates, key=lambda r: r.p50_ms)
    size = artifact_sizes(manifest, bench).get(best.artifact)
    verdict = passed[(best.artifact, best.runtime)]
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
    )


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
