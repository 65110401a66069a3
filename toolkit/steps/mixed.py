"""`export --max-accuracy-drop/--min-agreement`: the fewest Keras layers kept in float that meet an accuracy budget.

Per format (TFLite, ONNX Runtime, and OpenVINO when the run has `openvino-int8`), separately: measure full int8;
if it misses the budget, rank the layers (`exporters.sensitivity.rank_layers`), then keep the 1, 2, ... most
sensitive in float until the budget is met. Writes `tflite-int8-mixed`/`onnx-int8-mixed`/`openvino-int8-mixed`
(manifest.json, with `float_layers`) and mixed.json (the ranking and the curve k → accuracy, agreement, size,
batch-1 p50). When full int8 meets the budget in every format nothing is written.

OpenVINO's units are the IR's weighted operations (convolutions, matrix products, by node name), kept in float
through NNCF's ignored scope. NNCF's own accuracy control (`quantize_with_accuracy_control`) was tried first: on
the small test run (agreement budget 0.996, full int8 0.992) it reverted all three weighted operations where this
ranking needs one (the last dense layer, as for TFLite and ONNX), and on the reference (budget 0.9995) all three
too, leaving a file the size of fp32 whose batch-1 p50 was 0.45 ms against int8's 0.036 ms (its activations
still fake-quantized; 50 calls each on a busy 2-vCPU Xeon).

A run made from an ONNX file (`--model model.onnx`) has no Keras layers and no TFLite: the search is ONNX
only, its reference is the file on ONNX Runtime fp32 (onnx-fp32), and its units are the file's weighted nodes
(`exporters.mixed.OnnxFileMixed`), which `onnx-int8-mixed` keeps in float by ONNX Runtime's `nodes_to_exclude`.

The budget is judged on the first `images` rows of the dataset's test split (`Dataset.test_split`), which
calibration never sees (it draws from the training split).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.errors import ToolkitError
from toolkit.progress import Progress, ProgressCallback, as_progress
from toolkit.run import layout as A

if TYPE_CHECKING:
    from exporters.int8_recipe import Int8Target
    from exporters.sensitivity import Score, Variants
    from runtimes.spec import ModelSpec
    from toolkit.run.documents import ArtifactEntry, ManifestDocument, MixedDocument, MixedFormat, MixedPoint

MIXED_JSON = "mixed.json"
TIMING = "batch 1, 1 thread, runner.infer on one test image: 5 warm-up calls, median of 50 (exporters.sensitivity)"
# Curve points beyond the chosen one: enough to show what more float layers would buy, bounded for big models.
EXTRA_POINTS = 2
_NEEDS_CLASSIFIER = (
    "--max-accuracy-drop/--min-agreement need a classifier (top-1 accuracy); this model outputs plain values: "
    "leave the budget out."
)


def check_budget(max_drop: float | None, min_agreement: float | None, spec: ModelSpec | None = None) -> None:
    """A one-line ToolkitError for a budget out of range, or (given the model's `spec`) for a model the search
    cannot judge: checked before anything is written."""
    budget = max_drop is not None or min_agreement is not None
    if spec is not None and budget and not spec.is_single:  # the search ranks one output's accuracy
        raise ToolkitError(
            f"int8-mixed (--max-accuracy-drop, --min-agreement) runs single-input, single-output models for now; "
            f"this model has {spec.tensors_text()}: leave the budget out (full int8 is checked per output)."
        )
    if spec is not None and spec.output_kind == "values" and (max_drop is not None or min_agreement is not None):
        raise ToolkitError(_NEEDS_CLASSIFIER)
    if max_drop is not None and max_drop < 0:
        raise ToolkitError(f"--max-accuracy-drop is in accuracy points and must be 0 or more, got {max_drop}.")
    if min_agreement is not None and not 0 < min_agreement <= 1:
        raise ToolkitError(f"--min-agreement is a fraction in (0, 1], got {min_agreement}.")


@dataclass(frozen=True)
class _Search:
    """What the search of one run works with: the model, its data, the reference's outputs and the budget."""

    run_dir: Path
    model: Any  # the Keras model; None for an ONNX source
    source: Path | None  # an ONNX source's model.onnx (the reference, and what its variants are made from)
    spec: ModelSpec
    data_name: str
    calibration: np.ndarray
    target: Int8Target
    x: np.ndarray
    labels: np.ndarray
    ref: np.ndarray  # the reference's outputs on x (Keras, or an ONNX source on ONNX Runtime fp32)
    keras_acc: float  # the reference's accuracy on x
    max_drop: float | None
    min_agreement: float | None
    openvino: Path | None = None  # with openvino-int8 in the run: the fp32 ONNX file it was converted from

    def meets(self, accuracy: float | None, agreement: float) -> bool:
        drop = None if accuracy is None else (self.keras_acc - accuracy) * 100
        ok_drop = self.max_drop is None or (drop is not None and drop <= self.max_drop + 1e-9)
        return ok_drop and (self.min_agreement is None or agreement >= self.min_agreement)

    def figures(self, s: Score) -> str:
        if s.accuracy is None:
            return f"agreement {s.agreement:.2%}"
        return f"accuracy {s.accuracy:.2%} vs {self.reference} {self.keras_acc:.2%}, agreement {s.agreement:.2%}"

    @property
    def reference(self) -> str:
        return "Keras" if self.source is None else A.ONNX_REFERENCE_NAME

    def unit(self, fmt: str) -> str:
        """What `fmt`'s search keeps in float: Keras layers, an ONNX source's weighted nodes, or OpenVINO's
        weighted operations."""
        return "operation" if fmt == "openvino" else ("layer" if self.source is None else "node")

    @property
    def formats(self) -> tuple[str, ...]:
        keras_or_onnx = ("tflite", "onnx") if self.source is None else ("onnx",)
        return keras_or_onnx + (("openvino",) if self.openvino is not None else ())


def _prepare(
    run_dir: Path,
    data: Any,
    *,
    calibration_size: int,
    seed: int,
    images: int,
    max_drop: float | None,
    min_agreement: float | None,
) -> _Search:
    """Load the model and its data, and run the reference on the evaluation images (one-line errors before any
    work): Keras, or for an ONNX source its model.onnx on ONNX Runtime fp32."""
    from exporters.int8_recipe import parse_target
    from exporters.sensitivity import keras_outputs, run_file
    from runtimes.keras_runner import load_keras_model
    from toolkit.model.run_source import (
        is_onnx_source,
        is_tflite_source,
        is_user_run,
        refuse_several,
        run_dataset,
        run_spec,
    )
    from toolkit.run.documents import ManifestDocument
    from toolkit.steps.export import model_spec_of

    if is_tflite_source(run_dir):
        raise ToolkitError(
            f"int8-mixed (--max-accuracy-drop, --min-agreement) keeps chosen Keras or ONNX layers in float; {run_dir} "
            "was made from a TFLite file: not offered for it yet."
        )
    refuse_several(run_dir, "int8-mixed (--max-accuracy-drop, --min-agreement)")
    source = run_dir / A.ONNX_MODEL_FILE if is_onnx_source(run_dir) else None
    model = None if source else load_keras_model(A.require_file(run_dir, A.MODEL_FILE, "run `edgekit train` first"))
    spec = run_spec(run_dir) if is_user_run(run_dir) else model_spec_of(model)
    if spec.output_kind == "values":
        raise ToolkitError(_NEEDS_CLASSIFIER)
    dataset = run_dataset(run_dir, data, spec=spec)
    # The mixed files quantize as the run's int8 exports did (the CPU class they target).
    manifest = A.Run(run_dir).find(ManifestDocument)
    target = parse_target(A.int8_target(manifest) if manifest is not None else None)
    x, y = dataset.test_split(spec, images)
    labels = np.asarray(y).astype(np.int64).reshape(-1)
    ref = keras_outputs(model, x) if source is None else run_file(source, x)
    return _Search(
        openvino=_openvino_int8(run_dir, manifest),
        run_dir=run_dir,
        model=model,
        source=source,
        spec=spec,
        data_name=dataset.name,
        calibration=dataset.calibration(spec, n=calibration_size, seed=seed),
        target=target,
        x=x,
        labels=labels,
        ref=ref,
        keras_acc=float((ref.argmax(axis=1) == labels).mean()),
        max_drop=max_drop,
        min_agreement=min_agreement,
    )


def _openvino_int8(run_dir: Path, manifest: ManifestDocument | None) -> Path | None:
    """The fp32 ONNX file the run's openvino-int8 IR came from, when the run has both (`-r openvino`)."""
    if manifest is None:
        return None
    paths = {a.name: run_dir / a.path for a in manifest.artifacts}
    source = paths.get("onnx-fp32", run_dir / A.ONNX_MODEL_FILE)
    ir = paths.get("openvino-int8")
    return source if ir is not None and ir.is_file() and source.is_file() else None


def _curve(
    s: _Search, v: Variants, order: list[str], say: Callable[[str], None]
) -> tuple[list[MixedPoint], int | None]:
    """Keep the k most sensitive layers in float, k = 0, 1, ...: each point, and the first k in budget (None: none)."""
    from exporters.sensitivity import p50_batch1_ms, run_file, score
    from toolkit.run.documents import MixedPoint

    curve: list[MixedPoint] = []
    chosen: int | None = None
    for k in range(len(order) + 1):
        if chosen is not None and k > chosen + EXTRA_POINTS:
            break
        say(f"{v.format} with {k} float {s.unit(v.format)}(s)")
        path = v.write(v.graph.float_ops(order[:k]))
        measured = score(run_file(path, s.x), s.ref, s.labels)
        ok = s.meets(measured.accuracy, measured.agreement)
        drop = None if measured.accuracy is None else round((s.keras_acc - measured.accuracy) * 100, 4)
        curve.append(
            MixedPoint(
                k=k,
                float_layers=order[:k],
                accuracy=measured.accuracy,
                agreement=measured.agreement,
                drop_pt=drop,
                size_bytes=path.stat().st_size
                + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0),
                p50_ms=round(p50_batch1_ms(path, s.x[0]), 4),
                meets_budget=ok,
            )
        )
        if ok and chosen is None:
            chosen = k
    return curve, chosen


