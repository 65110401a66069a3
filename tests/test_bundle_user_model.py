"""`edgekit bundle`, `verify` and `mcu` on a user's own model: four small real Keras models (RGB CNN, vector
MLP, logits CNN, regression MLP) taken through `edgekit pipeline --model … --data …`, then bundled with golden
rows from their own data and verified with their real runtimes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtimes.files import sha256_file
from tests.test_cli import assert_one_line_error

GOLDEN = 40
KINDS = ("rgb", "mlp", "logits", "regression")


# `user_runs` is the session fixture of tests/conftest.py: one pipeline per test user model.


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _bundle(edgekit, run: Path, out: Path, *extra: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    proc = edgekit("bundle", str(run), "--out", str(out), "--golden", str(GOLDEN), *extra)
    assert proc.returncode == 0, proc.stderr
    return _json(out / "bundle.json")


def _rewrite(bundle: Path, rel: str, array: np.ndarray) -> None:
    """Replace a bundle file and its sha256 (a consistent bundle whose desktop outputs were different)."""
    np.save(bundle / rel, array, allow_pickle=False)
    doc = _json(bundle / "bundle.json")
    doc["files"][rel]["sha256"] = sha256_file(bundle / rel)
    (bundle / "bundle.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("kind", KINDS)
def test_bundle_and_verify_pass_on_a_user_model(edgekit, user_runs: dict[str, Path], kind: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from toolkit.model.run_source import run_dataset, run_spec

    run = user_runs[kind]
    spec = run_spec(run)
    bundle = tmp_path / "b"
    doc = _bundle(edgekit, run, bundle)
    # golden rows: the last GOLDEN test rows of the run's own data, in the model's input shape
    dataset = run_dataset(run, spec=spec)
    want = dataset.inputs(dataset.x_test[-GOLDEN:], spec).astype(np.float32)
    inputs = np.load(bundle / "golden" / "inputs.npy")
    assert inputs.shape == (GOLDEN, *[d for d in spec.input.shape[1:]]) and inputs.dtype == np.float32
    np.testing.assert_array_equal(inputs, want)
    golden = doc["golden"]
    assert golden["data_name"] == dataset.name and dataset.name in golden["selection"]
    assert golden["shape"] == [GOLDEN, *spec.input.shape[1:]]
    if kind == "regression":
        assert golden["labels"] is None and golden["task"] == "regression"
        targets = np.load(bundle / golden["targets"])
        assert targets.shape == (GOLDEN, 2) and targets.dtype == np.float32
    else:
        labels = np.load(bundle / golden["labels"])
        np.testing.assert_array_equal(labels, dataset.test_split(spec)[1][-GOLDEN:])
    # each artifact records the model's spec (value range, output kind, classes) and a tolerance in its units
    assert len(doc["artifacts"]) == 6
    for art in doc["artifacts"]:
        ms = art["model_spec"]
        assert ms["output_kind"] == spec.output_kind and ms["value_range"] == list(spec.value_range)
        assert ms["input"]["shape"][1:] == list(spec.input.shape[1:])
        expected = np.load(bundle / art["expected"])
        assert expected.shape == (GOLDEN, *spec.output.shape[1:])
        if art["precision"] == "fp32":
            factor = 1.0 if kind in ("rgb", "mlp") else max(1.0, float(np.abs(expected).max()))
            assert art["tolerance"]["max_abs"] == pytest.approx(1e-5 * factor)
        assert (art["desktop_accuracy"] is None) == (kind == "regression")
    assert ("logits and values" in doc["tolerances"]) == (kind in ("logits", "regression"))

    proc = edgekit("verify", str(bundle))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = _json(bundle / "verify.json")
    assert report["passed"] and not report["skipped"] and report["golden"]["images"] == GOLDEN
    assert {r["artifact"] for r in report["results"]} == {a["name"] for a in doc["artifacts"]}
    for row in report["results"]:
        assert row["passed"] and row["output_kind"] == spec.output_kind, row
        if kind == "regression":
            assert row["accuracy"] is None and row["agreement"] is None and row["max_rel_error"] is not None
            assert row["target_mae"] == pytest.approx(row["desktop_target_mae"], abs=1e-3)
        else:
            assert row["agreement"] == 1.0 and row["accuracy"] == row["desktop_accuracy"]


@pytest.mark.parametrize("kind", ["logits", "regression"])
def test_a_changed_golden_output_fails_verify(edgekit, user_runs: dict[str, Path], kind: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = tmp_path / "b"
    doc = _bundle(edgekit, user_runs[kind], bundle)
    art = next(a for a in doc["artifacts"] if a["name"] == "tflite-fp32")
    expected = np.load(bundle / art["expected"])
    # Tampered without updating bundle.json: the checksum refuses it in one line.
    np.save(bundle / art["expected"], expected + np.float32(1.0), allow_pickle=False)
    assert_one_line_error(edgekit("verify", str(bundle)), art["expected"], "sha256")
    # A consistent bundle whose desktop outputs differ by 3× the allowed difference: a mismatch (exit 3).
    _rewrite(bundle, art["expected"], expected + np.float32(3 * art["tolerance"]["max_abs"]))
    proc = edgekit("verify", str(bundle))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "mismatch for tflite-fp32" in proc.stderr and "Traceback" not in proc.stderr
    rows = {r["artifact"]: r for r in _json(bundle / "verify.json")["results"]}
    assert rows["tflite-fp32"]["status"] == "fail" and rows["tflite-fp32"]["values_over_tolerance"] == expected.size
    assert all(r["passed"] for name, r in rows.items() if name != "tflite-fp32")


def test_bundle_data_option_picks_the_golden_rows(edgekit, user_runs: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = user_runs["rgb"]
    source = np.load(_json(run / "dataset.json")["path"])
    other = tmp_path / "other.npz"
    flipped = source["x_test"][:30, ::-1].copy()  # 30 digits upside down: different golden rows
    np.savez(other, x_train=source["x_train"], y_train=source["y_train"], x_test=flipped, y_test=source["y_test"][:30])
    proc = edgekit("bundle", str(run), "--out", str(tmp_path / "b"), "--data", str(other))
    assert proc.returncode == 0, proc.stderr  # the default 256 golden rows: all 30 when the split is smaller
    doc = _json(tmp_path / "b" / "bundle.json")
    inputs = np.load(tmp_path / "b" / "golden" / "inputs.npy")
    np.testing.assert_array_equal(inputs, flipped.astype(np.float32))
    assert doc["golden"]["data_name"] == "other.npz" and doc["golden"]["images"] == 30
    assert edgekit("verify", str(tmp_path / "b")).returncode == 0
    # data that does not fit the model is refused in one line, and nothing is written
    vectors = tmp_path / "vectors.npz"
    np.savez(vectors, x=np.zeros((20, 25), np.float32), y=np.zeros(20, np.int64))
    out = tmp_path / "refused"
    assert_one_line_error(
        edgekit("bundle", str(run), "--out", str(out), "--data", str(vectors)), "vectors.npz", "(25,)"
    )
    assert not out.exists()


def test_mcu_on_a_user_model(edgekit, user_runs: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("tflite_micro")
    run = Path(shutil.copytree(user_runs["rgb"], tmp_path / "rgb"))
    proc = edgekit("mcu", str(run), "-n", "120")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = _json(run / "mcu.json")
    assert doc["data"]["name"] == "tinted.npz" and doc["data"]["images"] == 120
    (result,) = doc["results"]
    par = result["parity"]
    assert result["input"]["shape"] == [1, 16, 16, 3] and par["passed"], par
    # TFLM's reference kernels and LiteRT's XNNPACK round differently (a few int8 steps on a model trained on
    # this CPU), so a top-1 may swap where LiteRT's two best outputs are within mcu's near-tie margin; any other
    # swap is a wrong kernel.
    assert par["disagreements_litert"] == par["near_tie_disagreements_litert"], par
    # the logits model: compared as softmax, as parity does
    run = Path(shutil.copytree(user_runs["logits"], tmp_path / "logits"))
    proc = edgekit("mcu", str(run), "-n", "120")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _json(run / "mcu.json")["results"][0]["parity"]["passed"]
    # regression: refused in one line
    assert_one_line_error(edgekit("mcu", str(user_runs["regression"])), "regression values")
