"""Tests for toolkit.data.mnist: MNIST loading from every source, validation, checksums and helpers."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtimes.errors import EdgekitError
from toolkit.data.mnist import (
    KEYS,
    MNIST_SHA256,
    Mnist,
    load_mnist,
    one_hot,
    to_model_input,
)
from toolkit.errors import DataError

SHIPPED_FILE = Path(__file__).resolve().parents[1] / "toolkit" / "data" / "assets" / "mnist.npz"

STANDARD_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
DOTTED_NAMES = {
    "x_train": "train-images.idx3-ubyte",
    "y_train": "train-labels.idx1-ubyte",
    "x_test": "t10k-images.idx3-ubyte",
    "y_test": "t10k-labels.idx1-ubyte",
}


# ---------------------------------------------------------------------------- helpers and fixtures


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """Serialise a uint8 array as an IDX file (big-endian magic and dims, then the raw bytes)."""
    if magic is None:
        magic = 0x00000800 | arr.ndim
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_idx(path: Path, arr: np.ndarray, magic: int | None = None) -> Path:
    data = idx_bytes(arr, magic)
    path.write_bytes(gzip.compress(data, compresslevel=1) if path.name.endswith(".gz") else data)
    return path


def write_idx_dir(directory: Path, arrays: Mapping[str, np.ndarray], names: Mapping[str, str], gz: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key, name in names.items():
        write_idx(directory / (name + (".gz" if gz else "")), arrays[key])
    return directory


def save_npz(path: Path, arrays: Mapping[str, Any]) -> Path:
    """np.savez with the arrays as keyword arguments (object arrays get pickled, as numpy does)."""
    np.savez(path, **dict(arrays))
    return path


def arrays_of(mnist: Mnist) -> dict[str, np.ndarray]:
    return {key: getattr(mnist, key) for key in KEYS}


def small_arrays(n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    """A tiny, well-formed (but unverified) MNIST-shaped dataset."""
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def assert_one_line_error(exc: pytest.ExceptionInfo[DataError], *needles: str) -> str:
    message = str(exc.value)
    assert message, "empty error message"
    assert "\n" not in message and "\r" not in message, message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def assert_same_arrays(mnist: Mnist, reference: Mnist) -> None:
    for key in KEYS:
        np.testing.assert_array_equal(getattr(mnist, key), getattr(reference, key))


@pytest.fixture(scope="module")
def shipped() -> Mnist:
    return load_mnist()


@pytest.fixture(scope="module")
def shipped_arrays(shipped: Mnist) -> dict[str, np.ndarray]:
    return arrays_of(shipped)


# ---------------------------------------------------------------------------- shipped and npz


def test_constants() -> None:
    """The pinned checksums are the shipped arrays' (hashed here with hashlib from the .npz itself, not through
    the loader), and the shipped arrays are the real MNIST (its well-known first labels)."""
    import hashlib

    assert KEYS == ("x_train", "y_train", "x_test", "y_test")
    with np.load(SHIPPED_FILE, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in KEYS}
    assert dict(MNIST_SHA256) == {key: hashlib.sha256(arrays[key].tobytes()).hexdigest() for key in KEYS}
    assert arrays["y_train"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert arrays["y_test"][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert issubclass(DataError, EdgekitError)


def test_shipped_default_loads_verified(shipped: Mnist) -> None:
    assert shipped.verified is True
    assert shipped.warnings == ()
    assert "shipped" in shipped.source
    assert shipped.x_train.shape == (60000, 28, 28)
    assert shipped.y_train.shape == (60000,)
    assert shipped.x_test.shape == (10000, 28, 28)
    assert shipped.y_test.shape == (10000,)
    for key in KEYS:
        arr = getattr(shipped, key)
        assert arr.dtype == np.uint8
        assert not arr.flags.writeable, f"{key} should be read-only"
    assert set(np.unique(shipped.y_train)) == set(range(10))


def test_shipped_keyword_same_as_default(shipped: Mnist) -> None:
    again = load_mnist("shipped")
    assert again.verified and again.source == shipped.source
    assert_same_arrays(again, shipped)


def test_mnist_is_frozen(shipped: Mnist) -> None:
    with pytest.raises(AttributeError):
        shipped.verified = False  # type: ignore[misc]


def test_load_prints_and_warns_nothing(
    tmp_path: Path, shipped_arrays: dict[str, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    arrays = small_arrays()
    save_npz(tmp_path / "other.npz", arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mnist = load_mnist(tmp_path / "other.npz", allow_unverified=True)
    assert not mnist.verified and mnist.warnings
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.parametrize("as_str", [False, True])
def test_explicit_npz_copy(tmp_path: Path, shipped: Mnist, as_str: bool) -> None:
    copy = tmp_path / "copy.npz"
    shutil.copyfile(SHIPPED_FILE, copy)
    mnist = load_mnist(str(copy) if as_str else copy)
    assert mnist.verified and mnist.warnings == ()
    assert str(copy) in mnist.source
    assert_same_arrays(mnist, shipped)


def test_uncompressed_npz_with_extra_key(tmp_path: Path, shipped: Mnist, shipped_arrays: dict[str, np.ndarray]) -> None:
    path = tmp_path / "plain.npz"
    save_npz(path, {"extra": np.zeros(3), **shipped_arrays})
    mnist = load_mnist(path)
    assert mnist.verified
    assert_same_arrays(mnist, shipped)


def test_keras_home_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped: Mnist) -> None:
    (tmp_path / "datasets").mkdir()
    shutil.copyfile(SHIPPED_FILE, tmp_path / "datasets" / "mnist.npz")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    mnist = load_mnist("keras-cache")
    assert mnist.verified
    assert "keras-cache" in mnist.source and str(tmp_path) in mnist.source
    assert_same_arrays(mnist, shipped)


def test_keras_cache_defaults_to_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".keras" / "datasets").mkdir(parents=True)
    shutil.copyfile(SHIPPED_FILE, tmp_path / ".keras" / "datasets" / "mnist.npz")
    mnist = load_mnist("keras-cache")
    assert mnist.verified
    assert str(tmp_path / ".keras" / "datasets" / "mnist.npz") in mnist.source


def test_keras_cache_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(DataError) as exc:
        load_mnist("keras-cache")
    assert_one_line_error(exc, str(tmp_path / "datasets" / "mnist.npz"), "not found")


# ---------------------------------------------------------------------------- IDX directories


@pytest.mark.parametrize(
    ("names", "gz"),
    [(STANDARD_NAMES, True), (STANDARD_NAMES, False), (DOTTED_NAMES, False), (DOTTED_NAMES, True)],
    ids=["standard-gz", "standard-raw", "dotted-raw", "dotted-gz"],
)
def test_idx_directory(
    tmp_path: Path, shipped: Mnist, shipped_arrays: dict[str, np.ndarray], names: dict[str, str], gz: bool
) -> None:
    directory = write_idx_dir(tmp_path / "idx", shipped_arrays, names, gz)
    mnist = load_mnist(directory)
    assert mnist.verified and mnist.warnings == ()
    assert str(directory) in mnist.source
    assert_same_arrays(mnist, shipped)
    assert all(getattr(mnist, key).dtype == np.uint8 for key in KEYS)


def test_idx_directory_mixed_gz_and_raw(tmp_path: Path, shipped: Mnist, shipped_arrays: dict[str, np.ndarray]) -> None:
    directory = tmp_path / "mixed"
    directory.mkdir()
    write_idx(directory / "train-images-idx3-ubyte", shipped_arrays["x_train"])
    write_idx(directory / "train-labels.idx1-ubyte.gz", shipped_arrays["y_train"])
    write_idx(directory / "t10k-images-idx3-ubyte.gz", shipped_arrays["x_test"])
    write_idx(directory / "t10k-labels.idx1-ubyte", shipped_arrays["y_test"])
    mnist = load_mnist(str(directory))
    assert mnist.verified
    assert_same_arrays(mnist, shipped)


@pytest.mark.parametrize("missing", KEYS)
def test_idx_directory_missing_one_file(tmp_path: Path, missing: str) -> None:
    arrays = small_arrays()
    write_idx_dir(
        tmp_path,
        {k: v for k, v in arrays.items() if k != missing},
        {k: n for k, n in STANDARD_NAMES.items() if k != missing},
        gz=True,
    )
    with pytest.raises(DataError) as exc:
        load_mnist(tmp_path)
    assert_one_line_error(exc, str(tmp_path), STANDARD_NAMES[missing])


def test_idx_wrong_magic(tmp_path: Path) -> None:
    arrays = small_arrays()
    write_idx_dir(tmp_path, arrays, STANDARD_NAMES, gz=False)
    bad = write_idx(tmp_path / STANDARD_NAMES["x_test"], arrays["x_test"], magic=0x00000801)
    with pytest.raises(DataError) as exc:
        load_mnist(tmp_path)
    assert_one_line_error(exc, str(bad), "0x00000801", "0x00000803")


def test_idx_labels_in_place_of_images(tmp_path: Path) -> None:
    arrays = small_arrays()
    write_idx_dir(tmp_path, arrays, STANDARD_NAMES, gz=True)
    bad = write_idx(tmp_path / (STANDARD_NAMES["x_train"] + ".gz"), arrays["y_train"])
    with pytest.raises(DataError) as exc:
        load_mnist(tmp_path)
    assert_one_line_error(exc, str(bad), "magic")


@pytest.mark.parametrize("delta", [-1, 1], ids=["truncated", "trailing-bytes"])
def test_idx_payload_length_mismatch(tmp_path: Path, delta: int) -> None:
    arrays = small_arrays()
    write_idx_dir(tmp_path, arrays, STANDARD_NAMES, gz=False)
    data = idx_bytes(arrays["y_train"])
    bad = tmp_path / STANDARD_NAMES["y_train"]
    bad.write_bytes(data[:-1] if delta < 0 else data + b"\0")
    with pytest.raises(DataError) as exc:
        load_mnist(tmp_path)
    assert_one_line_error(exc, str(bad), "payload")


def test_idx_header_too_short(tmp_path: Path) -> None:
    arrays = small_arrays()
    write_idx_dir(tmp_path, arrays, STANDARD_NAMES, gz=False)
    bad = tmp_path / STANDARD_NAMES["x_train"]
    bad.write_bytes(b"\x00\x00\x08\x03\x00")
    with pytest.raises(DataError) as exc:
        load_mnist(tmp_path)
    assert_one_line_error(exc, str(bad), "too short")


def test_idx_wrong_image_dims(tmp_path: Path) -> None:
    arrays = small_arrays()
    arrays["x_train"] = np.zeros((6, 14, 56), dtype=np.uint8)
    write_idx_dir(tmp_path, arrays, STANDARD_NAMES, gz=False)
    with pytest.raises(DataError) as exc:
        load_mnist(tmp_path)
    assert_one_line_error(exc, str(tmp_path / STANDARD_NAMES["x_train"]), "(6, 14, 56)", "(N, 28, 28)")


def test_gz_that_is_not_gzip(tmp_path: Path) -> None:
    arrays = small_arrays()
    write_idx_dir(tmp_path, arrays, STANDARD_NAMES, gz=True)
    bad = tmp_path / (STANDARD_NAMES["y_test"] + ".gz")
    bad.write_bytes(idx_bytes(arrays["y_test"]))  # raw IDX under a .gz name
    with pytest.raises(DataError) as exc:
        load_mnist(tmp_path)
    assert isinstance(exc.value.__cause__, OSError)
    assert_one_line_error(exc, str(bad), "gzip")


def test_truncated_gz(tmp_path: Path) -> None:
    arrays = small_arrays()
    write_idx_dir(tmp_path, arrays, STANDARD_NAMES, gz=True)
    bad = tmp_path / (STANDARD_NAMES["x_train"] + ".gz")
    bad.write_bytes(bad.read_bytes()[:-20])
    with pytest.raises(DataError) as exc:
        load_mnist(tmp_path)
    assert exc.value.__cause__ is not None
    assert_one_line_error(exc, str(bad), "gzip")


def test_idx_directory_small_data_unverified(tmp_path: Path) -> None:
    arrays = small_arrays()
    write_idx_dir(tmp_path, arrays, DOTTED_NAMES, gz=True)
    with pytest.raises(DataError) as exc:
        load_mnist(tmp_path)
    assert_one_line_error(exc, "x_train, y_train, x_test, y_test", "--allow-unverified")
    mnist = load_mnist(tmp_path, allow_unverified=True)
    assert not mnist.verified
    for key in KEYS:
        np.testing.assert_array_equal(getattr(mnist, key), arrays[key])


# ---------------------------------------------------------------------------- checksums


@pytest.mark.parametrize("key", ["x_train", "y_test"])
def test_modified_array_refused_then_accepted_unverified(
    tmp_path: Path, shipped_arrays: dict[str, np.ndarray], key: str
) -> None:
    arrays = dict(shipped_arrays)
    changed = arrays[key].copy()
    if key.startswith("x"):
        changed[123, 14, 14] ^= 0xFF  # flip one pixel
    else:
        changed[5] = (changed[5] + 1) % 10  # change one label
    arrays[key] = changed
    path = tmp_path / "modified.npz"
    save_npz(path, arrays)

    with pytest.raises(DataError) as exc:
        load_mnist(path)
    message = assert_one_line_error(exc, key, str(path), "--allow-unverified", "shipped")
    for other in set(KEYS) - {key}:
        assert other not in message

    mnist = load_mnist(path, allow_unverified=True)
    assert mnist.verified is False
    assert len(mnist.warnings) == 1
    assert key in mnist.warnings[0] and "\n" not in mnist.warnings[0]
    for other in set(KEYS) - {key}:
        assert other not in mnist.warnings[0]
    np.testing.assert_array_equal(getattr(mnist, key), changed)


def test_allow_unverified_on_verified_data_is_verified(shipped: Mnist) -> None:
    mnist = load_mnist(allow_unverified=True)
    assert mnist.verified and mnist.warnings == ()


# ---------------------------------------------------------------------------- bad npz files


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.npz"
    with pytest.raises(DataError) as exc:
        load_mnist(missing)
    assert_one_line_error(exc, str(missing), "does not exist")


def test_path_named_shipped_is_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as exc:
        load_mnist(Path("shipped"))
    assert_one_line_error(exc, "shipped", "does not exist")


def test_neither_npz_nor_directory(tmp_path: Path) -> None:
    other = tmp_path / "mnist.csv"
    other.write_text("1,2,3\n")
    with pytest.raises(DataError) as exc:
        load_mnist(other)
    assert_one_line_error(exc, str(other), ".npz", "directory")


def test_truncated_npz(tmp_path: Path) -> None:
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(SHIPPED_FILE.read_bytes()[:3_000_000])
    with pytest.raises(DataError) as exc:
        load_mnist(bad)
    assert exc.value.__cause__ is not None
    assert_one_line_error(exc, str(bad), "corrupt or truncated")


def test_corrupt_npz_member(tmp_path: Path) -> None:
    data = bytearray(SHIPPED_FILE.read_bytes())
    for i in range(1_000_000, 1_000_064):  # inside the compressed x_train.npy
        data[i] ^= 0x5A
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError) as exc:
        load_mnist(bad)
    assert exc.value.__cause__ is not None
    assert_one_line_error(exc, str(bad))


def test_random_bytes_npz(tmp_path: Path) -> None:
    bad = tmp_path / "random.npz"
    bad.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(DataError) as exc:
        load_mnist(bad)
    assert_one_line_error(exc, str(bad), "not a zip")


def test_npy_named_npz(tmp_path: Path) -> None:
    bad = tmp_path / "single.npz"
    with open(bad, "wb") as fh:
        np.save(fh, np.zeros((2, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError) as exc:
        load_mnist(bad)
    assert_one_line_error(exc, str(bad), "not a zip")


def test_empty_file(tmp_path: Path) -> None:
    bad = tmp_path / "empty.npz"
    bad.write_bytes(b"")
    with pytest.raises(DataError) as exc:
        load_mnist(bad)
    assert_one_line_error(exc, str(bad))


def test_object_array_is_never_unpickled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays: dict[str, np.ndarray] = dict(small_arrays())
    arrays["x_train"] = np.array([{"a": 1}, "pickled"], dtype=object)
    bad = tmp_path / "pickle.npz"
    save_npz(bad, arrays)  # np.savez pickles object arrays
    with pytest.raises(DataError) as exc:
        load_mnist(bad, allow_unverified=True)
    assert isinstance(exc.value.__cause__, ValueError)
    assert_one_line_error(exc, str(bad), "x_train", "pickle")


def test_missing_keys(tmp_path: Path) -> None:
    arrays = small_arrays()
    bad = tmp_path / "partial.npz"
    np.savez(bad, x_train=arrays["x_train"], y_train=arrays["y_train"], x_test=arrays["x_test"])
    with pytest.raises(DataError) as exc:
        load_mnist(bad, allow_unverified=True)
    assert_one_line_error(exc, str(bad), "y_test")


@pytest.mark.parametrize(
    ("key", "value", "needles"),
    [
        ("x_train", np.zeros((6, 784), np.uint8), ("x_train", "(6, 784)", "(N, 28, 28)")),
        ("x_test", np.zeros((4, 28, 28, 1), np.uint8), ("x_test", "(4, 28, 28, 1)", "(N, 28, 28)")),
        ("y_train", np.zeros((6, 1), np.uint8), ("y_train", "(6, 1)", "(N,)")),
        ("y_test", np.zeros((0,), np.uint8), ("y_test", "(0,)", "N >= 1")),
        ("y_train", np.zeros(5, np.uint8), ("x_train", "y_train", "6 images", "5 labels")),
        ("x_train", np.zeros((6, 28, 28), np.float32), ("x_train", "float32", "uint8")),
        ("y_test", np.zeros(4, np.int64), ("y_test", "int64", "uint8")),
        ("y_train", np.full(6, 10, np.uint8), ("y_train", "label 10", "0-9")),
    ],
    ids=["flat-images", "channel-images", "2d-labels", "empty", "count-mismatch", "float", "int64", "label"],
)
def test_invalid_arrays_refused_even_unverified(
    tmp_path: Path, key: str, value: np.ndarray, needles: tuple[str, ...]
) -> None:
    arrays = small_arrays()
    arrays[key] = value
    bad = tmp_path / "bad.npz"
    save_npz(bad, arrays)
    for allow in (False, True):
        with pytest.raises(DataError) as exc:
            load_mnist(bad, allow_unverified=allow)
        assert_one_line_error(exc, str(bad), *needles)


# ---------------------------------------------------------------------------- helpers


def test_to_model_input(shipped: Mnist) -> None:
    x = to_model_input(shipped.x_test)
    assert x.dtype == np.float32
    assert x.shape == (10000, 28, 28, 1)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    np.testing.assert_array_equal(x, shipped.x_test.reshape(-1, 28, 28, 1).astype("float32") / 255)
    assert to_model_input(shipped.x_test[0]).shape == (1, 28, 28, 1)


def test_one_hot() -> None:
    labels = np.array([3, 0, 9, 3], dtype=np.uint8)
    encoded = one_hot(labels)
    assert encoded.dtype == np.float32 and encoded.shape == (4, 10)
    np.testing.assert_array_equal(encoded.argmax(axis=1), labels)
    np.testing.assert_array_equal(encoded.sum(axis=1), np.ones(4, np.float32))
    assert one_hot([1, 2], num_classes=3).tolist() == [[0, 1, 0], [0, 0, 1]]
    for bad in ([10], [-1], [[1, 2]], [0.5]):
        with pytest.raises(ValueError):
            one_hot(bad)


def test_calibration_draw(shipped: Mnist) -> None:
    """The int8 exports' calibration rows (`Dataset.calibration`): a seeded draw of distinct training images."""
    from toolkit.data.dataset import Dataset
    from toolkit.model.spec import reference_spec

    data, spec = Dataset.from_mnist(shipped), reference_spec()
    first = data.calibration(spec)
    again = data.calibration(spec, n=500, seed=7)
    other = data.calibration(spec, seed=8)
    assert first.dtype == np.float32 and first.shape == (500, 28, 28, 1)
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    indices = np.sort(np.random.default_rng(7).choice(60000, 500, replace=False))
    np.testing.assert_array_equal(first, to_model_input(shipped.x_train[indices]))
    assert data.calibration(spec, n=3, seed=1).shape == (3, 28, 28, 1)
    assert len(data.calibration(spec, n=60001)) == 60000  # capped at the training split


def test_importing_data_does_not_import_tensorflow() -> None:
    code = "import sys, toolkit.data.mnist; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
