"""Does `edgekit predict` start as fast as a bare script? Whole processes, side by side.

`python -m benchmarks.startup_check --model M.tflite --image digit.png [--runs 20] [--out benchmarks/results]`

Runs `edgekit predict M IMAGE` and `python benchmarks/anchors/bare_predict.py M IMAGE` (the least a user would
write: `ai_edge_litert`, Pillow, numpy) alternately, after two warm-up pairs, and times each whole process
(`perf_counter` around `subprocess.run`, output discarded). The verdict uses the median of the per-pair
ratios, so drift on a shared machine hits both sides equally; the limit is 1.5x (issue #9). Writes
`startup-check-<YYYY-MM-DD>-<machine>.json` and `.txt`. Exit 0 within the limit, 3 over it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.harness_check import DEFAULT_OUT, EXIT_FAILED, EXIT_OK, _write_atomic, machine_label

LIMIT = 1.5
BARE = Path(__file__).resolve().parent / "anchors" / "bare_predict.py"


def edgekit_command() -> list[str]:
    """The installed `edgekit` script beside this interpreter (else on PATH)."""
    beside = Path(sys.executable).parent / "edgekit"
    found = str(beside) if beside.is_file() else shutil.which("edgekit")
    if found is None:
        raise SystemExit("error: no edgekit command beside this Python or on PATH; pip install edgekit first.")
    return [found]


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return seconds


def compare(edgekit: list[str], bare: list[str], runs: int, warmup: int = 2) -> dict[str, Any]:
    """Alternate the two commands `runs` times (order swapped every pair); per-command and per-pair figures."""
    for _ in range(warmup):
        _wall(edgekit)
        _wall(bare)
    a: list[float] = []
    b: list[float] = []
    for i in range(runs):
        if i % 2 == 0:
            a.append(_wall(edgekit))
            b.append(_wall(bare))
        else:
            b.append(_wall(bare))
            a.append(_wall(edgekit))
    ratios = [x / y for x, y in zip(a, b)]

    def summary(values: list[float]) -> dict[str, float]:
        return {"min": min(values), "median": statistics.median(values), "max": max(values)}

    return {"edgekit_s": summary(a), "bare_s": summary(b), "ratio": summary(ratios), "runs": runs}


def render(result: dict[str, Any]) -> str:
    rows = [
        ("edgekit predict (s)", result["edgekit_s"]),
        ("bare script (s)", result["bare_s"]),
        ("ratio edgekit/bare", result["ratio"]),
    ]
    lines = [
        f"startup check {result['date']} on {result['machine']}: whole processes, {result['runs']} alternating pairs"
        + (f" ({result['install']})" if result.get("install") else ""),
        f"A: {result['commands']['edgekit']}",
        f"B: {result['commands']['bare']}",
        f"{'':22} {'min':>8} {'median':>8} {'max':>8}",
        *(f"{name:22} {v['min']:8.3f} {v['median']:8.3f} {v['max']:8.3f}" for name, v in rows),
        f"verdict: median ratio {result['ratio']['median']:.2f}x, limit {LIMIT:.2f}x: "
        + ("pass" if result["pass"] else "FAIL"),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup_check", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a .tflite model (int8 I/O for the bare script)")
    parser.add_argument("--image", type=Path, required=True, help="a digit image")
    parser.add_argument("--runs", type=int, default=20, help="alternating pairs (default 20)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the .json and .txt")
    parser.add_argument("--tag", default="", help="appended to the file names, e.g. how edgekit is installed")
    args = parser.parse_args(argv)
    from benchmarks.environment import capture_environment

    edgekit = [*edgekit_command(), "predict", str(args.model), str(args.image)]
    bare = [sys.executable, str(BARE), str(args.model), str(args.image)]
    env = capture_environment()
    now = datetime.now(timezone.utc)
    result: dict[str, Any] = {
        "schema_version": 1,
        "date": now.strftime("%Y-%m-%d"),
        "timestamp_utc": now.isoformat(timespec="seconds"),
        "machine": machine_label(env),
        "commands": {"edgekit": " ".join(edgekit), "bare": " ".join(bare)},
        "install": args.tag or None,
        **compare(edgekit, bare, args.runs),
        "limit": LIMIT,
        "environment": env,
    }
    result["pass"] = result["ratio"]["median"] <= LIMIT
    text = render(result)
    sys.stdout.write(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"startup-check-{result['date']}-{result['machine']}{'-' + args.tag if args.tag else ''}"
    import json

    _write_atomic(stem.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    _write_atomic(stem.with_suffix(".txt"), text)
    return EXIT_OK if result["pass"] else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
