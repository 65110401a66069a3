"""The bundle format: what a bundle folder (or a `.tar.gz` holding one) contains, and checking it.

    bundle.json              what is inside: source run, desktop environment, artifacts with their
                             I/O specs and tolerances, and the sha256 of every other file
    manifest.json            the run's manifest, reduced to the bundled artifacts (so `edgekit bench`
    train.json               and `edgekit report` work on the folder, as on a run directory)
    exports/…                the artifacts, at the same paths as in the run
    golden/inputs.npy        float32 [N, *model input]: test rows of the run's data (images of any
                             H×W×C, or vectors) in the model's input shape and value convention
    golden/labels.npy        int64 [N]: class labels (classification models)
    golden/targets.npy       float32 [N, *model output]: regression targets (output kind "values",
                             instead of labels)
    expected/<artifact>.npy  float32 [N, *model output]: each artifact's outputs, computed on the
                             desktop with the artifact's own runtime

A model with several inputs or outputs (`golden.feeds` set; the same schema_version, as run documents add
fields without bumping it; an edgekit from before this refuses such a bundle in one line, finding no
`golden/inputs.npy`) has files by tensor name, which bundle.json maps:

    golden/inputs/<input>.npy          float32: one per input (golden.feeds: name → path, shape, dtype)
    golden/truths/<output>.npy         one per output (golden.truths): int64 labels (probabilities, logits) or
                                       class indices, float32 values or boxes
    expected/<artifact>/<output>.npy   each artifact's output, by name (artifacts[].outputs: name, kind,
                                       expected, tolerance); float32, int64 for class indices

A tensor whose name is not a plain file name (or clashes with another when case is ignored) is stored as
`<index>_<cleaned name>.npy`; bundle.json says which file holds which name.

`open_bundle` yields the folder (extracting an archive safely), `load_bundle` checks bundle.json's
structure and `check_files` every sha256. Building is `build.py`'s concern, running `verify.py`'s.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Final

import numpy as np

from runtimes.errors import one_line
from runtimes.files import sha256_file
from toolkit.bundles.archive import archive_stem, is_archive, safe_extract, unsafe_reason
from toolkit.bundles.errors import BundleError

SCHEMA_VERSION: Final = 1
KIND: Final = "edgekit-bundle"
BUNDLE_JSON: Final = "bundle.json"
VERIFY_JSON: Final = "verify.json"
INPUTS: Final = "golden/inputs.npy"
LABELS: Final = "golden/labels.npy"
TARGETS: Final = "golden/targets.npy"
EXPECTED_DIR: Final = "expected"
FEEDS_DIR: Final = "golden/inputs"
TRUTHS_DIR: Final = "golden/truths"
_PLAIN_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
MADE_BY: Final = "pass a folder or .tar.gz made by `edgekit bundle`"


def check_bundle_path(path: Path) -> None:
    """Refuse a `path` that cannot be a bundle: missing, a folder without bundle.json, or not a .tar.gz."""
    if not path.exists():
        raise BundleError(f"bundle {path} does not exist; {MADE_BY}.")
    if path.is_dir():
        if not (path / BUNDLE_JSON).is_file():
            raise BundleError(f"{path} has no {BUNDLE_JSON}; {MADE_BY}.")
    elif not is_archive(path):
        raise BundleError(f"{path} is neither a bundle folder nor a .tar.gz; pass what `edgekit bundle` wrote.")


@contextlib.contextmanager
def open_bundle(path: Path) -> Iterator[Path]:
    """Yield the folder holding bundle.json: `path` itself, or a safe extraction of a .tar.gz."""
    path = Path(path)
    check_bundle_path(path)
    if path.is_dir():
        yield path
        return
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
    from toolkit.errors import RunDirError
    from toolkit.run.layout import read_json

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
        reason = unsafe_reason(str(rel))
        if reason:
            raise BundleError(f"{BUNDLE_JSON} in {where} lists {rel!r}, which {reason}; refused.")
    several = is_several(doc)
    needed = _golden_files(golden, several, where)
    for a in artifacts:
        needed += _artifact_files(a, several, where)
    missing = [str(n) for n in needed if n not in files]
    if missing:
        raise BundleError(f"{BUNDLE_JSON} in {where} has no sha256 for {', '.join(missing)}; re-create the bundle.")
    return doc


def is_several(doc: dict[str, Any]) -> bool:
    """True for a bundle of a model with several inputs or outputs (golden rows by tensor name)."""
    golden = doc.get("golden")
    return isinstance(golden, dict) and golden.get("feeds") is not None


def _golden_files(golden: dict[str, Any], several: bool, where: Path) -> list[Any]:
    """The golden files bundle.json names (checked for being listed with a sha256 by the caller)."""
    if not several:
        return [golden.get("inputs")] + [golden[k] for k in ("labels", "targets") if golden.get(k)]
    parts = [golden.get("feeds"), golden.get("truths")]
    if not all(isinstance(p, dict) and p and all(isinstance(t, dict) for t in p.values()) for p in parts):
        raise BundleError(f"{BUNDLE_JSON} in {where} has no golden feeds or truths by name; re-create the bundle.")
    return [t.get("path") for p in parts if isinstance(p, dict) for t in p.values()]


def _artifact_files(art: Any, several: bool, where: Path) -> list[Any]:
    """An artifact entry's files (the model, the desktop's outputs), after checking the entry's keys."""
    malformed = BundleError(f"{BUNDLE_JSON} in {where} has a malformed artifact entry; re-create the bundle.")
    if not several:
        if not isinstance(art, dict) or not {"name", "path", "expected", "tolerance"} <= art.keys():
            raise malformed
        return [art["path"], art["expected"], *([art["weights"]] if art.get("weights") else [])]
    outputs = art.get("outputs") if isinstance(art, dict) else None
    if not isinstance(art, dict) or not {"name", "path"} <= art.keys() or not isinstance(outputs, list) or not outputs:
        raise malformed
    files = [art["path"], *([art["weights"]] if art.get("weights") else [])]
    for out in outputs:
        if not isinstance(out, dict) or not {"name", "kind", "expected", "tolerance"} <= out.keys():
            raise malformed
        files += [out["expected"]] + ([out["expected_builtin"]] if out.get("expected_builtin") else [])
    return files


def tensor_files(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Tensor name → the file stem its golden or expected array is saved under: the name itself when it is a
    plain file name unique without case (case-insensitive file systems), else `<index>_<cleaned name>`."""
    folded = [n.casefold() for n in names]
    stems = {}
    for i, name in enumerate(names):
        plain = _PLAIN_NAME.fullmatch(name) is not None and folded.count(name.casefold()) == 1
        stems[name] = name if plain else f"{i}_{re.sub(r'[^A-Za-z0-9_.-]', '_', name)[:48]}"
    return stems


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


def load_array(path: Path, rel: str, label: Path) -> np.ndarray:
    """A bundle's .npy file (never unpickling), or a one-line BundleError naming it."""
    try:
        arr: np.ndarray = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BundleError(f"{rel} in {label} is not a valid .npy array ({one_line(exc, 200)}).") from exc
    return arr


def rel_files(root: Path) -> list[str]:
    """Every file below `root`, as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def default_verify_path(bundle: Path) -> Path:
    """verify.json inside a bundle folder; `<name>.verify.json` beside a .tar.gz."""
    if bundle.is_dir():
        return bundle / VERIFY_JSON
    return bundle.parent / f"{archive_stem(bundle)}.verify.json"
