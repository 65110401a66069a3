"""Is the harness honest? Compare its p50 with a minimal hand-written loop on the bare runtime.

`python -m benchmarks.harness_check --tflite M.tflite --onnx M.onnx [--out benchmarks/results]`

For each model, at batch 1 and 1 thread, the same process holds two copies of the model:

- harness: an edgekit runner timed by `measure_latency` (what `edgekit bench` reports);
- minimal: the runtime used directly, the way a user would write it: LiteRT
  `set_tensor`/`invoke`/`get_tensor`, ONNX Runtime `session.run`, each call between two
  `perf_counter_ns` readings, summarised by the same `summarise`.

The two alternate over several rounds, the order swapped every round (ABBA), so that drift on a
shared machine hits both equally; the verdict uses the median over rounds of the per-round
relative difference of the p50s. The check passes when that is within ±5 % for every runtime
(exit 0), else exit 3. Use float-input (fp32) models: the minimal loop feeds float32 as is, so an
int8-input model would time the runner's quantisation against nothing.

Writes `harness-check-<YYYY-MM-DD>-<machine>.json` and `.txt` (the table) with the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.environment import capture_environment
from benchmarks.errors import BenchmarkError
from benchmarks.latency import LatencyStats, measure_latency, summarise
from runtimes.base import Runner
from runtimes.capture import native_output
from runtimes.errors import EdgekitError

TOLERANCE = 0.05
EXIT_OK, EXIT_ERROR, EXIT_FAILED = 0, 1, 3
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
_NS_PER_S = 1_000_000_000

# Words that say nothing about which CPU it is, dropped from the machine label.
_CPU_NOISE = {"amd", "intel", "intel(r)", "core(tm)", "cpu", "processor", "(r)", "(tm)", "with", "radeon", "graphics"}


def machine_label(env: dict[str, object]) -> str:
    """A short file-name-safe label like `x86_64-epyc-2cpu` or `aarch64-cortex-a72-4cpu`.

    Args:
        env: `capture_environment()` output.

    Returns:
        `<arch>-<cpu>-<cores>cpu`, lower case; parts that are unknown are left out.
    """
    model = str(env.get("cpu_model") or "")
    core = re.search(r"\(([^)]*cortex[^)]*|[^)]*neoverse[^)]*)\)", model, flags=re.IGNORECASE)
    if core:
        cpu_words = [core.group(1)]
    else:
        words = [w for w in model.split("@")[0].split() if w.lower() not in _CPU_NOISE and not w.endswith("-Core")]
        cpu_words = words[:2]
    parts = [str(env.get("machine") or ""), *cpu_words]
    cores = env.get("cores_available") or env.get("cores_logical")
    if cores:
        parts.append(f"{cores}cpu")
    label = "-".join(p for p in parts if p).lower()
    return re.sub(r"[^a-z0-9_.-]+", "-", label).strip("-") or "unknown"


# -- the minimal loops -----------------------------------------------------------------------------
def _minimal_tflite(model: Path, backend: str, threads: int) -> Callable[[np.ndarray], object]:
    from runtimes.tflite_runner import load_interpreter_module

    _, module = load_interpreter_module(backend)
    with native_output():
        interp = module.Interpreter(model_path=str(model), num_threads=threads)
        interp.allocate_tensors()
    (inp,), (outp,) = interp.get_input_details(), interp.get_output_details()
    if np.dtype(inp["dtype"]) != np.float32:
        raise BenchmarkError(
            f"{model.name} takes {np.dtype(inp['dtype']).name} input; the harness check needs a float32-input "
            "model (use model_fp32.tflite)."
        )
    in_index, out_index = int(inp["index"]), int(outp["index"])
    set_tensor, invoke, get_tensor = interp.set_tensor, interp.invoke, interp.get_tensor

    def call(x: np.ndarray) -> object:
        set_tensor(in_index, x)
        invoke()
        return get_tensor(out_index)

    return call


def _minimal_ort(model: Path, threads: int) -> Callable[[np.ndarray], object]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
    inp, outp = session.get_inputs()[0], session.get_outputs()[0]
    if inp.type != "tensor(float)":
        raise BenchmarkError(f"{model.name} takes {inp.type} input; the harness check needs a float32-input model.")
    in_name, out_name = inp.name, outp.name
    run = session.run

    def call(x: np.ndarray) -> object:
        return run([out_name], {in_name: x})

    return call


def time_minimal(
    call: Callable[[np.ndarray], object],
    x: np.ndarray,
    *,
    warmup_runs: int,
    warmup_seconds: float,
    min_runs: int,
    min_seconds: float,
) -> LatencyStats:
    """The minimal loop: warm-up, then one `perf_counter_ns` pair around each call, as `measure_latency` does.

    Args:
        call: one inference on `x`.
        x: the input.
        warmup_runs: minimum warm-up calls.
        warmup_seconds: minimum warm-up duration.
        min_runs: minimum timed calls.
        min_seconds: minimum timed duration.

    Returns:
        The calls summarised by the harness's own `summarise`, so both sides share the statistics.
    """
    clock = time.perf_counter_ns
    start, done = clock(), 0
    while done < warmup_runs or clock() - start < warmup_seconds * _NS_PER_S:
        call(x)
        done += 1
    durations: list[int] = []
    start = clock()
    while len(durations) < min_runs or clock() - start < min_seconds * _NS_PER_S:
        t0 = clock()
        call(x)
        durations.append(clock() - t0)
    total_s = (clock() - start) / _NS_PER_S
    return summarise(durations, batch_size=int(x.shape[0]), threads=1, total_s=total_s)


# -- one runtime -------------------------------------------------------------------------------------
def check_runtime(
    runtime: str,
    model: Path,
    *,
    rounds: int,
    min_runs: int,
    seconds: float,
    warmup_runs: int = 10,
    warmup_seconds: float = 0.2,
    tolerance: float = TOLERANCE,
) -> dict[str, Any]:
    """Alternate harness and minimal loop on one model; see the module docstring.

    Args:
        runtime: "tflite" or "onnxruntime".
        model: the model file (float32 input).
        rounds: number of (harness, minimal) pairs, order swapped every round.
        min_runs: minimum timed calls per side and round.
        seconds: minimum timed duration per side and round.
        warmup_runs: warm-up calls before each side's timed phase.
        warmup_seconds: warm-up duration before each side's timed phase.
        tolerance: largest acceptable |diff|.

    Returns:
        The JSON-ready result: medians, diff, verdict and every round.

    Raises:
        EdgekitError: if the model cannot be loaded or does not take float32 input.
    """
    from runtimes.registry import make_runner

    runner: Runner = make_runner(model, num_threads=1)
    if runner.name != runtime:
        raise BenchmarkError(f"{model} is a {runner.name} model, not {runtime}.")
    with runner:
        call = _minimal_tflite(model, runner.backend(), 1) if runtime == "tflite" else _minimal_ort(model, 1)
        # One image of the model's own shape; a dynamic dimension other than the batch becomes 1.
        x = np.random.default_rng(0).random((1, *[d or 1 for d in runner.input_spec().shape[1:]]), dtype=np.float32)
        rows: list[dict[str, Any]] = []
        for r in range(rounds):
            harness_first = r % 2 == 0
            got: dict[str, LatencyStats] = {}
            for side in ("harness", "minimal") if harness_first else ("minimal", "harness"):
                if side == "harness":
                    got[side] = measure_latency(
                        runner,
                        x,
                        warmup_runs=warmup_runs,
                        warmup_seconds=warmup_seconds,
                        min_runs=min_runs,
                        min_seconds=seconds,
                        max_seconds=None,
                    )
                else:
                    got[side] = time_minimal(
                        call,
                        x,
                        warmup_runs=warmup_runs,
                        warmup_seconds=warmup_seconds,
                        min_runs=min_runs,
                        min_seconds=seconds,
                    )
            h, m = got["harness"], got["minimal"]
            rows.append(
                {
                    "order": "harness-first" if harness_first else "minimal-first",
                    "harness_p50_ms": h.p50_ms,
                    "minimal_p50_ms": m.p50_ms,
                    "diff": h.p50_ms / m.p50_ms - 1.0,
                    "harness_runs": h.runs,
                    "minimal_runs": m.runs,
                    "harness_noise": h.noise,
                    "minimal_noise": m.noise,
                }
            )
        backend = runner.backend()
    diff = statistics.median(row["diff"] for row in rows)
    return {
        "runtime": runtime,
        "model": str(model),
        "backend": backend,
        "runtime_version": type(runner).runtime_version(),
        "batch_size": 1,
        "threads": 1,
        "harness_p50_ms": statistics.median(row["harness_p50_ms"] for row in rows),
        "minimal_p50_ms": statistics.median(row["minimal_p50_ms"] for row in rows),
        "diff": diff,
        "diff_range": [min(row["diff"] for row in rows), max(row["diff"] for row in rows)],
        "noisy_rounds": sum(1 for row in rows if row["harness_noise"] or row["minimal_noise"]),
        "pass": abs(diff) <= tolerance,
        "rounds": rows,
    }


# -- report -------------------------------------------------------------------------------------------
def render_table(result: dict[str, Any]) -> str:
    """The plain-text table printed and saved as `.txt`.

    Args:
        result: the object written as JSON.

    Returns:
        A few lines of text ending in a newline.
    """
    env = result["environment"]
    lines = [
        f"harness check {result['date']} on {result['machine']} ({env.get('cpu_model')}, "
        f"{env.get('cores_available')} cores available); batch 1, 1 thread, {result['settings']['rounds']} "
        f"alternating rounds of >= {result['settings']['min_runs']} calls and >= {result['settings']['seconds']:g} s",
        "",
        f"{'runtime':<12} {'harness p50 µs':>15} {'minimal p50 µs':>15} {'diff':>8} {'round range':>17} "
        f"{'noisy rounds':>13}  verdict",
    ]
    for r in result["results"]:
        lo, hi = r["diff_range"]
        lines.append(
            f"{r['runtime']:<12} {r['harness_p50_ms'] * 1000:>15.2f} {r['minimal_p50_ms'] * 1000:>15.2f} "
            f"{r['diff']:>+8.1%} {f'{lo:+.1%} .. {hi:+.1%}':>17} {r['noisy_rounds']:>13}  "
            f"{'pass' if r['pass'] else 'FAIL'}"
        )
    lines += [
        "",
        f"diff = median over rounds of (harness p50 / minimal p50 - 1); pass when |diff| <= {result['tolerance']:.0%}.",
        f"overall: {'PASS' if result['pass'] else 'FAIL'}",
    ]
    note = env.get("blas_note")
    if note:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    # Never leave a half-written file under its final name.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def run_check(
    models: dict[str, Path],
    *,
    out_dir: Path | None,
    rounds: int = 6,
    min_runs: int = 1024,
    seconds: float = 1.0,
    machine: str | None = None,
) -> tuple[dict[str, Any], list[Path]]:
    """Check each runtime, then write the JSON and text files.

    Args:
        models: `{"tflite": path, "onnxruntime": path}` (one or both).
        out_dir: where to write the files (created if missing); None writes nothing.
        rounds: alternating rounds per runtime.
        min_runs: minimum timed calls per side and round.
        seconds: minimum timed duration per side and round.
        machine: label for the file names (default: `machine_label` of this machine).

    Returns:
        (the result object, the paths written).

    Raises:
        EdgekitError: on a bad model or an unwritable output directory.
    """
    env = capture_environment()
    now = datetime.now(timezone.utc)
    label = machine or machine_label(env)
    results = [
        check_runtime(rt, path, rounds=rounds, min_runs=min_runs, seconds=seconds) for rt, path in models.items()
    ]
    result: dict[str, Any] = {
        "schema_version": 1,
        "date": now.strftime("%Y-%m-%d"),
        "timestamp_utc": now.isoformat(timespec="seconds"),
        "machine": label,
        "tolerance": TOLERANCE,
        "settings": {"rounds": rounds, "min_runs": min_runs, "seconds": seconds, "batch_size": 1, "threads": 1},
        "pass": all(r["pass"] for r in results),
        "results": results,
        "environment": env,
    }
    written: list[Path] = []
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            stem = out_dir / f"harness-check-{result['date']}-{label}"
            for suffix, text in ((".json", json.dumps(result, indent=2) + "\n"), (".txt", render_table(result))):
                path = stem.with_name(stem.name + suffix)
                _write_atomic(path, text)
                written.append(path)
        except OSError as exc:
            raise BenchmarkError(f"could not write the harness check to {out_dir}: {exc.strerror or exc}.") from None
    return result, written


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of `python -m benchmarks.harness_check`.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.harness_check",
        description="Compare the harness's p50 with a minimal loop on the bare runtime (exit 0 pass, 3 fail).",
    )
    parser.add_argument("--tflite", type=Path, help="float32-input .tflite model (e.g. exports/model_fp32.tflite)")
    parser.add_argument("--onnx", type=Path, help="float32-input .onnx model (e.g. exports/model_fp32.onnx)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default: {DEFAULT_OUT})")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds per runtime (default: 6)")
    parser.add_argument("--min-runs", type=int, default=1024, help="timed calls per side and round (default: 1024)")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per side and round (default: 1)")
    parser.add_argument("--machine", help="label for the file names (default: arch-cpu-Ncpu)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point.

    Args:
        argv: arguments without the program name (default: `sys.argv[1:]`).

    Returns:
        0 when every runtime is within tolerance, 3 when one is not, 1 on a user error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.tflite is None and args.onnx is None:
        parser.error("give --tflite and/or --onnx")
    if args.rounds < 1 or args.min_runs < 1 or not args.seconds >= 0:
        parser.error("--rounds and --min-runs must be 1 or more, --seconds 0 or more")
    models: dict[str, Path] = {}
    if args.tflite is not None:
        models["tflite"] = args.tflite
    if args.onnx is not None:
        models["onnxruntime"] = args.onnx
    try:
        result, written = run_check(
            models,
            out_dir=args.out,
            rounds=args.rounds,
            min_runs=args.min_runs,
            seconds=args.seconds,
            machine=args.machine,
        )
    except EdgekitError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_ERROR
    sys.stdout.write(render_table(result))
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK if result["pass"] else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
