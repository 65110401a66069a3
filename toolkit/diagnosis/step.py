"""`edgekit diagnose`: where an export departs from the Keras reference, which images it gets wrong, and
why a quantized artifact is slower than its fp32 sibling.

Writes `diagnose/diagnose.json` (`DiagnoseDocument`), `diagnose/diagnose.md` and
`diagnose/gallery_<artifact>.png` in the run directory. Layer mapping is in `layers`, the metrics in `metrics`,
instrumented runs in `capture`, one export in `artifact`, the cause in `cause`, the gallery in `gallery`, the
slowdown explainer in `speed` (evidence in `evidence`) and the Markdown in `render` (all in `toolkit.diagnosis`).
The package works on the manifest entries' JSON form (`dump_document`); what it returns is typed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtimes.files import write_text_atomic
from runtimes.registry import make_runner
from toolkit.diagnosis.artifact import diagnose_artifact, output_layer_name
from toolkit.errors import RunDirError, ToolkitError
from toolkit.progress import ProgressCallback, as_progress
from toolkit.run import layout as A

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec
    from toolkit.diagnosis.outputs import ModelOutput
    from toolkit.run.documents import DiagnoseDocument, ManifestDocument

DIAGNOSE_DIR = A.DIAGNOSE_DIR
DIAGNOSE_MD = "diagnose.md"
DEFAULT_LIMIT = 500


def default_artifacts(manifest: ManifestDocument) -> list[str]:
    """The quantized artifacts if the run has any, else every non-Keras artifact."""
    from toolkit.diagnosis.speed import QUANTIZED

    exports = [a for a in manifest.artifacts if a.format != "keras"]
    quantized = [a.name for a in exports if a.precision in QUANTIZED]
    return quantized or [a.name for a in exports]


def diagnose_arrays(
    model: Any,
    paths: list[tuple[dict[str, Any], Path]],
    images: np.ndarray,
    labels: np.ndarray | None,
    out_dir: Path,
    *,
    siblings: dict[str, tuple[dict[str, Any], Path]] | None = None,
    bench: dict[str, Any] | None = None,
    sensitivity: dict[str, list[dict[str, Any]]] | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Diagnose exports of `model` on inputs already in the model's input form; galleries go to `out_dir`.

    Args:
        model: the Keras reference model (any single-input, single-output Sequential or functional model).
        paths: (manifest entry, file) per artifact to diagnose; an entry needs name, format, precision,
            runtime and path.
        images: float32 model inputs `[N, ...]` (images NHWC or vectors `[N, F]`).
        labels: integer class labels `[N]`, or None (regression: output error instead of accuracy).
        out_dir: where the galleries are written (created if missing).
        siblings: fp32 artifacts by format, for the slowdown explainer (None: no explainer).
        bench: the run's bench.json, if any (the explainer reuses its timings).
        sensitivity: per artifact name, the sensitivity ranking (rows with `layer`, `only_float`,
            `only_quantized`: accuracy with only that layer in float / only that layer quantized); None: none.
        progress: progress callback.

    Returns:
        The report's body: images, thresholds, reference layers, per-artifact results and speed records.
    """
    from toolkit.diagnosis.channels import layer_parameters
    from toolkit.diagnosis.layers import keras_layers, keras_outputs
    from toolkit.diagnosis.speed import explain

    out_dir.mkdir(parents=True, exist_ok=True)
    p = as_progress(progress)
    task = p.add_task("diagnose: Keras reference", total=len(paths) + 2)
    layers = keras_layers(model)
    reference = keras_outputs(model, images)
    params = layer_parameters(model)
    p.advance(task)
    results = []
    for entry, path in paths:
        p.update(task, description=f"diagnose: {entry['name']} layers")
        results.append(
            diagnose_artifact(
                entry,
                path,
                layers,
                reference,
                images,
                labels,
                out_dir,
                (str(model.name),),
                output_layer_name(model),
                params,
                (sensitivity or {}).get(entry["name"]),
            )
        )
        p.advance(task)
    p.update(task, description="diagnose: speed")
    speed = explain(paths, siblings, bench, images[:1]) if siblings is not None else []
    p.advance(task)
    p.update(task, description="diagnose: done")
    return _body(len(images), layers, results, speed)


