"""The bench step: every artifact × configuration in a fresh process, plus FLOPs, peak rate and context.

Adaptive method (default): a first pass measures every configuration briefly (stopping early once its median
is known), then only the configurations that could still change a decision (`toolkit.steps.bench_focus`) are
measured on, in a fresh process, up to the cap; a Keras worker can be started early (`EarlyStart`) so its
TensorFlow import overlaps the export and parity steps. Fixed method: every configuration to its floor.
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.errors import ToolkitError
from toolkit.model.run_source import run_dataset, run_spec
from toolkit.progress import Progress, ProgressCallback, as_progress
from toolkit.run import layout as A
from toolkit.steps.bench_settings import DEFAULT_SETTINGS, BenchSettings

if TYPE_CHECKING:
    from benchmarks.harness import StartedWorker
    from runtimes.spec import ModelSpec
    from toolkit.data.dataset import Dataset
    from toolkit.run.documents import ArtifactEntry, BenchDocument, BenchMethod, BenchRow

# The fields every bench.json row has had since schema 1 (other tools read them), in this order:
# `BenchRow` declares them first.
STABLE_FIELDS = (
    "artifact",
    "format",
    "precision",
    "runtime",
    "batch_size",
    "threads",
    "load_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "runs",
    "throughput_ips",
)
TIMER = (
    "perf_counter_ns around runner.run_native on input already in the model's input type; "
    "io_p50_ms is the float32<->model-type conversion on its own; fresh process per configuration"
)
LOAD_MS = "cold start in the fresh process: runtime import + model load + first inference"
GFLOPS = "FLOPs per image (2 × MACs of conv/dense layers, counted from the model) × batch / p50"


@dataclass(frozen=True)
class _Job:
    """One worker process: an artifact at one thread count with one runner variant (all batch sizes)."""

    entry: ArtifactEntry
    path: Path
    threads: int
    options: dict[str, Any]  # the runner's keyword options: xnnpack or graph_optimization

    def label(self, done: int, total: int) -> str:
        plural = "s" if self.threads > 1 else ""
        return (
            f"bench: {self.entry.name}{_variant_label(self.options)} × {self.threads} thread{plural} ({done}/{total})"
        )


@dataclass(frozen=True)
class _Context:
    """What every row of a run adds beside the worker's statistics."""

    flops: dict[str, int | None]
    peak: dict[int, float]  # peak float32 GFLOP/s by thread count
    accuracy: dict[str, float | None]


def _variants(runtime: str, settings: BenchSettings) -> Iterator[dict[str, Any]]:
    """Runner options to sweep for one runtime: XNNPACK for TFLite, graph optimisation for ORT."""
    if runtime == "tflite":
        for on in dict.fromkeys(settings.xnnpack):
            yield {"xnnpack": on}
    elif runtime == "onnxruntime":
        for level in dict.fromkeys(settings.ort_optimization):
            yield {"graph_optimization": level}
    elif runtime == "openvino":
        for hint in dict.fromkeys(settings.openvino_hint):
            yield {"performance_hint": hint}
    else:
        yield {}


def _variant_label(options: dict[str, Any]) -> str:
    if options.get("xnnpack") is False:
        return " (no XNNPACK)"
    if options.get("graph_optimization") not in (None, "all"):
        return f" (ORT opt {options['graph_optimization']})"
    if options.get("performance_hint") not in (None, "LATENCY"):
        return f" ({options['performance_hint']})"
    return ""


def _accuracy_by_artifact(run: A.Run) -> dict[str, float | None]:
    from toolkit.run.documents import ParityDocument

    parity = run.find(ParityDocument)
    return {} if parity is None else {r.artifact: r.accuracy for r in parity.results}


def _flops(paths: list[tuple[ArtifactEntry, Path]]) -> dict[str, int | None]:
    """FLOPs per image counted from each model file; the network is the same, so gaps take the run's value."""
    from benchmarks.flops import flops_per_image

    counted = {e.name: flops_per_image(path) for e, path in paths}
    known = [v for v in counted.values() if v]
    fallback = max(known) if known else None
    return {name: value or fallback for name, value in counted.items()}


