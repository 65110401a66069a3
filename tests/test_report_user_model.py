"""Reports and CLI summaries of runs made from the user's own model (`edgekit pipeline --model … --data …`).

Three real runs, built once for the module: a functional RGB CNN (probabilities), a grey CNN that outputs
logits, and an MLP regressor (plain values). Their report.md, report.html and the CLI's printed summary must
name the model and the dataset, describe its input and output, show regression parity by max/mean |Δ| and
relative error (no accuracy), say that logits are compared through softmax, and never mention MNIST or digits
(the data files are named neutrally, so any such word would come from edgekit's own wording).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from toolkit.reports import build_report, load_run, merge_reports, render_html, render_markdown

LEAKS = re.compile(r"mnist|digit|reference CNN|## Training|id=\"training\"", re.I)


KINDS = {"probabilities": "rgb", "logits": "logits", "values": "regression"}


@pytest.fixture(scope="module")
def runs(user_pipelines: dict[str, tuple[Path, str]]) -> dict[str, tuple[Path, str]]:
    """{kind: (run directory, the pipeline's stdout)} for the probabilities, logits and regression runs."""
    return {kind: user_pipelines[name] for kind, name in KINDS.items()}


def _md(run: Path) -> str:
    return (run / "report.md").read_text(encoding="utf-8")


def _html(run: Path) -> str:
    return (run / "report.html").read_text(encoding="utf-8")


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("kind", ["probabilities", "logits", "values"])
def test_report_names_the_model_and_data_and_never_mnist(runs, kind: str) -> None:
    run, _ = runs[kind]
    md, html = _md(run), _html(run)
    model, data = {
        "probabilities": ("rgb_cnn.keras", "tinted.npz"),
        "logits": ("grey_logits.keras", "grey.npz"),
        "values": ("ink_reg.keras", "ink.npz"),
    }[kind]
    for text in (md, html):
        assert not LEAKS.search(text), LEAKS.search(text)
        assert model in text and data in text
    # the section comes right after the recommendation, before the artifacts
    assert md.index("## Recommendation") < md.index("## Model and data") < md.index("## Artifacts")
    section = _section(md, "Model and data")
    assert "3,000 train / 600 test" in section
    assert "<details><summary>" in section and "| layer | class |" in section
    assert '<section id="model"><h2>Model and data</h2>' in html
    assert html.index('id="machines"') < html.index('id="model"') < html.index('id="artifacts"')
    assert '<a href="#model">Model and data</a>' in html and 'href="#training"' not in html


def test_model_section_shows_layers_input_and_output(runs) -> None:
    section = _section(_md(runs["probabilities"][0]), "Model and data")
    assert "| input | [N, 16, 16, 3] | float32 | values 0 – 255, layout NHWC |" in section
    assert "| output | [N, 10] | float32 | class probabilities, 10 classes |" in section
    for layer, cls in (("stem_bn", "BatchNormalization"), ("dw", "DepthwiseConv2D"), ("residual", "Add")):
        assert f"| {layer} | {cls} |" in section
    assert "6,522 parameters" in section
    html = _html(runs["probabilities"][0])
    assert '<td class="nowrap">residual</td><td class="nowrap">Add</td>' in html
    values = _section(_md(runs["values"][0]), "Model and data")
    assert "| input | [N, 49] | float32 |" in values and "2 regression values" in values
    assert "(npz, regression)" in values


def test_regression_parity_has_no_accuracy_columns(runs) -> None:
    run, stdout = runs["values"]
    parity = _section(_md(run), "Parity")
    header = next(line for line in parity.splitlines() if line.startswith("| artifact"))
    assert header == "| artifact | runtime | max \\|Δ\\| | mean \\|Δ\\| | max rel. error | tolerance | result |"
    assert "test samples of ink.npz" in parity and "max relative error" in parity
    rows = [line for line in parity.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 7 and all(r.count(" | ") == 6 for r in rows)
    assert "%" not in "".join(rows)
    rec = _section(_md(run), "Recommendation")
    assert "max relative error" in rec and "accuracy" not in rec
    html = _html(run)
    table = html.split('<section id="parity">')[1].split("</table>")[0]
    assert "max rel. error" in table and "accuracy" not in table and "agreement" not in table
    card = html.split('<section id="recommendation">')[1].split("</section>")[0]
    assert "max relative error <b>" in card and "accuracy" not in card
    # what `edgekit pipeline` printed
    assert "Parity (600 test samples of ink.npz)" in stdout
    printed = stdout.split("Parity (", 1)[1].split("Latency", 1)[0]
    assert "max rel. error" in printed and "accuracy" not in printed and "Δ pt" not in printed
    recommended = " ".join(stdout.split("Recommended:", 1)[1].split())
    assert "max relative error" in recommended and "accuracy" not in recommended


def test_logits_parity_says_softmax_is_compared(runs) -> None:
    run, stdout = runs["logits"]
    parity = _section(_md(run), "Parity")
    assert "softmax of logits is compared" in parity and "| accuracy | Δ pt | agreement |" in parity
    assert "softmax of logits is compared" in _html(run)
    assert "logits (softmax applied for parity), 10 classes" in _section(_md(run), "Model and data")
    assert "Parity (600 test images of grey.npz, softmax of logits compared)" in stdout
    assert "accuracy" in " ".join(stdout.split("Recommended:", 1)[1].split())


def test_classification_report_and_cli_keep_accuracy(runs) -> None:
    run, stdout = runs["probabilities"]
    parity = _section(_md(run), "Parity")
    assert parity.startswith("\nAll 600 test images of tinted.npz through each artifact's runtime")
    assert "| artifact | runtime | accuracy | Δ pt | agreement |" in parity
    assert "Parity (600 test images of tinted.npz)" in stdout
    assert not LEAKS.search(stdout)


def test_rerender_is_identical_and_merged_report_handles_user_runs(runs, tmp_path: Path) -> None:
    run = runs["values"][0]
    docs = load_run(run)
    assert docs.model is not None and docs.dataset is not None
    report = build_report([docs])
    assert render_markdown(report) == _md(run)
    assert render_html(report) == _html(run)
    md_path, html_path = merge_reports([r for r, _ in runs.values()], tmp_path / "merged")
    md, html = md_path.read_text(encoding="utf-8"), html_path.read_text(encoding="utf-8")
    assert not LEAKS.search(md) and not LEAKS.search(html)
    assert "Model: **ink_reg.keras** on ink.npz (2 regression values)." in md
    assert "Model: **grey_logits.keras** on grey.npz (logits" in md
    assert md.count("| artifact | runtime | max \\|Δ\\| | mean \\|Δ\\| | max rel. error |") == 1
    assert html.count('<section id="model">') == 1 and html.count("<h3>") >= 3


def test_quick_bench_says_its_fixed_floor_in_the_cli_and_the_report(runs) -> None:
    """`--quick` times with the fixed method: the CLI counts the rows at its floor, and the report says why each
    row stopped, with its p50 interval."""
    run, stdout = runs["probabilities"]
    docs = load_run(run)
    assert docs.bench is not None and docs.bench.method.method == "fixed"
    rows = docs.bench.results
    assert all(r.stop in ("floor", "cap") and r.p50_ci_low_ms is not None for r in rows)
    floor = sum(r.stop == "floor" for r in rows)
    said = " ".join(stdout.split())
    assert f"fixed: {floor} rows at the floor (128 runs and 0.2 s)" in said and "intervals in the report" in said
    md = _md(run)
    assert "Method: fixed. Each configuration, in a fresh process: 5 warm-up runs and 0.05 s" in md
    measured = _section(md, "Latency").split("### How each configuration was measured\n", 1)[1]
    assert measured.count("fixed floor: 128 runs and 0.2 s") == floor
    first = rows[0]
    assert f"{first.p50_ci_low_ms:.4g}–{first.p50_ci_high_ms:.4g} (±" in measured