def _variants(s: _Search, fmt: str, work: Path) -> Variants:
    """The int8 variants of the run's reference in `fmt`, quantized as the run's int8 exports were."""
    from exporters.mixed import OnnxFileMixed
    from exporters.sensitivity import Variants

    if fmt == "openvino":
        from exporters.openvino_export import OpenVinoMixed

        assert s.openvino is not None
        return Variants.of_openvino(OpenVinoMixed(s.openvino, s.calibration), work)
    if s.source is None:
        return Variants(s.model, fmt, s.calibration, work, s.target)
    try:
        quantizer = OnnxFileMixed(s.source, s.spec.input.name, s.calibration, work, s.target)
    except Exception as exc:  # pre-processing of the user's graph: one line, as the exporters report failures
        from exporters.errors import ExportError
        from runtimes.errors import one_line

        raise ExportError(f"onnx int8 variants failed: {one_line(exc)}") from exc
    return Variants.of_onnx(quantizer, work)


def _write_mixed(s: _Search, v: Variants, float_layers: list[str]) -> ArtifactEntry:
    """Export `<format>-int8-mixed` with `float_layers` in float, quantized as the variants were."""
    from exporters.mixed import OnnxFileMixed, export_onnx_file_mixed, export_onnx_mixed, export_tflite_mixed
    from toolkit.steps.export import artifact_entry

    if v.openvino is not None:
        from exporters.openvino_export import export_openvino_mixed

        made = export_openvino_mixed(
            v.openvino.source,
            s.run_dir / A.EXPORTS_DIR,
            calibration_data=s.calibration,
            float_operations=float_layers,
            quantizer=v.openvino,
        )
        return artifact_entry(s.run_dir, made, s.spec)
    if s.source is not None:
        assert isinstance(v.onnx, OnnxFileMixed)
        made = export_onnx_file_mixed(
            s.source,
            s.run_dir / A.EXPORTS_DIR,
            input_name=s.spec.input.name,
            calibration_data=s.calibration,
            float_nodes=float_layers,
            quantizer=v.onnx,
        )
        return artifact_entry(s.run_dir, made, s.spec)
    exporter = export_tflite_mixed if v.format == "tflite" else export_onnx_mixed
    quantizer = v.tflite if v.format == "tflite" else v.onnx
    result = exporter(
        s.model,
        s.run_dir / A.EXPORTS_DIR,
        calibration_data=s.calibration,
        float_layers=float_layers,
        quantizer=quantizer,  # type: ignore[arg-type]
    )
    return artifact_entry(s.run_dir, result, s.spec)


