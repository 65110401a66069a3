"""Interrupted runs: a lock keeps writers apart, --resume finishes a run, kills never leave partial files."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtimes.files import sha256_file
from tests.conftest import REPO, ctrl_c_as_from_a_terminal
from toolkit.run.lock import run_lock

QUICK_PIPELINE = [
    "--epochs",
    "1",
    "--train-limit",
    "3000",
    "--calibration-size",
    "50",
    "--quick",
    "-b",
    "1",
    "-t",
    "1",
    "--no-peak",
]


def test_second_writer_is_refused(edgekit, run_copy: Path) -> None:
    with run_lock(run_copy):
        proc = edgekit("parity", str(run_copy), "--limit", "100")
    assert proc.returncode == 1 and "in use by another edgekit process" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert edgekit("parity", str(run_copy), "--limit", "100").returncode in (0, 3)  # lock released


def test_two_pipelines_in_parallel_both_finish(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "toolkit.cli", "pipeline", "--runs-dir", str(tmp_path / "runs"), *QUICK_PIPELINE]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode in (0, 3) for p in procs] == [True, True], results
    runs = [d for d in (tmp_path / "runs").iterdir() if d.is_dir() and not d.is_symlink()]
    assert len(runs) == 2 and all((d / "report.md").is_file() for d in runs)


def test_resume_redoes_only_what_is_missing_or_tampered(edgekit, tmp_path: Path) -> None:
    first = edgekit("pipeline", "--runs-dir", str(tmp_path / "runs"), *QUICK_PIPELINE)
    assert first.returncode in (0, 3), first.stderr
    run = (tmp_path / "runs" / "latest").resolve()
    model_sha = sha256_file(run / "model.keras")
    (run / "bench.json").unlink()
    onnx = run / "exports" / "model_int8.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-10] + b"0123456789")  # tampered: same size, wrong sha256
    again = edgekit("pipeline", "--resume", str(run))
    assert again.returncode in (0, 3), again.stderr
    assert "Kept from the interrupted run: train" in again.stdout
    assert sha256_file(run / "model.keras") == model_sha  # not retrained
    manifest = json.loads((run / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["name"] == "onnx-int8")
    assert sha256_file(onnx) == entry["sha256"]  # re-exported
    assert (run / "bench.json").is_file() and (run / "report.html").is_file()


def test_resuming_through_latest_keeps_it_pointing_at_the_run(tmp_path: Path) -> None:
    from toolkit.run.layout import point_latest

    run = tmp_path / "20261205-110523"
    run.mkdir()
    point_latest(run)
    point_latest(tmp_path / "latest")  # what `pipeline --resume runs/latest` passes on
    assert os.readlink(tmp_path / "latest") == run.name and (tmp_path / "latest").resolve() == run


def test_resume_needs_a_pipeline_run(edgekit, small_run: Path) -> None:
    proc = edgekit("pipeline", "--resume", str(small_run))
    assert proc.returncode == 1 and "no run.json" in proc.stderr


def check_no_partial_files(run: Path) -> None:
    """Every file under its final name is complete: JSON parses, models load, manifest entries match."""
    from runtimes.registry import make_runner

    for path in run.rglob("*"):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix in (".tflite", ".onnx"):
            with make_runner(path):
                pass
        elif path.suffix == ".keras":
            import zipfile

            assert zipfile.ZipFile(path).testzip() is None
    if (run / "manifest.json").exists():
        for a in json.loads((run / "manifest.json").read_text())["artifacts"]:
            assert sha256_file(run / a["path"]) == a["sha256"], a["path"]


@pytest.mark.slow
def test_random_kills_then_resume(tmp_path: Path) -> None:
    """SIGINT and SIGKILL at random moments, 10 times; --resume then completes the run."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-m", "toolkit.cli", "pipeline"]
    rng = random.Random(7)
    run: Path | None = None
    for i in range(10):
        cmd = base + (["--resume", str(run)] if run else ["--runs-dir", str(tmp_path / "runs"), *QUICK_PIPELINE])
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=ctrl_c_as_from_a_terminal,
        )
        time.sleep(rng.uniform(2.0, 12.0))
        proc.send_signal(signal.SIGINT if i % 2 == 0 else signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
        assert "Traceback" not in stderr, stderr
        if run is None:
            run = (tmp_path / "runs" / "latest").resolve()
        check_no_partial_files(run)
    assert run is not None
    final = subprocess.run([*base, "--resume", str(run)], env=env, capture_output=True, text=True, timeout=900)
    assert final.returncode in (0, 3), final.stderr
    check_no_partial_files(run)
    for name in ("model.keras", "manifest.json", "parity.json", "bench.json", "report.md", "report.html"):
        assert (run / name).is_file(), name
    assert not [p for p in run.rglob(".*") if ".partial" in p.name]


def test_an_error_a_library_raises_after_ctrl_c_is_reported_as_the_interruption(tmp_path: Path) -> None:
    """TensorFlow can turn Ctrl-C mid-trace into a TypeError: the boundary still says "interrupted", exit 130."""
    script = tmp_path / "cmd.py"
    script.write_text(
        "import signal\n"
        "import typer\n"
        "from toolkit.cli.console import user_errors\n"
        "from toolkit.cli.interrupts import install_interrupt_handling\n"
        "app = typer.Typer()\n"
        "@app.command()\n"
        "@user_errors\n"
        "def run(convert: bool = True) -> None:\n"
        "    try:\n"
        "        signal.raise_signal(signal.SIGINT)\n"
        "    except KeyboardInterrupt:\n"
        "        if convert:\n"
        "            raise TypeError('Failed to convert elements of (None, 4608) to Tensor') from None\n"
        "        raise\n"
        "install_interrupt_handling()\n"
        "app()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in ([], ["--no-convert"]):
        proc = subprocess.run(
            [sys.executable, str(script), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=ctrl_c_as_from_a_terminal,
        )
        assert proc.returncode == 130, proc.stderr
        assert "Traceback" not in proc.stderr and "interrupted" in proc.stderr, proc.stderr
    # Without Ctrl-C the same error is a bug and keeps its traceback.
    bug = tmp_path / "bug.py"
    bug.write_text(script.read_text().replace("signal.raise_signal(signal.SIGINT)", "raise KeyboardInterrupt"))
    bug.write_text(bug.read_text().replace("install_interrupt_handling()\n", ""))
    proc = subprocess.run([sys.executable, str(bug)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 130 and "TypeError" in proc.stderr
