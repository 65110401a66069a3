"""Loading a `Dataset` from what a user points at: MNIST (shipped, Keras cache, IDX), an `.npz`, a folder of images.

.npz     x_train/y_train/x_test/y_test, or x/y (then TEST_FRACTION is held out with the seed);
         labels as integers or one-hot; read with allow_pickle=False. Or one array per model tensor
         name (`toolkit.data.named`): the only layout for a model with several inputs or outputs.
folder   one sub-folder per class (Keras `image_dataset_from_directory`'s convention), or train/ and
         test/ each holding them; images resized to the model's input (bilinear), grey or RGB.
MNIST    "shipped", "mnist", "keras-cache", a folder of IDX files, or an .npz whose checksums are MNIST's.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from toolkit.data.dataset import FOLDER, MNIST, NPZ, Dataset, sha256_file, split_seeded
from toolkit.data.named import is_named_layout, load_named_npz
from toolkit.errors import DataError

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec

MNIST_NAMES: Final = frozenset({"shipped", "mnist", "keras-cache"})
IMAGE_SUFFIXES: Final = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})
_SPLITS: Final = ("x_train", "y_train", "x_test", "y_test")


def load_dataset(
    source: str | Path | None,
    *,
    spec: ModelSpec | None = None,
    seed: int = 7,
    scale: float | None = None,
    allow_unverified: bool = False,
) -> Dataset:
    """Load the dataset at `source` for a model with `spec` (which sizes a folder's images).

    Raises:
        DataError: missing or unreadable source, pickled or non-numeric arrays, unknown keys, empty
            classes; one line naming the file.
    """
    from toolkit.data.mnist import load_mnist

    if source is None or (isinstance(source, str) and source in MNIST_NAMES):
        name = None if source in (None, "mnist") else str(source)
        return Dataset.from_mnist(load_mnist(name, allow_unverified=allow_unverified))
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(
            f"data {path} not found; give an .npz file, a folder of images (one sub-folder per class), "
            "or 'mnist' for the shipped MNIST."
        )
    if path.is_dir():
        if _has_idx(path):
            return replace(
                Dataset.from_mnist(load_mnist(path, allow_unverified=allow_unverified)), path=str(path.resolve())
            )
        return load_folder(path, spec, seed=seed).with_scale(scale)
    if path.suffix.lower() != ".npz":
        raise DataError(f"data {path} is not an .npz file or a folder; give one of those, or 'mnist'.")
    mnist = _as_mnist(path)
    if mnist is not None:
        return mnist
    if spec is not None:
        arrays = _read_npz(path)
        if _takes_names(set(arrays), spec):
            return load_named_npz(path, arrays, spec, seed=seed).with_scale(scale)
    return load_npz(path, seed=seed).with_scale(scale)


def _takes_names(keys: set[str], spec: ModelSpec) -> bool:
    """True when the file is read by tensor name: always for several inputs or outputs; for one of each, when
    its keys are not x/y or x_train/... but name one of the model's tensors (`image`, `image_train`)."""
    if not spec.is_single:
        return True
    names = {*spec.input_names, *spec.output_names}
    return is_named_layout(keys) and any(k in names or k.rsplit("_", 1)[0] in names for k in keys)


def load_npz(path: Path, *, seed: int = 7) -> Dataset:
    """An `.npz` with x_train/y_train/x_test/y_test, or x/y split with `seed`."""
    arrays = _read_npz(path)
    if all(k in arrays for k in _SPLITS):
        x_train, y_train, x_test, y_test = (arrays[k] for k in _SPLITS)
        split = "given"
    elif "x" in arrays and "y" in arrays:
        x_train, y_train, x_test, y_test = split_seeded(arrays["x"], arrays["y"], seed)
        split = f"{len(x_test)} of {len(arrays['x'])} held out for testing, seed {seed}"
    else:
        raise DataError(
            f"{path} holds {', '.join(sorted(arrays)) or 'no arrays'}; expected x_train, y_train, x_test, "
            "y_test (or x and y)."
        )
    for key, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y):
            raise DataError(
                f"{path}: x_{key} has {len(x)} samples but y_{key} has {len(y)}; give one label per sample."
            )
        if len(x) == 0:
            raise DataError(f"{path}: the {key} split is empty.")
        if not np.issubdtype(x.dtype, np.number):
            raise DataError(f"{path}: x_{key} has dtype {x.dtype}; edgekit takes numeric inputs (no strings).")
    names = arrays.get("class_names")
    return Dataset(
        name=path.name,
        kind=NPZ,
        source=str(path),
        path=str(path.resolve()),
        sha256=sha256_file(path),
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=None if names is None else tuple(str(n) for n in names),
        split=split,
    )


