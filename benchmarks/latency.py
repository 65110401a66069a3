"""Time the model through its runner and summarise the calls.

The timed call is `Runner.run_native` on a batch already converted to the model's input type
(int8 for an int8-I/O model), as `benchmark_model` and `litert-benchmark` time the model: only that
call sits between the two `perf_counter_ns` readings, so the numbers are the runtime's latency and
nothing of the harness (`python -m benchmarks.harness_check` compares it with a hand-written loop
on the bare runtime). The float <-> native conversion a caller of `Runner.infer` also pays
(quantizing the input, dequantizing the output) is timed separately and reported as `io_p50_ms`.

Two methods (`StopRule`), both one query (batch) at a time as MLPerf Inference single-stream does:

- **adaptive** (the default): after a small floor of runs and time, stop as soon as the median is known
  to the stated precision: the distribution-free 95 % CI of p50 (order statistics, `benchmarks.stats`)
  within ±`precision` of p50, and no drift between consecutive blocks of runs. A cap bounds it. A 20-µs
  inference is known to ±2 % after a few hundred runs; the rest of a fixed floor only helps when the
  machine is noisy, and then the drift rule keeps measuring.
- **fixed**: at least 1,024 timed queries AND at least 2 s, after a warm-up of at least 10 calls AND 0.2 s.

Either way p50 and p90 are reported with their distribution-free 95 % CIs, each run is checked for
drift, and the row says why it stopped (`stop`): `precision`, `cap` or `floor`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np

from benchmarks.stats import DRIFT_LIMIT, block_medians, noise_check, percentiles, quantile_ci
from runtimes.base import Runner

_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000

Method = Literal["adaptive", "fixed"]
METHODS: tuple[Method, ...] = ("adaptive", "fixed")
# Why a timed phase ended: the median reached its precision (adaptive), the time cap came first, or the
# fixed method's floor of runs and seconds was reached.
STOP_PRECISION, STOP_CAP, STOP_FLOOR = "precision", "cap", "floor"
# Adaptive, with `StopRule.beaten_above_ms`: the p50's interval lies wholly above a configuration measured before
# this one, so this one cannot change a decision and its median is not needed to the stated precision.
STOP_BEATEN = "beaten"
# The adaptive rule looks again each time the run count has grown by a quarter (at least this many runs):
# sorting n samples at each look costs O(n log n) in all, outside the timed calls.
_LOOK_GROWTH, _LOOK_MIN_STEP = 0.25, 16


@dataclass(frozen=True)
class StopRule:
    """When a timed phase ends.

    Attributes:
        method: `adaptive` (stop once the median is known to `precision`) or `fixed` (stop at the floor).
        warmup_runs: minimum untimed warm-up calls.
        warmup_seconds: minimum warm-up duration, in seconds.
        min_runs: the floor of timed calls (both methods).
        min_seconds: the floor of timed seconds (both methods).
        max_seconds: the cap on each phase, in seconds; None for none.
        precision: adaptive only: the largest half-width of the median's 95 % CI, as a fraction of p50.
        beaten_above_ms: adaptive only: also stop once the whole 95 % CI of p50 lies above this (ms), the top of
            the interval of a configuration measured before that is certainly faster; None: never.
    """

    method: Method = "fixed"
    warmup_runs: int = 10
    warmup_seconds: float = 0.2
    min_runs: int = 1024
    min_seconds: float = 2.0
    max_seconds: float | None = 60.0
    precision: float = 0.02
    beaten_above_ms: float | None = None

    def check(self) -> None:
        """Refuse values no measurement can use.

        Raises:
            ValueError: a count or duration out of range, an unknown method or a precision outside (0, 1).
        """
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}.")
        if not 0.0 < self.precision < 1.0:
            raise ValueError(f"precision must be a fraction between 0 and 1, got {self.precision}.")
        if self.warmup_runs < 0:
            raise ValueError(f"warmup_runs must be 0 or more, got {self.warmup_runs}.")
        if self.min_runs < 1:
            raise ValueError(f"min_runs must be 1 or more, got {self.min_runs}.")
        for name, value in (("warmup_seconds", self.warmup_seconds), ("min_seconds", self.min_seconds)):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value}.")
        if self.max_seconds is not None:
            if not math.isfinite(self.max_seconds) or self.max_seconds <= 0:
                raise ValueError(f"max_seconds must be a finite number of seconds > 0 or None, got {self.max_seconds}.")
            if self.max_seconds < self.min_seconds:
                raise ValueError(
                    f"max_seconds ({self.max_seconds}) is below min_seconds ({self.min_seconds}); "
                    "raise it or pass None."
                )
        if self.beaten_above_ms is not None and not (math.isfinite(self.beaten_above_ms) and self.beaten_above_ms >= 0):
            raise ValueError(f"beaten_above_ms must be a finite number of ms >= 0 or None, got {self.beaten_above_ms}.")


def median_known(durations: list[int], precision: float) -> bool:
    """Whether the median of these timings is known to ±`precision` and the run shows no drift.

    Known: the distribution-free 95 % CI of p50 (`quantile_ci_ranks`) lies within ±precision of p50 on both
    sides, and the medians of consecutive blocks of runs spread by at most `DRIFT_LIMIT` (a machine that
    changed speed mid-run is measured on, up to the cap).

    Args:
        durations: the timed calls so far, in the order they were taken (ns).
        precision: the largest half-width allowed, as a fraction of p50.

    Returns:
        True when the adaptive rule may stop.
    """
    return _look(durations, precision)[0]


def _look(durations: list[int], precision: float) -> tuple[bool, float | None]:
    """`median_known`, and the low end of the p50's 95 % CI (ns; None while too few runs give one)."""
    data = np.asarray(durations, dtype=np.float64)
    ordered = np.sort(data)
    low, high = quantile_ci(ordered, 0.5, 0.95)
    median = float(np.median(ordered))
    if low is None or high is None or median <= 0:
        return False, low
    if max(median - low, high - median) > precision * median:
        return False, low
    medians = block_medians(data)
    return not (medians.size and float(medians.max() - medians.min()) > DRIFT_LIMIT * median), low


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
        p50_ci_low_ms: lower end of a distribution-free 95 % CI for the true p50; None with too few runs.
        p50_ci_high_ms: upper end of that interval.
        method: the stopping method (`adaptive` or `fixed`); None when not recorded.
        stop: why the timed phase ended: `precision` (adaptive: the median known to `precision`), `cap`
            (the time cap came first) or `floor` (fixed: the floor of runs and seconds reached).
        p50_precision: the adaptive method's target half-width of the p50 CI, as a fraction of p50.
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
    p50_ci_low_ms: float | None = None
    p50_ci_high_ms: float | None = None
    method: Method | None = None
    stop: str | None = None
    p50_precision: float | None = None

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
    ordered = np.sort(ms)
    ci_low, ci_high = quantile_ci(ordered, 0.9, 0.95)
    p50_low, p50_high = quantile_ci(ordered, 0.5, 0.95)
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
        p50_ci_low_ms=p50_low,
        p50_ci_high_ms=p50_high,
    )


