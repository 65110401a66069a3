"""Measure the test user models (tests/user_models.py) end to end and print the closing-note table.

    python examples/measure_user_models.py OUT_DIR

Builds the RGB CNN, the MLP, the logits CNN, the regression MLP and the folder-of-images CNN from real MNIST
digits, runs `edgekit pipeline --model … --data … -b 1 -t 1 --no-peak` for each (full timing, not --quick)
into OUT_DIR/<case>/, and writes OUT_DIR/summary.md: layers, float accuracy, each artifact's accuracy,
agreement, size and batch-1 p50.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import user_models as U


def build(root: Path) -> dict[str, tuple[Path, Path]]:
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    data = U.rgb_digits(root / "tinted.npz")
    files["rgb"] = (U.rgb_cnn(root / "rgb_cnn.keras", data), data)
    data = U.digit_vectors(root / "pooled.npz")
    files["mlp"] = (U.mlp(root / "mlp.keras", data), data)
    data = U.grey_digits(root / "grey.npz")
    files["logits"] = (U.logits_cnn(root / "grey_logits.keras", data), data)
    data = U.ink_targets(root / "ink.npz")
    files["regression"] = (U.regressor(root / "ink_reg.keras", data), data)
    folder = U.digit_folder(root / "shapes")
    files["folder"] = (U.folder_cnn(root / "folder_cnn.keras", folder), folder)
    return files


def _built(root: Path) -> dict[str, tuple[Path, Path]]:
    return {
        "rgb": (root / "rgb_cnn.keras", root / "tinted.npz"),
        "mlp": (root / "mlp.keras", root / "pooled.npz"),
        "logits": (root / "grey_logits.keras", root / "grey.npz"),
        "regression": (root / "ink_reg.keras", root / "ink.npz"),
        "folder": (root / "folder_cnn.keras", root / "shapes"),
    }


def summary(case: str, run: Path) -> list[str]:
    read = lambda name: json.loads((run / name).read_text())  # noqa: E731
    model, parity, bench, manifest = read("model.json"), read("parity.json"), read("bench.json"), read("manifest.json")
    sizes = {a["name"]: a["size_bytes"] for a in manifest["artifacts"]}
    p50 = {r["artifact"]: r["p50_ms"] for r in bench["results"] if r["batch_size"] == 1 and r["threads"] == 1}
    layers = ", ".join(f"{layer['class']}" for layer in model["layers"] if layer["class"] != "InputLayer")
    acc = parity["reference"]["accuracy"]
    head = f"float accuracy {100 * acc:.2f} %" if acc is not None else "regression"
    title = f"### {case}: {model['name']} on {parity['data']['name']} ({model['params']:,} parameters, {head})"
    header = "| artifact | accuracy | agreement | max rel. error | bytes | b1×1t p50 ms | parity |"
    lines = [title, "", f"Layers: {layers}", "", header, "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in parity["results"]:
        name = row["artifact"]
        accuracy = "–" if row["accuracy"] is None else f"{100 * row['accuracy']:.2f} %"
        agreement = "–" if row["top1_agreement"] is None else f"{row['top1_agreement']:.4f}"
        rel = "–" if row.get("max_rel_error") is None else f"{row['max_rel_error']:.2e}"
        lines.append(
            f"| {name} | {accuracy} | {agreement} | {rel} | {sizes[name]:,} | {p50.get(name, float('nan')):.3f} | "
            f"{'pass' if row['passed'] else 'FAIL'} |"
        )
    return [*lines, ""]


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "user-model-runs")
    files = build(out / "inputs") if not (out / "inputs").exists() else _built(out / "inputs")
    lines = ["# Test user models through `edgekit pipeline --model … --data …` (b1, 1 thread)", ""]
    for case, (model, data) in files.items():
        runs = out / case
        command = [
            sys.executable,
            "-m",
            "toolkit.cli",
            "pipeline",
            "--model",
            str(model),
            "--data",
            str(data),
            "--runs-dir",
            str(runs),
            "-b",
            "1",
            "-t",
            "1",
            "--no-peak",
        ]
        if not (runs / "latest").exists():  # a second call only re-writes the summary
            subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
        lines += summary(case, (runs / "latest").resolve())
    (out / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
