"""report.md: the `Report` view model as Markdown tables (the same tables the CLI prints)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from toolkit.reports.fmt import DASH, integer, interval, ms, ms_sig, size
from toolkit.reports.mcu import mcu_markdown
from toolkit.reports.model import (
    BoardGroup,
    Diagnosis,
    Latency,
    ModelView,
    Parity,
    Remote,
    Report,
    RunView,
    SideBySide,
    Training,
)

if TYPE_CHECKING:
    from toolkit.reports.rules import Recommendation
    from toolkit.run.documents import BenchDocument, ParityDocument

Table = tuple[list[str], list[list[str]]]


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A Markdown table; `align` has one letter per column, `l` or `r` (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]

    def cells(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    return "\n".join([cells(header), "| " + " | ".join(sep) + " |", *(cells(r) for r in rows)])


def _num(x: float | None, fmt: str) -> str:
    return DASH if x is None else format(x, fmt)


# -- the tables the CLI prints too -------------------------------------------------------------------
def parity_table(parity: Parity) -> Table:
    """Classification: accuracy, agreement and |Δp|; regression ("values"): max/mean |Δ| and max relative error;
    several outputs: one row per artifact and output, each scored by its kind (`several_table`)."""
    if parity.several:
        return several_table(parity)
    if parity.regression:
        header = ["artifact", "runtime", "max |Δ|", "mean |Δ|", "max rel. error", "tolerance", "result"]
        return header, [
            [
                r.artifact,
                r.runtime,
                _num(r.max_abs_diff, ".2e"),
                _num(r.mean_abs_diff, ".2e"),
                _num(r.max_rel_error, ".2e"),
                r.tolerance,
                _verdict(r.passed, r.failures),
            ]
            for r in parity.rows
        ]
    header = ["artifact", "runtime", "accuracy", "Δ pt", "agreement", "max |Δp|", "mean |Δp|", "tolerance", "result"]
    rows = [
        [
            r.artifact,
            r.runtime,
            _num(None if r.accuracy is None else 100 * r.accuracy, ".2f") + " %",
            _num(parity.delta_pt(r), "+.2f"),
            _num(r.top1_agreement, ".4f"),
            _num(r.max_abs_diff, ".2e"),
            _num(r.mean_abs_diff, ".2e"),
            r.tolerance,
            _verdict(r.passed, r.failures),
        ]
        for r in parity.rows
    ]
    return header, rows


SEVERAL_HEADER: Final = (
    "artifact", "output", "kind", "runtime", "score", "Δ vs reference", "agreement", "max |Δ|", "max rel. error",
    "tolerance", "result",
)  # fmt: skip


def several_table(parity: Parity) -> Table:
    """A model with several outputs: one row per (artifact, output), scored by the output's kind
    (`Parity.several_cells`)."""
    rows = []
    for r, c in zip(parity.rows, parity.several_cells(), strict=True):
        kind = r.output_kind or parity.output_kind
        measured = [c.score, c.delta, c.agreement, _num(r.max_abs_diff, ".2e"), _num(r.max_rel_error, ".2e")]
        verdict = _verdict(r.passed, r.failures)
        rows.append([r.artifact, r.output or "", kind, r.runtime, *measured, r.tolerance, verdict])
    return list(SEVERAL_HEADER), rows


def _verdict(passed: bool, failures: list[str]) -> str:
    return "pass" if passed else "**FAIL**: " + "; ".join(failures)


def pivot_table(latency: Latency) -> Table:
    """p50 (ms) per configuration, one column per (batch, threads), plus best throughput and cold start."""
    header = ["artifact", *(f"b{b} × {t}t p50 ms" for b, t in latency.columns), "best img/s", "best % peak", "load ms"]
    rows = [
        [
            p.configuration,
            *(DASH if c is None else ms(c.p50_ms) + (" ~" if c.noisy else "") for c in p.cells),
            integer(p.best_ips),
            _num(p.best_pct_of_peak, ".1f") + (" %" if p.best_pct_of_peak is not None else ""),
            ms(p.load_ms),
        ]
        for p in latency.pivot
    ]
    return header, rows


def rows_table(latency: Latency) -> Table:
    header = ["configuration", "batch", "threads", "p50 ms", "p90 ms (95 % CI)", "p95 ms", "p99 ms"]
    header += ["mean ± std ms", "runs", "img/s", "GFLOP/s", "% peak", "note"]
    rows = []
    for r in latency.rows:
        ci = f" ({ms(r.p90_ci_ms[0])}–{ms(r.p90_ci_ms[1])})" if r.p90_ci_ms else ""
        rows.append(
            [
                r.configuration,
                str(r.batch_size),
                str(r.threads),
                ms(r.p50_ms),
                ms(r.p90_ms) + ci,
                ms(r.p95_ms),
                ms(r.p99_ms),
                f"{ms(r.mean_ms)} ± {ms(r.std_ms)}",
                integer(r.runs),
                integer(r.throughput_ips),
                _num(r.gflops, ".1f"),
                _num(r.pct_of_peak, ".1f"),
                f"noisy: {r.noise or None}" if r.noisy else "",
            ]
        )
    return header, rows


MEASURED_INTRO = (
    "Each row's p50 with its distribution-free 95 % interval (± the larger side, as a percentage of p50), and why "
    "its timing stopped."
)


def measured_table(latency: Latency) -> Table:
    """How each row was measured: runs, p50, the 95 % interval of p50 and why timing stopped ("–": not recorded)."""
    header = ["configuration", "batch", "threads", "runs", "p50 ms", "95 % CI of p50 ms", "stopped"]
    rows = [
        [
            r.configuration,
            str(r.batch_size),
            str(r.threads),
            integer(r.runs),
            ms_sig(r.p50_ms),
            interval(r.p50_ms, r.p50_ci_ms),
            r.stop_text,
        ]
        for r in latency.rows
    ]
    return header, rows


def recommendation_interval(rec: Recommendation) -> str:
    """The recommended row's p50 interval and any tie, as sentences ("" when neither is recorded)."""
    parts = []
    if rec.p50_ci_ms is not None:
        parts.append(f"{rec.interval_name()}: {interval(rec.p50_ms, rec.p50_ci_ms, ' ms')}.")
    if rec.tie_text():
        parts.append(rec.tie_text())
    return " ".join(parts)


