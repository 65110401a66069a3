"""Peak float32 rate of this CPU, from a numpy matrix multiply, to put model GFLOP/s in context.

`python -m benchmarks.peak --threads N` prints one JSON line; `measure_peak([1, 2])` runs one such
process per thread count (BLAS reads its thread count once, when numpy loads, so each count needs a
fresh process with OMP/OPENBLAS/MKL_NUM_THREADS set). The rate is the best of repeated
1024 x 1024 products (2 n^3 FLOPs each): 4 MiB per matrix, big enough for the BLAS kernel to reach
its steady state, small enough that one product takes milliseconds.

numpy's BLAS is only a proxy for the CPU's peak, and a conservative one: LiteRT (XNNPACK) and ONNX
Runtime (MLAS) ship their own kernels. Environment variables such as OPENBLAS_CORETYPE or
OPENBLAS_L2_SIZE can make OpenBLAS pick slower kernels; they are recorded (`openblas_env`), never
changed, so a report can say when the peak may be understated.

Only stdlib imports at module level (benchmarks.errors pulls in numpy through runtimes): the child
must set the thread variables before numpy loads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Variables that change which kernels or how many threads a BLAS library uses; recorded as found.
BLAS_ENV_PREFIXES = ("OPENBLAS_", "GOTO_", "MKL_", "BLIS_")
# Of those, the ones that can select slower kernels than the CPU supports (OpenBLAS reads them at load).
KERNEL_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")
DEFAULT_SIZE = 1024
_NS_PER_S = 1_000_000_000


def blas_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """BLAS-related environment variables that are set (OPENBLAS_*, GOTO_*, MKL_*, BLIS_*, not *_NUM_THREADS).

    Args:
        environ: the environment to read (default: `os.environ`).

    Returns:
        `{name: value}`, sorted by name; empty when none is set.
    """
    env = os.environ if environ is None else environ
    # The thread counts are excluded: measure_peak sets them itself, and the environment report
    # lists them separately (benchmarks.environment.THREAD_ENV_VARS).
    return {k: env[k] for k in sorted(env) if k.startswith(BLAS_ENV_PREFIXES) and k not in THREAD_VARS}


def blas_env_note(environ: dict[str, str] | None = None) -> str | None:
    """A one-line warning when a variable that can slow numpy's BLAS is set, else None.

    Args:
        environ: the environment to read (default: `os.environ`).

    Returns:
        e.g. "OPENBLAS_CORETYPE=Haswell is set: numpy's BLAS may use slower kernels than this CPU
        supports, so the peak GFLOP/s may be understated".
    """
    env = os.environ if environ is None else environ
    found = [f"{k}={env[k]}" for k in KERNEL_OVERRIDES if k in env]
    if not found:
        return None
    verb = "is" if len(found) == 1 else "are"
    return (
        f"{', '.join(found)} {verb} set: numpy's BLAS may use slower kernels than this CPU supports, "
        "so the peak GFLOP/s may be understated"
    )


def achieved(flops_per_image: float, batch_size: int, p50_ms: float) -> float:
    """GFLOP/s a model achieved: FLOPs of one call over its median latency.

    Args:
        flops_per_image: FLOPs for one image (`benchmarks.flops.flops_per_image`).
        batch_size: images per call.
        p50_ms: median latency of one call, in milliseconds.

    Returns:
        Billions of floating-point operations per second.

    Raises:
        ValueError: if an argument is not positive.
    """
    if not flops_per_image > 0 or batch_size < 1 or not p50_ms > 0:
        raise ValueError(
            f"flops_per_image and p50_ms must be above 0 and batch_size 1 or more, "
            f"got {flops_per_image}, {batch_size}, {p50_ms}."
        )
    return flops_per_image * batch_size / (p50_ms / 1000.0) / 1e9


def _blas_name() -> str | None:
    try:
        import numpy as np

        deps: Any = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{deps.get('name')} {deps.get('version')}".strip()
    except Exception:  # numpy < 1.26 has no mode="dicts"; the name is only informative
        return None


def matmul_rate(threads: int, seconds: float = 1.0, size: int = DEFAULT_SIZE) -> dict[str, object]:
    """Time float32 `a @ b` products in this process for about `seconds`; best and median GFLOP/s.

    The thread count only takes effect if the variables in `THREAD_VARS` were set before numpy
    was first imported (`main` and `measure_peak` see to that); it is recorded as asked.

    Args:
        threads: the BLAS thread count this process was started with.
        seconds: how long to keep multiplying after one warm-up product (at least 3 products).
        size: the matrices' side.

    Returns:
        The JSON object `main` prints: `threads`, `size`, `dtype`, `runs`, `seconds`, `gflops`
        (best), `gflops_median`, `blas`, `openblas_env` and `note`.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    out = np.empty((size, size), dtype=np.float32)
    np.matmul(a, b, out=out)  # warm-up: thread pool start, page faults
    clock = time.perf_counter_ns
    times: list[int] = []
    start = clock()
    while len(times) < 3 or clock() - start < seconds * _NS_PER_S:
        t0 = clock()
        np.matmul(a, b, out=out)
        times.append(clock() - t0)
    flops = 2.0 * size**3
    rates = sorted(flops / (t / _NS_PER_S) / 1e9 for t in times)
    return {
        "threads": threads,
        "size": size,
        "dtype": "float32",
        "runs": len(times),
        "seconds": (clock() - start) / _NS_PER_S,
        "gflops": rates[-1],
        "gflops_median": rates[len(rates) // 2],
        "blas": _blas_name(),
        "openblas_env": blas_env(),
        "note": blas_env_note(),
    }


def thread_env(threads: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment with every variable in `THREAD_VARS` set to `threads`.

    Args:
        threads: BLAS threads.
        base: the environment to copy (default: `os.environ`).

    Returns:
        The new environment (other variables, OPENBLAS_CORETYPE included, are left as they are).
    """
    env = dict(os.environ if base is None else base)
    env.update(dict.fromkeys(THREAD_VARS, str(threads)))
    return env


def measure_peak_details(
    thread_counts: Sequence[int], seconds: float = 1.0, size: int = DEFAULT_SIZE, timeout_s: float = 120.0
) -> dict[int, dict[str, Any]]:
    """Run `python -m benchmarks.peak` once per thread count, one after the other.

    Args:
        thread_counts: BLAS thread counts (each 1 or more).
        seconds: timed duration per count.
        size: matrix side.
        timeout_s: kill a child after this many seconds.

    Returns:
        `{threads: the child's JSON object}`.

    Raises:
        ValueError: if an argument is out of range.
        BenchmarkError: if a child fails or prints no JSON.
    """
    from benchmarks.errors import BenchmarkError
    from benchmarks.harness import module_command, worker_env

    if not thread_counts or any(t < 1 for t in thread_counts):
        raise ValueError(f"thread_counts must be one or more counts >= 1, got {list(thread_counts)}.")
    if not seconds > 0 or size < 1:
        raise ValueError(f"seconds must be above 0 and size 1 or more, got {seconds} and {size}.")
    results: dict[int, dict[str, Any]] = {}
    for threads in thread_counts:
        cmd = [*module_command("benchmarks.peak"), "--threads", str(threads)]
        cmd += ["--seconds", repr(float(seconds)), "--size", str(size)]
        try:
            proc = subprocess.run(
                cmd,
                env=thread_env(threads, worker_env()),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BenchmarkError(
                f"peak measurement with {threads} thread(s) timed out after {timeout_s:g} s."
            ) from None
        lines = proc.stdout.strip().splitlines()
        try:
            payload = json.loads(lines[-1]) if lines else None
        except ValueError:
            payload = None
        if proc.returncode != 0 or not isinstance(payload, dict):
            tail = " ".join((proc.stderr.strip().splitlines() or ["no output"])[-1].split())
            raise BenchmarkError(f"peak measurement with {threads} thread(s) failed: {tail[:300]}")
        results[threads] = payload
    return results


def measure_peak(thread_counts: list[int], seconds: float = 1.0) -> dict[int, float]:
    """Peak float32 matmul GFLOP/s by thread count, one fresh process per count.

    Args:
        thread_counts: BLAS thread counts, e.g. `[1, 2]`.
        seconds: timed duration per count.

    Returns:
        `{threads: best GFLOP/s}`.

    Raises:
        ValueError: if an argument is out of range.
        BenchmarkError: if a measurement process fails.
    """
    details = measure_peak_details(thread_counts, seconds)
    return {threads: float(d["gflops"]) for threads, d in details.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.peak`.

    Args:
        argv: arguments without the program name (default: `sys.argv[1:]`).

    Returns:
        0 (argparse exits 2 on a bad command line).
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peak", description="Peak float32 matmul GFLOP/s; prints one JSON line."
    )
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default: 1)")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed duration (default: 1)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"matrix side (default: {DEFAULT_SIZE})")
    args = parser.parse_args(argv)
    if args.threads < 1 or not args.seconds > 0 or args.size < 1:
        parser.error("--threads and --size must be 1 or more and --seconds above 0")
    if "numpy" in sys.modules and any(os.environ.get(v) != str(args.threads) for v in THREAD_VARS):
        # Too late for the variables to matter; say so rather than report a mislabelled rate.
        parser.error("numpy was imported before the thread variables were set; run as `python -m benchmarks.peak`")
    os.environ.update(dict.fromkeys(THREAD_VARS, str(args.threads)))
    print(json.dumps(matmul_rate(args.threads, args.seconds, args.size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