def _check_args(runner: Runner, batch: np.ndarray, rule: StopRule) -> None:
    if not runner.is_active:
        raise ValueError(f"{type(runner).__name__} is not active; activate it (or use `with`) before timing.")
    if not isinstance(batch, np.ndarray) or batch.ndim < 1 or batch.shape[0] < 1:
        raise ValueError("batch must be a numpy array holding at least one image.")
    rule.check()


class _Stopper:
    """The timed phase's stopping test, asked after every call: cheap until the floor is reached, then the
    adaptive rule looks at the median only when the run count has grown by a quarter."""

    def __init__(self, rule: StopRule) -> None:
        self.rule = rule
        self.min_ns = int(rule.min_seconds * _NS_PER_S)
        self.max_ns = None if rule.max_seconds is None else int(rule.max_seconds * _NS_PER_S)
        self.next_look = rule.min_runs
        self.reason = STOP_CAP
        self.beaten_ns = None if rule.beaten_above_ms is None else rule.beaten_above_ms * _NS_PER_MS

    def done(self, durations: list[int], elapsed: int) -> bool:
        n = len(durations)
        if n >= self.rule.min_runs and elapsed >= self.min_ns:
            if self.rule.method == "fixed":
                self.reason = STOP_FLOOR
                return True
            if n >= self.next_look:
                known, low = _look(durations, self.rule.precision)
                if known:
                    self.reason = STOP_PRECISION
                    return True
                if self.beaten_ns is not None and low is not None and low > self.beaten_ns:
                    self.reason = STOP_BEATEN
                    return True
                self.next_look = n + max(_LOOK_MIN_STEP, int(n * _LOOK_GROWTH))
        if self.max_ns is not None and elapsed >= self.max_ns:
            self.reason = STOP_CAP
            return True
        return False


