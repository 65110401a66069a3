"""CLI commands kept in their own modules. Each module has `register(app)`; imports stay light."""

from __future__ import annotations

import importlib

import typer

# Modules listed here are imported at CLI start-up: keep their top-level imports light (no TF).
MODULES: tuple[str, ...] = ("device", "diagnose")


def register_all(app: typer.Typer) -> None:
    for name in MODULES:
        importlib.import_module(f"toolkit.commands.{name}").register(app)
