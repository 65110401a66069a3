"""The run directory: its file names, `Run` (typed load and save of every document in it) and the manifest.

    run = Run(run_dir)
    manifest = run.manifest()                     # ManifestDocument, checked; one-line error if missing
    bench = run.find(BenchDocument)               # None when `edgekit bench` has not run
    run.save(parity)                              # written atomically where a ParityDocument belongs

Documents are pydantic models (`toolkit.run.documents`), imported inside the functions that read or write
them, so `edgekit --help` and `edgekit predict` never load pydantic.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from runtimes.files import sha256_file
from toolkit.errors import RunDirError
from toolkit.version import __version__

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec
    from toolkit.run.documents import (
        ArtifactEntry,
        BundleArtifact,
        Calibration,
        CpuInfo,
        Document,
        ManifestDocument,
        TrainingSummary,
    )


SCHEMA_VERSION: Literal[1] = 1  # every run document's `schema_version` (toolkit.run.documents.base checks it)
RUNS_DIR = Path("runs")
LATEST = "latest"
MODEL_FILE = "model.keras"
TRAIN_JSON = "train.json"
EXPORTS_DIR = "exports"
MANIFEST_JSON = "manifest.json"
PARITY_JSON = "parity.json"
BENCH_JSON = "bench.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
RUN_JSON = "run.json"  # the pipeline's options, so --resume repeats exactly the same run
DIAGNOSE_DIR = "diagnose"
REFERENCE_NAME = "keras-fp32"  # the reference of a trained run or of a Keras `--model`
ONNX_MODEL_FILE = "model.onnx"  # the run's copy of an ONNX `--model`: its own reference, on ONNX Runtime
ONNX_REFERENCE_NAME = "onnx-fp32"
TFLITE_MODEL_FILE = "model.tflite"  # the run's copy of a TFLite `--model`: its own reference, on LiteRT
TFLITE_REFERENCE_NAME = "tflite-fp32"


@dataclass(frozen=True)
class ReferenceKind:
    """What a run's reference model is: the file every export is made from and every artifact compared with.

    A trained run or a Keras `--model` holds model.keras (`keras-fp32`, run by Keras); an ONNX `--model` holds
    model.onnx (`onnx-fp32`, run by ONNX Runtime in fp32), which is also the run's onnx-fp32 artifact.
    """

    name: str
    file: str
    format: str
    runtime: str


KERAS_REFERENCE = ReferenceKind(REFERENCE_NAME, MODEL_FILE, "keras", "keras")
ONNX_REFERENCE = ReferenceKind(ONNX_REFERENCE_NAME, ONNX_MODEL_FILE, "onnx", "onnxruntime")
# A TFLite `--model` (fp32 .tflite, e.g. from litert-torch): model.tflite on LiteRT, also the run's tflite-fp32.
TFLITE_REFERENCE = ReferenceKind(TFLITE_REFERENCE_NAME, TFLITE_MODEL_FILE, "tflite", "tflite")
REFERENCES = (KERAS_REFERENCE, ONNX_REFERENCE, TFLITE_REFERENCE)

_LIBRARIES = (
    "numpy",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "ai-edge-litert",
    "tflite-runtime",
    "openvino",
    "nncf",
    "typer",
)


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def this_cpu() -> CpuInfo:
    """This machine's instruction-set class and features, as documents record them."""
    from benchmarks.cpu import detect_cpu
    from toolkit.run.documents import CpuInfo

    return CpuInfo.model_validate(detect_cpu().to_dict())


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries edgekit uses (read from metadata; imports nothing)."""
    out = {"python": platform.python_version(), "edgekit": __version__}
    for dist in _LIBRARIES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_sha() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def new_run_dir(runs_root: Path = RUNS_DIR) -> Path:
    """Create `runs_root/<UTC timestamp>` (suffixed if taken) and return it."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    try:
        runs_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(
            f"cannot create runs directory {runs_root}: {exc.strerror}; choose another --runs-dir."
        ) from exc
    for i in range(1, 100):
        candidate = runs_root / (stamp if i == 1 else f"{stamp}-{i}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunDirError(f"cannot create run directory {candidate}: {exc.strerror}.") from exc
        return candidate
    raise RunDirError(f"too many runs started this second in {runs_root}.")


def point_latest(run_dir: Path) -> None:
    """Make `<runs_root>/latest` a relative symlink to `run_dir`, replacing it atomically."""
    # `--resume runs/latest` hands over the link itself: pointing `latest` at its own name would loop.
    run_dir = run_dir.resolve() if run_dir.is_symlink() else run_dir
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.tmp-{os.getpid()}"
    try:
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        # Filesystems without symlinks: fall back to a text file naming the run.
        if tmp.is_symlink():
            tmp.unlink()
        if not link.is_symlink() and not link.is_dir():
            (run_dir.parent / f"{LATEST}.txt").write_text(run_dir.name + "\n")


def resolve_run_dir(run_dir: Path | None, runs_root: Path = RUNS_DIR) -> Path:
    """The given run directory, or `runs/latest`; it must exist."""
    if run_dir is None:
        latest = runs_root / LATEST
        if not latest.exists():
            raise RunDirError(
                f"no run directory given and {latest} does not exist; run `edgekit pipeline` or "
                "`edgekit train` first, or pass RUN_DIR."
            )
        run_dir = latest.resolve()
    if not run_dir.exists():
        raise RunDirError(f"run directory {run_dir} does not exist; pass a directory made by `edgekit train`.")
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file; pass a run directory made by `edgekit train`.")
    return run_dir


def require_file(run_dir: Path, name: str, how: str) -> Path:
    path = run_dir / name
    if not path.is_file():
        raise RunDirError(f"{run_dir} has no {name}; {how}.")
    return path


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, unchecked (one-line `RunDirError` if it is missing or not an object).

    For files without a document model in reach: a TFLite-only board install reads bundle.json with it (no
    pydantic there). Everything else reads run documents typed, through `Run` or `load_document`.
    """
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RunDirError(f"{path} does not exist.") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc}); re-run the step that writes it.") from exc
    if not isinstance(data, dict):
        raise RunDirError(f"{path} does not hold a JSON object; re-run the step that writes it.")
    return data


D = TypeVar("D", bound="Document")


@dataclass(frozen=True)
class Run:
    """A run directory: where each document lives in it, and their typed load and save.

    Every document of a run is here under its `FILE` name (train.json, manifest.json, parity.json, bench.json,
    gate.json, mixed.json, mcu.json, run.json, model.json, dataset.json), except diagnose.json, which
    `edgekit diagnose` writes into `diagnose/` beside its galleries. All carry `schema_version`
    `SCHEMA_VERSION`; a file of another version is refused in one line.
    """

    dir: Path
    SCHEMA_VERSION: ClassVar[Literal[1]] = SCHEMA_VERSION
    # Documents kept below the run directory rather than in it: FILE → path relative to the run.
    PLACES: ClassVar[dict[str, str]] = {"diagnose.json": f"{DIAGNOSE_DIR}/diagnose.json"}

    @property
    def name(self) -> str:
        return self.dir.name

    def path(self, kind: type[Document]) -> Path:
        """Where a document of `kind` lives in this run (whether or not it exists)."""
        return self.dir / self.PLACES.get(kind.FILE, kind.FILE)

    def has(self, kind: type[Document]) -> bool:
        return self.path(kind).is_file()

    def load(self, kind: type[D]) -> D:
        """The document of `kind`, checked against its model.

        Raises:
            DocumentError: missing, not JSON, another schema version, or not matching the model (one line
                naming the file, the first problem and the step that writes it).
        """
        from toolkit.run.documents import ManifestDocument, load_document

        if kind is ManifestDocument:
            require_file(self.dir, MANIFEST_JSON, "run `edgekit export` first")
        return load_document(self.path(kind), kind)

    def find(self, kind: type[D]) -> D | None:
        """The document of `kind`, or None when the run has none (a file that is there must be valid)."""
        return self.load(kind) if self.has(kind) else None

    def save(self, doc: D) -> D:
        """Write `doc` atomically where its kind belongs in this run; return it."""
        from toolkit.run.documents import write_document

        path = self.path(type(doc))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_document(path, doc)
        return doc

    def manifest(self) -> ManifestDocument:
        """manifest.json, checked (one-line error with the fix when it is missing or broken)."""
        from toolkit.run.documents import ManifestDocument

        return self.load(ManifestDocument)

    def reference(self, manifest: ManifestDocument) -> ArtifactEntry:
        """The manifest's reference entry (keras-fp32, or onnx-fp32 for an ONNX source), which parity, diagnose
        and mcu compare against."""
        name = reference_name(manifest)
        entry = manifest.artifact(name)
        if entry is None:
            raise RunDirError(f"{self.dir / MANIFEST_JSON} lists no {name} reference; re-run `edgekit export`.")
        return entry

    def verified_path(self, entry: ArtifactEntry) -> Path:
        """The artifact's file, after checking it exists and matches the manifest's sha256."""
        for name, sha in entry.files():  # an OpenVINO IR's .bin too: the .xml alone does not run
            file = self.dir / name
            if not file.is_file():
                raise RunDirError(f"{file} is listed in the manifest but missing; re-run `edgekit export`.")
            if sha256_file(file) != sha:
                raise RunDirError(
                    f"{file} does not match the sha256 in {MANIFEST_JSON} (modified or corrupt); "
                    "re-run `edgekit export`."
                )
        path: Path = self.dir / entry.path
        return path


def load_manifest(run_dir: Path) -> ManifestDocument:
    """`Run(run_dir).manifest()`."""
    return Run(run_dir).manifest()


def verified_path(run_dir: Path, entry: ArtifactEntry) -> Path:
    """`Run(run_dir).verified_path(entry)`."""
    return Run(run_dir).verified_path(entry)


def listed_reference(run_dir: Path, manifest: ManifestDocument) -> ArtifactEntry:
    """`Run(run_dir).reference(manifest)`."""
    return Run(run_dir).reference(manifest)


def int8_target(manifest: ManifestDocument) -> str:
    """The CPU class the run's int8 exports target (`exporters.int8_recipe`); older manifests: "portable"."""
    return manifest.int8_target or "portable"


def reference_kind(run_dir: Path) -> ReferenceKind:
    """The run's kind of reference, by the model file it holds (model.keras, else model.onnx, else model.tflite).

    Raises:
        RunDirError: the run holds neither (no `edgekit train` nor `--model` yet).
    """
    for kind in REFERENCES:
        if (run_dir / kind.file).is_file():
            return kind
    raise RunDirError(f"{run_dir} has no {MODEL_FILE}; run `edgekit train` first (it writes model.keras).")


def model_file(run_dir: Path) -> Path:
    """The run's reference model file: model.keras (trained or a Keras --model), model.onnx or model.tflite (an
    ONNX or TFLite --model)."""
    return run_dir / reference_kind(run_dir).file


def reference_entry(run_dir: Path) -> ArtifactEntry:
    """The manifest entry for the run's reference model (keras-fp32, or onnx-fp32 for an ONNX source)."""
    from toolkit.run.documents import ArtifactEntry

    kind = reference_kind(run_dir)
    model = run_dir / kind.file
    return ArtifactEntry(
        name=kind.name,
        path=kind.file,
        format=kind.format,
        precision="fp32",
        runtime=kind.runtime,
        size_bytes=model.stat().st_size,
        sha256=sha256_file(model),
    )


def reference_name(manifest: ManifestDocument) -> str:
    """The name of the manifest's reference artifact (manifests written before it was recorded: keras-fp32)."""
    return manifest.reference or REFERENCE_NAME


_FORMATS = ("keras", "tflite", "onnx", "openvino")
_PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8", "int16x8", "int4-weights", "int8-mixed")


def _rank(e: ArtifactEntry) -> tuple[int, int, str]:
    return (
        _FORMATS.index(e.format) if e.format in _FORMATS else 9,
        _PRECISIONS.index(e.precision) if e.precision in _PRECISIONS else 9,
        e.name,
    )


def write_manifest(
    run_dir: Path,
    entries: list[ArtifactEntry],
    *,
    int8_target: str | None = None,
    calibration: Calibration | None = None,
    training: TrainingSummary | None = None,
    reference: str | None = None,
) -> ManifestDocument:
    """Write manifest.json, merging with entries already listed (same name: replaced); the run-wide fields given
    (None: not recorded) describe how the exports were made."""
    from toolkit.run.documents import ManifestDocument

    run = Run(run_dir)
    replaced = {e.name for e in entries}
    existing = [e for e in run.manifest().artifacts if e.name not in replaced] if run.has(ManifestDocument) else []
    manifest = ManifestDocument(
        schema_version=SCHEMA_VERSION,
        created_utc=utc_now(),
        edgekit_version=__version__,
        git_sha=git_sha(),
        libraries=library_versions(),
        artifacts=sorted(existing + entries, key=_rank),
    )
    # Set only what is known: a field never set is left out of the file (`dump_document`).
    if int8_target is not None:
        manifest.int8_target = int8_target
    if calibration is not None:
        manifest.calibration = calibration
    if training is not None:
        manifest.training = training
    if reference is not None and reference != REFERENCE_NAME:
        manifest.reference = reference  # a Keras reference is the default: older manifests stay as they were
    elif run.has(ManifestDocument) and reference is None:
        manifest.reference = run.manifest().reference
    return run.save(manifest)


def select_artifacts(manifest: ManifestDocument, names: list[str] | None) -> list[ArtifactEntry]:
    """The entries named (all when `names` is empty); an unknown name is a one-line error listing the known ones."""
    artifacts = manifest.artifacts
    if not names:
        return list(artifacts)
    known = {a.name for a in artifacts}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RunDirError(f"unknown artifact {', '.join(unknown)}; this run has {', '.join(sorted(known))}.")
    return [a for a in artifacts if a.name in names]


def reference_sha(manifest: ManifestDocument) -> str | None:
    """The sha256 of the reference the manifest's exports were made from (None: not listed)."""
    ref = manifest.artifact(reference_name(manifest))
    return None if ref is None else ref.sha256


def entry_spec(entry: ArtifactEntry | BundleArtifact) -> ModelSpec | None:
    """The ModelSpec a manifest or bundle entry records (None for documents written before specs were stored)."""
    return entry.model_spec


def prepare_run_dir(run_dir: Path, option: str = "directory") -> Path:
    """`run_dir`, created if missing; a file or an unwritable folder is a one-line error naming `option`."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{option} {run_dir} is a file; pass a directory.")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create {run_dir}: {exc.strerror}; choose another {option}.") from exc
    if not os.access(run_dir, os.W_OK):
        raise RunDirError(f"{run_dir} is not writable; choose another {option}.")
    return run_dir
