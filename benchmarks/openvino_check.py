"""Is the harness honest on OpenVINO? Compare its p50 with OpenVINO's own `benchmark_app` on the same IR files.

    python -m benchmarks.openvino_check --exports RUN/exports [--out benchmarks/results]
    python -m benchmarks.openvino_check --xml A.xml --xml B.xml

`--exports` picks the OpenVINO artifacts of a run made with `-r openvino`: `model_fp32.xml` (openvino-fp32),
`model_fp16.xml` (openvino-fp16) and `model_int8.xml` (openvino-int8), those present.

For each model, at batch 1, 1 thread, LATENCY hint, 1 stream and f32 inference precision (edgekit's defaults):

- harness: an edgekit `OpenVINORunner` timed by `measure_latency` (what `edgekit bench` reports), in this process;
- benchmark_app: OpenVINO's own tool (beside this Python, or `--benchmark-app`), run as a child process with
  `-api sync -shape [1,...] -load_config` (PERFORMANCE_HINT LATENCY, NUM_STREAMS 1, INFERENCE_NUM_THREADS 1,
  INFERENCE_PRECISION_HINT f32: the config file, because benchmark_app refuses `-nthreads` beside `-hint`), its
  reported median latency. Its settings are read back from its own output and the check refuses to compare
  when they differ. It times each call in C++ (`InferRequest.latency`) on random input: a CNN's time does not
  depend on the values.

The two alternate over several rounds, the order swapped every round (ABBA), as `benchmarks.harness_check` does;
the verdict uses the median over rounds of the per-round ratio harness p50 / benchmark_app median, and passes
within 1 ± 5 %. Exit 0 when every artifact passes, 3 when one does not, 1 on a user error.

Where the time goes: each round also times the harness's call from Python (perf_counter_ns around `run_native`)
and reads OpenVINO's C++ figure for the same calls (`OpenVINORunner.last_call_ms`): their medians split the
harness's time into the C++ inference and the Python around it (binding, output copy), and a bare
`request.infer` loop from Python (`benchmarks.minimal.minimal_openvino`) shows the least any Python caller pays;
benchmark_app's own loop duration over its iterations is its per-call time from Python (a mean). These are
shown beside the verdict, not judged.

benchmark_app runs with `CI=true` in its environment: OpenVINO's telemetry (started when its tools import
`openvino`) declines there (see `runtimes.openvino_import`); edgekit sends nothing on a user's behalf.

Writes `openvino-check-<YYYY-MM-DD>-<machine>.json` and `.txt` (the table) with the environment.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.environment import capture_environment
from benchmarks.errors import BenchmarkError
from benchmarks.harness_check import DEFAULT_OUT, check_document, finish, write_check
from benchmarks.latency import measure_latency
from benchmarks.minimal import minimal_openvino
from runtimes.openvino_runner import OpenVINORunner

TOLERANCE = 0.05
EXPORTS_FILES = ("model_fp32.xml", "model_fp16.xml", "model_int8.xml")
EXIT_OK, EXIT_ERROR, EXIT_FAILED = 0, 1, 3
# What both sides run with; benchmark_app gets it as its -load_config file.
CPU_CONFIG = {
    "PERFORMANCE_HINT": "LATENCY",
    "NUM_STREAMS": "1",
    "INFERENCE_NUM_THREADS": "1",
    "INFERENCE_PRECISION_HINT": "f32",
}
# How benchmark_app echoes each setting back (its "Querying optimal runtime parameters" step).
_ECHOED = {
    "PERFORMANCE_HINT": "LATENCY",
    "NUM_STREAMS": "1",
    "INFERENCE_NUM_THREADS": "1",
    "INFERENCE_PRECISION_HINT": "<Type: 'float32'>",
}
_NS_PER_MS = 1_000_000


def artifact_label(model: Path) -> str:
    """`openvino-fp32` for `model_fp32.xml`, `openvino-<stem>` for any other file name."""
    return "openvino-" + model.stem.removeprefix("model_").replace("_", "-")


def find_benchmark_app(given: Path | None = None) -> Path:
    """The `benchmark_app` to run: `given`, else the one beside this Python (the openvino package's), else PATH's.

    Raises:
        BenchmarkError: none found (with how to get it).
    """
    if given is not None:
        if not given.is_file():
            raise BenchmarkError(f"--benchmark-app {given} does not exist; give the path of OpenVINO's benchmark_app.")
        return given
    beside = Path(sys.executable).parent / "benchmark_app"
    if beside.is_file():
        return beside
    found = shutil.which("benchmark_app")
    if found is None:
        raise BenchmarkError(
            "OpenVINO's benchmark_app was not found beside this Python or on PATH; install it with "
            "`pip install 'edgekit[openvino]'` or pass --benchmark-app PATH."
        )
    return Path(found)


# -- benchmark_app -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AppRun:
    """What one benchmark_app run reported."""

    median_ms: float
    iterations: int
    settings: dict[str, str]
    wall_mean_ms: float  # its loop's duration over its iterations: each call from Python, as the harness times it


def parse_app_output(text: str) -> AppRun:
    """benchmark_app's console output -> its median latency, iteration count and the settings it echoed.

    Raises:
        BenchmarkError: the output has no median or count line (another benchmark_app version?).
    """
    median = re.search(r"Median:\s+([0-9.]+)\s*(us|ms)", text)
    count = re.search(r"Count:\s+(\d+) iterations", text)
    duration = re.search(r"Duration:\s+([0-9.]+) ms", text)
    if median is None or count is None or duration is None:
        raise BenchmarkError(
            "benchmark_app printed no 'Median:', 'Count:' or 'Duration:' line; is it OpenVINO's benchmark_app?"
        )
    value = float(median.group(1))
    settings = {}
    for key in _ECHOED:
        echoed = re.search(rf"^\[ INFO \]\s+{key}: (.+)$", text, flags=re.MULTILINE)
        settings[key] = echoed.group(1).strip() if echoed else ""
    runs = int(count.group(1))
    return AppRun(value / 1000 if median.group(2) == "us" else value, runs, settings, float(duration.group(1)) / runs)


def run_app(app: Path, model: Path, shape: tuple[int, ...], config: Path, *, min_runs: int, seconds: float) -> AppRun:
    """One benchmark_app run: at least `min_runs` calls and `seconds` (rounded up to whole seconds, its unit).

    Raises:
        BenchmarkError: it failed, or ran with other settings than `CPU_CONFIG`.
    """
    cmd = [str(app), "-m", str(model), "-d", "CPU", "-api", "sync", "-load_config", str(config)]
    cmd += ["-shape", "[" + ",".join(str(d) for d in shape) + "]", "-niter", str(min_runs)]
    if seconds > 0:
        cmd += ["-t", str(math.ceil(seconds))]
    # Telemetry declined: benchmark_app imports openvino, whose telemetry counts a missing consent file as yes.
    env = dict(os.environ, CI="true")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    text = done.stdout + done.stderr
    if done.returncode != 0:
        last = [ln.strip() for ln in text.splitlines() if ln.strip()][-1:] or ["no output"]
        raise BenchmarkError(f"benchmark_app failed on {model.name} (exit {done.returncode}): {last[0]}")
    run = parse_app_output(text)
    wrong = {k: v for k, v in run.settings.items() if v != _ECHOED[k]}
    if wrong:
        got = ", ".join(f"{k}={v or '?'}" for k, v in wrong.items())
        raise BenchmarkError(
            f"benchmark_app ran {model.name} with {got}, "
            f"not {', '.join(f'{k}={_ECHOED[k]}' for k in wrong)}; the two sides would not be comparable."
        )
    return run


# -- one model ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Timing:
    """How long each side of a round warms up and is timed."""

    min_runs: int
    seconds: float
    warmup_runs: int = 10
    warmup_seconds: float = 0.2


def check_model(
    app: Path, model: Path, *, rounds: int, timing: _Timing, tolerance: float = TOLERANCE
) -> dict[str, Any]:
    """Alternate the harness and benchmark_app on one IR file; see the module docstring.

    Returns:
        The JSON-ready result: medians, ratio, verdict, the C++/Python split and every round.

    Raises:
        EdgekitError: the model does not load, or benchmark_app fails on it.
    """
    runner = OpenVINORunner(model, num_threads=1)
    with runner, tempfile.TemporaryDirectory(prefix="edgekit-ovcheck-") as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({"CPU": CPU_CONFIG}), encoding="utf-8")
        spec = runner.model_spec()
        x = spec.sample_batch(1)
        sides = _Sides(app, model, config, runner, minimal_openvino(model, tuple(x.shape), CPU_CONFIG))
        rows = [_round(sides, x, timing, harness_first=r % 2 == 0) for r in range(rounds)]
    diff = statistics.median(row["ratio"] for row in rows) - 1.0
    wall = statistics.median(row["split_wall_p50_ms"] for row in rows)
    cpp = statistics.median(row["split_cpp_p50_ms"] for row in rows)
    app_ms = statistics.median(row["app_median_ms"] for row in rows)
    bare = statistics.median(row["bare_p50_ms"] for row in rows)
    app_wall = statistics.median(row["app_wall_mean_ms"] for row in rows)
    return {
        "artifact": artifact_label(model),
        "model": str(model),
        "input_shape": list(x.shape),
        "spec": spec.describe(),
        "runtime_version": OpenVINORunner.runtime_version(),
        "harness_p50_ms": statistics.median(row["harness_p50_ms"] for row in rows),
        "app_median_ms": app_ms,
        "ratio": 1.0 + diff,
        "diff": diff,
        "ratio_range": [min(row["ratio"] for row in rows), max(row["ratio"] for row in rows)],
        # The split: the harness's call from Python against OpenVINO's C++ time of the same calls.
        "split_wall_p50_ms": wall,
        "split_cpp_p50_ms": cpp,
        "python_overhead_ms": wall - cpp,
        "cpp_vs_app": cpp / app_ms,
        # benchmark_app's own loop timed from Python (a mean: it keeps no per-call wall times).
        "app_wall_mean_ms": app_wall,
        # A bare `request.infer` loop from Python: the least any Python caller pays; the harness against it.
        "bare_p50_ms": bare,
        "harness_vs_bare": wall / bare,
        "noisy_rounds": sum(1 for row in rows if row["harness_noise"]),
        "pass": abs(diff) <= tolerance,
        "rounds": rows,
    }


@dataclass(frozen=True)
class _Sides:
    """What a round times: benchmark_app on `model` with `config`, the harness's `runner`, the bare loop's call."""

    app: Path
    model: Path
    config: Path
    runner: OpenVINORunner
    bare_call: Callable[[np.ndarray], object]


def _round(sides: _Sides, x: np.ndarray, timing: _Timing, *, harness_first: bool) -> dict[str, Any]:
    """One round: the harness and benchmark_app in the given order, then the C++/Python split of the harness call."""
    runner = sides.runner
    harness: Any = None
    run: AppRun | None = None
    for side in ("harness", "app") if harness_first else ("app", "harness"):
        if side == "harness":
            harness = measure_latency(
                runner,
                x,
                warmup_runs=timing.warmup_runs,
                warmup_seconds=timing.warmup_seconds,
                min_runs=timing.min_runs,
                min_seconds=timing.seconds,
                max_seconds=None,
                measure_io=False,
            )
        else:
            run = run_app(
                sides.app, sides.model, tuple(x.shape), sides.config, min_runs=timing.min_runs, seconds=timing.seconds
            )
    assert harness is not None and run is not None
    wall, cpp, bare = _split(runner, sides.bare_call, runner.to_native(x), timing.min_runs)
    return {
        "order": "harness-first" if harness_first else "app-first",
        "harness_p50_ms": harness.p50_ms,
        "app_median_ms": run.median_ms,
        "ratio": harness.p50_ms / run.median_ms,
        "harness_runs": harness.runs,
        "app_runs": run.iterations,
        "app_wall_mean_ms": run.wall_mean_ms,
        "harness_noise": harness.noise,
        "split_wall_p50_ms": wall,
        "split_cpp_p50_ms": cpp,
        "bare_p50_ms": bare,
    }


def _split(
    runner: OpenVINORunner, bare_call: Callable[[np.ndarray], object], x: np.ndarray, runs: int
) -> tuple[float, float, float]:
    """Medians of `runs` harness calls timed from Python, of OpenVINO's C++ latency of those same calls, and of
    `runs` bare `request.infer` calls from Python (alternating in blocks of 64, so drift hits both)."""
    clock = time.perf_counter_ns
    wall: list[float] = []
    cpp: list[float] = []
    bare: list[float] = []
    while len(wall) < runs:
        for _ in range(64):
            t0 = clock()
            runner.run_native(x)
            wall.append((clock() - t0) / _NS_PER_MS)
            cpp.append(runner.last_call_ms())
        for _ in range(64):
            t0 = clock()
            bare_call(x)
            bare.append((clock() - t0) / _NS_PER_MS)
    return statistics.median(wall), statistics.median(cpp), statistics.median(bare)


# -- report ------------------------------------------------------------------------------------------
def render_table(result: dict[str, Any]) -> str:
    """The plain-text table printed and saved as `.txt`.

    Args:
        result: the object written as JSON.

    Returns:
        A few lines of text ending in a newline.
    """
    env, s = result["environment"], result["settings"]
    lines = [
        f"openvino check {result['date']} on {result['machine']} ({env.get('cpu_model')}, "
        f"{env.get('cores_available')} cores available); batch 1, 1 thread, LATENCY hint, 1 stream, f32; "
        f"{s['rounds']} alternating rounds of >= {s['min_runs']} calls and >= {s['seconds']:g} s",
        "harness = edgekit's timed call (OpenVINORunner.run_native); benchmark_app = OpenVINO's tool, -api sync, "
        "its median",
        "",
        f"{'artifact':<15} {'harness p50 µs':>15} {'b_app med µs':>13} {'ratio':>7} {'round range':>13} "
        f"{'C++ µs':>8} {'python µs':>10} {'C++/b_app':>10} {'b_app wall':>10} {'bare µs':>8} {'vs bare':>8} "
        f"{'noisy':>6}  verdict",
    ]
    for r in result["results"]:
        lo, hi = r["ratio_range"]
        lines.append(
            f"{r['artifact']:<15} {r['harness_p50_ms'] * 1000:>15.2f} {r['app_median_ms'] * 1000:>13.2f} "
            f"{r['ratio']:>6.3f}x {f'{lo:.3f}..{hi:.3f}':>13} {r['split_cpp_p50_ms'] * 1000:>8.2f} "
            f"{r['python_overhead_ms'] * 1000:>10.2f} {r['cpp_vs_app']:>9.3f}x {r['app_wall_mean_ms'] * 1000:>10.2f} "
            f"{r['bare_p50_ms'] * 1000:>8.2f} "
            f"{r['harness_vs_bare']:>7.3f}x {r['noisy_rounds']:>6}  "
            f"{'pass' if r['pass'] else 'FAIL'}"
        )
    limit = 1 + result["tolerance"]
    lines += [
        "",
        "ratio = median over rounds of (harness p50 / benchmark_app median); "
        f"pass within {2 - limit:.2f}x..{limit:.2f}x.",
        "C++ = OpenVINO's own timing (InferRequest.latency) of harness calls, python = their time from Python minus "
        "it (binding, output copy); C++/b_app compares the same C++ figure in both processes; "
        "b_app wall = benchmark_app's loop duration / iterations (a mean, from Python as the harness times); "
        "bare = a bare request.infer loop from Python (the least a Python caller pays); "
        "vs bare = the harness's call against it.",
        f"overall: {'PASS' if result['pass'] else 'FAIL'}",
    ]
    return "\n".join(lines) + "\n"


def run_check(
    models: Sequence[Path],
    *,
    out_dir: Path | None,
    app: Path | None = None,
    rounds: int = 6,
    min_runs: int = 1024,
    seconds: float = 1.0,
    machine: str | None = None,
) -> tuple[dict[str, Any], list[Path]]:
    """Check each IR file, then write the JSON and text files.

    Args:
        models: `.xml` files.
        out_dir: where to write the files (created if missing); None writes nothing.
        app: benchmark_app's path (default: `find_benchmark_app`).
        rounds: alternating rounds per model.
        min_runs: minimum timed calls per side and round.
        seconds: minimum timed duration per side and round (benchmark_app: rounded up to whole seconds).
        machine: label for the file names (default: `machine_label` of this machine).

    Returns:
        (the result object, the paths written).

    Raises:
        EdgekitError: on a bad model, a failing benchmark_app or an unwritable output directory.
    """
    tool = find_benchmark_app(app)
    env = capture_environment()
    timing = _Timing(min_runs, seconds)
    results = [check_model(tool, path, rounds=rounds, timing=timing) for path in models]
    result = check_document(
        results,
        env,
        machine,
        rounds=rounds,
        min_runs=min_runs,
        seconds=seconds,
        cpu_config=CPU_CONFIG,
        benchmark_app=str(tool),
    )
    return result, write_check(result, out_dir, "openvino-check", render_table(result))


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of `python -m benchmarks.openvino_check`."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.openvino_check",
        description="Compare the harness's p50 with OpenVINO's benchmark_app on the same IR (exit 0 pass, 3 fail).",
    )
    parser.add_argument(
        "--exports", type=Path, help=f"a run's exports/ folder: checks {', '.join(EXPORTS_FILES)} (those present)"
    )
    parser.add_argument("--xml", type=Path, action="append", default=[], help="OpenVINO IR .xml file; repeatable")
    parser.add_argument("--benchmark-app", type=Path, help="benchmark_app to run (default: the one beside python)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default: {DEFAULT_OUT})")
    parser.add_argument("--no-save", action="store_true", help="print the table only, write no files")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds per model (default: 6)")
    parser.add_argument("--min-runs", type=int, default=1024, help="timed calls per side and round (default: 1024)")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per side and round (default: 1)")
    parser.add_argument("--machine", help="label for the file names (default: arch-cpu-Ncpu)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point.

    Returns:
        0 when every artifact is within tolerance, 3 when one is not, 1 on a user error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    models: list[Path] = []
    if args.exports is not None:
        models = [args.exports / name for name in EXPORTS_FILES if (args.exports / name).is_file()]
        if not models:
            parser.error(f"--exports {args.exports} holds none of {', '.join(EXPORTS_FILES)}; run with -r openvino")
    models += args.xml
    if not models:
        parser.error("give --exports and/or --xml")
    if args.rounds < 1 or args.min_runs < 1 or not args.seconds >= 0:
        parser.error("--rounds and --min-runs must be 1 or more, --seconds 0 or more")
    return finish(
        lambda: run_check(
            models,
            out_dir=None if args.no_save else args.out,
            app=args.benchmark_app,
            rounds=args.rounds,
            min_runs=args.min_runs,
            seconds=args.seconds,
            machine=args.machine,
        ),
        render_table,
    )


if __name__ == "__main__":
    sys.exit(main())
