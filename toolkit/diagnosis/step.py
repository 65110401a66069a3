"""`edgekit diagnose`: where an export departs from the Keras reference, which images it gets wrong, and
why a quantized artifact is slower than its fp32 sibling.

Writes `diagnose/diagnose.json`, `diagnose/diagnose.md` and `diagnose/gallery_<artifact>.png` in the run
directory. Layer mapping and metrics are in `diagnose_layers`, instrumented runs in `diagnose_capture`, the
gallery in `diagnose_gallery`, the slowdown explainer in `diagnose_speed` (evidence in
`diagnose_evidence`) and the Markdown in `diagnose_report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from exporters.files import write_json_atomic, write_text_atomic
from toolkit.data.mnist import Mnist, load_mnist, to_model_input
from toolkit.errors import RunDirError, ToolkitError
from toolkit.progress import ProgressCallback, as_progress
from toolkit.run import layout as A

DIAGNOSE_DIR = "diagnose"
DIAGNOSE_JSON = "diagnose.json"
DIAGNOSE_MD = "diagnose.md"
DEFAULT_LIMIT = 500


def gallery_name(artifact: str) -> str:
    return f"gallery_{artifact}.png"


def default_artifacts(manifest: dict[str, Any]) -> list[str]:
    """The quantized artifacts if the run has any, else every non-Keras artifact."""
    from toolkit.diagnosis.speed import QUANTIZED

    exports = [a for a in manifest["artifacts"] if a["format"] != "keras"]
    quantized = [a["name"] for a in exports if a["precision"] in QUANTIZED]
    return quantized or [a["name"] for a in exports]


def _graph(path: Path) -> Any:
    from toolkit.diagnosis.capture import OnnxGraph, TFLiteGraph

    if path.suffix == ".tflite":
        return TFLiteGraph(path)
    if path.suffix == ".onnx":
        return OnnxGraph(path)
    raise ToolkitError(f"{path.name}: diagnose handles .tflite and .onnx artifacts.")


def diagnose_artifact(
    entry: dict[str, Any],
    path: Path,
    layers: list[Any],
    reference: dict[str, np.ndarray],
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: Path,
) -> dict[str, Any]:
    """Per-layer metrics, first departure, added-error ranking and gallery for one artifact."""
    from toolkit.diagnosis.gallery import write_gallery
    from toolkit.diagnosis.layers import first_departure, layer_rows, map_layers, ranked_by_added_error

    graph = _graph(path)
    probes = map_layers(layers, tuple(int(d) for d in images.shape[1:]), graph.tensors)
    keys = [p.tensor.read for p in probes if p.tensor is not None]
    cap = graph.capture(keys, images)
    rows, flatten_order = layer_rows(probes, cap.values, reference, images)
    assert cap.probs is not None and cap.plain_probs is not None
    ref_probs = reference[layers[-1].name]
    plain = cap.plain_probs
    instrumented_diff = float(np.max(np.abs(cap.probs - plain)))
    gallery = write_gallery(out_dir / gallery_name(entry["name"]), images, labels, ref_probs, plain, entry["name"])
    agreement = float((plain.argmax(1) == ref_probs.argmax(1)).mean())
    return {
        "artifact": entry["name"],
        "format": entry["format"],
        "precision": entry["precision"],
        "runtime": entry["runtime"],
        "path": entry["path"],
        "accuracy": float((plain.argmax(1) == labels).mean()),
        "reference_accuracy": float((ref_probs.argmax(1) == labels).mean()),
        "top1_agreement": agreement,
        "disagreements": gallery["count"],
        "instrumentation": {
            "how": "; ".join(cap.notes),
            "max_abs_diff_vs_plain_output": instrumented_diff,
            "top1_changes_vs_plain": int((cap.probs.argmax(1) != plain.argmax(1)).sum()),
        },
        "flatten_order": flatten_order,
        "layers": rows,
        "first_departure": first_departure(rows),
        "added_error_ranking": ranked_by_added_error(rows),
        "gallery": gallery,
    }


def diagnose_step(
    run_dir: Path,
    *,
    artifact_names: list[str] | None = None,
    limit: int = DEFAULT_LIMIT,
    data: Mnist | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Diagnose the chosen artifacts of a run; write diagnose/diagnose.{json,md} and the galleries."""
    from runtimes.keras_runner import load_keras_model
    from toolkit.diagnosis.layers import DEPART_COSINE, DEPART_SNR_DB, SNR_CAP_DB, keras_layers, keras_outputs
    from toolkit.diagnosis.render import render_markdown
    from toolkit.diagnosis.speed import explain

    if limit < 1:
        raise ToolkitError(f"--limit must be 1 or more, got {limit}.")
    manifest = A.load_manifest(run_dir)
    names = artifact_names or default_artifacts(manifest)
    if A.REFERENCE_NAME in names:
        raise ToolkitError(f"{A.REFERENCE_NAME} is the reference every artifact is compared with; choose exports.")
    entries = A.select_artifacts(manifest, names)
    if not entries:
        raise RunDirError(f"{run_dir / A.MANIFEST_JSON} lists no exported artifacts; run `edgekit export` first.")
    ref_entry = A.listed_reference(run_dir, manifest)
    ref_path = A.verified_path(run_dir, ref_entry)
    paths = [(e, A.verified_path(run_dir, e)) for e in entries]
    siblings = {
        e["format"]: (e, A.verified_path(run_dir, e))
        for e in manifest["artifacts"]
        if e["precision"] == "fp32" and e["format"] != "keras"
    }
    _check_specs(paths)
    data = data or load_mnist()
    n = min(limit, len(data.x_test))
    images, labels = to_model_input(data.x_test[:n]), data.y_test[:n].astype(np.int64)
    out_dir = run_dir / DIAGNOSE_DIR
    out_dir.mkdir(parents=True, exist_ok=True)

    p = as_progress(progress)
    task = p.add_task("diagnose: Keras reference", total=len(paths) + 2)
    model = load_keras_model(ref_path)
    layers = keras_layers(model)
    reference = keras_outputs(model, images)
    p.advance(task)
    results = []
    for entry, path in paths:
        p.update(task, description=f"diagnose: {entry['name']} layers")
        results.append(diagnose_artifact(entry, path, layers, reference, images, labels, out_dir))
        p.advance(task)
    p.update(task, description="diagnose: speed")
    bench_path = run_dir / A.BENCH_JSON
    bench = A.read_json(bench_path) if bench_path.exists() else None
    speed = explain(paths, siblings, bench, images[:1])
    p.advance(task)
    p.update(task, description="diagnose: done")

    report = {
        "schema_version": A.SCHEMA_VERSION,
        "created_utc": A.utc_now(),
        "run": run_dir.resolve().name,
        "images": n,
        "data": {"source": data.source, "verified": data.verified, "subset": f"the first {n} of the test set"},
        "thresholds": {
            "departs_below_snr_db": DEPART_SNR_DB,
            "departs_below_cosine": DEPART_COSINE,
            "snr_cap_db": SNR_CAP_DB,
            "metrics": (
                "over all images and elements of a layer's output: max and mean |export − keras|, cosine "
                "similarity, SNR = 10·log10(Σ keras² / Σ (export − keras)²) dB (exact match reported as the cap); "
                "Δ SNR = previous layer's SNR − this layer's (the error this layer adds)"
            ),
        },
        "reference": {
            "artifact": A.REFERENCE_NAME,
            "layers": [{"name": lay.name, "type": lay.type, "shape": list(lay.shape)} for lay in layers],
        },
        "artifacts": results,
        "speed": speed,
        "bench_json": bench_path.name if bench else None,
        "libraries": A.library_versions(),
    }
    write_json_atomic(out_dir / DIAGNOSE_JSON, report)
    write_text_atomic(out_dir / DIAGNOSE_MD, render_markdown(report))
    return report


def _check_specs(paths: list[tuple[dict[str, Any], Path]]) -> None:
    """Refuse, in one line and before the long work, a file that no longer matches its manifest ModelSpec."""
    from runtimes.registry import make_runner

    for entry, path in paths:
        with make_runner(path, spec=A.entry_spec(entry)):
            pass
