"""The regression gate on real saved benchmark output: 0 against itself, 3 against a faster baseline; with the
adaptive method's p50 intervals, a change the intervals do not confirm is inconclusive, not a failure."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from benchmarks.errors import BenchmarkError
from benchmarks.gate import Limits, check, compare, parse_limit

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
SAVED = RESULTS / "2026-11-29-x86_64-epyc-2cpu" / "bench.json"  # fixed method, before p50 intervals
ADAPTIVE = RESULTS / "2026-12-05-x86_64-xeon-2cpu-adaptive" / "bench.json"  # every row has its p50 interval


@pytest.fixture
def bench() -> dict:
    return json.loads(SAVED.read_text())


@pytest.fixture
def adaptive() -> dict:
    return json.loads(ADAPTIVE.read_text())


LATENCIES = (
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "p50_ci_low_ms",
    "p50_ci_high_ms",
    "p90_ci_low_ms",
    "p90_ci_high_ms",
)


def faster(doc: dict, factor: float) -> dict:
    """A doctored copy whose latencies (and their intervals, where recorded) are `factor` times the real ones
    (0.8 = 20 % faster, 1.11 = 11 % slower)."""
    out = copy.deepcopy(doc)
    for r in out["results"]:
        for key in LATENCIES:
            if r.get(key) is not None:
                r[key] *= factor
    return out


def _key(config: str) -> str:
    return config.split(" [")[0]


def test_no_regression_against_itself(bench: dict) -> None:
    assert compare(bench, bench, Limits()) == []


def test_every_configuration_is_named_against_a_faster_baseline(bench: dict) -> None:
    regressions = compare(bench, faster(bench, 0.8), Limits(max_latency_regression=0.10))
    assert len(regressions) == len(bench["results"])
    first = regressions[0].describe()
    assert first.startswith("keras-fp32 b1×1t: p50_ms") and "+25.0 %" in first and "limit +10 %" in first
    assert compare(bench, faster(bench, 0.95), Limits(max_latency_regression=0.10)) == []


def test_intervals_turn_a_point_regression_into_inconclusive_unless_they_confirm_it(adaptive: dict) -> None:
    """Every row 11 % slower, limit 10 %: each point value regresses, but only the rows whose intervals are
    narrow enough (current low end above the baseline's high end × 1.1) fail; the others are inconclusive."""
    slower = faster(adaptive, 1.11)
    found = check(slower, adaptive, Limits(max_latency_regression=0.10))
    assert found.regressions and found.inconclusive
    assert len(found.regressions) + len(found.inconclusive) == len(adaptive["results"])
    certain = {_key(r.config) for r in found.regressions}
    unsure = {_key(r.config) for r in found.inconclusive}
    # A tight interval (tflite-fp32 b1×1t: ±0.2 %) confirms an 11 % rise; the noisy Keras row (±1.4 %) cannot.
    assert "tflite-fp32 b1×1t" in certain and "keras-fp32 b1×2t" in unsure
    for r in adaptive["results"]:
        name = f"{r['artifact']} b{r['batch_size']}×{r['threads']}t"
        expected = 1.11 * r["p50_ci_low_ms"] > 1.10 * r["p50_ci_high_ms"]
        assert (name in certain) == expected, name
    keras = next(r for r in found.inconclusive if _key(r.config) == "keras-fp32 b1×2t")
    assert keras.inconclusive and keras.baseline_ci is not None and keras.current_ci is not None
    text = keras.describe()
    assert "+11.0 %" in text and "95 % intervals" in text and "inconclusive" in text
    assert compare(slower, adaptive, Limits(max_latency_regression=0.10)) == found.regressions
    # A rise well past the widest interval is a regression everywhere.
    assert len(compare(faster(adaptive, 1.25), adaptive, Limits(max_latency_regression=0.10))) == len(slower["results"])
    assert check(faster(adaptive, 1.05), adaptive, Limits(max_latency_regression=0.10)).inconclusive == []


def test_p90_gate_reads_the_p90_intervals_and_old_rows_compare_points(adaptive: dict, bench: dict) -> None:
    slower = faster(adaptive, 1.11)
    p90 = check(slower, adaptive, Limits(max_latency_regression=0.10, metric="p90_ms"))
    for r in p90.regressions + p90.inconclusive:
        assert r.metric == "p90_ms" and r.current_ci is not None
    row = next(r for r in adaptive["results"] if r["artifact"] == "tflite-fp32" and r["batch_size"] == 1)
    assert p90.regressions + p90.inconclusive
    assert any(
        r.baseline_ci == (row["p90_ci_low_ms"], row["p90_ci_high_ms"]) for r in p90.regressions + p90.inconclusive
    )
    # The fixed-method file has no p50 interval: an 11 % rise on the point values fails every row, as before.
    old = check(faster(bench, 1.11), bench, Limits(max_latency_regression=0.10))
    assert len(old.regressions) == len(bench["results"]) and old.inconclusive == []
    assert all(r.current_ci is None and "intervals" not in r.describe() for r in old.regressions)


def test_an_interval_that_does_not_hold_its_point_value_is_not_used(adaptive: dict) -> None:
    """A baseline edited to half its p50s, its intervals left as measured: the intervals are not those values',
    so the gate compares the points and every row is a regression."""
    base = copy.deepcopy(adaptive)
    for r in base["results"]:
        r["p50_ms"] /= 2
    found = check(adaptive, base, Limits(max_latency_regression=0.10))
    assert len(found.regressions) == len(adaptive["results"]) and found.inconclusive == []
    assert all(r.baseline_ci is None and r.current_ci is None for r in found.regressions)


def test_size_accuracy_and_rss_checks(bench: dict) -> None:
    base = copy.deepcopy(bench)
    for r in base["results"]:
        if r["artifact"] == "tflite-int8":
            r["size_bytes"], r["accuracy"], r["peak_rss_mb"] = 400_000, 0.995, 10.0
    cur = copy.deepcopy(bench)
    for r in cur["results"]:
        r.setdefault("size_bytes", 600_712 if r["artifact"] == "tflite-int8" else None)
        r.setdefault("accuracy", 0.9882 if r["artifact"] == "tflite-int8" else None)
        r.setdefault("peak_rss_mb", 40.0)
    found = {(r.config, r.metric) for r in compare(cur, base, Limits(max_latency_regression=None))}
    assert ("tflite-int8", "size_bytes") in found and ("tflite-int8", "accuracy") in found
    assert any(metric == "peak_rss_mb" and config.startswith("tflite-int8") for config, metric in found)


def test_disjoint_files_are_an_error(bench: dict) -> None:
    other = copy.deepcopy(bench)
    for r in other["results"]:
        r["artifact"] = "something-else"
    with pytest.raises(BenchmarkError, match="shares no"):
        compare(bench, other, Limits())


@pytest.mark.parametrize(("text", "value"), [("10%", 10.0), ("10", 10.0), ("0.5", 0.5), (" 25 % ", 25.0)])
def test_parse_limit(text: str, value: float) -> None:
    assert parse_limit(text, option="--x") == value


@pytest.mark.parametrize("text", ["ten", "-5%", ""])
def test_parse_limit_rejects(text: str) -> None:
    with pytest.raises(BenchmarkError, match="--x"):
        parse_limit(text, option="--x")


def test_gate_command_exit_codes(edgekit, bench: dict, tmp_path: Path) -> None:
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    (tmp_path / "fast.json").write_text(json.dumps(faster(bench, 0.8)))
    same = edgekit("gate", str(tmp_path / "bench.json"), "--baseline", str(tmp_path / "bench.json"))
    assert same.returncode == 0, same.stderr
    assert "gate passed" in same.stdout
    worse = edgekit("gate", str(tmp_path / "bench.json"), "--baseline", str(tmp_path / "fast.json"))
    assert worse.returncode == 3, worse.stderr
    assert "regression tflite-int8 b1×1t: p50_ms" in worse.stderr and "Traceback" not in worse.stderr
    gate = json.loads((tmp_path / "gate.json").read_text())
    assert gate["passed"] is False and len(gate["regressions"]) == len(bench["results"])
    bad = edgekit(
        "gate", str(tmp_path / "bench.json"), "--baseline", str(tmp_path / "fast.json"), "--max-regression", "x"
    )
    assert bad.returncode == 1 and "--max-regression takes a number" in bad.stderr


def test_gate_command_lists_inconclusive_changes_and_passes(edgekit, adaptive: dict, tmp_path: Path) -> None:
    """Only the rows the intervals cannot confirm are past the limit: listed as inconclusive, exit 0."""
    slower = faster(adaptive, 1.11)
    certain = {_key(c.config) for c in check(slower, adaptive, Limits(max_latency_regression=0.10)).regressions}
    # Keep only the rises the intervals cannot confirm: the other rows as fast as in the baseline.
    slower["results"] = [
        b if f"{b['artifact']} b{b['batch_size']}×{b['threads']}t" in certain else s
        for s, b in zip(slower["results"], adaptive["results"], strict=True)
    ]
    base = adaptive
    (tmp_path / "bench.json").write_text(json.dumps(slower))
    (tmp_path / "base.json").write_text(json.dumps(base))
    proc = edgekit("gate", str(tmp_path / "bench.json"), "--baseline", str(tmp_path / "base.json"))
    assert proc.returncode == 0, proc.stderr
    assert "gate passed" in proc.stdout and "inconclusive, listed above" in proc.stdout
    assert "inconclusive keras-fp32 b1×2t: p50_ms" in proc.stderr and "95 % intervals" in proc.stderr
    gate = json.loads((tmp_path / "gate.json").read_text())
    assert gate["passed"] is True and gate["regressions"] == [] and gate["inconclusive"]
    assert all(r["inconclusive"] and len(r["current_ci"]) == 2 for r in gate["inconclusive"])
