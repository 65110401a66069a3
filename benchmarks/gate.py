"""Regression gate: compare a bench.json with a baseline and name every regression (exit 3 in the CLI).

A latency regression fails only when it is certain: the current row's 95 % interval of the metric starts above
the baseline's interval end × (1 + limit). A point value past the limit that the intervals do not confirm is
reported as inconclusive (listed, not failing). Rows without intervals (bench.json files from before them) are
compared by their point values, as before; where only one side has an interval, the other side's point value
stands in for it. An interval that does not hold its own point value (an edited file) is not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.errors import BenchmarkError

Row = dict[str, Any]


@dataclass(frozen=True)
class Limits:
    """Allowed worsening against the baseline; None switches a check off.

    Latency, size and RSS limits are fractions (0.10 = 10 % worse); accuracy is in points (0.5 = 0.5 pt).
    """

    max_latency_regression: float | None = 0.10
    max_accuracy_drop_pt: float | None = 0.5
    max_size_increase: float | None = 0.10
    max_rss_increase: float | None = 0.25
    metric: str = "p50_ms"


@dataclass(frozen=True)
class Regression:
    config: str
    metric: str
    baseline: float
    current: float
    limit: str
    # The 95 % intervals of a latency metric (low, high), when both rows recorded them.
    baseline_ci: tuple[float, float] | None = None
    current_ci: tuple[float, float] | None = None
    # True: the point value passed the limit but the intervals do not confirm it (listed, not failing).
    inconclusive: bool = False

    def describe(self) -> str:
        if self.metric == "accuracy":
            change = f"{100 * (self.current - self.baseline):+.2f} pt"
            values = f"{100 * self.baseline:.2f} % → {100 * self.current:.2f} %"
        else:
            change = f"{100 * (self.current / self.baseline - 1):+.1f} %" if self.baseline else "new"
            values = f"{self.baseline:,.4g} → {self.current:,.4g}"
        text = f"{self.config}: {self.metric} {values} ({change}; limit {self.limit})"
        if self.baseline_ci is not None and self.current_ci is not None:
            (b_low, b_high), (c_low, c_high) = self.baseline_ci, self.current_ci
            text += f"; 95 % intervals {b_low:,.4g}–{b_high:,.4g} → {c_low:,.4g}–{c_high:,.4g}"
            if self.inconclusive:
                text += ": the intervals do not confirm it, inconclusive"
        return text


@dataclass(frozen=True)
class Findings:
    """What the gate found: `regressions` fail it; `inconclusive` latency changes are listed, not failing."""

    regressions: list[Regression]
    inconclusive: list[Regression]


def parse_limit(text: str, *, option: str) -> float:
    """'10%', '10' or '0.5' → a number (percent units stay percent: '10%' and '10' both mean 10)."""
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise BenchmarkError(f"{option} takes a number such as 10% or 0.5, got {text!r}.") from None
    if not value >= 0:
        raise BenchmarkError(f"{option} must be 0 or more, got {text!r}.")
    return value


def row_key(row: Row) -> tuple[str, int, int | None, str]:
    options = row.get("options") or {}
    variant = []
    if options.get("xnnpack") is False:
        variant.append("no-xnnpack")
    if options.get("graph_optimization") not in (None, "all"):
        variant.append(f"ort-opt={options['graph_optimization']}")
    return (str(row["artifact"]), int(row["batch_size"]), row.get("threads"), ",".join(variant))


def describe_key(key: tuple[str, int, int | None, str]) -> str:
    artifact, batch, threads, variant = key
    return f"{artifact} b{batch}×{threads}t" + (f" [{variant}]" if variant else "")


def _worse(current: float | None, baseline: float | None, limit: float | None) -> bool:
    if limit is None or current is None or baseline is None or baseline <= 0:
        return False
    return current > baseline * (1 + limit)


def ci_fields(metric: str) -> tuple[str, str]:
    """The bench.json fields of a latency metric's 95 % interval: `p50_ms` → `p50_ci_low_ms`, `p50_ci_high_ms`."""
    stem = metric.removesuffix("_ms")
    return f"{stem}_ci_low_ms", f"{stem}_ci_high_ms"


