"""The rules every report view shares: how a configuration is named, how a machine is labelled, which
bench rows count, and which configuration is recommended. Nothing else in the package re-derives them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from toolkit.reports.fmt import as_dict, as_list, num

Doc = Mapping[str, Any]


def config_label(row: Doc) -> str:
    """The artifact name plus any non-default runner option, e.g. `tflite-fp32 (no XNNPACK)`.

    ORT's `all` is the default optimisation level and is not shown.
    """
    name = str(row.get("artifact", "?"))
    options = as_dict(row.get("options"))
    extras = []
    if options.get("xnnpack") is False:
        extras.append("no XNNPACK")
    level = options.get("graph_optimization", row.get("graph_optimization"))
    if level not in (None, "", "all"):
        extras.append(f"ORT opt {level}")
    return f"{name} ({', '.join(extras)})" if extras else name


def machine_label(doc: Doc | None) -> str:
    """`AMD EPYC · x86_64 · x86-64-avx2 · 2 cores` from a bench.json or verify.json (its `environment` block).

    Args:
        doc: the document, or its environment block itself; None when the run has no bench.json.

    Returns:
        The label, or `unknown machine` when nothing is recorded.
    """
    doc = as_dict(doc)
    env = as_dict(doc.get("environment")) if "environment" in doc else doc
    parts = [str(env[k]) for k in ("cpu_model", "machine") if env.get(k)]
    isa = as_dict(env.get("cpu")).get("isa_class")
    if isa:
        parts.append(str(isa))
    cores = env.get("cores_available") or env.get("cores_logical")
    if cores:
        parts.append("1 core" if cores == 1 else f"{cores} cores")
    return " · ".join(parts) or "unknown machine"


def bench_rows(bench: Doc | None) -> list[dict[str, Any]]:
    """The rows of a bench.json that name an artifact, a batch size ≥ 1 and a p50 (others are ignored)."""
    out = []
    for r in as_list(as_dict(bench).get("results")):
        if not isinstance(r, dict) or not isinstance(r.get("artifact"), str):
            continue
        batch = num(r.get("batch_size"))
        if batch is None or batch < 1 or num(r.get("p50_ms")) is None:
            continue
        out.append(r)
    return out


def row_batch(row: Doc) -> int:
    return int(num(row.get("batch_size")) or 1)


def row_threads(row: Doc) -> int | None:
    t = num(row.get("threads"))
    return None if t is None else int(t)


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


def recommend(parity: Doc | None, bench: Doc | None, manifest: Doc | None = None) -> Recommendation | None:
    """The fastest configuration (lowest batch-1 p50 at any thread count) among artifacts that passed parity.

    Falls back to any batch size when no batch-1 row exists.

    Args:
        parity: parity.json; without it nothing is known to be accurate enough, so None.
        bench: bench.json.
        manifest: manifest.json, for the artifact's size (else the bench row's `size_bytes`).

    Returns:
        The recommendation, or None.
    """
    if not parity or not bench:
        return None
    # Keyed by artifact and runtime: a row from another runtime (TFLM's run of tflite-int8, from `edgekit mcu`)
    # says nothing about the runtime the benchmark measured.
    passed = {
        (r["artifact"], r.get("runtime")): r
        for r in as_list(parity.get("results"))
        if isinstance(r, dict) and isinstance(r.get("artifact"), str) and r.get("passed")
    }
    rows = [r for r in bench_rows(bench) if (r["artifact"], r.get("runtime")) in passed]
    candidates = [r for r in rows if row_batch(r) == 1] or rows
    if not candidates:
        return None
    best = min(candidates, key=lambda r: float(r["p50_ms"]))
    sizes = artifact_sizes(manifest, bench)
    size = sizes.get(best["artifact"])
    return Recommendation(
        artifact=best["artifact"],
        configuration=config_label(best),
        runtime=str(best.get("runtime", "?")),
        batch_size=row_batch(best),
        threads=row_threads(best),
        p50_ms=float(best["p50_ms"]),
        accuracy=num(passed[(best["artifact"], best.get("runtime"))].get("accuracy")),
        size_bytes=None if size is None else int(size),
        max_rel_error=num(passed[(best["artifact"], best.get("runtime"))].get("max_rel_error")),
        cpu_class=cpu_class_of(bench),
    )


def cpu_class_of(doc: Doc | None) -> str | None:
    """The instruction-set class in a bench.json or verify.json (None when it predates the record)."""
    cpu = as_dict(as_dict(as_dict(doc).get("environment")).get("cpu"))
    value = cpu.get("isa_class")
    return str(value) if value else None


def artifact_sizes(manifest: Doc | None, bench: Doc | None) -> dict[str, float]:
    """File size per artifact name, from manifest.json, else from the bench rows."""
    sizes: dict[str, float] = {}
    for a in as_list(as_dict(manifest).get("artifacts")):
        value = num(as_dict(a).get("size_bytes"))
        if value is not None and value > 0 and isinstance(a.get("name"), str):
            sizes[a["name"]] = value
    for r in bench_rows(bench):
        value = num(r.get("size_bytes"))
        if value is not None and value > 0:
            sizes.setdefault(r["artifact"], value)
    return sizes
