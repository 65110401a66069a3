"""Accuracy parity of every artifact against the run's reference (Keras, or the ONNX source on ONNX Runtime
fp32), over the whole test set."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtimes.registry import make_runner
from runtimes.spec import ModelSpec, TensorSpec
from toolkit.errors import DataError, ToolkitError
from toolkit.model.run_source import data_summary, run_dataset, run_spec
from toolkit.progress import ProgressCallback, as_progress
from toolkit.run import layout as A
from toolkit.tolerances import Tolerance, parity_table, parity_tolerance

if TYPE_CHECKING:
    from toolkit.data.dataset import Dataset
    from toolkit.data.named import NamedDataset, NamedSplit
    from toolkit.run.documents import ArtifactEntry, ParityDocument, ParityReference, ParityRow


def predict_all(
    path: Path, images: np.ndarray, batch_size: int = 1000, *, spec: ModelSpec | None = None
) -> tuple[np.ndarray, str]:
    """Probabilities for every image, in batches, with the artifact's own runtime on every core.

    `spec` (the manifest's) makes a file whose input or output no longer matches it a one-line error.
    """
    from benchmarks.environment import available_cores
    from runtimes.registry import runner_class

    # A throughput job: LiteRT's default is one thread, where ORT, OpenVINO and TensorFlow take the cores on their
    # own; the TFLite files were about half of parity's time on 2 cores. (TensorFlow's threads are left alone: they
    # cannot change once it has started, as it has after training.)
    threads = available_cores() if runner_class(path).name == "tflite" else None
    with make_runner(path, spec=spec, num_threads=threads) as runner:
        out = [runner.infer(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        return np.concatenate(out), runner.backend()


def within_noise(disagreements: int, n: int, min_agreement: float) -> bool:
    """True when `disagreements` of `n` is within 2σ of what `min_agreement` allows (Binomial, normal approx).

    On a small test set the floor is granular (1 image of 120 is 0.83 %): a count no larger than
    n·p + 2·√(n·p), with p = 1 − min_agreement, is not evidence of a worse rate. An exact floor (fp32: 1.0)
    allows none.
    """
    allowed = (1.0 - min_agreement) * n
    return allowed > 0 and disagreements <= allowed + 2.0 * float(np.sqrt(allowed))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    probs: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs


def compared(outputs: np.ndarray, output_kind: str) -> np.ndarray:
    """What parity compares: probabilities as they are, softmax of logits, values as they are."""
    return softmax(outputs) if output_kind == "logits" else outputs


def check_row(
    entry: ArtifactEntry,
    probs: np.ndarray,
    reference: np.ndarray,
    labels: np.ndarray,
    reference_accuracy: float | None,
    seconds: float,
    backend: str,
    *,
    output_kind: str = "probabilities",
) -> ParityRow:
    """Compare one artifact's outputs with the reference's and apply its tolerance: parity.json's row.

    `probs` and `reference` are what `compared` gives: probabilities (softmax of logits) or, for
    `output_kind` "values", the raw outputs, judged by relative error instead of accuracy.
    """
    from toolkit.run.documents import ParityRow

    diff = np.abs(probs.astype(np.float64) - reference.astype(np.float64))
    max_abs, mean_abs = float(diff.max()), float(diff.mean())
    failures: list[str] = []

    def row(tol: Tolerance, **measured: Any) -> ParityRow:
        if measured.get("max_rel_error") is None:
            measured.pop("max_rel_error", None)  # classification rows have none
        return ParityRow(
            artifact=entry.name,
            format=entry.format,
            precision=entry.precision,
            runtime=entry.runtime,
            max_abs_diff=max_abs,
            mean_abs_diff=mean_abs,
            passed=not failures,
            tolerance=tol.describe(),
            failures=failures,
            seconds=round(seconds, 3),
            backend=backend,
            **measured,
        )

    if output_kind == "values":
        tol = parity_tolerance(entry.precision, "values")
        scale = float(np.abs(reference).max()) or 1.0
        rel = max_abs / scale
        if tol.max_rel_error is not None and not rel <= tol.max_rel_error:
            failures.append(f"max |Δ| {rel:.2e} × max |reference| > {tol.max_rel_error:g}")
        return row(tol, accuracy=None, top1_agreement=None, disagreements=0, max_rel_error=rel)
    pred, ref_pred = probs.argmax(1), reference.argmax(1)
    accuracy = float((pred == labels).mean())
    agreement = float((pred == ref_pred).mean())
    disagreements = int((pred != ref_pred).sum())
    tol = parity_tolerance(entry.precision).for_model(reference_accuracy)
    if (
        tol.min_agreement is not None
        and agreement < tol.min_agreement
        and not within_noise(disagreements, len(pred), tol.min_agreement)
    ):
        failures.append(f"agreement {agreement:.4f} < {tol.min_agreement:.4g}")
    if tol.max_abs_diff is not None and not max_abs <= tol.max_abs_diff:
        failures.append(f"max |Δp| {max_abs:.2e} > {tol.max_abs_diff:g}")
    assert reference_accuracy is not None
    drop = reference_accuracy - accuracy
    # On a small test set one flipped image is a large step (1/180 = 0.56 pt). A drop within two standard
    # errors of the paired difference (McNemar: √disagreements / N) is not evidence that accuracy was lost.
    noise = 2.0 * float(np.sqrt(disagreements)) / max(len(labels), 1)
    if tol.max_accuracy_drop is not None and drop > tol.max_accuracy_drop and drop > noise:
        failures.append(f"accuracy {accuracy:.4f} is {100 * drop:.2f} pt below the reference")
    return row(tol, accuracy=accuracy, top1_agreement=agreement, disagreements=disagreements)


def run_parity(
    reference: tuple[ArtifactEntry, Path],
    artifacts: list[tuple[ArtifactEntry, Path]],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    on_done: Callable[[ParityRow], None] | None = None,
) -> tuple[ParityReference, list[ParityRow]]:
    """Run the reference and every artifact over `images`; return the reference summary and rows.

    Args:
        reference: (manifest entry, path) of the Keras model.
        artifacts: (manifest entry, path) of each export to compare.
        images: float32 test inputs in the model's input shape and value range.
        labels: integer labels `[N]`.
        on_done: called after each row, for progress displays.
    """
    from toolkit.run.documents import ParityReference

    ref_entry, ref_path = reference
    t0 = time.perf_counter()
    ref_spec = A.entry_spec(ref_entry)
    kind = ref_spec.output_kind if ref_spec is not None else "probabilities"
    ref_out, ref_backend = predict_all(ref_path, images, spec=ref_spec)
    ref_probs = compared(ref_out, kind)
    ref_acc = None if kind == "values" else float((ref_probs.argmax(1) == labels).mean())
    rows = [
        check_row(
            ref_entry, ref_probs, ref_probs, labels, ref_acc, time.perf_counter() - t0, ref_backend, output_kind=kind
        )
    ]
    if on_done:
        on_done(rows[0])
    for entry, path in artifacts:
        t0 = time.perf_counter()
        out, backend = predict_all(path, images, spec=A.entry_spec(entry) or ref_spec)
        row = check_row(
            entry, compared(out, kind), ref_probs, labels, ref_acc, time.perf_counter() - t0, backend, output_kind=kind
        )
        rows.append(row)
        if on_done:
            on_done(row)
    summary = ParityReference(
        artifact=ref_entry.name, accuracy=ref_acc, images=len(images), sha256=ref_entry.sha256, output_kind=kind
    )
    return summary, rows


# -- several outputs: one row per artifact and output ----------------------------------------------
def predict_named(
    path: Path, feeds: dict[str, np.ndarray], batch_size: int = 1000, *, spec: ModelSpec | None = None
) -> tuple[dict[str, np.ndarray], str]:
    """Every output of the artifact at `path` for every row of `feeds`, keyed by output name, in batches."""
    n = len(next(iter(feeds.values())))
    with make_runner(path, spec=spec) as runner:
        starts = range(0, n, batch_size)
        parts = [runner.infer_named({k: v[i : i + batch_size] for k, v in feeds.items()}) for i in starts]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}, runner.backend()


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each pair of (x_min, y_min, x_max, y_max) boxes (any leading shape); 1 where both are empty."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)

    def area(x: np.ndarray) -> np.ndarray:
        sides: np.ndarray = np.clip(x[..., 2:4] - x[..., 0:2], 0, None)
        product: np.ndarray = sides[..., 0] * sides[..., 1]
        return product

    inter, union = w * h, area(a) + area(b) - w * h
    iou: np.ndarray = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 1.0)
    return iou


def output_score(kind: str, out: np.ndarray, targets: np.ndarray) -> tuple[str, float]:
    """(metric, value) of one output against its targets: accuracy, MAE or mean IoU."""
    if kind in ("probabilities", "logits"):
        return "accuracy", float((out.argmax(1) == targets).mean())
    if kind == "class_indices":
        return "accuracy", float((out.reshape(len(out)) == targets).mean())
    if kind == "boxes":
        return "mean IoU", float(box_iou(out, targets).mean())
    return "MAE", float(np.abs(out.astype(np.float64) - targets.reshape(out.shape)).mean())


def check_output_row(
    entry: ArtifactEntry,
    tensor: TensorSpec,
    out: np.ndarray,
    reference: np.ndarray,
    targets: np.ndarray,
    reference_score: float,
    seconds: float,
    backend: str,
    *,
    output_step: float | None = None,
) -> ParityRow:
    """One output of one artifact against the reference's same output, by that output's kind.

    `out` and `reference` are what `compared` gives (softmax of logits); `output_step` is the scale of the
    artifact's quantized output, the smallest |Δ| a boxes output can be asked for.
    """
    kind = tensor.kind or "probabilities"
    extra: dict[str, Any] = {"output": tensor.name, "output_kind": kind}
    if kind in ("probabilities", "logits", "values"):
        row = check_row(entry, out, reference, targets, reference_score, seconds, backend, output_kind=kind)
        if kind == "values":
            extra["mae"] = output_score(kind, out, targets)[1]
        return row.model_copy(update=extra)
    if kind == "class_indices":
        return _class_index_row(entry, out, reference, targets, reference_score, seconds, backend, extra)
    return _box_row(entry, out, reference, targets, seconds, backend, extra, output_step)


def _class_index_row(
    entry: ArtifactEntry,
    out: np.ndarray,
    reference: np.ndarray,
    labels: np.ndarray,
    reference_accuracy: float,
    seconds: float,
    backend: str,
    extra: dict[str, Any],
) -> ParityRow:
    from toolkit.run.documents import ParityRow

    pred, ref_pred = out.reshape(len(out)), reference.reshape(len(reference))
    accuracy, agreement = float((pred == labels).mean()), float((pred == ref_pred).mean())
    disagreements = int((pred != ref_pred).sum())
    tol = parity_tolerance(entry.precision, "class_indices").for_model(reference_accuracy)
    failures: list[str] = []
    floor = tol.min_agreement
    if floor is not None and agreement < floor and not within_noise(disagreements, len(pred), floor):
        failures.append(f"agreement {agreement:.4f} < {floor:.4g}")
    drop = reference_accuracy - accuracy
    noise = 2.0 * float(np.sqrt(disagreements)) / max(len(labels), 1)  # as `check_row`: McNemar's 2σ
    if tol.max_accuracy_drop is not None and drop > tol.max_accuracy_drop and drop > noise:
        failures.append(f"accuracy {accuracy:.4f} is {100 * drop:.2f} pt below the reference")
    differs = (pred != ref_pred).astype(np.float64)
    return ParityRow(
        **_row_facts(entry, seconds, backend),
        accuracy=accuracy,
        top1_agreement=agreement,
        disagreements=disagreements,
        max_abs_diff=float(differs.max()) if len(differs) else 0.0,
        mean_abs_diff=float(differs.mean()) if len(differs) else 0.0,
        passed=not failures,
        tolerance=tol.describe(),
        failures=failures,
        **extra,
    )


def _box_row(
    entry: ArtifactEntry,
    out: np.ndarray,
    reference: np.ndarray,
    targets: np.ndarray,
    seconds: float,
    backend: str,
    extra: dict[str, Any],
    output_step: float | None,
) -> ParityRow:
    from toolkit.run.documents import ParityRow

    tol = parity_tolerance(entry.precision, "boxes")
    diff = np.abs(out.astype(np.float64) - reference.astype(np.float64))
    max_abs = float(diff.max())
    scale = float(np.abs(reference).max()) or 1.0
    limit = (tol.max_rel_error or 0.0) * scale
    if tol.min_output_steps is not None and output_step:
        limit = max(limit, tol.min_output_steps * output_step)
    failures = [] if max_abs <= limit else [f"max |Δ| {max_abs:.3g} > {limit:.3g} (box scale {scale:.3g})"]
    return ParityRow(
        **_row_facts(entry, seconds, backend),
        accuracy=None,
        top1_agreement=None,
        disagreements=0,
        max_rel_error=max_abs / scale,
        max_abs_diff=max_abs,
        mean_abs_diff=float(diff.mean()),
        passed=not failures,
        tolerance=tol.describe(),
        failures=failures,
        mae=float(np.abs(out.astype(np.float64) - targets).mean()),
        mean_iou=float(box_iou(out, targets).mean()),
        iou_with_reference=float(box_iou(out, reference).mean()),
        **extra,
    )


def _row_facts(entry: ArtifactEntry, seconds: float, backend: str) -> dict[str, Any]:
    return {
        "artifact": entry.name,
        "format": entry.format,
        "precision": entry.precision,
        "runtime": entry.runtime,
        "seconds": round(seconds, 3),
        "backend": backend,
    }


def _output_step(spec: ModelSpec | None, name: str) -> float | None:
    """The scale of the artifact's quantized output `name` (None: a float output)."""
    if spec is None:
        return None
    tensor = next((t for t in spec.outputs if t.name == name), None)
    return tensor.scale if tensor is not None and tensor.quantized else None


def run_parity_named(
    reference: tuple[ArtifactEntry, Path],
    artifacts: list[tuple[ArtifactEntry, Path]],
    split: NamedSplit,
    spec: ModelSpec,
    *,
    on_done: Callable[[ParityRow], None] | None = None,
) -> tuple[ParityReference, list[ParityRow]]:
    """`run_parity` for a model with several inputs or outputs: one row per artifact and output."""
    from toolkit.run.documents import ParityOutput, ParityReference

    ref_entry, ref_path = reference
    kinds = {t.name: t.kind or "probabilities" for t in spec.outputs}
    t0 = time.perf_counter()
    raw, ref_backend = predict_named(ref_path, split.inputs, spec=A.entry_spec(ref_entry) or spec)
    ref_out = {name: compared(raw[name], kinds[name]) for name in kinds}
    scores = {name: output_score(kinds[name], ref_out[name], split.targets[name]) for name in kinds}
    rows: list[ParityRow] = []

    def judge(entry: ArtifactEntry, outs: dict[str, np.ndarray], seconds: float, backend: str) -> None:
        entry_spec = A.entry_spec(entry)
        for tensor in spec.outputs:
            name = tensor.name
            row = check_output_row(
                entry, tensor, compared(outs[name], kinds[name]), ref_out[name], split.targets[name],
                scores[name][1], seconds, backend, output_step=_output_step(entry_spec, name),
            )  # fmt: skip
            rows.append(row)
            if on_done:
                on_done(row)

    judge(ref_entry, raw, time.perf_counter() - t0, ref_backend)
    for entry, path in artifacts:
        t0 = time.perf_counter()
        outs, backend = predict_named(path, split.inputs, spec=A.entry_spec(entry) or spec)
        judge(entry, outs, time.perf_counter() - t0, backend)
    first = spec.outputs[0].name
    summary = ParityReference(
        artifact=ref_entry.name,
        accuracy=scores[first][1] if scores[first][0] == "accuracy" else None,
        images=len(split),
        sha256=ref_entry.sha256,
        output_kind=kinds[first],
        outputs=[ParityOutput(name=n, kind=kinds[n], metric=scores[n][0], value=scores[n][1]) for n in kinds],
    )
    return summary, rows


# -- the step over a run directory ---------------------------------------------------------------
def parity_step(
    run_dir: Path,
    *,
    artifact_names: list[str] | None = None,
    limit: int | None = None,
    data: Any = None,
    progress: ProgressCallback | None = None,
) -> ParityDocument:
    """Run every artifact over the test set against the Keras reference; write and return parity.json.

    `data`: the run's dataset.json (or shipped MNIST) when None; else an .npz, folder, MNIST source or Dataset.
    """
    from toolkit.run.documents import ParityDocument

    run = A.Run(run_dir)
    manifest = run.manifest()
    entries = A.select_artifacts(manifest, artifact_names)
    ref_entry = run.reference(manifest)
    if limit is not None and limit < 1:
        raise ToolkitError(f"--limit must be 1 or more, got {limit}.")
    # Check every file before the long work starts, so a tampered artifact fails fast.
    reference = (ref_entry, run.verified_path(ref_entry))
    others = [(e, run.verified_path(e)) for e in entries if e.name != ref_entry.name]
    spec = A.entry_spec(ref_entry) or run_spec(run_dir)
    dataset = run_dataset(run_dir, data, spec=spec)
    several = not spec.is_single
    p = as_progress(progress)
    task = p.add_task(f"parity: {ref_entry.name}", total=(1 + len(others)) * len(spec.outputs))
    names = [e.name for e, _ in others]

    def done(row: ParityRow) -> None:
        p.advance(task)
        index = names.index(row.artifact) + 1 if row.artifact in names else 0
        if index < len(names):
            p.update(task, description=f"parity: {names[index]}")

    output_tolerances = None
    if several:
        split = named_dataset(dataset, spec).test_named(spec, limit)
        summary, rows = run_parity_named(reference, others, split, spec, on_done=done)
        count = len(split)
        output_tolerances = {t.name: parity_table(t.kind or "probabilities") for t in spec.outputs}
    else:
        images, labels = dataset.test_split(spec, limit)
        summary, rows = run_parity(reference, others, images, labels, on_done=done)
        count = len(images)
    p.update(task, description="parity: done")
    return run.save(
        ParityDocument(
            schema_version=A.SCHEMA_VERSION,
            created_utc=A.utc_now(),
            cpu=A.this_cpu(),
            reference=summary,
            data=data_summary(dataset, count),
            tolerances=parity_table(summary.output_kind),
            output_tolerances=output_tolerances,
            artifacts={e.name: e.sha256 for e in [ref_entry, *(e for e, _ in others)]},
            results=rows,
            passed=all(r.passed for r in rows),
        )
    )


def named_dataset(dataset: Dataset, spec: ModelSpec) -> NamedDataset:
    """`dataset` as one array per tensor name, which a model with several inputs or outputs needs."""
    from toolkit.data.named import NamedDataset, names_text

    if isinstance(dataset, NamedDataset):
        return dataset
    raise DataError(
        f"{dataset.name} holds one input and one target, but the model has inputs {names_text(spec.input_names)} "
        f"and outputs {names_text(spec.output_names)}; give an .npz with one array per name."
    )
