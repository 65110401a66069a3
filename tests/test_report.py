"""toolkit.reports: report.md and report.html from the saved reference run (structure, escaping, optional
fields, determinism, md and html agreeing), and a real render in headless Chromium (skipped when Chromium
is not installed; CI installs it)."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import REPO
from toolkit.reports import (
    RunDocs,
    build_report,
    config_label,
    load_run,
    machine_label,
    merge_reports,
    recommend,
    render_markdown,
    write_report,
)
from toolkit.reports import render_html as _render_html
from toolkit.run.documents import BenchDocument, BenchRow, Environment, dump_document

SAVED = REPO / "benchmarks" / "results" / "2026-11-29-x86_64-epyc-2cpu"
CHART_IDS = ("chart-pareto", "chart-latency", "chart-batch")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=2000",
]


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser


def _svg(html: str, chart_id: str) -> str:
    match = re.search(rf'<svg class="chart" id="{chart_id}".*?</svg>', html, re.S)
    assert match, f"{chart_id} missing"
    return match.group(0)


def render_html(runs: list[RunDocs]) -> str:
    return _render_html(build_report(runs, kind="merged"))


def _saved(name: str | None = None, label: str | None = None) -> RunDocs:
    return load_run(SAVED, name=name, label=label)


def _artifacts() -> list[str]:
    manifest = _saved().manifest
    assert manifest is not None
    return [a.name for a in manifest.artifacts]


def _board(run: RunDocs) -> RunDocs:
    """A second machine for side-by-side tests, derived from the saved run and labelled as test data.

    Latencies are scaled, thread counts changed to 1 and 4, Keras dropped (a board without TensorFlow),
    and every optional field the bench is growing is filled in: quantiles_ms, p95_ms, p90 CI, gflops,
    pct_of_peak, options (XNNPACK off, an ORT level), noisy/noise and a throttled environment.
    """
    board = copy.deepcopy(run)
    board.name = "synthetic-board"
    board.label = "Synthetic board (test data) · aarch64 · 4 cores"
    assert board.bench is not None
    bench = dump_document(board.bench)  # edited as JSON, then checked as a bench.json again
    bench["environment"].update(
        cpu_model="Synthetic Cortex-A72 (test data)",
        machine="aarch64",
        cores_available=4,
        cores_logical=4,
        cpu_governor="ondemand",
        cpu_freq_cur_mhz=1500.0,
        throttled=True,
        throttle_flags=["soft temperature limit"],
        cpu_temp_c=81.5,
    )
    rows = []
    for r in bench["results"]:
        if r["artifact"] == "keras-fp32":
            continue
        scale = 9.0 if r["runtime"] == "onnxruntime" else 6.5
        r = {**r, "threads": 4 if r["threads"] == 2 else 1}
        for key in ("load_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms"):
            r[key] *= scale
        r["throughput_ips"] /= scale
        # Monotone percentiles through min, p50, p90, p99 and max (geometric interpolation).
        anchors = [(0, r["min_ms"]), (50, r["p50_ms"]), (90, r["p90_ms"]), (99, r["p99_ms"]), (100, r["max_ms"])]
        quantiles = []
        for q in range(101):
            (q0, v0), (q1, v1) = next((a, b) for a, b in itertools.pairwise(anchors) if q <= b[0])
            quantiles.append(v0 * (v1 / v0) ** ((q - q0) / (q1 - q0)))
        r.update(
            quantiles_ms=quantiles,
            p95_ms=quantiles[95],
            p90_ci_low_ms=r["p90_ms"] * 0.97,
            p90_ci_high_ms=r["p90_ms"] * 1.04,
            gflops=0.024 * r["batch_size"] / r["p50_ms"],
            pct_of_peak=12.5,
            options={"xnnpack": True} if r["runtime"] == "tflite" else {"graph_optimization": "all"},
        )
        rows.append(r)
        if r["artifact"] == "tflite-fp32":
            slow = {k: v * 2 if k.endswith("_ms") and k != "load_ms" else v for k, v in r.items()}
            slow["quantiles_ms"] = [v * 2 for v in quantiles]
            rows.append({**slow, "options": {"xnnpack": False}})
        if r["artifact"] == "onnx-fp32":
            rows.append({**r, "options": {"graph_optimization": "basic"}, "p50_ms": r["p50_ms"] * 1.3})
    rows[2].update(noisy=True, noise="cv 0.31")
    bench["results"] = rows
    bench["skipped"] = [{"artifact": "keras-fp32", "reason": "runtime not installed"}]
    board.bench = BenchDocument.model_validate(bench)
    return board


# -- structure --------------------------------------------------------------------------------------------
def test_saved_run_renders_three_charts_naming_every_artifact() -> None:
    run = _saved()
    assert run.bench is not None
    label = "AMD EPYC · x86_64 · 2 cores"
    assert run.label == label == machine_label(run.bench) == machine_label(run.bench.environment)
    html = render_html([run])
    assert html.startswith("<!DOCTYPE html>")
    tags = _parse(html).tags
    charts = [a for t, a in tags if t == "svg" and a.get("class") == "chart"]
    assert [a["id"] for a in charts] == list(CHART_IDS)
    for chart_id in CHART_IDS:
        svg = _svg(html, chart_id)
        assert 'class="mark"' in svg and "<title>" in svg, chart_id
        for name in _artifacts():
            assert f">{name}" in svg, (chart_id, name)
    for section in ("Recommendation", "Machines", "Training", "Artifacts", "Parity", "Latency"):
        assert f"<h2>{section}</h2>" in html
    # The environment, the recommendation and table values of the saved run.
    assert "AMD EPYC" in html and "onnxruntime 1.32.0" in html and "ai_edge_litert 2.3.0" in html
    assert '<div class="rec-name">tflite-int8-dynamic</div>' in html
    rec = recommend(run.parity, run.bench)
    assert rec is not None
    best = max(r.throughput_ips for r in run.bench.results)
    assert "98.81 %" in html and f"{rec.p50_ms:.4f}"[:6] in html and f"{best:,.0f}" in html and "592,074" in html
    assert "WARNING" not in html  # not throttled
    noisy = sum(bool(r.noisy) for r in run.bench.results)
    assert (f"{noisy} noisy measurement" in html) == (noisy > 0)


def test_report_is_self_contained() -> None:
    html = render_html([_saved(), _board(_saved())])
    parser = _parse(html)
    for tag, attrs in parser.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed", "image"), tag
        for key in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
            if key in attrs:
                value = attrs[key] or ""
                assert "http" not in value and "//" not in value, (tag, key, value)
                # In-page links and matplotlib's <use> of its own marker definitions only.
                assert key in ("href", "xlink:href") and value.startswith("#"), (tag, key, value)
    assert [t for t, _ in parser.tags].count("script") == 1
    assert "http" not in "".join(parser.scripts)
    assert set(re.findall(r"url\((.)", html)) <= {"#"}  # clip paths defined in the same SVG
    assert "@import" not in html and "@font-face" not in html
    assert "http" not in html  # nothing in the saved run or the report itself points outside


def test_strings_from_the_json_are_escaped() -> None:
    evil = '<script>alert("x")</script>'
    run = _saved(name=evil, label=f"{evil} & <b>board</b> $x$")
    assert run.bench is not None
    run.bench.results[0].artifact = "keras<img src=x>"
    run.bench.environment.cpu_model = "<i>cpu</i>"
    html = render_html([run])
    assert html.count("<script") == 1  # only the self-check
    assert "<img" not in html and "<i>cpu" not in html and "<b>board" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html  # Jinja2 (markupsafe) escapes " as &#34;
    assert "&amp; &lt;b&gt;board&lt;/b&gt;" in html
    assert "keras&lt;img src=x&gt;" in html and "&lt;i&gt;cpu&lt;/i&gt;" in html
    assert [t for t, _ in _parse(html).tags].count("script") == 1


def test_two_machines_side_by_side_and_one_without_parity() -> None:
    a = _saved(name="desktop", label="Desktop · x86_64 · 2 cores")
    b = _saved(name="desktop-again", label="Second machine · x86_64 · 2 cores")
    c = _saved(name="no-parity", label="Third machine")
    c.parity = None
    html = render_html([a, b, c])
    for label in ("Desktop · x86_64 · 2 cores", "Second machine · x86_64 · 2 cores", "Third machine"):
        assert label in html
    pareto = _svg(html, "chart-pareto")
    assert "Third machine" not in pareto  # no accuracy for it
    assert "Not shown (no parity.json): no-parity" in html
    assert "No parity.json for this run" in html  # its recommendation card
    # Colour per run: every run colour appears in the latency charts, one colour per machine.
    for chart_id in ("chart-latency", "chart-batch"):
        svg = _svg(html, chart_id)
        for colour in ("#2563eb", "#d97706", "#0d9488"):
            assert colour in svg, (chart_id, colour)
    # Identical training/manifest documents are shown once; bench tables once per machine.
    assert html.count("<h2>Training</h2>") == 1
    assert html.count("test accuracy</th>") == 1
    assert html.count("All latency rows") == 3
    assert html.count('<div class="rec-name">tflite-int8-dynamic</div>') == 2


STABLE_FIELDS = (
    "artifact",
    "format",
    "precision",
    "runtime",
    "batch_size",
    "threads",
    "load_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "runs",
    "throughput_ips",
)


def _only(row: BenchRow, keys: tuple[str, ...]) -> BenchRow:
    """The row as an older edgekit wrote it: only `keys`."""
    data = dump_document(row)
    return BenchRow.model_validate({k: data[k] for k in keys})


def test_optional_bench_fields_are_shown_and_absent_ones_are_dashes() -> None:
    board = _board(_saved())
    # A run from an older edgekit: only the stable fields and peak RSS (the board keeps every field).
    saved = _saved()
    assert saved.bench is not None and board.bench is not None
    saved.bench.results = [_only(r, (*STABLE_FIELDS, "peak_rss_mb")) for r in saved.bench.results]
    html = render_html([saved, board])
    # Throttling banner and the noisy-row note, with what was recorded.
    assert "WARNING — CPU throttled" in html and "soft temperature limit" in html and "81.5 °C" in html
    assert "noisy measurement" in html and "cv 0.31" in html
    assert "keras-fp32 (runtime not installed)" in html
    # Options in the configuration label; ORT "all" is the default and not shown.
    assert "tflite-fp32 (no XNNPACK)" in html and "onnx-fp32 (ORT opt basic)" in html
    assert "(ORT opt all)" not in html
    row = {**dump_document(board.bench.results[0]), "artifact": "tflite-fp32", "options": {"xnnpack": False}}
    assert config_label(BenchRow.model_validate(row)) == "tflite-fp32 (no XNNPACK)"
    # Percentile glyphs from quantiles_ms for the board, the min–p99 fallback for the saved run.
    latency = _svg(html, "chart-latency")
    assert "recorded percentiles" in latency and "rows without quantiles" in latency
    # Optional columns: values for the board, dashes for the saved run.
    first = board.bench.results[0]
    assert f"{first.p90_ci_low_ms:.3f}–{first.p90_ci_high_ms:.3f}" in html
    assert "12.5 %" in html
    saved_table = html.split("All latency rows")[1]
    first_row = saved_table.split("<tbody><tr>")[1].split("</tr>")[0]
    assert first_row.count(">–<") == 4  # p90 CI, p95, GFLOP/s, % of peak
    assert f"{saved.bench.results[0].peak_rss_mb:,.0f}" in first_row  # peak_rss_mb is present


def test_rows_with_only_the_stable_fields_still_draw_every_chart() -> None:
    run = _saved()
    assert run.bench is not None
    run.bench.results = [_only(r, STABLE_FIELDS) for r in run.bench.results]
    run.bench.environment = Environment()
    html = render_html([run])
    assert html.count('<svg class="chart"') == 3
    for chart_id in CHART_IDS:
        assert 'class="mark"' in _svg(html, chart_id)
    rows = html.split("All latency rows")[1].split("<tbody>")[1]
    assert rows.count("<tr>") == 28
    assert rows.split("</tr>")[0].count(">–<") == 5  # p90 CI, p95, GFLOP/s, % of peak, RSS


@pytest.mark.parametrize(
    ("present", "charts"),
    [
        ((), 0),
        (("train",), 0),
        (("manifest", "parity"), 0),
        (("bench",), 2),
        (("parity", "bench"), 3),
        (("train", "manifest", "parity", "bench"), 3),
    ],
)
def test_missing_documents_leave_their_sections_out(present: tuple[str, ...], charts: int) -> None:
    run = _saved()
    for key in ("train", "manifest", "parity", "bench"):
        if key not in present:
            setattr(run, key, None)
    html = render_html([run])
    assert html.count('<svg class="chart"') == charts
    assert ("<h2>Training</h2>" in html) == ("train" in present)
    assert ("<h2>Artifacts</h2>" in html) == ("manifest" in present)
    assert ("<h2>Parity</h2>" in html) == ("parity" in present)
    assert ("<h2>Latency</h2>" in html) == ("bench" in present)
    assert ('<div class="rec-name">' in html) == ({"parity", "bench"} <= set(present))


def test_no_runs_and_failed_parity() -> None:
    assert "No runs" in render_html([])
    run = _failed_parity()
    html = render_html([run])
    assert recommend(run.parity, run.bench) is None
    assert "No artifact passed parity" in html
    assert "✕ failed" in _svg(html, "chart-pareto") and "#dc2626" in _svg(html, "chart-pareto")
    assert html.count('class="badge fail">FAIL') == 7
    assert "Parity failed" in html


def _failed_parity() -> RunDocs:
    run = _saved()
    assert run.parity is not None
    for r in run.parity.results:
        r.passed = False
        r.failures = ["agreement 0.90 < 0.995"]
    run.parity.passed = False
    return run


def test_recommendation_is_the_fastest_batch1_row_that_passed_parity() -> None:
    run = _saved()
    assert run.parity is not None and run.bench is not None
    rec = recommend(run.parity, run.bench, run.manifest)
    assert rec is not None
    b1 = [r for r in run.bench.results if r.batch_size == 1]
    fastest = min(b1, key=lambda r: r.p50_ms)
    assert (rec.artifact, rec.threads, rec.batch_size) == (fastest.artifact, fastest.threads, 1)
    assert rec.p50_ms == pytest.approx(fastest.p50_ms)
    assert run.manifest is not None and rec.size_bytes == run.manifest.artifact(rec.artifact).size_bytes
    for r in run.parity.results:
        if r.artifact == fastest.artifact:
            r.passed = False
    rec = recommend(run.parity, run.bench)
    runner_up = min((r for r in b1 if r.artifact != fastest.artifact), key=lambda r: r.p50_ms)
    assert rec is not None and rec.artifact == runner_up.artifact


# -- report.md --------------------------------------------------------------------------------------------
def test_markdown_of_the_saved_run_is_the_saved_report_md() -> None:
    """report.md keeps its tables and wording (the README quotes them): the saved one re-renders identically."""
    run = _saved()
    assert run.bench is not None
    run.name = run.bench.run  # the run directory's name where `make run` wrote it
    assert render_markdown(build_report([run])) == (SAVED / "report.md").read_text(encoding="utf-8")


def _md_verdicts(md: str) -> dict[str, str]:
    rows = md.split("## Parity")[1].split("\n\n")[2].splitlines()[2:]
    return {r.split(" | ")[0].strip("| "): "pass" if r.rstrip(" |").endswith("pass") else "FAIL" for r in rows}


def _html_verdicts(html: str) -> dict[str, str]:
    body = html.split('<section id="parity">')[1].split("</tbody>")[0]
    rows = re.findall(r'<tr><td class="nowrap">([^<]+)</td>.*?class="badge (pass|fail)"', body, re.S)
    return {name: "pass" if verdict == "pass" else "FAIL" for name, verdict in rows}


@pytest.mark.parametrize("failed", [False, True])
def test_markdown_and_html_show_the_same_recommendation_and_parity_verdicts(failed: bool) -> None:
    run = _failed_parity() if failed else _saved()
    if not failed:  # one failure among passes: the recommendation moves on
        assert run.parity is not None
        run.parity.results[3].passed = False
        run.parity.results[3].failures = ["agreement 0.90 < 0.995"]
        run.parity.passed = False
    report = build_report([run])
    md, html = render_markdown(report), _render_html(report)
    rec = report.runs[0].recommendation
    if failed:
        assert rec is None and "No recommendation" in md and "No artifact passed parity" in html
    else:
        assert rec is not None and rec.artifact != "tflite-int8-dynamic"
        assert f"**{rec.configuration}** on {rec.runtime}" in md
        assert f'<div class="rec-name">{rec.configuration}</div>' in html
    verdicts = _md_verdicts(md)
    assert verdicts == _html_verdicts(html) and len(verdicts) == 7
    assert list(verdicts.values()).count("FAIL") == (7 if failed else 1)


# -- determinism and files --------------------------------------------------------------------------------
_RENDER = (
    "import sys; from pathlib import Path; from toolkit.reports import build_report, load_run, render_html; "
    "sys.stdout.write(render_html(build_report([load_run(Path(sys.argv[1]))])))"
)


def test_two_renders_of_the_same_run_are_byte_identical() -> None:
    """No date, fixed ids (matplotlib's hash salt), fixed order: the same run gives the same bytes, even in
    another process."""
    first = _render_html(build_report([load_run(SAVED)]))
    assert first == _render_html(build_report([load_run(SAVED)]))
    proc = subprocess.run(
        [sys.executable, "-c", _RENDER, str(SAVED)], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert proc.stdout == first
    ids = re.findall(r' id="([^"]+)"', first)
    assert len(ids) == len(set(ids))  # unique across the three charts and the page


def test_write_report_and_merge_reports(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(SAVED, run)
    board = tmp_path / "run" / "remote" / "pi" / "bench.json"
    board.parent.mkdir(parents=True)
    bench = json.loads((SAVED / "bench.json").read_text())
    bench["remote"] = {"host": "pi@board"}
    board.write_text(json.dumps(bench))
    md, html = write_report(run)
    assert md.read_text().startswith("# edgekit report: run `run`") and "## Remote boards" in md.read_text()
    text = html.read_text()
    assert "pi@board" in text and '<section id="remote">' in text
    # The board is one more machine; without its own parity.json nothing on it is recommended.
    assert text.count('class="rec-name"') == 1 and "No parity.json for this run" in text
    md, html = merge_reports([SAVED, run / "bench.json"], tmp_path / "merged")
    merged = md.read_text()
    assert "## Side by side" in merged and f"`{SAVED.name}`" in merged and "`run`" in merged
    assert '<section id="side-by-side">' in html.read_text()


# -- a real browser ---------------------------------------------------------------------------------------
def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="Chromium is not installed (apt-get install chromium; CI installs it)",
)
def test_chromium_renders_every_chart_without_errors(tmp_path: Path) -> None:
    from PIL import Image

    started = time.monotonic()
    report = tmp_path / "report.html"
    report.write_text(render_html([_saved(), _board(_saved())]), encoding="utf-8")

    dom = _chromium(tmp_path, "--dump-dom", report.as_uri())  # data-* attributes set by the self-check script
    assert dom.returncode == 0, dom.stderr[-2000:]
    root = re.search(r"<html[^>]*>", dom.stdout)
    assert root, dom.stdout[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', root.group(0)))
    assert attrs.get("data-errors") == "0", attrs
    assert attrs.get("data-charts-expected") == "3", attrs
    assert attrs.get("data-charts") == "3", attrs

    shot = tmp_path / "shot.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", report.as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 500, "the screenshot looks blank"
    # No single colour covers (almost) everything: the page has content, not just a background.
    assert max(count for count, _ in colours) < 0.9 * 1280 * 2400
    assert time.monotonic() - started < 30


# -- the benchmark method: adaptive stopping, intervals and ties -------------------------------------------
ADAPTIVE = REPO / "benchmarks" / "results" / "2026-12-05-x86_64-xeon-2cpu-adaptive"


def _adaptive() -> RunDocs:
    return load_run(ADAPTIVE)


def _measured(md: str) -> list[list[str]]:
    """The rows of report.md's "How each configuration was measured" table, as cells."""
    section = md.split("### How each configuration was measured\n", 1)[1].split("\n### ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")][2:]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]


