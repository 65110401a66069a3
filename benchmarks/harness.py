"""Parent side of the benchmark: run `benchmarks.worker` in a fresh process and read its JSON.

One process per (model, threads) gives each measurement a clean cold start and peak RSS, and lets
TensorFlow take a different thread count each time (it is process-global and fixed at first use).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.environment import available_cores
from benchmarks.errors import BenchmarkError
from runtimes.errors import one_line
from runtimes.openvino_runner import PERFORMANCE_HINTS
from runtimes.ort_runner import GRAPH_OPT_LEVELS

# The directory holding the `benchmarks` and `runtimes` packages, so the worker can import them
# whatever the caller's working directory and whether or not edgekit is pip-installed.
REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_MODULE = "benchmarks.worker"
# `python -m` puts the current directory first on sys.path, ahead of PYTHONPATH, so a user's own
# `benchmarks/` or `runtimes/` folder there would shadow ours ("No module named benchmarks.worker",
# or their code running). Python 3.11+ has -P to leave it out. 3.10 (still supported on boards) has
# no such flag, and -I/-E would also drop PYTHONPATH (which finds ours when edgekit is not
# pip-installed), so there a one-line -c bootstrap removes sys.path[0] (the cwd, as '') and runs the
# module with runpy exactly as -m would.
_BOOTSTRAP = (
    "import runpy, sys; del sys.path[0]; sys.argv[:2] = [sys.argv[1]]; "
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


def module_command(module: str, *, safe_path_flag: bool | None = None) -> list[str]:
    """The argv prefix that runs `module` as `python -m` would, without the cwd on sys.path.

    Args:
        module: dotted module name, e.g. `benchmarks.worker`.
        safe_path_flag: use `-P` (True) or the 3.10 bootstrap (False); None picks by version.

    Returns:
        `[python, "-P", "-m", module]` or `[python, "-c", bootstrap, module]`; the module's own
        arguments follow. Run it with `worker_env()` so our packages are found.
    """
    if safe_path_flag is None:
        safe_path_flag = sys.version_info >= (3, 11)
    if safe_path_flag:
        return [sys.executable, "-P", "-m", module]
    return [sys.executable, "-c", _BOOTSTRAP, module]


def thread_counts(all_cores: int | None = None) -> list[int]:
    """Thread counts worth benchmarking: one thread, and every available core.

    Args:
        all_cores: the number of cores to use for the second entry (default: the CPUs this process
            may run on, from its affinity mask, else `os.cpu_count()`).

    Returns:
        `[1, n]`, or `[1]` on a single-core machine.

    Raises:
        ValueError: if `all_cores` is below 1.
    """
    if all_cores is not None and all_cores < 1:
        raise ValueError(f"all_cores must be 1 or more, got {all_cores}.")
    n = all_cores if all_cores is not None else (available_cores() or 1)
    return sorted({1, n})


def worker_command(
    model_path: Path | str,
    inputs_path: Path | str,
    *,
    threads: int | None,
    batch_sizes: Sequence[int],
    warmup_runs: int,
    warmup_seconds: float,
    min_runs: int,
    min_seconds: float,
    max_seconds: float | None,
    xnnpack: bool | None = None,
    graph_optimization: str | None = None,
    performance_hint: str | None = None,
    method: str = "fixed",
    precision: float = 0.02,
    wait: bool = False,
    ready_fd: int | None = None,
) -> list[str]:
    """The command line that runs one worker with this interpreter (cwd-independent; see `module_command`).

    Args:
        model_path: model file.
        inputs_path: `.npy` file of float32 samples matching the model's input.
        threads: runtime threads, or None for the runtime's default.
        batch_sizes: batch sizes to time, in order.
        warmup_runs: minimum warm-up calls per batch size.
        warmup_seconds: minimum warm-up duration per batch size.
        min_runs: minimum timed calls per batch size.
        min_seconds: minimum timed duration per batch size.
        max_seconds: cap per phase and batch size, or None for no cap.
        xnnpack: TFLite only: False adds `--no-xnnpack`; None or True use the default (on).
        graph_optimization: ONNX Runtime only: a level for `--graph-optimization`, or None.
        performance_hint: OpenVINO only: `LATENCY` or `THROUGHPUT` for `--performance-hint`, or None (LATENCY).
        method: `fixed` or `adaptive` (`benchmarks.latency.StopRule`).
        precision: adaptive: the median's target half-width, as a fraction of it.
        wait: load and run the model once, then wait for a line on stdin before timing (`start_worker`).
        ready_fd: with `wait`, a descriptor the worker inherits and writes a line to once loaded.

    Returns:
        The argv list for `subprocess`.
    """
    cmd = [*module_command(WORKER_MODULE), "--model", str(model_path), "--inputs", str(inputs_path)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    for batch_size in batch_sizes:
        cmd += ["--batch", str(batch_size)]
    cmd += ["--warmup-runs", str(warmup_runs), "--warmup-seconds", repr(float(warmup_seconds))]
    cmd += ["--min-runs", str(min_runs), "--min-seconds", repr(float(min_seconds))]
    cmd += ["--max-seconds", "none" if max_seconds is None else repr(float(max_seconds))]
    cmd += ["--method", method, "--precision", repr(float(precision))]
    if wait:
        cmd.append("--wait")
        if ready_fd is not None:
            cmd += ["--ready-fd", str(ready_fd)]
    if xnnpack is False:
        cmd.append("--no-xnnpack")
    if graph_optimization is not None:
        cmd += ["--graph-optimization", graph_optimization]
    if performance_hint is not None:
        cmd += ["--performance-hint", performance_hint]
    return cmd


def worker_env() -> dict[str, str]:
    """This process's environment with the repository root first on PYTHONPATH.

    Returns:
        A copy of `os.environ` for the worker.
    """
    env = os.environ.copy()
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + existing if existing else "")
    return env


def _check_options_apply(
    model_path: Path, xnnpack: bool | None, graph_optimization: str | None, performance_hint: str | None = None
) -> None:
    """Refuse a sweep option for another runtime here, before paying for a worker process.

    The suffix decides the runtime (as in `runtimes.registry`); an unknown suffix is left for the
    worker to report.
    """
    suffix = model_path.suffix.lower()
    if xnnpack is not None and suffix != ".tflite":
        raise BenchmarkError(f"the XNNPACK option applies to TFLite models only, not {model_path.name}.")
    if graph_optimization is not None and suffix != ".onnx":
        raise BenchmarkError(f"the graph optimization option applies to ONNX models only, not {model_path.name}.")
    if performance_hint is not None and suffix != ".xml":
        raise BenchmarkError(f"the performance hint applies to OpenVINO models only, not {model_path.name}.")


def _parse_payload(stdout: str) -> dict[str, Any] | None:
    """The worker's JSON object: all of stdout, else its last line that parses as a JSON object."""
    candidates = [stdout, *reversed(stdout.strip().splitlines())]
    for text in candidates:
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _failure_reason(returncode: int, payload: dict[str, Any] | None, stderr: str) -> str:
    if payload is not None and "error" in payload:
        return one_line(str(payload["error"]), 500)
    lines = [line for line in stderr.splitlines() if line.strip()]
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        tail = f" (last stderr line: {one_line(lines[-1], 500)})" if lines else ""
        return f"worker was killed by {name}{tail}"
    if lines:
        return one_line(lines[-1], 500)
    return f"worker exited with status {returncode} and printed no error"


