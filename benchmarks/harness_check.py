"""Is the harness honest? Compare its p50 with a minimal hand-written loop on the bare runtime.

    python -m benchmarks.harness_check --exports RUN/exports [--out benchmarks/results]
    python -m benchmarks.harness_check --tflite A.tflite --tflite B.tflite --onnx C.onnx

`--exports` picks the three reference artifacts of a run: `model_fp32.tflite` (tflite-fp32),
`model_int8.tflite` (tflite-int8, int8 I/O) and `model_fp32.onnx` (onnx-fp32).

For each model, at batch 1 and 1 thread, the same process holds two copies of the model:

- harness: an edgekit runner timed by `measure_latency` (what `edgekit bench` reports: the model
  on input already in its input type, `Runner.run_native`);
- minimal: the runtime used directly, the way a user would write it (as
  benchmarks/anchors/minimal_loop.py does): LiteRT `set_tensor`/`invoke`/`get_tensor`, ONNX
  Runtime `session.run`, fed the same input pre-converted to the model's input type (int8 for an
  int8-I/O model), each call between two `perf_counter_ns` readings, summarised by the same
  `summarise`.

The two alternate over several rounds, the order swapped every round (ABBA), so that drift on a
shared machine hits both equally; the verdict uses the median over rounds of the per-round ratio
harness p50 / minimal p50. An artifact passes when that ratio is within 1 ± 5 % (at most 1.05x);
the check passes (exit 0) when every artifact does, else exit 3. The harness's separate I/O
conversion figure (`io_p50_ms`: float -> int8 in, int8 -> float out) is shown alongside, not compared.

Writes `harness-check-<YYYY-MM-DD>-<machine>.json` and `.txt` (the table) with the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.environment import capture_environment
from benchmarks.errors import BenchmarkError
from benchmarks.latency import LatencyStats, measure_latency
from benchmarks.minimal import minimal_input, minimal_ort, minimal_tflite, time_minimal
from runtimes.base import Runner
from runtimes.errors import EdgekitError

TOLERANCE = 0.05
# What `--exports DIR` checks: tflite-fp32, tflite-int8 (int8 I/O) and onnx-fp32.
EXPORTS_FILES = ("model_fp32.tflite", "model_int8.tflite", "model_fp32.onnx")
EXIT_OK, EXIT_ERROR, EXIT_FAILED = 0, 1, 3
DEFAULT_OUT = Path(__file__).resolve().parent / "results"

# Words that say nothing about which CPU it is, dropped from the machine label.
_CPU_NOISE = {"amd", "intel", "core", "cpu", "processor", "with", "radeon", "graphics"}


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
        # "Xeon(R)" is "Xeon": the trademark marks stuck to a word would otherwise end up in the label.
        marked = (re.sub(r"\((r|tm)\)", "", w, flags=re.IGNORECASE) for w in model.split("@")[0].split())
        words = [w for w in marked if w and w.lower() not in _CPU_NOISE and not w.endswith("-Core")]
        cpu_words = words[:2]
    parts = [str(env.get("machine") or ""), *cpu_words]
    cores = env.get("cores_available") or env.get("cores_logical")
    if cores:
        parts.append(f"{cores}cpu")
    label = "-".join(p for p in parts if p).lower()
    return re.sub(r"[^a-z0-9_.-]+", "-", label).strip("-") or "unknown"


# -- one runtime -------------------------------------------------------------------------------------
def artifact_label(model: Path) -> str:
    """`tflite-fp32` for `model_fp32.tflite`, `onnx-int8` for `model_int8.onnx`, else `<suffix>-<stem>`."""
    stem = model.stem.removeprefix("model_").replace("_", "-")
    return f"{model.suffix.lstrip('.').lower()}-{stem}"


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
        model: the model file (float or integer input).
        rounds: number of (harness, minimal) pairs, order swapped every round.
        min_runs: minimum timed calls per side and round.
        seconds: minimum timed duration per side and round.
        warmup_runs: warm-up calls before each side's timed phase.
        warmup_seconds: warm-up duration before each side's timed phase.
        tolerance: largest acceptable |diff|.

    Returns:
        The JSON-ready result: medians, diff, verdict and every round.

    Raises:
        EdgekitError: if the model cannot be loaded.
    """
    from runtimes.registry import make_runner

    runner: Runner = make_runner(model, num_threads=1)
    if runner.name != runtime:
        raise BenchmarkError(f"{model} is a {runner.name} model, not {runtime}.")
    timing = _Timing(warmup_runs, warmup_seconds, min_runs, seconds)
    with runner:
        spec = runner.model_spec()
        # One sample of the model's own shape over its value range (a dynamic non-batch dim becomes 1).
        x = spec.sample_batch(1)
        call = minimal_tflite(model, runner.backend(), 1, x.shape) if runtime == "tflite" else minimal_ort(model, 1)
        x_native = minimal_input(x, spec.input)
        ours = runner.to_native(x)
        # Both sides must time the same input (rounding at exact halves may differ by one step).
        if (
            ours.dtype != x_native.dtype
            or ours.shape != x_native.shape
            or np.abs(ours.astype(np.float64) - x_native.astype(np.float64)).max() > 1
        ):
            raise BenchmarkError(f"{model.name}: the runner and the minimal loop convert the input differently.")
        rows = [_round(runner, call, x, x_native, timing, harness_first=r % 2 == 0) for r in range(rounds)]
        backend = runner.backend()
    diff = statistics.median(row["diff"] for row in rows)
    return {
        "artifact": artifact_label(model),
        "runtime": runtime,
        "model": str(model),
        "input_dtype": spec.input.dtype,
        "spec": spec.describe(),
        "backend": backend,
        "runtime_version": type(runner).runtime_version(),
        "batch_size": 1,
        "threads": 1,
        "harness_p50_ms": statistics.median(row["harness_p50_ms"] for row in rows),
        "minimal_p50_ms": statistics.median(row["minimal_p50_ms"] for row in rows),
        "ratio": 1.0 + diff,
        "diff": diff,
        "diff_range": [min(row["diff"] for row in rows), max(row["diff"] for row in rows)],
        "io_p50_ms": statistics.median(row["io_p50_ms"] for row in rows if row["io_p50_ms"] is not None),
        "noisy_rounds": sum(1 for row in rows if row["harness_noise"] or row["minimal_noise"]),
        "pass": abs(diff) <= tolerance,
        "rounds": rows,
    }


