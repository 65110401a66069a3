"""Building the `Report` view model from the run documents (the only place that reads their fields)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from toolkit.reports.cpus import build_cpus
from toolkit.reports.fmt import as_dict, as_list, num, plain, runtime_name, threads_text
from toolkit.reports.latency import build_latency
from toolkit.reports.load import RunDocs
from toolkit.reports.mcu import build_mcu
from toolkit.reports.mixed import build_mixed
from toolkit.reports.model import (
    Alert,
    ArtifactRow,
    Diagnosis,
    DiagnosisRow,
    Group,
    Parity,
    ParityRow,
    Remote,
    Report,
    RunRef,
    RunView,
    SideBySide,
    Training,
    VerifyRow,
)
from toolkit.reports.rules import artifact_sizes, bench_rows, config_label, machine_label, recommend, row_batch
from toolkit.reports.user_model import model_info

Doc = dict[str, Any]
T = TypeVar("T")
# Run colours (machines). Red is kept for failed parity.
PALETTE = ("#2563eb", "#d97706", "#0d9488", "#9333ea", "#db2777", "#65a30d", "#475569", "#0891b2")


def build_report(runs: Sequence[RunDocs], kind: Literal["run", "merged"] = "run") -> Report:
    """The view model of one run (with its remote boards) or of several runs side by side.

    Args:
        runs: the runs' documents; for `kind="run"` the first is the run, the rest are its boards.
        kind: `run` or `merged`; only the Markdown layout differs.

    Returns:
        The report, every section computed once.
    """
    views = [_run(i, r) for i, r in enumerate(runs)]
    title = "edgekit report: " + ", ".join(v.ref.name for v in views) if views else "edgekit report"
    images = {v.parity.images for v in views if v.parity} - {None}
    benched = [(v.ref.name, v.ref.label, r.bench) for v, r in zip(views, runs, strict=True) if r.bench]
    return Report(
        kind=kind,
        title=title,
        runs=tuple(views),
        alerts=tuple(a for v, r in zip(views, runs, strict=True) for a in _alerts(v, r)),
        training=_grouped(views, runs, "train", lambda v: v.training),
        models=_grouped(views, runs, "model", lambda v: v.model),
        artifacts=_grouped(views, runs, "manifest", lambda v: v.artifacts),
        parity=_grouped(views, runs, "parity", lambda v: v.parity),
        side_by_side=side_by_side(benched) if kind == "merged" and benched else None,
        remote=_remote(runs[0].remote) if runs and runs[0].remote else None,
        reference_images=next(iter(images)) if len(images) == 1 else None,
    )


def _run(index: int, docs: RunDocs) -> RunView:
    ref = RunRef(docs.name, docs.label, PALETTE[index % len(PALETTE)])
    rec = recommend(docs.parity, docs.bench, docs.manifest)
    model = model_info(docs.model, docs.dataset) if docs.model else None
    parity = build_parity(docs.parity, vectors=model is not None and model.layout == "NC") if docs.parity else None
    latency = build_latency(docs.bench, rec.configuration if rec else None) if docs.bench else None
    why = ""
    if rec is None and docs.bench:
        if not docs.parity:
            why = "No parity.json for this run: nothing is known to be accurate enough to recommend."
        elif parity is not None and not any(r.passed for r in parity.rows):
            why = "No artifact passed parity: see the parity failures below."
        else:
            why = "No benchmarked artifact passed parity."
    speedup = None
    if rec and parity and parity.reference != rec.artifact:
        ref_rows = [
            float(r["p50_ms"])
            for r in bench_rows(docs.bench)
            if r["artifact"] == parity.reference and row_batch(r) == rec.batch_size
        ]
        if ref_rows:
            speedup = (min(ref_rows) / rec.p50_ms, parity.reference)
    return RunView(
        index=index,
        ref=ref,
        machine=_machine(docs),
        created_utc=str(as_dict(docs.bench).get("created_utc") or "") or None,
        # A user's model was not trained here: a train.json beside it would be another model's.
        training=_training(docs.train) if docs.train and model is None else None,
        artifacts=_artifacts(docs.manifest, rec.artifact if rec else None) if docs.manifest else None,
        parity=parity,
        latency=latency,
        diagnosis=_diagnosis(docs) if docs.diagnose else None,
        recommendation=rec,
        no_recommendation=why,
        speedup=speedup,
        sizes=artifact_sizes(docs.manifest, docs.bench),
        mcu=build_mcu(docs.mcu) if docs.mcu else None,
        mixed=build_mixed(docs.mixed) if docs.mixed else None,
        model=model,
        cpus=build_cpus(docs.parity) if docs.parity else None,
    )


def _grouped(
    views: list[RunView], runs: Sequence[RunDocs], attr: str, pick: Callable[[RunView], T | None]
) -> tuple[Group[T], ...]:
    """Runs whose document is identical share one table (copies of one run's files are shown once)."""
    groups: dict[str, tuple[list[RunRef], T]] = {}
    for view, docs in zip(views, runs, strict=True):
        item = pick(view)
        if item is not None:
            key = json.dumps(getattr(docs, attr), sort_keys=True, default=str)
            groups.setdefault(key, ([], item))[0].append(view.ref)
    return tuple(Group(tuple(members), item) for members, item in groups.values())


def _training(train: Doc) -> Training:
    cfg = as_dict(train.get("config"))
    hist = [num(v) for v in as_list(as_dict(train.get("history")).get("val_accuracy"))]
    data = as_dict(train.get("data"))
    return Training(
        test_accuracy=num(train.get("test_accuracy")),
        test_loss=num(train.get("test_loss")),
        epochs=cfg.get("epochs"),
        batch_size=cfg.get("batch_size"),
        seed=cfg.get("seed"),
        train_images=num(train.get("train_images")),
        num_params=num(train.get("num_params")),
        wall_seconds=num(train.get("wall_seconds")),
        val_accuracy=tuple(v for v in hist if v is not None) if all(v is not None for v in hist) else (),
        libraries=tuple((str(k), str(v)) for k, v in as_dict(train.get("libraries")).items()),
        data_warnings=None
        if not data or data.get("verified", True)
        else tuple(map(str, as_list(data.get("warnings")))),
    )


def _artifacts(manifest: Doc, recommended: str | None) -> tuple[ArtifactRow, ...]:
    rows = []
    for a in map(as_dict, as_list(manifest.get("artifacts"))):
        inp = as_dict(a.get("input"))
        scale = num(inp.get("scale"))
        recipe = as_dict(a.get("quantization"))
        quantization = "" if scale is None else f"in scale {scale:.6g} zp {plain(inp.get('zero_point'))}"
        if recipe:
            target = f"{recipe.get('recipe')}, target {recipe.get('target')}"
            quantization = "; ".join(t for t in (target, quantization) if t)
        rows.append(
            ArtifactRow(
                name=str(a.get("name", "?")),
                format=plain(a.get("format")),
                precision=plain(a.get("precision")),
                runtime=runtime_name(a.get("runtime")),
                size_bytes=num(a.get("size_bytes")),
                sha256=str(a.get("sha256") or ""),
                input_dtype=str(inp.get("dtype") or "float32"),
                quantization=quantization,
                notes=tuple(str(n) for n in as_list(a.get("notes"))),
                recommended=a.get("name") == recommended,
            )
        )
    return tuple(rows)


def build_parity(parity: Doc, *, vectors: bool = False) -> Parity:
    """The parity view of one parity.json.

    Args:
        parity: parity.json.
        vectors: the model takes feature vectors, so a test example is a "sample", not an "image".
    """
    ref = as_dict(parity.get("reference"))
    ref_acc = num(ref.get("accuracy"))
    rows = []
    for r in map(as_dict, as_list(parity.get("results"))):
        acc = num(r.get("accuracy"))
        rows.append(
            ParityRow(
                artifact=str(r.get("artifact", "?")),
                runtime=str(r.get("runtime", "?")),
                accuracy=acc,
                delta_pt=None if acc is None or ref_acc is None else 100 * (acc - ref_acc),
                agreement=num(r.get("top1_agreement")),
                max_abs_diff=num(r.get("max_abs_diff")),
                mean_abs_diff=num(r.get("mean_abs_diff")),
                tolerance=str(r.get("tolerance") or ""),
                passed=bool(r.get("passed")),
                failures=tuple(str(f) for f in as_list(r.get("failures"))),
                max_rel_error=num(r.get("max_rel_error")),
            )
        )
    name = as_dict(parity.get("data")).get("name")
    return Parity(
        reference=str(ref.get("artifact") or "Keras"),
        reference_accuracy=ref_acc,
        images=num(ref.get("images")),
        passed=bool(parity.get("passed", all(r.passed for r in rows))),
        rows=tuple(rows),
        output_kind=str(ref.get("output_kind") or "probabilities"),
        data_name=str(name) if name and str(name).lower() != "mnist" else None,
        samples="samples" if vectors else "images",
    )


def _diagnosis(docs: RunDocs) -> Diagnosis:
    doc = as_dict(docs.diagnose)
    rows = []
    for a in map(as_dict, as_list(doc.get("artifacts"))):
        ranking = [as_dict(x) for x in as_list(a.get("added_error_ranking"))][:2]
        gallery = as_dict(a.get("gallery")).get("file")
        name = str(a.get("artifact", "?"))
        cause = as_dict(a.get("cause"))
        sens = tuple(
            (str(x.get("layer")), num(x.get("only_float")), num(x.get("only_quantized")))
            for x in map(as_dict, as_list(a.get("sensitivity")))
        )
        rows.append(
            DiagnosisRow(
                artifact=name,
                first_departure=as_dict(a.get("first_departure")).get("layer") or None,
                top_layers=tuple((str(x.get("layer")), num(x.get("added_error_pct"))) for x in ranking),
                disagreements=num(a.get("disagreements")),
                gallery_file=str(gallery).rsplit("/", 1)[-1] if gallery else None,
                gallery_png=docs.galleries.get(name),
                cause=str(cause["summary"]) if cause.get("summary") else None,
                advice=str(cause["advice"]) if cause.get("advice") else None,
                sensitivity=sens,
            )
        )
    slower = tuple(
        (str(s.get("artifact")), str(s.get("reason")))
        for s in map(as_dict, as_list(doc.get("speed")))
        if s.get("slower")
    )
    return Diagnosis(tuple(rows), slower)


def _machine(docs: RunDocs) -> tuple[tuple[str, str], ...]:
    """The machine card: what bench.json's environment says about the CPU, software and method."""
    if not docs.bench:
        return ()
    env = as_dict(docs.bench.get("environment"))
    cores, logical = env.get("cores_available"), env.get("cores_logical")
    items = [
        ("run", docs.name),
        ("CPU", plain(env.get("cpu_model"))),
        ("instruction set", cpu_class_text(env.get("cpu"))),
        ("cores", f"{plain(cores)} available" + (f" of {logical}" if logical and logical != cores else "")),
        ("architecture", " ".join(str(env[k]) for k in ("machine", "bitness") if env.get(k)) or "–"),
        ("OS", plain(env.get("os"))),
        ("Python", " ".join(str(env[k]) for k in ("python", "python_implementation") if env.get(k)) or "–"),
        ("numpy", plain(env.get("numpy"))),
    ]
    items += [(runtime_name(rt), str(v)) for rt, v in as_dict(env.get("runtime_versions")).items() if v]
    if env.get("cpu_governor"):
        items.append(("governor", str(env["cpu_governor"])))
    freq = [
        f"{k} {num(env.get(key)):.0f} MHz"
        for k, key in (
            ("now", "cpu_freq_cur_mhz"),
            ("min", "cpu_freq_min_mhz"),
            ("max", "cpu_freq_max_mhz"),
            ("hw max", "cpu_freq_hw_max_mhz"),
        )
        if num(env.get(key)) is not None
    ]
    if freq:
        items.append(("frequency", ", ".join(freq)))
    items += thermal(env)
    peak = as_dict(env.get("peak_gflops"))
    if peak:
        text = ", ".join(
            f"{threads_text(int(t)) if str(t).isdigit() else t}: {num(v) or 0:,.1f} GFLOP/s" for t, v in peak.items()
        )
        items.append(("peak fp32", text))
    if env.get("thread_env"):
        items.append(("thread env", plain(env.get("thread_env"))))
    method = as_dict(docs.bench.get("method"))
    if method:
        items.append(
            (
                "method",
                f"{plain(method.get('warmup_runs'))} warm-up runs, then ≥ {plain(method.get('min_runs'))} timed "
                f"runs and ≥ {plain(method.get('min_seconds'))} s per configuration, fresh process each",
            )
        )
    if env.get("hostname") or env.get("timestamp_utc"):
        items.append(("host, time", " · ".join(str(env[k]) for k in ("hostname", "timestamp_utc") if env.get(k))))
    return tuple(items)


def cpu_class_text(cpu: Any) -> str:
    """`x86-64-avx2: sse4.2 avx avx2 fma (no avx512f avx512_vnni …)` from an environment's `cpu` block."""
    cpu = as_dict(cpu)
    if not cpu:
        return "not recorded (bench.json from an older edgekit)"
    have = [str(f) for f in as_list(cpu.get("features"))]
    missing = [str(f) for f in as_list(cpu.get("checked")) if f not in have]
    text = f"{cpu.get('isa_class', '?')}: {' '.join(have) or 'none of the checked features'}"
    return text + (f" (no {' '.join(missing)})" if missing else "")


def thermal(env: Doc) -> list[tuple[str, str]]:
    """Temperature and throttling fields of an environment block, as (readable key, value) pairs."""
    out = []
    for k, v in env.items():
        low = k.lower()
        if ("temp" in low or "thrott" in low) and v not in (None, [], {}, ""):
            unit = " °C" if "temp" in low and low.endswith("_c") and num(v) is not None else ""
            out.append((k.removesuffix("_c").replace("_", " "), plain(v) + unit))
    return out


def _alerts(view: RunView, docs: RunDocs) -> list[Alert]:
    out: list[Alert] = []
    ref = view.ref
    env = as_dict(as_dict(docs.bench).get("environment"))
    if env.get("throttled"):
        details = "; ".join(f"{k}: {v}" for k, v in thermal(env) if k != "throttled")
        out.append(Alert("throttled", "warn", ref, details))
    if view.latency and view.latency.noisy:
        out.append(Alert("noisy", "note", ref, "", view.latency.noisy))
    if view.latency and view.latency.skipped:
        out.append(Alert("skipped", "info", ref, ", ".join(f"{a} ({why})" for a, why in view.latency.skipped)))
    if view.training and view.training.data_warnings is not None:
        out.append(Alert("unverified-data", "warn", ref, "; ".join(view.training.data_warnings)))
    if view.parity and view.parity.failed:
        out.append(Alert("parity-failed", "warn", ref, ", ".join(view.parity.failed)))
    return out


def side_by_side(benches: Sequence[tuple[str, str, Doc | None]]) -> SideBySide:
    """Batch-1 p50 at the best thread count per configuration, one column per (name, label, bench.json)."""
    rows_of = [bench_rows(b) for _, _, b in benches]
    names = list(dict.fromkeys(config_label(r) for rows in rows_of for r in rows))
    table = []
    for name in names:
        cells = []
        for rows in rows_of:
            b1 = [float(r["p50_ms"]) for r in rows if config_label(r) == name and row_batch(r) == 1]
            cells.append(min(b1) if b1 else None)
        table.append((name, tuple(cells)))
    return SideBySide(tuple((n, label) for n, label, _ in benches), tuple(table))


def _remote(remotes: dict[str, dict[str, Doc]]) -> Remote:
    verify = [
        VerifyRow(
            host,
            machine_label(v),
            str(r.get("artifact", "?")),
            num(r.get("max_abs_diff")),
            num(r.get("accuracy")),
            bool(r.get("passed")),
        )
        for host, docs in remotes.items()
        if (v := docs.get("verify"))
        for r in map(as_dict, as_list(v.get("results")))
    ]
    benches = [(host, docs["bench"]) for host, docs in remotes.items() if docs.get("bench")]
    return Remote(
        verify=tuple(verify),
        latency=side_by_side([(h, machine_label(b), b) for h, b in benches]) if benches else None,
        benches=tuple((h, build_latency(b, None)) for h, b in benches),
    )
