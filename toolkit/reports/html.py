"""report.html: the `Report` view model through Jinja2 templates (autoescaped), charts inlined as SVG.

The page is one self-contained file: the CSS and the small self-check script (which records, after load,
how many charts drew marks and any JavaScript error, for the headless-browser test) are inlined from
`templates/`, and the charts are matplotlib SVG. Nothing refers to a URL.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from toolkit.reports import fmt
from toolkit.reports.model import Report, SideBySide


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("toolkit.reports", "templates"),
        autoescape=True,  # every string from the JSON documents is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ms=fmt.ms,
        ms_fine=fmt.ms_fine,
        ms_sig=fmt.ms_sig,
        interval=fmt.interval,
        dur=fmt.dur,
        size=fmt.size,
        pct=fmt.pct,
        fixed=fmt.fixed,
        integer=fmt.integer,
        plain=fmt.plain,
        threads=fmt.threads_text,
        runtime=fmt.runtime_name,
        sci=lambda x: fmt.DASH if x is None else f"{x:.2e}",
        signed=lambda x: fmt.DASH if x is None else f"{x:+.2f}",
        mcu_emulated=_mcu_emulated,
    )
    return env


def _mcu_emulated(runs: Any) -> tuple[list[str], list[list[str]]]:
    from toolkit.reports.mcu import emulated_facts

    return emulated_facts(tuple(runs))


def _side(s: SideBySide | None) -> tuple[list[tuple[str, str]], list[list[str]]]:
    if s is None:
        return [], []
    header = [(f"{name} ({label})", "num") for name, label in s.columns]
    return header, [[name, *(fmt.ms_fine(v) for v in cells)] for name, cells in s.rows]


def _subtitle(report: Report) -> str:
    names = ", ".join(r.ref.name for r in report.runs)
    sub = f"{len(report.runs)} run{'s' if len(report.runs) != 1 else ''}: {names}"
    dates = sorted({r.created_utc for r in report.runs if r.created_utc})
    if dates:
        sub += " · benchmarked " + ", ".join(d.replace("T", " ").replace("Z", " UTC") for d in dates)
    return sub


def render(report: Report) -> str:
    """The HTML document of a report (see `toolkit.reports.render_html`)."""
    from toolkit.reports.charts import render_charts

    runs = report.runs
    charts = render_charts(report) if runs else {}
    picks = {r.recommendation.configuration for r in runs if r.recommendation}
    benched = [r for r in runs if r.latency]
    side_header, side_rows = _side(report.side_by_side)
    remote_header, remote_rows = _side(report.remote.latency if report.remote else None)
    nav = [
        ("recommendation", "Recommendation"),
        ("machines", "Machines"),
        ("charts", "Charts"),
        ("training", "Training"),
        ("artifacts", "Artifacts"),
        ("parity", "Parity"),
    ]
    if report.models:  # the user's own model: no training here, its model and data instead
        training = [("training", "Training")] if report.training else []
        nav[2:4] = [("model", "Model and data"), ("charts", "Charts"), *training]
    if any(r.diagnosis for r in runs):
        nav.append(("diagnosis", "Diagnosis"))
    if any(r.cpus for r in runs):
        nav.append(("cpus", "CPU classes"))
    if any(r.mcu for r in runs):
        nav.append(("mcu", "Microcontrollers"))
    nav.append(("latency", "Latency"))
    if report.remote and report.remote.boards:
        nav.append(("boards", "Boards"))
    if report.remote:
        nav.append(("remote", "Remote boards"))
    return str(
        _environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            charts=charts,
            subtitle=_subtitle(report),
            nav=nav,
            same_pick=next(iter(picks))
            if len(benched) > 1 and len(picks) == 1 and all(r.recommendation for r in benched)
            else "",
            no_parity=[r.ref.name for r in runs if r.latency and not r.parity],
            no_parity_docs=[r.ref.name for r in runs if not r.parity and (r.latency or r.artifacts)],
            has_diagnosis=any(r.diagnosis for r in runs),
            has_mcu=any(r.mcu for r in runs),
            has_cpus=any(r.cpus for r in runs),
            has_mixed=any(r.mixed for r in runs),
            several=len(benched) > 1,
            side_header=side_header,
            side_rows=side_rows,
            remote_header=remote_header,
            remote_rows=remote_rows,
        )
    )
