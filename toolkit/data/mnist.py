"""MNIST loading (shipped .npz, Keras cache, any Keras-format .npz or IDX files) with SHA-256 checks."""

from __future__ import annotations

import gzip
import hashlib
import os
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from runtimes.errors import one_line
from toolkit.errors import DataError

SHIPPED: Final = "shipped"
KERAS_CACHE: Final = "keras-cache"

KEYS: Final[tuple[str, ...]] = ("x_train", "y_train", "x_test", "y_test")

MNIST_SHA256: Final[Mapping[str, str]] = MappingProxyType(
    {
        "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
        "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
        "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
        "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
    }
)
"""SHA-256 of each reference array's raw bytes (`arr.tobytes()`, C order)."""

IMAGE_SIDE: Final = 28
NUM_CLASSES: Final = 10

# IDX file names per array: the standard name first, then the common dotted variant.
_IDX_NAMES: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
        "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
        "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
        "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
    }
)
_IDX_IMAGES_MAGIC: Final = 0x00000803  # unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC: Final = 0x00000801  # unsigned bytes, 1 dimension
_ZIP_MAGICS: Final = (b"PK\x03\x04", b"PK\x05\x06")
# Low-level failures of reading a file that mean "bad input", re-raised as DataError.
_READ_ERRORS: Final = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)

_U8 = npt.NDArray[np.uint8]
_F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class Mnist:
    """The four MNIST arrays, where they came from, and whether they match `MNIST_SHA256`.

    The arrays are read-only: `verified` describes them as loaded.
    """

    x_train: _U8
    y_train: _U8
    x_test: _U8
    y_test: _U8
    source: str
    verified: bool
    warnings: tuple[str, ...] = ()


def load_mnist(source: str | Path | None = None, *, allow_unverified: bool = False) -> Mnist:
    """Load MNIST, validate its layout and verify it against `MNIST_SHA256`.

    Args:
        source: Where to load from. None or "shipped": the copy packaged in
            `toolkit/data/assets/mnist.npz`. "keras-cache": `~/.keras/datasets/mnist.npz`, or
            `$KERAS_HOME/datasets/mnist.npz` when KERAS_HOME is set. Otherwise a path (a `Path` is
            always a path, even if named "shipped") to a Keras-format `.npz` file (keys x_train,
            y_train, x_test, y_test), or to a directory holding the four MNIST IDX files
            (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
            `t10k-labels-idx1-ubyte`, each raw or `.gz`; the dotted names such as
            `train-images.idx3-ubyte` are accepted too).
        allow_unverified: Accept arrays whose checksums do not match the reference MNIST. They
            must still be uint8 with shapes (N, 28, 28) / (N,) and labels 0-9. The result then
            has `verified=False` and a message in `warnings` naming the mismatched arrays.

    Returns:
        The arrays (read-only uint8) with a description of their source.

    Raises:
        DataError: The source is missing, unreadable or malformed, or its checksums do not match
            and `allow_unverified` is False. The message is one line and names the file.
    """
    arrays, origins, description = _read_source(source)
    _validate(arrays, origins, description)
    mismatched = [key for key in KEYS if _sha256(arrays[key]) != MNIST_SHA256[key]]
    warnings: tuple[str, ...] = ()
    if mismatched:
        names = ", ".join(mismatched)
        if not allow_unverified:
            raise DataError(
                f"MNIST from {description} does not match the reference checksums ({names}); use the "
                "shipped data (the default), or pass --allow-unverified to accept other data"
            )
        warnings = (f"MNIST from {description} is unverified: {names} do not match the reference checksums",)
    for arr in arrays.values():
        arr.flags.writeable = False
    return Mnist(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        source=description,
        verified=not mismatched,
        warnings=warnings,
    )


def _read_source(source: str | Path | None) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
    """The four arrays from `source` (see `load_mnist`), where each came from, and a description of the source."""
    if source is None or (isinstance(source, str) and source == SHIPPED):
        ref = resources.files("toolkit.data") / "assets" / "mnist.npz"
        with resources.as_file(ref) as shipped:
            if not shipped.is_file():
                raise DataError(f"the shipped MNIST file {shipped} is missing; reinstall edgekit")
            arrays, origins = _read_npz(shipped)
        description = f"shipped ({shipped})"
    elif isinstance(source, str) and source == KERAS_CACHE:
        cache = _keras_cache_path()
        if not cache.is_file():
            raise DataError(
                f"Keras MNIST cache {cache} not found; expected the file written by "
                "keras.datasets.mnist.load_data() (set KERAS_HOME if the cache is elsewhere), "
                "or use the shipped data"
            )
        arrays, origins = _read_npz(cache)
        description = f"keras-cache ({cache})"
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            arrays, origins = _read_idx_dir(path)
            description = f"IDX files in {path}"
        elif not path.exists():
            raise DataError(
                f"MNIST source {path} does not exist; expected a Keras-format .npz file, a directory "
                f"of MNIST IDX files, '{SHIPPED}' or '{KERAS_CACHE}'"
            )
        elif path.is_file() and path.suffix.lower() == ".npz":
            arrays, origins = _read_npz(path)
            description = str(path)
        else:
            raise DataError(
                f"MNIST source {path} is neither a .npz file nor a directory; expected a Keras-format "
                "MNIST .npz file or a directory holding the four MNIST IDX files"
            )

    return arrays, origins, description


