"""The command line of a TFLite-only board install: `edgekit verify BUNDLE` without Typer or pydantic.

32-bit ARM boards (armv7l) have no ai-edge-litert, onnxruntime or Pillow wheels. There edgekit installs
TFLite-only (`toolkit.remote.lite`): tflite-runtime 2.13 with numpy<2 on CPython 3.9/3.10, the edgekit
wheel without its dependencies, and Rich. Typer is not installed (on Python 3.9 it could not read the
commands' `X | None` annotations anyway), so `toolkit.cli.main` sends every command line here. The output
and exit codes are those of the full `edgekit verify`: 0 all match, 1 a user error (one line), 3 a mismatch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

USAGE = "edgekit verify BUNDLE [--out FILE]"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgekit",
        description="edgekit, TFLite-only board install (32-bit ARM: tflite-runtime, no ONNX Runtime). "
        "It checks bundles made on the desktop by `edgekit bundle`; the full command line needs a 64-bit OS.",
    )
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="verify")
    v = sub.add_parser(
        "verify",
        help="check a bundle here: sha256 of every file, then each TFLite artifact's outputs against the desktop's",
        description="Check a bundle here: sha256 of every file, then each TFLite artifact's outputs against the "
        "desktop's (ONNX artifacts are skipped: onnxruntime has no 32-bit ARM wheels). Exit codes: 0 all match; "
        "1 bad or tampered bundle (one line); 3 an artifact's outputs differ beyond its tolerance.",
    )
    v.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle folder or .tar.gz made by `edgekit bundle`")
    v.add_argument(
        "--out",
        "-o",
        type=Path,
        default=None,
        metavar="FILE",
        help="where to write verify.json (default: inside the folder, or <name>.verify.json beside a .tar.gz)",
    )
    return p


def main(argv: Sequence[str]) -> int:
    """Run one command line of the board install; its exit code."""
    from toolkit.version import __version__

    args = list(argv)
    if args and args[0] not in ("verify", "--version", "-h", "--help"):
        print(
            f"error: `edgekit {args[0]}` is not in this TFLite-only board install (32-bit ARM); it runs only "
            f"`{USAGE}`. Run other commands on the desktop or on a 64-bit OS.",
            file=sys.stderr,
        )
        return 1
    ns = parser().parse_args(args)
    if ns.version:
        print(f"edgekit {__version__} (TFLite-only board install)")
        return 0
    if ns.command is None:
        parser().print_help()
        return 0
    return verify(ns.bundle, ns.out)


def verify(bundle: Path, out: Path | None) -> int:
    from runtimes.files import write_json_atomic
    from toolkit.bundles.format import default_verify_path
    from toolkit.bundles.verify import verify_here
    from toolkit.cli.console import report_error
    from toolkit.cli.present import print_verify

    try:
        report = verify_here(bundle)
        target = out or default_verify_path(bundle)
        write_json_atomic(target, report)
    except BaseException as exc:  # the same boundary as the full command line (console.user_errors)
        code = report_error(exc)
        if code is None:
            raise
        return code
    return 0 if print_verify(report, bundle, target) else 3
