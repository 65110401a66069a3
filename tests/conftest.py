"""Shared fixtures: the shipped MNIST, and one small real run (trained briefly, exported to every format)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# A small but real run: 4,000 training images, one epoch (a few seconds on 2 cores).
SMALL_TRAIN = {"epochs": 1, "train_limit": 4000}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run the slow end-to-end tests (full MNIST)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mnist():
    from toolkit.data.mnist import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory, mnist) -> Path:
    """A run directory with model.keras, train.json, every export and manifest.json."""
    pytest.importorskip("tensorflow")
    from toolkit.model.reference import TrainConfig
    from toolkit.steps.export import export_step, parse_targets
    from toolkit.steps.train import train_step

    run = tmp_path_factory.mktemp("run")
    train_step(run, mnist, TrainConfig(**SMALL_TRAIN))
    export_step(run, parse_targets(None, None), data=mnist, calibration_size=200)
    return run


@pytest.fixture
def run_copy(small_run: Path, tmp_path: Path) -> Path:
    """A private copy of `small_run` that a test may damage."""
    dest = tmp_path / "run"
    shutil.copytree(small_run, dest)
    return dest


@pytest.fixture(scope="session")
def edgekit() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `edgekit` CLI in a subprocess (so exit codes and stderr are what a user sees)."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
        return subprocess.run(
            [sys.executable, "-m", "toolkit.cli", *args],
            cwd=cwd or REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


# -- the user's own models (issue 10): built once per session from real MNIST digits ------------------
USER_CASES = ("rgb", "mlp", "logits", "regression", "folder")


@pytest.fixture(scope="session")
def user_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """name → (model file, data) for the test user models (see tests/user_models.py), about 30 s in all."""
    pytest.importorskip("tensorflow")
    from tests import user_models as U

    root = tmp_path_factory.mktemp("user-models")
    files: dict[str, tuple[Path, Path]] = {}
    # Neutral file names: a report that says "MNIST" or "digit" about these runs took it from edgekit's wording.
    data = U.rgb_digits(root / "tinted.npz")
    files["rgb"] = (U.rgb_cnn(root / "rgb_cnn.keras", data), data)
    data = U.digit_vectors(root / "pooled.npz")
    files["mlp"] = (U.mlp(root / "mlp.keras", data), data)
    data = U.grey_digits(root / "grey.npz")
    files["logits"] = (U.logits_cnn(root / "grey_logits.keras", data), data)
    data = U.ink_targets(root / "ink.npz")
    files["regression"] = (U.regressor(root / "ink_reg.keras", data), data)
    folder = U.digit_folder(root / "shapes")
    files["folder"] = (U.folder_cnn(root / "folder_cnn.keras", folder), folder)
    return files


@pytest.fixture(scope="session")
def user_pipelines(
    user_files: dict[str, tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory, edgekit
) -> dict[str, tuple[Path, str]]:
    """name → (run directory, stdout) of `edgekit pipeline --model M --data D` (quick bench, batch 1, 1 thread)."""
    runs: dict[str, tuple[Path, str]] = {}
    for name, (model, data) in user_files.items():
        runs_dir = tmp_path_factory.mktemp(f"user-run-{name}")
        result = edgekit(
            "pipeline",
            "--model",
            str(model),
            "--data",
            str(data),
            "--runs-dir",
            str(runs_dir),
            "--quick",
            "-b",
            "1",
            "-t",
            "1",
            "--no-peak",
        )
        assert result.returncode in (0, 3), f"{name}: {result.stderr[-2000:]}"
        runs[name] = ((runs_dir / "latest").resolve(), result.stdout)
    return runs


@pytest.fixture(scope="session")
def user_runs(user_pipelines: dict[str, tuple[Path, str]]) -> dict[str, Path]:
    """name → run directory of the user-model pipelines (see `user_pipelines`)."""
    return {name: run for name, (run, _) in user_pipelines.items()}


@pytest.fixture(scope="session")
def several_runs(tmp_path_factory: pytest.TempPathFactory, edgekit) -> dict[str, Path]:
    """Runs of the two models with several tensors (tests/user_models.py): `two` (image + features → digit +
    side) and `detector` (image → boxes + scores), each trained on real MNIST and made by
    `edgekit pipeline --model M --data D.npz --quick` (int8 TFLite and ONNX calibrated on the named data)."""
    pytest.importorskip("tensorflow")
    from tests import user_models as U

    root = tmp_path_factory.mktemp("several-runs")
    built = {"two": (U.digits_and_side, U.digits_and_side_data), "detector": (U.detector, U.detector_data)}
    runs = {}
    for name, (build, data) in built.items():
        npz = data(root / f"{name}.npz")
        model = build(root / f"{name}.keras", npz)
        runs_dir = root / f"runs-{name}"
        result = edgekit("pipeline", "--model", str(model), "--data", str(npz), "--runs-dir", str(runs_dir), "--quick")
        assert result.returncode in (0, 3), result.stderr[-3000:]
        runs[name] = (runs_dir / "latest").resolve()
    return runs


def ctrl_c_as_from_a_terminal() -> None:
    """`preexec_fn` for a child a test sends Ctrl-C to: as from a terminal. A job started in the background (CI's
    runner may be one) inherits SIGINT ignored, and Python then installs no Ctrl-C handler at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
