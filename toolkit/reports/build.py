"""Building the `Report` view model from the run's typed documents."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, TypeVar

from toolkit.reports.cpus import build_cpus
from toolkit.reports.fmt import num, plain, runtime_name, threads_text
from toolkit.reports.latency import build_latency
from toolkit.reports.load import RunDocs
from toolkit.reports.mcu import build_mcu
from toolkit.reports.mixed import build_mixed
from toolkit.reports.model import (
    Alert,
    ArtifactRow,
    BoardArtifact,
    BoardGroup,
    Diagnosis,
    DiagnosisRow,
    Group,
    HostVerify,
    Parity,
    Remote,
    Report,
    RunRef,
    RunView,
    SideBySide,
    Training,
)
from toolkit.reports.rules import artifact_sizes, bench_rows, config_label, machine_label, recommend
from toolkit.reports.user_model import model_info

if TYPE_CHECKING:
    from toolkit.remote.hosts import HostDocuments
    from toolkit.run.documents import (
        BenchDocument,
        CpuInfo,
        Document,
        Environment,
        ManifestDocument,
        ParityDocument,
        TrainDocument,
    )

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
        batch, reference = rec.batch_size, parity.reference
        ref_rows = [r.p50_ms for r in bench_rows(docs.bench) if r.artifact == reference and r.batch_size == batch]
        if ref_rows:
            speedup = (min(ref_rows) / rec.p50_ms, parity.reference)
    return RunView(
        index=index,
        ref=ref,
        machine=_machine(docs),
        created_utc=(docs.bench.created_utc or None) if docs.bench else None,
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
    from toolkit.run.documents import dump_document

    groups: dict[str, tuple[list[RunRef], T]] = {}
    for view, docs in zip(views, runs, strict=True):
        item = pick(view)
        if item is not None:
            doc: Document | None = getattr(docs, attr)
            key = json.dumps(None if doc is None else dump_document(doc), sort_keys=True, default=str)
            groups.setdefault(key, ([], item))[0].append(view.ref)
    return tuple(Group(tuple(members), item) for members, item in groups.values())


def _training(train: TrainDocument) -> Training:
    hist = [num(v) for v in train.history.get("val_accuracy", [])]
    data = train.data
    return Training(
        test_accuracy=num(train.test_accuracy),
        test_loss=num(train.test_loss),
        epochs=train.config.epochs,
        batch_size=train.config.batch_size,
        seed=train.config.seed,
        train_images=train.train_images,
        num_params=train.num_params,
        wall_seconds=num(train.wall_seconds),
        val_accuracy=tuple(v for v in hist if v is not None) if all(v is not None for v in hist) else (),
        libraries=tuple(train.libraries.items()),
        data_warnings=None if data.verified else tuple(data.warnings),
    )


def _artifacts(manifest: ManifestDocument, recommended: str | None) -> tuple[ArtifactRow, ...]:
    rows = []
    for a in manifest.artifacts:
        scale = None if a.input is None else num(a.input.scale)
        zero_point = None if a.input is None else a.input.zero_point
        quantization = "" if scale is None else f"in scale {scale:.6g} zp {plain(zero_point)}"
        if a.quantization is not None:
            target = f"{a.quantization.recipe}, target {a.quantization.target}"
            quantization = "; ".join(t for t in (target, quantization) if t)
        rows.append(
            ArtifactRow(
                name=a.name,
                format=plain(a.format),
                precision=plain(a.precision),
                runtime=runtime_name(a.runtime),
                size_bytes=a.size_bytes,
                sha256=a.sha256,
                input_dtype=(a.input.dtype if a.input else "") or "float32",
                quantization=quantization,
                notes=tuple(a.notes or ()),
                recommended=a.name == recommended,
            )
        )
    return tuple(rows)


def build_parity(parity: ParityDocument, *, vectors: bool = False) -> Parity:
    """The parity view of one parity.json.

    Args:
        parity: parity.json.
        vectors: the model takes feature vectors, so a test example is a "sample", not an "image".
    """
    ref = parity.reference
    name = parity.data.name
    return Parity(
        reference=ref.artifact or "Keras",
        reference_accuracy=num(ref.accuracy),
        images=ref.images,
        passed=parity.passed,
        rows=tuple(parity.results),
        output_kind=ref.output_kind or "probabilities",
        data_name=name if name and name.lower() != "mnist" else None,
        samples="samples" if vectors else "images",
        outputs=tuple(ref.outputs or ()),
    )


def _diagnosis(docs: RunDocs) -> Diagnosis:
    assert docs.diagnose is not None
    rows = []
    for a in docs.diagnose.artifacts:
        cause = a.cause
        rows.append(
            DiagnosisRow(
                artifact=a.artifact,
                first_departure=(a.first_departure.layer if a.first_departure else None) or None,
                top_layers=tuple((x.layer, num(x.added_error_pct)) for x in a.added_error_ranking[:2]),
                disagreements=a.disagreements,
                gallery_file=a.gallery.file.rsplit("/", 1)[-1] if a.gallery.file else None,
                gallery_png=docs.galleries.get(a.artifact),
                cause=cause.summary if cause and cause.summary else None,
                advice=cause.advice if cause and cause.advice else None,
                sensitivity=tuple((x.layer, num(x.only_float), num(x.only_quantized)) for x in a.sensitivity or ()),
            )
        )
    slower = tuple((s.artifact, s.reason) for s in docs.diagnose.speed if s.slower)
    return Diagnosis(tuple(rows), slower)


def _machine(docs: RunDocs) -> tuple[tuple[str, str], ...]:
    """The machine card: what bench.json's environment says about the CPU, software and method."""
    if not docs.bench:
        return ()
    env = docs.bench.environment
    cores, logical = env.cores_available, env.cores_logical
    items = [
        ("run", docs.name),
        ("CPU", plain(env.cpu_model)),
        ("instruction set", cpu_class_text(env.cpu)),
        ("cores", f"{plain(cores)} available" + (f" of {logical}" if logical and logical != cores else "")),
        ("architecture", " ".join(str(v) for v in (env.machine, env.bitness) if v) or "–"),
        ("OS", plain(env.os)),
        ("Python", " ".join(str(v) for v in (env.python, env.python_implementation) if v) or "–"),
        ("numpy", plain(env.numpy)),
    ]
    items += [(runtime_name(rt), str(v)) for rt, v in (env.runtime_versions or {}).items() if v]
    if env.cpu_governor:
        items.append(("governor", env.cpu_governor))
    frequencies = (
        ("now", env.cpu_freq_cur_mhz),
        ("min", env.cpu_freq_min_mhz),
        ("max", env.cpu_freq_max_mhz),
        ("hw max", env.cpu_freq_hw_max_mhz),
    )
    freq = [f"{k} {mhz:.0f} MHz" for k, value in frequencies if (mhz := num(value)) is not None]
    if freq:
        items.append(("frequency", ", ".join(freq)))
    items += thermal(env)
    if env.peak_gflops:
        text = ", ".join(
            f"{threads_text(int(t)) if t.isdigit() else t}: {num(v) or 0:,.1f} GFLOP/s"
            for t, v in env.peak_gflops.items()
        )
        items.append(("peak fp32", text))
    if env.thread_env:
        items.append(("thread env", plain(env.thread_env)))
    items.append(("method", method_card(docs.bench)))
    if env.hostname or env.timestamp_utc:
        items.append(("host, time", " · ".join(str(v) for v in (env.hostname, env.timestamp_utc) if v)))
    return tuple(items)