def test_adaptive_run_shows_every_rows_interval_and_why_it_stopped() -> None:
    run = _adaptive()
    assert run.bench is not None and run.bench.method.method == "adaptive"
    report = build_report([run])
    md, html = render_markdown(report), _render_html(report)
    assert "Method: adaptive." in md and "known to ±2 %" in md and "(--keras-full measures them fully)" in md
    assert "Each configuration: 10 warm-up runs" not in md  # the fixed method's wording is for older files
    rows = _measured(md)
    assert len(rows) == len(run.bench.results) == 28
    for cells, r in zip(rows, run.bench.results, strict=True):
        assert cells[:3] == [r.config_label(), str(r.batch_size), str(r.threads)]
        assert cells[3] == f"{r.runs:,.0f}" and cells[5].startswith(f"{r.p50_ci_low_ms:.4g}–{r.p50_ci_high_ms:.4g} (±")
        if r.stop == "precision":
            assert cells[6] == f"median known to ±2 % after {r.runs:,.0f} runs"
        else:
            assert r.stop == "dominated" and cells[6] == f"dominated after {r.runs:,.0f} runs by {r.dominated_by}"
    assert "dominated after 11,732 runs by tflite-fp32 b1×1t" in md
    assert "(adaptive: 26 rows known to ±2 %, 2 dominated after the first pass.)" in md
    # report.html: the same table, the method paragraph and the machine card's method.
    table_html = html.split("How each configuration was measured</summary>")[1].split("</table>")[0]
    assert table_html.count("<tr>") == 29  # header and 28 rows
    assert "dominated after 11,732 runs by tflite-fp32 b1×1t" in table_html and "0.01524–0.01531 (±0.2 %)" in table_html
    assert '<p class="small method">Method: adaptive.' in html
    assert "adaptive: until the median is known to ±2 % (≥ 100 runs and ≥ 0.05 s; first pass ≤ 0.3 s" in html


