"""Device bundles: the artifacts of a run plus golden inputs and the desktop's outputs, checked by sha256.

`build_bundle` writes a folder (or a `.tar.gz` holding one folder):

    bundle.json              what is inside: source run, desktop environment, artifacts with their
                             I/O specs and tolerances, and the sha256 of every other file
    manifest.json            the run's manifest, reduced to the bundled artifacts (so `edgekit bench`
    train.json               and `edgekit report` work on the folder, as on a run directory)
    exports/…                the artifacts, at the same paths as in the run
    golden/inputs.npy        float32 [N, 28, 28, 1]: the last N MNIST test images
    golden/labels.npy        int64 [N]
    expected/<artifact>.npy  float32 [N, classes]: each artifact's probabilities, computed on the
                             desktop with the artifact's own runtime

`verify_bundle` checks every sha256 first, runs the golden inputs through every artifact whose
runtime is installed, and compares with the expected outputs (`tolerance_for` documents the limits).
Archives are extracted with `safe_extract`, which refuses absolute paths, `..`, links and devices.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Final

import numpy as np

from exporters.files import atomic_path, ensure_dir, sha256_file, write_json_atomic
from toolkit.errors import ToolkitError

SCHEMA_VERSION: Final = 1
KIND: Final = "edgekit-bundle"
BUNDLE_JSON: Final = "bundle.json"
VERIFY_JSON: Final = "verify.json"
INPUTS: Final = "golden/inputs.npy"
LABELS: Final = "golden/labels.npy"
EXPECTED_DIR: Final = "expected"
TAR_SUFFIXES: Final = (".tar.gz", ".tgz")
DEFAULT_GOLDEN: Final = 256
MAX_ARCHIVE_BYTES: Final = 2 << 30  # extracted size limit: bundles are a few MB
MAX_ARCHIVE_MEMBERS: Final = 10_000
# Artifacts `edgekit predict` uses from a run or bundle when --artifact is not given, in order.
PREDICT_PREFERENCE: Final = ("tflite-fp32", "onnx-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8")

FP32_MAX_ABS: Final = 1e-5
FP16_MAX_ABS: Final = 1e-3
DEFAULT_STEP: Final = 1 / 256
# Slack for float rounding when comparing a difference with its limit (a dequantized step is k × scale).
RELATIVE_SLACK: Final = 1e-3

TOLERANCE_DOC: Final = {
    "fp32": f"max |Δp| ≤ {FP32_MAX_ABS:g}: the same float32 graph; another CPU, kernel library or thread count "
    "changes only rounding",
    "fp16": f"max |Δp| ≤ {FP16_MAX_ABS:g}: float16 weights; a runtime may compute in half precision on CPUs with "
    "FP16 arithmetic (ARMv8.2+), where one float16 step near 1.0 is 9.8e-4",
    "int8": "within one quantization step of the output: the output scale in the model (TFLite int8 I/O, or "
    "the ONNX QDQ output's DequantizeLinear), else 1/256 (one step of an 8-bit probability, e.g. "
    "int8-dynamic, whose activations are quantized at run time)",
}


class BundleError(ToolkitError):
    """A bundle is missing, malformed, unsafe to extract or does not match its checksums."""


# -- helpers -----------------------------------------------------------------------------------------
def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(TAR_SUFFIXES)


def archive_stem(path: Path) -> str:
    name = path.name
    for suffix in TAR_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _unsafe_reason(name: str) -> str | None:
    """Why a relative path from a bundle (tar member or bundle.json entry) is unsafe, or None."""
    if not name or name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "has an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "points outside the bundle ('..')"
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _rel_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# -- tolerances --------------------------------------------------------------------------------------
def onnx_output_scale(path: Path) -> float | None:
    """Scale of the DequantizeLinear that produces an ONNX model's output (QDQ models), if any.

    Needs the `onnx` package (desktop); returns None without it or when there is no such node.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    try:
        model = onnx.load(str(path), load_external_data=False)
        graph = model.graph
        output = graph.output[0].name
        node = next((n for n in graph.node if output in n.output), None)
        if node is None or node.op_type != "DequantizeLinear":
            return None
        init = next((i for i in graph.initializer if i.name == node.input[1]), None)
        if init is None:
            return None
        scale = numpy_helper.to_array(init)
        return float(scale) if scale.size == 1 else None
    except Exception:  # a model onnx cannot parse: fall back to the default step
        return None