def _warm_up(call: Callable[[], object], rule: StopRule) -> None:
    clock = time.perf_counter_ns
    warmup_ns = int(rule.warmup_seconds * _NS_PER_S)
    max_ns = None if rule.max_seconds is None else int(rule.max_seconds * _NS_PER_S)
    start = clock()
    done = 0
    while True:
        elapsed = clock() - start
        if done >= rule.warmup_runs and elapsed >= warmup_ns:
            return
        if max_ns is not None and elapsed >= max_ns:
            return
        call()
        done += 1


def _time_calls(call: Callable[[], object], rule: StopRule) -> tuple[list[int], float, str]:
    """Warm up, then time each `call()` until `rule` stops; the durations (ns), seconds and stop reason."""
    _warm_up(call, rule)
    clock = time.perf_counter_ns
    stopper = _Stopper(rule)
    durations: list[int] = []
    record = durations.append
    start = clock()
    while True:
        t0 = clock()
        call()
        t1 = clock()
        record(t1 - t0)
        # The end of the last call doubles as "now": one clock read fewer per iteration.
        if stopper.done(durations, t1 - start):
            break
    return durations, (clock() - start) / _NS_PER_S, stopper.reason


def _rule(
    method: Method,
    precision: float,
    warmup_runs: int,
    warmup_seconds: float,
    min_runs: int,
    min_seconds: float,
    max_seconds: float | None,
    beaten_above_ms: float | None = None,
) -> StopRule:
    return StopRule(method, warmup_runs, warmup_seconds, min_runs, min_seconds, max_seconds, precision, beaten_above_ms)


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
    method: Method = "fixed",
    precision: float = 0.02,
    beaten_above_ms: float | None = None,
) -> LatencyStats:
    """Time `runner.run_native` on `batch` converted once to the model's input type, after a warm-up.

    Warm-up runs until at least `warmup_runs` calls AND `warmup_seconds` have passed. The timed phase
    then runs until at least `min_runs` calls AND `min_seconds` have passed (the floor); the `fixed`
    method stops there ("1,024 runs or 2 s, whichever is longer"), the `adaptive` one goes on until the
    median is known to ±`precision` (`median_known`). Either stops once `max_seconds` have passed, even
    below the floor, so a slow model cannot hang a benchmark. Each phase gets its own `max_seconds` budget,
    and the timed phase always makes at least one call.

    The I/O conversion (`to_native(batch)` + `from_native(output)`) is then timed with an eighth of the
    floor (it is cheap and steady) and reported as `io_p50_ms`.

    Args:
        runner: an active runner.
        batch: float32 samples of the model's input shape, values in its float range.
        warmup_runs: minimum number of untimed warm-up calls.
        warmup_seconds: minimum duration of the warm-up, in seconds.
        min_runs: the floor of timed calls.
        min_seconds: the floor of the timed phase, in seconds.
        max_seconds: cap on each phase, in seconds; None for no cap.
        measure_io: False skips the I/O conversion timing (`io_p50_ms` is None).
        method: `fixed` (stop at the floor) or `adaptive` (stop when the median is known).
        precision: adaptive: the largest half-width of p50's 95 % CI, as a fraction of p50.
        beaten_above_ms: adaptive: also stop once p50's whole 95 % CI is above this (ms; `StopRule`).

    Returns:
        Statistics over the timed calls, with the method and why the phase stopped.

    Raises:
        ValueError: if the runner is not active or an argument is out of range.
        EdgekitError: whatever the runner raises for a bad batch (e.g. `InputSpecError`).
    """
    rule = _rule(method, precision, warmup_runs, warmup_seconds, min_runs, min_seconds, max_seconds, beaten_above_ms)
    _check_args(runner, batch, rule)
    native = runner.to_native(batch)  # checks the batch; outside the timed region
    out = runner.run_native(native)  # checks the output once, so the timed calls take the fast path
    # bound once so the timed loop does no attribute lookup
    durations, total_s, stop = _time_native(runner.run_native, native, rule)
    io_p50: float | None = None
    if measure_io:
        io_p50 = _io_p50(runner, batch, out, rule)
    stats = summarise(durations, batch_size=int(batch.shape[0]), threads=runner.num_threads, total_s=total_s)
    return replace(stats, io_p50_ms=io_p50, method=rule.method, stop=stop, p50_precision=_precision(rule))