def run_worker(
    model_path: Path | str,
    inputs_path: Path | str,
    *,
    threads: int | None,
    batch_sizes: Sequence[int] = (1,),
    warmup_runs: int = 10,
    warmup_seconds: float = 0.2,
    min_runs: int = 1024,
    min_seconds: float = 2.0,
    max_seconds: float | None = 60.0,
    timeout_s: float = 600,
    xnnpack: bool | None = None,
    graph_optimization: str | None = None,
    performance_hint: str | None = None,
    method: str = "fixed",
    precision: float = 0.02,
) -> dict[str, Any]:
    """Benchmark one model at one thread count in a fresh Python process.

    Args:
        model_path: model file (`.tflite`, `.onnx` or `.keras`).
        inputs_path: `.npy` file of float32 images or vectors matching the model's input, values in its
            float range (repeated if N < batch size).
        threads: runtime threads, or None for the runtime's default.
        batch_sizes: batch sizes to time, in order (at least one).
        warmup_runs: minimum warm-up calls per batch size.
        warmup_seconds: minimum warm-up duration per batch size, in seconds.
        min_runs: minimum timed calls per batch size.
        min_seconds: minimum timed duration per batch size, in seconds.
        max_seconds: cap per phase and batch size, in seconds; None for no cap.
        timeout_s: kill the worker after this many seconds.
        xnnpack: TFLite only: False runs without the XNNPACK delegate; None (or True) keeps the
            default (on).
        graph_optimization: ONNX Runtime only: "disable", "basic", "extended" or "all"; None for
            the default ("all").
        performance_hint: OpenVINO only: "LATENCY" or "THROUGHPUT"; None for the default (LATENCY).
        method: `fixed` (stop at the floor) or `adaptive` (stop once the median is known to `precision`).
        precision: adaptive: the median's target 95 % CI half-width, as a fraction of it.

    Returns:
        The worker's JSON object: `model`, `runtime`, `backend`, `runtime_version`, `threads`,
        `options` (`{"xnnpack": bool | None, "graph_optimization": str | None}`, None where the
        option does not apply to the runtime), `delegated` (TFLite: whether XNNPACK took part of
        the graph; None for other runtimes), `load_ms`, `activate_ms`, `first_inference_ms`,
        `peak_rss_mb` and `results` (one `LatencyStats.to_dict()` per batch size).

    Raises:
        ValueError: if an argument is out of range (including an unknown `graph_optimization`).
        BenchmarkError: if `xnnpack` or `graph_optimization` is set for a model of another runtime,
            or the worker failed, timed out or printed no JSON; the message is one line and
            carries the worker's own error (or its last stderr line).
    """
    _check_arguments(batch_sizes, threads, timeout_s, graph_optimization, performance_hint)
    _check_options_apply(Path(model_path), xnnpack, graph_optimization, performance_hint)
    cmd = worker_command(
        model_path,
        inputs_path,
        threads=threads,
        batch_sizes=batch_sizes,
        warmup_runs=warmup_runs,
        warmup_seconds=warmup_seconds,
        min_runs=min_runs,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        xnnpack=xnnpack,
        graph_optimization=graph_optimization,
        performance_hint=performance_hint,
        method=method,
        precision=precision,
    )
    return _run_process(cmd, _what(model_path, threads), timeout_s)


