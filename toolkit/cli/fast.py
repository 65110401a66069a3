"""`edgekit predict` without Typer: the command boards run most, started as fast as a bare script.

Typer builds each command's parameter coercion through pydantic and Rich at start-up (~0.1 s on a desktop
core, seconds on a small board), more than LiteRT takes to load and run the model. A command line that
`predict` accepts as it stands is parsed here with argparse instead; anything else (`--help`, a bad option
or value) goes to the Typer app, so users see one help text and one usage-error format. Both parsers are
made from the one declaration of predict's options, `toolkit.cli.specs.PREDICT_OPTIONS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.cli.specs import PREDICT_OPTIONS

if TYPE_CHECKING:
    from toolkit.inputs.predict import Predictions


class _Unusual(Exception):
    """The command line needs Typer (help, an error, an unknown option)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Unusual(message)


def parser() -> argparse.ArgumentParser:
    """argparse for `predict`, from PREDICT_OPTIONS; an option not given is None (its default comes later)."""
    p = _Parser(prog="edgekit predict", add_help=False, allow_abbrev=False)
    p.add_argument("model", type=Path)
    p.add_argument("images", type=Path, nargs="+")
    for spec in PREDICT_OPTIONS:
        if spec.kind is bool:
            p.add_argument(*spec.flags, dest=spec.dest, action="store_true", default=None)
            if spec.negative:
                p.add_argument(spec.negative, dest=spec.dest, action="store_false", default=None)
        else:
            p.add_argument(*spec.flags, dest=spec.dest, type=spec.kind, default=None)
    return p


def parse_predict(argv: Sequence[str]) -> argparse.Namespace | None:
    """The parsed `predict` options (defaults filled in), or None when Typer should handle this command line."""
    if any(a in ("--help", "-h") for a in argv):
        return None
    try:
        args = parser().parse_intermixed_args(list(argv))
    except _Unusual:
        return None
    for spec in PREDICT_OPTIONS:
        value = getattr(args, spec.dest)
        if value is None:
            setattr(args, spec.dest, spec.default)
            continue
        # Out-of-range values and a file where a folder is wanted get Typer's own usage error (exit 2).
        if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
            return None
        if spec.dir_only and value.is_file():
            return None
    return args


def run_predict(
    model: Path,
    images: Sequence[Path],
    *,
    artifact: str | None = None,
    top_k: int = 1,
    json_out: bool = False,
    preprocess: bool = True,
    save_inputs: Path | None = None,
    threads: int | None = None,
    mnist_preprocess: bool = False,
    value_range: str | None = None,
) -> None:
    """The body of `edgekit predict`, for both parsers."""
    from toolkit.api.device import predict

    predictions = predict(
        model,
        images,
        artifact=artifact,
        top_k=top_k,
        preprocess=preprocess,
        threads=threads,
        save_inputs=save_inputs,
        mnist_preprocess=mnist_preprocess,
        value_range=value_range,
    )
    if json_out:
        import json

        sys.stdout.write(json.dumps(predictions.to_dict(), indent=2) + "\n")
        return
    for note in (predictions.note, *predictions.notes):
        if note:
            sys.stderr.write(note + "\n")
    sys.stdout.write(predictions_table(predictions, top_k))


def predictions_table(predictions: Predictions, top_k: int) -> str:
    """One row per image: the most likely digit (class), its probability, the top K and whether it was
    inverted; or a regression model's values."""
    from toolkit.cli.text_table import box_table

    title = f"Predictions by {predictions.artifact or predictions.model.name}"
    plan = predictions.plan
    preprocessing = plan.describe() if plan is not None else "on" if predictions.preprocess else "off (--no-preprocess)"
    caption = f"{predictions.backend}; preprocessing {preprocessing}"
    if predictions.samples is not None:
        caption = f"{predictions.backend}; {predictions.samples.describe()}"
    if predictions.output_kind == "several":
        rows = [[r.image.name, "; ".join(o.text() for o in r.outputs or ())] for r in predictions.results]
        first = "sample" if predictions.samples is not None else "image"
        boxes = any(o.kind == "boxes" for r in predictions.results for o in r.outputs or ())
        return box_table(title, [first, "outputs"], rows, caption=caption + ("; boxes are xyxy" if boxes else ""))
    if predictions.output_kind == "values":
        rows = [[r.image.name, "  ".join(f"{v:.6g}" for v in r.values or ())] for r in predictions.results]
        return box_table(title, ["image", "values"], rows, caption=caption)
    if predictions.output_kind == "logits":
        caption += "; probabilities are the softmax of its logits"
    header = ["image", "digit" if predictions.reference else "class", "confidence"]
    if top_k > 1:
        header.append(f"top {top_k}")
    if predictions.preprocess:
        header.append("inverted")
    rows = []
    for r in predictions.results:
        cells = [r.image.name, r.shown(r.digit), f"{100 * r.confidence:.1f} %"]
        if top_k > 1:
            cells.append("  ".join(f"{r.shown(d)}: {100 * p:.1f} %" for d, p in r.top_k))
        if predictions.preprocess:
            cells.append("yes" if r.image.inverted else "no")
        rows.append(cells)
    return box_table(title, header, rows, caption=caption)


def try_predict(argv: Sequence[str]) -> int | None:
    """Run `edgekit predict ARGV` on the fast path; its exit code, or None to leave it to Typer."""
    args = parse_predict(argv)
    if args is None:
        return None
    from toolkit.cli.interrupts import install_interrupt_handling

    install_interrupt_handling()
    try:
        options = {spec.dest: getattr(args, spec.dest) for spec in PREDICT_OPTIONS}
        run_predict(args.model, args.images, **options)
    except BaseException as exc:  # the same boundary as every Typer command (console.user_errors)
        from toolkit.cli.console import report_error

        code = report_error(exc)
        if code is None:
            raise
        return code
    return 0
