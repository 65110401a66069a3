"""Building a device bundle: a run's artifacts plus golden inputs and the desktop's outputs, by sha256.

`build_bundle` writes the layout described in `format.py` into a temporary folder beside `out`
and moves it into place only when complete (a folder: one rename; an archive: one atomic file
write), so a failed or interrupted build leaves nothing under `out`. Each artifact's expected outputs
come from its own runtime on this machine; their shapes (and the golden inputs') are whatever the
model takes and returns, as its runner reports them. The golden rows are the last N of the test split
of the run's data (`run_source.run_dataset`: the user's dataset.json, or shipped MNIST for a reference
run), in the model's input shape and value convention.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from runtimes.errors import one_line
from runtimes.files import atomic_path, ensure_dir, sha256_file
from toolkit.bundles.archive import archive_stem, is_archive, unsafe_reason, write_tar
from toolkit.bundles.errors import BundleError
from toolkit.bundles.format import (
    BUNDLE_JSON,
    EXPECTED_DIR,
    FEEDS_DIR,
    INPUTS,
    KIND,
    LABELS,
    SCHEMA_VERSION,
    TARGETS,
    TRUTHS_DIR,
    rel_files,
    tensor_files,
)
from toolkit.bundles.verify import output_kind, tolerance_for, tolerance_of_output

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec, TensorSpec
    from toolkit.data.dataset import Dataset
    from toolkit.run.documents import ArtifactEntry, BundleDocument, ManifestDocument

DEFAULT_GOLDEN: Final = 256


def build_bundle(
    run_dir: Path | None,
    out: Path,
    *,
    artifact_names: list[str] | None = None,
    golden: int | None = None,
    force: bool = False,
    data: Any = None,
    on_step: Callable[[str], None] | None = None,
) -> tuple[Path, BundleDocument]:
    """Write a bundle of `run_dir`'s artifacts to `out` (a folder, or a .tar.gz), atomically.

    Args:
        run_dir: a run directory with manifest.json (made by `edgekit export`); None: runs/latest.
        out: the bundle folder, or a path ending in .tar.gz/.tgz for an archive.
        artifact_names: artifacts to include (default: every non-Keras artifact).
        golden: how many test rows (the last `golden` of the data's test split); default 256, or the
            whole test split when it is smaller.
        force: replace `out` if it exists.
        data: the golden rows' data (an .npz, image folder, MNIST source or Dataset); default: the
            run's own (dataset.json), or shipped MNIST for a reference run.
        on_step: called with a short description as each step starts (progress display).

    Returns:
        (the bundle path, bundle.json).

    Raises:
        BundleError / RunDirError / DataError: bad arguments, a missing or modified artifact, an
            existing `out` without `force`. Nothing is left under `out` on failure.
    """
    from toolkit.model.run_source import run_dataset, run_spec
    from toolkit.run import layout as A

    step = on_step or (lambda _msg: None)
    run = A.resolve_run_dir(run_dir)
    archive = is_archive(out)
    _check_out(out, archive, force)
    manifest = A.load_manifest(run)
    entries = _entries(run, manifest, artifact_names)
    sources = [(e, A.verified_path(run, e)) for e in entries]  # sha256 against the manifest
    spec = run_spec(run)
    dataset = run_dataset(run, data, spec=spec)
    dataset.check(spec)  # data that does not fit the model: one line naming both, before anything else
    rows: _Golden | _NamedGolden = (
        _golden_rows(dataset, spec, golden) if spec.is_single else _golden_named(dataset, spec, golden)
    )

    ensure_dir(out.parent)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        work.chmod(0o755)
        doc = _write_contents(work, run, manifest, sources, rows, step)
        step("bundle: writing")
        _finish(work, out, archive, force)
    except OSError as exc:
        # A full disk or a file-size limit: shutil.copyfile names the *source*, np.save names nothing.
        reason = exc.strerror or one_line(exc, 200)
        raise BundleError(f"cannot write bundle {out}: {reason}; check free disk space and permissions.") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out, doc


def _entries(run: Path, manifest: ManifestDocument, artifact_names: list[str] | None) -> list[ArtifactEntry]:
    """The manifest entries to bundle (default: every non-Keras artifact), each with a safe relative path."""
    from toolkit.run import layout as A

    if artifact_names:
        entries = A.select_artifacts(manifest, artifact_names)
    else:
        entries = [e for e in manifest.artifacts if e.format != "keras"]
        if not entries:
            raise BundleError(f"{run} has no exported artifacts to bundle; run `edgekit export {run}` first.")
    for e in entries:
        for name, _ in e.files():
            reason = unsafe_reason(name)
            if reason:
                raise BundleError(f"{run / A.MANIFEST_JSON} lists artifact {e.name} with a path that {reason}.")
    return entries


@dataclass(frozen=True)
class _Golden:
    """The golden rows: the model's inputs and the truth (class labels, or regression targets)."""

    inputs: np.ndarray
    truth: np.ndarray
    regression: bool
    doc: dict[str, Any]  # bundle.json's "golden"

    @property
    def labels(self) -> np.ndarray | None:
        return None if self.regression else self.truth


def _golden_rows(dataset: Dataset, spec: ModelSpec, golden: int | None) -> _Golden:
    """The last `golden` rows of the data's test split, in the model's input shape and value convention."""
    from toolkit.data.dataset import targets_for

    n_test = len(dataset.x_test)
    golden = min(DEFAULT_GOLDEN, n_test) if golden is None else golden
    if not 1 <= golden <= n_test:
        raise BundleError(f"--golden must be between 1 and {n_test} (the test set size), got {golden}.")
    # Through the model's spec (shape, value convention); MNIST rows give exactly to_model_input's bytes.
    inputs = dataset.inputs(dataset.x_test[n_test - golden :], spec).astype(np.float32, copy=False)
    regression = spec.output_kind == "values"
    truth = targets_for(dataset.y_test[n_test - golden :], spec, dataset.name)
    truth = truth.astype(np.float32 if regression else np.int64, copy=False)
    indices = f"(indices {n_test - golden}-{n_test - 1})"
    if dataset.kind == "mnist":
        selection = f"the last {golden} images of the MNIST test set {indices}"
    else:
        selection = f"the last {golden} rows of {dataset.name}'s test split {indices}"
    doc = {
        "inputs": INPUTS,
        "labels": None if regression else LABELS,
        "images": golden,
        "shape": list(inputs.shape),
        "dtype": str(inputs.dtype),
        "selection": selection,
        "data_source": dataset.source,
        "data_verified": dataset.verified,
        **({"targets": TARGETS} if regression else {}),
        "task": "regression" if regression else "classification",
        "data_name": dataset.name,
    }
    return _Golden(inputs=inputs, truth=truth, regression=regression, doc=doc)


@dataclass(frozen=True)
class _NamedGolden:
    """The golden rows of a model with several inputs or outputs: a feed per input, a truth per output."""

    feeds: dict[str, np.ndarray]  # float32, each input's shape and value convention
    truths: dict[str, np.ndarray]  # int64 labels / class indices, float32 values / boxes
    kinds: dict[str, str]  # output name -> kind
    doc: dict[str, Any]  # bundle.json's "golden" (with the paths `save` writes to)

    def save(self, work: Path) -> None:
        (work / FEEDS_DIR).mkdir(parents=True)
        (work / TRUTHS_DIR).mkdir(parents=True)
        for part, arrays in (("feeds", self.feeds), ("truths", self.truths)):
            for name, array in arrays.items():
                np.save(work / self.doc[part][name]["path"], array, allow_pickle=False)


def _golden_named(dataset: Dataset, spec: ModelSpec, golden: int | None) -> _NamedGolden:
    """The last `golden` rows of the data's test split, one array per input and per output (by name)."""
    from toolkit.data.named import NamedDataset, names_text

    if not isinstance(dataset, NamedDataset):
        raise BundleError(
            f"{dataset.name} holds one input and one target, but the model has inputs {names_text(spec.input_names)} "
            f"and outputs {names_text(spec.output_names)}; pass --data with an .npz holding one array per name."
        )
    split = dataset.test_named(spec)
    n_test = len(split)
    golden = min(DEFAULT_GOLDEN, n_test) if golden is None else golden
    if not 1 <= golden <= n_test:
        raise BundleError(f"--golden must be between 1 and {n_test} (the test set size), got {golden}.")
    rows = slice(n_test - golden, n_test)
    feeds = {n: np.ascontiguousarray(a[rows], dtype=np.float32) for n, a in split.inputs.items()}
    kinds = {t.name: t.kind or "probabilities" for t in spec.outputs}
    truths = {}
    for name, array in split.targets.items():
        floats = kinds[name] in ("values", "boxes")
        truths[name] = np.ascontiguousarray(array[rows], dtype=np.float32 if floats else np.int64)
    in_files, out_files = tensor_files(spec.input_names), tensor_files(spec.output_names)

    def described(path: str, array: np.ndarray, kind: str | None = None) -> dict[str, Any]:
        return {"path": path, "shape": list(array.shape), "dtype": str(array.dtype), "kind": kind}

    indices = f"(indices {n_test - golden}-{n_test - 1})"
    doc = {
        "inputs": None,
        "labels": None,
        "images": golden,
        "shape": None,
        "dtype": "float32",
        "selection": f"the last {golden} rows of {dataset.name}'s test split {indices}",
        "data_source": dataset.source,
        "data_verified": dataset.verified,
        "task": "several outputs" if len(spec.outputs) > 1 else _task(spec.output_kind),
        "data_name": dataset.name,
        "feeds": {n: described(f"{FEEDS_DIR}/{in_files[n]}.npy", a) for n, a in feeds.items()},
        "truths": {n: described(f"{TRUTHS_DIR}/{out_files[n]}.npy", a, kinds[n]) for n, a in truths.items()},
    }
    return _NamedGolden(feeds=feeds, truths=truths, kinds=kinds, doc=doc)


def _write_contents(
    work: Path,
    run: Path,
    manifest: ManifestDocument,
    sources: list[tuple[ArtifactEntry, Path]],
    rows: _Golden | _NamedGolden,
    step: Callable[[str], None],
) -> BundleDocument:
    """Write the bundle's files into `work`: golden data, artifacts with their outputs, manifest, bundle.json."""
    from toolkit.run import layout as A
    from toolkit.run.documents import BundleDocument, write_document

    (work / "golden").mkdir()
    (work / EXPECTED_DIR).mkdir()
    records = []
    if isinstance(rows, _NamedGolden):
        rows.save(work)
        for entry, src in sources:
            step(f"bundle: {entry.name}")
            records.append(_add_artifact_named(work, entry, src, rows))
    else:
        np.save(work / INPUTS, rows.inputs, allow_pickle=False)
        np.save(work / (TARGETS if rows.regression else LABELS), rows.truth, allow_pickle=False)
        for entry, src in sources:
            step(f"bundle: {entry.name}")
            records.append(_add_artifact(work, entry, src, rows.inputs, rows.labels))
    step("bundle: bundle.json")
    names = {e.name for e, _ in sources}
    small_manifest = manifest.model_copy(update={"artifacts": [e for e in manifest.artifacts if e.name in names]})
    write_document(work / A.MANIFEST_JSON, small_manifest)
    if (run / A.TRAIN_JSON).is_file():
        shutil.copyfile(run / A.TRAIN_JSON, work / A.TRAIN_JSON)
    doc = BundleDocument.model_validate(_bundle_doc(work, run, manifest, rows.doc, records))
    write_document(work / BUNDLE_JSON, doc)
    for path in work.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # atomic writes create 0600 files
    return doc


def _add_artifact(
    work: Path, entry: ArtifactEntry, src: Path, inputs: np.ndarray, labels: np.ndarray | None
) -> dict[str, Any]:
    """Copy one artifact into the bundle, save its outputs on the golden inputs; its bundle.json entry."""
    from runtimes.registry import make_runner
    from toolkit.run.layout import entry_spec

    dst = _copy_artifact(work, entry, src)
    spec = entry_spec(entry)
    with make_runner(dst, spec=spec) as runner:
        outputs = runner.infer(inputs)
        backend = runner.backend()
        in_spec, out_spec = runner.input_spec().to_dict(), runner.output_spec().to_dict()
        file_spec = runner.model_spec()
    expected = f"{EXPECTED_DIR}/{entry.name}.npy"
    outputs = outputs.astype(np.float32)
    np.save(work / expected, outputs, allow_pickle=False)
    builtin = _builtin_outputs(dst, entry, spec, inputs, outputs)
    expected_builtin = None
    if builtin is not None:
        expected_builtin = f"{EXPECTED_DIR}/{entry.name}.builtin.npy"
        np.save(work / expected_builtin, builtin, allow_pickle=False)
    model_spec = entry.model_spec or file_spec
    kind = output_kind({"model_spec": model_spec.to_dict()})
    magnitude = float(np.abs(outputs).max()) if outputs.size else 0.0
    return {
        **_entry_fields(entry, backend),
        "input": entry.input.to_dict() if entry.input else in_spec,
        "output": entry.output.to_dict() if entry.output else out_spec,
        "model_spec": model_spec.to_dict(),
        "tolerance": tolerance_for(entry.model_copy(update={"model_spec": model_spec}), dst, magnitude=magnitude),
        "expected": expected,
        "expected_builtin": expected_builtin,
        "desktop_accuracy": None if labels is None or kind == "values" else float(np.mean(outputs.argmax(1) == labels)),
    }


def _copy_artifact(work: Path, entry: ArtifactEntry, src: Path) -> Path:
    """Copy one artifact into the bundle at its manifest path, refusing a file that changed since the manifest."""
    for name, sha in entry.files():  # an OpenVINO IR's .bin travels with its .xml
        file = work / name
        file.parent.mkdir(parents=True, exist_ok=True)
        origin = src if name == entry.path else src.parent / Path(name).name
        shutil.copyfile(origin, file)
        if sha256_file(file) != sha:
            raise BundleError(f"{origin} changed while it was copied; run `edgekit bundle` again.")
    return work / entry.path


def _entry_fields(entry: ArtifactEntry, backend: str) -> dict[str, Any]:
    """The first fields of an artifact's bundle.json entry: what the manifest says of it and the backend it ran on."""
    return {
        "name": entry.name,
        "path": entry.path,
        "format": entry.format,
        "precision": entry.precision,
        "runtime": entry.runtime,
        "backend": backend,
        "sha256": entry.sha256,
        "size_bytes": entry.size_bytes,
        **({"weights": entry.weights, "weights_sha256": entry.weights_sha256} if entry.weights else {}),
    }


def _task(kind: str) -> str:
    return "regression" if kind in ("values", "boxes") else "classification"


def _add_artifact_named(work: Path, entry: ArtifactEntry, src: Path, rows: _NamedGolden) -> dict[str, Any]:
    """`_add_artifact` for a model with several inputs or outputs: every output's values and tolerance."""
    from runtimes.registry import make_runner
    from toolkit.run.layout import entry_spec

    dst = _copy_artifact(work, entry, src)
    spec = entry_spec(entry)
    with make_runner(dst, spec=spec) as runner:
        outputs = runner.infer_named(rows.feeds)
        backend = runner.backend()
        file_spec = runner.model_spec()
    model_spec = entry.model_spec or file_spec
    builtin: dict[str, np.ndarray] = {}
    if entry.format == "tflite" and entry.precision not in ("fp32", "fp16"):  # see `_builtin_outputs`
        with make_runner(dst, spec=spec, use_xnnpack=False) as runner:
            builtin = runner.infer_named(rows.feeds)
    (work / EXPECTED_DIR / entry.name).mkdir()
    files = tensor_files(model_spec.output_names)
    records = []
    for tensor in model_spec.outputs:
        records.append(_output_record(work, entry, dst, tensor, files[tensor.name], outputs, builtin, rows))
    return {
        **_entry_fields(entry, backend),
        "input": None,
        "output": None,
        "model_spec": model_spec.to_dict(),
        "tolerance": None,
        "expected": None,
        "expected_builtin": None,
        "desktop_accuracy": None,
        "outputs": records,
    }


def _output_record(
    work: Path,
    entry: ArtifactEntry,
    path: Path,
    tensor: TensorSpec,
    stem: str,
    outputs: dict[str, np.ndarray],
    builtin: dict[str, np.ndarray],
    rows: _NamedGolden,
) -> dict[str, Any]:
    """Save one output's desktop values (and built-in-kernel values when they differ); its bundle.json entry."""
    kind = tensor.kind or "probabilities"
    values = outputs[tensor.name]
    values = values.astype(np.int64 if kind == "class_indices" else np.float32, copy=False)
    expected = f"{EXPECTED_DIR}/{entry.name}/{stem}.npy"
    np.save(work / expected, values, allow_pickle=False)
    expected_builtin = None
    other = builtin.get(tensor.name)
    if other is not None and not np.array_equal(other, values):
        expected_builtin = f"{EXPECTED_DIR}/{entry.name}/{stem}.builtin.npy"
        np.save(work / expected_builtin, other.astype(values.dtype, copy=False), allow_pickle=False)
    magnitude = float(np.abs(values).max()) if values.size else 0.0
    truth = rows.truths[tensor.name]
    accuracy = None
    if truth.ndim != 1:  # one-hot or value targets: no labels to score against
        pass
    elif kind in ("probabilities", "logits"):
        accuracy = float(np.mean(values.argmax(1) == truth))
    elif kind == "class_indices":
        accuracy = float(np.mean(values.reshape(len(values)) == truth))
    return {
        "name": tensor.name,
        "kind": kind,
        "expected": expected,
        "expected_builtin": expected_builtin,
        "tolerance": tolerance_of_output(entry, tensor.name, path, magnitude=magnitude),
        "desktop_accuracy": accuracy,
    }


def _builtin_outputs(
    path: Path, entry: ArtifactEntry, spec: ModelSpec | None, inputs: np.ndarray, outputs: np.ndarray
) -> np.ndarray | None:
    """A quantized TFLite artifact's outputs with LiteRT's built-in kernels (no XNNPACK), when they differ.

    XNNPACK and the built-in int8 kernels round intermediate activations differently; through a few layers
    that reaches several output steps (4 on the reference int8 model). A board whose runtime does not
    delegate to XNNPACK (tflite-runtime 2.13 on 32-bit ARM) computes the built-in way, so the bundle
    carries both references and verify picks by the board's kernel path (`verify.compare_references`).
    """
    from runtimes.registry import make_runner

    if entry.format != "tflite" or entry.precision in ("fp32", "fp16"):
        return None
    with make_runner(path, spec=spec, use_xnnpack=False) as runner:
        builtin = runner.infer(inputs).astype(np.float32)
    return None if np.array_equal(builtin, outputs) else builtin


def _bundle_doc(
    work: Path,
    run: Path,
    manifest: ManifestDocument,
    golden: dict[str, Any],
    records: list[dict[str, Any]],
) -> dict[str, Any]:
    """bundle.json's content for the files now in `work` (each one's sha256 and size)."""
    from benchmarks.environment import capture_environment
    from toolkit.run.layout import utc_now
    from toolkit.version import __version__

    files = {
        rel: {"sha256": sha256_file(work / rel), "size_bytes": (work / rel).stat().st_size} for rel in rel_files(work)
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "created_utc": utc_now(),
        "edgekit_version": __version__,
        "source": {
            "run_dir": str(run.resolve()),
            "run": run.resolve().name,
            "manifest_created_utc": manifest.created_utc,
            "git_sha": manifest.git_sha,
            "training": manifest.training,
            "libraries": manifest.libraries,
        },
        "environment": capture_environment(),
        "golden": golden,
        "tolerances": _tolerances(records),
        "artifacts": records,
        "files": files,
    }


def _tolerances(records: list[dict[str, Any]]) -> dict[str, str]:
    """MACHINE_TOLERANCE_DOC, plus how logits, values, boxes and class indices are compared when a bundled
    model outputs them."""
    from toolkit.tolerances import CLASS_INDICES, CLASS_INDICES_DOC, LOGITS_AND_VALUES, MACHINE_TOLERANCE_DOC

    kinds = {o["kind"] for r in records for o in r["outputs"]} if records and records[0].get("outputs") else set()
    kinds |= {output_kind(r) for r in records if not r.get("outputs")}
    raw = {"logits and values": LOGITS_AND_VALUES} if kinds & {"logits", "values", "boxes"} else {}
    indices = {"class indices": CLASS_INDICES_DOC} if CLASS_INDICES in kinds else {}
    return {**MACHINE_TOLERANCE_DOC, **raw, **indices}


def _check_out(out: Path, archive: bool, force: bool) -> None:
    if out.is_symlink() or out.exists():
        if not force:
            raise BundleError(f"{out} already exists; choose another --out or pass --force to replace it.")
        if archive and out.is_dir() and not out.is_symlink():
            raise BundleError(f"{out} is a directory; an archive cannot replace it. Choose another --out.")


def _finish(work: Path, out: Path, archive: bool, force: bool) -> None:
    """Move the finished bundle into place: one rename (folder) or one atomic file write (archive)."""
    if archive:
        with atomic_path(out) as tmp:
            write_tar(work, tmp, archive_stem(out))
        return
    old: Path | None = None
    if out.is_symlink() or out.exists():
        if not force:  # created since the check at the start
            raise BundleError(f"{out} already exists; choose another --out or pass --force to replace it.")
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
    os.rename(work, out)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
