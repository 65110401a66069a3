"""The Typer app: global options, and every command registered on it, in one place and one way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
import typer.core

from toolkit.cli.console import out, user_errors
from toolkit.version import __version__


class _FlagsShowNoType:
    """Help without a `<bool>` type beside flags (`--help`, `--quick`): a flag takes no value."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""  # Typer shows the metavar, when set, instead of the type
        super().format_help(ctx, formatter)  # type: ignore[misc]


class Command(_FlagsShowNoType, typer.core.TyperCommand):
    """Every edgekit command."""


class Group(_FlagsShowNoType, typer.core.TyperGroup):
    """`edgekit` itself."""


app = typer.Typer(
    name="edgekit",
    help="Train the reference MNIST CNN, quantize and export it to TFLite and ONNX, check accuracy parity "
    "and measure latency across Keras, LiteRT and ONNX Runtime.",
    cls=Group,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def version_callback(value: bool) -> None:
    if value:
        out.print(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """edgekit: from a Keras CNN to checked, measured TFLite and ONNX artifacts."""


def commands() -> list[Callable[..., None]]:
    """Every command function, in the order `--help` lists them (their modules import no TensorFlow)."""
    from toolkit.cli import bench, device, diagnose, mcu, run

    return [
        run.train,
        run.export,
        run.parity,
        bench.bench,
        bench.gate,
        run.report,
        run.pipeline,
        device.predict,
        device.bundle,
        device.verify,
        diagnose.diagnose,
        mcu.mcu,
    ]


def _with_tolerances(fn: Callable[..., None]) -> Callable[..., None]:
    """Help texts quote the tolerances from toolkit.tolerances ({PARITY_HELP}, {MACHINE_HELP}), never copies."""
    from toolkit import tolerances

    if fn.__doc__:
        fn.__doc__ = fn.__doc__.replace("{PARITY_HELP}", tolerances.PARITY_HELP).replace(
            "{MACHINE_HELP}", tolerances.MACHINE_HELP
        )
    return fn


for _command in commands():
    # The command's name is its function's; user errors print one line (console.user_errors).
    app.command(cls=Command)(user_errors(_with_tolerances(_command)))


def main() -> None:
    """Console-script entry point."""
    from toolkit.cli.interrupts import install_interrupt_handling

    install_interrupt_handling()
    app()
