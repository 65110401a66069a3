"""`verify --remote` on a 32-bit ARM host: the TFLite-only install over real ssh, under QEMU.

The host is this machine's sshd on 127.0.0.1 with a ForceCommand that runs every command the client
sends inside the armhf Debian root of `verify --emulate pi3` (bullseye, CPython 3.9), under QEMU
user-mode as a Pi 3: `uname -m` says armv7l, `python3` is the root's. The root has no scp, and its pip
no index (`PIP_INDEX_URL` points at a closed port): edgekit copies by streaming over ssh and installs
tflite-runtime 2.13, numpy (built under QEMU when the root was built) and Rich from a wheelhouse built
here. Needs what `test_emulate.py` needs, plus sshd; slow (--run-slow). The first run builds the root
(~25 min cold with numpy).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.sshd_helper import running_sshd
from tests.test_emulate import COLD_BUILD_TIMEOUT, needs_emulation
from toolkit.emulate import chroot, rootfs
from toolkit.emulate.boards import BOARDS

ARTIFACTS = ["tflite-fp32", "tflite-int8", "onnx-fp32"]
REMOTE_DIR = "/tmp/edgekit-remote-test"  # inside the armhf root
ARMHF = rootfs.ROOTS["armhf"]


@pytest.fixture(scope="module")
def armhf_root() -> Iterator[Path]:
    """The armhf root (built if missing), with the Pi 3's /proc mounted while the tests run."""
    chroot.ensure_binfmt(print, "armhf")
    cache = rootfs.root_dir(ARMHF)
    with rootfs.cache_lock(cache, print):
        root, _, state = rootfs.ensure_root(cache, print, ARMHF)
        print(f"armhf root {state}")
        with tempfile.TemporaryDirectory() as scratch, chroot.board_mounts(root, BOARDS["pi3"], Path(scratch)):
            try:
                yield root
            finally:
                shutil.rmtree(root / REMOTE_DIR.lstrip("/"), ignore_errors=True)


@pytest.fixture(scope="module")
def pi3_config(armhf_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    env = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "
    env += f"QEMU_CPU={BOARDS['pi3'].qemu_cpu} PIP_INDEX_URL=http://127.0.0.1:9/ PIP_NO_CACHE_DIR=1"
    force = f'chroot {armhf_root} /usr/bin/env -i {env} /bin/sh -c "$SSH_ORIGINAL_COMMAND"'
    with running_sshd(tmp_path_factory.mktemp("sshd-pi3"), {"pi3": ""}, sftp=False, force={"pi3": force}) as config:
        yield config


@pytest.fixture(scope="module")
def pi3_bundle(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolkit.bundles.build import build_bundle

    path, _ = build_bundle(
        small_run, tmp_path_factory.mktemp("pi3") / "bundle.tar.gz", artifact_names=ARTIFACTS, golden=64
    )
    return path


@pytest.fixture
def cli(pi3_config: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
        env.pop("EDGEKIT_SSH_OPTIONS", None)
        started = time.perf_counter()
        cmd = [sys.executable, "-m", "toolkit.cli", *map(str, args), "--ssh-config", str(pi3_config)]
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=COLD_BUILD_TIMEOUT, check=False
        )
        print(f"{' '.join(map(str, args[:4]))}: exit {proc.returncode} in {time.perf_counter() - started:.1f} s")
        return proc

    return run


@pytest.mark.slow
@needs_emulation
def test_verify_on_a_32_bit_host_installs_tflite_only_and_skips_onnx(cli, pi3_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = cli("verify", pi3_bundle, "--remote", "pi3", "--remote-dir", REMOTE_DIR, "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TFLite-only: armv7l with Python 3.9" in proc.stderr
    assert "finds no armv7l wheel" in proc.stderr or "cannot reach a package index" in proc.stderr
    doc = json.loads((out / "pi3" / "verify.json").read_text())
    assert doc["environment"]["machine"] == "armv7l" and doc["environment"]["python"].startswith("3.9")
    assert doc["remote"]["install_from"] == "wheelhouse"
    assert [r["artifact"] for r in doc["results"]] == ["tflite-fp32", "tflite-int8"] and doc["passed"]
    assert {r["runtime_version"].split()[0] for r in doc["results"]} == {"tflite_runtime"}
    assert doc["results"][1]["reference"] == "builtin"  # 2.13 does not run int8 on XNNPACK
    (skip,) = doc["skipped"]
    assert skip["artifact"] == "onnx-fp32" and "no wheels for 32-bit ARM (armv7l)" in skip["reason"]
    assert "skipped onnx-fp32: onnxruntime has no wheels for 32-bit ARM" in proc.stderr.replace("\n", " ")
    print(
        f"first verify on the 32-bit host: setup {doc['remote']['setup_seconds']:.1f} s, "
        f"run {doc['remote']['seconds']:.1f} s"
    )
    for r in doc["results"]:
        print(f"pi3 {r['artifact']}: max |Δp| {r['max_abs_diff']:.3g}, agreement {r['agreement']}")

    again = cli("verify", pi3_bundle, "--remote", "pi3", "--remote-dir", REMOTE_DIR, "--out", tmp_path / "again")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "reused" in again.stderr
    doc = json.loads((tmp_path / "again" / "pi3" / "verify.json").read_text())
    print(f"second verify (reused): setup {doc['remote']['setup_seconds']:.1f} s, run {doc['remote']['seconds']:.1f} s")


@pytest.mark.slow
@needs_emulation
def test_bench_on_a_32_bit_host_is_refused_in_one_line(cli, small_run: Path) -> None:
    proc = cli("bench", small_run, "--remote", "pi3", "--remote-dir", REMOTE_DIR)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    text = " ".join(proc.stderr.split())
    assert "error: pi3: armv7l (32-bit ARM) with Python 3.9: edgekit installs TFLite-only there" in text, proc.stderr
    assert "`bench --remote` needs a 64-bit OS" in text
