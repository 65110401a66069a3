"""int4 weights (issue 11, point 3): `edgekit export -p int4-weights` through the AI Edge Quantizer, then parity
and bench on the real file with the real LiteRT runtime."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_cli import assert_one_line_error

INT4 = "tflite-int4-weights"


def _quantizer_installed() -> bool:
    from exporters.int4_export import quantizer_version

    return quantizer_version() is not None


needs_quantizer = pytest.mark.skipif(
    not _quantizer_installed(),
    reason="ai-edge-quantizer is not installed (pip install '.[int4]'): int4-weights cannot be exported",
)


@pytest.fixture(scope="module")
def int4_run(small_run: Path, tmp_path_factory: pytest.TempPathFactory, edgekit) -> Path:
    """A copy of `small_run` with the int4 artifact exported through the CLI, as a user would."""
    if not _quantizer_installed():
        pytest.skip("ai-edge-quantizer is not installed (pip install '.[int4]')")
    run = tmp_path_factory.mktemp("int4") / "run"
    shutil.copytree(small_run, run)
    proc = edgekit("export", str(run), "-p", "int4-weights")
    assert proc.returncode == 0, proc.stderr
    return run


def test_int4_is_opt_in() -> None:
    from exporters.base import Precision
    from toolkit.steps.export import parse_targets

    assert all(p is not Precision.INT4_WEIGHTS for _, p in parse_targets(None, None))
    # `make run` keeps its seven artifacts: keras-fp32 and these six exports.
    assert [f"{f.value}-{p.value}" for f, p in parse_targets(None, None)] == [
        "tflite-fp32",
        "tflite-fp16",
        "tflite-int8-dynamic",
        "tflite-int8",
        "onnx-fp32",
        "onnx-int8",
    ]


@needs_quantizer
def test_int4_export_is_smaller_than_int8_dynamic(int4_run: Path) -> None:
    manifest = json.loads((int4_run / "manifest.json").read_text())
    entries = {a["name"]: a for a in manifest["artifacts"]}
    int4, int8 = entries[INT4], entries["tflite-int8-dynamic"]
    assert int4["path"] == "exports/model_int4_weights.tflite" and int4["precision"] == "int4-weights"
    assert int4["runtime"] == "tflite"
    # The exports already there are kept: exporting one precision adds to the manifest.
    assert {"tflite-fp32", "tflite-int8", "onnx-int8"} <= set(entries)
    # int4 stores two weights per byte: about half of int8-dynamic, an eighth of fp32.
    assert int4["size_bytes"] < 0.6 * int8["size_bytes"], (int4["size_bytes"], int8["size_bytes"])
    assert int4["size_bytes"] < 0.15 * entries["tflite-fp32"]["size_bytes"]
    assert any("ai-edge-quantizer" in note for note in int4["notes"])
    # Float activations: the file takes and gives float32, like fp32 and int8-dynamic.
    assert int4["input"]["dtype"] == "float32" and int4["output"]["dtype"] == "float32"
    print(f"sizes: int4 {int4['size_bytes']:,} B, int8-dynamic {int8['size_bytes']:,} B")


@needs_quantizer
def test_int4_weights_are_stored_as_int4(int4_run: Path) -> None:
    """The file really holds INT4 tensors read through DEQUANTIZE ops (not int8 relabelled)."""
    from ai_edge_litert import schema_py_generated as schema

    buf = (int4_run / "exports" / "model_int4_weights.tflite").read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    graph = model.subgraphs[0]
    types = [t.type for t in graph.tensors]
    assert types.count(schema.TensorType.INT4) >= 2  # the conv and dense kernels at least
    ops = {model.operatorCodes[op.opcodeIndex].builtinCode for op in graph.operators}
    assert schema.BuiltinOperator.DEQUANTIZE in ops


@needs_quantizer
def test_int4_parity_row_passes(int4_run: Path, edgekit) -> None:
    proc = edgekit("parity", str(int4_run), "-a", INT4, "-a", "tflite-int8-dynamic")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((int4_run / "parity.json").read_text())
    rows = {r["artifact"]: r for r in report["results"]}
    row = rows[INT4]
    assert row["passed"] and row["precision"] == "int4-weights" and row["backend"] == "ai_edge_litert"
    assert "int4-weights" in report["tolerances"]
    reference = report["reference"]["accuracy"]
    # `passed` is its own tolerance: looser than int8's and relative to the model's error rate (it is trained on
    # this CPU), so no fixed figure here.
    print(
        f"parity: reference {reference:.4f}, int4 {row['accuracy']:.4f} (agreement {row['top1_agreement']:.4f}), "
        f"int8-dynamic {rows['tflite-int8-dynamic']['accuracy']:.4f}"
    )


@needs_quantizer
def test_int4_bench_runs(int4_run: Path, edgekit) -> None:
    proc = edgekit("bench", str(int4_run), "-a", INT4, "-b", "1", "-t", "1", "--quick", "--no-peak")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((int4_run / "bench.json").read_text())["results"]
    assert [(r["artifact"], r["batch_size"]) for r in rows] == [(INT4, 1)]
    assert rows[0]["p50_ms"] > 0


def test_missing_quantizer_is_one_line(run_copy: Path) -> None:
    """Without ai-edge-quantizer, `-p int4-weights` names the package and its install command."""
    # sys.modules[name] = None makes `import ai_edge_quantizer` raise ImportError, as when it is absent.
    code = "import sys; sys.modules['ai_edge_quantizer'] = None; from toolkit.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "export", str(run_copy), "-p", "int4-weights"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert_one_line_error(proc, "ai-edge-quantizer", "pip install")
    assert not (run_copy / "exports" / "model_int4_weights.tflite").exists()
