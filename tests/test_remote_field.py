"""Remote boards as they are in the field (issue #13): no SFTP, no index for pip, hosts edgekit cannot use.

A second real sshd on 127.0.0.1 runs WITHOUT an SFTP subsystem; each host alias is a port of it
with its own environment (`tests/sshd_helper.py`):

- `nosftp`: nothing else changed (copies fall back to `scp -O`);
- `noscp`: no scp on the host either (a PATH wrapper answering "scp: not found"; copies stream over ssh);
- `offline`: pip sees no configuration, `PIP_INDEX_URL=http://127.0.0.1:9/` (nothing listens) and no cache;
- `armv7`, `lowdisk`: a PATH wrapper for `uname` (armv7l), a `df` reporting 100 MB free;
- `armv7py39`: that `uname` with a real Python 3.9: a host that takes the TFLite-only install (its real
  install and verify are in `test_remote_armhf.py`, on an armhf root under QEMU);
- `oldpy`: a real Python 3.9 as `python3` (this machine's pyenv, through PYENV_VERSION; root's shell
  puts pyenv's shims first on PATH, so the hosts' python3 is pyenv's);
- `novenv`: python3 with the ensurepip module missing (PYTHONPATH to a stub that fails to import).

The set-ups install real wheels (slow: --run-slow). Times are printed for the closing note only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import toolkit
from tests.conftest import REPO
from tests.sshd_helper import DEFAULT_PATH, running_sshd
from toolkit.remote.hosts import exit_code, remote_results, run_remote_verify
from toolkit.remote.ssh import SshSettings
from toolkit.steps.bench_settings import BenchSettings

ARTIFACTS = ["tflite-fp32", "tflite-int8", "onnx-int8"]
BENCH_SETTINGS = BenchSettings(
    batch_sizes=(1,), threads=(1,), min_runs=64, min_seconds=0.1, warmup_runs=3, warmup_seconds=0.05, measure_peak=False
)
OLD_PYTHON = Path("/root/.pyenv/versions/3.9.18/bin/python3")  # selected with PYENV_VERSION=3.9.18
OFFLINE_PIP = "PIP_CONFIG_FILE=/dev/null PIP_INDEX_URL=http://127.0.0.1:9/ PIP_NO_CACHE_DIR=1"


def _script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)


@pytest.fixture(scope="module")
def field_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """sshd without SFTP; client config with the hosts nosftp, noscp, offline, armv7, oldpy, novenv, lowdisk."""
    wrap = tmp_path_factory.mktemp("wrappers")
    _script(wrap / "noscp" / "scp", 'echo "sh: scp: not found" >&2; exit 127\n')
    _script(wrap / "armv7" / "uname", 'if [ "$1" = -m ]; then echo armv7l; else exec /bin/uname "$@"; fi\n')
    # Debian's python3 without python3-venv: the ensurepip module is missing.
    (wrap / "novenv" / "ensurepip").mkdir(parents=True)
    (wrap / "novenv" / "ensurepip" / "__init__.py").write_text("raise ImportError('No module named ensurepip')\n")
    _script(
        wrap / "lowdisk" / "df",
        'echo "Filesystem 1024-blocks Used Available Capacity Mounted on"\n'
        'echo "/dev/fake 1048576 946176 102400 91% /"\n',
    )
    hosts = {"nosftp": "", "offline": OFFLINE_PIP, "oldpy": "PYENV_VERSION=3.9.18"}
    hosts["novenv"] = f"PYTHONPATH={wrap / 'novenv'}"
    hosts |= {name: f"PATH={wrap / name}:{DEFAULT_PATH}" for name in ("noscp", "armv7", "lowdisk")}
    hosts["armv7py39"] = f"PATH={wrap / 'armv7'}:{DEFAULT_PATH} PYENV_VERSION=3.9.18"
    with running_sshd(tmp_path_factory.mktemp("sshd-field"), hosts, sftp=False) as config:
        yield config


@pytest.fixture(scope="module")
def field_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("field-cache")


@pytest.fixture
def field_settings(
    field_config: Path, field_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Path], SshSettings]:
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(field_cache))
    monkeypatch.delenv("EDGEKIT_SSH_OPTIONS", raising=False)
    return lambda remote_dir: SshSettings.from_env(config=field_config, remote_dir=str(remote_dir))


@pytest.fixture
def field_cli(field_config: Path, field_cache: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The edgekit CLI in a subprocess against the field sshd; `--remote-dir` is the caller's."""

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "EDGEKIT_CACHE_DIR": str(field_cache)}
        env.pop("EDGEKIT_SSH_OPTIONS", None)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "toolkit.cli", *map(str, args), "--ssh-config", str(field_config)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        print(f"{' '.join(map(str, args[:4]))}: exit {proc.returncode} in {time.perf_counter() - started:.1f} s")
        return proc

    return run