def cold_start_table(latency: Latency) -> Table:
    header = ["configuration", "backend", "cold start ms", "of which first inference ms", "peak RSS MiB"]
    rows = [
        [c.configuration, c.backend or DASH, ms(c.cold_start_ms), ms(c.first_inference_ms), _num(c.peak_rss_mb, ".0f")]
        for c in latency.cold_start
    ]
    return header, rows


def parity_align(parity: Parity) -> str:
    if parity.several:
        return "llllrrrrrll"
    return "llrrrll" if parity.regression else "llrrrrrll"


def recommendation_quality(accuracy: float | None, max_rel_error: float | None) -> str:
    """How good the recommended artifact is: its accuracy, or for regression its max relative error."""
    if accuracy is None and max_rel_error is not None:
        return f"max relative error {max_rel_error:.2e}"
    return f"accuracy {_num(None if accuracy is None else 100 * accuracy, '.2f')} %"


def parity_rows(parity: ParityDocument) -> Table:
    """`parity_table` of a parity.json (what `edgekit parity` prints)."""
    from toolkit.reports.build import build_parity

    return parity_table(build_parity(parity))


def latency_pivot(bench: BenchDocument) -> Table:
    """`pivot_table` of a bench.json (what `edgekit bench` prints)."""
    from toolkit.reports.latency import build_latency

    return pivot_table(build_latency(bench, None))


# -- sections ------------------------------------------------------------------------------------------
def _latency(lat: Latency, level: str = "##") -> list[str]:
    out = [
        f"{level} Latency",
        "",
        f"{lat.machine}, {lat.os}, Python {lat.python}. {lat.method_text} "
        "`load ms` = cold start: runtime import + model load + first inference. `~` marks a noisy row.",
        "",
    ]
    if lat.peak_gflops:
        out += [
            "Peak float32 rate (numpy matrix multiply): "
            + ", ".join(f"{v:.1f} GFLOP/s on {t} thread(s)" for t, v in lat.peak_gflops)
            + ". GFLOP/s per row = FLOPs per image (2 × MACs, counted from the model) × batch / p50; int8 "
            "artifacts compute in integers, so their % of this float32 peak is float-equivalent and can pass 100 %.",
            "",
        ]
    if lat.throttled:
        flags = ", ".join(lat.throttle_flags)
        out += [f"> **Warning: the CPU was throttled during this run** ({flags}); latencies are pessimistic.", ""]
    out += [table(*pivot_table(lat)), ""]
    if lat.noisy:
        out += ["Noisy configurations (timings moved during the run; treat small differences with care):", ""]
        out += [f"- {n}" for n in lat.noisy] + [""]
    if lat.measured:
        out += [f"{level}# How each configuration was measured", ""]
        out += [MEASURED_INTRO + (f" ({lat.stop_summary}.)" if lat.stop_summary else ""), ""]
        out += [table(*measured_table(lat), "lrrrrrl"), ""]
    out += [f"{level}# Cold start and memory", "", table(*cold_start_table(lat)), ""]
    out += ["<details><summary>All latency rows</summary>", "", table(*rows_table(lat)), "", "</details>", ""]
    out += [f"- skipped {a}: {why}" for a, why in lat.skipped]
    if lat.runtime_versions:
        out += ["", "Runtimes: " + ", ".join(f"{k}: {v}" for k, v in lat.runtime_versions), ""]
    return out