def _available(entries: list[ArtifactEntry]) -> tuple[list[ArtifactEntry], list[str]]:
    """On a board without TensorFlow, measure what the installed runtimes can run."""
    from runtimes.registry import runtime_versions

    installed = runtime_versions()
    skipped = [e.name for e in entries if installed.get(e.runtime) is None]
    kept = [e for e in entries if e.name not in skipped]
    if not kept:
        raise ToolkitError(
            f"none of this run's artifacts has its runtime installed ({', '.join(skipped)}); "
            "install ai-edge-litert, onnxruntime or openvino."
        )
    return kept, skipped


def _inputs(folder: Path, dataset: Dataset | None, spec: ModelSpec, batch: int) -> Path:
    """The largest batch of test inputs, in the model's input type, saved for the workers: an .npy, or for a model
    with several inputs an .npz of random feeds over each input's value range (one array per input name)."""
    if dataset is None or not spec.is_single:
        named = folder / "inputs.npz"
        feeds: dict[str, Any] = dict(spec.sample_feeds(batch, seed=0))
        np.savez(named, **feeds)
        return named
    x = dataset.inputs(dataset.x_test[:batch], spec)
    if len(x) < batch:  # a small test split: repeat it to fill the largest batch
        x = np.concatenate([x] * (-(-batch // len(x))))[:batch]
    path = folder / "inputs.npy"
    np.save(path, x, allow_pickle=False)
    return path


def _rows(job: _Job, out: dict[str, Any], context: _Context) -> list[BenchRow]:
    """bench.json's rows of one worker's result: one per batch size."""
    from benchmarks.peak import achieved
    from toolkit.run.documents import BenchRow

    entry, rows = job.entry, []
    for stats in out["results"]:
        fl = context.flops.get(entry.name)
        gflops = achieved(fl, stats["batch_size"], stats["p50_ms"]) if fl else None
        peak = context.peak.get(job.threads)
        row: dict[str, Any] = {
            "artifact": entry.name,
            "format": entry.format,
            "precision": entry.precision,
            "runtime": entry.runtime,
            "batch_size": stats["batch_size"],
            "threads": job.threads,
            "load_ms": out["load_ms"],
        }
        row.update({k: v for k, v in stats.items() if k not in row})
        row.update(
            options=out.get("options") or job.options,
            delegated=out.get("delegated"),
            activate_ms=out.get("activate_ms"),
            first_inference_ms=out.get("first_inference_ms"),
            peak_rss_mb=out.get("peak_rss_mb"),
            backend=out.get("backend"),
            runtime_version=out.get("runtime_version"),
            flops_per_image=fl,
            gflops=gflops,
            pct_of_peak=100 * gflops / peak if gflops and peak else None,
            accuracy=context.accuracy.get(entry.name),
            size_bytes=entry.size_bytes,
        )
        rows.append(BenchRow.model_validate(row))
    return rows


@dataclass(frozen=True)
class _Pass:
    """One round of worker processes: how long each may measure, and how it stops."""

    name: str  # shown in the progress line
    method: str
    max_seconds: float

    @staticmethod
    def first(settings: BenchSettings) -> _Pass:
        if settings.stopping == "fixed":
            return _Pass("", "fixed", settings.max_seconds)
        return _Pass("first pass", "adaptive", max(settings.quick_seconds, settings.min_seconds))

    def worker_options(self, settings: BenchSettings) -> dict[str, Any]:
        return {
            "warmup_runs": settings.warmup_runs,
            "warmup_seconds": settings.warmup_seconds,
            "min_runs": settings.min_runs,
            "min_seconds": settings.min_seconds,
            "max_seconds": self.max_seconds,
            "method": self.method,
            "precision": settings.precision,
        }


def _measure(
    jobs: list[tuple[_Job, list[int]]],
    inputs: Path,
    settings: BenchSettings,
    how: _Pass,
    context: _Context,
    p: Progress,
    task: int,
    early: EarlyStart | None = None,
    passed: set[tuple[str, str]] | None = None,
    stop_beaten: bool = False,
) -> list[list[BenchRow]]:
    """Run every job in its own worker process (at its batch sizes); its rows, per job in job order.

    Workers start in groups of as many as the machine has cores (`run_workers`): a short job's wall time is mostly
    its process's start-up, which then overlaps its siblings', while each still times alone. With `stop_beaten`
    (the adaptive first pass), each worker may stop a batch size early once it is certainly slower than a row
    timed before it (`bench_focus.beaten_above`)."""
    import contextlib
    import functools

    from benchmarks.harness import run_workers, start_worker

    def starter(job: _Job, batch_sizes: list[int]) -> Callable[[], StartedWorker]:
        started = early.take(job.path, job.threads, batch_sizes) if early is not None and not job.options else None
        if started is not None:
            return lambda: started
        options = {**how.worker_options(settings), **job.options}
        return functools.partial(
            start_worker, job.path, inputs, threads=job.threads, batch_sizes=batch_sizes, **options
        )

    from toolkit.steps.bench_focus import beaten_above

    done_rows: list[list[BenchRow]] = []
    first_batch = min((b for _, batches in jobs for b in batches), default=1)

    def thresholds(job: _Job, batches: list[int]) -> dict[int, float] | None:
        if not stop_beaten:
            return None
        measured = [r for rows in done_rows for r in rows]
        key, accuracy = (job.entry.name, job.entry.runtime), context.accuracy.get(job.entry.name)
        above = {b: beaten_above(measured, key, accuracy, b, first_batch, passed) for b in batches}
        return {b: ms for b, ms in above.items() if ms is not None}

    group = _start_group()
    for first in range(0, len(jobs), group):
        chunk = jobs[first : first + group]
        starts = [starter(job, b) for job, b in chunk]
        above = functools.partial(lambda chunk, i: thresholds(*chunk[i]), chunk)
        with contextlib.closing(run_workers(starts, beaten_above=above)) as outs:
            for done, (job, _) in enumerate(chunk, start=first + 1):
                label = job.label(done, len(jobs))
                p.update(task, description=f"{label}, {how.name}" if how.name else label)
                done_rows.append(_rows(job, next(outs), context))
                p.advance(task)
    return done_rows


def _first_pass(
    jobs: list[_Job],
    batches: list[int],
    inputs: Path,
    settings: BenchSettings,
    context: _Context,
    p: Progress,
    task: int,
    early: EarlyStart | None,
    passed: set[tuple[str, str]] | None,
) -> list[list[BenchRow]]:
    """Every job once, rows per job in job order. The adaptive method times the Keras jobs last (they are never the
    fastest here, and their workers were started early anyway), so that the rows timed before a job can stop it
    early when they certainly beat it (`_measure`'s `stop_beaten`)."""
    adaptive = settings.stopping != "fixed"
    order = sorted(range(len(jobs)), key=lambda k: adaptive and jobs[k].entry.runtime == "keras")
    rows = _measure(
        [(jobs[k], batches) for k in order],
        inputs,
        settings,
        _Pass.first(settings),
        context,
        p,
        task,
        early,
        passed=passed,
        stop_beaten=adaptive,
    )
    by_job: dict[int, list[BenchRow]] = dict(zip(order, rows, strict=True))
    return [by_job[k] for k in range(len(jobs))]


def _start_group() -> int:
    """How many workers start together: one per core (start-ups are single-threaded), at most 4 (more would only
    hold memory while waiting)."""
    from benchmarks.environment import available_cores

    return max(1, min(4, available_cores() or 1))


def _passed(run: A.Run) -> set[tuple[str, str]] | None:
    """(artifact, runtime) pairs whose every parity row passed; None without parity.json."""
    from toolkit.run.documents import ParityDocument

    parity = run.find(ParityDocument)
    return None if parity is None else set(parity.passing())


def _adaptive(
    jobs: list[_Job],
    first: list[list[BenchRow]],
    inputs: Path,
    settings: BenchSettings,
    context: _Context,
    passed: set[tuple[str, str]] | None,
    p: Progress,
    task: int,
) -> list[tuple[int, BenchRow]]:
    """After the first pass over every job (`first`, its rows per job), up to three rounds measuring on the rows
    that could change a decision; each row with the index of its job."""
    total = len(jobs) + (1 if settings.measure_peak else 0)
    from toolkit.steps.bench_focus import decide

    # One entry per row: (job index, row), in job order; `full` marks rows measured on after the first pass.
    rows = [(k, row) for k, job_rows in enumerate(first) for row in job_rows]
    full: dict[int, str] = {}
    for _ in range(3):  # a second or third look only if measuring on moved the leaders
        decisions = decide([r for _, r in rows], passed)
        todo: dict[int, list[int]] = {}
        for i, ((k, row), d) in enumerate(zip(rows, decisions, strict=True)):
            keras = jobs[k].entry.runtime == "keras"
            if d.reason and row.stop in _UNSETTLED and i not in full and (settings.keras_full or not keras):
                todo.setdefault(k, []).append(i)
                full[i] = d.reason
        if not todo:
            break
        total += len(todo)
        p.update(task, total=total)
        again = _measure(
            [(jobs[k], [rows[i][1].batch_size for i in idx]) for k, idx in todo.items()],
            inputs,
            settings,
            _Pass("measuring on", "adaptive", settings.max_seconds),
            context,
            p,
            task,
        )
        for (k, idx), new_rows in zip(todo.items(), again, strict=True):
            by_batch = {r.batch_size: r for r in new_rows}
            for i in idx:
                rows[i] = (k, by_batch[rows[i][1].batch_size].model_copy(update={"full_pass": full[i]}))
    return rows


def _across_processes(
    jobs: list[_Job],
    rows: list[tuple[int, BenchRow]],
    inputs: Path,
    settings: BenchSettings,
    context: _Context,
    passed: set[tuple[str, str]],
    p: Progress,
    task: int,
) -> list[tuple[int, BenchRow]]:
    """Measure the leaders of the recommendation (`bench_focus.leaders`) in more fresh processes, interleaved so a
    machine that changes speed touches them all alike, and give each the fastest process's row (`_combined`),
    the others' p50s listed: one process's interval is far narrower than the spread between fresh processes on a
    shared machine, so one process per configuration lets that spread pick.

    Every leader gets a second process; those that could then be the pick (`_close`) get up to
    `settings.process_count` in all. Leaders are chosen with `PROCESS_SPREAD_PRIOR`, then
    with the spread the processes showed where it is wider; that shown spread also widens who could be the pick, so
    that on a machine whose processes land in two modes each close rival gets as many chances at the fast mode as
    the fastest had."""
    from toolkit.steps.bench_focus import PROCESS_SPREAD_PRIOR, leaders, process_spread

    # Each process is one sample of where a fresh process lands: the first pass's length (the fixed floor, or the
    # adaptive first pass) is enough for that, as the interval of each is kept.
    how = dataclasses.replace(_Pass.first(settings), name="across processes")
    samples: dict[int, list[BenchRow]] = {}
    spread, shown = PROCESS_SPREAD_PRIOR, 0.0
    for _ in range(2 * settings.process_count):
        current = [r for _, r in rows]
        lead = leaders(current, passed, spread)
        if not lead:
            break
        best = min(lead, key=lambda i: current[i].p50_ms)
        wanted = {i: settings.process_count if _close(current, i, best, shown) else 2 for i in lead}
        todo = [i for i in lead if len(samples.get(i, [0])) < wanted[i]]
        if not todo:
            break
        p.add_total(task, len(todo))
        again = _measure(
            [(jobs[rows[i][0]], [rows[i][1].batch_size]) for i in todo], inputs, settings, how, context, p, task
        )
        for i, new_rows in zip(todo, again, strict=True):
            samples.setdefault(i, [rows[i][1]]).append(new_rows[0])
            rows[i] = (rows[i][0], _combined(samples[i]))
        shown = max([shown] + [process_spread([r.p50_ms for r in s]) for s in samples.values()])
        spread = max(spread, shown)
    return rows


def _close(rows: list[BenchRow], i: int, best: int, shown: float = 0.0) -> bool:
    """Whether row `i` could be the pick: within the tie margin of the fastest leader `best`, or within the spread
    the leaders' processes have shown (`shown`, a fraction of p50: one more process of `i` could land that much
    lower), or the same artifact at another thread count (which one the tie rule picks hangs on it)."""
    from toolkit.steps.bench_focus import TIE_MARGIN

    same = (rows[i].artifact, rows[i].runtime) == (rows[best].artifact, rows[best].runtime)
    return same or rows[i].p50_ms <= rows[best].p50_ms * (1 + max(TIE_MARGIN, shown))


def _combined(processes: list[BenchRow]) -> BenchRow:
    """One row for a configuration measured in several processes: the fastest process's row, whole (its p50 and
    its own interval), with every process's p50 listed.

    The fastest, as `timeit` takes the best of its repeats: a slower process is one that something slowed (a
    neighbour, the core it landed on, where its buffers fell); on a shared 2-core VM, processes of one file
    landed 1-3 % apart when quiet and up to 2x apart otherwise, in two modes. The median of three is then a coin
    toss between the modes, and intervals spanning every process overlap for every leader, so nothing could be
    told apart; the best process is what the configuration does when nothing interferes. The slower ones stay
    in `process_p50_ms` and the report."""
    best = min(processes, key=lambda r: r.p50_ms)
    return best.model_copy(
        update={
            "process_p50_ms": [r.p50_ms for r in processes],
            "full_pass": next((r.full_pass for r in processes if r.full_pass), None),
        }
    )


# First-pass rows whose median is not known to the precision: stopped by the cap, or early as certainly beaten.
_UNSETTLED = ("cap", "beaten")


def _settled(
    jobs: list[_Job], rows: list[tuple[int, BenchRow]], settings: BenchSettings, passed: set[tuple[str, str]] | None
) -> list[BenchRow]:
    """The final rows: in the adaptive method, each row the first pass capped and nothing measured on settled."""
    if settings.stopping == "fixed":
        return [row for _, row in rows]
    from toolkit.steps.bench_focus import decide

    decisions = decide([r for _, r in rows], passed)
    return [_settle(jobs[k], row, d.beaten_by, settings) for (k, row), d in zip(rows, decisions, strict=True)]


def _settle(job: _Job, row: BenchRow, beaten_by: str | None, settings: BenchSettings) -> BenchRow:
    """A row the first pass capped and nothing measured on: dominated (naming what beats it), or a Keras row
    left at the first pass."""
    if row.stop not in _UNSETTLED or row.full_pass is not None:
        return row
    if beaten_by is None:
        return row if settings.keras_full or job.entry.runtime != "keras" else row.model_copy(update={"stop": "quick"})
    return row.model_copy(update={"stop": "dominated", "dominated_by": beaten_by})


def _method(settings: BenchSettings, threads: list[int], entries: list[ArtifactEntry]) -> BenchMethod:
    from toolkit.run.documents import BenchMethod

    return BenchMethod(
        batch_sizes=list(settings.batch_sizes),
        threads=threads,
        xnnpack=list(settings.xnnpack),
        ort_optimization=list(settings.ort_optimization),
        openvino_hint=list(settings.openvino_hint) if any(e.runtime == "openvino" for e in entries) else None,
        warmup_runs=settings.warmup_runs,
        warmup_seconds=settings.warmup_seconds,
        min_runs=settings.min_runs,
        min_seconds=settings.min_seconds,
        max_seconds=settings.max_seconds,
        method=settings.stopping,
        precision=settings.precision if settings.stopping == "adaptive" else None,
        quick_seconds=settings.quick_seconds if settings.stopping == "adaptive" else None,
        keras_full=settings.keras_full if settings.stopping == "adaptive" else None,
        processes=settings.process_count,
        timer=TIMER,
        load_ms=LOAD_MS,
        gflops=GFLOPS,
    )


def _noisy(rows: list[BenchRow]) -> list[str]:
    from toolkit.run.documents import dump_document

    return [
        f"{r.artifact}{_variant_label(dump_document(r.options) if r.options else {})} "
        f"b{r.batch_size}×{r.threads}t: {r.noise}"
        for r in rows
        if r.noisy
    ]


class EarlyStart:
    """Keras workers started before the benchmark, while export and parity run: TensorFlow's import and the
    model load (seconds) then overlap that work instead of adding to the benchmark. They time nothing until the
    bench step lets them go, one at a time, so no measurement overlaps anything. Use as a context manager:
    leaving it stops the workers it did not hand out and removes their inputs file."""

    def __init__(self, run_dir: Path, settings: BenchSettings, data: Any = None) -> None:
        self.settings = settings
        self._tmp = tempfile.TemporaryDirectory(prefix="edgekit-bench-")
        self._workers: dict[tuple[Path, int], tuple[list[int], StartedWorker]] = {}
        self.inputs: Path | None = None
        self._start(run_dir, data)

    def _start(self, run_dir: Path, data: Any) -> None:
        from benchmarks.harness import start_worker, thread_counts

        model = A.model_file(run_dir)
        if model.suffix != ".keras" or not model.is_file():
            return
        spec = run_spec(run_dir)
        dataset = run_dataset(run_dir, data, spec=spec) if spec.is_single else None
        self.inputs = _inputs(Path(self._tmp.name), dataset, spec, max(self.settings.batch_sizes))
        threads = list(dict.fromkeys(self.settings.threads)) if self.settings.threads else thread_counts()
        batches = list(self.settings.batch_sizes)
        how = _Pass.first(self.settings)
        for t in threads:
            options = how.worker_options(self.settings)
            self._workers[(model.resolve(), t)] = (
                batches,
                start_worker(model, self.inputs, threads=t, batch_sizes=batches, **options),
            )

    def take(self, path: Path, threads: int, batch_sizes: list[int]) -> StartedWorker | None:
        """The started worker for this model file and thread count, if it times these batch sizes."""
        found = self._workers.pop((path.resolve(), threads), None)
        if found is None:
            return None
        if found[0] != batch_sizes:
            found[1].cancel()
            return None
        return found[1]

    def __enter__(self) -> EarlyStart:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for _, worker in self._workers.values():
            worker.cancel()
        self._workers.clear()
        self._tmp.cleanup()


def bench_step(
    run_dir: Path,
    settings: BenchSettings = DEFAULT_SETTINGS,
    *,
    artifact_names: list[str] | None = None,
    data: Any = None,
    progress: ProgressCallback | None = None,
    early: EarlyStart | None = None,
) -> BenchDocument:
    """Measure every artifact in a fresh process per (artifact, threads, variant); write and return bench.json.

    `early`: Keras workers started while the steps before ran (`EarlyStart`), taken where they fit.
    """
    from benchmarks.environment import capture_environment
    from benchmarks.harness import thread_counts
    from benchmarks.peak import measure_peak
    from toolkit.run.documents import BenchDocument, Environment, SkippedArtifact

    settings.check()
    run = A.Run(run_dir)
    entries = A.select_artifacts(run.manifest(), artifact_names)
    skipped: list[str] = []
    if not artifact_names:
        entries, skipped = _available(entries)
    paths = [(e, run.verified_path(e)) for e in entries]
    threads = list(dict.fromkeys(settings.threads)) if settings.threads else thread_counts()
    spec = run_spec(run_dir)
    jobs = [
        _Job(entry, path, t, options)
        for (entry, path), t in itertools.product(paths, threads)
        for options in _variants(entry.runtime, settings)
    ]
    p = as_progress(progress)
    task = p.add_task("bench", total=len(jobs) + (1 if settings.measure_peak else 0))
    peak: dict[int, float] = {}
    if settings.measure_peak:
        p.update(task, description="bench: peak float32 rate (matrix multiply)")
        # The adaptive method's rate is a reference for "% of peak", not a decision: a quarter second per count.
        peak = measure_peak(threads, seconds=1.0 if settings.stopping == "fixed" else 0.25)
        p.advance(task)
    context = _Context(_flops(paths), peak, _accuracy_by_artifact(run))
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        if early is not None and early.inputs is not None and early.settings == settings:
            inputs = early.inputs
        else:
            # Several inputs: timed on random feeds over each input's value range (latency does not hang on them).
            dataset = run_dataset(run_dir, data, spec=spec) if spec.is_single else None
            inputs = _inputs(Path(tmp), dataset, spec, max(settings.batch_sizes))
            early = None
        batches = list(settings.batch_sizes)
        passed = _passed(run)
        first = _first_pass(jobs, batches, inputs, settings, context, p, task, early, passed)
        if settings.stopping == "fixed":
            indexed = [(k, row) for k, job_rows in enumerate(first) for row in job_rows]
        else:
            indexed = _adaptive(jobs, first, inputs, settings, context, passed, p, task)
        if passed is not None and settings.process_count > 1:
            indexed = _across_processes(jobs, indexed, inputs, settings, context, passed, p, task)
        rows = _settled(jobs, indexed, settings, passed)
    p.update(task, description="bench: done")
    environment = capture_environment()
    environment["peak_gflops"] = {str(t): v for t, v in peak.items()}
    return run.save(
        BenchDocument(
            schema_version=A.SCHEMA_VERSION,
            created_utc=A.utc_now(),
            run=run.name,
            environment=Environment.model_validate(environment),
            method=_method(settings, threads, [e for e, _ in paths]),
            skipped=[SkippedArtifact(artifact=name, reason="runtime not installed") for name in skipped],
            artifacts={e.name: e.sha256 for e, _ in paths},
            noisy=_noisy(rows),
            results=rows,
        )
    )
