"""Parity: one tolerance table, real runtimes, and a real failing artifact is caught."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from runtimes.files import sha256_file
from toolkit.run.documents import ArtifactEntry, dump_document
from toolkit.steps.parity import check_row, parity_step
from toolkit.tolerances import PARITY_TOLERANCES as TOLERANCES


def test_tolerance_table() -> None:
    assert TOLERANCES["fp32"].max_abs_diff == 1e-5 and TOLERANCES["fp32"].min_agreement == 1.0
    assert TOLERANCES["fp16"].max_abs_diff == 1e-2
    for p in ("int8", "int8-dynamic"):
        assert TOLERANCES[p].max_accuracy_drop == 0.005 and TOLERANCES[p].min_agreement == 0.995


def test_check_row_applies_the_tolerance() -> None:
    rng = np.random.default_rng(0)
    ref = rng.dirichlet(np.ones(10), size=1000).astype(np.float32)
    labels = ref.argmax(1)
    entry = ArtifactEntry(
        name="x", path="x.tflite", format="tflite", precision="fp32", runtime="tflite", size_bytes=1, sha256="0"
    )
    same = check_row(entry, ref + 1e-7, ref, labels, 1.0, 0.0, "b")
    assert same.passed and same.top1_agreement == 1.0
    noisy = ref.copy()
    noisy[0] = np.roll(noisy[0], 1)  # one prediction changes
    row = check_row(entry, noisy, ref, labels, 1.0, 0.0, "b")
    assert not row.passed and row.disagreements == 1
    assert any("agreement" in f for f in row.failures) and any("max |Δp|" in f for f in row.failures)
    int8 = check_row(entry.model_copy(update={"precision": "int8"}), noisy, ref, labels, 1.0, 0.0, "b")
    assert int8.passed  # one flip in 1,000 is within int8's tolerance


def test_parity_on_a_real_run(small_run: Path, mnist) -> None:
    report = dump_document(parity_step(small_run, data=mnist, limit=2000))
    rows = {r["artifact"]: r for r in report["results"]}
    assert len(rows) == 7 and report["reference"]["images"] == 2000
    for name in ("tflite-fp32", "onnx-fp32"):
        assert rows[name]["top1_agreement"] == 1.0 and rows[name]["max_abs_diff"] <= 1e-5 and rows[name]["passed"]
    assert rows["tflite-fp16"]["passed"]
    for r in rows.values():
        assert set(r) >= {
            "artifact",
            "format",
            "precision",
            "runtime",
            "accuracy",
            "top1_agreement",
            "max_abs_diff",
            "mean_abs_diff",
            "passed",
        }
    saved = json.loads((small_run / "parity.json").read_text())
    assert saved["schema_version"] == 1 and saved["results"] == report["results"]


def swap_in_untrained_model(run: Path) -> None:
    """Replace tflite-fp32 with an untrained model's export, updating the manifest (a real, wrong model)."""
    from exporters.base import Precision
    from exporters.tflite_export import export_tflite
    from toolkit.model.reference import build_reference_model

    result = export_tflite(build_reference_model(seed=99), run / "exports", precision=Precision.FP32)
    manifest = json.loads((run / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        if a["name"] == "tflite-fp32":
            a["sha256"], a["size_bytes"] = sha256_file(result.path), result.size_bytes
    (run / "manifest.json").write_text(json.dumps(manifest))


def test_wrong_model_fails_parity(run_copy: Path, mnist) -> None:
    pytest.importorskip("tensorflow")
    swap_in_untrained_model(run_copy)
    report = parity_step(run_copy, data=mnist, limit=500, artifact_names=["tflite-fp32"])
    (row,) = [r for r in report.results if r.artifact == "tflite-fp32"]
    assert not row.passed and not report.passed
    assert row.top1_agreement is not None and row.top1_agreement < 0.5


def test_the_tolerance_page_shows_every_rule_the_code_judges_by() -> None:
    from toolkit.tolerances import MACHINE_TOLERANCE_DOC, VALUE_TOLERANCES, tolerance_markdown

    page = tolerance_markdown()

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    for name, tol in TOLERANCES.items():
        assert f"| {name} | {cell(tol.describe())} |" in page
    for name, tol in VALUE_TOLERANCES.items():
        assert f"| {name} | {cell(tol.describe())} |" in page
    for text in MACHINE_TOLERANCE_DOC.values():
        assert cell(text) in page
    for line in page.splitlines():  # every table row has as many cells as its header
        if line.startswith("|"):
            assert line.replace("\\|", "").count("|") in (3, 4), line
