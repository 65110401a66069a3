"""`edgekit predict`: which model file to use, and classifying images with it.

`model_source` turns MODEL (a `.tflite`/`.onnx` file, a run directory, or a bundle folder or
`.tar.gz`) into a model file whose sha256 has been checked, with the spec a run's manifest or a
bundle records for it (also for a file inside a run's `exports/` folder, matched by sha256).
`predict_images` prepares the images for that model (`model_input`: the MNIST photo preprocessing
for the reference model, else grey/RGB resized to its input), runs them and returns typed `Predictions`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from toolkit.bundles.archive import is_archive
from toolkit.bundles.errors import BundleError
from toolkit.inputs.photo import Prepared

if TYPE_CHECKING:
    from runtimes.base import Runner
    from runtimes.spec import ModelSpec
    from toolkit.inputs.model_input import InputPlan
    from toolkit.inputs.samples import SampleFeeds

# Artifacts `edgekit predict` uses from a run or bundle when --artifact is not given, in order.
PREDICT_PREFERENCE: Final = ("tflite-fp32", "onnx-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8")
Source = tuple[Path, str | None, str | None, "ModelSpec | None"]


@dataclass(frozen=True)
class OutputResult:
    """One output of one image, for a model with several outputs: the top classes of probabilities or logits
    (softmax), the values, the top boxes (xyxy, with the score of each when an output scores them) or a class."""

    name: str
    kind: str
    top_k: tuple[tuple[int, float], ...] = ()
    values: tuple[float, ...] = ()
    boxes: tuple[tuple[tuple[float, float, float, float], float | None], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind in ("probabilities", "logits"):
            doc["top_k"] = [{"class": c, "probability": p} for c, p in self.top_k]
        elif self.kind == "boxes":
            doc["boxes"] = [{"xyxy": list(box), "score": score} for box, score in self.boxes]
        else:
            doc["values"] = list(self.values)
        return doc

    def text(self) -> str:
        """How the table shows it, e.g. `digit: 7 (93.1 %)` or `boxes: (0.21, 0.14, 0.79, 0.9)`."""
        if self.kind in ("probabilities", "logits"):
            shown = ", ".join(f"{c} ({100 * p:.1f} %)" for c, p in self.top_k)
        elif self.kind == "boxes":
            shown = ", ".join(
                "(" + ", ".join(f"{v:.3g}" for v in box) + ")" + ("" if s is None else f" {100 * s:.1f} %")
                for box, s in self.boxes
            )
        else:
            shown = "  ".join(f"{v:.6g}" for v in self.values)
        return f"{self.name}: {shown}"


@dataclass(frozen=True)
class Prediction:
    """One image's result. `top_k`: (class, probability) pairs, most likely first; `values` instead for a
    regression model (then `top_k` and `probabilities` are empty). `reference`: the digit CNN."""

    image: Prepared
    top_k: tuple[tuple[int, float], ...]
    probabilities: tuple[float, ...]
    values: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None
    reference: bool = True
    outputs: tuple[OutputResult, ...] | None = None  # a model with several outputs: each of them

    @property
    def digit(self) -> int:
        """The most likely class (a digit for the reference model)."""
        return self.top_k[0][0]

    @property
    def confidence(self) -> float:
        return self.top_k[0][1]

    def label(self, index: int) -> str | None:
        """The class name of `index`, None when the model's spec names no classes."""
        names = self.class_names
        return names[index] if names is not None and 0 <= index < len(names) else None

    def shown(self, index: int) -> str:
        """How the table shows a class: its name, else its index."""
        name = self.label(index)
        return str(index) if name is None or self.reference else name

    def to_dict(self) -> dict[str, Any]:
        """The JSON of `edgekit predict --json` for this image."""
        if self.outputs is not None:
            return {**self.image.to_dict(), "outputs": [o.to_dict() for o in self.outputs]}
        if self.values is not None:
            return {**self.image.to_dict(), "values": list(self.values)}
        digit = {"digit": self.digit} if self.reference else {}
        top = [
            {**({"digit": c} if self.reference else {}), "class": c, "label": self.label(c), "probability": p}
            for c, p in self.top_k
        ]
        return {
            **self.image.to_dict(),
            **digit,
            "class": self.digit,
            "label": self.label(self.digit),
            "confidence": self.confidence,
            "top_k": top,
            "probabilities": list(self.probabilities),
        }


