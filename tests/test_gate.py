"""The regression gate on real saved benchmark output: 0 against itself, 3 against a faster baseline."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from benchmarks.errors import BenchmarkError
from benchmarks.gate import Limits, compare, parse_limit

SAVED = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "2026-11-29-x86_64-epyc-2cpu" / "bench.json"


@pytest.fixture
def bench() -> dict:
    return json.loads(SAVED.read_text())


def faster(doc: dict, factor: float) -> dict:
    """A doctored baseline whose latencies are `factor` times the real ones (0.8 = 20 % faster)."""
    out = copy.deepcopy(doc)
    for r in out["results"]:
        for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"):
            r[key] *= factor
    return out


def test_no_regression_against_itself(bench: dict) -> None:
    assert compare(bench, bench, Limits()) == []


def test_every_configuration_is_named_against_a_faster_baseline(bench: dict) -> None:
    regressions = compare(bench, faster(bench, 0.8), Limits(max_latency_regression=0.10))
    assert len(regressions) == len(bench["results"])
    first = regressions[0].describe()
    assert first.startswith("keras-fp32 b1×1t: p50_ms") and "+25.0 %" in first and "limit +10 %" in first
    assert compare(bench, faster(bench, 0.95), Limits(max_latency_regression=0.10)) == []


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
