"""How the CLI starts: predict's Typer-free fast path, a user's own packages in the cwd, markup in paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

EDGEKIT = Path(sys.executable).parent / "edgekit"


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_fast_parser_and_the_typer_command_take_the_same_options() -> None:
    """Both are made from PREDICT_OPTIONS: each flag goes to the same parameter, with the same default."""
    import typer.main

    from toolkit.cli import app
    from toolkit.cli.fast import parser
    from toolkit.cli.specs import PREDICT_OPTIONS

    command = typer.main.get_command(app).commands["predict"]  # type: ignore[attr-defined]
    typer_flags = {f: p.name for p in command.params for f in [*p.opts, *p.secondary_opts] if f.startswith("-")}
    fast_flags = {f: a.dest for a in parser()._actions for f in a.option_strings}
    assert fast_flags == {f: dest for f, dest in typer_flags.items() if f != "--help"}
    defaults = {p.name: p.default for p in command.params if p.param_type_name == "option"}
    assert {s.dest: s.default for s in PREDICT_OPTIONS} == {k: v for k, v in defaults.items() if k != "help"}


def test_predict_starts_without_typer_or_pydantic(small_run: Path, tmp_path: Path) -> None:
    from toolkit.inputs.photo import save_png

    pytest.importorskip("ai_edge_litert")
    image = tmp_path / "digit.png"
    import numpy as np

    digit = np.zeros((28, 28), np.float32)
    digit[6:22, 12:16] = 1.0  # a "1"
    save_png(digit, image)
    model = small_run / "exports" / "model_int8.tflite"
    code = (
        "import sys\n"
        f"sys.argv = ['edgekit', 'predict', {str(model)!r}, {str(image)!r}, '--json']\n"
        "from toolkit.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
        "heavy = [m for m in ('typer', 'pydantic', 'tensorflow', 'matplotlib', 'onnxruntime') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    proc = _run([sys.executable, "-c", code], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["results"][0]["digit"] in range(10) and result["backend"] == "ai_edge_litert"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--top-k", "20"], "Input should be less than or equal to 10"),  # out of range: Typer's usage error
        (["--bogus"], "No such option: --bogus"),
    ],
)
def test_predict_usage_errors_come_from_typer(small_run: Path, args: list[str], expected: str) -> None:
    model = small_run / "exports" / "model_fp32.tflite"
    proc = _run([str(EDGEKIT), "predict", str(model), "x.png", *args], cwd=small_run)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr


def test_bench_from_a_folder_holding_its_own_benchmarks_and_runtimes(run_copy: Path, tmp_path: Path) -> None:
    # A user's project with packages named like ours: the bench workers must still run edgekit's.
    for name in ("benchmarks", "runtimes", "toolkit"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise SystemExit('the user\\'s own package ran')\n")
    assert EDGEKIT.is_file(), "the edgekit console script is installed beside this Python"
    proc = _run(
        [str(EDGEKIT), "bench", str(run_copy), "-a", "tflite-fp32", "-b", "1", "-t", "1", "--quick", "--no-peak"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "own package ran" not in proc.stdout + proc.stderr
    assert json.loads((run_copy / "bench.json").read_text())["results"][0]["artifact"] == "tflite-fp32"


def test_markup_in_a_table_title_prints(run_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "[x]" / "b"
    proc = _run(
        [str(EDGEKIT), "bundle", str(run_copy), "--out", str(out), "-a", "tflite-fp32", "--golden", "8"], cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    title = "".join(proc.stdout.split("┏")[0].split())  # the table's title, however Rich wrapped it
    assert title == f"Bundle{out}", proc.stdout


def test_startup_check_writes_its_figures(small_run: Path, tmp_path: Path) -> None:
    """The script behind the saved start-up figures runs and writes them (it asserts no speed)."""
    pytest.importorskip("ai_edge_litert")
    from PIL import Image

    image = tmp_path / "digit.png"
    picture = Image.new("L", (40, 40), 255)
    picture.paste(0, (18, 8, 22, 32))  # a dark "1" on white paper
    picture.save(image)
    model = small_run / "exports" / "model_int8.tflite"
    args = ["--model", str(model), "--image", str(image), "--runs", "2", "--out", str(tmp_path)]
    proc = _run([sys.executable, "-m", "benchmarks.startup_check", *args], cwd=REPO)
    assert proc.returncode in (0, 3), proc.stderr
    (saved,) = tmp_path.glob("startup-check-*.json")
    result = json.loads(saved.read_text())
    assert result["runs"] == 2 and result["ratio"]["median"] > 0 and result["limit"] == 1.5
    assert "verdict: median ratio" in proc.stdout


def test_predicts_plain_table_looks_like_richs() -> None:
    """predict draws its table without Rich (start-up); it must look like every other command's Rich table."""
    from rich.console import Console

    from toolkit.cli.console import rich_table
    from toolkit.cli.text_table import box_table

    header = ["image", "digit", "confidence", "top 2"]
    rows = [["photo-3.jpg", "3", "97.7 %", "3: 97.7 %  2: 0.8 %"], ["a-much-longer-name.png", "5", "100.0 %", "5: 1 %"]]
    console = Console(width=200, record=True, color_system=None, force_terminal=False)
    table = rich_table("Predictions by tflite-int8", header, rows)
    table.caption, table.caption_justify = "ai_edge_litert; preprocessing on", "left"
    console.print(table)
    ours = box_table("Predictions by tflite-int8", header, rows, caption="ai_edge_litert; preprocessing on")
    rich_lines = [line.rstrip() for line in console.export_text().splitlines()]
    assert [line.rstrip() for line in ours.splitlines()] == rich_lines


def test_the_cli_imports_tensorflow_without_scikit_learn(tmp_path: Path) -> None:
    """Keras imports scikit-learn for its wrappers alone (~1 s); the CLI hides it while TensorFlow loads, and a
    later `import sklearn` (a user's --custom-objects file may do one) still works."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("sklearn")
    code = (
        "import sys\n"
        "from runtimes import tf_import\n"
        "import os\n"
        "os.environ[tf_import.WITHOUT_SKLEARN_WRAPPERS] = '1'  # as toolkit.cli.main sets it\n"
        "keras = tf_import.import_keras()\n"
        "assert 'sklearn' not in sys.modules, 'sklearn was imported'\n"
        "layer = keras.layers.Dense(2)\n"
        "assert tuple(layer(keras.ops.ones((1, 3))).shape) == (1, 2)\n"
        "import sklearn.base\n"
        "print('OK', sklearn.__version__)\n"
    )
    proc = _run([sys.executable, "-c", code], cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout
    cli = (
        "import sys\n"
        "sys.argv = ['edgekit', '--help']\n"
        "from toolkit.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "from runtimes import tf_import\n"
        "import os\n"
        "print('FLAG', os.environ.get(tf_import.WITHOUT_SKLEARN_WRAPPERS), file=sys.stderr)\n"
    )
    proc = _run([sys.executable, "-c", cli], cwd=REPO)
    assert "FLAG 1" in proc.stderr, proc.stderr  # the CLI turns it on, for itself and its worker processes
