"""The Python API: the README's example runs as written, results are typed, progress is a plain callback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def readme_api_example() -> str:
    """The Python block under the README's "Python API" heading."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "README.md has no ```python block under '## Python API'"
    return match.group(1)


def test_readme_api_example_runs(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    script = tmp_path / "example.py"
    script.write_text(readme_api_example())
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The example prints real figures: accuracy, each artifact, parity, latency.
    assert "Keras: " in proc.stdout and "tflite-int8" in proc.stdout and "passed: " in proc.stdout, proc.stdout
    assert "µs I/O conversion" in proc.stdout, proc.stdout
    assert (tmp_path / "runs" / "latest" / "report.html").is_file()


def test_api_results_are_typed_and_progress_is_a_plain_callback(run_copy: Path, mnist) -> None:
    import toolkit
    from toolkit.progress import ProgressEvent
    from toolkit.run.documents import BenchDocument, ParityDocument
    from toolkit.run.layout import Run

    events: list[ProgressEvent] = []
    parity = toolkit.parity(run_copy, artifacts=["tflite-fp32"], limit=200, data=mnist, progress=events.append)
    assert isinstance(parity, ParityDocument) and parity == Run(run_copy).load(ParityDocument)  # what it wrote
    assert [r.artifact for r in parity.results] == ["keras-fp32", "tflite-fp32"]
    assert parity.results[1].passed and parity.passed
    assert events and all(isinstance(e, ProgressEvent) for e in events)
    assert events[-1].completed == events[-1].total == 2  # the reference and one artifact

    settings = toolkit.BenchSettings(
        batch_sizes=(1,),
        threads=(1,),
        min_runs=16,
        min_seconds=0.0,
        warmup_runs=1,
        warmup_seconds=0.0,
        measure_peak=False,
    )
    bench = toolkit.bench(run_copy, settings=settings, artifacts=["tflite-int8"], data=mnist)
    assert isinstance(bench, BenchDocument)
    (row,) = bench.results
    assert row.artifact == "tflite-int8" and row.batch_size == 1 and row.runs >= 16
    assert row.io_p50_ms is not None and row.io_p50_ms > 0  # int8 I/O: the conversion is measured on its own

    gate = toolkit.gate(run_copy, run_copy)
    assert gate.passed and not gate.regressions
    assert (run_copy / "gate.json").is_file()


def test_api_user_errors_are_one_line(tmp_path: Path) -> None:
    import toolkit
    from runtimes.errors import EdgekitError

    with pytest.raises(EdgekitError, match="does not exist"):
        toolkit.parity(tmp_path / "missing")
    with pytest.raises(EdgekitError, match=r"unknown precision 'int3'; choose one of fp32"):
        toolkit.pipeline_options(precisions=["int3"])


def test_import_toolkit_is_light() -> None:
    code = (
        "import sys, toolkit; heavy = [m for m in ('tensorflow', 'pydantic', 'matplotlib', 'rich', 'typer', "
        "'onnxruntime', 'ai_edge_litert') if m in sys.modules]; print(heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.strip() == "[]"