def tolerance_for(entry: dict[str, Any], model_path: Path | None = None) -> dict[str, Any]:
    """How far an artifact's outputs on another machine may be from the desktop's (see TOLERANCE_DOC).

    Returns:
        `{"kind": "max_abs" | "quantization_step", "max_abs": float, "step": float | None, "basis": str}`.
    """
    precision = str(entry.get("precision", "fp32"))
    if precision == "fp32":
        return {"kind": "max_abs", "max_abs": FP32_MAX_ABS, "step": None, "basis": TOLERANCE_DOC["fp32"]}
    if precision == "fp16":
        return {"kind": "max_abs", "max_abs": FP16_MAX_ABS, "step": None, "basis": TOLERANCE_DOC["fp16"]}
    output = entry.get("output") or {}
    scale = output.get("scale")
    if scale:
        basis = f"one step of the quantized output (scale {scale:.6g} from the model)"
    elif entry.get("format") == "onnx" and model_path is not None and (dq := onnx_output_scale(model_path)):
        scale, basis = dq, f"one step of the output DequantizeLinear (scale {dq:.6g})"
    else:
        scale, basis = DEFAULT_STEP, "1/256: one step of an 8-bit probability (the output carries no scale)"
    return {"kind": "quantization_step", "max_abs": float(scale), "step": float(scale), "basis": basis}


def allowed_diff(tolerance: dict[str, Any]) -> float:
    return float(tolerance["max_abs"]) * (1 + RELATIVE_SLACK)