def test_recommendation_shows_its_interval_and_the_tie() -> None:
    run = _adaptive()
    report = build_report([run])
    rec = report.runs[0].recommendation
    # fp16 is the fastest; fp32 and int8-dynamic (5 % slower) are within the 10 % margin, all at the same accuracy:
    # the smallest file is picked.
    assert rec is not None and rec.artifact == "tflite-int8-dynamic" and rec.tied_with == ("tflite-fp32", "tflite-fp16")
    assert rec.p50_ci_ms == (0.015807, 0.015875)
    md, html = render_markdown(report), _render_html(report)
    head = md.split("## Recommendation\n", 1)[1].split("\n## ", 1)[0]
    assert "95 % interval of p50: 0.01581–0.01588 ms (±0.3 %)." in head and rec.tie_text() in head
    card = html.split('<div class="rec-name">tflite-int8-dynamic</div>')[1].split('<section id="machines">')[0]
    assert "95 % interval of p50: 0.01581–0.01588 ms (±0.3 %)" in card
    assert "A tie with tflite-fp32" in card and "then the smaller file" in card
    merged = render_markdown(build_report([run, _saved()], kind="merged"))
    assert "Recommended: **tflite-int8-dynamic** (b1 p50 0.016 ms). 95 % interval of p50" in merged
    assert "Recommended: **tflite-int8-dynamic** (b1 p50 0.016 ms).\n" in merged  # older file: no interval, no tie
    # A regression model has no accuracy: its tie sentence does not name it.
    values = dataclasses.replace(rec, accuracy=None, max_rel_error=1e-3)
    assert "accuracy" not in values.tie_text() and "picked by the smaller file, then fewer threads" in values.tie_text()