def _search_format(
    s: _Search, fmt: str, work: Path, say: Callable[[str], None], status: Callable[[str], None]
) -> tuple[MixedFormat | None, ArtifactEntry | None]:
    """One format's search: (None, None) when full int8 meets the budget; else its record and the artifact
    written (None when no mix meets it)."""
    from exporters.sensitivity import rank_variants
    from toolkit.run.documents import MixedFormat, MixedLayer

    status(f"{fmt} full int8")
    v = _variants(s, fmt, work)
    full = v.measure([], s.x, s.ref, s.labels)
    if s.meets(full.accuracy, full.agreement):
        say(f"{fmt}: full int8 meets the budget ({s.figures(full)}); no {fmt}-int8-mixed written.")
        return None, None
    # The same variants rank and then build the curve: one conversion and calibration for the whole search.
    ranking = rank_variants(v, s.x, s.ref, s.labels, progress=lambda text: status(f"rank {text}"))
    order = ranking.order()
    curve, chosen = _curve(s, v, order, status)
    layers = [
        MixedLayer(
            layer=r.layer,
            float_accuracy=r.float_accuracy,
            float_agreement=r.float_agreement,
            only_accuracy=r.only_accuracy,
            only_agreement=r.only_agreement,
        )
        for r in ranking.layers
    ]
    if chosen is None:
        note = f"no mix meets the budget, even with all {len(order)} {s.unit(fmt)}s in float; nothing written."
        say(f"{fmt}: {note}")
        return MixedFormat(
            format=fmt, ranking=layers, curve=curve, met=False, artifact=None, float_layers=None, note=note
        ), None
    entry = _write_mixed(s, v, order[:chosen])
    point = curve[chosen]
    note = (
        f"full int8 {s.figures(full)}; {chosen} {s.unit(fmt)}(s) in float ({', '.join(order[:chosen])}): accuracy "
        f"{point.accuracy:.2%}, agreement {point.agreement:.2%}, {point.size_bytes:,} bytes."
    )
    say(f"{entry.name}: {note}")
    record = MixedFormat(
        format=fmt, ranking=layers, curve=curve, met=True, artifact=entry.name, float_layers=order[:chosen], note=note
    )
    return record, entry


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
) -> MixedDocument | None:
    """Search the int8/float mix for each format; write and return mixed.json, or None if full int8 meets it.

    Args:
        max_drop: allowed accuracy drop vs the reference (Keras, or an ONNX source's onnx-fp32), in points (e.g. 0.3).
        min_agreement: minimum top-1 agreement with the reference (e.g. 0.995).
        data: the run's data (as for export); calibration uses the same draw as the int8 exports.
        images: test-split rows the budget is judged on.
        message: receives one-line outcomes ("full int8 meets the budget: ...").
    """
    from toolkit.run.documents import MixedDocument, MixedFormat

    check_budget(max_drop, min_agreement)
    if max_drop is None and min_agreement is None:
        return None
    say = message or (lambda _text: None)
    s = _prepare(
        run_dir,
        data,
        calibration_size=calibration_size,
        seed=seed,
        images=images,
        max_drop=max_drop,
        min_agreement=min_agreement,
    )
    p = as_progress(progress)
    task = p.add_task("mixed precision", total=None)
    status = _status(p, task)
    found: dict[str, tuple[MixedFormat | None, ArtifactEntry | None]] = {}
    with tempfile.TemporaryDirectory(prefix=".mixed-", dir=run_dir) as tmp:
        for fmt in s.formats:
            (Path(tmp) / fmt).mkdir()
            found[fmt] = _search_format(s, fmt, Path(tmp) / fmt, say, status)
    p.update(task, description="mixed precision: done")
    if all(record is None for record, _ in found.values()):
        return None
    met = "full int8 meets the budget."
    formats = [
        record or MixedFormat(format=fmt, artifact=None, float_layers=[], ranking=[], curve=[], met=True, note=met)
        for fmt, (record, _) in found.items()
    ]
    new_entries = [entry for _, entry in found.values() if entry is not None]
    run = A.Run(run_dir)
    if new_entries:
        m = run.manifest()
        A.write_manifest(
            run_dir, new_entries, int8_target=m.int8_target, calibration=m.calibration, training=m.training
        )
    doc = MixedDocument(
        schema_version=A.SCHEMA_VERSION,
        max_drop_pt=max_drop,
        min_agreement=min_agreement,
        images=len(s.x),
        data=s.data_name,
        keras_accuracy=s.keras_acc,
        reference=s.reference,
        timing=TIMING,
        formats=formats,
    )
    return run.save(doc)


def _status(p: Progress, task: int) -> Callable[[str], None]:
    def status(text: str) -> None:
        p.update(task, description=f"mixed precision: {text}")

    return status