def _training(t: Training) -> list[str]:
    row = [
        _num(None if t.test_accuracy is None else 100 * t.test_accuracy, ".2f") + " %",
        _num(t.test_loss, ".4f"),
        str(t.epochs),
        str(t.batch_size),
        str(t.seed),
        integer(t.train_images or 0),
        integer(t.num_params or 0),
        _num(t.wall_seconds, ".1f") + " s",
    ]
    header = ["test accuracy", "test loss", "epochs", "batch", "seed", "train images", "parameters", "wall time"]
    out = ["## Training", "", table(header, [row], "r" * 8), ""]
    if t.val_accuracy:
        out += ["Test (validation) accuracy by epoch: " + ", ".join(f"{100 * v:.2f}" for v in t.val_accuracy), ""]
    if t.data_warnings is not None:
        out += ["> **Unverified data:** " + "; ".join(t.data_warnings), ""]
    return out


def parity_intro(parity: Parity) -> str:
    """The sentence above the parity table (the reference run's wording is unchanged)."""
    verdict = "All rows passed." if parity.passed else "**Some rows failed.**"
    of = f" of {parity.data_name}" if parity.data_name else ""
    # An ONNX source's reference is the file itself on ONNX Runtime fp32 (onnx-fp32), not Keras.
    sources = {
        "onnx-fp32": "the ONNX source's reference (onnx-fp32)",
        "tflite-fp32": "the TFLite source's reference (tflite-fp32)",
    }
    ref = sources.get(parity.reference, "the Keras reference")
    head = f"All {integer(parity.images)} test {parity.samples}{of} through each artifact's runtime, against {ref}"
    if parity.regression:
        return (
            f"{head}'s values: max |Δ| and mean |Δ| between outputs, and the max relative error "
            f"(|Δ| over the largest reference value). {verdict}"
        )
    acc = f"({_num(None if parity.reference_accuracy is None else 100 * parity.reference_accuracy, '.2f')} %)"
    if parity.output_kind == "logits":
        return f"{head} {acc}; the model outputs logits, so the softmax of logits is compared on both sides. {verdict}"
    return f"{head} {acc}. {verdict}"


def _model(m: ModelView) -> list[str]:
    """The "Model and data" section of a run made from the user's own model."""
    params = f"{integer(m.params)} parameters, " if m.params is not None else ""
    head = f"**{m.name}** ({m.format}, {params}{len(m.layers)} layers), from `{m.source}`."
    out = ["## Model and data", "", head, ""]
    classes = f": {', '.join(m.class_names)}" if m.class_names else ""
    layout = f", layout {m.layout}" if m.layout else ""
    rows = [
        ["input", m.input_shape, m.input_dtype, f"values {m.input_range}{layout}"],
        ["output", m.output_shape, m.output_dtype, m.output_text + classes],
    ]
    out += [table(["", "shape", "dtype", "holds"], rows, "llll"), ""]
    if m.data_name:
        sizes = f"{integer(m.train)} train / {integer(m.test)} test ({m.split} split)"
        scale = f", inputs = stored values × {m.scale:g}" if m.scale is not None and m.scale != 1 else ""
        data = f"Data: **{m.data_name}** ({m.data_kind}, {m.task}), {sizes}, samples {m.sample_shape} "
        out += [data + f"{m.data_dtype}{scale}, from `{m.data_source}`.", ""]
    if m.unknown_layers:
        out += ["Layers edgekit has not been tested with (converted anyway): " + ", ".join(m.unknown_layers) + ".", ""]
    rows = [[name, cls] for name, cls in m.layers]
    details = table(["layer", "class"], rows, "ll")
    out += [f"<details><summary>{len(m.layers)} layers</summary>", "", details, "", "</details>", ""]
    return out


