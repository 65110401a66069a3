"""Where the adaptive benchmark spends its time: the configurations that could still change a decision.

After a short first pass over every configuration, only these are measured on (`toolkit.steps.bench`):

- **recommendation**: at batch 1 (else the smallest batch), every configuration of an artifact that passed
  parity whose p50 interval is not certainly slower than the fastest one's;
- **pareto**: at that batch size, every configuration no other one beats on both accuracy (as high or
  higher) and latency (certainly faster): the accuracy/latency front the report draws;
- **throughput**: at each larger batch size, every configuration not certainly slower than that batch size's
  fastest (the best images per second).

"Certainly faster" means the two p50 intervals (distribution-free 95 % CIs) do not overlap. Everything else
could not change what the report decides, so its first-pass figures and interval are kept and it is
marked dominated, naming what beats it.

One process's interval is narrow (±0.1–2 %), but the same file measured in another fresh process minutes later
can land 10–20 % away on a shared machine (ASLR, cache placement, neighbours), sometimes 2x in a slow mode. So
the **leaders** of the recommendation (`leaders`) are measured in several fresh processes and keep the fastest;
which rows are leaders is decided with the spread the processes show (`process_spread`): a row whose one process
may have landed in a slow mode is measured again too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.run.documents import BenchRow

RECOMMENDATION, PARETO, THROUGHPUT = "recommendation", "pareto", "throughput"
FAILED_PARITY = "failed parity"

# Until the leaders' own processes have been measured, how far apart two fresh processes of one configuration
# are assumed to land: on a 2-core VM, processes of one file landed in two modes up to 2.2x apart (the regression
# MLP's tflite-int8-dynamic: 0.0020 and 0.0045 ms; the RGB CNN's: 0.0099 and 0.0165 ms; the reference's: 0.022
# and 0.040 ms; benchmarks/results/2026-12-05-x86_64-xeon-2cpu-leaders). A row whose one process is within that
# of the fastest may be the fastest measured in its slow mode, so it is measured again. The measured spread
# replaces it when larger.
PROCESS_SPREAD_PRIOR = 1.25
# Leaders whose batch-1 p50s are within this fraction of the fastest's are a tie (`toolkit.reports.rules`), whatever
# their intervals say. The best of three fresh processes of one configuration differed between two runs minutes
# apart by 5.4 % at the median of 39 leaders (benchmarks/results/2026-12-05-x86_64-xeon-2cpu-leaders), so a gap
# between two configurations is uncertain by about twice that; and a latency difference that small is not worth
# a less accurate or larger file.
TIE_MARGIN = 0.10


def interval(row: BenchRow) -> tuple[float, float]:
    """The row's p50 interval in ms: its 95 % CI, or the point p50 where the row has no interval."""
    low = row.p50_ci_low_ms if row.p50_ci_low_ms is not None else row.p50_ms
    high = row.p50_ci_high_ms if row.p50_ci_high_ms is not None else row.p50_ms
    return low, high


def certainly_faster(a: BenchRow, b: BenchRow) -> bool:
    """Whether `a`'s p50 is below `b`'s beyond doubt: their intervals do not overlap."""
    return interval(a)[1] < interval(b)[0]


def row_label(row: BenchRow) -> str:
    """`tflite-int8 b1×2t`, plus any non-default runner option."""
    return f"{row.config_label()} b{row.batch_size}×{row.threads}t"


@dataclass(frozen=True)
class Decision:
    """What the first pass decided for one row: measure on (`reason`) or stop (`beaten_by`)."""

    reason: str | None  # recommendation, pareto or throughput: measure on
    beaten_by: str | None  # otherwise: what beats it (a configuration, or "failed parity")


