"""Slow: the whole default pipeline on full MNIST, checked against the v1 acceptance criteria."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_default_pipeline_on_full_mnist(edgekit, tmp_path: Path) -> None:
    proc = edgekit("pipeline", "--runs-dir", str(tmp_path / "runs"), timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = tmp_path / "runs" / "latest"
    train = json.loads((run / "train.json").read_text())
    # "About 99 %": the tutorial's 98.97 % less half a point (parity's own accuracy budget); measured 98.81 % on
    # an AVX-512/AMX Xeon, 98.77 % on an AVX2 EPYC (float rounding follows the instruction set).
    assert train["test_accuracy"] >= 0.9847
    assert train["config"] == {"epochs": 10, "batch_size": 200, "seed": 7, "train_limit": None}

    parity = json.loads((run / "parity.json").read_text())
    rows = {r["artifact"]: r for r in parity["results"]}
    assert len(rows) >= 7 and parity["reference"]["images"] == 10_000
    assert all(r["passed"] for r in rows.values())
    for name in ("tflite-fp32", "onnx-fp32"):
        assert rows[name]["top1_agreement"] == 1.0 and rows[name]["max_abs_diff"] <= 1e-5
    for name in ("tflite-int8", "onnx-int8"):
        assert abs(rows[name]["accuracy"] - parity["reference"]["accuracy"]) <= 0.005

    bench = json.loads((run / "bench.json").read_text())
    configs = {(r["artifact"], r["batch_size"], r["threads"]) for r in bench["results"]}
    threads = bench["method"]["threads"]
    assert configs == {(a, b, t) for a in rows for b in (1, 32) for t in threads}
    # The default adaptive method: every row says why it stopped, with the interval of its median. A row stops
    # below its floor of runs only when its time cap came first (a batch-32 Keras call under load takes ~3.5 ms:
    # 86 runs in the first pass's 0.3 s on a loaded CI machine).
    method = bench["method"]
    assert method["method"] == "adaptive"
    for r in bench["results"]:
        # beaten: stopped at the floor as certainly slower than a row timed before, and not settled since (rare)
        assert r["stop"] in {"precision", "cap", "dominated", "quick", "beaten"}
        if r["stop"] in ("precision", "beaten"):
            assert r["runs"] >= method["min_runs"]
        elif r["runs"] < method["min_runs"]:  # the first pass's cap is the shortest a row can be timed for
            assert r["total_s"] >= max(method["quick_seconds"], method["min_seconds"]), r
        assert r["p50_ci_low_ms"] <= r["p50_ms"] <= r["p50_ci_high_ms"]
        assert (r["stop"] == "dominated") == (r.get("dominated_by") is not None)
    # The leaders of the recommendation were measured again in fresh processes (up to three); each keeps its best.
    leaders = [r for r in bench["results"] if r.get("process_p50_ms")]
    assert bench["method"]["processes"] == 3 and leaders
    assert all(len(r["process_p50_ms"]) in (2, 3) and r["batch_size"] == 1 for r in leaders)
    assert all(r["p50_ms"] == min(r["process_p50_ms"]) for r in leaders)
    assert any(len(r["process_p50_ms"]) == 3 for r in leaders)  # the fastest is always within the margin
    report = (run / "report.md").read_text()
    assert "## Recommendation" in report and "## Parity" in report
