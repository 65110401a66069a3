"""report.md (and report.html): training, artifacts, parity, latency and a recommendation, from JSON files.

One run gives one report in its directory; several runs or bench.json files (say a desktop and a board)
are merged side by side with `merge_reports`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

Doc = dict[str, Any]


def _kb(n: int) -> str:
    return f"{n / 1024:,.0f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:,.2f} MiB"


def _ms(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def _num(x: float | None, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]

    def cells(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    return "\n".join([cells(header), "| " + " | ".join(sep) + " |", *(cells(r) for r in rows)])


def config_name(row: Doc) -> str:
    """Artifact name plus the runner variant when it is not the default (e.g. `tflite-fp32 (no XNNPACK)`)."""
    options = row.get("options") or {}
    if options.get("xnnpack") is False:
        return f"{row['artifact']} (no XNNPACK)"
    if options.get("graph_optimization") not in (None, "all"):
        return f"{row['artifact']} (ORT opt {options['graph_optimization']})"
    return str(row["artifact"])


def machine_label(bench: Doc | None) -> str:
    env = (bench or {}).get("environment", {})
    cores = env.get("cores_available") or env.get("cores_logical")
    parts = [env.get("cpu_model"), env.get("machine"), f"{cores} cores" if cores else None]
    return " · ".join(str(p) for p in parts if p) or "unknown machine"


def latency_pivot(bench: Doc) -> tuple[list[str], list[list[str]]]:
    """p50 (ms) per configuration, one column per (batch, threads), plus best throughput and cold start."""
    results = bench.get("results", [])
    configs = sorted({(r["batch_size"], r["threads"]) for r in results})
    header = ["artifact"] + [f"b{b} × {t}t p50 ms" for b, t in configs] + ["best img/s", "best % peak", "load ms"]
    rows = []
    for name in dict.fromkeys(config_name(r) for r in results):
        mine = {(r["batch_size"], r["threads"]): r for r in results if config_name(r) == name}
        best = max(r["throughput_ips"] for r in mine.values())
        pct = [r["pct_of_peak"] for r in mine.values() if r.get("pct_of_peak") is not None]
        load = min(r["load_ms"] for r in mine.values())
        cells = [_ms(mine[c]["p50_ms"]) + (" ~" if mine[c].get("noisy") else "") if c in mine else "–" for c in configs]
        rows.append([name, *cells, f"{best:,.0f}", f"{max(pct):.1f} %" if pct else "–", _ms(load)])
    return header, rows


def latency_rows(bench: Doc) -> tuple[list[str], list[list[str]]]:
    header = [
        "configuration", "batch", "threads", "p50 ms", "p90 ms (95 % CI)", "p95 ms", "p99 ms", "mean ± std ms",
        "runs", "img/s", "GFLOP/s", "% peak", "note",
    ]  # fmt: skip
    rows = []
    for r in bench.get("results", []):
        low, high = r.get("p90_ci_low_ms"), r.get("p90_ci_high_ms")
        ci = f" ({_ms(low)}–{_ms(high)})" if low is not None and high is not None else ""
        rows.append(
            [
                config_name(r),
                str(r["batch_size"]),
                str(r["threads"]),
                _ms(r["p50_ms"]),
                _ms(r["p90_ms"]) + ci,
                _ms(r.get("p95_ms")),
                _ms(r["p99_ms"]),
                f"{_ms(r['mean_ms'])} ± {_ms(r['std_ms'])}",
                f"{r['runs']:,}",
                f"{r['throughput_ips']:,.0f}",
                _num(r.get("gflops"), ".1f"),
                _num(r.get("pct_of_peak"), ".1f"),
                f"noisy: {r.get('noise')}" if r.get("noisy") else "",
            ]
        )
    return header, rows


def cold_start_rows(bench: Doc) -> tuple[list[str], list[list[str]]]:
    """Per configuration: cold start (median over its processes) and peak resident memory."""
    header = ["configuration", "backend", "cold start ms", "of which first inference ms", "peak RSS MiB"]
    by_name: dict[str, list[Doc]] = {}
    for r in bench.get("results", []):
        by_name.setdefault(config_name(r), []).append(r)
    rows = []
    for name, mine in by_name.items():
        loads = sorted({(r["threads"], r["load_ms"]) for r in mine})
        median = loads[len(loads) // 2][1]
        first = [r["first_inference_ms"] for r in mine if r.get("first_inference_ms") is not None]
        rss = [r["peak_rss_mb"] for r in mine if r.get("peak_rss_mb") is not None]
        rows.append(
            [name, str(mine[0].get("backend") or "–"), _ms(median), _ms(min(first) if first else None),
             _num(max(rss) if rss else None, ".0f")]
        )  # fmt: skip
    return header, rows


def parity_rows(parity: Doc) -> tuple[list[str], list[list[str]]]:
    ref_acc = parity["reference"]["accuracy"]
    header = ["artifact", "runtime", "accuracy", "Δ pt", "agreement", "max |Δp|", "mean |Δp|", "tolerance", "result"]
    rows = []
    for r in parity["results"]:
        rows.append(
            [
                r["artifact"],
                r["runtime"],
                f"{100 * r['accuracy']:.2f} %",
                f"{100 * (r['accuracy'] - ref_acc):+.2f}",
                f"{r['top1_agreement']:.4f}",
                f"{r['max_abs_diff']:.2e}",
                f"{r['mean_abs_diff']:.2e}",
                r.get("tolerance", ""),
                "pass" if r["passed"] else "**FAIL**: " + "; ".join(r.get("failures", [])),
            ]
        )
    return header, rows


def recommend(parity: Doc | None, bench: Doc | None) -> Doc | None:
    """The fastest configuration (lowest batch-1 p50) among artifacts that passed parity.

    Without parity.json (a board's bench.json alone), rows carry the accuracy parity measured, if any.
    """
    if not bench:
        return None
    if parity:
        passed = {r["artifact"]: r["accuracy"] for r in parity["results"] if r["passed"]}
    else:
        return None
    rows = [r for r in bench.get("results", []) if r["artifact"] in passed]
    candidates = [r for r in rows if r["batch_size"] == 1] or rows
    if not candidates:
        return None
    best = min(candidates, key=lambda r: r["p50_ms"])
    return {
        "artifact": best["artifact"],
        "configuration": config_name(best),
        "runtime": best["runtime"],
        "batch_size": best["batch_size"],
        "threads": best["threads"],
        "p50_ms": best["p50_ms"],
        "accuracy": passed[best["artifact"]],
    }


def _latency_section(bench: Doc, level: str = "##") -> list[str]:
    env = bench.get("environment", {})
    method = bench.get("method", {})
    peak = env.get("peak_gflops") or {}
    out = [
        f"{level} Latency",
        "",
        f"{machine_label(bench)}, {env.get('os', '?')}, Python {env.get('python', '?')}. "
        f"Each configuration: {method.get('warmup_runs')} warm-up runs and {method.get('warmup_seconds', 0)} s, "
        f"then at least {method.get('min_runs')} timed runs and {method.get('min_seconds')} s, in a fresh process. "
        "`load ms` = cold start: runtime import + model load + first inference. `~` marks a noisy row.",
        "",
    ]
    if peak:
        out += [
            "Peak float32 rate (numpy matrix multiply): "
            + ", ".join(f"{v:.1f} GFLOP/s on {t} thread(s)" for t, v in peak.items())
            + ". GFLOP/s per row = FLOPs per image (2 × MACs, counted from the model) × batch / p50; int8 "
            "artifacts compute in integers, so their % of this float32 peak is float-equivalent and can pass 100 %.",
            "",
        ]
    if env.get("throttled"):
        flags = ", ".join(env.get("throttle_flags") or [])
        out += [f"> **Warning: the CPU was throttled during this run** ({flags}); latencies are pessimistic.", ""]
    header, rows = latency_pivot(bench)
    out += [_table(header, rows), ""]
    noisy = bench.get("noisy") or []
    if noisy:
        out += ["Noisy configurations (timings moved during the run; treat small differences with care):", ""]
        out += [f"- {n}" for n in noisy] + [""]
    header, rows = cold_start_rows(bench)
    out += [f"{level}# Cold start and memory", "", _table(header, rows), ""]
    header, rows = latency_rows(bench)
    out += ["<details><summary>All latency rows</summary>", "", _table(header, rows), "", "</details>", ""]
    for s in bench.get("skipped") or []:
        out += [f"- skipped {s['artifact']}: {s['reason']}"]
    versions = env.get("runtime_versions") or {}
    if versions:
        out += ["", "Runtimes: " + ", ".join(f"{k}: {v}" for k, v in versions.items() if v), ""]
    return out


def render_report(run_name: str, docs: dict[str, Doc | None]) -> str:
    train, manifest, parity, bench = (docs.get(k) for k in ("train", "manifest", "parity", "bench"))
    out = [f"# edgekit report: run `{run_name}`", ""]
    rec = recommend(parity, bench)
    if rec:
        size = next(
            (a["size_bytes"] for a in (manifest or {}).get("artifacts", []) if a["name"] == rec["artifact"]), None
        )
        out += [
            "## Recommendation",
            "",
            f"**{rec['configuration']}** on {rec['runtime']}: the fastest artifact that passed parity "
            f"(batch-{rec['batch_size']} p50 {_ms(rec['p50_ms'])} ms with {rec['threads']} thread(s), "
            f"accuracy {100 * rec['accuracy']:.2f} %" + (f", {_kb(size)}" if size else "") + ").",
            "",
        ]
    elif parity and not parity.get("passed", True):
        out += ["## Recommendation", "", "No recommendation: see the parity failures below.", ""]
    if train:
        cfg = train.get("config", {})
        row = [
            f"{100 * train['test_accuracy']:.2f} %",
            f"{train['test_loss']:.4f}",
            str(cfg.get("epochs")),
            str(cfg.get("batch_size")),
            str(cfg.get("seed")),
            f"{train.get('train_images', 0):,}",
            f"{train.get('num_params', 0):,}",
            f"{train['wall_seconds']:.1f} s",
        ]
        header = ["test accuracy", "test loss", "epochs", "batch", "seed", "train images", "parameters", "wall time"]
        out += ["## Training", "", _table(header, [row], "r" * 8), ""]
        hist = train.get("history", {})
        if hist.get("val_accuracy"):
            by_epoch = ", ".join(f"{100 * v:.2f}" for v in hist["val_accuracy"])
            out += [f"Test (validation) accuracy by epoch: {by_epoch}", ""]
        data = train.get("data", {})
        if data and not data.get("verified", True):
            out += ["> **Unverified data:** " + "; ".join(data.get("warnings", [])), ""]
    if manifest:
        rows = []
        for a in manifest["artifacts"]:
            inp = a.get("input", {})
            quant = f"in scale {inp['scale']:.6g} zp {inp['zero_point']}" if inp.get("scale") is not None else ""
            rows.append(
                [a["name"], a["format"], a["precision"], f"{a['size_bytes']:,}", f"`{a['sha256'][:16]}`",
                 inp.get("dtype", "float32"), quant]
            )  # fmt: skip
        header = ["artifact", "format", "precision", "bytes", "sha256", "input", "quantization"]
        out += ["## Artifacts", "", _table(header, rows, "lllrlll"), ""]
    if parity:
        header, rows = parity_rows(parity)
        ref = parity["reference"]
        verdict = "All rows passed." if parity.get("passed") else "**Some rows failed.**"
        out += [
            "## Parity",
            "",
            f"All {ref['images']:,} test images through each artifact's runtime, against the Keras reference "
            f"({100 * ref['accuracy']:.2f} %). {verdict}",
            "",
            _table(header, rows, "llrrrrrll"),
            "",
        ]
        if not parity.get("passed", True):
            failed = ", ".join(r["artifact"] for r in parity["results"] if not r["passed"])
            if docs.get("diagnose"):
                out += [f"Where {failed} depart from Keras: see [Diagnosis](#diagnosis) below.", ""]
            else:
                out += [f"Run `edgekit diagnose` on this run to see where {failed} depart from Keras.", ""]
    diagnosis = docs.get("diagnose")
    if diagnosis:
        out += _diagnosis_section(diagnosis)
    if bench:
        out += _latency_section(bench)
    notes = [f"- {a['name']}: {n}" for a in (manifest or {}).get("artifacts", []) for n in a.get("notes", [])]
    if notes:
        out += ["## Converter messages", "", "Warnings the converters emitted (kept for reference):", "", *notes, ""]
    return "\n".join(out)


def render_remote(remotes: dict[str, dict[str, Doc]]) -> str:
    """Sections for boards reached over SSH: their verify results and latency, beside the desktop's."""
    if not remotes:
        return ""
    out = ["", "## Remote boards", ""]
    verifies = {h: d["verify"] for h, d in remotes.items() if d.get("verify")}
    if verifies:
        rows = []
        for host, v in verifies.items():
            for r in v.get("results", []):
                rows.append(
                    [host, machine_label(v), r["artifact"], _num(r.get("max_abs_diff"), ".2e"),
                     f"{100 * r['accuracy']:.2f} %" if r.get("accuracy") is not None else "–",
                     "pass" if r.get("passed") else "**FAIL**"]
                )  # fmt: skip
        header = ["board", "machine", "artifact", "max |Δp| vs desktop", "golden accuracy", "verify"]
        out += ["### Verify on the boards", "", _table(header, rows, "lllrrl"), ""]
    benches = {h: d["bench"] for h, d in remotes.items() if d.get("bench")}
    if benches:
        names = list(dict.fromkeys(config_name(r) for b in benches.values() for r in b.get("results", [])))
        rows = []
        for name in names:
            cells = []
            for b in benches.values():
                b1 = [r for r in b.get("results", []) if config_name(r) == name and r["batch_size"] == 1]
                cells.append(_ms(min(r["p50_ms"] for r in b1)) if b1 else "–")
            rows.append([name, *cells])
        header = ["configuration"] + [f"{h} ({machine_label(b)})" for h, b in benches.items()]
        out += ["### Latency on the boards: batch-1 p50 (ms), best thread count", "", _table(header, rows), ""]
        for host, b in benches.items():
            out += [f"### {host}", "", *_latency_section(b, level="####")]
    return "\n".join(out)


# -- several runs or machines ------------------------------------------------------------------------
def load_run(path: Path) -> Doc:
    """A run directory, or a single bench.json (e.g. copied back from a board), as a report input."""
    from toolkit.run import layout as A
    from toolkit.errors import RunDirError

    if not path.exists():
        raise RunDirError(f"{path} does not exist; pass a run directory or a bench.json file.")
    if path.is_file():
        bench = A.read_json(path)
        if not isinstance(bench.get("results"), list):
            raise RunDirError(f"{path} is not an edgekit bench.json (no results list).")
        docs: Doc = {"train": None, "manifest": None, "parity": None, "bench": bench}
        # A bench.json inside a run directory brings the rest of the run along.
        for key, name in (("train", A.TRAIN_JSON), ("manifest", A.MANIFEST_JSON), ("parity", A.PARITY_JSON)):
            sibling = path.parent / name
            docs[key] = A.read_json(sibling) if sibling.exists() else None
        name = path.parent.name if docs["manifest"] else path.stem
    else:
        docs = {key: A.read_json(path / n) if (path / n).exists() else None for key, n in _DOC_FILES}
        if not any(docs.values()):
            raise RunDirError(f"{path} holds no edgekit JSON files; pass a run directory or a bench.json file.")
        name = path.resolve().name
        docs.update(_diagnosis_docs(path))
    return {"name": name, "label": machine_label(docs["bench"]), **docs}


def _diagnosis_docs(run_dir: Path) -> Doc:
    """diagnose.json and its gallery PNGs (base64, for the self-contained HTML), when `edgekit diagnose` ran."""
    import base64

    from toolkit.run import layout as A

    path = run_dir / "diagnose" / "diagnose.json"
    if not path.is_file():
        return {}
    doc = A.read_json(path)
    galleries = {}
    for a in doc.get("artifacts", []):
        file = (a.get("gallery") or {}).get("file")
        png = run_dir / "diagnose" / Path(str(file)).name if file else None
        if png is not None and png.is_file() and png.stat().st_size < 2_000_000:
            galleries[a["artifact"]] = base64.b64encode(png.read_bytes()).decode()
    return {"diagnose": doc, "diagnose_gallery": galleries}


def _diagnosis_section(doc: Doc) -> list[str]:
    rows = []
    for a in doc.get("artifacts", []):
        first = (a.get("first_departure") or {}).get("layer") or "none: every layer within threshold"
        top = ", ".join(
            f"{x['layer']} (+{x['added_error_pct']:.3g} % error power)"
            for x in (a.get("added_error_ranking") or [])[:2]
        )
        gallery = (a.get("gallery") or {}).get("file")
        images = f"[gallery](diagnose/{Path(gallery).name})" if gallery else "–"
        rows.append([a["artifact"], first, top or "–", str(a.get("disagreements", "–")), images])
    out = [
        "## Diagnosis",
        "",
        "From `edgekit diagnose` (details in [diagnose/diagnose.md](diagnose/diagnose.md)): each Keras layer against "
        "the same tensor in each export.",
        "",
        _table(
            ["artifact", "first layer that departs", "layers adding most error", "disagreements", "images"],
            rows,
            "lllrl",
        ),
        "",
    ]
    slow = [s for s in doc.get("speed", []) if s.get("slower")]
    if slow:
        out += ["Why some quantized configurations are slower:", ""]
        out += [f"- **{s['artifact']}**: {s['reason']}" for s in slow] + [""]
    return out


_DOC_FILES = (
    ("train", "train.json"),
    ("manifest", "manifest.json"),
    ("parity", "parity.json"),
    ("bench", "bench.json"),
)


def render_merged(runs: list[Doc]) -> str:
    out = ["# edgekit report: " + ", ".join(f"`{r['name']}`" for r in runs), ""]
    benches = [r for r in runs if r.get("bench")]
    if benches:
        out += ["## Side by side: batch-1 p50 latency (ms), best thread count", ""]
        names = list(dict.fromkeys(config_name(row) for r in benches for row in r["bench"]["results"]))
        rows = []
        for name in names:
            cells = []
            for r in benches:
                b1 = [row for row in r["bench"]["results"] if config_name(row) == name and row["batch_size"] == 1]
                cells.append(_ms(min(row["p50_ms"] for row in b1)) if b1 else "–")
            rows.append([name, *cells])
        header = ["configuration"] + [f"{r['name']} ({r['label']})" for r in benches]
        out += [_table(header, rows), ""]
    for r in runs:
        out += [f"## {r['name']}: {r['label']}", ""]
        rec = recommend(r.get("parity"), r.get("bench"))
        if rec:
            out += [f"Recommended: **{rec['configuration']}** (b1 p50 {_ms(rec['p50_ms'])} ms).", ""]
        if r.get("parity"):
            header, rows = parity_rows(r["parity"])
            out += ["### Parity", "", _table(header, rows, "llrrrrrll"), ""]
        if r.get("bench"):
            out += _latency_section(r["bench"], level="###")
    return "\n".join(out)


def merge_reports(inputs: list[Path], out_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html for several runs side by side into `out_dir`."""
    from benchmarks.html_report import render_html
    from exporters.files import write_text_atomic
    from toolkit.errors import ToolkitError

    if not inputs:
        raise ToolkitError("pass at least one run directory or bench.json to merge.")
    runs = [load_run(p) for p in inputs]
    seen: dict[str, int] = {}
    for r in runs:  # two inputs named alike (runs/latest on two machines) must stay apart
        seen[r["name"]] = seen.get(r["name"], 0) + 1
        if seen[r["name"]] > 1:
            r["name"] = f"{r['name']} ({seen[r['name']]})"
    out_dir.mkdir(parents=True, exist_ok=True)
    md, html = out_dir / "report.md", out_dir / "report.html"
    write_text_atomic(md, render_merged(runs))
    write_text_atomic(html, render_html(runs))
    return md, html
