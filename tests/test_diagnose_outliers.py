"""`edgekit diagnose` on models that full int8 hurts: it names the layer, the channel and the reason.

- The outlier-channel CNN (tests/sensitive_models.py): dense_outlier's channel 128 is a constant ~2,000 that
  sets the per-tensor int8 scale, so the other channels keep one or two levels; the tensor-wide SNR stays
  high, the output softmax departs. The cause is dense_outlier (by its channels), not the softmax.
- The constant-feature MLP: a Normalization adapted on features with zero variance divides by ε; its
  per-tensor int8 constant cannot hold that multiplier beside the others. The cause is norm.
Both are imported with `edgekit export --model M --data D -p int8` (TFLite and ONNX), as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import sensitive_models as SM
from toolkit.run.documents import ArtifactEntry, dump_document

pytest.importorskip("tensorflow")
pytest.importorskip("onnx")

LIMIT = 300
ARTIFACTS = ["tflite-int8", "onnx-int8"]


def _export(edgekit, run: Path, model: Path, data: str) -> Path:
    result = edgekit("export", str(run), "--model", str(model), "--data", data, "-p", "int8")
    assert result.returncode == 0, result.stderr[-2000:]
    return run


@pytest.fixture(scope="module")
def outlier_run(small_run: Path, tmp_path_factory: pytest.TempPathFactory, edgekit) -> Path:
    import keras

    root = tmp_path_factory.mktemp("outlier")
    model = SM.outlier_channel(keras.models.load_model(small_run / "model.keras"), root / "outlier.keras")
    return _export(edgekit, root / "run", model, "mnist")


@pytest.fixture(scope="module")
def constant_run(tmp_path_factory: pytest.TempPathFactory, edgekit) -> Path:
    root = tmp_path_factory.mktemp("constant")
    data = SM.constant_feature_vectors(root / "features.npz")
    model = SM.constant_feature_mlp(root / "constant.keras", data)
    return _export(edgekit, root / "run", model, str(data))


def _row(result: dict, layer: str) -> dict:
    return next(r for r in result["layers"] if r["layer"] == layer)


def test_outlier_channel_is_named_as_the_cause_not_the_softmax(outlier_run: Path, edgekit) -> None:
    from toolkit.diagnosis.layers import DEPART_SNR_DB
    from toolkit.diagnosis.step import diagnose_step

    # `export --max-accuracy-drop` saves each format's sensitivity ranking in mixed.json: diagnose shows it
    # beside the cause.
    mixed = edgekit("export", str(outlier_run), "-p", "int8", "--max-accuracy-drop", "0.3")
    assert mixed.returncode == 0, mixed.stderr[-2000:]
    assert (outlier_run / "mixed.json").is_file()
    report = dump_document(diagnose_step(outlier_run, artifact_names=ARTIFACTS, limit=LIMIT))
    for res in report["artifacts"]:
        name = res["artifact"]
        assert res["accuracy"] < res["reference_accuracy"] - 0.03, name  # full int8 fails
        row = _row(res, "dense_outlier")
        ch = row["channels"]
        # The tensor-wide figures pass: the outlier carries the signal power...
        assert row["snr_db"] > DEPART_SNR_DB and not row["departs"], name
        # ...but per channel the range is gone: channel 128 (2,000) sets a scale of ~7.8 per level,
        # the bulk of the other channels spans one or two levels and keeps no signal.
        assert [s["channel"] for s in ch["sets_scale"]] == [128], name
        assert ch["sets_scale"][0]["range"][1] == pytest.approx(SM.OUTLIER_VALUE, rel=1e-3)
        assert ch["scale"] == pytest.approx(SM.OUTLIER_VALUE / 255, rel=0.05), name
        assert ch["levels"]["p90"] <= 3 and ch["range_use_pct"]["p90"] < 2, name
        assert ch["channel_snr_db"]["median"] < DEPART_SNR_DB, name
        assert ch["rest"]["channels"] + ch["rest"]["dead_channels"] == 128
        # The verdict: dense_outlier by its channels; the softmax departs as a consequence.
        dep = res["first_departure"]
        assert dep["layer"] == "dense_outlier" and dep["by"] == "channels", (name, dep)
        assert dep["tensor_departure"] == "probs"
        cause = res["cause"]
        assert cause["layer"] == "dense_outlier" and cause["kind"] == "outlier_channel", (name, cause)
        assert cause["channels"] == [128] and cause["consequences"] == ["probs"]
        assert "channel 128 of 129" in cause["text"] and "sets the int8 scale" in cause["text"]
        assert "hides it" in cause["text"] and "--max-accuracy-drop" in cause["advice"]
        assert "keep dense_outlier's output in float" in cause["advice"]
        # Healthy layers before it have no scale-setting channel and use most of the levels.
        conv = _row(res, "conv2d")["channels"]
        assert conv["sets_scale"] == [] and conv["levels"]["median"] > 32
    for res in report["artifacts"]:
        assert res["sensitivity"][0]["layer"] == "dense_outlier", res["sensitivity"]
        assert "Sensitivity: with only dense_outlier in float the model scores" in res["cause"]["summary"]
    assert report["sensitivity_source"].startswith("from mixed.json")
    md = (outlier_run / "diagnose" / "diagnose.md").read_text()
    assert "the error starts at **dense_outlier" in md and "- Cause: **dense_outlier**: channel 128 of 129" in md
    assert "- What to do: keep dense_outlier's output in float" in md
    assert "| dense_outlier | 115 of 129 |" in md or "| dense_outlier | " in md
    assert "Sensitivity (accuracy with only that layer left in float / only that layer quantized) (from mixed" in md

    # The run's report carries the cause and the advice.
    from toolkit.workflow.pipeline import report_step

    md_path, html_path = report_step(outlier_run)
    text = md_path.read_text()
    assert "Cause and what to do:" in text and "**tflite-int8**: dense_outlier: channel 128 of 129" in text
    assert "Sensitivity of tflite-int8" in text
    assert "Cause and what to do" in html_path.read_text()


def test_cli_names_the_outlier_channel(outlier_run: Path, edgekit) -> None:
    proc = edgekit("diagnose", str(outlier_run), "-a", "tflite-int8", "--limit", "100")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = " ".join(proc.stdout.split())
    assert "first departure: the error starts at dense_outlier" in out
    assert "cause: dense_outlier: channel 128 of 129" in out
    assert "what to do: keep dense_outlier's output in float" in out


def test_sensitivity_flag_measures_the_ranking_beside_the_cause(outlier_run: Path, edgekit) -> None:
    """`diagnose --sensitivity` measures, with exporters.sensitivity, each layer alone in float / alone int8."""
    from toolkit.diagnosis import sensitivity as S

    if not S.available():
        proc = edgekit("diagnose", str(outlier_run), "-a", "tflite-int8", "--limit", "50", "--sensitivity")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "error: --sensitivity needs exporters.sensitivity" in proc.stderr
        return
    (outlier_run / "mixed.json").unlink(missing_ok=True)
    proc = edgekit("diagnose", str(outlier_run), "-a", "tflite-int8", "--limit", "200", "--sensitivity")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((outlier_run / "diagnose" / "diagnose.json").read_text())
    (res,) = report["artifacts"]
    ranking = res["sensitivity"]
    # dense_outlier alone in float recovers most of the accuracy; alone quantized it loses it.
    assert ranking[0]["layer"] == "dense_outlier", ranking
    assert ranking[0]["only_float"] > res["accuracy"] + 0.3
    assert ranking[0]["only_quantized"] < res["reference_accuracy"] - 0.3
    assert report["sensitivity_source"] == "measured by this diagnose, on 200 test examples"
    assert "Sensitivity: with only dense_outlier in float the model scores" in res["cause"]["summary"]
    md = (outlier_run / "diagnose" / "diagnose.md").read_text()
    assert "Sensitivity (accuracy with only that layer left in float / only that layer quantized) (measured" in md


def test_zero_variance_normalization_is_named_as_the_cause(constant_run: Path) -> None:
    from toolkit.diagnosis.step import diagnose_step

    report = dump_document(diagnose_step(constant_run, artifact_names=ARTIFACTS, limit=LIMIT))
    for res in report["artifacts"]:
        name = res["artifact"]
        assert res["accuracy"] < 0.5 < res["reference_accuracy"], name
        dep, cause = res["first_departure"], res["cause"]
        assert dep["layer"] == "norm", (name, dep)
        assert cause["layer"] == "norm" and cause["kind"] == "gain_outlier", (name, cause)
        # Feature 0 (the image corner) never varies: Keras divides it by ε (multiplier 1e7).
        assert 0 in cause["channels"]
        assert "1e+07" in cause["text"] and "zero variance" in cause["text"]
        assert "single scale" in cause["text"]  # the export holds the multipliers in one per-tensor constant
        assert "keep norm in float" in cause["advice"]
        assert set(cause["consequences"]) >= {"probs"}
        assert _row(res, "norm")["channels"]["channel_snr_db"]["median"] < 1
    md = (constant_run / "diagnose" / "diagnose.md").read_text()
    assert "- Cause: **norm**: its per-channel multiplier reaches 1e+07" in md


def test_blank_calibration_is_blamed_on_the_calibration_range(run_copy: Path, mnist) -> None:
    """Calibrated on blank images, the input's int8 range is ~0 wide: the advice is to calibrate on more data."""
    import numpy as np

    from exporters.base import Precision
    from exporters.tflite_export import export_tflite
    from runtimes.keras_runner import load_keras_model
    from toolkit.diagnosis.layers import INPUT_ROW
    from toolkit.diagnosis.step import diagnose_step
    from toolkit.run import layout as A

    model = load_keras_model(run_copy / "model.keras")
    blank = np.zeros((4, 28, 28, 1), np.float32)
    result = export_tflite(model, run_copy / "exports", precision=Precision.INT8, calibration_data=blank)
    A.write_manifest(run_copy, [ArtifactEntry.model_validate(result.manifest_entry(run_copy))])
    (res,) = dump_document(diagnose_step(run_copy, artifact_names=["tflite-int8"], limit=100, data=mnist))["artifacts"]
    cause = res["cause"]
    assert cause["layer"] == INPUT_ROW and cause["kind"] == "calibration_range", cause
    assert "narrower than the test data's" in cause["text"] and "calibrate on more data" in cause["advice"]


