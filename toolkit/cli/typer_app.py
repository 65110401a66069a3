"""The Typer app: global options, and every command module registered on it."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.console import out
from toolkit.version import __version__

app = typer.Typer(
    name="edgekit",
    help="Train the reference MNIST CNN, quantize and export it to TFLite and ONNX, check accuracy parity "
    "and measure latency across Keras, LiteRT and ONNX Runtime.",
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


def _register_commands() -> None:
    """Add every command to `app`, in the order `--help` lists them (imports stay light: no TensorFlow)."""
    from toolkit.cli import bench, device, diagnose, mcu, run

    for command in (run.train, run.export, run.parity, bench.bench, bench.gate, run.report, run.pipeline):
        app.command()(command)
    device.register(app)
    diagnose.register(app)
    mcu.register(app)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    from toolkit.cli.interrupts import install_interrupt_handling

    install_interrupt_handling()
    app()
