"""Several inputs and outputs: the ModelSpec (v2 dicts, kinds, names) and `Runner.infer_named` on real
Keras, LiteRT and ONNX Runtime models (a 2-input/2-output model and a detector-like model)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtimes import InputSpecError, ModelLoadError, ModelSpec, SpecError, TensorSpec, make_runner

TWO_BY_TWO = ModelSpec(
    inputs=(
        TensorSpec("image", (None, 28, 28, 1), "float32"),
        TensorSpec("features", (None, 4), "float32", value_range=(0.0, 2.0)),
    ),
    outputs=(
        TensorSpec("digit", (None, 10), "float32", kind="probabilities", class_names=tuple("0123456789")),
        TensorSpec("side", (None, 1), "float32", kind="values"),
    ),
)


# -- the spec on its own ------------------------------------------------------------------------------
def test_several_tensors_round_trip_through_a_version_2_dict() -> None:
    data = json.loads(json.dumps(TWO_BY_TWO.to_dict()))
    assert data["spec_version"] == 2 and "input" not in data  # version 1 (one input, one output) cannot hold it
    assert [t["name"] for t in data["inputs"]] == ["image", "features"]
    assert data["inputs"][1] == {
        "name": "features",
        "shape": [None, 4],
        "dtype": "float32",
        "scale": None,
        "zero_point": None,
        "layout": "NC",
        "value_range": [0.0, 2.0],
    }
    assert data["outputs"][1]["kind"] == "values"
    spec = ModelSpec.from_dict(data)
    assert spec == TWO_BY_TWO and not spec.is_single
    assert spec.input_names == ("image", "features") and spec.output_names == ("digit", "side")
    assert spec.input_named("features").layout == "NC" and spec.output_named("digit").class_names is not None
    # the single-tensor views are the first input and output
    assert spec.input.name == "image" and spec.layout == "NHWC" and spec.value_range == (0.0, 1.0)
    assert spec.output_kind == "probabilities" and spec.num_classes == 10
    assert spec.describe() == (
        "image float32 (N, 28, 28, 1) NHWC 0..1 + features float32 (N, 4) NC 0..2 -> "
        "digit probabilities (N, 10) + side values (N, 1)"
    )
    feeds = spec.sample_feeds(3)
    assert feeds["image"].shape == (3, 28, 28, 1) and feeds["features"].shape == (3, 4)
    assert 1.0 < feeds["features"].max() <= 2.0


def test_a_single_spec_keeps_its_version_1_form_and_reads_back() -> None:
    single = ModelSpec(TensorSpec("x", (None, 8), "float32"), TensorSpec("y", (None, 3), "float32"), layout="NC")
    data = json.loads(json.dumps(single.to_dict()))
    assert data["spec_version"] == 1 and data["layout"] == "NC" and data["output_kind"] == "probabilities"
    assert data["input"] == {"name": "x", "shape": [None, 8], "dtype": "float32", "scale": None, "zero_point": None}
    assert ModelSpec.from_dict(data) == single and single.is_single


def test_boxes_and_class_indices_outputs() -> None:
    boxes = TensorSpec("boxes", (None, 5, 4), "float32", kind="boxes")
    classes = TensorSpec("classes", (None,), "int64", kind="class_indices")
    spec = ModelSpec(inputs=[TensorSpec("image", (None, 28, 28, 1), "float32")], outputs=[boxes, classes])
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.num_classes == 5  # the first output's second dimension


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ([TensorSpec("b", (None, 5), "float32", kind="boxes")], r"output \(N, 5\) is not boxes; expected \(N, 4\)"),
        ([TensorSpec("b", (None, 2, 3, 4), "float32", kind="boxes")], "is not boxes"),
        ([TensorSpec("c", (None, 3), "int64", kind="class_indices")], r"\(N, 3\) is not class indices"),
        ([TensorSpec("c", (None,), "float32", kind="class_indices")], "dtype 'float32' is not supported"),
        ([TensorSpec("p", (None, 2, 3), "float32", kind="probabilities")], "rank 3; expected"),
        ([TensorSpec("p", (None, 3), "float32", kind="scores")], "output kind 'scores' is unknown"),
        ([TensorSpec("image", (None, 3), "float32")], "image used more than once"),
        (
            [TensorSpec("a", (None, 3), "float32"), TensorSpec("b", (None, 3, 4), "float32", kind="values")],
            r"output 'b' \(N, 3, 4\) has rank 3",
        ),
    ],
)
def test_each_kind_checks_its_rank(outputs: list[TensorSpec], message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        ModelSpec(inputs=[TensorSpec("image", (None, 28, 28, 1), "float32")], outputs=outputs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("inputs"), "inputs must be a non-empty list"),
        (lambda d: d.update(outputs=[]), "outputs must be a non-empty list"),
        (lambda d: d["inputs"][1].update(layout="NHWC"), r"layout 'NHWC' does not fit input 'features' \(N, 4\)"),
        (lambda d: d["inputs"][1].update(value_range=[2, 1]), "low < high"),
        (lambda d: d["inputs"][1].pop("name"), r"inputs\[1\] lacks 'name'"),
        (lambda d: d["outputs"][0].update(class_names="0123456789"), "class_names must be a list"),
        (lambda d: d["outputs"][0].update(class_names=["a"]), "1 class names for 10 outputs"),
    ],
)
def test_malformed_version_2_dicts_raise_one_line(change, message: str) -> None:
    data = json.loads(json.dumps(TWO_BY_TWO.to_dict()))
    change(data)
    with pytest.raises(SpecError, match=message) as info:
        ModelSpec.from_dict(data)
    assert "\n" not in str(info.value)


def test_names_and_mismatches() -> None:
    with pytest.raises(SpecError, match="no input 'pixels'; its inputs are image, features"):
        TWO_BY_TWO.input_named("pixels")
    one = ModelSpec(TensorSpec("image", (None, 28, 28, 1), "float32"), TensorSpec("digit", (None, 10), "float32"))
    assert one.mismatch(TWO_BY_TWO) == "has 1 inputs (image); expected 2 (image, features)"
    swapped = TWO_BY_TWO.with_tensors(inputs=TWO_BY_TWO.inputs[::-1])
    assert swapped.mismatch(TWO_BY_TWO) is None  # paired by name
    wide = TWO_BY_TWO.with_tensors(inputs=[TWO_BY_TWO.inputs[0], TensorSpec("features", (None, 5), "float32")])
    problem = wide.mismatch(TWO_BY_TWO)
    assert problem is not None and problem.startswith("takes input features (N, 5); expected (N, 4)")


# -- real models: exported, then run by every runner -------------------------------------------------------
PRECISIONS = {
    "tflite": ("fp32", "fp16", "int8-dynamic", "int8"),
    "onnx": ("fp32", "int8"),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The 2-in/2-out model and the detector, trained briefly on real MNIST, exported to every precision
    (int8 calibrated on 200 training samples of every input), with their test feeds and Keras outputs."""
    pytest.importorskip("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from exporters.onnx_export import export_onnx
    from exporters.tflite_export import export_tflite
    from tests import user_models as U

    out = tmp_path_factory.mktemp("multi")
    built = {
        "two": (U.digits_and_side, U.digits_and_side_data, ("image", "features")),
        "detector": (U.detector, U.detector_data, ("image",)),
    }
    made: dict[str, dict[str, Any]] = {}
    for name, (build, data, inputs) in built.items():
        arrays = np.load(data(out / f"{name}.npz"))
        path = build(out / f"{name}.keras", out / f"{name}.npz")
        model = keras.models.load_model(path)
        calibration = {n: arrays[f"{n}_train"][:200] for n in inputs}
        feeds = {n: arrays[f"{n}_test"] for n in inputs}
        artifacts = {}
        for fmt, export in (("tflite", export_tflite), ("onnx", export_onnx)):
            for precision in PRECISIONS[fmt]:
                result = export(model, out / name, precision=precision, calibration_data=calibration)
                artifacts[result.name] = result
        outputs = model({n: feeds[n] for n in inputs} if len(inputs) > 1 else feeds["image"])
        made[name] = {
            "keras": path,
            "artifacts": artifacts,
            "feeds": feeds,
            "expected": {k: np.asarray(v) for k, v in outputs.items()},
            "labels": arrays[f"{'digit' if name == 'two' else 'scores'}_test"],
        }
    return made


def _judge(name: str, got: np.ndarray, expected: np.ndarray, precision: str, kind: str, labels: np.ndarray) -> None:
    """The output against Keras by the parity tolerance of its precision and kind (boxes as values)."""
    from toolkit.tolerances import parity_tolerance

    tol = parity_tolerance(precision, "values" if kind in ("values", "boxes") else kind)
    diff = float(np.abs(got - expected).max())
    if tol.max_rel_error is not None:
        assert diff <= tol.max_rel_error * float(np.abs(expected).max()), (name, precision, diff)
    if tol.max_abs_diff is not None:
        assert diff <= tol.max_abs_diff, (name, precision, diff)
    if tol.min_agreement is not None and kind == "probabilities":
        accuracy = float(np.mean(expected.argmax(1) == labels))
        agreement = float(np.mean(got.argmax(1) == expected.argmax(1)))
        assert agreement >= tol.for_model(accuracy).min_agreement, (name, precision, agreement, accuracy)  # type: ignore[operator]


@pytest.mark.parametrize("model", ["two", "detector"])
def test_every_artifact_keeps_the_names_and_matches_keras(models: dict[str, dict[str, Any]], model: str) -> None:
    made = models[model]
    with make_runner(made["keras"]) as keras_runner:
        spec = keras_runner.model_spec()
        np.testing.assert_allclose(
            keras_runner.infer_named(made["feeds"])[spec.output_names[0]],
            made["expected"][spec.output_names[0]],
            atol=1e-5,
        )
    kinds = {t.name: t.kind for t in spec.outputs}
    assert kinds == (
        {"digit": "probabilities", "side": "values"}
        if model == "two"
        else {"boxes": "boxes", "scores": "probabilities"}
    )
    for result in made["artifacts"].values():
        file_spec = result.model_spec
        assert file_spec is not None and file_spec.input_names == spec.input_names, result.name
        assert file_spec.output_names == spec.output_names and [t.kind for t in file_spec.outputs] == list(
            kinds.values()
        )
        int8_io = result.name == "tflite-int8"
        assert all((t.dtype == "int8") == int8_io for t in file_spec.inputs + file_spec.outputs), result.name
        with make_runner(result.path, spec=spec) as runner:
            assert runner.model_spec() == file_spec
            got = runner.infer_named(made["feeds"])
        assert set(got) == set(spec.output_names)
        for tensor in spec.outputs:
            out = got[tensor.name]
            assert out.dtype == np.float32 and out.shape == made["expected"][tensor.name].shape
            _judge(
                tensor.name,
                out,
                made["expected"][tensor.name],
                str(result.precision.value),
                str(tensor.kind),
                made["labels"],
            )


def test_feeds_are_checked_in_one_line(models: dict[str, dict[str, Any]]) -> None:
    made = models["two"]
    feeds = {k: v[:3] for k, v in made["feeds"].items()}
    with make_runner(made["artifacts"]["onnx-fp32"].path) as runner:
        assert runner.model_spec().input_names == ("features", "image")  # the Keras names, in the graph
        assert set(runner.infer_named(feeds)) == {"digit", "side"}
        cases = [
            ({"image": feeds["image"]}, "missing features; it takes features, image"),
            ({**feeds, "extra": feeds["features"]}, "unknown extra"),
            ({**feeds, "features": feeds["features"][:2]}, "same batch"),
            ({**feeds, "features": feeds["features"].astype(np.float64)}, "dtype float64; expected float32"),
            (
                {**feeds, "image": feeds["image"][..., 0]},
                r"feed image has shape \(3, 28, 28\); .* takes \(N, 28, 28, 1\)",
            ),
        ]
        for bad, message in cases:
            with pytest.raises(InputSpecError, match=message) as info:
                runner.infer_named(bad)
            assert "\n" not in str(info.value)
        with pytest.raises(InputSpecError, match=r"has 2 inputs \(features, image\); use infer_named"):
            runner.infer(feeds["image"])
    detector = models["detector"]
    with (
        make_runner(detector["artifacts"]["tflite-int8"].path) as runner,
        pytest.raises(InputSpecError, match=r"has 2 outputs \(boxes, scores\); use infer_named"),
    ):
        runner.infer(detector["feeds"]["image"][:1])


def test_a_file_with_other_tensors_than_expected_is_refused(models: dict[str, dict[str, Any]]) -> None:
    two = models["two"]
    with make_runner(two["keras"]) as runner:
        spec = runner.model_spec()
    detector = models["detector"]["artifacts"]["tflite-fp32"].path
    with pytest.raises(ModelLoadError, match=r"has 1 inputs \(image\); expected 2 \(features, image\)") as info:
        make_runner(detector, spec=spec).activate()
    assert "\n" not in str(info.value)


def test_calibration_must_feed_every_input(models: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    import keras

    from exporters.errors import UnsupportedPrecisionError
    from exporters.tflite_export import export_tflite

    model = keras.models.load_model(models["two"]["keras"])
    with pytest.raises(UnsupportedPrecisionError, match="missing features; the model takes features, image"):
        export_tflite(model, tmp_path, precision="int8", calibration_data={"image": models["two"]["feeds"]["image"]})
    with pytest.raises(UnsupportedPrecisionError, match="one array per input name"):
        export_tflite(model, tmp_path, precision="int8", calibration_data=models["two"]["feeds"]["image"])
    assert not list(tmp_path.iterdir())  # nothing half-written


# -- a run of the user's model: export records every tensor, the other steps refuse in one line ----------
@pytest.fixture(scope="module")
def run_dir(models: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run made from the 2-in/2-out model (model.keras, model.json), exported to the targets that need no data."""
    import keras

    from exporters.base import ExportFormat, Precision
    from toolkit.model.user import check_model, save_into_run
    from toolkit.run import layout as A
    from toolkit.steps.export import export_step

    source = models["two"]["keras"]
    model = keras.models.load_model(source)
    run = tmp_path_factory.mktemp("run")
    A.Run(run).save(save_into_run(model, source, run, check_model(model)))
    targets = [(ExportFormat.TFLITE, Precision.FP32), (ExportFormat.TFLITE, Precision.FP16)]
    export_step(run, [*targets, (ExportFormat.ONNX, Precision.FP32)])
    return run


def test_the_export_step_records_every_tensor(run_dir: Path) -> None:
    from toolkit.run import layout as A

    manifest = A.Run(run_dir).manifest()  # read back through the documents (version-2 specs)
    assert [a.name for a in manifest.artifacts] == ["keras-fp32", "tflite-fp32", "tflite-fp16", "onnx-fp32"]
    stored = json.loads((run_dir / "manifest.json").read_text())
    for entry in manifest.artifacts[1:]:
        spec = entry.model_spec
        assert spec is not None and spec.input_names == ("features", "image"), entry.name
        assert [(t.name, t.kind) for t in spec.outputs] == [("digit", "probabilities"), ("side", "values")]
        assert spec.input_named("features").layout == "NC" and spec.input_named("image").layout == "NHWC"
        raw = next(a for a in stored["artifacts"] if a["name"] == entry.name)["model_spec"]
        assert raw["spec_version"] == 2 and len(raw["inputs"]) == 2 and "input" not in raw
        with make_runner(run_dir / entry.path, spec=spec) as runner:
            assert set(runner.infer_named(spec.sample_feeds(2))) == {"digit", "side"}


def test_bench_feeds_every_input(run_dir: Path) -> None:
    from toolkit.steps.bench import bench_step
    from toolkit.steps.bench_settings import BenchSettings

    quick = BenchSettings(
        batch_sizes=[1, 4], threads=[1], min_runs=8, min_seconds=0.0, warmup_runs=1, warmup_seconds=0.0
    )
    doc = bench_step(run_dir, quick.model_copy(update={"measure_peak": False}))
    rows = {(r.artifact, r.batch_size) for r in doc.results}
    assert rows == {(a, b) for a in ("keras-fp32", "tflite-fp32", "tflite-fp16", "onnx-fp32") for b in (1, 4)}
    assert all(r.p50_ms > 0 and r.runs >= 8 for r in doc.results)


def test_int8_mixed_refuses_several_tensors_in_one_line(run_dir: Path) -> None:
    from toolkit.errors import ToolkitError
    from toolkit.steps.mixed import mixed_step

    with pytest.raises(ToolkitError, match="runs single-input, single-output models for now") as info:
        mixed_step(run_dir, max_drop=0.3, min_agreement=None)
    message = str(info.value)
    assert "\n" not in message and "2 inputs (features, image) and 2 outputs (digit, side)" in message


def test_predict_refuses_several_inputs_in_one_line(run_dir: Path, models: dict[str, dict[str, Any]]) -> None:
    from toolkit.inputs.model_input import PredictInputError
    from toolkit.inputs.predict import predict_images

    image = run_dir / "digit.npy"
    np.save(image, models["two"]["feeds"]["image"][0, ..., 0])
    with pytest.raises(PredictInputError, match="predict feeds one image, so it runs single-input models") as info:
        predict_images(run_dir / "exports" / "model_fp32.tflite", [image])
    assert "\n" not in str(info.value) and "2 inputs (features, image)" in str(info.value)


@pytest.mark.parametrize("artifact", ["tflite-fp32", "tflite-int8", "onnx-int8"])
def test_predict_prints_each_output(models: dict[str, dict[str, Any]], tmp_path: Path, artifact: str) -> None:
    from toolkit.cli.fast import predictions_table
    from toolkit.inputs.predict import predict_images

    detector = models["detector"]
    image = tmp_path / "digit.npy"
    np.save(image, (detector["feeds"]["image"][:3, ..., 0] * 255).astype(np.uint8))  # a batch of three
    path = detector["artifacts"][artifact].path  # a bare file: the pixels 0..255 map to the 0..1 it was trained on
    found = predict_images(path, [image], top_k=2, preprocess=False, value_range=(0.0, 1.0))
    doc = found.to_dict()
    assert doc["output_kind"] == "several" and len(doc["results"]) == 3
    for i, result in enumerate(doc["results"]):
        boxes, scores = result["outputs"]
        assert boxes["name"] == "boxes" and scores["name"] == "scores" and len(scores["top_k"]) == 2
        (box,) = boxes["boxes"]  # an (N, 4) output: one box per image
        assert len(box["xyxy"]) == 4 and all(0.0 <= v <= 1.0 for v in box["xyxy"])  # sigmoid, xyxy
        keras_box = detector["expected"]["boxes"][i]
        assert np.abs(np.asarray(box["xyxy"]) - keras_box).max() < 0.1  # the same image as Keras saw
    assert "boxes: (" in predictions_table(found, 2) and "scores: " in predictions_table(found, 2)
