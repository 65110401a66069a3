"""One benchmark in one fresh process: `python -m benchmarks.worker --model M --threads N --batch 1 ...`.

A fresh process per (model, threads) is needed because TensorFlow's thread counts are
process-global and fixed at its first op, and because cold start (runtime import + model load +
first inference) and peak RSS are only meaningful in a process that has loaded nothing else.

Sweeps: `--no-xnnpack` (TFLite only: reference kernels instead of the XNNPACK delegate),
`--graph-optimization LEVEL` (ONNX Runtime only) and `--performance-hint HINT` (OpenVINO only); a flag that
does not apply to the model's runtime is an error.

Prints exactly one JSON object on stdout: the results, or `{"error": "..."}` with exit status 1 on
an `EdgekitError`. Anything a runtime writes to stdout (native libraries included) is redirected
to stderr so it cannot corrupt that JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

import numpy as np

from benchmarks.errors import BenchmarkError
from benchmarks.latency import METHODS, LatencyStats, measure_latency, measure_named_latency
from runtimes.base import Runner
from runtimes.errors import EdgekitError
from runtimes.openvino_runner import PERFORMANCE_HINTS
from runtimes.ort_runner import GRAPH_OPT_LEVELS
from runtimes.registry import make_runner, runner_class
from runtimes.spec import ModelSpec

_NS_PER_MS = 1_000_000
# Runner names (`Runner.name`) each sweep option applies to.
XNNPACK_RUNTIME = "tflite"
GRAPH_OPTIMIZATION_RUNTIME = "onnxruntime"
PERFORMANCE_HINT_RUNTIME = "openvino"
# What one benchmark times the runner on: an array of samples, or feeds by input name.
_Batch = TypeVar("_Batch")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {minimum} or more, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):  # also rejects NaN
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.02, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction strictly between 0 and 1, got {text}")
    return value


def _optional_seconds(text: str) -> float | None:
    return None if text.strip().lower() == "none" else _seconds(text)


def build_parser() -> argparse.ArgumentParser:
    """The worker's command-line parser.

    Returns:
        An `ArgumentParser` for `python -m benchmarks.worker`.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.worker",
        description="Time cold start and latency of one model at one thread count; prints one JSON object.",
    )
    parser.add_argument("--model", required=True, type=Path, help="model file (.tflite, .onnx, .keras)")
    parser.add_argument(
        "--inputs",
        required=True,
        type=Path,
        help="float32 .npy of images or vectors matching the model's input (values in its float range); for a "
        "model with several inputs, an .npz with one float32 array per input name",
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=None, help="runtime threads (default: the runtime's own)"
    )
    parser.add_argument(
        "--batch",
        dest="batch_sizes",
        metavar="N",
        action="append",
        type=_positive_int,
        default=None,
        help="batch size to time; repeat for several (default: 1)",
    )
    parser.add_argument("--warmup-runs", type=_non_negative_int, default=10)
    parser.add_argument("--warmup-seconds", type=_seconds, default=0.2)
    parser.add_argument("--min-runs", type=_positive_int, default=1024)
    parser.add_argument("--min-seconds", type=_seconds, default=2.0)
    parser.add_argument(
        "--max-seconds", type=_optional_seconds, default=60.0, help="cap per batch size; 'none' for no cap"
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="fixed",
        help="fixed: stop at the floor of runs and seconds; adaptive: go on until the median is known to --precision",
    )
    parser.add_argument(
        "--precision",
        type=_fraction,
        default=0.02,
        help="adaptive: largest half-width of the median's 95 %% CI, as a fraction of it (default 0.02)",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="load the model and run it once, then wait for a line on stdin before timing (a worker started "
        "early, while other work runs, times nothing until told)",
    )
    parser.add_argument(
        "--ready-fd",
        type=_int_at_least(0),
        default=None,
        help="with --wait: write a line to this inherited file descriptor once loaded, so a parent starting "
        "several workers at once knows when all are idle before it lets one time",
    )
    parser.add_argument(
        "--no-xnnpack",
        dest="xnnpack",
        action="store_false",
        default=None,
        help="TFLite only: disable the XNNPACK delegate (reference kernels)",
    )
    parser.add_argument(
        "--graph-optimization",
        choices=GRAPH_OPT_LEVELS,
        default=None,
        help="ONNX Runtime only: graph optimisation level (default: all)",
    )
    parser.add_argument(
        "--performance-hint",
        choices=PERFORMANCE_HINTS,
        default=None,
        help="OpenVINO only: the performance hint (default: LATENCY, one stream)",
    )
    return parser


