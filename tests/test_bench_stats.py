"""benchmarks.stats on known data: order-statistic CI ranks, CI coverage, percentiles, the noise rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.latency import summarise
from benchmarks.stats import (
    CI_LIMIT,
    DRIFT_LIMIT,
    MIN_BLOCK_RUNS,
    block_medians,
    noise_check,
    percentiles,
    quantile_ci,
    quantile_ci_ranks,
)


def brute_force_ranks(n: int, q: float, confidence: float) -> tuple[int | None, int | None]:
    """The same equal-tailed rule, from exact binomial sums (math.comb)."""
    tail = (1 - confidence) / 2
    cdf = np.cumsum([math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(n + 1)])
    below = [k for k in range(n + 1) if cdf[k] <= tail]
    above = [k for k in range(n + 1) if cdf[k] >= 1 - tail]
    lower = below[-1] + 1 if below else None
    upper = above[0] + 1 if above and above[0] + 1 <= n else None
    return lower, upper


# -- ranks -----------------------------------------------------------------------------------------
def test_textbook_median_ranks() -> None:
    # The classic 95 % CI for the median of 10 samples is (x_(2), x_(9)), coverage 1 - 22/1024.
    assert quantile_ci_ranks(10, 0.5, 0.95) == (2, 9)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_ranks_match_exact_binomial_for_small_n(q: float) -> None:
    for n in range(1, 250):
        assert quantile_ci_ranks(n, q, 0.95) == brute_force_ranks(n, q, 0.95), n


def test_ranks_reach_the_coverage_they_claim() -> None:
    for n in (40, 100, 1024, 5000):
        lower, upper = quantile_ci_ranks(n, 0.9, 0.95)
        assert lower is not None and upper is not None and 1 <= lower < upper <= n
        # Coverage P(l <= B <= u - 1), B ~ Binomial(n, 0.9), in log space to stay exact for large n.
        log_c = math.lgamma(n + 1)
        logs = [
            log_c - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(0.9) + (n - k) * math.log(0.1)
            for k in range(lower, upper)
        ]
        assert sum(math.exp(v) for v in logs) >= 0.95


def test_small_n_has_no_p90_upper_bound() -> None:
    # 0.9**35 = 0.02503 > 0.025: 35 samples cannot bound p90 from above at 95 %.
    assert quantile_ci_ranks(35, 0.9)[1] is None
    assert quantile_ci_ranks(36, 0.9) == (29, 36)
    assert quantile_ci_ranks(1, 0.9) == (None, None)
    assert quantile_ci_ranks(0, 0.9) == (None, None)


def test_ranks_for_millions_of_samples_are_near_the_normal_approximation() -> None:
    n = 3_000_000
    lower, upper = quantile_ci_ranks(n, 0.9)
    sd = math.sqrt(n * 0.9 * 0.1)
    assert lower is not None and upper is not None
    assert abs(lower - (n * 0.9 - 1.96 * sd)) < 3 and abs(upper - (n * 0.9 + 1.96 * sd)) < 3


@pytest.mark.parametrize("kwargs", [{"n": -1}, {"n": 10, "q": 0.0}, {"n": 10, "q": 1.0}, {"n": 10, "confidence": 1.0}])
def test_ranks_reject_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        quantile_ci_ranks(**kwargs)  # type: ignore[arg-type]


# -- the interval on data ----------------------------------------------------------------------------
def test_ci_covers_the_true_p90_in_most_seeded_trials() -> None:
    # Exponential(1): true p90 = ln 10. A 95 % interval should cover it in about 95 % of trials
    # (at least, as order statistics are discrete); 300 seeded trials, so the result is fixed.
    true_p90 = math.log(10.0)
    covered = 0
    for seed in range(300):
        sample = np.sort(np.random.default_rng(seed).exponential(size=1024))
        low, high = quantile_ci(sample, 0.9, 0.95)
        assert low is not None and high is not None
        covered += low <= true_p90 <= high
    assert covered / 300 >= 0.92


def test_ci_values_are_the_order_statistics_at_the_ranks() -> None:
    values = np.arange(1.0, 101.0)  # x_(k) = k
    assert quantile_ci_ranks(100, 0.9) == (84, 96)
    assert quantile_ci(values, 0.9) == (84.0, 96.0)
    assert quantile_ci(values[:20], 0.9) == (15.0, None)


def test_percentiles_are_101_linear_quantiles() -> None:
    q = percentiles(np.arange(0.0, 201.0))
    assert len(q) == 101
    assert q == pytest.approx([2.0 * i for i in range(101)])
    assert percentiles([5.0]) == [5.0] * 101


# -- noise rule ---------------------------------------------------------------------------------------
def steady(n: int, seed: int = 0) -> np.ndarray:
    """Latency-like samples: 40 µs plus skewed jitter, stationary."""
    rng = np.random.default_rng(seed)
    return 0.040 + rng.gamma(2.0, 0.001, size=n)


def verdict(values: np.ndarray):  # type: ignore[no-untyped-def]
    sorted_values = np.sort(values)
    low, high = quantile_ci(sorted_values, 0.9)
    return noise_check(values, p90=float(np.percentile(values, 90)), ci_low=low, ci_high=high)


def test_steady_run_is_not_noisy() -> None:
    for seed in range(5):
        v = verdict(steady(5000, seed))
        assert not v.noisy and v.reason is None
        assert v.block_spread is not None and v.block_spread < DRIFT_LIMIT
        assert v.ci_half_width is not None and v.ci_half_width < CI_LIMIT


def test_drifting_run_is_noisy() -> None:
    # Thermal throttling: the same calls get 30 % slower over the run.
    values = steady(5000) * np.linspace(1.0, 1.3, 5000)
    v = verdict(values)
    assert v.noisy and v.reason is not None and "blocks" in v.reason
    assert v.block_spread is not None and v.block_spread > DRIFT_LIMIT


def test_step_change_is_noisy() -> None:
    # A neighbour process grabs the core for the last fifth of the run (bimodal in time).
    values = steady(5000)
    values[4000:] *= 1.7
    assert verdict(values).noisy


def test_short_run_without_ci_is_flagged() -> None:
    v = verdict(steady(20))
    assert v.noisy and v.reason is not None and "too few" in v.reason
    assert v.block_spread is None  # fewer than two blocks of MIN_BLOCK_RUNS


def test_wide_ci_is_flagged() -> None:
    # 60 heavy-tailed samples: the interval for p90 spans much of the tail.
    values = np.random.default_rng(3).pareto(1.0, size=60) + 1.0
    v = verdict(values)
    assert v.ci_half_width is not None and v.ci_half_width > CI_LIMIT
    assert v.noisy and v.reason is not None and "CI" in v.reason


def test_block_medians_use_blocks_of_at_least_min_block_runs() -> None:
    assert block_medians(np.ones(MIN_BLOCK_RUNS * 2 - 1)).size == 0
    assert block_medians(np.ones(MIN_BLOCK_RUNS * 3)).size == 3
    assert block_medians(np.arange(10_000.0)).size == 10


# -- summarise carries it all -------------------------------------------------------------------------
def test_summarise_adds_p95_ci_quantiles_and_noise() -> None:
    stats = summarise([i * 1_000_000 for i in range(1, 101)], batch_size=1, threads=1, total_s=1.0)
    assert stats.p95_ms == pytest.approx(95.05)
    assert (stats.p90_ci_low_ms, stats.p90_ci_high_ms) == (84.0, 96.0)
    assert len(stats.quantiles_ms) == 101
    assert stats.quantiles_ms[0] == stats.min_ms and stats.quantiles_ms[100] == stats.max_ms
    assert stats.quantiles_ms[50] == pytest.approx(stats.p50_ms)
    # 1..100 ms in order is a perfect drift: flagged.
    assert stats.noisy and stats.noise
    calm = summarise((steady(2000) * 1e9).astype(np.int64), batch_size=1, threads=1, total_s=0.1)
    assert not calm.noisy and calm.noise is None
    assert calm.p90_ci_low_ms is not None and calm.p90_ci_low_ms <= calm.p90_ms <= (calm.p90_ci_high_ms or 0)
