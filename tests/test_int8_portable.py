"""Portable int8 (issue 19): the ONNX int8 recipe per target, and the exports under emulated CPU classes.

ONNX Runtime on x86-64 without VNNI multiplies pairs of u8 activations and s8 weights with VPMADDUBSW, whose
int16 sums saturate above 32,767. The portable recipe keeps weights within ±64, so no pair can reach it
(2 × 255 × 64 = 32,640); the x86-vnni target uses the full ±127. `edgekit parity --cpu` re-runs the exports
under QEMU CPU models: real LiteRT and ONNX Runtime kernels of that class, no TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

QEMU_X86 = shutil.which("qemu-x86_64-static")
# CI installs QEMU (.ci/run): there a missing one fails the emulated-CPU checks instead of skipping them.
needs_qemu = pytest.mark.skipif(
    QEMU_X86 is None and not os.environ.get("CI"), reason="qemu-x86_64-static missing: apt-get install qemu-user-static"
)
INT16_MAX = 32_767
U8_MAX = 255


def _int8_weights(path: Path) -> list[np.ndarray]:
    """The int8 weight initializers a QDQ model dequantizes (activations are quantized at run time, not stored)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    int8 = {name for name, init in inits.items() if init.data_type == onnx.TensorProto.INT8}
    return [
        numpy_helper.to_array(inits[n.input[0]])
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in int8
    ]


def _activation_types(path: Path) -> set[int]:
    """The element types of the zero points of the model's QuantizeLinear nodes (its activation type)."""
    import onnx

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    return {inits[n.input[2]].data_type for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2}


def test_onnx_int8_is_portable_by_default(small_run: Path) -> None:
    import onnx

    manifest = json.loads((small_run / "manifest.json").read_text())
    assert manifest["int8_target"] == "portable"
    entry = next(a for a in manifest["artifacts"] if a["name"] == "onnx-int8")
    assert entry["quantization"]["recipe"] == "qdq-u8s8-7bit" and entry["quantization"]["portable"] is True
    weights = _int8_weights(small_run / entry["path"])
    assert weights and all(int(np.abs(w.astype(np.int32)).max()) <= 64 for w in weights)
    # No pair of u8 activations and s8 weights can saturate VPMADDUBSW's int16 sum.
    assert 2 * U8_MAX * max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= INT16_MAX
    assert _activation_types(small_run / entry["path"]) == {onnx.TensorProto.UINT8}
    tflite = next(a for a in manifest["artifacts"] if a["name"] == "tflite-int8")
    assert tflite["quantization"]["target"] == "portable" and tflite["quantization"]["recipe"] == "tflite-int8"


@pytest.mark.parametrize(("target", "activation"), [("x86-vnni", "UINT8"), ("arm64", "INT8")])
def test_a_known_target_gets_its_full_range_recipe(run_copy: Path, mnist, target: str, activation: str) -> None:
    import onnx

    from exporters.base import ExportFormat, Precision
    from toolkit.steps.export import export_step

    manifest = export_step(
        run_copy, [(ExportFormat.ONNX, Precision.INT8)], data=mnist, calibration_size=100, int8_target=target
    )
    assert manifest.int8_target == target
    entry = manifest.artifact("onnx-int8")
    assert entry is not None and entry.quantization is not None
    assert entry.quantization.target == target and entry.quantization.portable is False
    weights = _int8_weights(run_copy / entry.path)
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in weights) == 127  # symmetric per-channel: full range
    assert _activation_types(run_copy / entry.path) == {getattr(onnx.TensorProto, activation)}


def test_an_unknown_target_is_one_line(edgekit, small_run: Path) -> None:
    from tests.test_cli import assert_one_line_error

    proc = edgekit("export", str(small_run), "--target", "x86-avx9000")
    assert proc.returncode == 2 and "x86-avx9000" in proc.stderr and "Traceback" not in proc.stderr
    proc = edgekit("parity", str(small_run), "--cpu", "pentium4")
    assert_one_line_error(proc, "pentium4", "haswell", "cortex-a72")


