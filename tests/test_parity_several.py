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
    return U.digits_and_side(root / "digits_side.keras", data), data


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
    assert outputs["digit"]["metric"] == "accuracy" and outputs["digit"]["value"] > 0.85
    assert outputs["side"]["metric"] == "MAE" and outputs["side"]["value"] < 0.5
    assert set(parity["output_tolerances"]) == {"digit", "side"}
    for r in rows:
        tol = parity_tolerance(r["precision"], r["output_kind"])
        assert r["tolerance"].startswith(tol.describe()[:20]), r
        if r["output"] == "digit":
            assert r["accuracy"] is not None and r["top1_agreement"] is not None
        else:
            assert r["accuracy"] is None and r["mae"] is not None and r["max_rel_error"] is not None
    by_artifact: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_artifact.setdefault(r["artifact"], []).append(r)
    assert parity["passed"] == all(all(r["passed"] for r in rs) for rs in by_artifact.values())
    reference = [r for r in rows if r["artifact"] == parity["reference"]["artifact"]]
    assert all(r["passed"] and r["max_abs_diff"] == 0 for r in reference)
    # The CLI's table: one line per (artifact, output), and no latency table for this model.
    assert "one row per artifact and output" in stdout
    assert "Latency not measured: the model has several inputs or outputs" in stdout
    assert not (run / "bench.json").exists()


def test_every_export_keeps_each_output(pipeline_run: tuple[Path, str]) -> None:
    """The agreement and error of every artifact, output by output, within its kind's tolerance."""
    run, _ = pipeline_run
    parity = json.loads((run / "parity.json").read_text())
    failed = [(r["artifact"], r["output"], r["failures"]) for r in parity["results"] if not r["passed"]]
    assert not failed
    digit = [r for r in parity["results"] if r["output"] == "digit"]
    side = [r for r in parity["results"] if r["output"] == "side"]
    floors = {r["artifact"]: parity_tolerance(r["precision"]).min_agreement for r in digit}
    assert all(r["top1_agreement"] >= floors[r["artifact"]] - 0.02 for r in digit)
    fp32 = [r for r in side if r["precision"] == "fp32"]
    assert all(r["max_rel_error"] <= 1e-4 for r in fp32)


def test_the_report_shows_each_output(pipeline_run: tuple[Path, str]) -> None:
    run, _ = pipeline_run
    md = (run / "report.md").read_text()
    html = (run / "report.html").read_text()
    lines = [line for line in md.splitlines() if line.startswith("| ") and ("| digit |" in line or "| side |" in line)]
    manifest = json.loads((run / "manifest.json").read_text())
    assert len(lines) == 2 * len(manifest["artifacts"])
    assert "| artifact | output | kind |" in md
    assert "one row per artifact and output" in html and html.count('<td class="nowrap">side</td>') == len(
        manifest["artifacts"]
    )


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
    assert "lacks 'features' (input); the model's inputs are (image, features) and its outputs (digit, side)" in line
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