@dataclass(frozen=True)
class Predictions:
    """What `predict_images` found. `artifact` is set when MODEL was a run or bundle; `note` says which
    artifact was chosen when none was asked for; `notes` what was inferred about the model."""

    model: Path
    artifact: str | None
    backend: str
    preprocess: bool
    results: tuple[Prediction, ...]
    note: str | None = None
    plan: InputPlan | None = None
    output_kind: str = "probabilities"
    notes: tuple[str, ...] = ()
    samples: SampleFeeds | None = None  # a model with several inputs: what the .npz fed each of them

    @property
    def reference(self) -> bool:
        """The model is the reference digit CNN (results speak of digits)."""
        return self.samples is None and (self.plan is None or self.plan.reference)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document `edgekit predict --json` prints."""
        doc: dict[str, Any] = {
            "model": str(self.model),
            "artifact": self.artifact,
            "backend": self.backend,
            "preprocess": self.preprocess,
        }
        if self.plan is not None:
            plan = self.plan
            doc["preprocessing"] = {
                "mode": plan.mode,
                "input_size": [plan.height, plan.width, plan.channels],
                "value_range": list(plan.value_range),
                "value_range_from": plan.range_source,
                "description": plan.describe(),
            }
        if self.samples is not None:
            doc["inputs"] = [r.to_dict() for r in self.samples.ranges]
        doc["output_kind"] = self.output_kind
        if self.output_kind == "logits":
            doc["probabilities_from"] = "softmax of logits"
        doc["notes"] = list(self.notes)
        doc["results"] = [r.to_dict() for r in self.results]
        return doc


def predict_images(
    model: Path,
    images: Sequence[Path],
    *,
    artifact: str | None = None,
    top_k: int = 1,
    preprocess: bool = True,
    threads: int | None = None,
    save_inputs: Path | None = None,
    mnist_preprocess: bool = False,
    value_range: tuple[float, float] | None = None,
) -> Predictions:
    """Classify `images` with `model` (see `model_source`), prepared for its input (see `model_input`).

    Args:
        model: a model file, run directory or bundle.
        images: image files or .npy arrays (`images.read_pixels`); a batch array gives several results.
        artifact: the artifact of a run or bundle (default: the first of `PREDICT_PREFERENCE` present).
        top_k: how many of the most likely classes each result lists.
        preprocess: for the reference model, MNIST-style preprocessing (`photo.to_mnist`); False only
            converts and resizes. Other models are resized to their input unless `mnist_preprocess`.
        threads: runtime threads (None: the runtime's default).
        save_inputs: a folder to write each model input into as a PNG.
        mnist_preprocess: the MNIST digit preprocessing for any (N, 28, 28, 1) model.
        value_range: what pixels 0..255 map onto (default: the model's spec, see `model_input`).

    Raises:
        ImageError, BundleError, RunDirError, ModelLoadError, InputSpecError, PredictInputError: one line each.
    """
    import numpy as np

    from runtimes.registry import make_runner
    from toolkit.inputs.model_input import PredictInputError, output_kind, plan_input, softmax
    from toolkit.inputs.photo import save_png

    with (
        model_source(model, artifact) as (model_path, name, note, declared),
        make_runner(model_path, num_threads=threads, spec=declared) as runner,
    ):
        spec = runner.model_spec()
        if len(spec.inputs) > 1:
            if save_inputs is not None or mnist_preprocess:
                flag = "--save-inputs" if save_inputs is not None else "--mnist-preprocess"
                raise PredictInputError(
                    f"{flag} applies to images, but {model_path.name} has {spec.tensors_text()} fed from an .npz; "
                    f"drop {flag}."
                )
            found = predict_samples(runner, spec, model_path, images, declared, value_range, top_k)
            return replace(found, artifact=name, note=note)
        plan = plan_input(
            spec,
            model_path,
            declared=declared is not None,
            preprocess=preprocess,
            mnist=mnist_preprocess,
            value_range=value_range,
        )
        prepared = [p for path in images for p in plan.prepare(path)]
        if not spec.is_single:  # one image input, several outputs: each output of each image
            named = runner.infer_named({spec.input.name: plan.batch(prepared)})
            backend = runner.backend()
            each = tuple(
                Prediction(p, (), (), None, None, plan.reference, several_outputs(spec, named, i, top_k))
                for i, p in enumerate(prepared)
            )
            return Predictions(model_path, name, backend, plan.mode == "mnist", each, note, plan, "several")
        outputs = runner.infer(plan.batch(prepared))
        backend = runner.backend()
    if save_inputs is not None:
        for i, p in enumerate(prepared):
            save_png(p.pixels, save_inputs / f"{i:04d}-{Path(p.name.replace('[', '-').rstrip(']')).stem}.png")
    kind, inferred = output_kind(spec, declared is not None, outputs)
    probs = softmax(outputs) if kind == "logits" else outputs
    results = []
    for p, row in zip(prepared, probs, strict=True):
        if kind == "values":
            results.append(Prediction(p, (), (), tuple(round(float(v), 6) for v in row), reference=False))
            continue
        order = np.argsort(-row, kind="stable")[:top_k]
        best = tuple((int(d), round(float(row[d]), 6)) for d in order)
        results.append(
            Prediction(p, best, tuple(round(float(v), 6) for v in row), None, spec.class_names, plan.reference)
        )
    notes = tuple(n for n in (inferred,) if n)
    return Predictions(model_path, name, backend, plan.mode == "mnist", tuple(results), note, plan, kind, notes)


def predict_samples(
    runner: Runner,
    spec: ModelSpec,
    model_path: Path,
    files: Sequence[Path],
    declared: ModelSpec | None,
    value_range: tuple[float, float] | None,
    top_k: int,
) -> Predictions:
    """Each output of each sample of `files` (`.npz`, one array per input name; see `samples.read_samples`)."""
    from toolkit.inputs.samples import read_samples

    samples = read_samples(list(files), spec, model_path, declared=declared is not None, value_range=value_range)
    named = runner.infer_named(samples.feeds)
    spec, inferred = _bare_kinds(spec, named) if declared is None else (spec, ())
    each = tuple(
        Prediction(row, (), (), None, None, False, several_outputs(spec, named, i, top_k))
        for i, row in enumerate(samples.rows)
    )
    notes = (*inferred, *samples.notes())
    return Predictions(model_path, None, runner.backend(), False, each, None, None, "several", notes, samples)


def several_outputs(spec: ModelSpec, named: dict[str, Any], row: int, top_k: int) -> tuple[OutputResult, ...]:
    """Every output of image `row`: top classes, values, or the top `top_k` boxes by the score an (N, K) output
    of the same K gives each box (in the model's order when none does)."""
    import numpy as np

    from toolkit.inputs.model_input import softmax

    results = []
    for tensor in spec.outputs:
        out = np.asarray(named[tensor.name][row])
        if tensor.kind in ("probabilities", "logits"):
            probs = softmax(out[None])[0] if tensor.kind == "logits" else out
            order = np.argsort(-probs, kind="stable")[:top_k]
            results.append(
                OutputResult(tensor.name, tensor.kind, tuple((int(c), round(float(probs[c]), 6)) for c in order))
            )
        elif tensor.kind == "boxes":
            boxes = out.reshape(-1, 4)
            scores = _box_scores(spec, named, row, len(boxes)) if boxes.shape[0] > 1 else None
            order = (
                np.argsort(-scores, kind="stable")[:top_k] if scores is not None else np.arange(min(top_k, len(boxes)))
            )
            picked = tuple((_xyxy(boxes[i]), None if scores is None else round(float(scores[i]), 6)) for i in order)
            results.append(OutputResult(tensor.name, tensor.kind, boxes=picked))
        else:
            results.append(
                OutputResult(tensor.name, tensor.kind or "values", values=tuple(float(v) for v in out.ravel()))
            )
    return tuple(results)


def _bare_kinds(spec: ModelSpec, named: dict[str, Any]) -> tuple[ModelSpec, tuple[str, ...]]:
    """A bare file's (N, K) outputs read by their values as `output_kind` reads one output: one wide is a value,
    rows that are not probabilities are logits. Kinds the file's names gave (boxes, class indices) stay."""
    from toolkit.inputs.model_input import output_kind

    outputs, notes = [], []
    for tensor in spec.outputs:
        if tensor.kind in (None, "probabilities") and len(tensor.shape) == 2:
            kind, note = output_kind(spec, False, named[tensor.name])
            tensor = replace(tensor, kind=kind)
            if note:
                notes.append(f"{tensor.name}: {note.replace('one output', 'one wide')}")
        outputs.append(tensor)
    return spec.with_tensors(outputs=outputs), tuple(notes)


def _xyxy(box: Any) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (round(float(v), 6) for v in box)
    return x0, y0, x1, y1


def _box_scores(spec: ModelSpec, named: dict[str, Any], row: int, count: int) -> Any:
    """One score per box: the first (N, K) probabilities or logits output with K = the number of boxes."""
    for tensor in spec.outputs:
        if tensor.kind in ("probabilities", "logits") and tensor.shape[1:] == (count,):
            return named[tensor.name][row]
    return None


@contextlib.contextmanager
def model_source(model: Path, artifact: str | None) -> Iterator[Source]:
    """Resolve MODEL for `edgekit predict` to a model file whose sha256 has been checked.

    MODEL is a model file (`.tflite`/`.onnx`), a run directory, a bundle folder or a bundle .tar.gz.
    Yields (model file, artifact name or None, a note for the user or None, the spec its manifest or
    bundle records or None).
    """
    model = Path(model)
    if model.is_dir() or is_archive(model):
        # Bundles and runs only: tar, gzip and the bundle checks stay unloaded for a plain model file.
        from runtimes.files import sha256_file
        from toolkit.bundles.format import BUNDLE_JSON, check_file, load_bundle, open_bundle

        if not model.exists():
            raise BundleError(f"bundle {model} does not exist; check the path.")
        if model.is_dir() and not (model / BUNDLE_JSON).is_file():
            yield _run_model(model, artifact)
            return
        with open_bundle(model) as root:
            doc = load_bundle(root, model)
            entries = doc["artifacts"]
            entry = _choose(entries, artifact, model)
            path = check_file(root, entry["path"], doc["files"][entry["path"]], model)
            if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
                raise BundleError(f"{entry['path']} in {model} does not match its artifact sha256; copy it again.")
            yield path, entry["name"], None if artifact else _note(entry["name"], model), _entry_spec(entry)
        return
    if artifact:
        raise BundleError(
            f"--artifact {artifact} applies to a run directory or bundle, but {model} is a model file; drop --artifact."
        )
    yield model, None, None, _listed_spec(model)


def _entry_spec(entry: dict[str, Any]) -> ModelSpec | None:
    """The spec a manifest or bundle entry records (None for documents written before specs were stored)."""
    from runtimes.spec import ModelSpec

    data = entry.get("model_spec")
    return None if data is None else ModelSpec.from_dict(data)


def _listed_spec(model: Path) -> ModelSpec | None:
    """The spec recorded for a model file that sits in a run's or bundle's `exports/` folder, matched by
    sha256; None when there is none. Only a hint: an unreadable or foreign document is ignored."""
    import json

    from runtimes.spec import SpecError

    folder = model.resolve().parent
    if folder.name != "exports":
        return None
    for document in ("manifest.json", "bundle.json"):  # read without pydantic: predict starts fast
        path = folder.parent / document
        try:
            entries = json.loads(path.read_text())["artifacts"] if path.is_file() else []
            candidates = [e for e in entries if isinstance(e, dict) and e.get("model_spec") and e.get("sha256")]
            if not candidates:
                continue
            from runtimes.files import sha256_file

            digest = sha256_file(model)
            entry = next((e for e in candidates if e["sha256"] == digest), None)
            if entry is not None:
                return _entry_spec(entry)
        except (OSError, ValueError, KeyError, TypeError, SpecError):
            continue  # a malformed document or spec: the file alone decides
    return None


def _run_model(run: Path, artifact: str | None) -> Source:
    from toolkit.bundles.format import BUNDLE_JSON
    from toolkit.run import layout as A

    if not (run / A.MANIFEST_JSON).is_file():
        raise BundleError(
            f"{run} is a directory but neither a run directory (no {A.MANIFEST_JSON}) nor a bundle (no {BUNDLE_JSON}); "
            "pass a .tflite/.onnx file, a run directory or a bundle."
        )
    from toolkit.run.documents import dump_document

    run_dir = A.Run(run)
    manifest = run_dir.manifest()
    name = _choose([dump_document(e) for e in manifest.artifacts], artifact, run)["name"]
    entry = manifest.artifact(name)
    assert entry is not None
    return run_dir.verified_path(entry), entry.name, None if artifact else _note(entry.name, run), A.entry_spec(entry)


def _choose(entries: list[dict[str, Any]], artifact: str | None, where: Path) -> dict[str, Any]:
    by_name = {str(e.get("name")): e for e in entries}
    if artifact:
        if artifact not in by_name:
            raise BundleError(f"{where} has no artifact {artifact}; it has {', '.join(sorted(by_name))}.")
        return by_name[artifact]
    for name in PREDICT_PREFERENCE:
        if name in by_name:
            return by_name[name]
    usable = [e for e in entries if e.get("format") != "keras"] or entries
    if not usable:
        raise BundleError(f"{where} lists no artifacts; run `edgekit export` first.")
    return usable[0]


def _note(name: str, where: Path) -> str:
    return f"using {name} from {where} (choose another with --artifact)"
