"""`export --max-accuracy-drop/--min-agreement`: the fewest Keras layers kept in float that meet an accuracy budget.

Per format (TFLite, ONNX Runtime), separately: measure full int8; if it misses the budget, rank the layers
(`exporters.sensitivity.rank_layers`), then keep the 1, 2, ... most sensitive in float until the budget is
met. Writes `tflite-int8-mixed`/`onnx-int8-mixed` (manifest.json, with `float_layers`) and mixed.json (the
ranking and the curve k → accuracy, agreement, size, batch-1 p50). When full int8 meets the budget in
both formats nothing is written.

The budget is judged on the first `images` rows of the dataset's test split (`Dataset.test_split`), which
calibration never sees (it draws from the training split).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import ToolkitError
from toolkit.progress import ProgressCallback, as_progress
from toolkit.run import layout as A

MIXED_JSON = "mixed.json"
TIMING = "batch 1, 1 thread, runner.infer on one test image: 5 warm-up calls, median of 50 (exporters.sensitivity)"
# Curve points beyond the chosen one: enough to show what more float layers would buy, bounded for big models.
EXTRA_POINTS = 2


def check_budget(max_drop: float | None, min_agreement: float | None) -> None:
    if max_drop is not None and max_drop < 0:
        raise ToolkitError(f"--max-accuracy-drop is in accuracy points and must be 0 or more, got {max_drop}.")
    if min_agreement is not None and not 0 < min_agreement <= 1:
        raise ToolkitError(f"--min-agreement is a fraction in (0, 1], got {min_agreement}.")


def mixed_step(
    run_dir: Path,
    *,
    max_drop: float | None,
    min_agreement: float | None,
    data: Any = None,
    calibration_size: int = 500,
    seed: int = 7,
    images: int = 2000,
    progress: ProgressCallback | None = None,
    message: Callable[[str], None] | None = None,
) -> dict[str, Any] | None:
    """Search the int8/float mix for each format; return mixed.json's content, or None if full int8 meets it.

    Args:
        max_drop: allowed accuracy drop vs Keras, in points (e.g. 0.3).
        min_agreement: minimum top-1 agreement with Keras (e.g. 0.995).
        data: the run's data (as for export); calibration uses the same draw as the int8 exports.
        images: test-split rows the budget is judged on.
        message: receives one-line outcomes ("full int8 meets the budget: ...").
    """
    from exporters.int8_recipe import parse_target
    from exporters.mixed import export_onnx_mixed, export_tflite_mixed
    from exporters.sensitivity import Variants, keras_outputs, p50_batch1_ms, rank_layers, score
    from runtimes.keras_runner import load_keras_model
    from runtimes.spec import spec_from_tensors
    from toolkit.model.run_source import is_user_run, run_dataset, run_spec
    from toolkit.run.documents import MixedDocument
    from toolkit.steps.export import model_spec_of

    check_budget(max_drop, min_agreement)
    if max_drop is None and min_agreement is None:
        return None
    say = message or (lambda _text: None)
    model = load_keras_model(A.require_file(run_dir, A.MODEL_FILE, "run `edgekit train` first"))
    spec = run_spec(run_dir) if is_user_run(run_dir) else model_spec_of(model)
    if spec.output_kind == "values":
        raise ToolkitError("--max-accuracy-drop/--min-agreement need a classifier; this model outputs plain values.")
    dataset = run_dataset(run_dir, data, spec=spec)
    calibration = dataset.calibration(spec, n=calibration_size, seed=seed)
    # The mixed files quantize as the run's int8 exports did (the CPU class they target).
    exported = (run_dir / A.MANIFEST_JSON).exists()
    target = parse_target(A.int8_target(A.load_manifest(run_dir)) if exported else None)
    x, y = dataset.test_split(spec, images)
    labels = np.asarray(y).astype(np.int64).reshape(-1)
    ref = keras_outputs(model, x)
    keras_acc = float((ref.argmax(axis=1) == labels).mean())

    def meets(accuracy: float | None, agreement: float) -> bool:
        drop = None if accuracy is None else (keras_acc - accuracy) * 100
        ok_drop = max_drop is None or (drop is not None and drop <= max_drop + 1e-9)
        return ok_drop and (min_agreement is None or agreement >= min_agreement)

    p = as_progress(progress)
    task = p.add_task("mixed precision", total=None)
    formats: list[dict[str, Any]] = []
    new_entries: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix=".mixed-", dir=run_dir) as tmp:
        for fmt in ("tflite", "onnx"):
            p.update(task, description=f"mixed precision: {fmt} full int8")
            work = Path(tmp) / fmt
            work.mkdir()
            v = Variants(model, fmt, calibration, work, target)
            full = v.measure([], x, ref, labels)
            if meets(full.accuracy, full.agreement):
                say(f"{fmt}: full int8 meets the budget ({_figures(full, keras_acc)}); no {fmt}-int8-mixed written.")
                formats.append({"format": fmt, "met": True, "full": full})
                continue
            ranking = rank_layers(
                model, calibration_data=calibration, images=x, labels=labels, formats=(fmt,), reference=ref,
                progress=lambda text: p.update(task, description=f"mixed precision: rank {text}"), target=target,
            )[fmt]  # fmt: skip
            order = ranking.order()
            curve: list[dict[str, Any]] = []
            chosen: int | None = None
            for k in range(len(order) + 1):
                if chosen is not None and k > chosen + EXTRA_POINTS:
                    break
                p.update(task, description=f"mixed precision: {fmt} with {k} float layer(s)")
                path = v.write(v.graph.float_ops(order[:k]))
                s = score(_run(path, x), ref, labels)
                ok = meets(s.accuracy, s.agreement)
                curve.append(
                    {
                        "k": k,
                        "float_layers": order[:k],
                        "accuracy": s.accuracy,
                        "agreement": s.agreement,
                        "drop_pt": None if s.accuracy is None else round((keras_acc - s.accuracy) * 100, 4),
                        "size_bytes": path.stat().st_size,
                        "p50_ms": round(p50_batch1_ms(path, x[0]), 4),
                        "meets_budget": ok,
                    }
                )
                if ok and chosen is None:
                    chosen = k
            entry: dict[str, Any] = {
                "format": fmt,
                "ranking": [
                    {
                        "layer": r.layer,
                        "float_accuracy": r.float_accuracy,
                        "float_agreement": r.float_agreement,
                        "only_accuracy": r.only_accuracy,
                        "only_agreement": r.only_agreement,
                    }
                    for r in ranking.layers
                ],
                "curve": curve,
                "met": chosen is not None,
                "artifact": None,
                "float_layers": None,
            }
            if chosen is None:
                entry["note"] = f"no mix meets the budget, even with all {len(order)} layers in float; nothing written."
                say(f"{fmt}: {entry['note']}")
            else:
                exporter = export_tflite_mixed if fmt == "tflite" else export_onnx_mixed
                quantizer = v.tflite if fmt == "tflite" else v.onnx
                result = exporter(
                    model, run_dir / A.EXPORTS_DIR, calibration_data=calibration, float_layers=order[:chosen],
                    quantizer=quantizer,  # type: ignore[arg-type]
                )  # fmt: skip
                art = result.manifest_entry(run_dir)
                art["model_spec"] = spec_from_tensors(
                    result.input_spec, result.output_spec, value_range=spec.value_range,
                    output_kind=spec.output_kind, class_names=spec.class_names,
                ).to_dict()  # fmt: skip
                new_entries.append(art)
                entry.update(artifact=result.name, float_layers=order[:chosen])
                point = curve[chosen]
                entry["note"] = (
                    f"full int8 {_figures(full, keras_acc)}; {chosen} layer(s) in float "
                    f"({', '.join(order[:chosen])}): accuracy {point['accuracy']:.2%}, agreement "
                    f"{point['agreement']:.2%}, {point['size_bytes']:,} bytes."
                )
                say(f"{result.name}: {entry['note']}")
            formats.append(entry)
    p.update(task, description="mixed precision: done")
    if all(f.get("full") is not None for f in formats):
        return None
    for f in formats:
        if f.pop("full", None) is not None:
            f.update(artifact=None, float_layers=[], ranking=[], curve=[], note="full int8 meets the budget.")
    if new_entries:
        manifest = A.load_manifest(run_dir)
        extra = {k: v for k, v in manifest.items() if k not in ("artifacts", "created_utc", "edgekit_version",
                                                                "git_sha", "libraries", "schema_version")}  # fmt: skip
        A.write_manifest(run_dir, new_entries, extra)
    doc = {
        "schema_version": A.SCHEMA_VERSION,
        "max_drop_pt": max_drop,
        "min_agreement": min_agreement,
        "images": len(x),
        "data": dataset.name,
        "keras_accuracy": keras_acc,
        "timing": TIMING,
        "formats": formats,
    }
    A.save_document(run_dir / MIXED_JSON, doc, MixedDocument)
    return doc


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    from exporters.sensitivity import run_file

    return run_file(path, x)


def _figures(s: Any, keras_acc: float) -> str:
    if s.accuracy is None:
        return f"agreement {s.agreement:.2%}"
    return f"accuracy {s.accuracy:.2%} vs Keras {keras_acc:.2%}, agreement {s.agreement:.2%}"
