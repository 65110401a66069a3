"""`edgekit diagnose`: per-layer error of each export, a gallery of its disagreements, and why it is slow.

Top-level imports stay light (no TensorFlow): the work is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.cli.console import out, progress_bar, rich_table, user_errors

if TYPE_CHECKING:
    from toolkit.run.documents import DiagnoseDocument

RunDirArg = Annotated[Path | None, typer.Argument(help="Run directory (default: runs/latest).", show_default=False)]
ArtifactOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--artifact",
        "-a",
        help="Only this artifact (e.g. tflite-int8); repeat for several (default: the quantized ones, "
        "or every export if none is quantized).",
    ),
]
LimitOpt = Annotated[int, typer.Option("--limit", "-n", min=1, help="Use the first N test images.")]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Test data (default: the run's own, or shipped MNIST): an MNIST source, or for a run made with --model "
        "an .npz or a folder of images per class.",
    ),
]
AllowUnverifiedOpt = Annotated[
    bool, typer.Option("--allow-unverified", help="Accept data whose checksums differ from MNIST's.")
]


SensitivityOpt = Annotated[
    bool,
    typer.Option(
        "--sensitivity",
        help="Also measure each layer's int8 sensitivity (accuracy with only it in float / only it quantized; "
        "one re-export per layer). Without it, the ranking `export --max-drop` saved in mixed.json is shown.",
    ),
]


def _print(report: DiagnoseDocument) -> None:
    from rich.markup import escape

    from toolkit.diagnosis.render import cause_lines, departure_text, layer_table, ranking_text, summary_table

    for res in report.artifacts:
        header, rows = layer_table(res, compact=True)
        out.print(rich_table(f"{res.artifact}: per-layer error vs keras-fp32", header, rows))
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


def register(app: typer.Typer) -> None:
    @app.command()
    @user_errors
    def diagnose(
        run_dir: RunDirArg = None,
        artifact: ArtifactOpt = None,
        limit: LimitOpt = 500,
        data: DataOpt = None,
        allow_unverified: AllowUnverifiedOpt = False,
        sensitivity: SensitivityOpt = False,
    ) -> None:
        """Per-layer error of each export vs Keras, a gallery of its mistakes, and why quantized ones are slow.

        Names the first layer where an export departs from the Keras reference (by its tensor, or by its channels
        when one outlier channel hides the loss), says why and what to do, shows the test images whose
        top-1 differs, and explains from op profiles why an int8/int16x8 artifact is slower than its fp32
        sibling. Writes diagnose/diagnose.json, diagnose/diagnose.md and diagnose/gallery_<artifact>.png in the run
        directory. Informational: exits 0 whenever it ran.
        Example: [b]edgekit diagnose runs/latest -a tflite-int8 -a onnx-int8 --limit 500[/]
        """
        from rich.markup import escape

        from toolkit.cli.show import _load_data
        from toolkit.diagnosis.step import DIAGNOSE_DIR, DIAGNOSE_MD, diagnose_step
        from toolkit.run import layout as A

        run = A.resolve_run_dir(run_dir)
        dataset = _load_data(data, allow_unverified, run)
        from toolkit.run.lock import run_lock
        from toolkit.run.pipeline import report_step

        with run_lock(run), progress_bar() as progress:
            report = diagnose_step(
                run, artifact_names=artifact, limit=limit, data=dataset, sensitivity=sensitivity, progress=progress
            )
            # The run's report shows the diagnosis (top layers, gallery); refresh it if it exists.
            refreshed = report_step(run) if (run / A.REPORT_MD).exists() else None
        _print(report)
        out.print(f"Wrote {escape(str(run / DIAGNOSE_DIR / DIAGNOSE_MD))}", highlight=False)
        if refreshed:
            out.print(f"Updated {escape(str(refreshed[0]))} and {escape(str(refreshed[1]))}", highlight=False)
