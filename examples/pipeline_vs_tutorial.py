"""Time the whole reference pipeline against the bare tutorial script, alternated on one machine.

    python examples/pipeline_vs_tutorial.py OUT_DIR [--pairs 3] [--mnist shared/data/mnist.npz]

Each pair runs `benchmarks/anchors/seed_script.py MNIST` (the tutorial as a bare Keras script: train 10 epochs
and evaluate) and `edgekit pipeline --runs-dir OUT_DIR/runs` (train, export, parity, bench, report at default
settings), in turn, each as a whole process; the order alternates from pair to pair so a drift of the
machine's speed falls on both. Writes OUT_DIR/pairs.json and OUT_DIR/pairs.md: each pair's wall times and
ratio, the pipeline's own step times, and the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANCHOR = ROOT / "benchmarks" / "anchors" / "seed_script.py"


def wall(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return seconds, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--mnist", type=Path, default=ROOT / "toolkit" / "data" / "assets" / "mnist.npz")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tutorial = [sys.executable, str(ANCHOR), str(args.mnist)]
    pipeline = [sys.executable, "-m", "toolkit.cli", "pipeline", "--runs-dir", str(args.out / "runs")]
    pairs = []
    for k in range(args.pairs):
        order = [("tutorial", tutorial), ("pipeline", pipeline)]
        if k % 2:
            order.reverse()
        times, outputs = {}, {}
        for name, cmd in order:
            times[name], outputs[name] = wall(cmd)
        done = next((line for line in outputs["pipeline"].splitlines() if line.startswith("Done in")), "")
        pairs.append(
            {
                "tutorial_s": round(times["tutorial"], 1),
                "pipeline_s": round(times["pipeline"], 1),
                "ratio": round(times["pipeline"] / times["tutorial"], 3),
                "tutorial_line": outputs["tutorial"].strip().splitlines()[-1],
                "pipeline_steps": done,
            }
        )
        print(pairs[-1], flush=True)
    summary = {
        "pairs": pairs,
        "median_tutorial_s": statistics.median(p["tutorial_s"] for p in pairs),
        "median_pipeline_s": statistics.median(p["pipeline_s"] for p in pairs),
        "median_ratio": statistics.median(p["ratio"] for p in pairs),
    }
    (args.out / "pairs.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# Whole reference pipeline against the bare tutorial script (alternated, whole processes)",
        "",
        "| pair | tutorial s | pipeline s | ratio | tutorial says | pipeline steps |",
        "| ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for k, p in enumerate(pairs, start=1):
        lines.append(
            f"| {k} | {p['tutorial_s']} | {p['pipeline_s']} | {p['ratio']} | {p['tutorial_line']} | "
            f"{p['pipeline_steps']} |"
        )
    lines += [
        "",
        f"Medians: tutorial {summary['median_tutorial_s']} s, pipeline {summary['median_pipeline_s']} s, "
        f"ratio {summary['median_ratio']}.",
    ]
    (args.out / "pairs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