# -- building ----------------------------------------------------------------------------------------
def build_bundle(
    run_dir: Path | None,
    out: Path,
    *,
    artifact_names: list[str] | None = None,
    golden: int = DEFAULT_GOLDEN,
    force: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write a bundle of `run_dir`'s artifacts to `out` (a folder, or a .tar.gz), atomically.

    Args:
        run_dir: a run directory with manifest.json (made by `edgekit export`); None: runs/latest.
        out: the bundle folder, or a path ending in .tar.gz/.tgz for an archive.
        artifact_names: artifacts to include (default: every non-Keras artifact).
        golden: how many test images (the last `golden` of the MNIST test set).
        force: replace `out` if it exists.
        on_step: called with a short description as each step starts (progress display).

    Returns:
        (the bundle path, bundle.json's content).

    Raises:
        BundleError / RunDirError / DataError: bad arguments, a missing or modified artifact, an
            existing `out` without `force`. Nothing is left under `out` on failure.
    """
    from runtimes.registry import make_runner
    from toolkit import __version__
    from toolkit.run import layout as A
    from toolkit.data.mnist import load_mnist, to_model_input

    step = on_step or (lambda _msg: None)
    run = A.resolve_run_dir(run_dir)
    archive = is_archive(out)
    _check_out(out, archive, force)
    manifest = A.load_manifest(run)
    if artifact_names:
        entries = A.select_artifacts(manifest, artifact_names)
    else:
        entries = [e for e in manifest["artifacts"] if e.get("format") != "keras"]
        if not entries:
            raise BundleError(f"{run} has no exported artifacts to bundle; run `edgekit export {run}` first.")
    for e in entries:
        reason = _unsafe_reason(str(e.get("path", "")))
        if reason:
            raise BundleError(f"{run / A.MANIFEST_JSON} lists artifact {e['name']} with a path that {reason}.")
    sources = [(e, A.verified_path(run, e)) for e in entries]  # sha256 against the manifest
    data = load_mnist()
    n_test = len(data.x_test)
    if not 1 <= golden <= n_test:
        raise BundleError(f"--golden must be between 1 and {n_test} (the test set size), got {golden}.")
    inputs = to_model_input(data.x_test[n_test - golden :])
    labels = data.y_test[n_test - golden :].astype(np.int64)

    from benchmarks.environment import capture_environment

    ensure_dir(out.parent)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        work.chmod(0o755)
        (work / "golden").mkdir()
        (work / EXPECTED_DIR).mkdir()
        np.save(work / INPUTS, inputs, allow_pickle=False)
        np.save(work / LABELS, labels, allow_pickle=False)
        records = []
        for entry, src in sources:
            step(f"bundle: {entry['name']}")
            dst = work / entry["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            if sha256_file(dst) != entry["sha256"]:
                raise BundleError(f"{src} changed while it was copied; run `edgekit bundle` again.")
            with make_runner(dst) as runner:
                probs = runner.infer(inputs)
                backend = runner.backend()
                in_spec, out_spec = runner.input_spec().to_dict(), runner.output_spec().to_dict()
            expected = f"{EXPECTED_DIR}/{entry['name']}.npy"
            np.save(work / expected, probs.astype(np.float32), allow_pickle=False)
            records.append(
                {
                    "name": entry["name"],
                    "path": entry["path"],
                    "format": entry["format"],
                    "precision": entry["precision"],
                    "runtime": entry["runtime"],
                    "backend": backend,
                    "sha256": entry["sha256"],
                    "size_bytes": entry["size_bytes"],
                    "input": entry.get("input") or in_spec,
                    "output": entry.get("output") or out_spec,
                    "tolerance": tolerance_for(entry, dst),
                    "expected": expected,
                    "desktop_accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
                }
            )
        step("bundle: bundle.json")
        names = {e["name"] for e in entries}
        small_manifest = {**manifest, "artifacts": [e for e in manifest["artifacts"] if e["name"] in names]}
        write_json_atomic(work / A.MANIFEST_JSON, small_manifest)
        if (run / A.TRAIN_JSON).is_file():
            shutil.copyfile(run / A.TRAIN_JSON, work / A.TRAIN_JSON)
        files = {rel: {"sha256": sha256_file(work / rel), "size_bytes": (work / rel).stat().st_size}
                 for rel in _rel_files(work)}  # fmt: skip
        doc = {
            "schema_version": SCHEMA_VERSION,
            "kind": KIND,
            "created_utc": A.utc_now(),
            "edgekit_version": __version__,
            "source": {
                "run_dir": str(run.resolve()),
                "run": run.resolve().name,
                "manifest_created_utc": manifest.get("created_utc"),
                "git_sha": manifest.get("git_sha"),
                "training": manifest.get("training"),
                "libraries": manifest.get("libraries"),
            },
            "environment": capture_environment(),
            "golden": {
                "inputs": INPUTS,
                "labels": LABELS,
                "images": golden,
                "shape": list(inputs.shape),
                "dtype": "float32",
                "selection": f"the last {golden} images of the MNIST test set (indices {n_test - golden}-{n_test - 1})",
                "data_source": data.source,
                "data_verified": data.verified,
            },
            "tolerances": dict(TOLERANCE_DOC),
            "artifacts": records,
            "files": files,
        }
        write_json_atomic(work / BUNDLE_JSON, doc)
        for path in work.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)  # atomic writes create 0600 files
        step("bundle: writing")
        _finish(work, out, archive, force)
    except OSError as exc:
        # A full disk or a file-size limit: shutil.copyfile names the *source*, np.save names nothing.
        reason = exc.strerror or _one_line(exc)
        raise BundleError(f"cannot write bundle {out}: {reason}; check free disk space and permissions.") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out, doc


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


def write_tar(folder: Path, dest: Path, top: str) -> None:
    """Write `folder` as a gzipped tar holding `top/…`, reproducibly (fixed owner, mode and time)."""
    mtime = int(time.time())

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = mtime
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    with (
        open(dest, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.add(folder, arcname=top, recursive=False, filter=normalise)
        for path in sorted(folder.rglob("*")):
            arcname = f"{top}/{path.relative_to(folder).as_posix()}"
            tar.add(path, arcname=arcname, recursive=False, filter=normalise)


# -- opening and checking ----------------------------------------------------------------------------
def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a .tar.gz into `dest`, refusing anything but plain files and folders inside it.

    Every member is checked before anything is written: absolute paths, `..` components,
    symbolic and hard links, devices and FIFOs, duplicate names, and more than
    `MAX_ARCHIVE_MEMBERS` members or `MAX_ARCHIVE_BYTES` bytes are refused, naming the member.

    Raises:
        BundleError: the archive is unreadable or holds an unsafe member.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            _check_members(archive, members)
            for m in members:
                target = dest.joinpath(*PurePosixPath(m.name).parts)
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                if src is None:
                    raise BundleError(f"{archive}: member {m.name!r} cannot be read; re-create the bundle.")
                with src, open(target, "xb") as fh:
                    shutil.copyfileobj(src, fh)
    except BundleError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise BundleError(f"cannot extract {archive}: {exc.strerror or exc} ({exc.filename}).") from exc
        raise BundleError(
            f"{archive} is not a readable .tar.gz bundle ({_one_line(exc)}); copy it again or re-create it "
            "with `edgekit bundle`."
        ) from exc


def _check_members(archive: Path, members: list[tarfile.TarInfo]) -> None:
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise BundleError(f"{archive} holds {len(members)} members, more than a bundle ever has; refused.")
    total = 0
    seen: set[str] = set()
    for m in members:
        reason = _unsafe_reason(m.name)
        if reason is None and m.issym():
            reason = f"is a symbolic link (to {m.linkname!r})"
        elif reason is None and m.islnk():
            reason = f"is a hard link (to {m.linkname!r})"
        elif reason is None and not (m.isfile() or m.isdir()):
            reason = "is a device, FIFO or other special file"
        if reason:
            raise BundleError(
                f"{archive}: member {m.name!r} {reason}; bundles hold only plain files and folders, so the "
                "archive was refused. Re-create it with `edgekit bundle`."
            )
        key = PurePosixPath(m.name).as_posix()
        if key in seen and not m.isdir():
            raise BundleError(f"{archive}: member {m.name!r} appears twice; refused. Re-create the bundle.")
        seen.add(key)
        total += m.size
        if total > MAX_ARCHIVE_BYTES:
            raise BundleError(f"{archive} would extract to more than {MAX_ARCHIVE_BYTES >> 30} GiB; refused.")


@contextlib.contextmanager
def open_bundle(path: Path) -> Iterator[Path]:
    """Yield the folder holding bundle.json: `path` itself, or a safe extraction of a .tar.gz."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"bundle {path} does not exist; pass a folder or .tar.gz made by `edgekit bundle`.")
    if path.is_dir():
        if not (path / BUNDLE_JSON).is_file():
            raise BundleError(f"{path} has no {BUNDLE_JSON}; pass a folder or .tar.gz made by `edgekit bundle`.")
        yield path
        return
    if not is_archive(path):
        raise BundleError(f"{path} is neither a bundle folder nor a .tar.gz; pass what `edgekit bundle` wrote.")
    with tempfile.TemporaryDirectory(prefix="edgekit-bundle-") as tmp:
        dest = Path(tmp)
        safe_extract(path, dest)
        if (dest / BUNDLE_JSON).is_file():
            yield dest
            return
        tops = list(dest.iterdir())
        if len(tops) == 1 and tops[0].is_dir() and (tops[0] / BUNDLE_JSON).is_file():
            yield tops[0]
            return
        raise BundleError(f"{path} holds no {BUNDLE_JSON}; pass a .tar.gz made by `edgekit bundle`.")


def load_bundle(root: Path, label: Path | None = None) -> dict[str, Any]:
    """Read and sanity-check bundle.json. `label` is how the bundle is named in messages."""
    from toolkit.run.layout import read_json
    from toolkit.errors import RunDirError

    where = label or root
    try:
        doc = read_json(root / BUNDLE_JSON)
    except RunDirError as exc:
        raise BundleError(f"{BUNDLE_JSON} in {where} is not valid JSON; copy the bundle again.") from exc
    files, artifacts = doc.get("files"), doc.get("artifacts")
    golden = doc.get("golden")
    if (
        doc.get("kind") != KIND
        or doc.get("schema_version") != SCHEMA_VERSION
        or not isinstance(files, dict)
        or not isinstance(artifacts, list)
        or not isinstance(golden, dict)
    ):
        raise BundleError(
            f"{BUNDLE_JSON} in {where} is not an edgekit bundle (schema_version {SCHEMA_VERSION}); "
            "re-create it with `edgekit bundle`."
        )
    for rel in files:
        reason = _unsafe_reason(str(rel))
        if reason:
            raise BundleError(f"{BUNDLE_JSON} in {where} lists {rel!r}, which {reason}; refused.")
    needed = [golden.get("inputs"), golden.get("labels")]
    for a in artifacts:
        if not isinstance(a, dict) or not {"name", "path", "expected", "tolerance"} <= a.keys():
            raise BundleError(f"{BUNDLE_JSON} in {where} has a malformed artifact entry; re-create the bundle.")
        needed += [a["path"], a["expected"]]
    missing = [str(n) for n in needed if n not in files]
    if missing:
        raise BundleError(f"{BUNDLE_JSON} in {where} has no sha256 for {', '.join(missing)}; re-create the bundle.")
    return doc


def check_file(root: Path, rel: str, meta: dict[str, Any], label: Path | None = None) -> Path:
    """The bundle file `rel`, after checking it is a plain file inside the bundle with the listed sha256."""
    where = label or root
    path = root / rel
    if path.is_symlink():
        raise BundleError(f"{rel} in {where} is a symbolic link; bundles hold only plain files. Copy it again.")
    if not path.is_file():
        raise BundleError(f"{rel} in {where} is listed in {BUNDLE_JSON} but missing; copy the bundle again.")
    if path.resolve() != root.resolve() / PurePosixPath(rel):
        raise BundleError(f"{rel} in {where} lies outside the bundle (a linked folder); copy the bundle again.")
    if sha256_file(path) != meta.get("sha256"):
        raise BundleError(
            f"{rel} in {where} does not match its sha256 in {BUNDLE_JSON} (modified or corrupt); "
            "copy the bundle again from the desktop."
        )
    return path


def check_files(root: Path, doc: dict[str, Any], label: Path | None = None) -> None:
    """Check the sha256 of every file listed in bundle.json (the first mismatch raises, naming the file)."""
    for rel, meta in sorted(doc["files"].items()):
        check_file(root, rel, meta if isinstance(meta, dict) else {}, label)


# -- verifying ---------------------------------------------------------------------------------------
def _load_array(path: Path, rel: str, label: Path) -> np.ndarray:
    try:
        arr: np.ndarray = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BundleError(f"{rel} in {label} is not a valid .npy array ({_one_line(exc)}).") from exc
    return arr


def verify_bundle(
    root: Path, doc: dict[str, Any], label: Path, on_step: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the golden inputs through every artifact whose runtime is installed; compare with the desktop.

    Call `check_files` first. Returns the verify report (see `edgekit verify --help`). An artifact
    passes when its max |Δp| against the expected outputs is within its tolerance.

    Raises:
        BundleError: malformed golden data, or no artifact can run here.
    """
    from benchmarks.environment import capture_environment
    from runtimes.errors import ModelLoadError, RuntimeUnavailableError
    from runtimes.registry import make_runner, runner_class
    from toolkit import __version__
    from toolkit.run.layout import utc_now

    step = on_step or (lambda _msg: None)
    golden = doc["golden"]
    inputs = _load_array(root / golden["inputs"], golden["inputs"], label)
    labels = _load_array(root / golden["labels"], golden["labels"], label)
    if inputs.dtype != np.float32 or inputs.ndim != 4 or len(inputs) == 0 or labels.shape != (len(inputs),):
        raise BundleError(
            f"golden data in {label} has inputs {inputs.dtype}{list(inputs.shape)} and labels {list(labels.shape)}; "
            "expected float32 [N, 28, 28, 1] and [N]. Re-create the bundle."
        )
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for art in doc["artifacts"]:
        name = str(art["name"])
        step(f"verify: {name}")
        expected = _load_array(root / art["expected"], art["expected"], label)
        row: dict[str, Any] = {
            "artifact": name,
            "format": art.get("format"),
            "precision": art.get("precision"),
            "runtime": art.get("runtime"),
            "tolerance": art["tolerance"],
        }
        started = time.perf_counter()
        try:
            runner = make_runner(root / art["path"])
            version = runner_class(root / art["path"]).runtime_version()
            with runner:
                probs = runner.infer(inputs)
                row["backend"] = runner.backend()
        except RuntimeUnavailableError as exc:
            skipped.append({"artifact": name, "reason": str(exc)})
            continue
        except ModelLoadError as exc:
            results.append({**row, "status": "error", "passed": False, "error": str(exc)})
            continue
        row["runtime_version"] = version
        row["seconds"] = round(time.perf_counter() - started, 3)
        if probs.shape != expected.shape:
            results.append(
                {
                    **row,
                    "status": "error",
                    "passed": False,
                    "error": f"output shape {list(probs.shape)} differs from the expected {list(expected.shape)}",
                }
            )
            continue
        diff = np.abs(probs.astype(np.float64) - expected.astype(np.float64))
        limit = allowed_diff(art["tolerance"])
        max_abs = float(diff.max())
        passed = max_abs <= limit
        step_size = art["tolerance"].get("step")
        results.append(
            {
                **row,
                "status": "pass" if passed else "fail",
                "passed": passed,
                "max_abs_diff": max_abs,
                "mean_abs_diff": float(diff.mean()),
                "max_diff_steps": None if not step_size else round(max_abs / float(step_size), 3),
                "values_over_tolerance": int((diff > limit).sum()),
                "accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
                "desktop_accuracy": float(np.mean(expected.argmax(axis=1) == labels)),
                "agreement": float(np.mean(probs.argmax(axis=1) == expected.argmax(axis=1))),
            }
        )
    if not results:
        reasons = "; ".join(f"{s['artifact']}: {s['reason']}" for s in skipped)
        raise BundleError(f"none of the artifacts in {label} can run on this machine ({reasons})")
    env = doc.get("environment") or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "created_utc": utc_now(),
        "edgekit_version": __version__,
        "bundle": {
            "path": str(label),
            "created_utc": doc.get("created_utc"),
            "source": doc.get("source"),
            "desktop": {k: env.get(k) for k in ("cpu_model", "machine", "os", "python", "runtime_versions")},
        },
        "environment": capture_environment(),
        "golden": {"images": len(inputs)},
        "tolerances": doc.get("tolerances", TOLERANCE_DOC),
        "results": results,
        "skipped": skipped,
        "passed": all(r["passed"] for r in results),
    }


def default_verify_path(bundle: Path) -> Path:
    """verify.json inside a bundle folder; `<name>.verify.json` beside a .tar.gz."""
    if bundle.is_dir():
        return bundle / VERIFY_JSON
    return bundle.parent / f"{archive_stem(bundle)}.verify.json"


# -- models for `edgekit predict` --------------------------------------------------------------------
@contextlib.contextmanager
def model_source(model: Path, artifact: str | None) -> Iterator[tuple[Path, str | None, str | None]]:
    """Resolve MODEL for `edgekit predict` to a model file whose sha256 has been checked.

    MODEL is a model file (`.tflite`/`.onnx`), a run directory, a bundle folder or a bundle .tar.gz.
    Yields (model file, artifact name or None, a note for the user or None).
    """
    model = Path(model)
    if model.is_dir() or is_archive(model):
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
