"""Running `benchmarks.outputs` natively or under an emulated CPU, and reading its lines as they come.

- Natively, and for a model of this machine's own architecture: this Python, directly or under
  `qemu-<arch>-static -cpu MODEL` (user-mode: no root, the same venv; QEMU reports the model's CPUID or
  HWCAPs, so numpy, ONNX Runtime and XNNPACK pick that class's kernels).
- An arm64 model on an x86-64 machine: in the cached arm64 root of `verify --emulate` (`toolkit.emulate.rootfs`,
  needs root), with the model's /proc/cpuinfo, the job's files copied in and the outputs copied out.

Only the runtimes run under emulation: the worker imports no TensorFlow.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.cpu import arch_name
from benchmarks.harness import module_command, worker_env
from runtimes.errors import last_line
from toolkit.cpus.models import ARM64, CpuModel
from toolkit.emulate.errors import EmulateError

WORKER = "benchmarks.outputs"
QEMU_USER: dict[str, str] = {"x86-64": "qemu-x86_64-static", ARM64: "qemu-aarch64-static"}
APT_FIX = "apt-get install qemu-user-static"
# QEMU warns once per CPUID bit a CPU model asks for and TCG lacks; the answer is the same without it.
_QEMU_NOISE = "TCG doesn't support requested feature"

Line = Callable[[dict[str, Any]], None]


@dataclass
class JobResult:
    """What one worker run reported: the CPU it saw and one line per artifact (by name)."""

    cpu: dict[str, Any] | None = None
    lines: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    qemu: str | None = None


def qemu_version(binary: str) -> str:
    proc = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.splitlines()[0].strip() if proc.stdout else "unknown"


def needs_root(model: CpuModel) -> bool:
    """True for a model of another architecture than this machine's (it runs in the emulated root)."""
    return model.arch != arch_name()


def check_can_emulate(model: CpuModel) -> None:
    """One-line EmulateError when `model` cannot be emulated here (QEMU missing, wrong host)."""
    host = arch_name()
    if not needs_root(model):
        binary = QEMU_USER.get(model.arch)
        if binary is None or shutil.which(binary) is None:
            raise EmulateError(f"--cpu {model.name} needs {binary or 'QEMU user-mode'}; install it with: {APT_FIX}")
        return
    if model.arch == ARM64 and host == "x86-64":
        from toolkit.emulate.chroot import check_host

        check_host(need_debootstrap=False, arch="arm64")
        return
    raise EmulateError(f"--cpu {model.name} ({model.arch}) cannot be emulated on this {host} machine.")


def _read_lines(proc: subprocess.Popen[str], result: JobResult, on_line: Line) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue  # only our JSON lines reach stdout; anything else is not ours to judge
        if not isinstance(line, dict):
            continue
        if "cpu" in line:
            result.cpu = line["cpu"]
        elif "artifact" in line:
            result.lines[str(line["artifact"])] = line
        on_line(line)


def _run(cmd: list[str], env: dict[str, str], result: JobResult, on_line: Line, what: str) -> None:
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", env=env, bufsize=1
    )
    try:
        _read_lines(proc, result, on_line)
        stderr = proc.stderr.read() if proc.stderr is not None else ""
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    result.seconds = time.perf_counter() - started
    if result.cpu is None or code not in (0, 1):
        noise = "\n".join(ln for ln in stderr.splitlines() if _QEMU_NOISE not in ln)
        signal = f" (signal {-code})" if code < 0 else ""
        raise EmulateError(f"{what} exited {code}{signal}: {last_line(noise) or 'no output'}")


def run_native(job: Path, on_line: Line) -> JobResult:
    """The worker in this Python, on this machine's CPU."""
    result = JobResult()
    _run([*module_command(WORKER), str(job)], worker_env(), result, on_line, "the outputs worker")
    return result


def run_emulated(model: CpuModel, job: Path, on_line: Line, *, say: Callable[[str], None]) -> JobResult:
    """The worker under QEMU as `model`: directly (same architecture) or in the arm64 root (another one)."""
    if needs_root(model):
        return _run_in_root(model, job, on_line, say)
    binary = QEMU_USER[model.arch]
    result = JobResult(qemu=qemu_version(binary))
    # QEMU passes the path as argv[0], so a venv's Python still finds its pyvenv.cfg.
    cmd = [binary, "-cpu", model.qemu_cpu, *module_command(WORKER), str(job)]
    _run(cmd, worker_env(), result, on_line, f"the outputs worker under QEMU ({model.qemu_cpu})")
    return result


@contextmanager
def _root_scratch(root: Path) -> Iterator[Path]:
    scratch = Path(tempfile.mkdtemp(prefix="edgekit-cpu-", dir=root / "tmp"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_in_root(model: CpuModel, job: Path, on_line: Line, say: Callable[[str], None]) -> JobResult:
    """Copy the job's files into the arm64 root, run the root's worker as `model`, copy the outputs back."""
    from toolkit.emulate.chroot import VENV, board_mounts, chroot_env, ensure_binfmt, unmount_all
    from toolkit.emulate.chroot import qemu_version as root_qemu
    from toolkit.emulate.rootfs import ROOTS, cache_lock, ensure_extras, ensure_root, root_dir

    assert model.board is not None, f"{model.name}: an arm64 model needs a /proc/cpuinfo (board)"
    kind = ROOTS["arm64"]
    ensure_binfmt(say, kind.arch)
    spec = json.loads(job.read_text(encoding="utf-8"))
    cache = root_dir(kind)
    with cache_lock(cache, say):
        root, marker, _state = ensure_root(cache, say, kind)
        # An OpenVINO IR (.xml) needs OpenVINO in the root, added once (as `verify --emulate` does).
        irs = any(Path(str(a["path"])).suffix == ".xml" for a in spec["artifacts"])
        marker = ensure_extras(root, marker, ("openvino",) if irs else (), say, kind)
        unmount_all(root)  # left by a killed run
        with _root_scratch(root) as scratch:
            inside = Path("/tmp") / scratch.name
            shutil.copy2(spec["inputs"], scratch / "inputs.npy")
            artifacts = []
            for i, entry in enumerate(spec["artifacts"]):
                copy = scratch / f"{i}-{Path(entry['path']).name}"
                shutil.copy2(entry["path"], copy)
                weights = Path(entry["path"]).with_suffix(".bin")  # an IR's weights, found by its .xml's name
                if copy.suffix == ".xml" and weights.is_file():
                    shutil.copy2(weights, copy.with_suffix(".bin"))
                artifacts.append({**entry, "path": str(inside / copy.name)})
            inner = {**spec, "inputs": str(inside / "inputs.npy"), "out": str(inside / "out"), "artifacts": artifacts}
            (scratch / "job.json").write_text(json.dumps(inner), encoding="utf-8")
            result = JobResult(qemu=marker.get("qemu") or root_qemu(kind.arch))
            out_dir = Path(spec["out"])
            out_dir.mkdir(parents=True, exist_ok=True)

            def outside(line: dict[str, Any]) -> None:
                if "file" in line:  # the root's path → the caller's
                    name = Path(str(line["file"])).name
                    shutil.copy2(scratch / "out" / name, out_dir / name)
                    line["file"] = str(out_dir / name)
                on_line(line)

            cmd = ["chroot", str(root), f"{VENV}/bin/python", "-P", "-m", WORKER, str(inside / "job.json")]
            with board_mounts(root, model.board, scratch):
                _run(cmd, chroot_env(model.board), result, outside, f"the outputs worker under QEMU ({model.qemu_cpu})")
    return result