@dataclass(frozen=True)
class _Timing:
    """How long each side of a round warms up and is timed."""

    warmup_runs: int
    warmup_seconds: float
    min_runs: int
    min_seconds: float


def _round(
    runner: Runner,
    call: Callable[[np.ndarray], object],
    x: np.ndarray,
    x_native: np.ndarray,
    timing: _Timing,
    *,
    harness_first: bool,
) -> dict[str, Any]:
    """One round: the harness and the minimal loop, one after the other in the given order; their p50s."""
    got: dict[str, LatencyStats] = {}
    for side in ("harness", "minimal") if harness_first else ("minimal", "harness"):
        if side == "harness":
            got[side] = measure_latency(
                runner,
                x,
                warmup_runs=timing.warmup_runs,
                warmup_seconds=timing.warmup_seconds,
                min_runs=timing.min_runs,
                min_seconds=timing.min_seconds,
                max_seconds=None,
            )
        else:
            got[side] = time_minimal(
                call,
                x_native,
                warmup_runs=timing.warmup_runs,
                warmup_seconds=timing.warmup_seconds,
                min_runs=timing.min_runs,
                min_seconds=timing.min_seconds,
            )
    h, m = got["harness"], got["minimal"]
    return {
        "order": "harness-first" if harness_first else "minimal-first",
        "harness_p50_ms": h.p50_ms,
        "minimal_p50_ms": m.p50_ms,
        "ratio": h.p50_ms / m.p50_ms,
        "diff": h.p50_ms / m.p50_ms - 1.0,
        "io_p50_ms": h.io_p50_ms,
        "harness_runs": h.runs,
        "minimal_runs": m.runs,
        "harness_noise": h.noise,
        "minimal_noise": m.noise,
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
        "harness = edgekit's timed call (Runner.run_native on input already in the model's type); "
        "minimal = a bare loop on the runtime, same input",
        "",
        f"{'artifact':<14} {'runtime':<12} {'input':<8} {'harness p50 µs':>15} {'minimal p50 µs':>15} "
        f"{'ratio':>7} {'round range':>15} {'io p50 µs':>10} {'noisy':>6}  verdict",
    ]
    for r in result["results"]:
        lo, hi = r["diff_range"]
        io = r.get("io_p50_ms")
        lines.append(
            f"{r.get('artifact', r['runtime']):<14} {r['runtime']:<12} {r.get('input_dtype', '?'):<8} "
            f"{r['harness_p50_ms'] * 1000:>15.2f} {r['minimal_p50_ms'] * 1000:>15.2f} "
            f"{r['ratio']:>6.3f}x {f'{1 + lo:.3f}..{1 + hi:.3f}':>15} "
            f"{'-' if io is None else f'{io * 1000:.2f}':>10} {r['noisy_rounds']:>6}  "
            f"{'pass' if r['pass'] else 'FAIL'}"
        )
    limit = 1 + result["tolerance"]
    lines += [
        "",
        f"ratio = median over rounds of (harness p50 / minimal p50); pass when it is within "
        f"{2 - limit:.2f}x..{limit:.2f}x. io p50 = the float <-> native conversion a caller of infer() "
        "also pays, reported separately (not in the harness p50).",
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
    models: dict[str, Path] | Sequence[tuple[str, Path]],
    *,
    out_dir: Path | None,
    rounds: int = 6,
    min_runs: int = 1024,
    seconds: float = 1.0,
    machine: str | None = None,
) -> tuple[dict[str, Any], list[Path]]:
    """Check each runtime, then write the JSON and text files.

    Args:
        models: (runtime, path) pairs, runtime "tflite" or "onnxruntime" (a dict `{runtime: path}`
            works too).
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
    pairs = list(models.items()) if isinstance(models, dict) else list(models)
    results = [check_runtime(rt, path, rounds=rounds, min_runs=min_runs, seconds=seconds) for rt, path in pairs]
    result = check_document(results, env, machine, rounds=rounds, min_runs=min_runs, seconds=seconds)
    return result, write_check(result, out_dir, "harness-check", render_table(result))


def check_document(
    results: list[dict[str, Any]],
    env: dict[str, Any],
    machine: str | None,
    *,
    rounds: int,
    min_runs: int,
    seconds: float,
    **extra: Any,
) -> dict[str, Any]:
    """The saved object of a check (this one, or a sibling such as `benchmarks.openvino_check`): when, where,
    the settings (batch 1, 1 thread), any `extra` fields, the verdict and every result."""
    now = datetime.now(timezone.utc)
    return {
        "schema_version": 1,
        "date": now.strftime("%Y-%m-%d"),
        "timestamp_utc": now.isoformat(timespec="seconds"),
        "machine": machine or machine_label(env),
        "tolerance": TOLERANCE,
        "settings": {"rounds": rounds, "min_runs": min_runs, "seconds": seconds, "batch_size": 1, "threads": 1},
        **extra,
        "pass": all(r["pass"] for r in results),
        "results": results,
        "environment": env,
    }


def write_check(result: dict[str, Any], out_dir: Path | None, prefix: str, table: str) -> list[Path]:
    """Write `<prefix>-<date>-<machine>.json` and `.txt` (the rendered `table`) in `out_dir`; the paths written
    (none when `out_dir` is None).

    Raises:
        BenchmarkError: the directory or a file cannot be written (one line).
    """
    written: list[Path] = []
    if out_dir is None:
        return written
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{prefix}-{result['date']}-{result['machine']}"
        for suffix, text in ((".json", json.dumps(result, indent=2) + "\n"), (".txt", table)):
            path = out_dir / (stem + suffix)
            _write_atomic(path, text)
            written.append(path)
    except OSError as exc:
        raise BenchmarkError(f"could not write the {prefix} files to {out_dir}: {exc.strerror or exc}.") from None
    return written


def finish(check: Callable[[], tuple[dict[str, Any], list[Path]]], render: Callable[[dict[str, Any]], str]) -> int:
    """A check's command-line ending: run it, print its table and the files written; the exit code (0 pass,
    3 fail, 1 with a one-line error on stderr)."""
    try:
        result, written = check()
    except EdgekitError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_ERROR
    sys.stdout.write(render(result))
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK if result["pass"] else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of `python -m benchmarks.harness_check`.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.harness_check",
        description="Compare the harness's p50 with a minimal loop on the bare runtime (exit 0 pass, 3 fail).",
    )
    parser.add_argument(
        "--exports",
        type=Path,
        help=f"a run's exports/ folder: checks {', '.join(EXPORTS_FILES)} (those present)",
    )
    parser.add_argument(
        "--tflite", type=Path, action="append", default=[], help=".tflite model (float or int8 I/O); repeatable"
    )
    parser.add_argument("--onnx", type=Path, action="append", default=[], help=".onnx model; repeatable")
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
        0 when every artifact is within tolerance, 3 when one is not, 1 on a user error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    models: list[tuple[str, Path]] = []
    if args.exports is not None:
        found = [args.exports / name for name in EXPORTS_FILES if (args.exports / name).is_file()]
        if not found:
            parser.error(f"--exports {args.exports} holds none of {', '.join(EXPORTS_FILES)}")
        models += [("tflite" if p.suffix == ".tflite" else "onnxruntime", p) for p in found]
    models += [("tflite", p) for p in args.tflite] + [("onnxruntime", p) for p in args.onnx]
    if not models:
        parser.error("give --exports and/or --tflite/--onnx")
    if args.rounds < 1 or args.min_runs < 1 or not args.seconds >= 0:
        parser.error("--rounds and --min-runs must be 1 or more, --seconds 0 or more")
    return finish(
        lambda: run_check(
            models,
            out_dir=args.out,
            rounds=args.rounds,
            min_runs=args.min_runs,
            seconds=args.seconds,
            machine=args.machine,
        ),
        render_table,
    )


if __name__ == "__main__":
    sys.exit(main())
