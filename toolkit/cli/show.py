"""What the commands print: parity and latency tables, the recommendation, data warnings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape

from toolkit.cli.console import err, out, rich_table

if TYPE_CHECKING:
    from toolkit.run.documents import BenchDocument, ParityDocument


def _load_data(source: str | None, allow_unverified: bool, run: Any = None) -> Any:
    """MNIST, loaded here so its warnings print; a run made with --model resolves its own data (returned as given)."""
    from toolkit.data.mnist import load_mnist

    if run is not None:
        from toolkit.model.run_source import has_own_data

        if has_own_data(run):
            return source

    data = load_mnist(source, allow_unverified=allow_unverified)
    for warning in data.warnings:
        err.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False)
    return data


# -- printing ------------------------------------------------------------------------------------
# The console's parity columns, picked by name from report.md's table (`toolkit.reports.parity_table`).
PARITY_COLUMNS = ("artifact", "accuracy", "Δ pt", "agreement", "max |Δp|", "result")
REGRESSION_COLUMNS = ("artifact", "max |Δ|", "mean |Δ|", "max rel. error", "result")
SEVERAL_COLUMNS = ("artifact", "output", "kind", "score", "Δ vs reference", "agreement", "max rel. error", "result")


def print_parity(parity: ParityDocument) -> None:
    from toolkit.reports import parity_rows

    header, rows = parity_rows(parity)
    ref = parity.reference
    kind = ref.output_kind or "probabilities"
    name = parity.data.name
    data = f" of {name}" if name and name != "MNIST" else ""
    if ref.outputs:
        keep = [header.index(c) for c in SEVERAL_COLUMNS]
        title = f"Parity ({ref.images:,} test samples{data}; one row per artifact and output)"
        out.print(rich_table(title, [header[i] for i in keep], [[r[i] for i in keep] for r in rows]))
        return
    keep = [header.index(name) for name in (REGRESSION_COLUMNS if kind == "values" else PARITY_COLUMNS)]
    title = f"Parity ({ref.images:,} test {'samples' if kind == 'values' else 'images'}{data}"
    title += ", softmax of logits compared)" if kind == "logits" else ")"
    out.print(rich_table(title, [header[i] for i in keep], [[r[i] for i in keep] for r in rows]))


def print_cpu_classes(parity: ParityDocument) -> None:
    """The `parity --cpu` table: each export on this machine and under each emulated CPU."""
    from toolkit.reports.cpus import build_cpus, cpus_table

    view = build_cpus(parity)
    if view is None:
        return
    header, rows = cpus_table(view)
    images = f"{view.images:,.0f}" if view.images is not None else "?"
    title = f"Same answers on which CPUs ({images} test images: agreement with Keras, vs this machine, wall time)"
    out.print(rich_table(title, header, rows))
    out.print(f"[dim]Not covered: {escape(view.not_emulated)}.[/]", highlight=False)


def print_bench(bench: BenchDocument) -> None:
    from toolkit.reports import latency_pivot
    from toolkit.reports.latency import stop_summary

    header, rows = latency_pivot(bench)
    out.print(rich_table("Latency (p50 ms)", header, rows))
    summary = stop_summary(bench)  # "" for an older bench.json, which records no stopping reason
    if summary:
        out.print(f"[dim]{escape(summary)}; intervals in the report[/]", highlight=False)
    for s in bench.skipped:
        err.print(f"[yellow]skipped[/] {escape(s.artifact)}: {escape(s.reason)}", highlight=False)
    if bench.noisy:
        err.print(f"[yellow]noisy[/]: {len(bench.noisy)} configuration(s) varied during timing; see the report.")
    env = bench.environment
    if env.throttled:
        flags = ", ".join(env.throttle_flags or [])
        err.print(f"[bold yellow]warning:[/] the CPU was throttled during this run ({escape(flags)}).")


def _interval_text(interval: tuple[float, float] | None, processes: int = 1) -> str:
    if interval is None:
        return ""
    over = f" (best of {processes} processes)" if processes > 1 else ""
    return f", 95 % CI{over} {interval[0]:.4f}–{interval[1]:.4f}"


def print_recommendation(parity: ParityDocument | None, bench: BenchDocument | None) -> None:
    from toolkit.reports import recommend
    from toolkit.reports.fmt import runtime_name
    from toolkit.reports.markdown import recommendation_quality

    rec = recommend(parity, bench)
    if rec:
        out.print(
            f"[bold green]Recommended:[/] {rec.artifact} on {runtime_name(rec.runtime)} "
            f"({'tied for fastest' if rec.tied_with else 'fastest'} that passed parity: b{rec.batch_size} "
            f"p50 {rec.p50_ms:.3f} ms{_interval_text(rec.p50_ci_ms, rec.processes)}, "
            f"{rec.threads} thread(s), {recommendation_quality(rec.accuracy, rec.max_rel_error)})",
            highlight=False,
        )
        if rec.tie_text():
            out.print(escape(rec.tie_text()), highlight=False)
        if rec.scope():
            out.print(f"[dim]{escape(rec.scope())}[/]", highlight=False)