def to_model_input(images: npt.NDArray[np.uint8]) -> _F32:
    """Turn uint8 images into the model's input layout.

    Args:
        images: uint8 pixels, shape [N, 28, 28] (or anything with N*784 elements).

    Returns:
        float32 array [N, 28, 28, 1] with values in [0, 1] (pixels divided by 255).
    """
    # Same values as `.astype("float32") / 255` (a float32 division); the scalar's type keeps mypy exact.
    return images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE, 1).astype(np.float32) / np.float32(255)


def one_hot(labels: npt.ArrayLike, num_classes: int = NUM_CLASSES) -> _F32:
    """One-hot encode integer labels.

    Args:
        labels: Integer class labels, shape [N].
        num_classes: Number of classes (columns).

    Returns:
        float32 array [N, num_classes] with a single 1.0 per row.

    Raises:
        ValueError: `labels` is not one-dimensional or holds a value outside [0, num_classes).
    """
    idx = np.asarray(labels)
    if idx.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {idx.shape}")
    if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= num_classes):
        raise ValueError(f"labels must be integers in [0, {num_classes})")
    out = np.zeros((idx.shape[0], num_classes), dtype=np.float32)
    out[np.arange(idx.shape[0]), idx] = 1.0
    return out


def _keras_cache_path() -> Path:
    keras_home = os.environ.get("KERAS_HOME")
    base = Path(keras_home).expanduser() if keras_home else Path.home() / ".keras"
    return base / "datasets" / "mnist.npz"


def _sha256(arr: np.ndarray) -> str:
    # Hash the buffer in place: same bytes as arr.tobytes() for a C-contiguous array, without a copy.
    return hashlib.sha256(np.ascontiguousarray(arr).data).hexdigest()


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read the four arrays from a Keras-format .npz, never unpickling."""
    expected = "a Keras-format MNIST .npz (zip of x_train, y_train, x_test, y_test .npy arrays)"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {one_line(exc)}") from exc
    if head not in _ZIP_MAGICS:
        raise DataError(f"{path} is not a zip archive; expected {expected}")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in KEYS if key not in npz.files]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)}; expected {expected}")
            for key in KEYS:
                try:
                    arrays[key] = npz[key]
                except ValueError as exc:
                    if "pickle" in str(exc):
                        raise DataError(
                            f"{path} [{key}] holds Python objects (pickled data), which edgekit never "
                            "loads; expected a uint8 array"
                        ) from exc
                    raise
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise DataError(f"{path} is corrupt or truncated ({one_line(exc)}); expected {expected}") from exc
    return arrays, {key: f"{path} [{key}]" for key in KEYS}


def _read_idx_dir(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read the four IDX files (raw or gzipped, standard or dotted names) from a directory."""
    arrays: dict[str, np.ndarray] = {}
    origins: dict[str, str] = {}
    for key in KEYS:
        standard, dotted = _IDX_NAMES[key]
        candidates = [directory / name for base in (standard, dotted) for name in (base, base + ".gz")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DataError(
                f"MNIST IDX directory {directory} has no {standard} (nor {standard}.gz, {dotted} or "
                f"{dotted}.gz); expected the four files {', '.join(n for n, _ in _IDX_NAMES.values())}"
            )
        magic = _IDX_LABELS_MAGIC if key.startswith("y") else _IDX_IMAGES_MAGIC
        arrays[key] = _read_idx(found, magic)
        origins[key] = str(found)
    return arrays, origins


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse one IDX file of unsigned bytes; validate its magic, dims and payload length."""
    ndim = magic & 0xFF
    kind = f"MNIST IDX file of {'images' if ndim == 3 else 'labels'} (magic 0x{magic:08x})"
    gzipped = path.suffix.lower() == ".gz"
    try:
        if gzipped:
            with gzip.open(path, "rb") as gz:
                data = gz.read()
        else:
            data = path.read_bytes()
    except gzip.BadGzipFile as exc:
        raise DataError(f"{path} is not gzip data ({one_line(exc)}); expected a gzipped {kind}") from exc
    except _READ_ERRORS as exc:
        what = "gzip data is corrupt or truncated" if gzipped else "cannot be read"
        raise DataError(f"{path}: {what} ({one_line(exc)}); expected an {kind}") from exc
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{path} is too short ({len(data)} bytes) for an IDX header; expected an {kind}")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"{path} has IDX magic 0x{found:08x}; expected an {kind}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    need = 1
    for dim in dims:
        need *= dim
    payload = len(data) - header_len
    if payload != need:
        raise DataError(
            f"{path} has {payload} payload bytes but its header dims {dims} need {need}; expected a complete {kind}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def _validate(arrays: Mapping[str, np.ndarray], origins: Mapping[str, str], description: str) -> None:
    """Check dtypes, shapes, matching counts and label range; raise DataError on the first problem."""
    for key in KEYS:
        arr = arrays[key]
        if arr.dtype != np.uint8:
            raise DataError(f"{origins[key]} has dtype {arr.dtype}; expected uint8")
        is_images = key.startswith("x")
        expected = f"(N, {IMAGE_SIDE}, {IMAGE_SIDE})" if is_images else "(N,)"
        good = arr.ndim == 3 and arr.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE) if is_images else arr.ndim == 1
        if not good or arr.shape[0] == 0:
            raise DataError(f"{origins[key]} has shape {arr.shape}; expected {expected} with N >= 1")
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(images) != len(labels):
            raise DataError(
                f"MNIST from {description}: x_{split} has {len(images)} images but y_{split} has "
                f"{len(labels)} labels; expected the same count"
            )
        top = int(labels.max())
        if top >= NUM_CLASSES:
            raise DataError(f"{origins[f'y_{split}']} holds label {top}; expected labels 0-{NUM_CLASSES - 1}")