def diagnose_named(
    model: Any,
    paths: list[tuple[dict[str, Any], Path]],
    feeds: dict[str, np.ndarray],
    outputs: list[ModelOutput],
    *,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """`diagnose_arrays` for a model with several inputs or outputs: `feeds` holds one float32 batch per input
    name; each artifact gets a map per output (`outputs`). No slowdown explainer (it times one input)."""
    from toolkit.diagnosis.artifact import diagnose_several
    from toolkit.diagnosis.channels import layer_parameters
    from toolkit.diagnosis.layers import input_rows, keras_layers, keras_outputs

    p = as_progress(progress)
    task = p.add_task("diagnose: Keras reference", total=len(paths) + 1)
    layers = keras_layers(model)
    reference = keras_outputs(model, feeds)
    rows = {str(t.name): row for t, row in zip(model.inputs, input_rows(model).values(), strict=True)}
    by_row = {rows[name]: (name, x) for name, x in feeds.items()}
    params = layer_parameters(model)
    p.advance(task)
    results = []
    for entry, path in paths:
        p.update(task, description=f"diagnose: {entry['name']} layers")
        results.append(diagnose_several(entry, path, layers, reference, by_row, outputs, (str(model.name),), params))
        p.advance(task)
    p.update(task, description="diagnose: done")
    return _body(len(next(iter(feeds.values()))), layers, results, [])


def diagnose_file_arrays(
    reference: Path,
    paths: list[tuple[dict[str, Any], Path]],
    images: np.ndarray,
    labels: np.ndarray | None,
    out_dir: Path,
    *,
    siblings: dict[str, tuple[dict[str, Any], Path]] | None = None,
    bench: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """`diagnose_arrays` for a run made from an ONNX or TFLite file: the rows are the file's weighted ops, named
    by their tensors (`file_source`), and each export's tensors are found by those names."""
    from toolkit.diagnosis.file_source import file_reference, probes_by_name
    from toolkit.diagnosis.layers import is_input_row
    from toolkit.diagnosis.speed import explain

    out_dir.mkdir(parents=True, exist_ok=True)
    p = as_progress(progress)
    task = p.add_task("diagnose: file reference", total=len(paths) + 2)
    ref = file_reference(reference, images)
    p.advance(task)
    results = []
    for entry, path in paths:
        p.update(task, description=f"diagnose: {entry['name']} nodes")
        result = diagnose_artifact(
            entry,
            path,
            ref.layers,
            ref.values,
            images,
            labels,
            out_dir,
            (),
            ref.output,
            None,
            None,
            partial(probes_by_name, ref),
        )
        cause = result["cause"]
        if reference.suffix == ".tflite" and cause and cause.get("advice"):
            # int8-mixed keeps Keras layers or ONNX nodes in float; a TFLite file has neither to keep
            cause["advice"] = (
                f"keep {cause['layer']} in float: int8-mixed (`--max-accuracy-drop`) is not offered for a TFLite "
                "source yet, so quantize the original model with that op left in float"
            )
        if all(r["tensor"] is None for r in result["layers"] if not is_input_row(r["layer"])):
            result["instrumentation"]["how"] += (
                f"; {entry['name']} keeps none of the reference's tensor names, so its nodes cannot be matched to "
                "the reference's: only its output is compared"
            )
        results.append(result)
        p.advance(task)
    p.update(task, description="diagnose: speed")
    speed = explain(paths, siblings, bench, images[:1]) if siblings is not None else []
    p.advance(task)
    p.update(task, description="diagnose: done")
    name = A.TFLITE_REFERENCE_NAME if reference.suffix == ".tflite" else A.ONNX_REFERENCE_NAME
    return _body(len(images), ref.layers, results, speed, name)


def diagnose_file_named(
    reference: Path,
    paths: list[tuple[dict[str, Any], Path]],
    feeds: dict[str, np.ndarray],
    spec: ModelSpec,
    targets: dict[str, np.ndarray],
    *,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """`diagnose_named` for a run made from an ONNX file: the rows are the file's weighted nodes (`file_source`),
    every input is fed by name, and each output gets the map of the rows it is computed from."""
    from toolkit.diagnosis.artifact import diagnose_several
    from toolkit.diagnosis.file_source import file_outputs, onnx_reference, probes_by_name

    p = as_progress(progress)
    task = p.add_task("diagnose: file reference", total=len(paths) + 1)
    ref = onnx_reference(reference, feeds)
    outputs = file_outputs(ref, spec, targets)
    by_row = {ref.inputs[name]: (name, x) for name, x in feeds.items()}
    p.advance(task)
    results = []
    for entry, path in paths:
        p.update(task, description=f"diagnose: {entry['name']} nodes")
        mapper = partial(probes_by_name, ref)
        results.append(diagnose_several(entry, path, ref.layers, ref.values, by_row, outputs, mapper=mapper))
        p.advance(task)
    p.update(task, description="diagnose: done")
    return _body(len(next(iter(feeds.values()))), ref.layers, results, [], A.ONNX_REFERENCE_NAME)


def model_outputs(model: Any, spec: ModelSpec, targets: dict[str, np.ndarray]) -> list[ModelOutput]:
    """Each output of `spec` with the Keras layer that makes it and, for a classifying kind, its labels."""
    from toolkit.diagnosis.outputs import ModelOutput

    names = list(getattr(model, "output_names", None) or [])
    layers = {}
    for i, t in enumerate(model.outputs):
        history = getattr(t, "_keras_history", None)
        layer = str(history[0].name) if history else None
        if layer is not None:
            layers[names[i] if i < len(names) else layer] = layer
    out = []
    for t in spec.outputs:
        kind = t.kind or "probabilities"
        labels = targets.get(t.name) if kind in ("probabilities", "logits", "class_indices") else None
        labels = None if labels is None else labels.reshape(len(labels))
        out.append(ModelOutput(t.name, kind, layers.get(t.name, t.name), labels))
    return out


def _body(
    images: int,
    layers: list[Any],
    results: list[dict[str, Any]],
    speed: list[dict[str, Any]],
    reference: str = A.REFERENCE_NAME,
) -> dict[str, Any]:
    """diagnose.json's body: the thresholds and metrics used, the reference's layers, each artifact, speed."""
    from toolkit.diagnosis.layers import DEPART_COSINE, DEPART_SNR_DB, SNR_CAP_DB

    return {
        "images": images,
        "thresholds": {
            "departs_below_snr_db": DEPART_SNR_DB,
            "departs_below_cosine": DEPART_COSINE,
            "snr_cap_db": SNR_CAP_DB,
            "metrics": (
                "over all images and elements of a layer's output: max and mean |export − keras|, cosine "
                "similarity, SNR = 10·log10(Σ keras² / Σ (export − keras)²) dB (exact match reported as the cap); "
                "Δ SNR = the SNR of the layer's inputs (the worst of them) − this layer's (the error this layer adds)"
            ),
        },
        "reference": {
            "artifact": reference,
            "layers": [
                {"name": lay.name, "type": lay.type, "shape": list(lay.shape), "inputs": list(lay.inbound)}
                for lay in layers
            ],
        },
        "artifacts": results,
        "speed": speed,
    }


@dataclass(frozen=True)
class _Plan:
    """What a run's diagnose works on: the Keras reference, the chosen exports and their fp32 siblings."""

    reference: Path
    paths: list[tuple[dict[str, Any], Path]]
    siblings: dict[str, tuple[dict[str, Any], Path]]


def _plan(run_dir: Path, artifact_names: list[str] | None) -> _Plan:
    """Check the run and the chosen artifacts (one-line errors) before any long work."""
    from toolkit.run.documents import dump_document

    run = A.Run(run_dir)
    manifest = run.manifest()
    reference = run.reference(manifest)
    names = artifact_names or [n for n in default_artifacts(manifest) if n != reference.name]
    if reference.name in names:
        raise ToolkitError(f"{reference.name} is the reference every artifact is compared with; choose exports.")
    entries = A.select_artifacts(manifest, names)
    if not entries:
        raise RunDirError(f"{run_dir / A.MANIFEST_JSON} lists no exported artifacts; run `edgekit export` first.")
    ref_path = run.verified_path(reference)
    for e in entries:
        with make_runner(run.verified_path(e), spec=A.entry_spec(e)):
            pass  # a file that no longer matches its manifest ModelSpec: one line, before the long work
    paths = [(dump_document(e), run.verified_path(e)) for e in entries]
    siblings = {
        e.format: (dump_document(e), run.verified_path(e))
        for e in manifest.artifacts
        if e.precision == "fp32" and e.format != "keras"
    }
    return _Plan(ref_path, paths, siblings)


def _run_planned(
    run_dir: Path,
    plan: _Plan,
    images: np.ndarray | dict[str, np.ndarray],
    labels: np.ndarray | None,
    data_info: dict[str, Any],
    progress: ProgressCallback | None,
    measure: Callable[[Any], dict[str, list[dict[str, Any]]]] | None = None,
    targets: dict[str, np.ndarray] | None = None,
) -> DiagnoseDocument:
    """Diagnose the planned artifacts on `images` (a dict of feeds by input name, with `targets` by output
    name, for a model with several inputs or outputs) and write diagnose.json and diagnose.md."""
    from runtimes.keras_runner import load_keras_model
    from toolkit.diagnosis import sensitivity as S
    from toolkit.diagnosis.render import render_markdown
    from toolkit.model.run_source import run_spec
    from toolkit.run.documents import BenchDocument, DiagnoseDocument, dump_document

    run = A.Run(run_dir)
    out_dir = run_dir / DIAGNOSE_DIR
    found = run.find(BenchDocument)
    bench = None if found is None else dump_document(found)  # the speed explainer reuses its timings
    if plan.reference.suffix == ".onnx" and isinstance(images, dict):
        body = diagnose_file_named(
            plan.reference, plan.paths, images, run_spec(run_dir), targets or {}, progress=progress
        )
        source = None
    elif plan.reference.suffix in (".onnx", ".tflite"):
        if isinstance(images, dict):
            raise ToolkitError(
                "diagnose of a run made from a TFLite file takes single-input, single-output models for now; this "
                f"model has {run_spec(run_dir).tensors_text()}."
            )
        body = diagnose_file_arrays(
            plan.reference, plan.paths, images, labels, out_dir, siblings=plan.siblings, bench=bench, progress=progress
        )
        source = None
    elif isinstance(images, dict):
        model = load_keras_model(plan.reference)
        outputs = model_outputs(model, run_spec(run_dir), targets or {})
        body = diagnose_named(model, plan.paths, images, outputs, progress=progress)
        source = None
    else:
        model = load_keras_model(plan.reference)
        ranking, source = S.for_run(run_dir, [e for e, _ in plan.paths], model, measure, len(images))
        body = diagnose_arrays(
            model,
            plan.paths,
            images,
            labels,
            out_dir,
            siblings=plan.siblings,
            bench=bench,
            sensitivity=ranking,
            progress=progress,
        )
    report = {
        "schema_version": A.SCHEMA_VERSION,
        "created_utc": A.utc_now(),
        "cpu": A.this_cpu(),
        "run": run_dir.resolve().name,
        "images": body["images"],
        "data": data_info,
        **{k: v for k, v in body.items() if k != "images"},
        "sensitivity_source": source,
        "bench_json": A.BENCH_JSON if bench else None,
        "libraries": A.library_versions(),
    }
    doc = run.save(DiagnoseDocument.model_validate(report))
    write_text_atomic(out_dir / DIAGNOSE_MD, render_markdown(dump_document(doc)))
    return doc


def diagnose_step(
    run_dir: Path,
    *,
    artifact_names: list[str] | None = None,
    limit: int = DEFAULT_LIMIT,
    data: Any = None,
    sensitivity: bool = False,
    calibration_size: int = 500,
    seed: int = 7,
    progress: ProgressCallback | None = None,
) -> DiagnoseDocument:
    """Diagnose the chosen artifacts of a run; write diagnose/diagnose.{json,md} and the galleries; return
    diagnose.json.

    `data`: the run's own (dataset.json, else shipped MNIST) when None; else a source or a loaded dataset.
    `sensitivity`: also measure the per-layer sensitivity ranking now (`exporters.sensitivity`, with
    `calibration_size` calibration examples drawn with `seed`, as the export does); without it the ranking
    shown is the one the run's mixed.json holds, if any.
    """
    from toolkit.model.run_source import run_dataset, run_spec

    if limit < 1:
        raise ToolkitError(f"--limit must be 1 or more, got {limit}.")
    plan = _plan(run_dir, artifact_names)
    if sensitivity and plan.reference.suffix in (".onnx", ".tflite"):
        raise ToolkitError(
            "diagnose --sensitivity quantizes a Keras model one layer at a time; this run was made from a "
            f"{plan.reference.suffix[1:].upper()} file: run diagnose without --sensitivity."
        )
    spec = run_spec(run_dir)
    dataset = run_dataset(run_dir, data, spec=spec)
    if not spec.is_single:
        return _diagnose_several(run_dir, plan, dataset, spec, limit, sensitivity, progress)
    images, targets = dataset.test_split(spec, limit)
    n = len(images)
    labels = None if spec.output_kind == "values" else targets
    info = {
        "source": dataset.source,
        "verified": dataset.verified,
        "subset": f"the first {n} of the test set",
        "name": dataset.name,
    }
    measure = None
    if sensitivity:
        from toolkit.diagnosis import sensitivity as S

        entries = [e for e, _ in plan.paths]
        measure = S.measurer(entries, dataset.calibration(spec, n=calibration_size, seed=seed), images, labels)
    return _run_planned(run_dir, plan, images, labels, info, progress, measure)


def _diagnose_several(
    run_dir: Path,
    plan: _Plan,
    dataset: Any,
    spec: ModelSpec,
    limit: int,
    sensitivity: bool,
    progress: ProgressCallback | None,
) -> DiagnoseDocument:
    """diagnose_step for a model with several inputs or outputs: the run's named data, one map per output."""
    from toolkit.data.named import NamedDataset, names_text
    from toolkit.errors import DataError

    if sensitivity:
        raise ToolkitError(
            "diagnose --sensitivity quantizes one layer at a time through a calibration of one input; this model "
            f"has {spec.tensors_text()}: run diagnose without --sensitivity."
        )
    if not isinstance(dataset, NamedDataset):
        raise DataError(
            f"{dataset.name} holds one input and one target, but the model has inputs {names_text(spec.input_names)} "
            f"and outputs {names_text(spec.output_names)}; give an .npz with one array per name."
        )
    split = dataset.test_named(spec, limit)
    info = {
        "source": dataset.source,
        "verified": dataset.verified,
        "subset": f"the first {len(split)} of the test set",
        "name": dataset.name,
    }
    return _run_planned(run_dir, plan, split.inputs, None, info, progress, targets=split.targets)
