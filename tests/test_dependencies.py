"""The board-side packages and the CLI's help never import TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

LIGHT_IMPORTS = [
    "runtimes",
    "runtimes.spec",
    "runtimes.tflite_runner",
    "runtimes.ort_runner",
    "runtimes.keras_runner",
    "benchmarks",
    "benchmarks.latency",
    "benchmarks.harness",
    "benchmarks.worker",
    "benchmarks.harness_check",
    "toolkit.cli",
    "toolkit.data.mnist",
    "toolkit.workflow.pipeline",
    "exporters.base",
]


@pytest.mark.parametrize("module", LIGHT_IMPORTS)
def test_import_does_not_load_tensorflow(module: str) -> None:
    code = f"import sys, {module}; print([m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_help_does_not_load_tensorflow() -> None:
    code = (
        "import sys\n"
        "from toolkit.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TF' if 'tensorflow' in sys.modules else 'NO-TF', file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert "pipeline" in proc.stdout
    assert proc.stderr.strip().endswith("NO-TF")


def test_runtimes_and_benchmarks_do_not_import_toolkit_or_exporters() -> None:
    code = (
        "import sys, runtimes, runtimes.registry, benchmarks.harness, benchmarks.worker, benchmarks.environment\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('toolkit', 'exporters')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