def _precision(rule: StopRule) -> float | None:
    return rule.precision if rule.method == "adaptive" else None


def measure_named_latency(
    runner: Runner,
    feeds: Mapping[str, np.ndarray],
    *,
    warmup_runs: int = 10,
    warmup_seconds: float = 0.2,
    min_runs: int = 1024,
    min_seconds: float = 2.0,
    max_seconds: float | None = 60.0,
    method: Method = "fixed",
    precision: float = 0.02,
    beaten_above_ms: float | None = None,
) -> LatencyStats:
    """`measure_latency` for a model with several inputs or outputs: times `runner.infer_named(feeds)`, which
    includes each tensor's (de)quantization, so `io_p50_ms` is None (not measured apart).

    Raises:
        ValueError: an argument out of range or the runner not active.
        EdgekitError: whatever the runner raises for bad feeds.
    """
    rule = _rule(method, precision, warmup_runs, warmup_seconds, min_runs, min_seconds, max_seconds, beaten_above_ms)
    first = next(iter(feeds.values()))
    _check_args(runner, first, rule)
    runner.infer_named(feeds)  # checks the feeds once, outside the timed region
    infer, named = runner.infer_named, dict(feeds)
    durations, total_s, stop = _time_calls(lambda: infer(named), rule)
    stats = summarise(durations, batch_size=int(first.shape[0]), threads=runner.num_threads, total_s=total_s)
    return replace(stats, method=rule.method, stop=stop, p50_precision=_precision(rule))


def _time_native(
    run: Callable[[np.ndarray], np.ndarray], native: np.ndarray, rule: StopRule
) -> tuple[list[int], float, str]:
    """Warm up, then time each `run(native)` until `rule` stops; the durations (ns), the timed phase's seconds
    and the stop reason.

    The timed loop is written out rather than shared with `_time_calls`: a helper taking a lambda would add a
    Python call to every timed call.
    """
    _warm_up(lambda: run(native), rule)
    clock = time.perf_counter_ns
    stopper = _Stopper(rule)
    done = stopper.done
    durations: list[int] = []
    record = durations.append
    start = clock()
    while True:
        t0 = clock()
        run(native)
        t1 = clock()
        record(t1 - t0)
        # The end of the last call doubles as "now": one clock read fewer per iteration.
        if done(durations, t1 - start):
            break
    return durations, (clock() - start) / _NS_PER_S, stopper.reason


def _io_p50(runner: Runner, batch: np.ndarray, out: np.ndarray, rule: StopRule) -> float:
    """The I/O conversion's p50 (ms): `to_native(batch)` + `from_native(out)`, timed with an eighth of the floor
    and cap (it is cheap and steady)."""
    to_native, from_native = runner.to_native, runner.from_native

    def convert() -> None:
        to_native(batch)
        from_native(out)

    io_rule = StopRule(
        method="fixed",
        warmup_runs=min(rule.warmup_runs, 10),
        warmup_seconds=0.0,
        min_runs=max(1, rule.min_runs // 8),
        min_seconds=rule.min_seconds / 8,
        max_seconds=None if rule.max_seconds is None else rule.max_seconds / 8,
    )
    io, _, _ = _time_calls(convert, io_rule)
    return float(np.percentile(np.asarray(io, dtype=np.float64), 50.0)) / _NS_PER_MS