def load_folder(root: Path, spec: ModelSpec | None, *, seed: int = 7) -> Dataset:
    """Images in one sub-folder per class (or train/ and test/ holding those), resized to the model's input."""
    if spec is None or len(spec.input.shape) != 4:
        shape = "unknown" if spec is None else spec.input_text()
        raise DataError(f"{root} is a folder of images, but the model's input {shape} is not an image [N, H, W, C].")
    _, height, width, channels = spec.input.shape
    if channels not in (1, 3) or height is None or width is None:
        raise DataError(
            f"a folder of images needs a model input [N, H, W, 1 or 3]; this model takes {spec.input_text()}."
        )
    splits = [d for d in ("train", "test") if (root / d).is_dir()]
    if splits == ["train", "test"]:
        classes = _classes(root / "train")
        x_train, y_train, files_train = _read_images(root / "train", classes, (height, width, channels))
        x_test, y_test, files_test = _read_images(root / "test", classes, (height, width, channels))
        files, split = files_train + files_test, "given (train/ and test/)"
    else:
        classes = _classes(root)
        x, y, files = _read_images(root, classes, (height, width, channels))
        x_train, y_train, x_test, y_test = split_seeded(x, y, seed)
        split = f"{len(x_test)} of {len(x)} held out for testing, seed {seed}"
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(root).as_posix()}\0{sha256_file(file)}\n".encode())
    return Dataset(
        name=f"{root.name}/",
        kind=FOLDER,
        source=f"{len(files)} images in {root}",
        path=str(root.resolve()),
        sha256=digest.hexdigest(),
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=tuple(classes),
        split=split,
    )


def _classes(root: Path) -> list[str]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(
            f"{root} has no class sub-folders; put each class's images in its own folder (e.g. {root}/cat/1.png)."
        )
    return classes


def _read_images(
    root: Path, classes: list[str], shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    from PIL import Image, UnidentifiedImageError

    height, width, channels = shape
    mode = "L" if channels == 1 else "RGB"
    pixels, labels, files = [], [], []
    for index, name in enumerate(classes):
        folder = root / name
        found = sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not found:
            raise DataError(
                f"class folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); add some or remove it."
            )
        for file in found:
            try:
                with Image.open(file) as opened:
                    img = opened.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
                    arr = np.asarray(img, dtype=np.uint8)
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                raise DataError(f"cannot read image {file}: {exc}; fix or remove it.") from None
            pixels.append(arr.reshape(height, width, channels))
            labels.append(index)
            files.append(file)
    return np.stack(pixels), np.asarray(labels, dtype=np.int64), files


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
            raise DataError(
                f"{path} holds pickled (object) arrays, which edgekit never loads; save plain numeric arrays "
                "with numpy.savez."
            ) from None
        raise DataError(f"cannot read {path}: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"cannot read {path} as .npz: {exc}") from None


def _has_idx(path: Path) -> bool:
    return any(p.name.startswith(("train-images", "t10k-images")) for p in path.iterdir())


def _as_mnist(path: Path) -> Dataset | None:
    """The file as MNIST if its arrays are MNIST's (checksums match), else None."""
    from toolkit.data.mnist import load_mnist

    try:
        mnist = load_mnist(path)
    except DataError:
        return None
    return replace(Dataset.from_mnist(mnist), path=str(path.resolve())) if mnist.verified else None


__all__ = ["FOLDER", "MNIST", "NPZ", "load_dataset", "load_folder", "load_npz"]