# -- the exports under emulated CPU classes ----------------------------------------------------------------
def _ink_counter(root: Path) -> tuple[Path, Path]:
    """A linear 'total ink' regressor on 49 pooled MNIST features, all weights equal: the worst case for
    VPMADDUBSW (every weight quantizes to the top of its range, bright neighbouring pixels fill a pair)."""
    import keras

    from tests.user_models import ink_targets

    data = ink_targets(root / "ink.npz")
    d = np.load(data)
    x_train, x_test = d["x_train"], d["x_test"]
    y_train, y_test = x_train.sum(axis=1, keepdims=True), x_test.sum(axis=1, keepdims=True)
    np.savez(root / "ink-sum.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    model = keras.Sequential([keras.Input((49,)), keras.layers.Dense(1, name="ink", use_bias=False)], name="ink")
    model.layers[0].set_weights([np.ones((49, 1), dtype=np.float32)])
    model.save(root / "ink.keras")
    return root / "ink.keras", root / "ink-sum.npz"


@needs_qemu
@pytest.mark.parametrize(("target", "same"), [("x86-vnni", False), ("portable", True)])
def test_emulated_haswell_tells_a_portable_int8_file_from_one_that_saturates(
    tmp_path: Path, target: str, same: bool
) -> None:
    import toolkit
    from benchmarks.cpu import detect_cpu

    here = detect_cpu()
    if here.arch != "x86-64":
        pytest.skip("x86-64 CPU models run this machine's Python: an x86-64 host only")
    if not same and not here.int8_dot_product:
        pytest.skip("this CPU has no VNNI: it saturates like Haswell, so native and emulated agree either way")
    model, data = _ink_counter(tmp_path)
    run = tmp_path / "run"
    toolkit.export(run, model=model, data=data, formats=["onnx"], precisions=["int8"], int8_target=target)
    doc = toolkit.parity(run, artifacts=["onnx-int8"], cpus=["haswell"], cpu_images=200)
    assert doc.cpu_classes is not None
    native, haswell = doc.cpu_classes.classes
    assert native.rows[0].passed  # the file is right where it was made
    assert haswell.cpu is not None and haswell.cpu.isa_class == "x86-64-avx2"  # emulation really happened
    (row,) = haswell.rows
    assert row.identical_to_native is same and row.passed is same, row.failures
    if not same:
        assert row.max_abs_diff_vs_native is not None and row.native_tolerance is not None
        assert row.max_abs_diff_vs_native > 10 * row.native_tolerance
        assert any("against this machine" in f for f in row.failures) and doc.passed is False


INT8_EXPORTS = ("tflite-int8", "tflite-int8-dynamic", "onnx-int8")


@pytest.mark.slow
@needs_qemu
def test_every_user_models_int8_exports_answer_the_same_on_emulated_cpus(
    edgekit, user_runs: dict[str, Path], tmp_path: Path
) -> None:
    """The user models' int8 exports (a regression model among them) under emulated AVX2 and SSE4.2."""
    args = [a for name in INT8_EXPORTS for a in ("-a", name)]
    for name, run in user_runs.items():
        copy = shutil.copytree(run, tmp_path / name)
        proc = edgekit("parity", str(copy), *args, "--cpu", "haswell", "--cpu", "nehalem", "--cpu-images", "200")
        assert proc.returncode == 0, (name, proc.stdout[-3000:] + proc.stderr[-2000:])
        section = json.loads((copy / "parity.json").read_text())["cpu_classes"]
        assert section["passed"] and len(section["classes"]) == 3


@needs_qemu
def test_parity_cpu_on_the_int8_exports(edgekit, run_copy: Path) -> None:
    """The runtimes' int8 checks under two emulated x86-64 classes (the CI step that does not depend on the host)."""
    from benchmarks.cpu import detect_cpu

    if detect_cpu().arch != "x86-64":
        pytest.skip("x86-64 CPU models run this machine's Python: an x86-64 host only")
    from tests.test_cli import assert_one_line_error

    refused = edgekit("parity", str(run_copy), "-a", "keras-fp32", "--cpu", "haswell")
    assert_one_line_error(refused, "runs the exports, not the Keras reference")
    int8 = INT8_EXPORTS
    args = [a for name in int8 for a in ("-a", name)]
    proc = edgekit("parity", str(run_copy), *args, "--cpu", "haswell", "--cpu", "nehalem", "--cpu-images", "300")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Same answers on which CPUs" in proc.stdout
    doc = json.loads((run_copy / "parity.json").read_text())
    section = doc["cpu_classes"]
    assert section["images"] == 300 and section["passed"] and doc["cpu"]["isa_class"] == detect_cpu().isa_class
    classes = {c["name"]: c for c in section["classes"]}
    assert classes["haswell"]["cpu"]["isa_class"] == "x86-64-avx2"
    assert classes["nehalem"]["cpu"]["isa_class"] == "x86-64-sse4.2"
    for c in classes.values():
        assert sorted(r["artifact"] for r in c["rows"]) == sorted(int8)
        for r in c["rows"]:
            assert r["passed"], (c["name"], r)
            if c["emulated"]:
                assert r["max_abs_diff_vs_native"] <= r["native_tolerance"] * 1.001
    proc = edgekit("report", str(run_copy))
    assert proc.returncode == 0, proc.stderr
    md = (run_copy / "report.md").read_text()
    assert "## Same answers on which CPUs" in md and "haswell (x86-64-avx2)" in md
    html = (run_copy / "report.html").read_text()
    assert 'id="cpus"' in html and "Haswell-v4" in html