def _restopped(run: RunDocs, changes: dict[tuple[str, int, int], dict[str, object]]) -> RunDocs:
    """The adaptive run with some rows' stopping fields replaced (other stopping reasons than it met)."""
    assert run.bench is not None
    for i, r in enumerate(run.bench.results):
        update = changes.get((r.artifact, r.batch_size, r.threads or 0))
        if update:
            run.bench.results[i] = BenchRow.model_validate({**dump_document(r), **update})
    return run


def test_every_stopping_reason_in_words_and_rows_without_an_interval() -> None:
    from toolkit.reports.latency import stop_summary

    run = _restopped(
        _adaptive(),
        {
            ("tflite-fp32", 1, 1): {"stop": "precision", "full_pass": "recommendation"},
            ("tflite-fp16", 1, 2): {"stop": "cap", "full_pass": "pareto", "noisy": True},
            ("onnx-fp32", 32, 2): {"stop": "cap"},
            ("keras-fp32", 1, 1): {"stop": "quick"},
            ("onnx-int8", 1, 1): {"stop": "dominated", "dominated_by": "failed parity"},
            ("tflite-int8", 32, 2): {"p50_ci_low_ms": None, "p50_ci_high_ms": None},
        },
    )
    md = render_markdown(build_report([run]))
    stops = {(c[0], c[1], c[2]): c[6] for c in _measured(md)}
    intervals = {(c[0], c[1], c[2]): c[5] for c in _measured(md)}
    assert stops["tflite-fp32", "1", "1"] == (
        "median known to ±2 % after 2,986 runs; measured on: could be the recommendation"
    )
    assert stops["tflite-fp16", "1", "2"] == (
        "time cap 5 s before ±2 % (1,940 runs, noisy); measured on: on the accuracy/latency Pareto front"
    )
    assert stops["onnx-fp32", "32", "2"] == "time cap 0.3 s before ±2 % (104 runs)"  # the first pass's cap
    assert stops["keras-fp32", "1", "1"] == "Keras: first pass only, 100 runs (--keras-full measures it fully)"
    assert stops["onnx-int8", "1", "1"] == "first pass only (666 runs): failed parity"
    assert intervals["tflite-int8", "32", "2"] == "–"
    assert run.bench is not None
    assert stop_summary(run.bench) == (
        "adaptive: 22 rows known to ±2 %, 2 stopped by the time cap, 2 measured on, "
        "3 dominated after the first pass, 1 Keras first pass only"
    )


