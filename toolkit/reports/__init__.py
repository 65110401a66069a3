"""Reports: report.md and report.html of a run (with its remote boards) or of several runs merged.

What lives here:
- `load.py`: `load_run` reads a run directory or a lone bench.json into `RunDocs`: the typed documents
  (`toolkit.run.documents`), loaded through `toolkit.run.layout.Run`.
- `rules.py`: the one `config_label`, `machine_label` and `recommend` every view uses.
- `model.py`, `build.py`, `latency.py`, `mcu.py`: the view model (`Report`) computed once from the documents
  (`mcu.py`: the Microcontrollers section from mcu.json, and its Markdown; `user_model.py`: the "Model and data"
  section of a run made with `--model`, from model.json and dataset.json).
- `markdown.py`: report.md (and the tables the CLI prints); `html.py` + `templates/`: report.html
  (Jinja2, autoescaped); `charts.py`: its three charts (matplotlib's SVG backend, deterministic).
- `write.py`: `write_report` (one run directory) and `merge_reports` (several runs side by side).

May import: `runtimes`, `benchmarks`, `runtimes.files` (atomic writes), `toolkit.run.layout`,
`toolkit.run.documents`, `toolkit.errors`, `toolkit.model.run_source` (model.json and dataset.json of a
`--model` run, inside the loader) and `toolkit.remote.hosts` (fetched board results), Jinja2 and matplotlib
(inside the functions that render).
Never imports the CLI, TensorFlow or Rich.
"""

from toolkit.reports.build import build_report
from toolkit.reports.load import RunDocs, load_run
from toolkit.reports.markdown import (
    cold_start_table,
    latency_pivot,
    parity_rows,
    parity_table,
    pivot_table,
    render_markdown,
    rows_table,
)
from toolkit.reports.model import Report
from toolkit.reports.rules import Recommendation, config_label, machine_label, recommend
from toolkit.reports.write import merge_reports, render_html, write_report

__all__ = [
    "Recommendation",
    "Report",
    "RunDocs",
    "build_report",
    "cold_start_table",
    "config_label",
    "latency_pivot",
    "load_run",
    "machine_label",
    "merge_reports",
    "parity_rows",
    "parity_table",
    "pivot_table",
    "recommend",
    "render_html",
    "render_markdown",
    "rows_table",
    "write_report",
]