def _interval(row: Row, metric: str) -> tuple[float, float] | None:
    """The row's 95 % interval of `metric`; None when it has none, or one that does not hold its own point value
    (an edited file: the interval is not that value's, so the point value is compared instead)."""
    low_key, high_key = ci_fields(metric)
    low, high, point = row.get(low_key), row.get(high_key), row.get(metric)
    if low is None or high is None or point is None or not float(low) <= float(point) <= float(high):
        return None
    return float(low), float(high)


def _latency(key: tuple[str, int, int | None, str], cur: Row, base: Row, limits: Limits) -> Regression | None:
    """The latency check of one configuration: a certain regression, an inconclusive one, or None.

    Certain: the current interval's low end above the baseline interval's high end × (1 + limit); a side without
    an interval is its point value.
    """
    metric, limit = limits.metric, limits.max_latency_regression
    if limit is None or not _worse(cur.get(metric), base.get(metric), limit):
        return None
    cur_ci, base_ci = _interval(cur, metric), _interval(base, metric)
    cur_low = cur_ci[0] if cur_ci is not None else float(cur[metric])
    base_high = base_ci[1] if base_ci is not None else float(base[metric])
    certain = cur_low > base_high * (1 + limit)
    return Regression(
        describe_key(key),
        metric,
        base[metric],
        cur[metric],
        f"+{100 * limit:g} %",
        baseline_ci=base_ci if cur_ci is not None else None,
        current_ci=cur_ci if base_ci is not None else None,
        inconclusive=not certain,
    )


def compare(current: dict[str, Any], baseline: dict[str, Any], limits: Limits) -> list[Regression]:
    """Every certain regression of `current` against `baseline` (`check`'s `regressions`).

    Raises:
        BenchmarkError: the files share no configuration (nothing would be checked).
    """
    return check(current, baseline, limits).regressions


def check(current: dict[str, Any], baseline: dict[str, Any], limits: Limits) -> Findings:
    """Every regression of `current` against `baseline`, over the configurations both measured, and the latency
    changes past the limit that the intervals do not confirm.

    Raises:
        BenchmarkError: the files share no configuration (nothing would be checked).
    """
    base_rows = {row_key(r): r for r in baseline.get("results", [])}
    cur_rows = {row_key(r): r for r in current.get("results", [])}
    common = [k for k in cur_rows if k in base_rows]
    if not common:
        raise BenchmarkError(
            "the baseline shares no artifact/batch/threads configuration with this benchmark; "
            "compare runs made with the same options."
        )
    found: list[Regression] = []
    unsure: list[Regression] = []
    per_artifact_done: set[tuple[str, str]] = set()  # size and accuracy repeat on every row of an artifact
    for key in common:
        cur, base = cur_rows[key], base_rows[key]
        name = describe_key(key)
        latency = _latency(key, cur, base, limits)
        if latency is not None:
            (unsure if latency.inconclusive else found).append(latency)
        size = limits.max_size_increase
        if (key[0], "size") not in per_artifact_done and _worse(cur.get("size_bytes"), base.get("size_bytes"), size):
            per_artifact_done.add((key[0], "size"))
            found.append(
                Regression(key[0], "size_bytes", base["size_bytes"], cur["size_bytes"], f"+{100 * (size or 0):g} %")
            )
        rss = limits.max_rss_increase
        if _worse(cur.get("peak_rss_mb"), base.get("peak_rss_mb"), rss):
            found.append(
                Regression(name, "peak_rss_mb", base["peak_rss_mb"], cur["peak_rss_mb"], f"+{100 * (rss or 0):g} %")
            )
        drop = limits.max_accuracy_drop_pt
        cur_acc, base_acc = cur.get("accuracy"), base.get("accuracy")
        if (
            drop is not None
            and (key[0], "accuracy") not in per_artifact_done
            and cur_acc is not None
            and base_acc is not None
            and base_acc - cur_acc > drop / 100
        ):
            per_artifact_done.add((key[0], "accuracy"))
            found.append(Regression(key[0], "accuracy", base_acc, cur_acc, f"-{drop:g} pt"))
    return Findings(found, unsure)
