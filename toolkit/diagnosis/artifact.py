"""One export against the Keras reference: its per-layer rows, the cause, its output error and its gallery.

`diagnose_artifact` is what `toolkit.diagnosis.step` runs for each chosen artifact of a run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from toolkit.diagnosis.layers import Probe
    from toolkit.diagnosis.outputs import ModelOutput


def gallery_name(artifact: str) -> str:
    return f"gallery_{artifact}.png"


def _graph(path: Path, *, half: bool = False) -> Any:
    from toolkit.diagnosis.capture import OnnxGraph, TFLiteGraph

    if path.suffix == ".tflite":
        return TFLiteGraph(path)
    if path.suffix == ".onnx":
        return OnnxGraph(path, half=half)
    if path.suffix == ".xml":
        from toolkit.diagnosis.ov_capture import OpenVINOGraph

        # The IR is converted from the run's onnx-fp32 file (its tensor names): exports/model_fp32.onnx beside it,
        # or the run's own model.onnx for an ONNX source.
        sources = (path.parent / "model_fp32.onnx", path.parent.parent / "model.onnx")
        return OpenVINOGraph(path, next((s for s in sources if s.is_file()), None))
    raise ToolkitError(f"{path.name}: diagnose handles .tflite, .onnx and OpenVINO .xml artifacts.")


def classifies(reference_output: np.ndarray, labels: np.ndarray | None) -> bool:
    """Whether to score top-1 (labels given and more than one output value per example)."""
    return labels is not None and reference_output.ndim == 2 and reference_output.shape[1] > 1


def output_error(ref: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    """Max/mean |export − keras| of the final output, and the max relative to the largest |keras| value."""
    err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    max_abs = float(err.max()) if err.size else 0.0
    return {
        "max_abs_err": max_abs,
        "mean_abs_err": float(err.mean()) if err.size else 0.0,
        "max_rel_err": max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf")),
        "relative_to": "the largest |Keras output| over the images",
    }


def diagnose_artifact(
    entry: dict[str, Any],
    path: Path,
    layers: list[Any],
    reference: dict[str, np.ndarray],
    images: np.ndarray,
    labels: np.ndarray | None,
    out_dir: Path,
    model_names: tuple[str, ...] = (),
    output_layer: str | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    sensitivity: list[dict[str, Any]] | None = None,
    mapper: Callable[[Any], list[Probe]] | None = None,
) -> dict[str, Any]:
    """Per-layer metrics, first departure, its cause, added-error ranking, output error and gallery for one artifact.

    `params` (from `channels.layer_parameters`) lets the cause name weight and gain outliers; `sensitivity`
    (rows of layer, only_float, only_quantized for this artifact) adds the sensitivity figures to it.
    With `labels` None or a single output value per example (regression), the summary reports the output's
    absolute and relative error instead of accuracy and top-1 agreement, and no gallery is drawn.
    `mapper` (a run made from a file: `file_source.probes_by_name`) finds each reference row's tensor in the
    export's graph instead of the Keras-name mapping.
    """
    from toolkit.diagnosis.cause import constants_by_layer, explain_cause
    from toolkit.diagnosis.layers import map_layers
    from toolkit.diagnosis.metrics import first_departure, layer_rows, ranked_by_added_error

    graph = _graph(path, half=mapper is not None)
    if mapper is not None:
        probes = mapper(graph)
    else:
        probes = map_layers(layers, tuple(int(d) for d in images.shape[1:]), graph.tensors, model_names)
    keys = [p.tensor.read for p in probes if p.tensor is not None]
    cap = graph.capture(keys, images)
    rows, flatten_order = layer_rows(probes, cap.values, reference, images)
    assert cap.probs is not None and cap.plain_probs is not None
    ref_out = reference[output_layer or layers[-1].name].reshape(len(images), -1)
    plain = cap.plain_probs.reshape(len(images), -1)
    instrumented = cap.probs.reshape(len(images), -1)
    result: dict[str, Any] = {
        "artifact": entry["name"],
        "format": entry["format"],
        "precision": entry["precision"],
        "runtime": entry["runtime"],
        "path": entry["path"],
        "task": "classification" if classifies(ref_out, labels) else "regression",
        "accuracy": None,
        "reference_accuracy": None,
        "top1_agreement": None,
        "disagreements": None,
        "output_error": output_error(ref_out, plain),
    }
    changes, gallery = _top1(result, entry["name"], images, labels, ref_out, plain, instrumented, out_dir)
    departure = first_departure(rows)
    consts = constants_by_layer(getattr(graph, "constants", []), [lay.name for lay in layers], model_names)
    result.update(
        {
            "instrumentation": {
                "how": "; ".join(cap.notes),
                "max_abs_diff_vs_plain_output": float(np.max(np.abs(instrumented - plain))) if plain.size else 0.0,
                "top1_changes_vs_plain": changes,
            },
            "flatten_order": flatten_order,
            "layers": rows,
            "first_departure": departure,
            "cause": explain_cause(rows, departure, params or {}, consts, sensitivity),
            "sensitivity": sensitivity,
            "added_error_ranking": ranked_by_added_error(rows),
            "gallery": gallery,
        }
    )
    return result


def _top1(
    result: dict[str, Any],
    name: str,
    images: np.ndarray,
    labels: np.ndarray | None,
    ref_out: np.ndarray,
    plain: np.ndarray,
    instrumented: np.ndarray,
    out_dir: Path,
) -> tuple[int, dict[str, Any]]:
    """A classifier's accuracy and top-1 agreement into `result`, and its gallery of disagreeing images.

    Returns the top-1 changes the instrumentation caused and the gallery's summary (a regression model, or
    one without labels, gets none: its stale gallery file is removed)."""
    from toolkit.diagnosis.gallery import gallery_skip_reason, write_gallery

    dest = out_dir / gallery_name(name)
    if labels is None or not classifies(ref_out, labels):
        dest.unlink(missing_ok=True)
        why = "no labels" if labels is None else "one output value per example"
        return 0, {"count": 0, "shown": 0, "file": None, "indices": [], "skipped": f"regression ({why})"}
    changes = int((instrumented.argmax(1) != plain.argmax(1)).sum())
    skip = gallery_skip_reason(images)
    if skip is None:
        gallery = write_gallery(dest, images, labels, ref_out, plain, name)
    else:
        dest.unlink(missing_ok=True)
        idx = np.flatnonzero(plain.argmax(1) != ref_out.argmax(1))
        gallery = {"count": len(idx), "shown": 0, "file": None, "indices": [int(i) for i in idx[:200]]}
        gallery["skipped"] = skip
    result.update(
        {
            "accuracy": float((plain.argmax(1) == labels).mean()),
            "reference_accuracy": float((ref_out.argmax(1) == labels).mean()),
            "top1_agreement": float((plain.argmax(1) == ref_out.argmax(1)).mean()),
            "disagreements": gallery["count"],
        }
    )
    return changes, gallery


def output_layer_name(model: Any) -> str | None:
    """The Keras layer that produces the model's (single) output (not always the last in `model.layers`)."""
    history = getattr(model.outputs[0], "_keras_history", None) if getattr(model, "outputs", None) else None
    return str(history[0].name) if history else None