def method_card(bench: BenchDocument) -> str:
    """The machine card's one line on how the rows were timed: which method and its floors and caps."""
    m = bench.method
    if m.method == "adaptive":
        precision = f"{100 * (num(m.precision) or 0.02):g} %"
        return (
            f"adaptive: until the median is known to ±{precision} (≥ {plain(m.min_runs)} runs and "
            f"≥ {plain(m.min_seconds)} s; first pass ≤ {plain(m.quick_seconds)} s, measuring on ≤ "
            f"{plain(m.max_seconds)} s per batch size), fresh process each"
        )
    fixed = "fixed: " if m.method == "fixed" else ""  # an older bench.json does not name it
    return (
        f"{fixed}{plain(m.warmup_runs)} warm-up runs, then ≥ {plain(m.min_runs)} timed "
        f"runs and ≥ {plain(m.min_seconds)} s per configuration, fresh process each"
    )


def cpu_class_text(cpu: CpuInfo | None) -> str:
    """`x86-64-avx2: sse4.2 avx avx2 fma (no avx512f avx512_vnni …)` from an environment's `cpu` block."""
    if cpu is None:
        return "not recorded (bench.json from an older edgekit)"
    missing = [f for f in cpu.checked if f not in cpu.features]
    text = f"{cpu.isa_class or '?'}: {' '.join(cpu.features) or 'none of the checked features'}"
    return text + (f" (no {' '.join(missing)})" if missing else "")


