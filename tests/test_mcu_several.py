"""`edgekit mcu` on models with several inputs and outputs: every tensor through TensorFlow Lite Micro.

The runs are conftest's `several_runs` (the 2-input/2-output model and the detector, trained on real MNIST).
TFLM sets each input and reads each output by index; each output is compared with LiteRT's built-in kernels
in int8 steps (allowed what LiteRT's own two kernel sets differ by on that output) and with Keras by its
kind, as parity judges it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

EXPECTED = {"two": (["features", "image"], ["digit", "side"]), "detector": (["image"], ["boxes", "scores"])}


# Every test reads conftest's several_runs (two models trained and piped, ~100 s): end to end, so CI runs them.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mcu_runs(several_runs: dict[str, Path], edgekit: Any) -> dict[str, tuple[Any, str]]:
    pytest.importorskip("tflite_micro")
    from toolkit.run import layout as A
    from toolkit.run.documents import McuDocument

    out = {}
    for name, run in several_runs.items():
        result = edgekit("mcu", str(run))
        assert result.returncode == 0, result.stderr[-3000:]
        doc = A.Run(run).find(McuDocument)
        assert doc is not None
        out[name] = (doc, result.stdout)
    return out


@pytest.mark.parametrize("name", ["two", "detector"])
def test_every_tensor_runs_in_tflm_and_each_output_is_judged(
    mcu_runs: dict[str, tuple[Any, str]], several_runs: dict[str, Path], name: str
) -> None:
    doc, stdout = mcu_runs[name]
    inputs, outputs = EXPECTED[name]
    [result] = doc.results
    assert result.artifact == "tflite-int8"
    assert result.inputs is not None and sorted(t.name for t in result.inputs) == inputs
    assert result.outputs is not None and sorted(t.name for t in result.outputs) == outputs
    par = result.parity
    assert par.outputs is not None and sorted(o.output for o in par.outputs) == outputs
    for o in par.outputs:
        # TFLM's kernels are ported from LiteRT's built-in ones: as close as LiteRT's own two kernel sets.
        assert 0 <= o.max_int8_steps_vs_builtin <= o.litert_rounding_steps, o
        assert o.passed, o.failures
    assert par.passed and doc.passed
    assert result.parity_rows is not None and sorted(r.output for r in result.parity_rows) == outputs
    # The firmware example sets every input and reads every output by its index.
    example = (several_runs[name] / "mcu" / "tflite-int8" / "main_example.cc").read_text()
    for i, tensor in enumerate(result.inputs):
        assert f"//   input {i}: {tensor.name}" in example
    assert f"constexpr int kOutputs = {len(outputs)};" in example
    # parity.json measured the same test rows: it gains one tflm row per output.
    parity = json.loads((several_runs[name] / "parity.json").read_text())
    tflm = sorted(r["output"] for r in parity["results"] if r["runtime"] == "tflm")
    assert tflm == outputs
    for out in outputs:
        assert f"output {out} (" in stdout


def test_boxes_are_judged_by_the_box_scale_and_scores_by_agreement(mcu_runs: dict[str, tuple[Any, str]]) -> None:
    doc, _ = mcu_runs["detector"]
    by_name = {o.output: o for o in doc.results[0].parity.outputs or []}
    assert by_name["boxes"].kind == "boxes" and by_name["boxes"].keras_measure.startswith("max coordinate")
    assert by_name["boxes"].agreement_litert is None
    assert by_name["scores"].keras_measure == "top-1 agreement" and by_name["scores"].accuracy is not None
    assert by_name["scores"].agreement_litert is not None


@pytest.mark.skipif(
    shutil.which("arm-none-eabi-g++") is None and not os.environ.get("CI"),
    reason="apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib (CI does)",
)
@pytest.mark.parametrize("name", ["two", "detector"])
def test_the_several_tensor_example_compiles(
    mcu_runs: dict[str, tuple[Any, str]], several_runs: dict[str, Path], name: str, tmp_path: Path
) -> None:
    """Compiled for a Cortex-M4 against TFLM's own headers (the shipped sources); `Run` has no `main` to link."""
    from toolkit.mcu import build as B

    src, core = B.sources(), B.CORES["cortex-m4"]
    out = several_runs[name] / "mcu" / "tflite-int8"
    for unit in ("model_data.cc", "main_example.cc"):
        cmd = B.compile_command(src, str(out / unit), tmp_path / (unit + ".o"), core, "cmsis_nn")
        proc = subprocess.run([*cmd, f"-I{out}", "-Wall"], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
