"""Accuracy parity of every artifact against the Keras reference, over the whole test set."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtimes.registry import make_runner
from runtimes.spec import ModelSpec
from toolkit.data.mnist import Mnist, load_mnist, to_model_input
from toolkit.errors import ToolkitError
from toolkit.progress import ProgressCallback, as_progress
from toolkit.run import layout as A


@dataclass(frozen=True)
class Tolerance:
    """Pass criteria for one precision; None means the criterion does not apply."""

    max_abs_diff: float | None = None
    min_agreement: float | None = None
    max_accuracy_drop: float | None = None  # as a fraction: 0.005 = 0.5 points

    def describe(self) -> str:
        parts = []
        if self.min_agreement is not None:
            parts.append(f"agreement ≥ {self.min_agreement:g}")
        if self.max_abs_diff is not None:
            parts.append(f"max |Δp| ≤ {self.max_abs_diff:g}")
        if self.max_accuracy_drop is not None:
            parts.append(f"accuracy within {self.max_accuracy_drop * 100:g} pt")
        return ", ".join(parts)


# The one table of parity tolerances, keyed by precision.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs_diff=1e-5, min_agreement=1.0),
    "fp16": Tolerance(max_abs_diff=1e-2),
    "int8-dynamic": Tolerance(min_agreement=0.995, max_accuracy_drop=0.005),
    "int8": Tolerance(min_agreement=0.995, max_accuracy_drop=0.005),
    "int16x8": Tolerance(min_agreement=0.995, max_accuracy_drop=0.005),
}


@dataclass(frozen=True)
class ParityRow:
    artifact: str
    format: str
    precision: str
    runtime: str
    accuracy: float
    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    passed: bool
    disagreements: int
    tolerance: str
    failures: tuple[str, ...]
    seconds: float
    backend: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "format": self.format,
            "precision": self.precision,
            "runtime": self.runtime,
            "accuracy": self.accuracy,
            "top1_agreement": self.top1_agreement,
            "max_abs_diff": self.max_abs_diff,
            "mean_abs_diff": self.mean_abs_diff,
            "passed": self.passed,
            "disagreements": self.disagreements,
            "tolerance": self.tolerance,
            "failures": list(self.failures),
            "seconds": round(self.seconds, 3),
            "backend": self.backend,
        }


def predict_all(
    path: Path, images: np.ndarray, batch_size: int = 1000, *, spec: ModelSpec | None = None
) -> tuple[np.ndarray, str]:
    """Probabilities for every image, in batches, with the artifact's own runtime.

    `spec` (the manifest's) makes a file whose input or output no longer matches it a one-line error.
    """
    with make_runner(path, spec=spec) as runner:
        out = [runner.infer(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        return np.concatenate(out), runner.backend()


def check_row(
    entry: dict[str, Any],
    probs: np.ndarray,
    reference: np.ndarray,
    labels: np.ndarray,
    reference_accuracy: float,
    seconds: float,
    backend: str,
) -> ParityRow:
    """Compare one artifact's probabilities with the reference's and apply its tolerance."""
    pred, ref_pred = probs.argmax(1), reference.argmax(1)
    diff = np.abs(probs.astype(np.float64) - reference.astype(np.float64))
    accuracy = float((pred == labels).mean())
    agreement = float((pred == ref_pred).mean())
    max_abs, mean_abs = float(diff.max()), float(diff.mean())
    tol = TOLERANCES.get(entry["precision"], TOLERANCES["int8"])
    failures = []
    if tol.min_agreement is not None and agreement < tol.min_agreement:
        failures.append(f"agreement {agreement:.4f} < {tol.min_agreement:g}")
    if tol.max_abs_diff is not None and not max_abs <= tol.max_abs_diff:
        failures.append(f"max |Δp| {max_abs:.2e} > {tol.max_abs_diff:g}")
    if tol.max_accuracy_drop is not None and reference_accuracy - accuracy > tol.max_accuracy_drop:
        failures.append(
            f"accuracy {accuracy:.4f} is {100 * (reference_accuracy - accuracy):.2f} pt below the reference"
        )
    return ParityRow(
        artifact=entry["name"],
        format=entry["format"],
        precision=entry["precision"],
        runtime=entry["runtime"],
        accuracy=accuracy,
        top1_agreement=agreement,
        max_abs_diff=max_abs,
        mean_abs_diff=mean_abs,
        passed=not failures,
        disagreements=int((pred != ref_pred).sum()),
        tolerance=tol.describe(),
        failures=tuple(failures),
        seconds=seconds,
        backend=backend,
    )


def run_parity(
    reference: tuple[dict[str, Any], Path],
    artifacts: list[tuple[dict[str, Any], Path]],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    on_done: Callable[[ParityRow], None] | None = None,
) -> tuple[dict[str, Any], list[ParityRow]]:
    """Run the reference and every artifact over `images`; return the reference summary and rows.

    Args:
        reference: (manifest entry, path) of the Keras model.
        artifacts: (manifest entry, path) of each export to compare.
        images: float32 test inputs in the model's input shape and value range.
        labels: integer labels `[N]`.
        on_done: called after each row, for progress displays.
    """
    ref_entry, ref_path = reference
    t0 = time.perf_counter()
    ref_spec = A.entry_spec(ref_entry)
    ref_probs, ref_backend = predict_all(ref_path, images, spec=ref_spec)
    ref_acc = float((ref_probs.argmax(1) == labels).mean())
    rows = [check_row(ref_entry, ref_probs, ref_probs, labels, ref_acc, time.perf_counter() - t0, ref_backend)]
    if on_done:
        on_done(rows[0])
    for entry, path in artifacts:
        t0 = time.perf_counter()
        probs, backend = predict_all(path, images, spec=A.entry_spec(entry) or ref_spec)
        row = check_row(entry, probs, ref_probs, labels, ref_acc, time.perf_counter() - t0, backend)
        rows.append(row)
        if on_done:
            on_done(row)
    summary = {"artifact": ref_entry["name"], "accuracy": ref_acc, "images": len(images), "sha256": ref_entry["sha256"]}
    return summary, rows


# -- the step over a run directory ---------------------------------------------------------------
def parity_step(
    run_dir: Path,
    *,
    artifact_names: list[str] | None = None,
    limit: int | None = None,
    data: Mnist | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Run every artifact over the test set against the Keras reference; write parity.json."""
    manifest = A.load_manifest(run_dir)
    entries = A.select_artifacts(manifest, artifact_names)
    ref_entry = A.listed_reference(run_dir, manifest)
    if limit is not None and limit < 1:
        raise ToolkitError(f"--limit must be 1 or more, got {limit}.")
    # Check every file before the long work starts, so a tampered artifact fails fast.
    reference = (ref_entry, A.verified_path(run_dir, ref_entry))
    others = [(e, A.verified_path(run_dir, e)) for e in entries if e["name"] != A.REFERENCE_NAME]
    data = data or load_mnist()
    n = len(data.x_test) if limit is None else min(limit, len(data.x_test))
    images, labels = to_model_input(data.x_test[:n]), data.y_test[:n].astype(np.int64)
    p = as_progress(progress)
    task = p.add_task(f"parity: {A.REFERENCE_NAME}", total=1 + len(others))
    names = [e["name"] for e, _ in others]

    def done(row: Any) -> None:
        p.advance(task)
        index = names.index(row.artifact) + 1 if row.artifact in names else 0
        if index < len(names):
            p.update(task, description=f"parity: {names[index]}")

    summary, rows = run_parity(reference, others, images, labels, on_done=done)
    p.update(task, description="parity: done")
    report = {
        "schema_version": A.SCHEMA_VERSION,
        "created_utc": A.utc_now(),
        "reference": summary,
        "data": {"source": data.source, "verified": data.verified, "images": n},
        "tolerances": _tolerance_table(),
        "artifacts": {e["name"]: e["sha256"] for e in [ref_entry, *(e for e, _ in others)]},
        "results": [r.to_dict() for r in rows],
        "passed": all(r.passed for r in rows),
    }
    from toolkit.run.documents import ParityDocument

    A.save_document(run_dir / A.PARITY_JSON, report, ParityDocument)
    return report


def _tolerance_table() -> dict[str, str]:
    return {k: v.describe() for k, v in TOLERANCES.items()}
