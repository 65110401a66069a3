"""report.md: training summary, artifacts, parity, latency and a recommendation, from the run's JSON."""

from __future__ import annotations

from typing import Any

Doc = dict[str, Any]


def _kb(n: int) -> str:
    return f"{n / 1024:,.0f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:,.2f} MiB"


def _ms(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    def cells(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    lines = [cells(header), "| " + " | ".join(sep) + " |", *(cells(r) for r in rows)]
    return "\n".join(lines)


def latency_pivot(bench: Doc) -> tuple[list[str], list[list[str]]]:
    """p50 (ms) per artifact, one column per (batch, threads) configuration."""
    results = bench.get("results", [])
    configs = sorted({(r["batch_size"], r["threads"]) for r in results})
    header = ["artifact"] + [f"b{b} × {t}t p50 ms" for b, t in configs] + ["best img/s", "load ms"]
    rows = []
    for name in dict.fromkeys(r["artifact"] for r in results):
        mine = {(r["batch_size"], r["threads"]): r for r in results if r["artifact"] == name}
        best = max(r["throughput_ips"] for r in mine.values())
        load = min(r["load_ms"] for r in mine.values())
        rows.append(
            [name] + [_ms(mine[c]["p50_ms"]) if c in mine else "–" for c in configs] + [f"{best:,.0f}", _ms(load)]
        )
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
    """The fastest artifact (lowest batch-1 p50 at any thread count) among those that passed parity."""
    if not parity or not bench:
        return None
    passed = {r["artifact"]: r for r in parity["results"] if r["passed"]}
    candidates = [r for r in bench.get("results", []) if r["artifact"] in passed and r["batch_size"] == 1]
    if not candidates:
        candidates = [r for r in bench.get("results", []) if r["artifact"] in passed]
    if not candidates:
        return None
    best = min(candidates, key=lambda r: r["p50_ms"])
    return {
        "artifact": best["artifact"],
        "runtime": best["runtime"],
        "batch_size": best["batch_size"],
        "threads": best["threads"],
        "p50_ms": best["p50_ms"],
        "accuracy": passed[best["artifact"]]["accuracy"],
    }


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
            f"**{rec['artifact']}** on {rec['runtime']}: the fastest artifact that passed parity "
            f"(batch-{rec['batch_size']} p50 {_ms(rec['p50_ms'])} ms with {rec['threads']} thread(s), "
            f"accuracy {100 * rec['accuracy']:.2f} %" + (f", {_kb(size)}" if size else "") + ").",
            "",
        ]
    elif parity and not parity.get("passed", True):
        out += ["## Recommendation", "", "No recommendation: see the parity failures below.", ""]
    if train:
        cfg = train.get("config", {})
        out += [
            "## Training",
            "",
            _table(
                ["test accuracy", "test loss", "epochs", "batch", "seed", "train images", "parameters", "wall time"],
                [
                    [
                        f"{100 * train['test_accuracy']:.2f} %",
                        f"{train['test_loss']:.4f}",
                        str(cfg.get("epochs")),
                        str(cfg.get("batch_size")),
                        str(cfg.get("seed")),
                        f"{train.get('train_images', 0):,}",
                        f"{train.get('num_params', 0):,}",
                        f"{train['wall_seconds']:.1f} s",
                    ]
                ],
                "r" * 8,
            ),
            "",
        ]
        hist = train.get("history", {})
        if hist.get("val_accuracy"):
            out += [
                "Test (validation) accuracy by epoch: " + ", ".join(f"{100 * v:.2f}" for v in hist["val_accuracy"]),
                "",
            ]
        data = train.get("data", {})
        if data and not data.get("verified", True):
            out += ["> **Unverified data:** " + "; ".join(data.get("warnings", [])), ""]
    if manifest:
        rows = []
        for a in manifest["artifacts"]:
            inp = a.get("input", {})
            quant = ""
            if inp.get("scale") is not None:
                quant = f"in scale {inp['scale']:.6g} zp {inp['zero_point']}"
            rows.append(
                [
                    a["name"],
                    a["format"],
                    a["precision"],
                    f"{a['size_bytes']:,}",
                    f"`{a['sha256'][:16]}`",
                    inp.get("dtype", "float32"),
                    quant,
                ]
            )
        out += [
            "## Artifacts",
            "",
            _table(["artifact", "format", "precision", "bytes", "sha256", "input", "quantization"], rows, "lllrlll"),
            "",
        ]
    if parity:
        header, rows = parity_rows(parity)
        ref = parity["reference"]
        out += [
            "## Parity",
            "",
            f"All {ref['images']:,} test images through each artifact's runtime, against the Keras reference "
            f"({100 * ref['accuracy']:.2f} %). "
            + ("All rows passed." if parity.get("passed") else "**Some rows failed.**"),
            "",
            _table(header, rows, "llrrrrrll"),
            "",
        ]
    if bench:
        env = bench.get("environment", {})
        method = bench.get("method", {})
        header, rows = latency_pivot(bench)
        out += [
            "## Latency",
            "",
            f"{env.get('cpu_model', '?')}, {env.get('cores_available', env.get('cores_logical', '?'))} cores, "
            f"{env.get('os', '?')}, Python {env.get('python', env.get('python_version', '?'))}. "
            f"Each configuration: {method.get('warmup_runs')} warm-up runs, then at least {method.get('min_runs')} "
            f"timed runs and {method.get('min_seconds')} s, in a fresh process per artifact and thread count. "
            "`load ms` = cold start: runtime import + model load + first inference.",
            "",
            _table(header, rows),
            "",
            "<details><summary>All latency rows</summary>",
            "",
            _table(
                ["artifact", "batch", "threads", "p50 ms", "p90 ms", "p99 ms", "mean ± std ms", "runs", "img/s"],
                [
                    [
                        r["artifact"],
                        str(r["batch_size"]),
                        str(r["threads"]),
                        _ms(r["p50_ms"]),
                        _ms(r["p90_ms"]),
                        _ms(r["p99_ms"]),
                        f"{_ms(r['mean_ms'])} ± {_ms(r['std_ms'])}",
                        f"{r['runs']:,}",
                        f"{r['throughput_ips']:,.0f}",
                    ]
                    for r in bench.get("results", [])
                ],
            ),
            "",
            "</details>",
            "",
        ]
        versions = env.get("runtime_versions") or {}
        if versions:
            out += ["Runtimes: " + ", ".join(f"{k}: {v}" for k, v in versions.items() if v), ""]
    notes = [f"- {a['name']}: {n}" for a in (manifest or {}).get("artifacts", []) for n in a.get("notes", [])]
    if notes:
        out += ["## Converter messages", "", "Warnings the converters emitted (kept for reference):", "", *notes, ""]
    return "\n".join(out)
