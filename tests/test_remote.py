"""Remote boards (`verify --remote`, `bench --remote`) against a real sshd on 127.0.0.1 started here.

Nothing is mocked: OpenSSH's sshd runs from a config in tmp (host key, client key, an authorized_keys
file), the client reaches it through `--ssh-config`, and the "board" is this machine with edgekit
installed from its wheel into a venv under tmp (`--remote-dir`). The first set-up installs the core
dependencies with the host's pip (~30-60 s from pip's cache), so those tests are slow (--run-slow).
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
from tests.sshd_helper import running_sshd
from toolkit.remote.errors import RemoteError
from toolkit.remote.hosts import (
    RemoteFailed,
    check_hosts,
    exit_code,
    host_dirname,
    remote_output_root,
    remote_results,
    run_remote_verify,
)
from toolkit.remote.ssh import SshSettings
from toolkit.steps.bench_settings import BenchSettings

ARTIFACTS = ["tflite-fp32", "tflite-int8", "onnx-int8"]
BENCH_SETTINGS = BenchSettings(
    batch_sizes=(1,),
    threads=(1,),
    min_runs=128,
    min_seconds=0.2,
    warmup_runs=5,
    warmup_seconds=0.05,
    measure_peak=False,
)
BENCH_ARTIFACTS = ["tflite-fp32"]


@pytest.fixture(scope="session")
def ssh_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real sshd on 127.0.0.1 (stopped at the end); returns a client config with hosts board, board2, dead."""
    with running_sshd(tmp_path_factory.mktemp("sshd"), {"board board2": ""}, dead="dead") as config:
        yield config


@pytest.fixture(scope="session")
def remote_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hosts' edgekit folder (venv, jobs), under tmp and shared by the tests: set up once, then reused."""
    return tmp_path_factory.mktemp("board-home") / "edgekit-remote"


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wheel-cache")


@pytest.fixture
def settings(ssh_config: Path, remote_dir: Path, wheel_cache: Path, monkeypatch: pytest.MonkeyPatch) -> SshSettings:
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(wheel_cache))
    monkeypatch.delenv("EDGEKIT_SSH_OPTIONS", raising=False)
    return SshSettings.from_env(config=ssh_config, remote_dir=str(remote_dir))