def _what(model_path: Path | str, threads: int | None) -> str:
    return f"benchmark of {model_path} with {threads if threads is not None else 'default'} thread(s)"


class StartedWorker:
    """A worker started early (`start_worker`): it imports its runtime and loads the model while other work
    runs, then times nothing until `go()`. For runtimes whose start-up is long (TensorFlow: seconds), so the
    start-up overlaps the steps before the benchmark instead of adding to it; and for workers started together
    (`run_workers`), whose start-ups then share the cores while none is timing."""

    def __init__(self, cmd: list[str], what: str, ready: tuple[int, int] | None = None) -> None:
        """Start `cmd` (a `worker_command(..., wait=True)`); `ready` is a pipe (read, write) whose write end
        the command names with `ready_fd`, for `wait_ready`."""
        import tempfile

        self.what = what
        self._ready = None if ready is None else ready[0]
        # Files, not pipes: TensorFlow logs to stderr while the worker waits, and a full pipe would block it.
        self._out = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115 (closed by go/cancel)
        self._err = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                cmd,
                env=worker_env(),
                stdin=subprocess.PIPE,
                stdout=self._out,
                stderr=self._err,
                text=True,
                pass_fds=() if ready is None else (ready[1],),
            )
        except OSError as exc:
            self._close_files()
            raise BenchmarkError(f"{what} could not start {sys.executable}: {exc.strerror or exc}.") from None
        finally:
            if ready is not None:
                os.close(ready[1])  # the worker holds its own copy, so the pipe ends when the worker does

    def wait_ready(self, timeout_s: float = 600) -> None:
        """Block until the worker has loaded its model and is idle, or has ended (`go()` then says why), for at
        most `timeout_s` (then `go()` applies its own timeout). Immediate for a worker started without a pipe."""
        if self._ready is None:
            return
        import select

        select.select([self._ready], [], [], timeout_s)

    def go(self, timeout_s: float = 600, beaten_above_ms: Mapping[int, float] | None = None) -> dict[str, Any]:
        """Let the worker time its batches; its JSON object (as `run_worker` returns).

        `beaten_above_ms`: per batch size, the p50 (ms) above which the adaptive method may stop this configuration
        early (`benchmarks.latency.StopRule.beaten_above_ms`), known only now that the workers before it have run.

        Raises:
            BenchmarkError: the worker failed, timed out or printed no JSON (one line).
        """
        try:
            assert self._proc.stdin is not None
            try:
                note = json.dumps({str(b): ms for b, ms in beaten_above_ms.items()}) if beaten_above_ms else ""
                self._proc.stdin.write(f"go {note}".strip() + "\n")
                self._proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass  # it already ended: its own error is in its output
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
                raise BenchmarkError(f"{self.what} timed out after {timeout_s:g} s; lower --max-seconds.") from None
            self._out.seek(0)
            self._err.seek(0)
            return _payload_or_error(self._proc.returncode, self._out.read(), self._err.read(), self.what)
        finally:
            self._close_files()

    def cancel(self) -> None:
        """Stop the worker without timing anything (closing its stdin ends it; kill if it does not go)."""
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.close()
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._close_files()

    def _close_files(self) -> None:
        self._out.close()
        self._err.close()
        if self._ready is not None:
            os.close(self._ready)
            self._ready = None


