"""`edgekit diagnose` on OpenVINO IR: per-layer error through the ONNX tensor names the IR keeps, and the slowdown
explainer from OpenVINO's performance counters."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'edgekit[openvino]')")
pytest.importorskip("nncf", reason="NNCF is not installed (pip install 'edgekit[openvino-int8]')")
pytest.importorskip("tensorflow")

from exporters.base import ExportFormat, Precision
from tests.floors import meets_floor
from toolkit.run.documents import dump_document
from toolkit.tolerances import PARITY_TOLERANCES

LIMIT = 200
ROW_TYPES = ["Input", "Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dense"]


@pytest.fixture(scope="module")
def ov_run(small_run: Path, mnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the small run with OpenVINO IR fp32 and int8 in its manifest (int8 on 100 calibration images)."""
    from toolkit.steps.export import export_step

    run = tmp_path_factory.mktemp("ov-diagnose") / "run"
    shutil.copytree(small_run, run)
    targets = [(ExportFormat.ONNX, Precision.FP32), (ExportFormat.OPENVINO, Precision.FP32)]
    export_step(run, [*targets, (ExportFormat.OPENVINO, Precision.INT8)], data=mnist, calibration_size=100)
    return run


def test_int8_ir_gets_per_layer_rows_and_counter_evidence(ov_run: Path, mnist) -> None:
    from toolkit.diagnosis.layers import INPUT_ROW
    from toolkit.diagnosis.step import diagnose_step

    report = dump_document(diagnose_step(ov_run, artifact_names=["openvino-int8"], limit=LIMIT, data=mnist))
    (res,) = report["artifacts"]
    assert res["artifact"] == "openvino-int8" and res["format"] == "openvino"
    # Every Keras layer found in the IR by the ONNX tensor names it keeps; conv and pool outputs are NCHW there.
    assert [r["type"] for r in res["layers"]][1:] == ROW_TYPES[1:] and res["layers"][0]["layer"] == INPUT_ROW
    assert all(r["tensor"] for r in res["layers"])
    rows = {r["type"]: r for r in res["layers"]}
    assert rows["Conv2D"]["layout"] == rows["MaxPooling2D"]["layout"] == "NCHW"
    # NNCF quantizes the input too: its row reads the FakeQuantize output, so it carries error; fp32 would not.
    assert res["layers"][0]["max_abs_err"] > 0
    assert "OpenVINO CPU plugin" in res["instrumentation"]["how"]
    # A healthy int8 file: parity's int8 floor, and no layer departs.
    assert res["first_departure"] is None, res["first_departure"]
    assert meets_floor(res["top1_agreement"], LIMIT, res["reference_accuracy"])
    (speed,) = report["speed"]
    assert speed["sibling"] == "openvino-fp32" and speed["slower"] in (True, False)
    prof, base = speed["evidence"]["profile"], speed["evidence"]["sibling_profile"]
    for p in (prof, base):
        assert p["runs"] == 200 and p["latency_median_us"] > 0 and p["total_us"] > 0
        assert {n["type"] for n in p["nodes"]} >= {"Convolution", "MaxPool"}
        assert all(n["exec_type"] and n["layer"] for n in p["nodes"])
    # The fp32 graph computes in float: no int8 kernel, whatever the CPU.
    assert not any(n["exec_type"].lower().endswith(("_i8", "_u8")) for n in base["nodes"])
    assert "OpenVINO's performance counters" in speed["reason"] and "on OpenVINO" in speed["reason"]
    md = (ov_run / "diagnose" / "diagnose.md").read_text()
    assert "| layer | openvino-int8 kernels | openvino-fp32 kernels |" in md


def test_ir_without_its_onnx_source_compares_the_output_only(ov_run: Path, mnist, tmp_path: Path) -> None:
    from runtimes.keras_runner import load_keras_model
    from toolkit.data.mnist import to_model_input
    from toolkit.diagnosis.artifact import diagnose_artifact, output_layer_name
    from toolkit.diagnosis.layers import is_input_row, keras_layers, keras_outputs
    from toolkit.run.layout import load_manifest

    entry = load_manifest(ov_run).artifact("openvino-fp32")
    assert entry is not None and entry.weights is not None
    alone = tmp_path / "alone"
    alone.mkdir()
    for rel in (entry.path, entry.weights):
        shutil.copy(ov_run / rel, alone)
    model = load_keras_model(ov_run / "model.keras")
    images, labels = to_model_input(mnist.x_test[:50]), mnist.y_test[:50]
    layers = keras_layers(model)
    result = diagnose_artifact(
        dump_document(entry),
        alone / Path(entry.path).name,
        layers,
        keras_outputs(model, images),
        images,
        labels,
        tmp_path / "out",
        (str(model.name),),
        output_layer_name(model),
    )
    assert all(r["tensor"] is None for r in result["layers"] if not is_input_row(r["layer"]))
    how = result["instrumentation"]["how"]
    assert "per-layer error is not available for model_fp32.xml" in how and "\n" not in how
    # The output is still compared: an fp32 IR (f32 inference precision) stays within the fp32 parity limit.
    limit = PARITY_TOLERANCES["fp32"].max_abs_diff
    assert limit is not None and result["output_error"]["max_abs_err"] <= limit
    assert result["top1_agreement"] is not None