@pytest.fixture(scope="module")
def remote_bundle(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolkit.bundles.build import build_bundle

    folder, _ = build_bundle(
        small_run, tmp_path_factory.mktemp("desktop") / "bundle", artifact_names=ARTIFACTS, golden=64
    )
    return folder


@pytest.fixture
def remote_cli(
    ssh_config: Path, remote_dir: Path, wheel_cache: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`edgekit verify … --remote …` in a subprocess, with the test sshd's config and remote dir."""

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "EDGEKIT_CACHE_DIR": str(wheel_cache)}
        env.pop("EDGEKIT_SSH_OPTIONS", None)
        cmd = [
            sys.executable,
            "-m",
            "toolkit.cli",
            *map(str, args),
            "--ssh-config",
            str(ssh_config),
            "--remote-dir",
            str(remote_dir),
        ]
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
        print(f"{' '.join(map(str, args))}: exit {proc.returncode} in {time.perf_counter() - started:.1f} s")
        return proc

    return run


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# -- with a real sshd --------------------------------------------------------------------------------
@pytest.mark.slow
def test_verify_remote_round_trip(remote_cli, remote_bundle: Path, tmp_path: Path) -> None:
    from toolkit.bundles.format import check_files, load_bundle
    from toolkit.bundles.verify import verify_bundle

    bundle = Path(shutil.copytree(remote_bundle, tmp_path / "bundle"))
    proc = remote_cli("verify", bundle, "--remote", "board")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fetched = tmp_path / "bundle.remote" / "board" / "verify.json"
    assert fetched.is_file() and not (bundle / "verify.json").exists()  # nothing written into the bundle
    assert f"Verify {bundle} on board" in proc.stdout and "board: verify passed" in proc.stdout
    assert not _error_lines(proc.stderr)
    remote = json.loads(fetched.read_text())
    assert remote["remote"]["host"] == "board" and remote["remote"]["setup"] in ("installed", "reused")
    assert remote["passed"] and remote["environment"]["runtime_versions"].get("keras") is None  # the core install
    # The same figures as verifying here (the "board" is this machine).
    doc = load_bundle(bundle)
    check_files(bundle, doc)
    local = verify_bundle(bundle, doc, bundle)
    assert [r["artifact"] for r in remote["results"]] == [r["artifact"] for r in local["results"]] == ARTIFACTS
    for r, here in zip(remote["results"], local["results"], strict=True):
        assert r["status"] == here["status"] == "pass"
        assert r["accuracy"] == here["accuracy"] and r["agreement"] == here["agreement"]
        assert r["max_abs_diff"] == pytest.approx(here["max_abs_diff"], abs=1e-6)
    fetched = remote_results(bundle)["board"].verify
    assert fetched is not None and fetched.remote is not None and fetched.remote.host == "board"


@pytest.mark.slow
def test_second_run_reuses_the_environment(remote_cli, remote_bundle: Path, tmp_path: Path) -> None:
    first = remote_cli("verify", remote_bundle, "--remote", "board", "--out", tmp_path / "first")
    assert first.returncode == 0, first.stderr
    started = time.perf_counter()
    second = remote_cli("verify", remote_bundle, "--remote", "board", "--out", tmp_path / "second")
    elapsed = time.perf_counter() - started
    assert second.returncode == 0, second.stderr
    assert "environment up to date (reused)" in second.stderr and "installing edgekit" not in second.stderr
    doc = json.loads((tmp_path / "second" / "board" / "verify.json").read_text())
    assert doc["remote"]["setup"] == "reused"
    print(f"second run: {elapsed:.1f} s in all, set-up {doc['remote']['setup_seconds']:.2f} s (information only)")


@pytest.mark.slow
def test_two_hosts_run_in_parallel(remote_cli, remote_bundle: Path, tmp_path: Path) -> None:
    archive = tmp_path / "device.tar.gz"
    from toolkit.bundles.archive import write_tar

    write_tar(remote_bundle, archive, "device")
    proc = remote_cli("verify", archive, "--remote", "board", "--remote", "board2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = {h: json.loads((tmp_path / "device.remote" / h / "verify.json").read_text()) for h in ("board", "board2")}
    assert {h: d["remote"]["host"] for h, d in docs.items()} == {"board": "board", "board2": "board2"}
    assert all(d["passed"] for d in docs.values())
    a, b = (docs[h]["remote"] for h in ("board", "board2"))
    assert a["started_unix"] < b["finished_unix"] and b["started_unix"] < a["finished_unix"]  # the runs overlapped
    assert "Remote verify: 2 of 2 host(s) ran" in proc.stdout


@pytest.mark.slow
def test_unreachable_host_fails_alone(remote_cli, remote_bundle: Path, tmp_path: Path) -> None:
    proc = remote_cli("verify", remote_bundle, "--remote", "dead", "--remote", "board", "--out", tmp_path / "res")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = _error_lines(proc.stderr)
    assert line.startswith("error: dead: cannot connect over ssh") and "Connection refused" in line, line
    assert "Traceback" not in proc.stderr
    assert json.loads((tmp_path / "res" / "board" / "verify.json").read_text())["passed"]  # the other host ran
    assert not (tmp_path / "res" / "dead").exists()
    assert "board: verify passed" in proc.stdout and "1 failed" in proc.stdout


@pytest.mark.slow
def test_tampered_bundle_is_refused_remotely(remote_cli, remote_bundle: Path, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(remote_bundle, tmp_path / "bundle"))
    model = bundle / "exports" / "model_int8.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    proc = remote_cli("verify", bundle, "--remote", "board")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = _error_lines(proc.stderr)
    assert line.startswith("error: board: edgekit verify failed on the host"), line
    assert "exports/model_int8.tflite" in line and "sha256" in line, line
    assert not (tmp_path / "bundle.remote" / "board" / "verify.json").exists()


@pytest.mark.slow
def test_remote_bench_fetches_bench_json(
    settings: SshSettings, remote_bundle: Path, run_copy: Path, tmp_path: Path
) -> None:
    # A bundle folder: <bundle>.remote/<host>/bench.json beside it.
    bundle = Path(shutil.copytree(remote_bundle, tmp_path / "bundle"))
    docs = toolkit.bench_remote(bundle, ["board"], settings=BENCH_SETTINGS, artifacts=BENCH_ARTIFACTS, ssh=settings)
    path = toolkit.remote_bench_path(bundle, "board")
    assert list(docs) == ["board"] and path == tmp_path / "bundle.remote" / "board" / "bench.json"
    doc = json.loads(path.read_text())
    assert doc["results"] and {r["artifact"] for r in doc["results"]} == {"tflite-fp32"}
    # The host ran the API with the desktop's own settings (parameters, not a rebuilt command line).
    assert doc["remote"]["host"] == "board" and doc["remote"]["settings"] == BENCH_SETTINGS.model_dump(mode="json")
    assert doc["method"]["min_runs"] == 128 and doc["method"]["batch_sizes"] == [1]
    assert doc["run"] == "bundle"
    # A run directory, with one unreachable host: the other's bench.json is fetched, then RemoteFailed.
    with pytest.raises(RemoteFailed) as info:
        toolkit.bench_remote(
            run_copy, ["board", "dead"], settings=BENCH_SETTINGS, artifacts=BENCH_ARTIFACTS, ssh=settings
        )
    assert info.value.paths == {"board": run_copy / "remote" / "board" / "bench.json"}
    assert list(info.value.documents) == ["board"]
    assert "dead" in str(info.value) and "board" not in str(info.value).split(":", 1)[1]
    assert json.loads((run_copy / "remote" / "board" / "bench.json").read_text())["results"]
    found = remote_results(run_copy)
    assert list(found) == ["board"] and found["board"].bench is not None and found["board"].verify is None


@pytest.mark.slow
def test_set_up_errors_are_one_line(settings: SshSettings, remote_bundle: Path, tmp_path: Path, monkeypatch) -> None:
    from dataclasses import replace

    # No python3 on the host (a fresh remote dir, so the set-up really runs).
    missing = replace(settings, python="no-such-python3", remote_dir=str(tmp_path / "fresh"))
    (result,) = run_remote_verify(remote_bundle, ["board"], missing, out_root=tmp_path / "out")
    assert result.status == "error" and result.error == (
        "no no-such-python3 on the host; install Python 3.10+ with its venv module."
    )
    # pip fails on a broken wheel: the last pip error line comes back.
    broken = tmp_path / "edgekit-0.1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip file")
    monkeypatch.setenv("EDGEKIT_REMOTE_WHEEL", str(broken))
    (result,) = run_remote_verify(
        remote_bundle, ["board"], replace(settings, remote_dir=str(tmp_path / "fresh2")), out_root=tmp_path / "out"
    )
    assert result.status == "error" and result.error and result.error.startswith("pip install failed on the host:")
    assert "\n" not in result.error and exit_code([result]) == 1
    print(result.error)


# -- without a server --------------------------------------------------------------------------------
def test_ssh_argv_batch_mode_first_and_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cfg"
    config.write_text("")
    monkeypatch.setenv("EDGEKIT_SSH_OPTIONS", "-p 2222 -l pi -o 'ProxyJump=gw'")
    s = SshSettings.from_env(config=config)
    argv = s.ssh_argv("board", "true")
    assert argv[:3] == ["ssh", "-o", "BatchMode=yes"] and argv[-3:] == ["--", "board", "true"]
    assert ["-F", str(config)] == argv[3:5] and "ConnectTimeout=10" in argv
    assert argv.index("-p") < argv.index("ConnectTimeout=10")  # user options win (ssh keeps the first value)
    scp = s.scp_argv(["a.tar.gz"], "pi@board:/x/")
    assert scp[scp.index("-P") : scp.index("-P") + 2] == ["-P", "2222"] and "User=pi" in scp and "-l" not in scp
    assert "ProxyJump=gw" in scp and scp[-3:] == ["--", "a.tar.gz", "pi@board:/x/"]
    with pytest.raises(RemoteError, match="does not exist"):
        SshSettings.from_env(config=tmp_path / "missing")


def test_host_names_and_result_places(tmp_path: Path) -> None:
    assert host_dirname("pi@board.local:22") == "pi@board.local_22"
    assert host_dirname("../../etc") == "_.._etc"
    assert [b.name for b in check_hosts(["a", "pi@b"])] == ["a", "pi@b"]  # plain hosts become SshBoards
    for bad in (["-oProxyCommand=x"], ["a", "a"], ["a b"], []):
        with pytest.raises(RemoteError):
            check_hosts(bad)
    run = tmp_path / "run"
    run.mkdir()
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "bundle.json").write_text("{}")
    assert remote_output_root(run) == run / "remote"
    assert remote_output_root(bundle) == tmp_path / "b.remote"
    assert remote_output_root(tmp_path / "b.tar.gz") == tmp_path / "b.remote"
    (tmp_path / "b.remote" / "pi@x").mkdir(parents=True)
    verify = {
        "schema_version": 1,
        "created_utc": "2026-12-01T00:00:00Z",
        "edgekit_version": "0.1.0",
        "bundle": {"path": "b"},
        "environment": {},
        "golden": {"images": 1},
        "tolerances": {},
        "results": [],
        "skipped": [],
        "passed": True,
        "remote": {"host": "pi@x:22"},
    }
    (tmp_path / "b.remote" / "pi@x" / "verify.json").write_text(json.dumps(verify))
    (tmp_path / "b.remote" / "pi@x" / "bench.json").write_text(json.dumps({"remote": {"host": "pi@x:22"}}))
    found = remote_results(bundle)  # by the host the file records; the invalid bench.json is skipped
    assert list(found) == ["pi@x:22"] and found["pi@x:22"].bench is None
    fetched = found["pi@x:22"].verify
    assert fetched is not None and fetched.remote is not None and fetched.remote.host == "pi@x:22"


