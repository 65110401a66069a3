"""`edgekit diagnose` on models with several inputs and outputs: a per-layer map for each output.

The 2-input/2-output model (`digits_and_side`: image + ink features → digit probabilities + a `side` value)
and the detector-like model (image → boxes + scores) from tests/user_models.py are trained on real MNIST and
made into runs by `edgekit pipeline --quick` (conftest's `several_runs`; int8 TFLite and ONNX calibrated on
the named .npz). Each output's
error is judged by its kind's parity tolerance (toolkit/tolerances.py), so the tests hold on any CPU. A third
model, untrained, has one branch with an outlier channel, so int8 hurts one output and not the other: the
cause must name that output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from toolkit.tolerances import parity_tolerance

QUANTIZED = ("tflite-int8", "onnx-int8")


@pytest.fixture(scope="module")
def runs(several_runs: dict[str, Path]) -> dict[str, Path]:
    return several_runs


@pytest.fixture(scope="module")
def diagnosed(runs: dict[str, Path], edgekit: Any) -> dict[str, tuple[Any, str]]:
    """diagnose.json (typed) and the CLI's stdout, for each run."""
    from toolkit.run import layout as A
    from toolkit.run.documents import DiagnoseDocument

    out = {}
    for name, run in runs.items():
        result = edgekit("diagnose", str(run), "--limit", "300")
        assert result.returncode == 0, result.stderr[-3000:]
        doc = A.Run(run).find(DiagnoseDocument)
        assert doc is not None
        out[name] = (doc, result.stdout)
    return out


def _judge(section: Any, precision: str) -> None:
    """The output's error within its kind's parity tolerance (agreement, relative or box-scale error)."""
    tol = parity_tolerance(precision, section.kind)
    e = section.error
    if section.kind == "probabilities":
        assert e.measure == "top-1 agreement" and e.accuracy is not None and e.reference_accuracy is not None
        floor = tol.for_model(e.reference_accuracy).min_agreement
        # parity's noise allowance: a handful of borderline images may flip on another CPU's kernels
        assert e.value >= floor or e.disagreements <= 2 * np.sqrt(300 * (1 - floor)) + 1, e
    elif section.kind == "values":
        assert e.measure == "max relative error" and e.value == e.max_rel_err
        assert e.value <= tol.max_rel_error, e
    else:
        assert section.kind == "boxes" and e.measure.startswith("max coordinate |Δ|")
        assert e.value <= tol.max_rel_error, e
        assert e.iou_with_reference is not None and e.iou_with_reference > 0.9, e


@pytest.mark.slow  # builds conftest's several_runs: two models trained and piped (~100 s)
def test_each_output_of_the_two_input_model_gets_its_map(diagnosed: dict[str, tuple[Any, str]]) -> None:
    doc, stdout = diagnosed["two"]
    assert doc.images == 300
    for res in doc.artifacts:
        assert res.task == "several outputs" and res.outputs is not None, res.artifact
        by_name = {s.output: s for s in res.outputs}
        assert list(by_name) == ["digit", "side"]
        assert (by_name["digit"].kind, by_name["side"].kind) == ("probabilities", "values")
        rows = [r.layer for r in res.layers]
        # Both inputs are rows of the map, each matched to an export tensor; so is every layer.
        assert rows[:2] == ["(input features)", "(input image)"] or set(rows[:2]) == {
            "(input features)",
            "(input image)",
        }
        assert all(r.tensor is not None for r in res.layers), [r.layer for r in res.layers if r.tensor is None]
        # Each output's map is the layers it depends on: both inputs and the trunk, not the other output.
        assert set(by_name["digit"].layers) == set(rows) - {"side"}
        assert set(by_name["side"].layers) == set(rows) - {"digit"}
        assert sum(s.hurt for s in res.outputs) == 1
        hurt = next(s for s in res.outputs if s.hurt)
        assert hurt.snr_db == min(s.snr_db for s in res.outputs)
        assert res.added_error_ranking == hurt.added_error_ranking
        if res.artifact in QUANTIZED:
            for s in res.outputs:
                _judge(s, res.precision)
    assert "output digit (probabilities, layer digit" in stdout and "output side (values, layer side" in stdout