def decide(rows: Sequence[BenchRow], passed: set[tuple[str, str]] | None) -> list[Decision]:
    """For each row, in order: whether it could still change a decision, and if not, what beats it.

    Args:
        rows: one row per configuration and batch size, each with its p50 interval.
        passed: (artifact, runtime) pairs that passed parity; None when parity is unknown (every row counts).

    Returns:
        One `Decision` per row.
    """
    eligible = [passed is None or (r.artifact, r.runtime) in passed for r in rows]
    decisions: list[Decision | None] = [None if ok else Decision(None, FAILED_PARITY) for ok in eligible]
    batches = sorted({r.batch_size for r, ok in zip(rows, eligible, strict=True) if ok})
    for batch in batches:
        group = [i for i, r in enumerate(rows) if eligible[i] and r.batch_size == batch]
        fastest = min(group, key=lambda i: rows[i].p50_ms)
        first = batch == batches[0]
        for i in group:
            if not certainly_faster(rows[fastest], rows[i]):
                decisions[i] = Decision(RECOMMENDATION if first else THROUGHPUT, None)
            elif not first:
                decisions[i] = Decision(None, row_label(rows[fastest]))
            else:
                beater = _pareto_beater(rows, group, i)
                decisions[i] = Decision(PARETO, None) if beater is None else Decision(None, row_label(rows[beater]))
    return [d if d is not None else Decision(None, None) for d in decisions]


def _pareto_beater(rows: Sequence[BenchRow], group: list[int], i: int) -> int | None:
    """The fastest row of `group` as accurate as row `i` or more and certainly faster (None: `i` is on the front).

    Without accuracy (a regression model, or no parity yet) the front is the fastest row alone.
    """
    accuracy = rows[i].accuracy

    def as_accurate(j: int) -> bool:
        other = rows[j].accuracy
        return accuracy is None or (other is not None and other >= accuracy)

    beaters = [j for j in group if j != i and certainly_faster(rows[j], rows[i]) and as_accurate(j)]
    return min(beaters, key=lambda j: rows[j].p50_ms) if beaters else None


def leaders(rows: Sequence[BenchRow], passed: set[tuple[str, str]], spread: float) -> list[int]:
    """The rows the recommendation could be: at batch 1 (else the smallest batch), every configuration of an
    artifact that passed parity whose p50 interval starts within `spread` of the top of the fastest one's.

    Args:
        rows: one row per configuration and batch size, each with its p50 interval.
        passed: (artifact, runtime) pairs that passed parity.
        spread: how far apart two processes of one configuration can land, as a fraction of p50.

    Returns:
        Row indices, fastest first.
    """
    eligible = [i for i, r in enumerate(rows) if (r.artifact, r.runtime) in passed]
    if not eligible:
        return []
    batch = min(rows[i].batch_size for i in eligible)
    group = [i for i in eligible if rows[i].batch_size == batch]
    top = interval(rows[min(group, key=lambda i: rows[i].p50_ms)])[1] * (1 + spread)
    return sorted((i for i in group if interval(rows[i])[0] <= top), key=lambda i: rows[i].p50_ms)


def process_spread(p50s: Sequence[float]) -> float:
    """How far apart the processes of one configuration landed: the largest p50 over the smallest, minus one."""
    return max(p50s) / min(p50s) - 1 if p50s and min(p50s) > 0 else 0.0


def beaten_above(
    measured: Sequence[BenchRow],
    row: tuple[str, str],
    accuracy: float | None,
    batch: int,
    first_batch: int,
    passed: set[tuple[str, str]] | None,
) -> float | None:
    """The p50 (ms) above which a configuration still to be timed is certainly beaten by one already `measured`, so
    the first pass may stop it early (`benchmarks.latency.StopRule.beaten_above_ms`); None: nothing beats it yet.

    The same rule as `decide`, on the rows measured so far: an artifact that failed parity is beaten at once (0);
    at `first_batch` only a row as accurate or more beats it (the Pareto front), at larger batches any eligible row
    does. A row stopped this way is decided again with every row (`decide`), and measured on if it could still
    change a decision.

    Args:
        measured: rows timed before this one.
        row: (artifact, runtime) of the configuration to be timed.
        accuracy: its artifact's accuracy (None: a regression model, or no parity yet).
        batch: the batch size it is about to be timed at.
        first_batch: the batch size the recommendation is decided at (the smallest).
        passed: (artifact, runtime) pairs that passed parity; None when parity is unknown.
    """
    if passed is not None and row not in passed:
        return 0.0
    tops = [
        interval(r)[1]
        for r in measured
        if r.batch_size == batch
        and (passed is None or (r.artifact, r.runtime) in passed)
        and (batch != first_batch or accuracy is None or (r.accuracy is not None and r.accuracy >= accuracy))
    ]
    return min(tops) if tops else None