def _parity(parity: Parity, has_diagnosis: bool) -> list[str]:
    out = [
        "## Parity",
        "",
        parity_intro(parity),
        "",
        table(*parity_table(parity), parity_align(parity)),
        "",
    ]
    if not parity.passed:
        failed = ", ".join(parity.failed)
        if has_diagnosis:
            out += [f"Where {failed} depart from Keras: see [Diagnosis](#diagnosis) below.", ""]
        else:
            out += [f"Run `edgekit diagnose` on this run to see where {failed} depart from Keras.", ""]
    return out


def _pct(v: float | None) -> str:
    return DASH if v is None else (f"{100 * v:.2f} %" if v <= 1 else f"{v:.3g}")


def _diagnosis(d: Diagnosis) -> list[str]:
    rows = []
    for r in d.rows:
        top = ", ".join(f"{layer} (+{_num(pct, '.3g')} % error power)" for layer, pct in r.top_layers)
        images = f"[gallery](diagnose/{r.gallery_file})" if r.gallery_file else DASH
        first = r.first_departure or "none: every layer within threshold"
        rows.append([r.artifact, first, top or DASH, integer(r.disagreements), images])
    header = ["artifact", "first layer that departs", "layers adding most error", "disagreements", "images"]
    out = [
        "## Diagnosis",
        "",
        "From `edgekit diagnose` (details in [diagnose/diagnose.md](diagnose/diagnose.md)): each layer of the "
        "reference (a Keras layer, or a weighted op of a model file) against the same tensor in each export.",
        "",
        table(header, rows, "lllrl"),
        "",
    ]
    causes = [r for r in d.rows if r.cause]
    if causes:
        out += ["Cause and what to do:", ""]
        for r in causes:
            out.append(f"- **{r.artifact}**: {r.cause}" + (f" What to do: {r.advice}." if r.advice else ""))
        out.append("")
    for r in d.rows:
        if r.sensitivity:
            out += [f"Sensitivity of {r.artifact} (accuracy with only that layer in float / only it quantized):", ""]
            srows = [[layer, _pct(f), _pct(q)] for layer, f, q in r.sensitivity]
            out += [table(["layer", "only this layer in float", "only this layer quantized"], srows, "lrr"), ""]
    if d.slower:
        out += ["Why some quantized configurations are slower:", ""]
        out += [f"- **{a}**: {why}" for a, why in d.slower] + [""]
    return out


def _run(run: RunView) -> list[str]:
    out = [f"# edgekit report: run `{run.ref.name}`", ""]
    rec = run.recommendation
    if rec:
        out += [
            "## Recommendation",
            "",
            f"**{rec.configuration}** on {rec.runtime}: the fastest artifact that passed parity "
            f"(batch-{rec.batch_size} p50 {ms(rec.p50_ms)} ms with {rec.threads} thread(s), "
            + recommendation_quality(rec.accuracy, rec.max_rel_error)
            + (f", {size(rec.size_bytes)}" if rec.size_bytes else "")
            + ")."
            + (f" {recommendation_interval(rec)}" if recommendation_interval(rec) else "")
            + (f" {rec.scope()}" if rec.scope() else ""),
            "",
        ]
    elif run.parity and not run.parity.passed:
        out += ["## Recommendation", "", "No recommendation: see the parity failures below.", ""]
    if run.model:
        out += _model(run.model)
    if run.training:
        out += _training(run.training)
    if run.artifacts is not None:
        rows = [
            [a.name, a.format, a.precision, integer(a.size_bytes), f"`{a.sha256[:16]}`", a.input_dtype, a.quantization]
            for a in run.artifacts
        ]
        header = ["artifact", "format", "precision", "bytes", "sha256", "input", "quantization"]
        out += ["## Artifacts", "", table(header, rows, "lllrlll"), ""]
    if run.parity:
        out += _parity(run.parity, run.diagnosis is not None)
    if run.diagnosis:
        out += _diagnosis(run.diagnosis)
    if run.mixed:
        from toolkit.reports.mixed import mixed_markdown

        out += mixed_markdown(run.mixed)
    if run.cpus:
        from toolkit.reports.cpus import cpus_markdown

        out += cpus_markdown(run.cpus)
    if run.mcu:
        out += mcu_markdown(run.mcu)
    if run.latency:
        out += _latency(run.latency)
    notes = [f"- {a.name}: {n}" for a in run.artifacts or () for n in a.notes]
    if notes:
        out += ["## Converter messages", "", "Warnings the converters emitted (kept for reference):", "", *notes, ""]
    return out


