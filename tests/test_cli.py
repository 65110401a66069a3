"""The CLI as a user runs it (subprocess): exit codes, one-line errors, and a small real pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_parity import swap_in_untrained_model


def assert_one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("error:")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_lists_commands(edgekit) -> None:
    proc = edgekit("--help")
    assert proc.returncode == 0
    for command in ("train", "export", "parity", "bench", "report", "pipeline"):
        assert command in proc.stdout
    assert edgekit("--version").stdout.startswith("edgekit ")


def test_parity_on_missing_directory(edgekit) -> None:
    assert_one_line_error(edgekit("parity", "does/not/exist"), "does/not/exist", "does not exist")


def test_export_without_model(edgekit, tmp_path: Path) -> None:
    assert_one_line_error(edgekit("export", str(tmp_path)), "no model.keras", "edgekit train")


def test_default_run_dir_missing(edgekit, tmp_path: Path) -> None:
    assert_one_line_error(edgekit("report", cwd=tmp_path), "runs/latest does not exist")


def test_corrupt_tflite_is_refused(edgekit, run_copy: Path) -> None:
    proc = edgekit("parity", str(run_copy), "--limit", "100", "-a", "tflite-fp32")
    assert proc.returncode == 0, proc.stderr
    parity = (run_copy / "parity.json").read_bytes()
    target = run_copy / "exports" / "model_fp32.tflite"
    original = json.loads(parity)["artifacts"]["tflite-fp32"]
    target.write_bytes(np.random.default_rng(1).bytes(target.stat().st_size))
    proc = edgekit("parity", str(run_copy), "--limit", "100")
    assert_one_line_error(proc, "model_fp32.tflite", "does not match the sha256")
    # Even with a matching manifest entry, the file itself is refused as not a TFLite model.
    from runtimes.files import sha256_file

    manifest = json.loads((run_copy / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        if a["path"].endswith("model_fp32.tflite"):
            a["sha256"] = sha256_file(target)
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    proc = edgekit("parity", str(run_copy), "--limit", "100")
    assert_one_line_error(proc, "model_fp32.tflite", "not a TFLite model")
    # The refused runs left the parity.json of the good file as it was: nothing about the corrupt one.
    assert (run_copy / "parity.json").read_bytes() == parity
    assert json.loads(parity)["artifacts"]["tflite-fp32"] == original != sha256_file(target)


def test_unknown_artifact_name(edgekit, small_run: Path) -> None:
    assert_one_line_error(edgekit("bench", str(small_run), "-a", "tflite-int4"), "unknown artifact tflite-int4")


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--epochs", "0"],
        ["export", "--precision", "int4"],
        ["bench", "--threads", "0"],
        ["pipeline", "--batch", "-1"],
    ],
)
def test_bad_options_are_usage_errors(edgekit, args: list[str]) -> None:
    proc = edgekit(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_bad_data_source(edgekit, tmp_path: Path) -> None:
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"not a zip")
    proc = edgekit("train", "--data", str(bad), "--out", str(tmp_path / "run"))
    assert_one_line_error(proc, "mnist.npz")
    assert not (tmp_path / "run" / "model.keras").exists()


def test_parity_failure_exits_3(edgekit, run_copy: Path) -> None:
    swap_in_untrained_model(run_copy)
    proc = edgekit("parity", str(run_copy), "--limit", "500", "-a", "tflite-fp32")
    assert proc.returncode == 3, proc.stderr
    assert "parity failed for tflite-fp32" in proc.stderr and "Traceback" not in proc.stderr
    report = json.loads((run_copy / "parity.json").read_text())
    assert report["passed"] is False


def test_bench_and_report_commands(edgekit, run_copy: Path) -> None:
    proc = edgekit(
        "bench", str(run_copy), "-a", "tflite-int8", "-a", "onnx-fp32", "-b", "1", "-b", "4", "-t", "1", "--quick"
    )
    assert proc.returncode == 0, proc.stderr
    bench = json.loads((run_copy / "bench.json").read_text())
    assert bench["schema_version"] == 1 and bench["environment"]["cpu_model"]
    rows = bench["results"]
    assert {(r["artifact"], r["batch_size"], r["threads"]) for r in rows} == {
        (a, b, 1) for a in ("tflite-int8", "onnx-fp32") for b in (1, 4)
    }
    for r in rows:
        assert r["runs"] >= 100 and 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["load_ms"] > 0
    proc = edgekit("report", str(run_copy))
    assert proc.returncode == 0, proc.stderr
    text = (run_copy / "report.md").read_text()
    for heading in ("## Training", "## Artifacts", "## Latency"):
        assert heading in text


def test_small_pipeline_end_to_end(edgekit, tmp_path: Path) -> None:
    quick = ["--quick", "-b", "1", "-t", "1", "--calibration-size", "100"]
    proc = edgekit("pipeline", "--runs-dir", str(tmp_path / "runs"), "--epochs", "1", "--train-limit", "6000", *quick)
    # A one-epoch model is less confident, so int8 may miss its agreement tolerance: exit 3 is allowed.
    assert proc.returncode in (0, 3), proc.stderr
    latest = tmp_path / "runs" / "latest"
    assert latest.is_symlink()
    for name in ("model.keras", "train.json", "manifest.json", "parity.json", "bench.json", "report.md"):
        assert (latest / name).is_file(), name
    parity = json.loads((latest / "parity.json").read_text())
    assert len(parity["results"]) == 7
    assert (proc.returncode == 0) == parity["passed"]
    bench = json.loads((latest / "bench.json").read_text())
    assert len(bench["results"]) == 7
    assert "Parity" in proc.stdout and "Latency" in proc.stdout and "Done in" in proc.stdout


def test_bench_sweeps_runner_variants_and_reports_them(edgekit, run_copy: Path) -> None:
    one = ["-a", "tflite-fp32", "-a", "onnx-fp32", "-b", "1", "-t", "1", "--quick"]
    sweep = ["--xnnpack", "on", "--xnnpack", "off", "--ort-opt", "all", "--ort-opt", "basic"]
    proc = edgekit("bench", str(run_copy), *one, *sweep)
    assert proc.returncode == 0, proc.stderr
    bench = json.loads((run_copy / "bench.json").read_text())
    variants = {(r["artifact"], r["options"]["xnnpack"], r["options"]["graph_optimization"]) for r in bench["results"]}
    assert variants == {
        ("tflite-fp32", True, None),
        ("tflite-fp32", False, None),
        ("onnx-fp32", None, "all"),
        ("onnx-fp32", None, "basic"),
    }
    delegated = {r["options"]["xnnpack"]: r["delegated"] for r in bench["results"] if r["artifact"] == "tflite-fp32"}
    assert delegated == {True: True, False: False}
    for r in bench["results"]:
        assert r["flops_per_image"] == 2_103_808 and r["gflops"] > 0 and r["pct_of_peak"] > 0
        assert r["p90_ci_low_ms"] <= r["p90_ms"] <= r["p90_ci_high_ms"] and len(r["quantiles_ms"]) == 101
    assert set(bench["environment"]["peak_gflops"]) == {"1"}
    assert "tflite-fp32 (no XNNPACK)" in proc.stdout and "onnx-fp32 (ORT opt basic)" in proc.stdout
    assert edgekit("report", str(run_copy)).returncode == 0
    html = (run_copy / "report.html").read_text()
    assert "tflite-fp32 (no XNNPACK)" in html and 'src="http' not in html


def test_report_merges_a_run_and_a_board_bench_json(edgekit, run_copy: Path, tmp_path: Path) -> None:
    assert (
        edgekit("bench", str(run_copy), "-a", "tflite-int8", "-b", "1", "-t", "1", "--quick", "--no-peak").returncode
        == 0
    )
    board = tmp_path / "pi" / "bench.json"
    board.parent.mkdir()
    board.write_text((run_copy / "bench.json").read_text())
    proc = edgekit("report", str(run_copy), str(board), "--out", str(tmp_path / "merged"))
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "merged" / "report.md").read_text()
    assert "## Side by side" in md and md.count("tflite-int8") >= 2
    assert (tmp_path / "merged" / "report.html").stat().st_size > 10_000
