"""Parity under other CPU classes: the run's exports re-run under QEMU CPU models, added to parity.json.

For each emulated CPU (`toolkit.cpus.models`) every export runs over the first N test inputs in
`benchmarks.outputs`, and so does this machine natively. Each row says, for one artifact on one CPU:
- accuracy and top-1 agreement with the Keras reference (run natively; no TensorFlow under emulation), judged
  by the precision's parity tolerance (`toolkit.tolerances.parity_tolerance`);
- max |Δ| against this machine's own outputs, judged by the tolerance a board's `verify` uses for the same
  artifact (`toolkit.tolerances.machine_tolerance`: 1e-5 for fp32, one output step for int8): "the same answers".

The section `cpu_classes` of parity.json holds them; report.html shows them as "Same answers on which CPUs".
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.cpus.launch import JobResult, check_can_emulate, needs_root, run_emulated, run_native
from toolkit.cpus.models import CPU_MODELS, CpuModel, cpu_help
from toolkit.errors import ToolkitError
from toolkit.progress import ProgressCallback, as_progress
from toolkit.run import layout as A

if TYPE_CHECKING:
    from toolkit.run.documents import ArtifactEntry, CpuClasses, CpuClassRun, CpuParityRow, ManifestDocument

DEFAULT_IMAGES = 1000
NOT_EMULATED = (
    "QEMU's TCG cannot emulate AVX-512, VNNI or AMX (those classes are measured only natively), and emulation "
    "gives no timing of any kind"
)


def parse_cpus(names: list[str]) -> list[CpuModel]:
    """The CPU models named (each once, in order), checked to be emulable here.

    Raises:
        ToolkitError: none named, an unknown name, or a model this machine cannot emulate (one line each).
    """
    models: list[CpuModel] = []
    for name in names:
        model = CPU_MODELS.get(name.strip().lower())
        if model is None:
            raise ToolkitError(f"--cpu: unknown CPU {name!r}; choose from {cpu_help()}.")
        if model not in models:
            models.append(model)
    if not models:
        raise ToolkitError("--cpu: name at least one CPU to emulate; choose from " + cpu_help() + ".")
    for model in models:
        check_can_emulate(model)
    return models


def exported(names: list[str] | None) -> None:
    """Refuse, before any work, an artifact choice that leaves nothing to emulate (only the Keras reference)."""
    if names and all(n == A.REFERENCE_NAME for n in names):
        raise ToolkitError("--cpu runs the exports, not the Keras reference: name at least one exported artifact.")


def _job(folder: Path, inputs: Path, entries: list[tuple[ArtifactEntry, Path]], tag: str) -> Path:
    out = folder / f"out-{tag}"
    job = {
        "inputs": str(inputs),
        "out": str(out),
        "threads": 1,  # one thread: emulated jobs run side by side, and int8 sums are the same for any count
        "artifacts": [
            {"name": e.name, "path": str(p), "model_spec": e.model_spec.to_dict() if e.model_spec else None}
            for e, p in entries
        ],
    }
    path = folder / f"job-{tag}.json"
    path.write_text(json.dumps(job), encoding="utf-8")
    return path


def _rows(
    result: JobResult,
    entries: list[tuple[ArtifactEntry, Path]],
    reference: tuple[np.ndarray, np.ndarray, float | None, str],
    native: dict[str, np.ndarray] | None,
) -> list[CpuParityRow]:
    from toolkit.bundles.verify import tolerance_for
    from toolkit.run.documents import CpuParityRow, dump_document
    from toolkit.steps.parity import check_row, compared
    from toolkit.tolerances import allowed_diff

    ref_probs, labels, ref_acc, kind = reference
    rows: list[CpuParityRow] = []
    for entry, path in entries:
        line = result.lines.get(entry.name)
        if line is None or "error" in line:
            error = "no output" if line is None else str(line["error"])
            rows.append(CpuParityRow(artifact=entry.name, passed=False, failures=[error], error=error))
            continue
        out = np.load(line["file"], allow_pickle=False)
        seconds, backend = float(line["seconds"]), str(line["backend"])
        row = dump_document(
            check_row(entry, compared(out, kind), ref_probs, labels, ref_acc, seconds, backend, output_kind=kind)
        )
        keep = ("artifact", "precision", "runtime", "backend", "accuracy", "top1_agreement", "max_rel_error")
        doc = {k: row[k] for k in keep if k in row}
        doc.update(max_abs_diff=row["max_abs_diff"], seconds=row["seconds"], tolerance=row["tolerance"])
        failures = list(row["failures"])
        if native is not None:
            mine = native[entry.name]
            magnitude = float(np.abs(mine).max()) if mine.size else 0.0
            tol = tolerance_for(entry, path, magnitude=magnitude)
            diff = float(np.abs(out.astype(np.float64) - mine.astype(np.float64)).max())
            doc.update(
                max_abs_diff_vs_native=diff,
                identical_to_native=bool(np.array_equal(out, mine)),
                native_tolerance=tol.max_abs,
                native_basis=tol.basis,
            )
            if diff > allowed_diff(tol.max_abs):
                failures.append(f"max |Δ| {diff:.3g} against this machine > {tol.max_abs:.3g} ({tol.basis})")
        doc.update(passed=not failures, failures=failures)
        rows.append(CpuParityRow.model_validate(doc))
    return rows


def cpu_parity(
    run_dir: Path,
    cpus: list[str],
    *,
    artifact_names: list[str] | None = None,
    images: int = DEFAULT_IMAGES,
    data: Any = None,
    progress: ProgressCallback | None = None,
    say: Callable[[str], None] | None = None,
) -> CpuClasses:
    """Re-run the run's exports under each emulated CPU in `cpus`; returns parity.json's `cpu_classes` section.

    Args:
        cpus: names from `toolkit.cpus.models.CPU_MODELS` (e.g. haswell, nehalem, cortex-a72, cortex-a76).
        artifact_names: only these exports (default: all; the Keras reference never runs emulated).
        images: the first N test inputs (emulation is 20-100x slower than this machine).
        data: the run's data (as for `parity_step`).
        say: gets a line for each slow step (building the arm64 root).

    Raises:
        ToolkitError: an unknown CPU, no export to run, or a CPU this machine cannot emulate (one line each).
    """
    from toolkit.run.documents import CpuClasses

    models = parse_cpus(cpus)
    if images < 1:
        raise ToolkitError(f"--cpu-images must be 1 or more, got {images}.")
    exported(artifact_names)
    manifest = A.load_manifest(run_dir)
    chosen = A.select_artifacts(manifest, artifact_names)
    entries = [(e, A.verified_path(run_dir, e)) for e in chosen if e.name != A.reference_name(manifest)]
    if not entries:
        raise ToolkitError("--cpu runs the exports, not the Keras reference: name at least one exported artifact.")
    x, reference = _reference(run_dir, manifest, data, images)
    ticks = _Ticks(as_progress(progress), ["native", *(m.name for m in models)], len(entries))
    started = time.perf_counter()
    for stale in run_dir.glob(".cpu-parity-*"):  # left by a killed run (one writer per run: the run lock)
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=".cpu-parity-", dir=run_dir) as tmp:
        native_result, results = _run_jobs(Path(tmp), x, entries, models, ticks, say or (lambda _t: None))
        native = {n: np.load(line["file"]) for n, line in native_result.lines.items() if "file" in line}
        classes = [_native_class(native_result, _rows(native_result, entries, reference, None))]
        classes += [
            _emulated_class(m, results[m.name], _rows(results[m.name], entries, reference, native)) for m in models
        ]
    ticks.close()
    return CpuClasses(
        images=len(reference[1]),
        seconds=round(time.perf_counter() - started, 1),
        not_emulated=NOT_EMULATED,
        classes=classes,
        passed=all(c.passed for c in classes),
    )


def _reference(
    run_dir: Path, manifest: ManifestDocument, data: Any, images: int
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, float | None, str]]:
    """The first `images` test inputs, and the Keras reference's outputs on them (run natively), the labels,
    the reference's accuracy and the output kind."""
    from toolkit.model.run_source import run_dataset, run_spec
    from toolkit.steps.parity import compared, predict_all

    ref_entry = A.listed_reference(run_dir, manifest)
    ref_path = A.verified_path(run_dir, ref_entry)
    spec = A.entry_spec(ref_entry) or run_spec(run_dir)
    kind = spec.output_kind
    x, y = run_dataset(run_dir, data, spec=spec).test_split(spec, images)
    labels = np.asarray(y)
    x = np.asarray(x, dtype=np.float32)
    ref_out, _ = predict_all(ref_path, x, spec=spec)
    ref_probs = compared(ref_out, kind)
    ref_acc = None if kind == "values" else float((ref_probs.argmax(1) == labels).mean())
    return x, (ref_probs, labels, ref_acc, kind)