def test_one_extreme_kernel_row_under_a_per_tensor_weight_scale_asks_for_per_channel_weights() -> None:
    """The weight rule on a real Keras layer: one output channel's weights 100x the others'."""
    import keras
    import numpy as np

    from toolkit.diagnosis.cause import explain_cause
    from toolkit.diagnosis.channels import layer_parameters

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="wide")])
    kernel, bias = model.layers[0].get_weights()
    kernel = np.full_like(kernel, 0.1)
    kernel[:, 5] = 10.0
    model.layers[0].set_weights([kernel, bias])
    params = layer_parameters(model)
    assert [c["channel"] for c in params["wide"]["kernel"]["sets_scale"]] == [5]
    row = {"layer": "wide", "type": "Dense", "departs": True, "snr_db": 12.0, "channels": None, "quant_range": None}
    departure = {"layer": "wide", "reason": "SNR 12.0 dB < 20 dB", "tensor_departure": "wide"}
    per_tensor = {"wide": [{"name": "wide/MatMul", "shape": [8, 4], "scales": 1, "scale": 0.08}]}
    cause = explain_cause([row], departure, params, per_tensor)
    assert cause is not None and cause["kind"] == "weight_outlier" and cause["channels"] == [5]
    assert "use per-channel weights for wide" in cause["advice"]
    # Weights already scaled per channel: not the cause.
    per_channel = {"wide": [{"name": "wide/MatMul", "shape": [8, 4], "scales": 8, "scale": None}]}
    cause = explain_cause([row], departure, params, per_channel)
    assert cause is not None and cause["kind"] == "other"