def test_fixed_method_rows_say_the_floor_and_older_files_render_as_before() -> None:
    from toolkit.reports.latency import stop_summary

    run = _adaptive()
    assert run.bench is not None
    bench = dump_document(run.bench)
    bench["method"].update(method="fixed", precision=None, quick_seconds=None, min_runs=1024, min_seconds=2.0)
    bench["method"]["max_seconds"] = 60.0
    for r in bench["results"]:
        r.update(method="fixed", p50_precision=None, full_pass=None, dominated_by=None, stop="floor")
    bench["results"][0]["stop"] = "cap"
    run.bench = BenchDocument.model_validate(bench)
    md = render_markdown(build_report([run]))
    assert "Method: fixed. Each configuration, in a fresh process: 10 warm-up runs and 0.05 s, then at least 1024" in md
    stops = [c[6] for c in _measured(md)]
    assert stops[0] == "time cap 60 s before the floor of 1,024 runs (100 runs)"
    assert set(stops[1:]) == {"fixed floor: 1,024 runs and 2 s"}
    assert stop_summary(run.bench) == "fixed: 27 rows at the floor (1,024 runs and 2 s), 1 stopped by the time cap"
    # An older bench.json (no method, no interval, no stop): no table, the paragraph it always had, no summary.
    old = _saved()
    assert old.bench is not None and stop_summary(old.bench) == ""
    old_md = render_markdown(build_report([old]))
    assert "How each configuration was measured" not in old_md and "Each configuration: 10 warm-up runs" in old_md
    both = _render_html(build_report([_saved(), _adaptive()], kind="merged"))
    assert both.count("How each configuration was measured</summary>") == 1
    assert both.count('<p class="small method">') == 1
