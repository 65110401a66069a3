"""`edgekit predict`: which model file to use, and classifying images with it.

`model_source` turns MODEL (a `.tflite`/`.onnx` file, a run directory, or a bundle folder or
`.tar.gz`) into a model file whose sha256 has been checked; `predict_images` reads and preprocesses
the images (`photo.prepare`), runs them through the model and returns typed `Predictions`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from toolkit.device.archive import is_archive
from toolkit.device.errors import BundleError
from toolkit.device.photo import Prepared

# Artifacts `edgekit predict` uses from a run or bundle when --artifact is not given, in order.
PREDICT_PREFERENCE: Final = ("tflite-fp32", "onnx-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8")


@dataclass(frozen=True)
class Prediction:
    """One image's class probabilities. `top_k`: (class, probability) pairs, most likely first."""

    image: Prepared
    top_k: tuple[tuple[int, float], ...]
    probabilities: tuple[float, ...]

    @property
    def digit(self) -> int:
        return self.top_k[0][0]

    @property
    def confidence(self) -> float:
        return self.top_k[0][1]

    def to_dict(self) -> dict[str, Any]:
        """The JSON of `edgekit predict --json` for this image."""
        return {
            **self.image.to_dict(),
            "digit": self.digit,
            "confidence": self.confidence,
            "top_k": [{"digit": d, "probability": p} for d, p in self.top_k],
            "probabilities": list(self.probabilities),
        }


@dataclass(frozen=True)
class Predictions:
    """What `predict_images` found. `artifact` is set when MODEL was a run or bundle; `note` says which
    artifact was chosen when none was asked for."""

    model: Path
    artifact: str | None
    backend: str
    preprocess: bool
    results: tuple[Prediction, ...]
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document `edgekit predict --json` prints."""
        return {
            "model": str(self.model),
            "artifact": self.artifact,
            "backend": self.backend,
            "preprocess": self.preprocess,
            "results": [r.to_dict() for r in self.results],
        }


def predict_images(
    model: Path,
    images: Sequence[Path],
    *,
    artifact: str | None = None,
    top_k: int = 1,
    preprocess: bool = True,
    threads: int | None = None,
    save_inputs: Path | None = None,
) -> Predictions:
    """Classify `images` with `model` (see `model_source`), preprocessing them like MNIST digits.

    Args:
        model: a model file, run directory or bundle.
        images: image files or .npy arrays (`images.read_grey`); a batch array gives several results.
        artifact: the artifact of a run or bundle (default: the first of `PREDICT_PREFERENCE` present).
        top_k: how many of the most likely classes each result lists.
        preprocess: MNIST-style preprocessing (`photo.to_mnist`); False only converts and resizes.
        threads: runtime threads (None: the runtime's default).
        save_inputs: a folder to write each model input into as a PNG.

    Raises:
        ImageError, BundleError, RunDirError, ModelLoadError, InputSpecError: one line each.
    """
    import numpy as np

    from runtimes.registry import make_runner
    from toolkit.device.photo import prepare, save_png
    from toolkit.model.spec import reference_spec

    with model_source(model, artifact) as (model_path, name, note):
        prepared = [p for path in images for p in prepare(path, preprocess=preprocess)]
        batch = np.stack([p.pixels for p in prepared])[..., np.newaxis]
        # The photo preprocessing makes MNIST digits, so the model must be one that reads them.
        with make_runner(model_path, num_threads=threads, spec=reference_spec()) as runner:
            probs = runner.infer(batch)
            backend = runner.backend()
    if save_inputs is not None:
        for i, p in enumerate(prepared):
            save_png(p.pixels, save_inputs / f"{i:04d}-{Path(p.name.replace('[', '-').rstrip(']')).stem}.png")
    results = []
    for p, row in zip(prepared, probs, strict=True):
        order = np.argsort(-row, kind="stable")[:top_k]
        best = tuple((int(d), round(float(row[d]), 6)) for d in order)
        results.append(Prediction(p, best, tuple(round(float(v), 6) for v in row)))
    return Predictions(model_path, name, backend, preprocess, tuple(results), note)


@contextlib.contextmanager
def model_source(model: Path, artifact: str | None) -> Iterator[tuple[Path, str | None, str | None]]:
    """Resolve MODEL for `edgekit predict` to a model file whose sha256 has been checked.

    MODEL is a model file (`.tflite`/`.onnx`), a run directory, a bundle folder or a bundle .tar.gz.
    Yields (model file, artifact name or None, a note for the user or None).
    """
    model = Path(model)
    if model.is_dir() or is_archive(model):
        # Bundles and runs only: tar, gzip and the bundle checks stay unloaded for a plain model file.
        from exporters.files import sha256_file
        from toolkit.device.bundle_format import BUNDLE_JSON, check_file, load_bundle, open_bundle

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
            yield path, entry["name"], None if artifact else _note(entry["name"], model)
        return
    if artifact:
        raise BundleError(
            f"--artifact {artifact} applies to a run directory or bundle, but {model} is a model file; drop --artifact."
        )
    yield model, None, None


def _run_model(run: Path, artifact: str | None) -> tuple[Path, str | None, str | None]:
    from toolkit.device.bundle_format import BUNDLE_JSON
    from toolkit.run import layout as A

    if not (run / A.MANIFEST_JSON).is_file():
        raise BundleError(
            f"{run} is a directory but neither a run directory (no {A.MANIFEST_JSON}) nor a bundle (no {BUNDLE_JSON}); "
            "pass a .tflite/.onnx file, a run directory or a bundle."
        )
    manifest = A.load_manifest(run)
    entry = _choose(manifest["artifacts"], artifact, run)
    return A.verified_path(run, entry), entry["name"], None if artifact else _note(entry["name"], run)


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
