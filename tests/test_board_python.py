"""The TFLite-only board install (32-bit ARM, Python 3.9/3.10): its command line and its Python floor.

`toolkit.cli.main` sends every command line to `toolkit.cli.board` when Typer is not installed, as on
such a board. Here that is shown on this machine with Typer hidden; `test_emulate.py` runs the real
install (armhf root, CPython 3.9, tflite-runtime 2.13) under QEMU. What that install imports must stay
Python 3.9-clean: vermin (a maintained checker of minimum Python versions) reads those modules.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Hide Typer from `toolkit.cli.main` (find_spec sees None in sys.modules), as on a board without it.
NO_TYPER = "import sys; sys.modules['typer'] = None; sys.argv[0] = 'edgekit'; from toolkit.cli import main; main()"
# The modules of ours that the board's `edgekit verify` loads, printed after a real verify.
LOADED = (
    "import sys, json; sys.modules['typer'] = None\n"
    "from toolkit.cli.board import main\n"
    "code = main(sys.argv[1:])\n"
    "ours = ('toolkit', 'runtimes', 'benchmarks', 'exporters')\n"
    "print(json.dumps([m.__file__ for n, m in sorted(sys.modules.items()) if m is not None and n.split('.')[0] in ours "
    "and getattr(m, '__file__', None)]))\n"
    "sys.exit(code)\n"
)


def _board(*args: str, code: str = NO_TYPER) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def bundle(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolkit.bundles.build import build_bundle

    path, _ = build_bundle(small_run, tmp_path_factory.mktemp("board") / "bundle", golden=64)
    return path


def test_board_verify_without_typer(bundle: Path, tmp_path: Path) -> None:
    """The same table, verify.json and exit code as the full `edgekit verify`."""
    proc = _board("verify", str(bundle), "--out", str(tmp_path / "v.json"))
    assert proc.returncode == 0, proc.stderr
    assert "tflite-int8" in proc.stdout and f"Wrote {tmp_path / 'v.json'}" in proc.stdout.replace("\n", "")
    from toolkit.run.documents import VerifyDocument, parse_document

    report = parse_document(json.loads((tmp_path / "v.json").read_text()), VerifyDocument, source=tmp_path / "v.json")
    assert report.passed and len(report.results) == len(json.loads((bundle / "bundle.json").read_text())["artifacts"])


def test_board_verify_refuses_in_one_line(bundle: Path, tmp_path: Path) -> None:
    """A tampered bundle: exit 1, one line; a command the board install lacks: exit 1, one line naming verify."""
    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    next((bad / "exports").iterdir()).write_bytes(b"not a model")
    proc = _board("verify", str(bad))
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "sha256" in proc.stderr and "Traceback" not in proc.stderr
    assert not (bad / "verify.json").exists()
    proc = _board("bench", str(bad))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "TFLite-only board install" in proc.stderr and "edgekit verify BUNDLE" in proc.stderr
    proc = _board("--version")
    assert proc.returncode == 0 and "TFLite-only" in proc.stdout


def test_board_modules_stay_python_39_clean(bundle: Path, tmp_path: Path) -> None:
    """Every module of ours that the board's verify loads runs on Python 3.9 (tflite-runtime 2.13's armv7l
    wheels exist for 3.9 and 3.10 only)."""
    vermin = shutil.which("vermin", path=str(Path(sys.executable).parent))
    if vermin is None:
        pytest.skip("vermin is not installed (pip install -e '.[dev]')")
    proc = _board("verify", str(bundle), "--out", str(tmp_path / "v.json"), code=LOADED)
    assert proc.returncode == 0, proc.stderr
    files = json.loads(proc.stdout.strip().splitlines()[-1])
    assert any(f.endswith("tflite_runner.py") for f in files) and any(f.endswith("board.py") for f in files)
    check = subprocess.run(
        [vermin, "--no-tips", "--violations", "-t=3.9-", *files], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


BUILTIN_TYPES = {"int", "float", "str", "bytes", "bool", "list", "tuple", "dict", "set", "type", "object", "Path"}


def _runtime_unions(path: Path) -> list[str]:
    """`X | Y` of types evaluated at run time (isinstance, aliases, casts): a TypeError on Python 3.9.

    Annotations are skipped (`from __future__ import annotations` keeps them strings); vermin does not
    see these, so this looks for `|` with a type or None on either side outside annotations."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    annotations: set[int] = set()
    for node in ast.walk(tree):
        for ann in (getattr(node, "annotation", None), getattr(node, "returns", None)):
            if ann is not None:
                annotations.update(id(n) for n in ast.walk(ann))

    def typeish(n: ast.expr) -> bool:
        return (
            (isinstance(n, ast.Constant) and n.value is None)
            or (isinstance(n, ast.Name) and n.id in BUILTIN_TYPES)
            or isinstance(n, ast.Subscript)
        )

    return [
        f"{path}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.BitOr)
        and id(node) not in annotations
        and (typeish(node.left) or typeish(node.right))
    ]


def test_board_modules_have_no_runtime_union_types(bundle: Path, tmp_path: Path) -> None:
    proc = _board("verify", str(bundle), "--out", str(tmp_path / "v.json"), code=LOADED)
    assert proc.returncode == 0, proc.stderr
    files = [Path(f) for f in json.loads(proc.stdout.strip().splitlines()[-1])]
    found = [hit for f in files for hit in _runtime_unions(f)]
    assert found == [], "use a tuple (isinstance) or typing.Optional/Union: " + ", ".join(found)


def test_host_install_program_is_stdlib_and_python_39_clean() -> None:
    """`toolkit/remote/host_install.py` runs on a host before edgekit is there (a 32-bit ARM one with Python
    3.9): the standard library only, and nothing newer than 3.9."""
    import ast

    path = Path(__file__).resolve().parent.parent / "toolkit" / "remote" / "host_install.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported
    assert _runtime_unions(path) == []
    vermin = shutil.which("vermin", path=str(Path(sys.executable).parent))
    if vermin is None:
        pytest.skip("vermin is not installed (pip install -e '.[dev]')")
    check = subprocess.run(
        [vermin, "--no-tips", "--violations", "-t=3.9-", str(path)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
