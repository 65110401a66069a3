"""`edgekit diagnose`: per-layer error of each export, a gallery of its disagreements, and why it is slow.

Top-level imports stay light (no TensorFlow): the work is imported inside the command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.cli.console import out, progress_bar, rich_table
from toolkit.cli.options import (
    RUNS_DIR,
    AllowUnverifiedOpt,
    DataOpt,
    DiagnoseLimitOpt,
    QuantizedArtifactsOpt,
    RunDirArg,
    RunsDirOpt,
    resolve_run,
)

if TYPE_CHECKING:
    from toolkit.run.documents import DiagnosedArtifact, DiagnoseDocument

SensitivityOpt = Annotated[
    bool,
    typer.Option(
        "--sensitivity",
        help="Also measure each layer's int8 sensitivity (accuracy with only it in float / only it quantized; "
        "one re-export per layer). Without it, the ranking `export --max-accuracy-drop` saved in mixed.json is "
        "shown.",
    ),
]


def _print(report: DiagnoseDocument) -> None:
    from rich.markup import escape

    from toolkit.diagnosis.render import cause_lines, departure_text, layer_table, ranking_text, summary_table

    for res in report.artifacts:
        if res.outputs:
            _print_outputs(report, res)
            continue
        header, rows = layer_table(res, compact=True)
        out.print(rich_table(f"{res.artifact}: per-layer error vs {report.reference.artifact}", header, rows))
        out.print(f"  first departure: {escape(departure_text(res).replace('**', ''))}", highlight=False)
        for label, text in cause_lines(res):
            out.print(f"  {label}: {escape(text.replace('**', ''))}", highlight=False)
        out.print(f"  most error added by: {escape(ranking_text(res))}", highlight=False)
        gal = res.gallery
        if res.top1_agreement is None:  # regression: no top-1 to disagree on
            err = res.output_error
            out.print(f"  output max |error| {err.max_abs_err:.3g} ({100 * err.max_rel_err:.3g} %)", highlight=False)
            continue
        out.print(
            f"  {gal.count} of {report.images} images disagree with the reference"
            + (f"; gallery: diagnose/{gal.file}" if gal.file else "")
            + (f" (no gallery: {escape(gal.skipped)})" if gal.skipped else ""),
            highlight=False,
        )
    if len(report.artifacts) > 1:
        header, rows = summary_table(report)
        out.print(rich_table("SNR dB / cosine per layer (✗: departs)", header, rows))
    for rec in report.speed:
        verdict = {True: "[bold yellow]slower[/]", False: "not slower", None: "not compared"}[rec.slower]
        out.print(f"[bold]{escape(rec.artifact)}[/] ({verdict}): {escape(rec.reason)}", highlight=False)


def _print_outputs(report: DiagnoseDocument, res: DiagnosedArtifact) -> None:
    """An artifact of a model with several outputs: each output's map, error, departure and cause."""
    from rich.markup import escape

    from toolkit.diagnosis.render import output_views

    for view in output_views(res, report.images):
        header, rows = view.table
        out.print(
            rich_table(f"{res.artifact}, {view.title}: per-layer error vs {report.reference.artifact}", header, rows)
        )
        out.print(f"  error: {escape(view.error)}", highlight=False)
        if view.note:
            out.print(f"  note: {escape(view.note)}", highlight=False)
        out.print(f"  first departure: {escape(view.departure.replace('**', ''))}", highlight=False)
        for label, text in view.causes:
            out.print(f"  {label}: {escape(text.replace('**', ''))}", highlight=False)
        out.print(f"  most error added by: {escape(view.ranking)}", highlight=False)


def diagnose(
    run_dir: RunDirArg = None,
    runs_dir: RunsDirOpt = RUNS_DIR,
    artifact: QuantizedArtifactsOpt = None,
    limit: DiagnoseLimitOpt = 500,
    data: DataOpt = None,
    allow_unverified: AllowUnverifiedOpt = False,
    sensitivity: SensitivityOpt = False,
) -> None:
    """Per-layer error of each export vs Keras, a gallery of its mistakes, and why quantized ones are slow.

    Names the first layer where an export departs from the Keras reference (by its tensor, or by its channels
    when one outlier channel hides the loss), says why and what to do, shows the test images whose
    top-1 differs, and explains from op profiles why an int8/int16x8 artifact is slower than its fp32
    sibling. Writes diagnose/diagnose.json, diagnose/diagnose.md and diagnose/gallery_<artifact>.png in the run
    directory, and refreshes the run's report if it has one. Informational: exits 0 whenever it ran.
    Example: [b]edgekit diagnose runs/latest -a tflite-int8 -a onnx-int8 --limit 500[/]
    """
    from rich.markup import escape

    import toolkit
    from toolkit.cli.show import _load_data
    from toolkit.diagnosis.step import DIAGNOSE_DIR, DIAGNOSE_MD
    from toolkit.run import layout as A

    run = resolve_run(run_dir, runs_dir)
    dataset = _load_data(data, allow_unverified, run)
    had_report = (run / A.REPORT_MD).exists()
    with progress_bar() as progress:
        report = toolkit.diagnose(
            run, artifacts=artifact, limit=limit, data=dataset, sensitivity=sensitivity, progress=progress
        )
    _print(report)
    out.print(f"Wrote {escape(str(run / DIAGNOSE_DIR / DIAGNOSE_MD))}", highlight=False)
    if had_report:
        out.print(f"Updated {escape(str(run / A.REPORT_MD))} and {escape(str(run / A.REPORT_HTML))}", highlight=False)
