"""Statistics for latency samples: percentiles, a distribution-free CI for p90, and a noise check.

Pure numpy and stdlib, so it is unit-tested on known data and usable on a board.

Confidence interval (why order statistics): latency distributions are skewed and often bimodal, so
normal-theory intervals do not apply. For any continuous distribution, the number B of samples at
or below the true q-quantile is Binomial(n, q). The interval [x_(l), x_(u)] between the l-th and
u-th smallest samples covers the true quantile with probability P(l <= B <= u - 1), whatever the
distribution; `quantile_ci_ranks` picks the tightest equal-tailed ranks with at least the requested
coverage. MLPerf single-stream reports p90, hence the interval is for p90.

Noise rule (why these two tests): a benchmark on a shared 2-vCPU VM or a hot board can change speed
mid-run (another process, frequency capping, the scheduler moving threads). The median of the whole
run hides that, so the timed samples, in the order they were taken, are cut into up to
`NOISE_BLOCKS` consecutive blocks of at least `MIN_BLOCK_RUNS` calls, and the run is flagged when the
block medians spread (max - min) by more than `DRIFT_LIMIT` (10 %) of the overall median: a step,
a slow drift or a bimodal switch that moves a tenth of the run. Calibration on the 2-vCPU reference
VM (fp32 LiteRT and ONNX Runtime, 1-2 threads, batch 1 and 32, default settings, ~60 runs):
undisturbed runs spread 0.2-1 % at batch 1 and 1.4-9 % at batch 32 (the same samples shuffled,
i.e. pure sampling noise of the block medians, spread 0-3 %); runs next to other busy processes
spread 12-100 %, mostly as visible steps (a block or several at 1.3-1.8x). Separately, a p90 whose
95 % CI half-width exceeds `CI_LIMIT` (5 %) of p90 is flagged (too few runs for the tail: under
2 % in every undisturbed run above, 23-53 % in the worst disturbed ones), and so is a run too short
for a p90 CI at all (fewer than 36 calls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Consecutive blocks for the drift test, and the fewest calls a block needs for its median to be
# stable enough (the standard error of a 50-call median is about 1/6 of the spread of the data).
NOISE_BLOCKS = 10
MIN_BLOCK_RUNS = 50
# Block medians may spread by this fraction of the overall median before a run is called noisy.
DRIFT_LIMIT = 0.10
# The p90 95 % CI may be this fraction of p90 either side before a run is called noisy.
CI_LIMIT = 0.05
# Binomial probabilities further than this many standard deviations from the mean are below 1e-30
# and are not computed, so ranks for millions of samples cost milliseconds.
_WINDOW_SDS = 12.0

FloatVector = npt.NDArray[np.float64]


@dataclass(frozen=True)
class NoiseVerdict:
    """Outcome of `noise_check`.

    Attributes:
        noisy: True when at least one rule fired.
        reason: one short human sentence per fired rule, joined by "; " (None when not noisy).
        block_spread: (max - min) of the block medians / overall median, or None with fewer than
            two blocks of `MIN_BLOCK_RUNS` calls.
        ci_half_width: half the p90 CI width / p90, or None when there is no CI.
    """

    noisy: bool
    reason: str | None
    block_spread: float | None
    ci_half_width: float | None


def _binomial_cdf_window(n: int, q: float) -> tuple[int, FloatVector]:
    """P(B <= k) for B ~ Binomial(n, q), for k from the returned start over a window around the mean.

    Below the window the mass is negligible (< 1e-30), so the CDF there is 0; above it, 1.
    """
    sd = math.sqrt(n * q * (1.0 - q))
    lo = max(0, math.floor(n * q - _WINDOW_SDS * sd - _WINDOW_SDS))
    hi = min(n, math.ceil(n * q + _WINDOW_SDS * sd + _WINDOW_SDS))
    k = np.arange(lo, hi + 1, dtype=np.float64)
    # log C(n, k) via lgamma: exact enough and free of overflow for any n.
    log_comb = math.lgamma(n + 1) - np.array([math.lgamma(v + 1) + math.lgamma(n - v + 1) for v in k.tolist()])
    log_pmf = log_comb + k * math.log(q) + (n - k) * math.log1p(-q)
    return lo, np.cumsum(np.exp(log_pmf))


def quantile_ci_ranks(n: int, q: float = 0.9, confidence: float = 0.95) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) of the order statistics bounding a CI for the q-quantile.

    Equal-tailed: l is the largest rank with P(B <= l - 1) <= alpha/2 and u the smallest with
    P(B >= u) <= alpha/2, for B ~ Binomial(n, q) and alpha = 1 - confidence. Then
    P(x_(l) <= true quantile < x_(u)) >= confidence for any continuous distribution.

    Args:
        n: number of samples (0 or more).
        q: the quantile, strictly between 0 and 1.
        confidence: coverage wanted, strictly between 0 and 1.

    Returns:
        (l, u); either is None when n is too small for that side to reach the confidence (e.g. the
        upper bound of a 95 % CI for p90 needs n >= 36: 0.9**35 > 0.025).

    Raises:
        ValueError: if an argument is out of range.
    """
    if n < 0:
        raise ValueError(f"n must be 0 or more, got {n}.")
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be strictly between 0 and 1, got {q}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}.")
    if n == 0:
        return None, None
    tail = (1.0 - confidence) / 2.0
    start, cdf = _binomial_cdf_window(n, q)
    # Lower: the largest k with F(k) <= tail gives l = k + 1 (F is 0 below the window).
    below = np.flatnonzero(cdf <= tail)
    if below.size:
        lower: int | None = start + int(below[-1]) + 1
    else:
        # F(start) > tail but F(start - 1) is negligible, so k = start - 1.
        lower = start if start > 0 else None
    # Upper: the smallest k with F(k) >= 1 - tail gives u = k + 1, which must be a real rank (<= n).
    above = np.flatnonzero(cdf >= 1.0 - tail)
    k_up = start + int(above[0]) if above.size else start + cdf.size  # past the window F is 1
    upper = k_up + 1 if k_up + 1 <= n else None
    return lower, upper


