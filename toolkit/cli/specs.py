"""`predict`'s options declared once, as plain data both of its parsers read (no Typer, no Rich).

`predict` is what boards run most, so `toolkit.cli.fast` parses a plain `predict` command line with argparse
instead of Typer. Both parsers are made from `PREDICT_OPTIONS`: `fast.parser()` adds each spec to argparse,
and the Typer command (`toolkit.cli.device.predict`) takes each spec through `toolkit.cli.options.typer_option`.
`ARTIFACT` and `THREADS` are also the `--artifact` and `--threads` of the other commands, so each name keeps
one help text everywhere (tests/test_cli_options.py checks that).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class OptionSpec:
    """One option: its flags, help text, the type of one value, and its limits.

    Attributes:
        dest: the command function's parameter that receives the value.
        flags: the long flag first, then the short one, if any.
        kind: the type of one value (`str`, `int`, `Path`), or `bool` for a flag.
        negative: a flag's `--no-...` form, if it has one.
        dir_only: a folder is expected (a file there is a usage error).
    """

    dest: str
    flags: tuple[str, ...]
    help: str
    kind: type = str
    default: Any = None
    negative: str | None = None
    min: int | None = None
    max: int | None = None
    metavar: str | None = None
    dir_only: bool = False
    show_default: str | None = None


ARTIFACT = OptionSpec("artifact", ("--artifact", "-a"), "Artifact by its name in manifest.json, e.g. tflite-int8.")
THREADS = OptionSpec("threads", ("--threads", "-t"), "Threads the runtime may use.", kind=int, min=1)

PREDICT_OPTIONS: tuple[OptionSpec, ...] = (
    replace(ARTIFACT, show_default="tflite-fp32 of a run directory or bundle, if present"),
    OptionSpec(
        "top_k", ("--top-k", "-k"), "Show the K most likely classes per image.", kind=int, default=1, min=1, max=10
    ),
    OptionSpec(
        "json_out", ("--json",), "Print machine-readable JSON to stdout (and nothing else).", kind=bool, default=False
    ),
    OptionSpec(
        "preprocess",
        ("--preprocess",),
        "For the reference digit model: make images look like MNIST: invert dark-on-light, crop to the digit, "
        "fit 20×20, centre by mass. --no-preprocess only converts to grey and resizes to 28×28. Other models "
        "always get their input's size and colour (bilinear resize).",
        kind=bool,
        default=True,
        negative="--no-preprocess",
    ),
    OptionSpec(
        "mnist_preprocess",
        ("--mnist-preprocess",),
        "Use the MNIST digit preprocessing for a model that is not the reference one (28×28 grey input).",
        kind=bool,
        default=False,
    ),
    OptionSpec(
        "value_range",
        ("--value-range",),
        "Map pixels 0..255 linearly onto LO,HI, e.g. 0,1 or -1,1 (default: the range in the run's manifest or "
        "bundle; else the int8 input's range; else 0..255, as Keras image_dataset_from_directory).",
        metavar="LO,HI",
    ),
    OptionSpec(
        "save_inputs",
        ("--save-inputs",),
        "Also write each model input as a PNG into this folder (to see what the model saw).",
        kind=Path,
        dir_only=True,
    ),
    replace(THREADS, show_default="the runtime's"),
)
