"""`python -m benchmarks.openvino_check`: the harness against OpenVINO's own benchmark_app on the small run's IR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'edgekit[openvino]')")

from benchmarks import openvino_check
from benchmarks.errors import BenchmarkError
from exporters.openvino_export import export_openvino

SHORT = ["--rounds", "2", "--min-runs", "50", "--seconds", "0", "--machine", "test-box"]


@pytest.fixture(scope="module")
def ir_dir(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    manifest = json.loads((small_run / "manifest.json").read_text())
    onnx = small_run / next(a["path"] for a in manifest["artifacts"] if a["name"] == "onnx-fp32")
    out = tmp_path_factory.mktemp("ov-check")
    for precision in ("fp32", "fp16"):
        export_openvino(onnx, out, precision=precision)
    return out


def test_check_alternates_with_benchmark_app_and_splits_the_call(
    ir_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = openvino_check.main(["--exports", str(ir_dir), "--out", str(tmp_path), *SHORT])
    assert code in (openvino_check.EXIT_OK, openvino_check.EXIT_FAILED)  # a speed verdict: not asserted
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(f.startswith("openvino-check-") and "-test-box." in f for f in files)
    result = json.loads((tmp_path / files[0]).read_text())
    assert result["pass"] == (code == openvino_check.EXIT_OK)
    assert result["cpu_config"]["INFERENCE_NUM_THREADS"] == "1"
    assert [r["artifact"] for r in result["results"]] == ["openvino-fp32", "openvino-fp16"]
    for r in result["results"]:
        assert [row["order"] for row in r["rounds"]] == ["harness-first", "app-first"]
        assert all(row["app_runs"] >= 50 and row["harness_runs"] >= 50 for row in r["rounds"])
        assert all(row["app_wall_mean_ms"] > 0 for row in r["rounds"])
        assert r["input_shape"] == [1, 28, 28, 1]
        assert r["pass"] == (abs(r["diff"]) <= openvino_check.TOLERANCE)
        # OpenVINO's C++ timing is taken inside the Python call around it: it cannot be the longer of the two.
        assert 0 < r["split_cpp_p50_ms"] <= r["split_wall_p50_ms"] and r["bare_p50_ms"] > 0
    table = (tmp_path / files[1]).read_text()
    assert "openvino-fp16" in table and "b_app" in table and "overall:" in table
    assert table in capsys.readouterr().out


def test_benchmark_app_settings_are_read_back(ir_dir: Path, tmp_path: Path) -> None:
    # Two threads instead of one: benchmark_app echoes what it ran with, and the check refuses to compare.
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"CPU": {**openvino_check.CPU_CONFIG, "INFERENCE_NUM_THREADS": "2"}}))
    app = openvino_check.find_benchmark_app()
    with pytest.raises(BenchmarkError, match=r"INFERENCE_NUM_THREADS=2.*not be comparable"):
        openvino_check.run_app(app, ir_dir / "model_fp32.xml", (1, 28, 28, 1), config, min_runs=5, seconds=0)


def test_refusals_are_one_line(ir_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "model.xml"
    fake.write_text("not xml at all")
    (tmp_path / "model.bin").write_bytes(b"\0")
    assert openvino_check.main(["--xml", str(fake), "--no-save", *SHORT]) == openvino_check.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "not an OpenVINO IR file" in err and "\n" not in err
    missing = ["--xml", str(ir_dir / "model_fp32.xml"), "--benchmark-app", str(tmp_path / "nope"), "--no-save"]
    assert openvino_check.main(missing) == openvino_check.EXIT_ERROR
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit):
        openvino_check.main(["--exports", str(empty)])
