"""Parity per output kind: boxes and class indices judged by their own criteria, and the report's rows.

The boxes are real: each MNIST digit's ink bounding box (x_min, y_min, x_max, y_max) in pixels. The
departures are exact multiples of an int8 output step over that box range, so what passes and what fails
follows from the tolerance's definition, not from a figure one machine happened to produce.
"""

from __future__ import annotations

import numpy as np
import pytest

from runtimes.spec import TensorSpec
from toolkit.run.documents import ArtifactEntry, ParityOutput
from toolkit.steps.parity import box_iou, check_output_row, output_score
from toolkit.tolerances import BOX_TOLERANCES, CLASS_INDEX_TOLERANCES, parity_table

BOX = TensorSpec("box", (None, 4), "float32", kind="boxes")
INDEX = TensorSpec("cls", (None,), "int64", kind="class_indices")


def entry(precision: str) -> ArtifactEntry:
    return ArtifactEntry(
        name=f"tflite-{precision}", path="m.tflite", format="tflite", precision=precision, runtime="tflite",
        size_bytes=1, sha256="0",
    )  # fmt: skip


def ink_boxes(mnist, n: int = 500) -> np.ndarray:
    ink = mnist.x_test[:n] > 0
    cols, rows = ink.any(1), ink.any(2)
    first = lambda a: a.argmax(1)  # noqa: E731
    last = lambda a: a.shape[1] - 1 - a[:, ::-1].argmax(1)  # noqa: E731
    return np.stack([first(cols), first(rows), last(cols) + 1, last(rows) + 1], 1).astype(np.float32)


def test_box_iou() -> None:
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 2, 2]], np.float32)
    b = np.array([[1, 1, 3, 3], [2, 2, 3, 3], [0, 0, 2, 2]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [1 / 7, 0.0, 1.0])
    assert box_iou(np.zeros((2, 3, 4)), np.zeros((2, 3, 4))).shape == (2, 3)


def test_boxes_within_the_coordinate_limit_pass(mnist) -> None:
    boxes = ink_boxes(mnist)
    scale = float(np.abs(boxes).max())  # 28: the image side
    step = scale / 255  # an int8 output spanning the boxes
    shift = np.zeros_like(boxes)
    shift[::2, 0] = 10 * step  # ten steps on every other box's x_min: 1.1 px, under 5 % of 28 = 1.4 px
    row = check_output_row(entry("int8"), BOX, boxes + shift, boxes, boxes, 1.0, 0.0, "b", output_step=step)
    assert row.passed and row.output == "box" and row.output_kind == "boxes"
    assert row.max_abs_diff == pytest.approx(10 * step, rel=1e-5)
    assert row.iou_with_reference is not None and 0.9 < row.iou_with_reference < 1.0
    assert row.mean_iou == row.iou_with_reference  # the targets are the reference's boxes here
    far = check_output_row(entry("int8"), BOX, boxes + 14 * step, boxes, boxes, 1.0, 0.0, "b", output_step=step)
    assert not far.passed and "max |Δ|" in far.failures[0] and "box scale 28" in far.failures[0]


def test_a_box_limit_is_never_below_two_output_steps(mnist) -> None:
    boxes = ink_boxes(mnist) / 280  # boxes in 0..0.1: 5 % of the scale is 0.005
    coarse = 0.004  # an output step coarser than that allowance
    row = check_output_row(entry("int8"), BOX, boxes + 1.9 * coarse, boxes, boxes, 1.0, 0.0, "b", output_step=coarse)
    assert row.passed
    assert BOX_TOLERANCES["fp32"].min_output_steps is None  # float outputs: the relative limit alone
    fp32 = check_output_row(entry("fp32"), BOX, boxes + 1.9 * coarse, boxes, boxes, 1.0, 0.0, "b", output_step=coarse)
    assert not fp32.passed


def test_class_indices_are_judged_by_agreement(mnist) -> None:
    labels = mnist.y_test[:1000].astype(np.int64)
    reference = labels.copy()
    reference[:20] = (reference[:20] + 1) % 10  # the reference model gets 98 % right
    one_flip = reference.copy()
    one_flip[500] = (one_flip[500] + 3) % 10
    accuracy = output_score("class_indices", reference, labels)[1]
    assert accuracy == pytest.approx(0.98)
    fp32 = check_output_row(entry("fp32"), INDEX, one_flip, reference, labels, accuracy, 0.0, "b")
    assert not fp32.passed and fp32.disagreements == 1 and fp32.top1_agreement == pytest.approx(0.999)
    int8 = check_output_row(entry("int8"), INDEX, one_flip, reference, labels, accuracy, 0.0, "b")
    assert int8.passed and int8.accuracy == pytest.approx(0.979)
    assert CLASS_INDEX_TOLERANCES["int8"].max_abs_diff is None and "|Δp|" not in parity_table("class_indices")["int8"]


def test_several_outputs_table_has_one_row_per_artifact_and_output(mnist) -> None:
    from toolkit.reports.markdown import several_table
    from toolkit.reports.model import Parity

    labels = mnist.y_test[:300].astype(np.int64)
    probs = np.eye(10, dtype=np.float32)[labels]
    digit = TensorSpec("digit", (None, 10), "float32", kind="probabilities")
    side = TensorSpec("side", (None, 1), "float32", kind="values")
    values = (mnist.x_test[:300, :, :14] > 0).mean((1, 2))[:, None].astype(np.float32)
    rows = [check_output_row(entry(p), digit, probs, probs, labels, 1.0, 0.0, "b") for p in ("fp32", "int8")] + [
        check_output_row(entry(p), side, values * (1 + d), values, values, 0.0, 0.0, "b")
        for p, d in (("fp32", 0), ("int8", 0.2))
    ]
    outputs = (ParityOutput(name="digit", kind="probabilities", metric="accuracy", value=1.0),
               ParityOutput(name="side", kind="values", metric="MAE", value=0.0))  # fmt: skip
    view = Parity("keras-fp32", 1.0, 300, False, tuple(rows), outputs=outputs)
    assert view.several and view.failed == ("tflite-int8",)  # its side output is 20 % off
    header, table = several_table(view)
    assert [(r[0], r[1]) for r in table] == [
        ("tflite-fp32", "digit"),
        ("tflite-int8", "digit"),
        ("tflite-fp32", "side"),
        ("tflite-int8", "side"),
    ]
    assert table[0][header.index("score")] == "100.00 %" and table[3][header.index("score")].startswith("MAE ")
    assert table[3][header.index("result")].startswith("**FAIL**")
