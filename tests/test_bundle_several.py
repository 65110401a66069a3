"""`edgekit bundle` and `edgekit verify` on models with several inputs and outputs (issue 21).

Two small real Keras models (tests/user_models.py), trained briefly on real MNIST: `two` takes an image and
four ink statistics and gives digit probabilities and a `side` value; `detector` takes an image and gives a
box (xyxy) and digit probabilities. Each is taken into a run (model.json, dataset.json of its named .npz)
and exported to TFLite fp32, fp16, int8-dynamic and int8, and ONNX fp32; the bundle carries golden feeds
for every input and each artifact's outputs for every output, and verify checks one row per (artifact,
output) with the real runtimes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtimes.files import sha256_file
from tests import user_models as U
from tests.test_cli import assert_one_line_error
from tests.test_remote import remote_cli, remote_dir, ssh_config, wheel_cache  # noqa: F401 (fixtures)

GOLDEN = 48
BUILT = {
    "two": (U.digits_and_side, U.digits_and_side_data),
    "detector": (U.detector, U.detector_data),
}
ARTIFACTS = ["tflite-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8", "onnx-fp32"]


def make_run(name: str, root: Path) -> Path:
    """A run of the model `name`: model.keras, model.json, dataset.json and the exports in ARTIFACTS.

    int8 is calibrated on 200 training rows of every input, through the exporter (the export step's
    calibration of several inputs belongs to another branch); the manifest entry is the export step's own.
    """
    import keras

    from exporters.base import ExportFormat, Precision
    from exporters.tflite_export import export_tflite
    from toolkit.data.sources import load_dataset
    from toolkit.model.run_source import record_dataset
    from toolkit.model.user import check_model, save_into_run
    from toolkit.run import layout as A
    from toolkit.steps.export import artifact_entry, export_step

    build, data = BUILT[name]
    npz = data(root / f"{name}.npz")
    source = build(root / f"{name}.keras", npz)
    model = keras.models.load_model(source)
    run = root / f"run-{name}"
    run.mkdir()
    spec = check_model(model)
    A.Run(run).save(save_into_run(model, source, run, spec))
    record_dataset(run, load_dataset(npz, spec=spec, seed=7), spec, seed=7)
    targets = [(ExportFormat.TFLITE, p) for p in (Precision.FP32, Precision.FP16, Precision.INT8_DYNAMIC)]
    export_step(run, [*targets, (ExportFormat.ONNX, Precision.FP32)])
    arrays = np.load(npz)
    calibration = {n: arrays[f"{n}_train"][:200] for n in spec.input_names}
    result = export_tflite(model, run / A.EXPORTS_DIR, precision="int8", calibration_data=calibration)
    A.write_manifest(run, [artifact_entry(run, result, spec)])
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = tmp_path_factory.mktemp("several-bundles")
    return {name: make_run(name, root) for name in BUILT}


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _bundle(edgekit, run: Path, out: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    proc = edgekit("bundle", str(run), "--out", str(out), "--golden", str(GOLDEN))
    assert proc.returncode == 0, proc.stderr
    return _json(out / "bundle.json")


@pytest.mark.parametrize("name", list(BUILT))
def test_bundle_carries_and_verify_checks_every_output(
    edgekit, runs: dict[str, Path], name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from toolkit.model.run_source import run_dataset, run_spec
    from toolkit.tolerances import machine_tolerance

    run = runs[name]
    spec = run_spec(run)
    doc = _bundle(edgekit, run, tmp_path / "b")
    bundle = tmp_path / "b"
    # golden rows: the last GOLDEN test rows of the run's named .npz, one file per input and per output
    split = run_dataset(run, spec=spec).test_named(spec)  # type: ignore[attr-defined]
    golden = doc["golden"]
    assert golden["inputs"] is None and set(golden["feeds"]) == set(spec.input_names) == set(split.inputs)
    for input_name, meta in golden["feeds"].items():
        feed = np.load(bundle / meta["path"])
        assert meta["path"] == f"golden/inputs/{input_name}.npy" and feed.dtype == np.float32
        np.testing.assert_array_equal(feed, split.inputs[input_name][-GOLDEN:])
    assert set(golden["truths"]) == set(spec.output_names)
    for output_name, meta in golden["truths"].items():
        np.testing.assert_array_equal(np.load(bundle / meta["path"]), split.targets[output_name][-GOLDEN:])
        assert meta["kind"] == spec.output_named(output_name).kind
    # every artifact: the desktop's values of every output, each with its kind's tolerance
    assert [a["name"] for a in doc["artifacts"]] == ARTIFACTS
    for art in doc["artifacts"]:
        assert art["expected"] is None and [o["name"] for o in art["outputs"]] == list(spec.output_names)
        for out in art["outputs"]:
            tensor = spec.output_named(out["name"])
            expected = np.load(bundle / out["expected"])
            assert out["kind"] == tensor.kind and expected.shape == (GOLDEN, *tensor.shape[1:])
            if art["precision"] in ("fp32", "fp16"):
                magnitude = float(np.abs(expected).max())
                assert out["tolerance"] == machine_tolerance(art["precision"], out["kind"], magnitude=magnitude)
            assert (out["desktop_accuracy"] is None) == (tensor.kind in ("values", "boxes"))

    proc = edgekit("verify", str(bundle))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = _json(bundle / "verify.json")
    assert report["passed"] and not report["skipped"] and report["golden"]["images"] == GOLDEN
    rows = {(r["artifact"], r["output"]): r for r in report["results"]}
    assert sorted(rows) == sorted((a, o) for a in ARTIFACTS for o in spec.output_names)
    assert report["artifacts"] == {a: True for a in ARTIFACTS}
    for (_, output_name), row in rows.items():
        assert row["passed"] and row["output_kind"] == spec.output_named(output_name).kind, row
        assert row["max_abs_diff"] <= row["tolerance"]["max_abs"] * 1.001
        if row["output_kind"] == "probabilities":
            assert row["agreement"] == 1.0 and row["accuracy"] == row["desktop_accuracy"]
        else:
            assert row["accuracy"] is None and row["max_rel_error"] is not None and row["target_mae"] is not None


def test_one_wrong_output_fails_its_artifact(edgekit, runs: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = tmp_path / "b"
    doc = _bundle(edgekit, runs["detector"], bundle)
    art = next(a for a in doc["artifacts"] if a["name"] == "tflite-fp32")
    boxes = next(o for o in art["outputs"] if o["name"] == "boxes")
    expected = np.load(bundle / boxes["expected"])
    # Tampered without updating bundle.json: the checksum refuses it in one line.
    np.save(bundle / boxes["expected"], expected + np.float32(1.0), allow_pickle=False)
    assert_one_line_error(edgekit("verify", str(bundle)), boxes["expected"], "sha256")
    # A consistent bundle whose desktop boxes differ by 3× the allowed difference: a mismatch (exit 3).
    np.save(bundle / boxes["expected"], expected + np.float32(3 * boxes["tolerance"]["max_abs"]), allow_pickle=False)
    stored = _json(bundle / "bundle.json")
    stored["files"][boxes["expected"]]["sha256"] = sha256_file(bundle / boxes["expected"])
    (bundle / "bundle.json").write_text(json.dumps(stored))
    proc = edgekit("verify", str(bundle))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "mismatch for tflite-fp32 " in proc.stderr and "Traceback" not in proc.stderr
    report = _json(bundle / "verify.json")
    rows = {(r["artifact"], r["output"]): r for r in report["results"]}
    assert rows["tflite-fp32", "boxes"]["status"] == "fail"
    assert rows["tflite-fp32", "boxes"]["values_over_tolerance"] == expected.size
    assert rows["tflite-fp32", "scores"]["passed"]  # the other output still matches; the artifact fails
    assert report["artifacts"] == {a: a != "tflite-fp32" for a in ARTIFACTS} and not report["passed"]


def test_board_install_verifies_an_archive_of_several_outputs(runs: dict[str, Path], tmp_path: Path) -> None:
    """The TFLite-only board install (no Typer) checks every output of a .tar.gz bundle."""
    from tests.test_board_python import _board
    from toolkit.bundles.build import build_bundle

    archive, _ = build_bundle(runs["two"], tmp_path / "two.tar.gz", golden=GOLDEN, artifact_names=ARTIFACTS[:4])
    proc = _board("verify", str(archive), "--out", str(tmp_path / "v.json"))
    assert proc.returncode == 0, proc.stderr
    report = _json(tmp_path / "v.json")
    assert report["passed"] and len(report["results"]) == 8 and set(report["artifacts"]) == set(ARTIFACTS[:4])


@pytest.mark.slow
def test_verify_remote_checks_every_output(remote_cli, runs: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """`verify --remote` on a real sshd (this machine, edgekit from its wheel): one row per output, fetched."""
    from toolkit.bundles.build import build_bundle

    names = ["tflite-fp32", "tflite-int8", "onnx-fp32"]
    bundle, _ = build_bundle(runs["detector"], tmp_path / "det", golden=GOLDEN, artifact_names=names)
    proc = remote_cli("verify", bundle, "--remote", "board")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "board: verify passed" in proc.stdout
    remote = _json(tmp_path / "det.remote" / "board" / "verify.json")
    assert remote["remote"]["host"] == "board" and remote["passed"]
    assert sorted((r["artifact"], r["output"]) for r in remote["results"]) == sorted(
        (a, o) for a in names for o in ("boxes", "scores")
    )
    assert remote["artifacts"] == {a: True for a in names}


def test_tensor_files_are_plain_and_unique() -> None:
    from toolkit.bundles.format import tensor_files, unsafe_reason

    names = ["image", "features", "Image", "serving_default:0", "../up", "a.builtin"]
    stems = tensor_files(names)
    assert stems["features"] == "features" and stems["image"] == "0_image" and stems["Image"] == "2_Image"
    assert stems["serving_default:0"] == "3_serving_default_0" and stems["../up"] == "4_.._up"
    assert stems["a.builtin"] == "5_a.builtin"  # no dot in a plain stem: `<stem>.builtin.npy` stays unambiguous
    assert len({s.casefold() for s in stems.values()}) == len(names)
    assert all(unsafe_reason(f"expected/x/{s}.npy") is None for s in stems.values())


def test_class_indices_are_compared_index_by_index() -> None:
    """Class indices have no |Δ| to bound: the share of rows keeping the desktop's index, by precision."""
    from toolkit.bundles.verify import compare
    from toolkit.tolerances import machine_tolerance, parity_tolerance

    fp32, int8 = machine_tolerance("fp32", "class_indices"), machine_tolerance("int8", "class_indices")
    assert fp32["kind"] == "index_agreement" and fp32["min_agreement"] == 1.0
    assert int8["min_agreement"] == parity_tolerance("int8", "class_indices").min_agreement
    desktop = np.arange(400, dtype=np.int64) % 10
    labels = desktop.copy()
    labels[:40] = (labels[:40] + 1) % 10
    same = compare(desktop.copy(), desktop, labels, fp32, "class_indices")
    assert same["passed"] and same["agreement"] == 1.0 and same["accuracy"] == same["desktop_accuracy"] == 0.9
    one_off = desktop.copy()
    one_off[0] = 9 - one_off[0]
    assert not compare(one_off, desktop, labels, fp32, "class_indices")["passed"]
    row = compare(one_off, desktop, labels, int8, "class_indices")  # 399 of 400 = 0.9975 ≥ 0.995
    assert row["passed"] and row["values_over_tolerance"] == 1 and row["max_abs_diff"] == 1.0


def test_boxes_are_compared_raw_like_values() -> None:
    from toolkit.tolerances import machine_tolerance

    # float limits scaled by the boxes' size (pixels here), as for values; an int8 output: its own step
    assert machine_tolerance("fp32", "boxes", magnitude=224.0)["max_abs"] == pytest.approx(224e-5)
    boxes, values = (
        machine_tolerance("fp32", "boxes", magnitude=224.0),
        machine_tolerance("fp32", "values", magnitude=224),
    )
    assert {**boxes, "basis": ""} == {**values, "basis": ""} and "raw boxes" in boxes["basis"]
    assert machine_tolerance("int8", "boxes", magnitude=224.0, output_scale=0.875)["max_abs"] == 0.875
