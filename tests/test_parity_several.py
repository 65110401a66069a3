"""End to end: a Keras model with two inputs and two outputs through `edgekit pipeline`, judged output by output.

The model (tests/user_models.py `digits_and_side`) takes an MNIST image and four ink statistics of it, and
gives the digit's probabilities and a `side` value (does the ink lean right); it is trained in the test on
3,000 real MNIST images. Every artifact runs with `Runner.infer_named` on the named test split; parity.json
holds one row per (artifact, output), each judged by its kind's tolerance, and the report and the CLI show
those rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import user_models as U
from toolkit.tolerances import parity_tolerance


@pytest.fixture(scope="module")
def two_by_two(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("several")
    data = U.digits_and_side_data(root / "digits_side.npz")
    # Ten epochs: at the builder's three the digit head is still at ~58 %, too few right answers to judge by.
    return U.digits_and_side(root / "digits_side.keras", data, epochs=10), data


@pytest.fixture(scope="module")
def pipeline_run(two_by_two: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory, edgekit) -> tuple[Path, str]:
    model, data = two_by_two
    runs = tmp_path_factory.mktemp("several-runs")
    result = edgekit("pipeline", "--model", str(model), "--data", str(data), "--runs-dir", str(runs), "--quick")
    assert result.returncode in (0, 3), result.stderr[-3000:]
    return (runs / "latest").resolve(), result.stdout


def test_one_row_per_artifact_and_output(pipeline_run: tuple[Path, str]) -> None:
    run, stdout = pipeline_run
    parity = json.loads((run / "parity.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    artifacts = [a["name"] for a in manifest["artifacts"]]
    rows = parity["results"]
    assert sorted((r["artifact"], r["output"]) for r in rows) == sorted(
        (a, o) for a in artifacts for o in ("digit", "side")
    )
    assert parity["data"]["images"] == U.N_TEST
    outputs = {o["name"]: o for o in parity["reference"]["outputs"]}
    assert outputs["digit"]["metric"] == "accuracy" and outputs["digit"]["value"] > 0.8
    assert outputs["side"]["metric"] == "MAE" and outputs["side"]["value"] < 0.5
    assert set(parity["output_tolerances"]) == {"digit", "side"}
    for r in rows:
        tol = parity_tolerance(r["precision"], r["output_kind"])
        if r["output"] == "digit":  # the class criteria grow with the reference's error rate
            tol = tol.for_model(outputs["digit"]["value"])
            assert r["accuracy"] is not None and r["top1_agreement"] is not None and "mae" not in r
        else:
            assert r.get("accuracy") is None and r["mae"] is not None and r["max_rel_error"] is not None
        assert r["tolerance"] == tol.describe(), r
    by_artifact: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_artifact.setdefault(r["artifact"], []).append(r)
    assert parity["passed"] == all(all(r["passed"] for r in rs) for rs in by_artifact.values())
    reference = [r for r in rows if r["artifact"] == parity["reference"]["artifact"]]
    assert all(r["passed"] and r["max_abs_diff"] == 0 for r in reference)
    # The CLI's table: one line per (artifact, output); each output's reference score in the summary.
    assert "one row per artifact and output" in stdout
    assert f"digit accuracy {100 * outputs['digit']['value']:.2f} %, side MAE" in stdout


def test_each_output_is_judged_by_its_own_tolerance(pipeline_run: tuple[Path, str]) -> None:
    """Float exports keep both outputs; every verdict is its kind's criterion applied to the measured figures."""
    run, _ = pipeline_run
    parity = json.loads((run / "parity.json").read_text())
    reference = {o["name"]: o["value"] for o in parity["reference"]["outputs"]}
    for r in parity["results"]:
        if r["precision"] in ("fp32", "fp16"):
            assert r["passed"], r
        tol = parity_tolerance(r["precision"], r["output_kind"])
        if r["output"] == "side":  # values: max |Δ| relative to the largest reference value, nothing else
            assert r["passed"] == (r["max_rel_error"] <= tol.max_rel_error), r
        elif tol.min_agreement is not None:  # fp16 is bounded by |Δp| instead
            assert r["top1_agreement"] >= tol.for_model(reference["digit"]).min_agreement - 0.02, r
    verdicts: dict[str, bool] = {}
    for r in parity["results"]:
        verdicts[r["artifact"]] = verdicts.get(r["artifact"], True) and r["passed"]
    assert parity["passed"] == all(verdicts.values())


def test_the_report_shows_each_output(pipeline_run: tuple[Path, str]) -> None:
    run, _ = pipeline_run
    md = (run / "report.md").read_text()
    html = (run / "report.html").read_text()
    manifest = json.loads((run / "manifest.json").read_text())
    names = tuple(f"| {a['name']} | " for a in manifest["artifacts"])
    lines = [line for line in md.splitlines() if line.startswith(names) and ("| digit |" in line or "| side |" in line)]
    assert len(lines) == 2 * len(manifest["artifacts"])
    assert "| artifact | output | kind |" in md
    assert "one row per artifact and output" in html
    assert html.count('<td class="nowrap">side</td>\n<td class="nowrap">values</td>') == len(manifest["artifacts"])


def test_data_refusals_through_the_cli(two_by_two: tuple[Path, Path], tmp_path: Path, edgekit) -> None:
    model, data = two_by_two
    arrays = dict(np.load(data))
    del arrays["features_train"], arrays["features_test"]
    np.savez(tmp_path / "lacking.npz", **arrays)
    result = edgekit(
        "pipeline", "--model", str(model), "--data", str(tmp_path / "lacking.npz"), "--runs-dir", str(tmp_path / "r")
    )
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "features" in line and "digit" in line and "side" in line
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
