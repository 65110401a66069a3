"""Measure the int8-sensitive test models (tests/sensitive_models.py) and print the closing-note table.

    python examples/measure_sensitive_models.py REFERENCE_RUN OUT_DIR

REFERENCE_RUN is a run of the reference CNN (e.g. runs/latest after `make run`); its model.keras gets an
outlier unit. For the outlier model and the constant-feature MLP this runs, each into OUT_DIR/<case>/:
`edgekit export --model … --data … -p fp32 -p int8-dynamic -p int8 -p int4-weights --max-accuracy-drop 0.3`, `edgekit
parity`, `edgekit bench -b 1 -t 1 --no-peak` and `edgekit diagnose -a tflite-int8 -a onnx-int8`, then writes
OUT_DIR/summary.md: full-int8 accuracy, the sensitivity ranking, the layers kept in float, each artifact's
accuracy, size and batch-1 p50.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import sensitive_models as S


def edgekit(*args: str) -> int:
    return subprocess.call([sys.executable, "-m", "toolkit.cli", *args], stdout=subprocess.DEVNULL)


def build(reference_run: Path, root: Path) -> dict[str, tuple[Path, str]]:
    import keras

    root.mkdir(parents=True, exist_ok=True)
    base = keras.saving.load_model(reference_run / "model.keras")
    outlier = S.outlier_channel(base, root / "reference_with_outlier.keras")
    vectors = S.constant_feature_vectors(root / "pooled49.npz")
    mlp = S.constant_feature_mlp(root / "constant_feature_mlp.keras", vectors)
    return {"outlier": (outlier, "mnist"), "constant-feature": (mlp, str(vectors))}


def summary(case: str, run: Path) -> list[str]:
    read = lambda name: json.loads((run / name).read_text())  # noqa: E731
    parity, bench, manifest, mixed = read("parity.json"), read("bench.json"), read("manifest.json"), read("mixed.json")
    diagnose = read("diagnose/diagnose.json")
    sizes = {a["name"]: a["size_bytes"] for a in manifest["artifacts"]}
    floats = {a["name"]: a.get("float_layers") for a in manifest["artifacts"]}
    p50 = {r["artifact"]: r["p50_ms"] for r in bench["results"] if r["batch_size"] == 1 and r["threads"] == 1}
    ref_doc = parity["reference"]
    title = f"### {case}: {read('model.json')['name']} on {parity['data']['name']}"
    lines = [f"{title} (Keras {100 * ref_doc['accuracy']:.2f} % on {ref_doc['images']:,} images)", ""]
    for fmt in mixed["formats"]:
        rows = [r for r in fmt["ranking"] if r["float_accuracy"] is not None]
        ranking = ", ".join(f"{r['layer']} ({100 * r['float_accuracy']:.1f} %)" for r in rows)
        lines.append(f"- {fmt['format']} ranking (accuracy with only that layer in float): {ranking}")
        lines.append(f"- {fmt['format']} kept in float: {fmt['float_layers']} ({fmt['note']})")
    for art in diagnose["artifacts"]:
        cause = art.get("cause") or {}
        lines.append(f"- diagnose {art['artifact']}: {cause.get('text') or cause}")
    lines += [
        "",
        "| artifact | accuracy | Δ pt | agreement | bytes | b1×1t p50 ms | float layers | parity |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    ref = parity["reference"]["accuracy"]
    for row in parity["results"]:
        name = row["artifact"]
        lines.append(
            f"| {name} | {100 * row['accuracy']:.2f} % | {100 * (row['accuracy'] - ref):+.2f} | "
            f"{row['top1_agreement']:.4f} | {sizes[name]:,} | {p50.get(name, float('nan')):.3f} | "
            f"{', '.join(floats.get(name) or []) or '–'} | {'pass' if row['passed'] else 'FAIL'} |"
        )
    return [*lines, ""]


def main() -> int:
    reference_run, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2] if len(sys.argv) > 2 else "sensitive-runs")
    lines = ["# int8-sensitive models: full int8, diagnosis, `export --max-accuracy-drop 0.3`, int4 weights", ""]
    for case, (model, data) in build(reference_run, out / "inputs").items():
        run = out / case
        precisions = ["-p", "fp32", "-p", "int8-dynamic", "-p", "int8", "-p", "int4-weights"]
        edgekit("export", str(run), "--model", str(model), "--data", data, *precisions, "--max-accuracy-drop", "0.3")
        edgekit("parity", str(run))
        edgekit("bench", str(run), "-b", "1", "-t", "1", "--no-peak")
        edgekit("diagnose", str(run), "-a", "tflite-int8", "-a", "onnx-int8")
        edgekit("report", str(run))
        lines += summary(case, run)
    (out / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
