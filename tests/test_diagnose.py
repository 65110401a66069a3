"""`edgekit diagnose` on the small real run: per-layer diff, broken exports, gallery, slowdown explainer, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.floors import meets_floor
from toolkit.run.documents import dump_document

pytest.importorskip("tensorflow")
pytest.importorskip("onnx")

# Layer names depend on what else the process built (Keras numbers them: dense, dense_1 or dense_1, dense_2...),
# so tests go by type and read the names from the report.
KERAS_TYPES = ["Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dense"]
LIMIT = 200


def _names(report: dict) -> list[str]:
    assert [lay["type"] for lay in report["reference"]["layers"]] == KERAS_TYPES
    return [lay["name"] for lay in report["reference"]["layers"]]


def _replace_artifact(run: Path, name: str, path: Path) -> None:
    """Point the manifest entry `name` at the (rewritten) file `path`."""
    from runtimes.files import sha256_file, write_json_atomic

    manifest = json.loads((run / "manifest.json").read_text())
    for entry in manifest["artifacts"]:
        if entry["name"] == name:
            entry["path"] = path.relative_to(run).as_posix()
            entry["sha256"] = sha256_file(path)
            entry["size_bytes"] = path.stat().st_size
    write_json_atomic(run / "manifest.json", manifest)


def _rows(result: dict) -> dict[str, dict]:
    """Rows keyed by layer type (the second Dense as `Dense_out`), plus the input row."""
    out: dict[str, dict] = {}
    for r in result["layers"]:
        out["Dense_out" if r["type"] == "Dense" and "Dense" in out else r["type"]] = r
    return out


ROW_KEYS = ["Input", "Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dense_out"]


def _output_step(run: Path, name: str) -> float:
    """One quantization step of an int8 artifact's output: its output scale (TFLite int8 I/O) or the scale of
    the DequantizeLinear that produces it (ONNX QDQ); what verify allows between two machines."""
    from toolkit.bundles.verify import tolerance_for
    from toolkit.run.layout import load_manifest

    entry = load_manifest(run).artifact(name)
    assert entry is not None
    tolerance = tolerance_for(entry, run / entry.path)
    assert tolerance.kind == "quantization_step" and tolerance.step is not None, tolerance
    return tolerance.step


def test_healthy_int8_exports_show_small_steady_error_on_every_layer(run_copy: Path, mnist) -> None:
    from toolkit.diagnosis.layers import DEPART_SNR_DB, INPUT_ROW
    from toolkit.diagnosis.render import summary_table
    from toolkit.diagnosis.step import diagnose_step

    doc = diagnose_step(run_copy, artifact_names=["tflite-int8", "onnx-int8"], limit=LIMIT, data=mnist)
    report = dump_document(doc)  # diagnose.json's JSON form
    assert report["images"] == LIMIT
    names = _names(report)
    by_name = {r["artifact"]: r for r in report["artifacts"]}
    assert set(by_name) == {"tflite-int8", "onnx-int8"}
    for name, res in by_name.items():
        rows = _rows(res)
        # Every Keras layer (plus the input row) is mapped to a tensor of the export.
        assert list(rows) == ROW_KEYS, name
        assert [r["layer"] for r in res["layers"]] == [INPUT_ROW, *names]
        assert all(r["tensor"] for r in rows.values()), name
        # Healthy: no departure, every layer well above the threshold, no single layer adds > 1 % error power.
        assert res["first_departure"] is None, (name, res["first_departure"])
        assert all(r["snr_db"] > DEPART_SNR_DB + 10 and r["cosine"] > 0.999 for r in rows.values()), name
        assert all(abs(r["added_error_pct"]) < 1.0 for r in rows.values()), name
        # Dropout is the identity: read from the pooling output.
        assert rows["Dropout"]["tensor"] == rows["MaxPooling2D"]["tensor"]
        assert rows["Dense_out"]["max_abs_err"] < 0.2
        # The instrumented run computes what the plain run computes: unfused kernels may round a requantization
        # differently, never by more than one step of the output (measured: 0 on AVX-512/AMX, emulated AVX2 and
        # SSE4.2 with the portable recipe; a full-range file differed by 31 steps on AVX2, saturating).
        assert res["instrumentation"]["top1_changes_vs_plain"] == 0
        assert res["instrumentation"]["max_abs_diff_vs_plain_output"] <= _output_step(run_copy, name) * 1.001
        assert res["flatten_order"] == "NHWC"
        assert meets_floor(res["top1_agreement"], LIMIT, res["reference_accuracy"])  # parity's int8 floor
    # ONNX conv/pool outputs are NCHW and transposed back; TFLite's are NHWC. Int8 tensors were dequantized.
    onnx_rows, tfl_rows = _rows(by_name["onnx-int8"]), _rows(by_name["tflite-int8"])
    assert onnx_rows["Conv2D"]["layout"] == onnx_rows["MaxPooling2D"]["layout"] == "NCHW"
    assert onnx_rows["Conv2D"]["read_from"].endswith("_QuantizeLinear_Output")
    assert tfl_rows["Conv2D"]["layout"] == "NHWC" and tfl_rows["Conv2D"]["dtype"].startswith("int8")
    # Each layer maps to a tensor carrying its own name (e.g. dense vs dense_1 are not confused).
    assert "Relu" in tfl_rows["Dense"]["tensor"] and "Softmax" not in tfl_rows["Dense"]["tensor"]
    assert tfl_rows["Dense_out"]["tensor"] != tfl_rows["Dense"]["tensor"]
    # The per-layer table lists every layer against both artifacts.
    header, table = summary_table(doc)
    assert header == ["layer", "tflite-int8", "onnx-int8"]
    assert [r[0] for r in table] == [INPUT_ROW, *names]
    assert all("dB" in cell for r in table for cell in r[1:])
    out = run_copy / "diagnose"
    saved = json.loads((out / "diagnose.json").read_text())
    assert saved["thresholds"]["departs_below_snr_db"] == DEPART_SNR_DB
    md = (out / "diagnose.md").read_text()
    for layer in names:
        assert f"| {layer} |" in md
    assert "## Slowdown explainer" in md


def test_blank_calibrated_int8_fails_parity_and_diagnose_names_where_it_starts(run_copy: Path, mnist) -> None:
    from PIL import Image

    from exporters.base import Precision
    from exporters.tflite_export import export_tflite
    from runtimes.keras_runner import load_keras_model
    from toolkit.diagnosis.layers import INPUT_ROW
    from toolkit.diagnosis.step import diagnose_step
    from toolkit.run import layout as A
    from toolkit.run.documents import ArtifactEntry
    from toolkit.steps.parity import parity_step

    model = load_keras_model(run_copy / "model.keras")
    blank = np.zeros((4, 28, 28, 1), np.float32)
    result = export_tflite(model, run_copy / "exports", precision=Precision.INT8, calibration_data=blank)
    A.write_manifest(run_copy, [ArtifactEntry.model_validate(result.manifest_entry(run_copy))])
    parity = dump_document(parity_step(run_copy, artifact_names=["tflite-int8"], limit=LIMIT, data=mnist))
    assert not parity["passed"]
    assert not next(r for r in parity["results"] if r["artifact"] == "tflite-int8")["passed"]

    report = dump_document(diagnose_step(run_copy, artifact_names=["tflite-int8"], limit=LIMIT, data=mnist))
    (res,) = report["artifacts"]
    dep = res["first_departure"]
    # Calibrated on zeros, the input scale is ~1e-8: every pixel saturates before conv2d sees it.
    conv = _names(report)[0]
    assert dep is not None and dep["layer"] == INPUT_ROW and dep["first_keras_layer"] == conv
    assert dep["clipped_pct"] > 5 and dep["quant_range"][1] < 1e-3 and "clip" in dep["reason"]
    assert res["added_error_ranking"][0]["layer"] == INPUT_ROW
    assert all(r["departs"] for r in res["layers"])
    # The gallery shows the disagreeing images, captioned; diagnose.md links it.
    gallery = res["gallery"]
    assert gallery["count"] > LIMIT // 2 and gallery["file"] == "gallery_tflite-int8.png"
    with Image.open(run_copy / "diagnose" / gallery["file"]) as img:
        assert img.format == "PNG" and img.width > 28 * 4
    md = (run_copy / "diagnose" / "diagnose.md").read_text()
    assert "(gallery_tflite-int8.png)" in md and "the error starts at **the model input's quantization" in md


def test_damaged_onnx_layer_is_located_mid_network(run_copy: Path, mnist) -> None:
    """Shrink the QuantizeLinear scale after `dense` 50x: layers before it stay clean, dense departs."""
    import onnx
    from onnx import numpy_helper

    from runtimes.keras_runner import load_keras_model
    from toolkit.diagnosis.capture import OnnxGraph
    from toolkit.diagnosis.layers import keras_layers, map_layers
    from toolkit.diagnosis.step import diagnose_step
    from toolkit.steps.parity import parity_step

    path = run_copy / "exports" / "model_int8.onnx"
    graph = OnnxGraph(path)
    layers = keras_layers(load_keras_model(run_copy / "model.keras"))
    dense = next(p for p in map_layers(layers, (28, 28, 1), graph.tensors) if p.type == "Dense")
    assert dense.tensor is not None and dense.tensor.scale is not None
    model = onnx.load(str(path))
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.output[0] == dense.tensor.read)
    init = next(i for i in model.graph.initializer if i.name == q.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(0.02), init.name))
    onnx.save(model, str(path))
    _replace_artifact(run_copy, "onnx-int8", path)

    assert not parity_step(run_copy, artifact_names=["onnx-int8"], limit=LIMIT, data=mnist).passed
    report = dump_document(diagnose_step(run_copy, artifact_names=["onnx-int8"], limit=LIMIT, data=mnist))
    rows = _rows(report["artifacts"][0])
    assert report["artifacts"][0]["first_departure"]["layer"] == dense.layer
    assert not any(rows[key]["departs"] for key in ("Input", "Conv2D", "MaxPooling2D", "Dropout", "Flatten"))
    assert rows["Dense"]["clipped_pct"] > 5
    assert report["artifacts"][0]["added_error_ranking"][0]["layer"] == dense.layer


def test_explainer_blames_int16x8_slowness_on_missing_delegation(run_copy: Path, mnist) -> None:
    from exporters.base import ExportFormat, Precision
    from toolkit.diagnosis.step import diagnose_step
    from toolkit.steps.export import export_step

    export_step(run_copy, [(ExportFormat.TFLITE, Precision.INT16X8)], data=mnist, calibration_size=50)
    report = dump_document(
        diagnose_step(run_copy, artifact_names=["tflite-int16x8", "onnx-int8"], limit=50, data=mnist)
    )
    speed = {s["artifact"]: s for s in report["speed"]}

    rec = speed["tflite-int16x8"]
    ops, sib_ops = rec["evidence"]["ops"], rec["evidence"]["sibling_ops"]
    # The op profile: no DELEGATE node, every op on built-in kernels, int16 activations; fp32 is delegated.
    assert ops["delegate_nodes"] == 0 and not any(o["delegated"] for o in ops["ops"])
    assert "int16" in ops["activation_dtypes"]
    assert sib_ops["delegate_nodes"] > 0 and any(o["delegated"] for o in sib_ops["ops"])
    assert rec["timing"]["source"] != "bench.json"  # the small run has no bench.json: timed here
    assert rec["slower"] is True and rec["timing"]["median_ratio"] > 2
    tm = rec["evidence"]["timings"]
    # Both timed; that XNNPACK takes no op is asserted above from the op profile (delegate_nodes == 0), not from
    # their ratio: two sub-10-ms timings on a shared machine can differ 3x (seen with three jobs on 2 cores).
    assert tm["xnnpack_off_ms"] > 0 and tm["xnnpack_on_ms"] > 0
    assert "not delegated" in rec["reason"] and "int16" in rec["reason"]

    onnx_rec = speed["onnx-int8"]
    prof = onnx_rec["evidence"]["profile"]
    assert prof["kernel_total_us"] > 0
    assert any(op in prof["kernel_us_per_inference"] for op in ("QLinearConv", "QuantizeLinear", "QGemm"))
    assert onnx_rec["evidence"]["cpu"]["machine"]
    assert onnx_rec["reason"] and ("ORT's profiler" in onnx_rec["reason"])
    md = (run_copy / "diagnose" / "diagnose.md").read_text()
    assert "### tflite-int16x8 vs tflite-fp32" in md and "built-in kernel" in md


def test_cli_diagnose_prints_table_and_exits_zero(edgekit, run_copy: Path) -> None:
    proc = edgekit("diagnose", str(run_copy), "-a", "tflite-int8", "--limit", "50")
    assert proc.returncode == 0, proc.stderr
    assert "tflite-int8: per-layer error vs keras-fp32" in proc.stdout
    report = json.loads((run_copy / "diagnose" / "diagnose.json").read_text())
    for layer in _names(report):
        assert f" {layer} " in proc.stdout
    assert "first departure" in proc.stdout and "Traceback" not in proc.stderr

    proc = edgekit("diagnose", str(run_copy), "-a", "no-such-artifact", "--limit", "10")
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "no-such-artifact" in lines[0]


def test_command_module_imports_no_tensorflow() -> None:
    code = (
        "import sys, typer.main, toolkit.cli.diagnose, toolkit.cli.typer_app as t; typer.main.get_command(t.app); "
        "heavy = [m for m in ('tensorflow', 'keras', 'onnx', 'onnxruntime', 'PIL') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