def _host_install(job: Path, *args: str) -> tuple[int, dict[str, str]]:
    """The set-up program as a host runs it: copied into the job folder, `python3 -m edgekit_host_install`."""
    from importlib.resources import files

    from toolkit.remote.provision import HOST_PROGRAM

    program = files("toolkit.remote").joinpath("host_install.py").read_text(encoding="utf-8")
    (job / f"{HOST_PROGRAM}.py").write_text(program, encoding="utf-8")
    env = {"PATH": os.environ["PATH"], "HOME": str(job)}  # no PYTHONPATH: edgekit is not on the host yet
    proc = subprocess.run(
        [sys.executable, "-m", HOST_PROGRAM, *args], cwd=job, env=env, capture_output=True, text=True, timeout=300
    )
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("EDGEKIT-SETUP ")]
    return proc.returncode, json.loads(line.split(" ", 1)[1])


def test_host_install_program_answers_in_one_line(tmp_path: Path) -> None:
    """The program `provision` runs on a host: a broken wheel is pip's one-line error (exit 4); a venv whose
    marker records the wheel is reused without pip."""
    root, job = tmp_path / "root", tmp_path / "job"
    root.mkdir()
    job.mkdir()
    broken = job / "edgekit-0.1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip file")
    code, reply = _host_install(job, str(root), str(broken), "abc123", "full")
    assert code == 4 and reply["status"] == "error", reply
    assert reply["message"].startswith("pip install failed on the host:") and "\n" not in reply["message"]
    assert not (root / "venv" / ".edgekit-wheel-sha256").exists()
    (root / "venv" / ".edgekit-wheel-sha256").write_text("abc123\n")
    edgekit = root / "venv" / "bin" / "edgekit"
    edgekit.write_text("#!/bin/sh\n")
    edgekit.chmod(0o755)
    assert _host_install(job, str(root), str(broken), "abc123", "full") == (0, {"status": "reused", "message": ""})