def quantile_ci(
    sorted_values: npt.ArrayLike, q: float = 0.9, confidence: float = 0.95
) -> tuple[float | None, float | None]:
    """Distribution-free confidence interval for the q-quantile from sorted samples.

    Args:
        sorted_values: samples in ascending order.
        q: the quantile, strictly between 0 and 1.
        confidence: coverage wanted, strictly between 0 and 1.

    Returns:
        (low, high) sample values at the ranks of `quantile_ci_ranks`; None for a side that n
        samples cannot bound at this confidence.
    """
    values = np.asarray(sorted_values, dtype=np.float64)
    lower, upper = quantile_ci_ranks(int(values.size), q, confidence)
    low = float(values[lower - 1]) if lower is not None else None
    high = float(values[upper - 1]) if upper is not None else None
    return low, high


def percentiles(values: npt.ArrayLike) -> list[float]:
    """The 0th to 100th percentiles (101 values, linear interpolation), for distribution plots.

    Args:
        values: at least one sample.

    Returns:
        101 floats, non-decreasing.
    """
    data = np.asarray(values, dtype=np.float64)
    return [float(v) for v in np.percentile(data, np.arange(101, dtype=np.float64), method="linear")]


def block_medians(values_in_order: npt.ArrayLike, blocks: int = NOISE_BLOCKS) -> FloatVector:
    """Medians of consecutive blocks of the samples, in time order.

    Args:
        values_in_order: samples in the order they were taken.
        blocks: the most blocks wanted; fewer are used so that each holds `MIN_BLOCK_RUNS` samples.

    Returns:
        One median per block (empty when there are fewer than 2 * `MIN_BLOCK_RUNS` samples).
    """
    data = np.asarray(values_in_order, dtype=np.float64)
    count = min(blocks, data.size // MIN_BLOCK_RUNS)
    if count < 2:
        return np.empty(0, dtype=np.float64)
    return np.array([np.median(part) for part in np.array_split(data, count)], dtype=np.float64)


def noise_check(
    values_in_order: npt.ArrayLike,
    *,
    p90: float,
    ci_low: float | None,
    ci_high: float | None,
    drift_limit: float = DRIFT_LIMIT,
    ci_limit: float = CI_LIMIT,
) -> NoiseVerdict:
    """Apply the noise rule (module docstring) to one run's samples.

    Args:
        values_in_order: the timed samples in the order they were taken.
        p90: their 90th percentile.
        ci_low: lower end of the p90 CI (None: none).
        ci_high: upper end of the p90 CI (None: none).
        drift_limit: largest acceptable block-median spread, as a fraction of the median.
        ci_limit: largest acceptable CI half-width, as a fraction of p90.

    Returns:
        The verdict, with the measured spread and half-width.
    """
    data = np.asarray(values_in_order, dtype=np.float64)
    reasons: list[str] = []
    spread: float | None = None
    medians = block_medians(data)
    median = float(np.median(data)) if data.size else 0.0
    if medians.size and median > 0:
        spread = float(medians.max() - medians.min()) / median
        if spread > drift_limit:
            reasons.append(
                f"medians of {medians.size} consecutive blocks differ by {spread:.0%} of p50 "
                "(drift, throttling or a busy machine)"
            )
    half: float | None = None
    if ci_low is None or ci_high is None:
        reasons.append(f"only {data.size} runs: too few for a 95 % CI of p90")
    elif p90 > 0:
        half = (ci_high - ci_low) / 2.0 / p90
        if half > ci_limit:
            reasons.append(f"p90 95 % CI is ±{half:.1%} of p90 (too few runs for the tail)")
    return NoiseVerdict(bool(reasons), "; ".join(reasons) or None, spread, half)