def runner_options(
    model: Path, xnnpack: bool | None, graph_optimization: str | None, performance_hint: str | None = None
) -> dict[str, Any]:
    """Keyword arguments for the model's runner from the sweep options, refusing ones that do not apply.

    Args:
        model: the model file (its suffix picks the runtime).
        xnnpack: None for the runtime's default, else whether TFLite may use XNNPACK.
        graph_optimization: None for the default, else an ONNX Runtime level.
        performance_hint: None for the default, else an OpenVINO performance hint.

    Returns:
        `use_xnnpack`, `graph_optimization` and/or `performance_hint` for `make_runner`.

    Raises:
        BenchmarkError: if an option does not apply to the model's runtime.
        ModelLoadError: if the suffix is not a known model type.
    """
    runtime = runner_class(model).name
    options: dict[str, object] = {}
    if xnnpack is not None:
        if runtime != XNNPACK_RUNTIME:
            raise BenchmarkError(f"--no-xnnpack applies to TFLite models only, not {model.name} ({runtime}).")
        options["use_xnnpack"] = xnnpack
    if graph_optimization is not None:
        if runtime != GRAPH_OPTIMIZATION_RUNTIME:
            raise BenchmarkError(f"--graph-optimization applies to ONNX models only, not {model.name} ({runtime}).")
        options["graph_optimization"] = graph_optimization
    if performance_hint is not None:
        if runtime != PERFORMANCE_HINT_RUNTIME:
            raise BenchmarkError(f"--performance-hint applies to OpenVINO models only, not {model.name} ({runtime}).")
        options["performance_hint"] = performance_hint
    return options


def load_named_inputs(path: Path) -> dict[str, np.ndarray]:
    """Load an `.npz` of benchmark feeds: one non-empty float32 array per input name (checked against the
    model's names later, in `check_named_inputs`).

    Raises:
        BenchmarkError: the file is missing, unreadable, pickled, or holds an array that is not float32 samples.
    """
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as archive:
            feeds = {name: np.ascontiguousarray(archive[name]) for name in archive.files}
    except FileNotFoundError:
        raise BenchmarkError(f"inputs file {path} does not exist; check the path.") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchmarkError(f"inputs file {path} could not be read as an .npz of arrays: {first}") from None
    for name, array in feeds.items():
        if array.dtype != np.float32 or array.ndim < 2 or array.shape[0] == 0:
            raise BenchmarkError(
                f"inputs file {path} holds {name} as {array.dtype} {array.shape}; expected a non-empty float32 "
                "batch of samples."
            )
    if not feeds:
        raise BenchmarkError(f"inputs file {path} holds no arrays; give one float32 array per input name.")
    return feeds


def check_named_inputs(path: Path, feeds: dict[str, np.ndarray], spec: ModelSpec, model: Path) -> None:
    """Refuse feeds whose names or sample shapes are not the model's, on one line, before anything is timed."""
    if set(feeds) != set(spec.input_names):
        raise BenchmarkError(
            f"inputs file {path} holds {', '.join(sorted(feeds))}; {model.name} takes {', '.join(spec.input_names)}."
        )
    for tensor in spec.inputs:
        tail, x = tensor.shape[1:], feeds[tensor.name]
        if x.ndim != len(tail) + 1 or any(d is not None and d != got for d, got in zip(tail, x.shape[1:])):
            raise BenchmarkError(
                f"inputs file {path} holds {tensor.name} of shape {x.shape}; {model.name} takes {tensor.shape_text()}."
            )


def load_inputs(path: Path) -> np.ndarray:
    """Load the benchmark inputs (checked against the model's spec later, in `check_inputs`).

    Args:
        path: a `.npy` file holding a non-empty float32 array of samples (first axis = sample).

    Returns:
        The array, C-contiguous.

    Raises:
        BenchmarkError: if the file is missing, unreadable, pickled, not float32 or empty.
    """
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise BenchmarkError(f"inputs file {path} does not exist; check the path.") from None
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchmarkError(f"inputs file {path} could not be read as a .npy array: {first}") from None
    if not isinstance(data, np.ndarray):  # an .npz archive loads as NpzFile
        raise BenchmarkError(f"inputs file {path} is not a single .npy array.")
    if data.dtype != np.float32:
        raise BenchmarkError(
            f"inputs file {path} holds {data.dtype}; expected float32 values in the model's input range."
        )
    if data.ndim < 2 or data.shape[0] == 0:
        raise BenchmarkError(f"inputs file {path} has shape {data.shape}; expected a non-empty batch of samples.")
    return np.ascontiguousarray(data)


