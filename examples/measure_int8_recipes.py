"""Measure ONNX Runtime's static int8 recipes on the reference CNN: answers on every CPU class, and speed here.

    python examples/measure_int8_recipes.py REFERENCE_RUN OUT [--rounds 5] [--arm]

REFERENCE_RUN is a run of the reference CNN (e.g. runs/latest after `make run`). Its model.keras is converted
to ONNX fp32 once and quantized five ways (static QDQ, per-channel weights, the run's 500 seeded calibration
images): s8s8 (edgekit's recipe before the portable one), s8s8-7bit, u8s8 (`--target x86-vnni`), u8s8-7bit
(`portable`, the default) and u8u8. Each file then runs over all test images
- natively and under QEMU's Haswell-v4 (AVX2, no VNNI) and Nehalem-v2 (SSE4.2), and with `--arm` under
  cortex-a72 and cortex-a76 in the arm64 root (needs root): accuracy, agreement with Keras, max |Δp| against
  Keras and against this machine;
- through edgekit's latency worker here (fresh process each, 1 thread, batch 1 and 32), the recipes
  interleaved round by round (`--rounds`), so a drifting machine affects them alike: the median of the rounds.

Writes OUT.md (the tables) and OUT.json (every figure, with the machine), e.g. OUT =
benchmarks/results/int8-recipes-<date>-<machine>.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RECIPES = {  # name → (activations, weights, reduce_range)
    "s8s8 (before)": ("int8", "int8", False),
    "s8s8-7bit": ("int8", "int8", True),
    "u8s8 (x86-vnni)": ("uint8", "int8", False),
    "u8s8-7bit (portable)": ("uint8", "int8", True),
    "u8u8": ("uint8", "uint8", False),
}
X86 = ("haswell", "nehalem")
ARM = ("cortex-a72", "cortex-a76")


def quantize_all(run: Path, out: Path) -> tuple[dict[str, Path], np.ndarray, np.ndarray, np.ndarray]:
    from exporters.int8_recipe import OnnxInt8Recipe
    from exporters.onnx_export import _convert_fp32, _quantize_int8
    from runtimes.keras_runner import load_keras_model
    from toolkit.data.mnist import load_mnist
    from toolkit.model.run_source import run_dataset
    from toolkit.steps.export import model_spec_of

    model = load_keras_model(run / "model.keras")
    spec = model_spec_of(model)
    data = run_dataset(run, load_mnist(), spec=spec)
    x, y = data.test_split(spec, None)
    calibration = data.calibration(spec, n=500, seed=7)
    keras = np.asarray(model.predict(x, batch_size=1000, verbose=0), dtype=np.float32)
    files: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        _convert_fp32(model, fp32, 17)
        for i, (name, (act, wt, reduce)) in enumerate(RECIPES.items()):
            recipe = OnnxInt8Recipe(name, act, wt, reduce_range=reduce, portable=False, why="measured")
            files[name] = out / f"recipe{i}.onnx"
            _quantize_int8(fp32, files[name], calibration, recipe)
    return files, np.asarray(x, dtype=np.float32), np.asarray(y), keras


def answers(files: dict[str, Path], x: np.ndarray, arm: bool, work: Path) -> dict[str, dict[str, np.ndarray]]:
    """Outputs of every file natively and on each emulated CPU: cpu name → recipe → outputs."""
    from concurrent.futures import ThreadPoolExecutor

    from toolkit.cpus.launch import run_emulated, run_native
    from toolkit.cpus.models import CPU_MODELS

    np.save(work / "x.npy", x)
    names = list(files)

    def job(tag: str) -> Path:
        artifacts = [{"name": f"r{i}", "path": str(files[n])} for i, n in enumerate(names)]
        path = work / f"job-{tag}.json"
        path.write_text(
            json.dumps({"inputs": str(work / "x.npy"), "out": str(work / tag), "threads": 1, "artifacts": artifacts})
        )
        return path

    def say(text: str) -> None:
        print(text, file=sys.stderr)

    results = {"native": run_native(job("native"), lambda _line: None)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c: pool.submit(run_emulated, CPU_MODELS[c], job(c), lambda _line: None, say=say) for c in X86}
        results.update({c: f.result() for c, f in futures.items()})
    for c in ARM if arm else ():
        results[c] = run_emulated(CPU_MODELS[c], job(c), lambda _line: None, say=say)
    out: dict[str, dict[str, np.ndarray]] = {}
    for cpu, result in results.items():
        out[cpu] = {n: np.load(result.lines[f"r{i}"]["file"]) for i, n in enumerate(names)}
        out[cpu]["_class"] = result.cpu["isa_class"] if result.cpu else "?"  # type: ignore[assignment]
    return out


def latency(files: dict[str, Path], x: np.ndarray, rounds: int, work: Path) -> dict[str, dict[int, list[float]]]:
    from benchmarks.harness import run_worker

    np.save(work / "bench.npy", x[:256])
    p50: dict[str, dict[int, list[float]]] = {n: {1: [], 32: []} for n in files}
    for _ in range(rounds):
        for name, path in files.items():
            doc = run_worker(path, work / "bench.npy", threads=1, batch_sizes=(1, 32))
            for r in doc["results"]:
                p50[name][int(r["batch_size"])].append(float(r["p50_ms"]))
    return p50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path, help="output path without suffix: writes OUT.md and OUT.json")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--arm", action="store_true", help="also cortex-a72 and cortex-a76 (arm64 root, root only)")
    args = parser.parse_args()
    from benchmarks.environment import capture_environment

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files, x, y, keras = quantize_all(args.run, work)
        outs = answers(files, x, args.arm, work)
        times = latency(files, x, args.rounds, work)
    env: dict[str, Any] = capture_environment()
    doc: dict[str, object] = {"environment": env, "images": len(x), "rounds": args.rounds, "recipes": {}}
    lines = [
        f"# ONNX int8 recipes on the reference CNN ({len(x):,} MNIST test images)",
        "",
        f"Machine: {env.get('cpu_model')} ({(env.get('cpu') or {}).get('isa_class')}), {env.get('cores_available')} "
        f"cores; {(env.get('runtime_versions') or {}).get('onnxruntime')}. Keras accuracy "
        f"{100 * float((keras.argmax(1) == y).mean()):.2f} %.",
        "",
        "Answers (agreement with Keras, max |Δp| vs Keras, max |Δp| vs this machine) per CPU:",
        "",
    ]
    cpus = [c for c in outs if c != "native"]
    header = ["recipe", *(f"{c} ({outs[c]['_class']})" for c in ["native", *cpus])]
    lines += ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for name in files:
        native = outs["native"][name]
        cells: list[str] = []
        rec: dict[str, Any] = {}
        for cpu in ["native", *cpus]:
            o = outs[cpu][name]
            agree = float((o.argmax(1) == keras.argmax(1)).mean())
            acc = float((o.argmax(1) == y).mean())
            vs_keras, vs_native = float(np.abs(o - keras).max()), float(np.abs(o - native).max())
            rec[cpu] = {
                "accuracy": acc,
                "agreement": agree,
                "max_abs_diff": vs_keras,
                "max_abs_diff_vs_native": vs_native,
            }
            cells.append(f"{agree:.4f}, {vs_keras:.3f}, {'=' if vs_native == 0 else f'{vs_native:.3f}'}")
        b1, b32 = statistics.median(times[name][1]), statistics.median(times[name][32])
        rec["latency_p50_ms"] = {"b1": times[name][1], "b32": times[name][32], "b1_median": b1, "b32_median": b32}
        doc["recipes"][name] = rec  # type: ignore[index]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Latency here, ONNX Runtime, 1 thread, p50 ms (median of {args.rounds} interleaved rounds, each a fresh "
        "process of ≥ 1,024 runs and ≥ 2 s):",
        "",
        "| recipe | batch 1 | batch 32 | rounds (b1) | rounds (b32) |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for name in files:
        t = times[name]
        lines.append(
            f"| {name} | {statistics.median(t[1]):.4f} | {statistics.median(t[32]):.3f} | "
            f"{', '.join(f'{v:.4f}' for v in t[1])} | {', '.join(f'{v:.3f}' for v in t[32])} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
