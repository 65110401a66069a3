"""Run model files over saved inputs and save their outputs: what `edgekit parity --cpu` runs under QEMU.

    python -m benchmarks.outputs JOB.json

JOB.json names the inputs (`.npy`, float32 in the models' float range), an output folder, the thread
count and the artifacts (`name`, `path`, optional `model_spec` from manifest.json). For each artifact the
outputs of `Runner.infer` (float32, dequantized) go to `<out>/<name>.npy`. Stdout gets one JSON object per
line: first `{"cpu": ...}` (this process's CPU as the kernels see it, `benchmarks.cpu`), then one line per
artifact (`artifact`, `backend`, `seconds`, `file`, or `error`) as it finishes, so the parent can show
progress. Native runtime chatter on fd 1 is sent to stderr.

Imports only numpy, the runtimes and `benchmarks.cpu`: it runs in an emulated board root or under
`qemu-x86_64 -cpu MODEL` without TensorFlow.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from benchmarks.cpu import detect_cpu
from benchmarks.worker import claim_stdout
from runtimes.errors import EdgekitError, one_line
from runtimes.registry import make_runner
from runtimes.spec import ModelSpec

BATCH = 250


def run_one(entry: dict[str, Any], inputs: np.ndarray, out_dir: Path, threads: int | None) -> dict[str, Any]:
    """Outputs of one artifact over `inputs`, saved as `<out_dir>/<name>.npy`; its result line."""
    name = str(entry["name"])
    spec_data = entry.get("model_spec")
    spec = ModelSpec.from_dict(spec_data) if isinstance(spec_data, dict) else None
    started = time.perf_counter()
    try:
        with make_runner(Path(entry["path"]), num_threads=threads, spec=spec) as runner:
            outputs = np.concatenate([runner.infer(inputs[i : i + BATCH]) for i in range(0, len(inputs), BATCH)])
            backend = runner.backend()
    except EdgekitError as exc:
        return {"artifact": name, "error": one_line(exc)}
    target = out_dir / f"{name}.npy"
    np.save(target, outputs.astype(np.float32), allow_pickle=False)
    return {
        "artifact": name,
        "backend": backend,
        "seconds": round(time.perf_counter() - started, 3),
        "file": str(target),
    }


def run_job(job: dict[str, Any], out: TextIO) -> int:
    """Run every artifact of `job`, writing the JSON lines to `out`; 0, or 1 if any artifact failed."""
    out.write(json.dumps({"cpu": detect_cpu().to_dict()}) + "\n")
    out.flush()
    inputs = np.load(job["inputs"], allow_pickle=False)
    out_dir = Path(job["out"])
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = job.get("threads")
    code = 0
    for entry in job["artifacts"]:
        line = run_one(entry, inputs, out_dir, None if threads is None else int(threads))
        code |= 1 if "error" in line else 0
        out.write(json.dumps(line) + "\n")
        out.flush()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.outputs JOB.json`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m benchmarks.outputs JOB.json\n")
        return 2
    out = claim_stdout()
    with out:
        try:
            job = json.loads(Path(args[0]).read_text(encoding="utf-8"))
            return run_job(job, out)
        except (OSError, ValueError, KeyError) as exc:  # a bad job file: one line for the parent
            out.write(json.dumps({"error": one_line(exc)}) + "\n")
            return 1


if __name__ == "__main__":
    sys.exit(main())