@pytest.fixture(scope="module")
def field_bundle(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolkit.bundles.build import build_bundle

    folder, _ = build_bundle(
        small_run, tmp_path_factory.mktemp("field-desktop") / "bundle", artifact_names=ARTIFACTS, golden=64
    )
    return folder


def _timing(doc: dict) -> str:
    r = doc["remote"]
    return f"set-up {r['setup']} {r['setup_seconds']:.1f} s, verify {r['seconds']:.1f} s"


@pytest.mark.slow
def test_no_sftp_host_verify_and_bench(field_cli, field_settings, field_bundle: Path, tmp_path: Path) -> None:
    remote_dir = tmp_path / "board-home"
    bundle = Path(shutil.copytree(field_bundle, tmp_path / "bundle"))
    proc = field_cli("verify", bundle, "--remote", "nosftp", "--remote-dir", remote_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "copying with scp -O from now on" in proc.stderr and proc.stderr.count("scp failed") == 1
    doc = json.loads((tmp_path / "bundle.remote" / "nosftp" / "verify.json").read_text())
    assert doc["passed"] and doc["remote"]["copy_mode"] == "scp-legacy" and doc["remote"]["setup"] == "installed"
    print(f"no-SFTP host, first install: {_timing(doc)}")
    # The API's bench on the same host: legacy scp for the artifacts and bench.json, merged beside the bundle.
    docs = toolkit.bench_remote(
        bundle, ["nosftp"], settings=BENCH_SETTINGS, artifacts=["tflite-fp32"], ssh=field_settings(remote_dir)
    )
    path = toolkit.remote_bench_path(bundle, "nosftp")
    bench = json.loads(path.read_text())
    assert list(docs) == ["nosftp"] and bench["results"] and bench["remote"]["copy_mode"] == "scp-legacy"
    fetched = remote_results(bundle)["nosftp"]
    assert fetched.bench is not None and fetched.verify is not None
    # No scp on the host at all (Dropbear without scp): the copies stream through `ssh cat`.
    proc = field_cli("verify", bundle, "--remote", "noscp", "--remote-dir", remote_dir, "--out", tmp_path / "s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "s" / "noscp" / "verify.json").read_text())
    assert doc["passed"] and doc["remote"]["copy_mode"] == "stream" and doc["remote"]["setup"] == "reused"
    print(f"no-SFTP host, reuse: {_timing(doc)}")


@pytest.mark.slow
def test_offline_host_installs_from_the_wheelhouse(field_cli, field_bundle: Path, tmp_path: Path) -> None:
    remote_dir = tmp_path / "board-home"
    # Default: the host's index first; its pip cannot reach one, so the wheelhouse built here.
    proc = field_cli("verify", field_bundle, "--remote", "offline", "--remote-dir", remote_dir, "--out", tmp_path / "a")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pip on the host cannot reach a package index" in proc.stderr and "wheelhouse for cp" in proc.stderr
    doc = json.loads((tmp_path / "a" / "offline" / "verify.json").read_text())
    assert doc["passed"] and doc["remote"]["install_from"] == "wheelhouse"
    print(f"offline host, first install (index tried first): {_timing(doc)}")
    proc = field_cli("verify", field_bundle, "--remote", "offline", "--remote-dir", remote_dir, "--out", tmp_path / "b")
    assert proc.returncode == 0 and "(reused)" in proc.stderr, proc.stderr
    print(f"offline host, reuse: {_timing(json.loads((tmp_path / 'b' / 'offline' / 'verify.json').read_text()))}")
    # --offline on a fresh dir: straight to the (now cached) wheelhouse, the index is never asked.
    fresh = tmp_path / "fresh-home"
    proc = field_cli(
        "verify", field_bundle, "--remote", "offline", "--remote-dir", fresh, "--out", tmp_path / "c", "--offline"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cannot reach" not in proc.stderr and "(cached)" in proc.stderr
    doc = json.loads((tmp_path / "c" / "offline" / "verify.json").read_text())
    assert doc["remote"]["install_from"] == "wheelhouse"
    print(f"offline host, --offline with a cached wheelhouse: {_timing(doc)}")


CHECKS = {
    "armv7": "armv7l (32-bit ARM) with Python 3.11: no ai-edge-litert/onnxruntime wheels, and tflite-runtime 2.13 has "
    "armv7l wheels for Python 3.9/3.10 only; use a 64-bit OS, or Python 3.9/3.10 on armv7l (edgekit then installs "
    "TFLite-only: tflite-runtime 2.13 with numpy<2)",
    "oldpy": "python3 on the host is Python 3.9; edgekit needs Python 3.10 or newer",
    "novenv": "python3 3.11 on the host has no venv/ensurepip module; install it (Debian or Ubuntu: sudo apt install "
    "python3-venv)",
    "lowdisk": "only 100 MB free in ",
}


@pytest.mark.slow
@pytest.mark.parametrize("host", list(CHECKS))
def test_host_checks_refuse_before_installing(host: str, field_settings, field_bundle: Path, tmp_path: Path) -> None:
    if host == "oldpy" and not OLD_PYTHON.is_file():
        pytest.skip(f"needs a real Python 3.9 at {OLD_PYTHON}")
    remote_dir = tmp_path / "board-home"
    (result,) = run_remote_verify(field_bundle, [host], field_settings(remote_dir), out_root=tmp_path / "out")
    assert result.status == "error" and exit_code([result]) == 1
    assert result.error is not None and result.error.startswith(CHECKS[host]) and "\n" not in result.error
    # Nothing half-installed: no venv, no wheel, the job folder removed.
    assert sorted(p.name for p in remote_dir.iterdir()) == ["jobs"] and not any((remote_dir / "jobs").iterdir())
    assert not (tmp_path / "out").exists()
    print(f"{host}: {result.error}")


@pytest.mark.slow
def test_host_check_on_the_command_line(field_cli, field_bundle: Path, tmp_path: Path) -> None:
    proc = field_cli("verify", field_bundle, "--remote", "armv7", "--remote-dir", tmp_path / "home")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert line == f"error: armv7: {CHECKS['armv7']}"


@pytest.mark.slow
def test_32_bit_host_with_python_39_refuses_bench_and_an_offline_install_without_numpy(
    field_cli, field_bundle: Path, tmp_path: Path
) -> None:
    """armv7l + Python 3.9 takes the TFLite-only install: `bench --remote` is refused before anything is
    installed, and offline without a numpy built here (PyPI has no armv7l numpy) says how to get one."""
    if not OLD_PYTHON.is_file():
        pytest.skip(f"needs a real Python 3.9 at {OLD_PYTHON}")
    home = tmp_path / "home"
    proc = field_cli("bench", field_bundle, "--remote", "armv7py39", "--remote-dir", home)
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error: armv7py39:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert line == (
        "error: armv7py39: armv7l (32-bit ARM) with Python 3.9: edgekit installs TFLite-only there, for "
        "`verify --remote`; `bench --remote` needs a 64-bit OS with Python 3.10+"
    )
    assert sorted(p.name for p in home.iterdir()) == ["jobs"] and not any((home / "jobs").iterdir())
    proc = field_cli("verify", field_bundle, "--remote", "armv7py39", "--remote-dir", home, "--offline")
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error: armv7py39:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert line.startswith("error: armv7py39: no numpy wheel for armv7l with Python 3.9 here for an offline install")
    assert "--emulate pi3" in line
    assert sorted(p.name for p in home.iterdir()) == ["jobs"] and not any((home / "jobs").iterdir())
