"""Time the model through its runner and summarise the calls.

The timed call is `Runner.run_native` on a batch already converted to the model's input type
(int8 for an int8-I/O model), as `benchmark_model` and `litert-benchmark` time the model: only that
call sits between the two `perf_counter_ns` readings, so the numbers are the runtime's latency and
nothing of the harness (`python -m benchmarks.harness_check` compares it with a hand-written loop
on the bare runtime). The float <-> native conversion a caller of `Runner.infer` also pays
(quantizing the input, dequantizing the output) is timed separately and reported as `io_p50_ms`.

Method, close to MLPerf Inference single-stream: one query (batch) at a time, at least 1,024 timed
queries AND at least 2 s, after a warm-up of at least 10 calls AND 0.2 s; p90 is reported with a
distribution-free 95 % CI, and each run is checked for drift (see `benchmarks.stats`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace

import numpy as np

from benchmarks.stats import noise_check, percentiles, quantile_ci
from runtimes.base import Runner

_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class LatencyStats:
    """Summary of the timed calls at one batch size.

    Attributes:
        batch_size: images per `infer` call.
        threads: the runner's thread setting (None: the runtime's default).
        runs: number of timed calls.
        p50_ms: median latency of one call, in milliseconds.
        p90_ms: 90th percentile latency, in milliseconds.
        p99_ms: 99th percentile latency, in milliseconds.
        mean_ms: mean latency, in milliseconds.
        std_ms: sample standard deviation of the latency (0 for a single run), in milliseconds.
        min_ms: fastest call, in milliseconds.
        max_ms: slowest call, in milliseconds.
        throughput_ips: images per second, `batch_size / mean latency`.
        total_s: wall-clock duration of the timed phase, in seconds.
        p95_ms: 95th percentile latency, in milliseconds.
        p90_ci_low_ms: lower end of a distribution-free 95 % confidence interval for the true p90
            (an order statistic at a Binomial(n, 0.9) rank); None with too few runs (n = 1).
        p90_ci_high_ms: upper end of that interval; None with fewer than 36 runs.
        quantiles_ms: the 0th to 100th percentiles (101 values), for distribution plots.
        noisy: True when the run looks unstable or too short to trust (`benchmarks.stats`).
        noise: why, in a short sentence (None when not noisy).
        io_p50_ms: median cost of the float <-> native I/O conversion around one call
            (`to_native` + `from_native`: quantizing input and dequantizing output for integer-I/O
            models, about nothing for float models), in milliseconds; not included in the figures
            above. None when not measured.
    """

    batch_size: int
    threads: int | None
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    throughput_ips: float
    total_s: float
    p95_ms: float
    p90_ci_low_ms: float | None
    p90_ci_high_ms: float | None
    quantiles_ms: list[float]
    noisy: bool
    noise: str | None
    io_p50_ms: float | None = None

    def to_dict(self) -> dict[str, object]:
        """Return the fields as a JSON-serialisable dict.

        Returns:
            A dict with one key per field.
        """
        return asdict(self)


def summarise(
    durations_ns: list[int] | np.ndarray, *, batch_size: int, threads: int | None, total_s: float
) -> LatencyStats:
    """Turn per-call durations into `LatencyStats`.

    Args:
        durations_ns: duration of each timed call, in nanoseconds (at least one), in the order
            they were taken (the noise check looks for changes over time).
        batch_size: images per call.
        threads: the runner's thread setting, recorded as is.
        total_s: wall-clock duration of the timed phase, in seconds.

    Returns:
        The summary statistics.

    Raises:
        ValueError: if `durations_ns` is empty or `batch_size` is below 1.
    """
    ms = np.asarray(durations_ns, dtype=np.float64) / _NS_PER_MS
    if ms.ndim != 1 or ms.size == 0:
        raise ValueError("durations_ns must be a non-empty 1-D sequence of durations.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be 1 or more, got {batch_size}.")
    p50, p90, p95, p99 = (float(v) for v in np.percentile(ms, [50.0, 90.0, 95.0, 99.0], method="linear"))
    ci_low, ci_high = quantile_ci(np.sort(ms), 0.9, 0.95)
    verdict = noise_check(ms, p90=p90, ci_low=ci_low, ci_high=ci_high)
    mean = float(ms.mean())
    # A coarse clock can report 0 ns for a very fast call; floor the mean at 1 ns so throughput
    # stays finite (JSON has no Infinity).
    throughput = batch_size / (max(mean, 1e-6) / 1000.0)
    return LatencyStats(
        batch_size=batch_size,
        threads=threads,
        runs=int(ms.size),
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        mean_ms=mean,
        std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        throughput_ips=throughput,
        total_s=total_s,
        p95_ms=p95,
        p90_ci_low_ms=ci_low,
        p90_ci_high_ms=ci_high,
        quantiles_ms=percentiles(ms),
        noisy=verdict.noisy,
        noise=verdict.reason,
    )


def _check_args(
    runner: Runner,
    batch: np.ndarray,
    warmup_runs: int,
    warmup_seconds: float,
    min_runs: int,
    min_seconds: float,
    max_seconds: float | None,
) -> None:
    if not runner.is_active:
        raise ValueError(f"{type(runner).__name__} is not active; activate it (or use `with`) before timing.")
    if not isinstance(batch, np.ndarray) or batch.ndim < 1 or batch.shape[0] < 1:
        raise ValueError("batch must be a numpy array holding at least one image.")
    if warmup_runs < 0:
        raise ValueError(f"warmup_runs must be 0 or more, got {warmup_runs}.")
    if min_runs < 1:
        raise ValueError(f"min_runs must be 1 or more, got {min_runs}.")
    for name, value in (("warmup_seconds", warmup_seconds), ("min_seconds", min_seconds)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value}.")
    if max_seconds is not None:
        if not math.isfinite(max_seconds) or max_seconds <= 0:
            raise ValueError(f"max_seconds must be a finite number of seconds > 0 or None, got {max_seconds}.")
        if max_seconds < min_seconds:
            raise ValueError(
                f"max_seconds ({max_seconds}) is below min_seconds ({min_seconds}); raise it or pass None."
            )


def _time_calls(
    call: Callable[[], object],
    *,
    warmup_runs: int,
    warmup_ns: int,
    min_runs: int,
    min_ns: int,
    max_ns: int | None,
) -> tuple[list[int], float]:
    """Warm up, then time each `call()` (the I/O conversion); return the durations (ns) and seconds."""
    clock = time.perf_counter_ns
    start = clock()
    done = 0
    while True:
        elapsed = clock() - start
        if done >= warmup_runs and elapsed >= warmup_ns:
            break
        if max_ns is not None and elapsed >= max_ns:
            break
        call()
        done += 1

    durations: list[int] = []
    record = durations.append
    start = clock()
    while True:
        t0 = clock()
        call()
        t1 = clock()
        record(t1 - t0)
        # The end of the last call doubles as "now": one clock read fewer per iteration.
        elapsed = t1 - start
        if len(durations) >= min_runs and elapsed >= min_ns:
            break
        if max_ns is not None and elapsed >= max_ns:
            break
    return durations, (clock() - start) / _NS_PER_S


def measure_latency(
    runner: Runner,
    batch: np.ndarray,
    *,
    warmup_runs: int = 10,
    warmup_seconds: float = 0.2,
    min_runs: int = 1024,
    min_seconds: float = 2.0,
    max_seconds: float | None = 60.0,
    measure_io: bool = True,
) -> LatencyStats:
    """Time `runner.run_native` on `batch` converted once to the model's input type, after a warm-up.

    Warm-up runs until at least `warmup_runs` calls AND `warmup_seconds` have passed. The timed
    phase then runs until at least `min_runs` calls AND `min_seconds` have passed ("1,024 runs or
    2 s, whichever is longer"), but stops once `max_seconds` have passed even if `min_runs` was not
    reached, so a slow model cannot hang a benchmark. Each phase gets its own `max_seconds` budget,
    and the timed phase always makes at least one call.

    The I/O conversion (`to_native(batch)` + `from_native(output)`) is then timed the same way with
    an eighth of the runs and seconds (it is cheap and steady) and reported as `io_p50_ms`.

    Args:
        runner: an active runner.
        batch: float32 samples of the model's input shape, values in its float range.
        warmup_runs: minimum number of untimed warm-up calls.
        warmup_seconds: minimum duration of the warm-up, in seconds.
        min_runs: minimum number of timed calls.
        min_seconds: minimum duration of the timed phase, in seconds.
        max_seconds: cap on each phase, in seconds; None for no cap.
        measure_io: False skips the I/O conversion timing (`io_p50_ms` is None).

    Returns:
        Statistics over the timed calls.

    Raises:
        ValueError: if the runner is not active or an argument is out of range.
        EdgekitError: whatever the runner raises for a bad batch (e.g. `InputSpecError`).
    """
    _check_args(runner, batch, warmup_runs, warmup_seconds, min_runs, min_seconds, max_seconds)
    warmup_ns = int(warmup_seconds * _NS_PER_S)
    min_ns = int(min_seconds * _NS_PER_S)
    max_ns = None if max_seconds is None else int(max_seconds * _NS_PER_S)
    native = runner.to_native(batch)  # checks the batch; outside the timed region
    out = runner.run_native(native)  # checks the output once, so the timed calls take the fast path
    durations, total_s = _time_native(
        runner.run_native,  # bound once so the timed loop does no attribute lookup
        native,
        warmup_runs=warmup_runs,
        warmup_ns=warmup_ns,
        min_runs=min_runs,
        min_ns=min_ns,
        max_ns=max_ns,
    )
    io_p50: float | None = None
    if measure_io:
        io_p50 = _io_p50(runner, batch, out, warmup_runs=warmup_runs, min_runs=min_runs, min_ns=min_ns, max_ns=max_ns)
    stats = summarise(durations, batch_size=int(batch.shape[0]), threads=runner.num_threads, total_s=total_s)
    return replace(stats, io_p50_ms=io_p50)


def measure_named_latency(
    runner: Runner,
    feeds: Mapping[str, np.ndarray],
    *,
    warmup_runs: int = 10,
    warmup_seconds: float = 0.2,
    min_runs: int = 1024,
    min_seconds: float = 2.0,
    max_seconds: float | None = 60.0,
) -> LatencyStats:
    """`measure_latency` for a model with several inputs or outputs: times `runner.infer_named(feeds)`, which
    includes each tensor's (de)quantization, so `io_p50_ms` is None (not measured apart).

    Raises:
        ValueError: an argument out of range or the runner not active.
        EdgekitError: whatever the runner raises for bad feeds.
    """
    first = next(iter(feeds.values()))
    _check_args(runner, first, warmup_runs, warmup_seconds, min_runs, min_seconds, max_seconds)
    runner.infer_named(feeds)  # checks the feeds once, outside the timed region
    infer, named = runner.infer_named, dict(feeds)
    durations, total_s = _time_calls(
        lambda: infer(named),
        warmup_runs=warmup_runs,
        warmup_ns=int(warmup_seconds * _NS_PER_S),
        min_runs=min_runs,
        min_ns=int(min_seconds * _NS_PER_S),
        max_ns=None if max_seconds is None else int(max_seconds * _NS_PER_S),
    )
    return summarise(durations, batch_size=int(first.shape[0]), threads=runner.num_threads, total_s=total_s)


def _time_native(
    run: Callable[[np.ndarray], np.ndarray],
    native: np.ndarray,
    *,
    warmup_runs: int,
    warmup_ns: int,
    min_runs: int,
    min_ns: int,
    max_ns: int | None,
) -> tuple[list[int], float]:
    """Warm up, then time each `run(native)`; the durations (ns) and the timed phase's seconds.

    The loops are written out rather than shared with `_time_calls`: a helper taking a lambda would add a
    Python call to every timed call.
    """
    clock = time.perf_counter_ns
    start = clock()
    done = 0
    while True:
        elapsed = clock() - start
        if done >= warmup_runs and elapsed >= warmup_ns:
            break
        if max_ns is not None and elapsed >= max_ns:
            break
        run(native)
        done += 1

    durations: list[int] = []
    record = durations.append
    start = clock()
    while True:
        t0 = clock()
        run(native)
        t1 = clock()
        record(t1 - t0)
        # The end of the last call doubles as "now": one clock read fewer per iteration.
        elapsed = t1 - start
        if len(durations) >= min_runs and elapsed >= min_ns:
            break
        if max_ns is not None and elapsed >= max_ns:
            break
    return durations, (clock() - start) / _NS_PER_S


def _io_p50(
    runner: Runner,
    batch: np.ndarray,
    out: np.ndarray,
    *,
    warmup_runs: int,
    min_runs: int,
    min_ns: int,
    max_ns: int | None,
) -> float:
    """The I/O conversion's p50 (ms): `to_native(batch)` + `from_native(out)`, timed with an eighth of the runs
    and seconds (it is cheap and steady)."""
    to_native, from_native = runner.to_native, runner.from_native

    def convert() -> None:
        to_native(batch)
        from_native(out)

    io, _ = _time_calls(
        convert,
        warmup_runs=min(warmup_runs, 10),
        warmup_ns=0,
        min_runs=max(1, min_runs // 8),
        min_ns=min_ns // 8,
        max_ns=None if max_ns is None else max(1, max_ns // 8),
    )
    return float(np.percentile(np.asarray(io, dtype=np.float64), 50.0)) / _NS_PER_MS