@pytest.mark.slow
def test_bench_remote_and_verify_remote_join_the_run_report(remote_cli, edgekit, run_copy: Path) -> None:
    """`edgekit bench RUN --remote` fetches the board's bench.json into RUN/remote/<host>/; the report shows it."""
    proc = remote_cli("bench", run_copy, "--remote", "board", "-a", "tflite-int8", "-b", "1", "-t", "1", "--quick")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fetched = run_copy / "remote" / "board" / "bench.json"
    rows = json.loads(fetched.read_text())["results"]
    assert [(r["artifact"], r["batch_size"], r["threads"]) for r in rows] == [("tflite-int8", 1, 1)]
    bundle = run_copy.parent / "bundle"
    assert edgekit("bundle", str(run_copy), "--out", str(bundle), "-a", "tflite-int8").returncode == 0
    proc = remote_cli("verify", bundle, "--remote", "board", "--out", run_copy / "remote")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert edgekit("report", str(run_copy)).returncode == 0
    md = (run_copy / "report.md").read_text()
    assert "## Remote boards" in md and "### Verify on the boards" in md and "### board" in md
    assert "board" in (run_copy / "report.html").read_text()


@pytest.fixture(scope="module")
def openvino_bundle(small_run: Path, mnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tflite-fp32 and the small run's OpenVINO IR fp32 in a bundle."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'edgekit[openvino]')")
    from exporters.base import ExportFormat, Precision
    from toolkit.bundles.build import build_bundle
    from toolkit.steps.export import export_step

    run = tmp_path_factory.mktemp("openvino") / "run"
    shutil.copytree(small_run, run)
    export_step(run, [(ExportFormat.ONNX, Precision.FP32), (ExportFormat.OPENVINO, Precision.FP32)], data=mnist)
    folder, _ = build_bundle(run, run.parent / "bundle", artifact_names=["tflite-fp32", "openvino-fp32"], golden=64)
    return folder


@pytest.mark.slow
def test_a_bundle_with_an_openvino_ir_adds_openvino_to_the_host(
    remote_cli, remote_bundle: Path, openvino_bundle: Path, tmp_path: Path
) -> None:
    """The host's venv gets `edgekit[openvino]` for a bundle holding an IR (once), and then serves a bundle
    without one as it is; a core venv is never given OpenVINO for a TFLite/ONNX bundle."""
    from importlib.metadata import version

    proc = remote_cli("verify", openvino_bundle, "--remote", "board", "--out", tmp_path / "ov")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "ov" / "board" / "verify.json").read_text())
    rows = {r["artifact"]: r for r in doc["results"]}
    assert doc["passed"] and list(rows) == ["tflite-fp32", "openvino-fp32"] and not doc["skipped"]
    assert rows["openvino-fp32"]["runtime_version"] == f"openvino {version('openvino')}"
    if doc["remote"]["setup"] == "installed":
        assert "with openvino" in proc.stderr.replace("\n", " ")
    again = remote_cli("verify", remote_bundle, "--remote", "board", "--out", tmp_path / "core")
    assert again.returncode == 0, again.stderr
    assert "environment up to date (reused)" in again.stderr and "installing edgekit" not in again.stderr


@pytest.mark.slow
def test_remote_bench_runs_an_openvino_ir(settings: SshSettings, openvino_bundle: Path, tmp_path: Path) -> None:
    """bench --remote sends the IR's .bin with its .xml and gives the host OpenVINO for it."""
    bundle = Path(shutil.copytree(openvino_bundle, tmp_path / "bundle"))
    toolkit.bench_remote(bundle, ["board"], settings=BENCH_SETTINGS, artifacts=["openvino-fp32"], ssh=settings)
    doc = json.loads(toolkit.remote_bench_path(bundle, "board").read_text())
    assert {r["artifact"] for r in doc["results"]} == {"openvino-fp32"} and doc["remote"]["host"] == "board"
