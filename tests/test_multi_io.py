"""Several inputs and outputs: the ModelSpec (v2 dicts, kinds, names) and `Runner.infer_named` on real
Keras, LiteRT and ONNX Runtime models (a 2-input/2-output model and a detector-like model)."""

from __future__ import annotations

import json

import pytest

from runtimes import ModelSpec, SpecError, TensorSpec

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
    assert data["spec_version"] == 2 and "input" not in data  # the single-tensor keys are for one-of-each only
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


def test_a_single_spec_keeps_its_version_1_keys_and_reads_back() -> None:
    single = ModelSpec(TensorSpec("x", (None, 8), "float32"), TensorSpec("y", (None, 3), "float32"), layout="NC")
    data = json.loads(json.dumps(single.to_dict()))
    assert data["spec_version"] == 2 and data["layout"] == "NC" and data["output_kind"] == "probabilities"
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
