"""OpenVINO in every step of a run: targets, export into the manifest, parity, bench rows, bundle and verify."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'edgekit[openvino]')")

from exporters.base import ExportFormat, Precision
from toolkit.errors import ToolkitError
from toolkit.run import layout as A
from toolkit.run.documents import ManifestDocument, load_document
from toolkit.steps.export import parse_targets

OV = ExportFormat.OPENVINO
ONNX_FP32 = (ExportFormat.ONNX, Precision.FP32)


def test_openvino_is_opt_in_and_brings_its_onnx_source() -> None:
    assert all(f is not OV for f, _ in parse_targets(None, None))
    targets = parse_targets([OV], None)
    assert targets == [ONNX_FP32, (OV, Precision.FP32), (OV, Precision.FP16), (OV, Precision.INT8)]
    # Added after the default formats, onnx-fp32 keeps its place and is not repeated.
    both = parse_targets([ExportFormat.TFLITE, ExportFormat.ONNX, OV], [Precision.FP32])
    assert both == [(ExportFormat.TFLITE, Precision.FP32), ONNX_FP32, (OV, Precision.FP32)]
    # An ONNX source is its own onnx-fp32.
    assert parse_targets([OV], [Precision.FP16], source="onnx") == [(OV, Precision.FP16)]
    with pytest.raises(ToolkitError, match="OpenVINO IR is converted from the run's ONNX fp32 file"):
        parse_targets([OV], None, source="tflite")


@pytest.fixture(scope="module")
def ov_run(small_run: Path, mnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the small run with OpenVINO IR fp32 and fp16 exported into its manifest, and parity over them."""
    from toolkit.steps.export import export_step
    from toolkit.steps.parity import parity_step

    run = tmp_path_factory.mktemp("ov") / "run"
    shutil.copytree(small_run, run)
    export_step(run, [ONNX_FP32, (OV, Precision.FP32), (OV, Precision.FP16)], data=mnist)
    parity_step(run, limit=500, data=mnist)
    return run


def test_export_lists_both_files_of_an_ir_and_checks_them(ov_run: Path, tmp_path: Path) -> None:
    manifest = load_document(ov_run / "manifest.json", ManifestDocument)
    entry = next(e for e in manifest.artifacts if e.name == "openvino-fp16")
    assert entry.path.endswith(".xml") and entry.weights is not None and entry.weights.endswith(".bin")
    assert entry.runtime == "openvino" and entry.format == "openvino" and entry.weights_sha256
    assert entry.size_bytes == sum((ov_run / p).stat().st_size for p, _ in entry.files())
    # The other artifacts are still there: exporting OpenVINO added to the manifest.
    assert {"tflite-fp32", "onnx-int8", "openvino-fp32"} <= {e.name for e in manifest.artifacts}
    # A changed .bin is caught like a changed model file, in one line.
    copy = tmp_path / "run"
    shutil.copytree(ov_run, copy)
    weights = copy / entry.weights
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(A.RunDirError, match=r"model_fp16\.bin does not match the sha256"):
        A.Run(copy).verified_path(entry)


def test_parity_judges_the_irs_by_their_precision(ov_run: Path) -> None:
    from toolkit.run.documents import ParityDocument

    parity = load_document(ov_run / "parity.json", ParityDocument)
    rows = {r.artifact: r for r in parity.results}
    assert rows["openvino-fp32"].passed and rows["openvino-fp16"].passed
    assert rows["openvino-fp32"].tolerance == rows["onnx-fp32"].tolerance  # fp32's limits, as for ONNX fp32


def test_bench_measures_openvino_with_its_hints(ov_run: Path) -> None:
    import toolkit
    from toolkit.steps.bench_settings import BenchSettings

    settings = BenchSettings(
        batch_sizes=[1], threads=[1], measure_peak=False, processes=1, openvino_hint=["LATENCY", "THROUGHPUT"]
    )
    doc = toolkit.bench(ov_run, settings=settings, artifacts=["openvino-fp32", "onnx-fp32"])
    labels = {r.config_label(): r for r in doc.results}
    assert set(labels) == {"openvino-fp32", "openvino-fp32 (THROUGHPUT)", "onnx-fp32"}
    ov = labels["openvino-fp32"]
    assert ov.runtime == "openvino" and ov.options is not None and ov.options.performance_hint == "LATENCY"
    assert ov.runtime_version is not None and ov.runtime_version.startswith("openvino ")
    assert doc.method.openvino_hint == ["LATENCY", "THROUGHPUT"]
    assert labels["onnx-fp32"].options is not None and labels["onnx-fp32"].options.performance_hint is None


def test_bundle_carries_the_weights_and_verifies_here(ov_run: Path, tmp_path: Path, mnist) -> None:
    import toolkit

    path, doc = toolkit.bundle(ov_run, tmp_path / "b", artifacts=["openvino-fp16"], golden=64, data=mnist)
    art = next(a for a in doc.artifacts if a.name == "openvino-fp16")
    assert (path / art.path).is_file() and (path / art.path).with_suffix(".bin").is_file()
    _, verified = toolkit.verify(path)
    assert verified.passed
    from toolkit.remote.extras import bundle_extras

    # A board's install adds OpenVINO for this bundle, and for a bundle without an IR installs the core set only.
    assert bundle_extras(path) == ("openvino",)
    core, _ = toolkit.bundle(ov_run, tmp_path / "core", artifacts=["onnx-fp32"], golden=16, data=mnist)
    assert bundle_extras(core) == ()
    (path / art.path).with_suffix(".bin").unlink()
    with pytest.raises(Exception, match=r"model_fp16\.bin .*missing"):
        toolkit.verify(path)