def check_inputs(path: Path, inputs: np.ndarray, spec: ModelSpec, model: Path) -> None:
    """Refuse inputs whose sample shape is not the model's, on one line, before anything is timed.

    Raises:
        BenchmarkError: the shapes differ (dynamic model dimensions match anything).
    """
    tail = spec.input_tail
    fits = inputs.ndim == len(tail) + 1 and all(d is None or d == got for d, got in zip(tail, inputs.shape[1:]))
    if not fits:
        raise BenchmarkError(
            f"inputs file {path} holds shape {inputs.shape}; {model.name} takes {spec.input_text()} "
            f"({spec.describe()})."
        )


def make_batch(inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """The first `batch_size` samples, repeating them cyclically when there are fewer.

    Args:
        inputs: samples, first axis = sample (at least one).
        batch_size: samples wanted.

    Returns:
        A C-contiguous array of `batch_size` samples, so the runner does not copy it on each call.
    """
    if inputs.shape[0] >= batch_size:
        return np.ascontiguousarray(inputs[:batch_size])
    return np.ascontiguousarray(np.take(inputs, np.arange(batch_size) % inputs.shape[0], axis=0))


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process so far, in MiB (None where unsupported).

    On Linux this is VmHWM from /proc/self/status: `ru_maxrss` is inherited across fork+exec, so a
    worker started by a parent holding TensorFlow (~1.6 GB) would report the parent's peak.

    Returns:
        The high-water mark in MiB, `ru_maxrss` elsewhere, or None without the `resource` module.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024


def run_benchmark(args: argparse.Namespace) -> dict[str, object]:
    """Load the model, check the inputs against its spec, time the first inference, then each batch size.

    Args:
        args: parsed command line (see `build_parser`).

    Returns:
        The JSON-serialisable result object printed by the worker.

    Raises:
        EdgekitError: on a bad model, inputs or runtime.
    """
    batch_sizes: list[int] = args.batch_sizes or [1]
    options = runner_options(args.model, args.xnnpack, args.graph_optimization, args.performance_hint)
    if args.inputs.suffix.lower() == ".npz":
        return _run_named_benchmark(args, batch_sizes, options)
    inputs = load_inputs(args.inputs)
    return _timed_benchmark(
        args,
        batch_sizes,
        options,
        check=lambda spec: check_inputs(args.inputs, inputs, spec, args.model),
        batch=lambda size: make_batch(inputs, size),
        infer=Runner.infer,
        measure=measure_latency,
    )


def _timed_benchmark(
    args: argparse.Namespace,
    batch_sizes: list[int],
    options: dict[str, Any],
    *,
    check: Callable[[ModelSpec], None],
    batch: Callable[[int], _Batch],
    infer: Callable[[Runner, _Batch], object],
    measure: Callable[..., LatencyStats],
) -> dict[str, object]:
    """Make and activate the runner, check the inputs against its spec, time the first inference, then measure each
    batch size: the one flow for an array of samples and for feeds by input name, which differ only in how a
    batch is `check`ed, made (`batch(size)`), run once (`infer`) and timed (`measure`, given the timing options)."""
    runner = make_runner(args.model, num_threads=args.threads, **options)
    t0 = time.perf_counter_ns()
    runner.activate()
    try:
        t1 = time.perf_counter_ns()
        check(runner.model_spec())
        t1b = time.perf_counter_ns()  # the shape check is neither load nor inference
        infer(runner, batch(1))
        t2 = time.perf_counter_ns()
        beaten_above: dict[int, float] = {}
        if args.wait:
            if args.ready_fd is not None:
                say_ready(args.ready_fd)
            beaten_above = wait_for_go()
        results = []
        for batch_size in batch_sizes:
            stats = measure(
                runner,
                batch(batch_size),
                warmup_runs=args.warmup_runs,
                warmup_seconds=args.warmup_seconds,
                min_runs=args.min_runs,
                min_seconds=args.min_seconds,
                max_seconds=args.max_seconds,
                method=args.method,
                precision=args.precision,
                beaten_above_ms=beaten_above.get(batch_size) if args.method == "adaptive" else None,
            )
            results.append(stats.to_dict())
        backend = runner.backend()
        # Asked after timing, so the op-list walk cannot disturb the measurement. Only TFLite
        # runners have delegates (TFLiteRunner.is_delegated); None elsewhere.
        is_delegated = getattr(runner, "is_delegated", None)
        delegated = bool(is_delegated()) if callable(is_delegated) else None
    finally:
        runner.deactivate()
    return _result(args, runner, (t0, t1, t1b, t2), results, backend, delegated)


def say_ready(fd: int) -> None:
    """Tell the parent this worker is loaded and idle (one line on `fd`, then closed); a parent that has gone
    away is not an error here: `wait_for_go` then finds stdin closed."""
    try:
        os.write(fd, b"ready\n")
        os.close(fd)
    except OSError:
        pass


def wait_for_go() -> dict[int, float]:
    """Block until the parent writes its line on stdin; refuse to time anything if it closed stdin instead.

    The line is `go`, or `go` and a JSON object {batch size: ms} (`StartedWorker.go`): per batch size, the p50
    above which this configuration is certainly beaten by one the parent measured before (`StopRule.beaten_above_ms`).

    Raises:
        BenchmarkError: stdin reached its end first (the parent gave up on this worker), or the line is not that.
    """
    line = sys.stdin.readline()
    if not line:
        raise BenchmarkError("the benchmark was cancelled before timing began (stdin closed).")
    word, _, rest = line.strip().partition(" ")
    if word != "go":
        raise BenchmarkError(f"expected `go` on stdin before timing, got {line.strip()[:40]!r}.")
    if not rest:
        return {}
    try:
        above = json.loads(rest)
        return {int(batch): float(ms) for batch, ms in above.items()}
    except (ValueError, TypeError, AttributeError):
        raise BenchmarkError(f"`go` takes a JSON object {{batch size: ms}}, got {rest[:40]!r}.") from None


def _result(
    args: argparse.Namespace,
    runner: Runner,
    times: tuple[int, int, int, int],
    results: list[dict[str, object]],
    backend: str,
    delegated: bool | None,
) -> dict[str, object]:
    """The worker's JSON object; `times`: activation start and end, then first inference start and end (ns)."""
    t0, t1, t1b, t2 = times
    # The settings the runner actually used (its defaults included); None where they do not apply.
    xnnpack = getattr(runner, "use_xnnpack", None) if runner.name == XNNPACK_RUNTIME else None
    level = getattr(runner, "graph_optimization", None) if runner.name == GRAPH_OPTIMIZATION_RUNTIME else None
    hint = getattr(runner, "performance_hint", None) if runner.name == PERFORMANCE_HINT_RUNTIME else None
    return {
        "model": str(args.model),
        "runtime": runner.name,
        "backend": backend,
        "runtime_version": type(runner).runtime_version(),
        "threads": args.threads,
        "options": {"xnnpack": xnnpack, "graph_optimization": level, "performance_hint": hint},
        "delegated": delegated,
        "load_ms": (t1 - t0 + t2 - t1b) / _NS_PER_MS,
        "activate_ms": (t1 - t0) / _NS_PER_MS,
        "first_inference_ms": (t2 - t1b) / _NS_PER_MS,
        "peak_rss_mb": peak_rss_mb(),
        "results": results,
    }


def _run_named_benchmark(
    args: argparse.Namespace, batch_sizes: list[int], options: dict[str, Any]
) -> dict[str, object]:
    """`run_benchmark` for feeds by input name (an .npz): a model with several inputs or outputs."""
    feeds = load_named_inputs(args.inputs)
    return _timed_benchmark(
        args,
        batch_sizes,
        options,
        check=lambda spec: check_named_inputs(args.inputs, feeds, spec, args.model),
        batch=lambda size: {n: make_batch(x, size) for n, x in feeds.items()},
        infer=Runner.infer_named,
        measure=measure_named_latency,
    )


def claim_stdout() -> TextIO:
    """Point file descriptor 1 at stderr and return a stream on the original stdout.

    Native runtime code may write to fd 1 directly; after this only the returned stream reaches
    the parent's stdout pipe.
    """
    sys.stdout.flush()
    real = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return real


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.worker`.

    Args:
        argv: command-line arguments without the program name (default: `sys.argv[1:]`).

    Returns:
        0 on success, 1 on an `EdgekitError` (argparse exits 2 on a bad command line).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_seconds is not None and args.max_seconds < args.min_seconds:
        parser.error(f"--max-seconds ({args.max_seconds}) is below --min-seconds ({args.min_seconds})")
    if args.max_seconds == 0:
        parser.error("--max-seconds must be above 0; pass 'none' for no cap")
    out = claim_stdout()
    code = 0
    try:
        payload = run_benchmark(args)
    except EdgekitError as exc:
        payload = {"error": " ".join(str(exc).split()) or type(exc).__name__}
        code = 1
    with out:
        out.write(json.dumps(payload) + "\n")
    return code


if __name__ == "__main__":
    exit_code = main()
    # The result is written: end now, without the interpreter's teardown (unloading the runtime and numpy took
    # 0.1 s of a 0.4 s worker on a 2-core Xeon), which a benchmark of many short workers would wait for each time.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