def _side_by_side(s: SideBySide) -> str:
    header = ["configuration"] + [f"{name} ({label})" for name, label in s.columns]
    return table(header, [[name, *(ms(v) for v in cells)] for name, cells in s.rows])


def board_where(b: BoardGroup) -> str:
    """`labgrid place `pi-a` at 127.0.0.1:20408 (board=pi), reached as root@10.0.0.5, held by host:edgekit-1/me`."""
    tags = f" ({', '.join(f'{k}={v}' for k, v in b.tags)})" if b.tags else ""
    at = f" at {b.coordinator}" if b.coordinator else ""
    held = f", held by {b.lock_owner}" if b.lock_owner else ""
    return f"{b.source} `{b.name}`{at}{tags}, reached as {b.ssh}{held}"


def _boards(boards: tuple[BoardGroup, ...]) -> list[str]:
    out = ["## Boards", "", "Each board's verify results beside its bench rows, and where they came from.", ""]
    for b in boards:
        features = " ".join(b.features) or "none checked"
        times = ", ".join(f"{what} {s:.1f} s" for what, s in b.seconds)
        out += [
            f"### {b.name}",
            "",
            f"{board_where(b)}.",
            "",
            f"Machine: {b.machine}; ISA class **{b.isa_class}**, ISA features: {features}.",
            "",
        ]
        if times:
            out += [f"Times: {times}.", ""]
        rows = [
            [
                a.artifact,
                DASH if a.verify is None else _num(a.verify.max_abs_diff, ".2e"),
                DASH if a.verify is None or a.verify.accuracy is None else f"{100 * a.verify.accuracy:.2f} %",
                DASH if a.verify is None else ("pass" if a.verify.passed else "**FAIL**"),
                ms(a.p50_ms) if a.p50_ms is not None else DASH,
                DASH if a.threads is None else str(a.threads),
            ]
            for a in b.artifacts
        ]
        header = ["artifact", "max |Δp| vs desktop", "golden accuracy", "verify", "b1 p50 (ms)", "threads"]
        out += [table(header, rows, "lrrlrr"), ""]
    return out


def _remote(remote: Remote) -> list[str]:
    out = ["", *_boards(remote.boards)] if remote.boards else [""]
    out += ["## Remote boards", ""]
    if remote.verify:
        rows = [
            [
                v.host,
                v.machine,
                v.row.artifact,
                _num(v.row.max_abs_diff, ".2e"),
                DASH if v.row.accuracy is None else f"{100 * v.row.accuracy:.2f} %",
                "pass" if v.row.passed else "**FAIL**",
            ]
            for v in remote.verify
        ]
        header = ["board", "machine", "artifact", "max |Δp| vs desktop", "golden accuracy", "verify"]
        out += ["### Verify on the boards", "", table(header, rows, "lllrrl"), ""]
    if remote.latency:
        out += ["### Latency on the boards: batch-1 p50 (ms), best thread count", "", _side_by_side(remote.latency), ""]
        for host, lat in remote.benches:
            out += [f"### {host}", "", *_latency(lat, level="####")]
    return out


def _merged(report: Report) -> list[str]:
    out = ["# edgekit report: " + ", ".join(f"`{r.ref.name}`" for r in report.runs), ""]
    if report.side_by_side:
        out += [
            "## Side by side: batch-1 p50 latency (ms), best thread count",
            "",
            _side_by_side(report.side_by_side),
            "",
        ]
    for r in report.runs:
        out += [f"## {r.ref.name}: {r.ref.label}", ""]
        if r.recommendation:
            rec = r.recommendation
            extra = f" {recommendation_interval(rec)}" if recommendation_interval(rec) else ""
            out += [f"Recommended: **{rec.configuration}** (b1 p50 {ms(rec.p50_ms)} ms).{extra}", ""]
        if r.model:
            data = f" on {r.model.data_name}" if r.model.data_name else ""
            out += [f"Model: **{r.model.name}**{data} ({r.model.output_text}).", ""]
        if r.parity:
            out += ["### Parity", "", table(*parity_table(r.parity), parity_align(r.parity)), ""]
        if r.latency:
            out += _latency(r.latency, level="###")
    return out


def render_markdown(report: Report) -> str:
    """report.md for a `Report`: one run (with its remote boards), or several runs merged side by side."""
    if report.kind == "merged":
        return "\n".join(_merged(report))
    if not report.runs:
        return "# edgekit report\n\nNothing to report."
    text = "\n".join(_run(report.runs[0]))
    return text + ("\n".join(_remote(report.remote)) if report.remote else "")