@pytest.mark.slow  # builds conftest's several_runs: two models trained and piped (~100 s)
def test_the_detector_s_boxes_are_judged_by_the_box_scale(diagnosed: dict[str, tuple[Any, str]]) -> None:
    doc, stdout = diagnosed["detector"]
    names = {a.artifact for a in doc.artifacts}
    assert set(QUANTIZED) <= names
    for res in doc.artifacts:
        assert res.outputs is not None
        by_name = {s.output: s for s in res.outputs}
        assert (by_name["boxes"].kind, by_name["scores"].kind) == ("boxes", "probabilities")
        assert by_name["boxes"].error.relative_to.startswith("the box scale")
        assert set(by_name["boxes"].layers) == {r.layer for r in res.layers} - {"scores"}
        if res.artifact in QUANTIZED:
            for s in res.outputs:
                _judge(s, res.precision)
    assert "mean IoU with the reference's boxes" in stdout


@pytest.mark.slow  # builds conftest's several_runs: two models trained and piped (~100 s)
def test_diagnose_md_has_a_section_per_output(runs: dict[str, Path], diagnosed: dict[str, tuple[Any, str]]) -> None:
    md = (runs["two"] / "diagnose" / "diagnose.md").read_text()
    for artifact in QUANTIZED:
        assert f"#### {artifact}: output digit (probabilities" in md
        assert f"#### {artifact}: output side (values" in md
    assert "the output hurt most" in md


@pytest.mark.slow  # builds conftest's several_runs: two models trained and piped (~100 s)
def test_sensitivity_is_refused_in_one_line_for_several_tensors(runs: dict[str, Path], edgekit: Any) -> None:
    result = edgekit("diagnose", str(runs["two"]), "--sensitivity")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "--sensitivity" in line and "2 inputs (features, image)" in line and "Traceback" not in result.stderr


def _outlier_model() -> Any:
    """features → trunk → (probs: softmax) and (wide → values), where channel 0 of `wide` is 1000× the
    others (its weights scaled up, the next layer's scaled down: the float model is unchanged in effect)."""
    import keras

    keras.utils.set_random_seed(3)
    layers = keras.layers
    x = keras.Input((8,), name="features")
    h = layers.Dense(16, activation="relu", name="trunk")(x)
    wide = layers.Dense(16, name="wide")(h)
    values = layers.Dense(4, name="values")(wide)
    probs = layers.Dense(3, activation="softmax", name="probs")(h)
    model = keras.Model(x, {"values": values, "probs": probs}, name="outlier")
    w, b = model.get_layer("wide").get_weights()
    w[:, 0] *= 1000.0
    b[0] = 0.0
    model.get_layer("wide").set_weights([w, b])
    w2, b2 = model.get_layer("values").get_weights()
    w2[0, :] /= 1000.0
    model.get_layer("values").set_weights([w2, b2])
    return model


def test_the_cause_names_the_output_int8_hurts(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    from exporters.tflite_export import export_tflite
    from toolkit.diagnosis.outputs import ModelOutput
    from toolkit.diagnosis.step import diagnose_named

    model = _outlier_model()
    x = np.random.default_rng(0).random((300, 8), dtype=np.float32)
    result = export_tflite(model, tmp_path, precision="int8", calibration_data={"features": x[:200]})
    entry = {"name": "tflite-int8", "format": "tflite", "precision": "int8", "runtime": "litert", "path": "x"}
    outputs = [ModelOutput("probs", "probabilities", "probs", None), ModelOutput("values", "values", "values", None)]
    body = diagnose_named(model, [(entry, Path(result.path))], {"features": x}, outputs)
    res = body["artifacts"][0]
    sections = {s["output"]: s for s in res["outputs"]}
    assert sections["values"]["hurt"] and not sections["probs"]["hurt"]
    # The probabilities' path (trunk, probs) never meets `wide`: nothing departs there.
    assert "wide" not in sections["probs"]["layers"] and sections["probs"]["first_departure"] is None
    assert sections["probs"]["error"]["measure"] == "top-1 agreement"
    cause = res["cause"]
    assert cause["output"] == "values" and cause["layer"] == "wide" and cause["kind"] == "outlier_channel"
    assert cause["summary"].startswith("output values is hurt first at wide: channel 0 of 16")
    # The int8 step of the outlier's scale leaves the other channels nearly empty: the values are far off.
    assert sections["values"]["error"]["value"] > parity_tolerance("int8", "values").max_rel_error