def diagnose_several(
    entry: dict[str, Any],
    path: Path,
    layers: list[Any],
    reference: dict[str, np.ndarray],
    feeds: dict[str, tuple[str, np.ndarray]],
    outputs: list[ModelOutput],
    model_names: tuple[str, ...] = (),
    params: dict[str, dict[str, Any]] | None = None,
    mapper: Callable[[Any], list[Probe]] | None = None,
) -> dict[str, Any]:
    """`diagnose_artifact` for a model with several inputs or outputs (`mapper`: a run made from a file).

    `feeds`: each input's row (`layers.input_row`) → (its name, its float32 batch). The per-layer rows are
    measured once; each output gets its own map, departure, cause and error by kind (`outputs`). The
    artifact's departure, cause and ranking are those of the output hurt most; it has no gallery.
    """
    from toolkit.diagnosis.cause import constants_by_layer, explain_cause
    from toolkit.diagnosis.layers import map_layers
    from toolkit.diagnosis.metrics import layer_rows
    from toolkit.diagnosis.outputs import diagnose_outputs

    graph = _graph(path, half=mapper is not None)
    by_name = {name: batch for name, batch in feeds.values()}
    missing = [name for name in by_name if name not in graph.input_keys]
    missing += [o.name for o in outputs if o.name not in graph.output_keys]
    if missing:
        raise ToolkitError(
            f"{path.name} has no tensor named {', '.join(missing)}; its inputs are {', '.join(graph.input_keys)} and "
            f"its outputs {', '.join(graph.output_keys)}: re-export it with `edgekit export`."
        )
    shapes = {row: (graph.input_keys[name], tuple(int(d) for d in x.shape[1:])) for row, (name, x) in feeds.items()}
    probes = mapper(graph) if mapper is not None else map_layers(layers, (), graph.tensors, model_names, inputs=shapes)
    cap = graph.capture([p.tensor.read for p in probes if p.tensor is not None], by_name)
    with_inputs = {**reference, **{row: x for row, (_, x) in feeds.items()}}
    first = next(iter(by_name.values()))
    rows, flatten_order = layer_rows(probes, cap.values, with_inputs, first)
    consts = constants_by_layer(getattr(graph, "constants", []), [lay.name for lay in layers], model_names)

    def explain(path_rows: list[dict[str, Any]], departure: dict[str, Any] | None) -> dict[str, Any] | None:
        return explain_cause(path_rows, departure, params or {}, consts)

    sections = diagnose_outputs(outputs, layers, rows, reference, cap.plain_outputs, explain)
    hurt = next((s for s in sections if s["hurt"]), sections[0])
    diffs = [np.abs(cap.outputs[o.name] - cap.plain_outputs[o.name]) for o in outputs]
    changes = sum(
        int((cap.outputs[o.name].argmax(1) != cap.plain_outputs[o.name].argmax(1)).sum())
        for o in outputs
        if o.kind in ("probabilities", "logits") and cap.plain_outputs[o.name].ndim == 2
    )
    error = {k: hurt["error"][k] for k in ("max_abs_err", "mean_abs_err", "max_rel_err", "relative_to")}
    return {
        "artifact": entry["name"],
        "format": entry["format"],
        "precision": entry["precision"],
        "runtime": entry["runtime"],
        "path": entry["path"],
        "task": "several outputs",
        "accuracy": None,
        "reference_accuracy": None,
        "top1_agreement": None,
        "disagreements": None,
        "output_error": {**error, "relative_to": f"output {hurt['output']}: {error['relative_to']}"},
        "instrumentation": {
            "how": "; ".join(cap.notes),
            "max_abs_diff_vs_plain_output": max((float(d.max()) for d in diffs if d.size), default=0.0),
            "top1_changes_vs_plain": changes,
        },
        "flatten_order": flatten_order,
        "layers": rows,
        "first_departure": hurt["first_departure"],
        "cause": hurt["cause"],
        "sensitivity": None,
        "added_error_ranking": hurt["added_error_ranking"],
        "gallery": {
            "count": 0,
            "shown": 0,
            "file": None,
            "indices": [],
            "skipped": "several outputs (see each output)",
        },
        "outputs": sections,
    }