def thermal(env: Environment) -> list[tuple[str, str]]:
    """Temperature and throttling fields of an environment block, as (readable key, value) pairs."""
    from toolkit.run.documents import dump_document

    out = []
    for k, v in dump_document(env).items():
        low = k.lower()
        if ("temp" in low or "thrott" in low) and v not in (None, [], {}, ""):
            unit = " °C" if "temp" in low and low.endswith("_c") and num(v) is not None else ""
            out.append((k.removesuffix("_c").replace("_", " "), plain(v) + unit))
    return out


def _alerts(view: RunView, docs: RunDocs) -> list[Alert]:
    out: list[Alert] = []
    ref = view.ref
    env = docs.bench.environment if docs.bench else None
    if env is not None and env.throttled:
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


def side_by_side(benches: Sequence[tuple[str, str, BenchDocument | None]]) -> SideBySide:
    """Batch-1 p50 at the best thread count per configuration, one column per (name, label, bench.json)."""
    rows_of = [bench_rows(b) for _, _, b in benches]
    names = list(dict.fromkeys(config_label(r) for rows in rows_of for r in rows))
    table = []
    for name in names:
        cells = []
        for rows in rows_of:
            b1 = [r.p50_ms for r in rows if config_label(r) == name and r.batch_size == 1]
            cells.append(min(b1) if b1 else None)
        table.append((name, tuple(cells)))
    return SideBySide(tuple((n, label) for n, label, _ in benches), tuple(table))


def _remote(remotes: dict[str, HostDocuments]) -> Remote:
    verify = [
        HostVerify(host, machine_label(docs.verify), row)
        for host, docs in remotes.items()
        if docs.verify is not None
        for row in docs.verify.results
    ]
    benches = [(host, docs.bench) for host, docs in remotes.items() if docs.bench is not None]
    return Remote(
        verify=tuple(verify),
        latency=side_by_side([(h, machine_label(b), b) for h, b in benches]) if benches else None,
        benches=tuple((h, build_latency(b, None)) for h, b in benches),
        boards=tuple(_board(name, docs) for name, docs in remotes.items()),
    )


def _board(name: str, docs: HostDocuments) -> BoardGroup:
    """One board's group: its verify rows and its bench's batch-1 best p50, artifact by artifact."""
    both = [d for d in (docs.verify, docs.bench) if d is not None]
    info = next((d.remote for d in both if d.remote is not None), None)
    cpu = next((d.environment.cpu for d in both if d.environment.cpu is not None), None)
    seconds: list[tuple[str, float]] = []
    for kind, doc in (("verify", docs.verify), ("bench", docs.bench)):
        r = doc.remote if doc is not None else None
        if r is None:
            continue
        if r.acquire_seconds is not None:
            seconds.append((f"acquire ({kind})", r.acquire_seconds))
        if r.setup_seconds is not None:
            seconds.append((f"set-up ({kind}, {r.setup or 'environment'})", r.setup_seconds))
        if r.seconds is not None:
            seconds.append((kind, r.seconds))
    best: dict[str, tuple[float, int | None]] = {}
    for row in bench_rows(docs.bench):
        if row.batch_size == 1 and (row.artifact not in best or row.p50_ms < best[row.artifact][0]):
            best[row.artifact] = (row.p50_ms, row.threads)
    verified = {row.artifact: row for row in docs.verify.results} if docs.verify is not None else {}
    names = list(dict.fromkeys([*verified, *best]))
    if info is None:
        source = "SSH host"
    else:
        source = "labgrid place" if info.place else "inventory board" if info.board else "SSH host"
    return BoardGroup(
        name=name,
        source=source,
        ssh=info.host if info is not None else name,
        coordinator=info.coordinator if info is not None else None,
        tags=tuple(sorted((info.tags or {}).items())) if info is not None else (),
        lock_owner=info.lock_owner if info is not None else None,
        machine=machine_label(both[0]) if both else "unknown machine",
        isa_class=cpu.isa_class if cpu is not None else "unknown",
        features=tuple(cpu.features) if cpu is not None else (),
        seconds=tuple(seconds),
        artifacts=tuple(
            BoardArtifact(a, verified.get(a), best[a][0] if a in best else None, best[a][1] if a in best else None)
            for a in names
        ),
    )