def start_worker(
    model_path: Path | str, inputs_path: Path | str, *, threads: int | None, batch_sizes: Sequence[int], **timing: Any
) -> StartedWorker:
    """Start a worker that loads the model now and times it when `go()` is called (see `run_worker`).

    Args:
        model_path: model file.
        inputs_path: the inputs file the worker times on.
        threads: runtime threads, or None for the runtime's default.
        batch_sizes: batch sizes to time, in order.
        **timing: the rest of `worker_command`'s keyword arguments (warm-up, floors, cap, method, precision).

    Raises:
        ValueError: an argument out of range.
        BenchmarkError: the process could not start.
    """
    _check_arguments(batch_sizes, threads, 1, timing.get("graph_optimization"), timing.get("performance_hint"))
    _check_options_apply(
        Path(model_path), timing.get("xnnpack"), timing.get("graph_optimization"), timing.get("performance_hint")
    )
    ready = os.pipe()
    try:
        cmd = worker_command(
            model_path, inputs_path, threads=threads, batch_sizes=batch_sizes, wait=True, ready_fd=ready[1], **timing
        )
    except BaseException:
        os.close(ready[0])
        os.close(ready[1])
        raise
    return StartedWorker(cmd, _what(model_path, threads), ready)


def run_workers(
    starts: Sequence[Callable[[], StartedWorker]],
    timeout_s: float = 600,
    beaten_above: Callable[[int], Mapping[int, float] | None] | None = None,
) -> Generator[dict[str, Any], None, None]:
    """Run several benchmark workers, each in its own fresh process, starting them all at once and timing them one
    after another: their start-ups (interpreter, imports, model load: most of a short worker's wall time) share
    the cores, while each times alone, its siblings idle (blocked on stdin) or done.

    Args:
        starts: one callable per worker that starts it (`start_worker` with its arguments), in timing order; as
            many as the machine has cores is what overlaps well.
        timeout_s: the longest wait for each worker's load, and then for its timing.
        beaten_above: called with a worker's index just before it times: its `StartedWorker.go` thresholds, from
            what the workers before it measured.

    Yields:
        Each worker's JSON object (as `run_worker` returns), in order, as it finishes timing; the next worker
        times only when the next one is asked for. Close the generator (or exhaust it) to stop those left.

    Raises:
        BenchmarkError: a worker failed, timed out or printed no JSON (one line); the others are stopped.
    """
    workers: list[StartedWorker] = []
    try:
        for start in starts:
            workers.append(start())
        for worker in workers:
            worker.wait_ready(timeout_s)
        for i, worker in enumerate(workers):
            yield worker.go(timeout_s, beaten_above(i) if beaten_above is not None else None)
    finally:
        for worker in workers:
            worker.cancel()


def _check_arguments(
    batch_sizes: Sequence[int],
    threads: int | None,
    timeout_s: float,
    graph_optimization: str | None,
    performance_hint: str | None = None,
) -> None:
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise ValueError(f"batch_sizes must be one or more sizes >= 1, got {list(batch_sizes)}.")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be 1 or more (or None), got {threads}.")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be above 0, got {timeout_s}.")
    if graph_optimization is not None and graph_optimization not in GRAPH_OPT_LEVELS:
        raise ValueError(
            f"graph_optimization must be one of {', '.join(GRAPH_OPT_LEVELS)} or None, got {graph_optimization!r}."
        )
    if performance_hint is not None and performance_hint not in PERFORMANCE_HINTS:
        raise ValueError(
            f"performance_hint must be one of {', '.join(PERFORMANCE_HINTS)} or None, got {performance_hint!r}."
        )


def _run_process(cmd: list[str], what: str, timeout_s: float) -> dict[str, Any]:
    """Run the worker in a fresh process; its JSON object, or a one-line BenchmarkError carrying its error."""
    try:
        proc = subprocess.run(
            cmd,
            env=worker_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{what} timed out after {timeout_s:g} s; lower --min-runs or --max-seconds.") from None
    except OSError as exc:
        raise BenchmarkError(f"{what} could not start {sys.executable}: {exc.strerror or exc}.") from None
    return _payload_or_error(proc.returncode, proc.stdout, proc.stderr, what)


def _payload_or_error(returncode: int, stdout: str, stderr: str, what: str) -> dict[str, Any]:
    """The worker's JSON object, or a one-line BenchmarkError carrying its error."""
    payload = _parse_payload(stdout)
    if returncode != 0 or payload is None or "error" in payload:
        reason = _failure_reason(returncode, payload, stderr)
        if payload is None and returncode == 0:
            reason = "worker printed no JSON result"
        raise BenchmarkError(f"{what} failed: {reason}")
    return payload
