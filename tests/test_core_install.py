"""The core install (no TensorFlow) in a fresh venv: predict, verify and bench work on a desktop-made bundle.

Slow (~40 s: wheel build, venv, pip install from pip's cache); selected with --run-slow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.test_images import photo_style

SOURCES = ("pyproject.toml", "README.md", "toolkit", "exporters", "runtimes", "benchmarks")


def _run(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh Python 3.11 venv with edgekit's wheel and its core dependencies only."""
    tmp = tmp_path_factory.mktemp("core")
    src = tmp / "src"  # build from a copy, so the build leaves nothing in the repository
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, src / name)
    # 1. Build the wheel.
    proc = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "wheels", src, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp / "wheels").glob("edgekit-*.whl")
    # 2. A fresh venv, and the wheel with its core dependencies.
    python = shutil.which("python3.11") or sys.executable
    venv = tmp / "venv"
    proc = _run(python, "-m", "venv", venv, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    proc = _run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return venv


@pytest.fixture(scope="module")
def desktop_bundles(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A bundle folder and .tar.gz made on the desktop, with a Keras artifact that a board cannot run."""
    from toolkit.bundles.build import build_bundle

    out = tmp_path_factory.mktemp("desktop")
    names = ["keras-fp32", "tflite-fp32", "tflite-int8", "onnx-int8"]
    folder, _ = build_bundle(small_run, out / "bundle", artifact_names=names, golden=128)
    archive, _ = build_bundle(small_run, out / "bundle.tar.gz", artifact_names=names, golden=128)
    return folder, archive


@pytest.mark.slow
def test_core_install_runs_predict_verify_and_bench(
    core_venv: Path, desktop_bundles: tuple[Path, Path], tmp_path: Path, mnist
) -> None:
    folder, archive = desktop_bundles
    board = tmp_path / "board"  # "copied to the device"
    board.mkdir()
    shutil.copytree(folder, board / "bundle")
    shutil.copy2(archive, board / "bundle.tar.gz")
    edgekit = core_venv / "bin" / "edgekit"

    # 1. No TensorFlow in this install.
    proc = _run(core_venv / "bin" / "python", "-c", "import tensorflow", cwd=board)
    assert proc.returncode != 0 and "No module named 'tensorflow'" in proc.stderr
    proc = _run(edgekit, "--help", cwd=board)
    assert proc.returncode == 0 and all(c in proc.stdout for c in ("predict", "bundle", "verify", "bench"))

    # 2. predict: a photo-style PNG with a bundled .tflite, and via the archive with --artifact.
    label = int(mnist.y_test[0])
    image = board / "digit.png"
    photo_style(mnist.x_test[0], np.random.default_rng(3), size=(120, 90)).save(image)
    started = time.perf_counter()
    proc = _run(edgekit, "predict", board / "bundle" / "exports" / "model_fp32.tflite", image, cwd=board)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    assert "Predictions by model_fp32.tflite" in proc.stdout and "digit.png" in proc.stdout
    print(f"core-install predict process: {elapsed:.2f} s")  # information only (no timing assertions)
    proc = _run(edgekit, "predict", board / "bundle.tar.gz", image, "-a", "tflite-int8", "--json", cwd=board)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert result["digit"] == label and result["inverted"]

    # 3. verify: every sha256, then the runnable artifacts against the desktop's outputs; Keras is skipped.
    proc = _run(edgekit, "verify", board / "bundle.tar.gz", cwd=board)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped keras-fp32" in proc.stderr and "TensorFlow is not installed" in proc.stderr
    report = json.loads((board / "bundle.verify.json").read_text())
    assert report["passed"] and [s["artifact"] for s in report["skipped"]] == ["keras-fp32"]
    assert [r["artifact"] for r in report["results"]] == ["tflite-fp32", "tflite-int8", "onnx-int8"]
    assert report["environment"]["runtime_versions"].get("keras") is None  # the device's own environment
    proc = _run(edgekit, "verify", board / "bundle", cwd=board)
    assert proc.returncode == 0, proc.stderr

    # 4. bench on the bundle folder (it doubles as a run directory); Keras is skipped there too.
    proc = _run(edgekit, "bench", board / "bundle", "-b", "1", "-t", "1", "--quick", cwd=board)
    assert proc.returncode == 0, proc.stderr
    assert "skipped keras-fp32" in proc.stderr
    bench = json.loads((board / "bundle" / "bench.json").read_text())
    assert {r["artifact"] for r in bench["results"]} == {"tflite-fp32", "tflite-int8", "onnx-int8"}
