"""Writing report.md and report.html: for one run directory, or for several runs merged side by side."""

from __future__ import annotations

from pathlib import Path

from toolkit.reports.build import build_report
from toolkit.reports.load import RunDocs, distinct_names, load_run
from toolkit.reports.markdown import render_markdown
from toolkit.reports.model import Report


def render_html(report: Report) -> str:
    """report.html for a `Report`: one self-contained file (inline CSS and SVG charts, no external resource)."""
    from toolkit.reports.html import render

    return render(report)


def write_report(run_dir: Path) -> tuple[Path, Path]:
    """Write `run_dir`/report.md and report.html from whichever JSON files the run holds.

    Boards measured with `bench --remote` / `verify --remote` (`run_dir/remote/<host>/`) join the report:
    report.md gets a "Remote boards" section, report.html shows each board as one more machine.

    Args:
        run_dir: the run directory.

    Returns:
        The paths of report.md and report.html.

    Raises:
        RunDirError: the directory does not exist or holds no edgekit JSON file.
    """
    from runtimes.files import write_text_atomic
    from toolkit.remote.hosts import remote_results
    from toolkit.run import layout as A

    run = load_run(run_dir)
    run.remote = remote_results(run_dir)
    boards = [RunDocs(name=host, bench=docs.bench) for host, docs in run.remote.items() if docs.bench is not None]
    runs = [run, *boards]
    distinct_names(runs)
    report = build_report(runs, kind="run")
    md, html = run_dir / A.REPORT_MD, run_dir / A.REPORT_HTML
    write_text_atomic(md, render_markdown(report))
    write_text_atomic(html, render_html(report))
    return md, html


def merge_reports(inputs: list[Path], out_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html for several runs (or bench.json files) side by side into `out_dir`.

    Args:
        inputs: run directories or bench.json files, one per machine.
        out_dir: where the two files go (created if missing).

    Returns:
        The paths of report.md and report.html.

    Raises:
        ToolkitError: no input, or an input that is not a run directory or a bench.json.
    """
    from runtimes.files import write_text_atomic
    from toolkit.errors import ToolkitError
    from toolkit.run import layout as A

    if not inputs:
        raise ToolkitError("pass at least one run directory or bench.json to merge.")
    runs = [load_run(p) for p in inputs]
    distinct_names(runs)
    report = build_report(runs, kind="merged")
    out_dir.mkdir(parents=True, exist_ok=True)
    md, html = out_dir / A.REPORT_MD, out_dir / A.REPORT_HTML
    write_text_atomic(md, render_markdown(report))
    write_text_atomic(html, render_html(report))
    return md, html
