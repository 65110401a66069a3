"""Run-directory layout, file names and the manifest that records every artifact and its sha256."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from runtimes.files import sha256_file
from toolkit.errors import RunDirError
from toolkit.version import __version__

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec
    from toolkit.run.documents import Document

D = TypeVar("D", bound="Document")

SCHEMA_VERSION = 1
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
REFERENCE_NAME = "keras-fp32"

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
    "typer",
)


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def this_cpu() -> dict[str, Any]:
    """This machine's instruction-set class and features, as documents record them (`CpuInfo`)."""
    from benchmarks.cpu import detect_cpu

    return detect_cpu().to_dict()


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
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RunDirError(f"{path} does not exist.") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc}); re-run the step that writes it.") from exc
    if not isinstance(data, dict):
        raise RunDirError(f"{path} does not hold a JSON object; re-run the step that writes it.")
    return data


def int8_target(manifest: dict[str, Any]) -> str:
    """The CPU class the run's int8 exports target (`exporters.int8_recipe`); older manifests: "portable"."""
    return str(manifest.get("int8_target") or "portable")


def load_manifest(run_dir: Path) -> dict[str, Any]:
    path = require_file(run_dir, MANIFEST_JSON, "run `edgekit export` first")
    manifest = read_json(path)
    if manifest.get("schema_version") != SCHEMA_VERSION or not isinstance(manifest.get("artifacts"), list):
        raise RunDirError(
            f"{path} is not an edgekit manifest (schema_version {SCHEMA_VERSION}); re-run `edgekit export`."
        )
    from toolkit.run.documents import ManifestDocument, parse_document

    parse_document(manifest, ManifestDocument, source=path)  # every field typed-checked, one-line error
    return manifest


def reference_entry(run_dir: Path) -> dict[str, Any]:
    """The manifest entry for the trained Keras model."""
    model = require_file(run_dir, MODEL_FILE, "run `edgekit train` first (it writes model.keras)")
    return {
        "name": REFERENCE_NAME,
        "path": MODEL_FILE,
        "format": "keras",
        "precision": "fp32",
        "runtime": "keras",
        "size_bytes": model.stat().st_size,
        "sha256": sha256_file(model),
    }


def write_manifest(run_dir: Path, entries: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    """Write manifest.json, merging with entries already listed (same name: replaced)."""
    existing: list[dict[str, Any]] = []
    if (run_dir / MANIFEST_JSON).exists():
        existing = [e for e in load_manifest(run_dir)["artifacts"] if e["name"] not in {n["name"] for n in entries}]
    formats = ["keras", "tflite", "onnx"]
    precisions = ["fp32", "fp16", "int8-dynamic", "int8", "int16x8", "int4-weights", "int8-mixed"]

    def rank(e: dict[str, Any]) -> tuple[int, int, str]:
        fmt, prec = e.get("format", ""), e.get("precision", "")
        return (
            formats.index(fmt) if fmt in formats else 9,
            precisions.index(prec) if prec in precisions else 9,
            e["name"],
        )

    artifacts = sorted(existing + entries, key=rank)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created_utc": utc_now(),
        "edgekit_version": __version__,
        "git_sha": git_sha(),
        "libraries": library_versions(),
        **extra,
        "artifacts": artifacts,
    }
    from toolkit.run.documents import ManifestDocument

    save_document(run_dir / MANIFEST_JSON, manifest, ManifestDocument)
    return manifest


def select_artifacts(manifest: dict[str, Any], names: list[str] | None) -> list[dict[str, Any]]:
    artifacts: list[dict[str, Any]] = manifest["artifacts"]
    if not names:
        return artifacts
    known = {a["name"] for a in artifacts}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RunDirError(f"unknown artifact {', '.join(unknown)}; this run has {', '.join(sorted(known))}.")
    return [a for a in artifacts if a["name"] in names]


def verified_path(run_dir: Path, entry: dict[str, Any]) -> Path:
    """The artifact's file, after checking it exists and matches the manifest's sha256."""
    path: Path = run_dir / str(entry["path"])
    if not path.is_file():
        raise RunDirError(f"{path} is listed in the manifest but missing; re-run `edgekit export`.")
    if sha256_file(path) != entry["sha256"]:
        raise RunDirError(
            f"{path} does not match the sha256 in {MANIFEST_JSON} (modified or corrupt); re-run `edgekit export`."
        )
    return path


def reference_sha(manifest: dict[str, Any]) -> str | None:
    """The sha256 of the Keras reference the manifest's exports were made from (None: not listed)."""
    ref = next((e for e in manifest["artifacts"] if e["name"] == REFERENCE_NAME), None)
    return None if ref is None else str(ref["sha256"])


def entry_spec(entry: dict[str, Any]) -> ModelSpec | None:
    """The ModelSpec a manifest entry records (None for manifests written before specs were stored)."""
    data = entry.get("model_spec")
    if data is None:
        return None
    from runtimes.spec import ModelSpec

    return ModelSpec.from_dict(data)


def save_document(path: Path, data: dict[str, Any], kind: type[D]) -> D:
    """Validate `data` as a `kind` document and write it atomically: every run document goes through here."""
    from toolkit.run.documents import parse_document, write_document

    doc = parse_document(data, kind, source=path)
    write_document(path, doc)
    return doc


def load_document(path: Path, kind: type[D]) -> D:
    """Read and validate a run document (one-line `DocumentError` naming the file and the first problem)."""
    from toolkit.run.documents import load_document as load

    return load(path, kind)


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


def read_document(path: Path, kind: type[Document]) -> dict[str, Any]:
    """A run document as a plain dict, after the same validation as `load_document` (one-line errors)."""
    from toolkit.run.documents import dump_document

    return dump_document(load_document(path, kind))


def listed_reference(run_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's Keras reference entry, which parity, diagnose and mcu compare against."""
    entry: dict[str, Any] | None = next((e for e in manifest["artifacts"] if e["name"] == REFERENCE_NAME), None)
    if entry is None:
        raise RunDirError(f"{run_dir / MANIFEST_JSON} lists no {REFERENCE_NAME} reference; re-run `edgekit export`.")
    return entry