class _Ticks:
    """One progress task per CPU class, advanced as its job reports each artifact done."""

    def __init__(self, progress: Any, names: list[str], total: int) -> None:
        self.progress = progress
        self.lock = threading.Lock()
        self.tasks = {n: progress.add_task(f"cpu {n}: starting", total=total) for n in names}

    def on_line(self, name: str) -> Callable[[dict[str, Any]], None]:
        def on_line(line: dict[str, Any]) -> None:
            if "artifact" in line:
                with self.lock:
                    self.progress.update(self.tasks[name], description=f"cpu {name}: {line['artifact']}")
                    self.progress.advance(self.tasks[name])

        return on_line

    def close(self) -> None:
        for task in self.tasks.values():
            self.progress.remove_task(task)


def _run_jobs(
    folder: Path,
    x: np.ndarray,
    entries: list[tuple[ArtifactEntry, Path]],
    models: list[CpuModel],
    ticks: _Ticks,
    say: Callable[[str], None],
) -> tuple[JobResult, dict[str, JobResult]]:
    """Every export over `x` natively, then under each emulated CPU (side by side where each runs directly; the
    ones that need the arm64 root one after another): the native result and each model's."""
    from benchmarks.environment import available_cores

    inputs = folder / "inputs.npy"
    np.save(inputs, x, allow_pickle=False)
    native_result = run_native(_job(folder, inputs, entries, "native"), ticks.on_line("native"))
    direct = [m for m in models if not needs_root(m)]
    in_root = [m for m in models if needs_root(m)]
    results: dict[str, JobResult] = {}

    def one(model: CpuModel) -> None:
        job = _job(folder, inputs, entries, model.name)
        results[model.name] = run_emulated(model, job, ticks.on_line(model.name), say=say)

    def rooted() -> None:
        for model in in_root:  # one root, one set of mounts: one model at a time
            one(model)

    workers = max(1, min(len(direct) + (1 if in_root else 0), available_cores() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, m) for m in direct] + ([pool.submit(rooted)] if in_root else [])
        for future in futures:
            future.result()
    return native_result, results


def _native_class(result: JobResult, rows: list[CpuParityRow]) -> CpuClassRun:
    from benchmarks.cpu import detect_cpu
    from benchmarks.environment import cpu_model
    from toolkit.run.documents import CpuClassRun

    return CpuClassRun.model_validate(
        {
            "name": "native",
            "emulated": False,
            "qemu_cpu": None,
            "stands_for": cpu_model() or "this machine",
            "cpu": result.cpu or detect_cpu().to_dict(),
            "qemu": None,
            "seconds": round(result.seconds, 1),
            "rows": rows,
            "passed": all(r.passed for r in rows),
        }
    )


def _emulated_class(model: CpuModel, result: JobResult, rows: list[CpuParityRow]) -> CpuClassRun:
    from toolkit.run.documents import CpuClassRun

    return CpuClassRun.model_validate(
        {
            "name": model.name,
            "emulated": True,
            "qemu_cpu": model.qemu_cpu,
            "stands_for": model.stands_for,
            "cpu": result.cpu,
            "qemu": result.qemu,
            "seconds": round(result.seconds, 1),
            "rows": rows,
            "passed": all(r.passed for r in rows),
        }
    )
