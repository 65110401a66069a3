"""Read digit images (PNG, JPEG, BMP, … or .npy) and turn them into MNIST-like 28×28 model inputs.

MNIST digits are light strokes on a black background, scaled to fit a 20×20 box (aspect ratio kept,
anti-aliased) and placed in a 28×28 field so that their centre of mass is at the centre. A photo of
a digit is usually the opposite: dark ink on light paper, any size, the digit anywhere. `to_mnist`
makes the one look like the other:

1. grey float pixels in 0..1 (colour → luma; alpha composited; 16-bit scaled by 65535);
2. polarity: the background level is the median of a thin border band; the ink is whichever
   extreme lies farther from it. Dark ink on light paper is inverted;
3. contrast: background → 0, ink level (98th percentile of the brighter half) → 1; pixels below
   `NOISE_FLOOR` of that range (paper texture, JPEG noise, shadows) become 0;
4. threshold-aware crop: the bounding box of what is left, ignoring isolated pixels;
5. scale the crop to fit 20×20, aspect ratio kept (Lanczos, so anti-aliased when shrinking);
6. paste it into 28×28 so its centre of mass sits at (14, 14), MNIST's mean centre of mass.

With `preprocess=False` the image is only converted to grey and resized to 28×28.

numpy is imported at module level (this module is loaded only by commands that need it); Pillow is
imported inside the functions that read or resize images.
"""

from __future__ import annotations

import math
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from toolkit.errors import ToolkitError

F32 = npt.NDArray[np.float32]

SIDE: Final = 28  # model input side
BOX: Final = 20  # MNIST digits fit a 20×20 box inside the 28×28 field
CENTRE: Final = 14.0  # mean centre of mass of MNIST test digits, in pixel-index coordinates (13.99, 14.00)
MAX_PIXELS: Final = 64_000_000  # refuse larger images (decompression bombs, accidental huge scans)
MAX_SIDE: Final = 30_000
WORK_SIDE: Final = 1024  # larger images are reduced to about this before preprocessing (speed, memory)
MIN_CONTRAST: Final = 0.08  # ink vs background, as a fraction of full scale; below it the image is blank
NOISE_FLOOR: Final = 0.15  # fraction of the ink contrast below which a pixel counts as background
# Pillow formats edgekit opens (others are refused rather than handed to rarely used decoders). The
# common ones are tried first: Pillow registers them at start, while naming any other format makes
# Pillow import all of its ~40 plugins (~20 ms of a predict process).
COMMON_FORMATS: Final = ("PNG", "JPEG", "BMP", "GIF", "PPM")
OTHER_FORMATS: Final = ("TIFF", "WEBP")
FORMATS: Final = COMMON_FORMATS + OTHER_FORMATS
NPY_MAGIC: Final = b"\x93NUMPY"
HINT: Final = "pass a PNG, JPEG or BMP image or a .npy array of one"


class ImageError(ToolkitError):
    """An input image is missing, unreadable, not an image, too large or blank."""


@dataclass(frozen=True)
class Prepared:
    """One image as the model sees it, and what preprocessing did to it.

    `pixels` is float32 [28, 28] in 0..1, light digit on dark. `box` is the digit's bounding box
    (top, left, height, width) in the (possibly reduced) source image, None without preprocessing.
    """

    name: str
    pixels: F32
    source_size: tuple[int, int]  # (width, height) as read
    inverted: bool = False
    box: tuple[int, int, int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.name,
            "source_size": list(self.source_size),
            "inverted": self.inverted,
            "box": None if self.box is None else list(self.box),
        }


# -- reading -----------------------------------------------------------------------------------------
def read_grey(path: Path) -> list[tuple[str, F32]]:
    """Read an image file or a .npy array as grey float32 pixels in 0..1.

    Args:
        path: a PNG/JPEG/BMP/GIF/TIFF/WebP/PPM file (any mode: 1, L, P, RGB, RGBA, LA, 16-bit, …),
            or a .npy array shaped (H, W), (H, W, C) with C in 1/3/4, (N, H, W) or (N, H, W, C).

    Returns:
        `(name, pixels)` pairs: one for an image file, N for a batch array (`name[i]`).

    Raises:
        ImageError: one line naming the file: missing, a directory, empty, unreadable, not an
            image, over `MAX_PIXELS`, a pixel mode that cannot become grey, or corrupt.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path} does not exist; check the path.")
    if path.is_dir():
        raise ImageError(f"{path} is a directory; {HINT}.")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}; check the path and permissions.") from exc
    if size == 0:
        raise ImageError(f"{path} is empty (0 bytes); {HINT}.")
    if head.startswith(NPY_MAGIC):
        return _read_npy(path)
    if path.suffix.lower() == ".npy":
        raise ImageError(f"{path} is not a .npy array (no NUMPY header); save it with numpy.save.")
    return [(str(path), _read_picture(path))]


def _read_picture(path: Path) -> F32:
    import struct
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    # What Pillow's decoders raise on damaged files besides OSError/SyntaxError/EOFError (found by
    # tests/test_fuzz.py: "tile cannot extend outside image", struct/index errors in TIFF and EXIF parsing).
    corrupt = (SyntaxError, EOFError, ValueError, TypeError, IndexError, KeyError, struct.error, ZeroDivisionError)
    try:
        # Pillow warns on stderr between 89 and 179 megapixels (edgekit's own, lower limit is checked below)
        # and about damaged EXIF or TIFF tags: the user gets one line from edgekit instead.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Image.preinit()  # registers exactly COMMON_FORMATS
            try:
                im = Image.open(path, formats=COMMON_FORMATS)
            except UnidentifiedImageError:
                im = Image.open(path, formats=OTHER_FORMATS)
            with im:
                width, height = im.size
                _check_size(path, width, height)
                try:
                    if im.format == "JPEG":
                        # Decode at a reduced scale when the file is far larger than needed (fast, low memory).
                        im.draft(im.mode, (WORK_SIDE, WORK_SIDE))
                    im.load()
                    upright = ImageOps.exif_transpose(im) or im  # phone photos store their rotation in EXIF
                except corrupt as exc:
                    raise ImageError(
                        f"{path} is corrupt or truncated ({_one_line(exc)}); re-save or re-export it."
                    ) from exc
                return _pil_to_grey(path, upright)
    except UnidentifiedImageError as exc:
        known = _signature_format(path)
        if known:  # a PNG/JPEG/… whose header is cut short or damaged, not some other kind of file
            raise ImageError(f"{path} is a {known} file but corrupt or truncated; re-save or re-export it.") from exc
        raise ImageError(f"{path} is not an image edgekit can read ({', '.join(FORMATS)} or .npy); {HINT}.") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"{path} is far too large (over Pillow's decompression-bomb limit); edgekit reads images up to "
            f"{MAX_PIXELS // 1_000_000} megapixels: downscale or crop it."
        ) from exc
    except ImageError:
        raise
    except (OSError, *corrupt) as exc:  # Pillow's errors for truncated/corrupt data
        if isinstance(exc, OSError) and exc.errno is not None:
            raise ImageError(f"cannot read {path}: {exc.strerror or exc}; check the path and permissions.") from exc
        raise ImageError(f"{path} is corrupt or truncated ({_one_line(exc)}); re-save or re-export it.") from exc


_SIGNATURES: Final = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _signature_format(path: Path) -> str | None:
    """The image format a file's first bytes announce (WebP: RIFF....WEBP), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in _SIGNATURES if head.startswith(magic)), None)


def _check_size(path: Path, width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ImageError(f"{path} has no pixels ({width}×{height}); {HINT}.")
    if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
        raise ImageError(
            f"{path} is {width}×{height} pixels, over edgekit's limit of {MAX_PIXELS // 1_000_000} megapixels "
            f"({MAX_SIDE} per side); downscale or crop it."
        )


def _pil_to_grey(path: Path, im: Any) -> F32:
    """Any Pillow mode → float32 grey in 0..1 (alpha composited; 16/32-bit and float scaled)."""
    mode = im.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    try:
        if has_alpha:
            im = im.convert("RGBA")
        elif mode.startswith("I;16"):
            im = im.convert("I")  # Pillow's reduce does not take I;16; values stay 0..65535
        elif mode == "1" or mode not in ("L", "I", "F"):
            im = im.convert("L")
    except ValueError as exc:
        raise ImageError(
            f"{path} has pixel mode {mode}, which edgekit cannot convert to grey; save it as RGB or greyscale."
        ) from exc
    factor = math.ceil(max(im.size) / WORK_SIDE)
    if factor > 1:
        im = im.reduce(factor)  # box average: anti-aliased, fast
    if has_alpha:
        rgba = np.asarray(im, dtype=np.float32) / np.float32(255)
        colour = rgba[..., 0] * 0.299 + rgba[..., 1] * 0.587 + rgba[..., 2] * 0.114
        return _composite(colour.astype(np.float32), rgba[..., 3])
    arr = np.asarray(im)
    if mode.startswith("I;16"):
        return (arr.astype(np.float32) / np.float32(65535)).clip(0, 1)
    if im.mode == "L":
        return arr.astype(np.float32) / np.float32(255)
    return _scale_values(path, arr)


def _composite(colour: F32, alpha: F32) -> F32:
    """Flatten a transparent image onto a background that contrasts with what is painted.

    A drawing with a transparent background (dark strokes, or light strokes) goes onto white (or
    black) paper; a mostly opaque picture continues its own background into the transparent parts.
    """
    weight = float(alpha.sum())
    if weight == 0.0:
        return np.zeros_like(colour)
    if weight / alpha.size >= 0.5:
        background = _quantile(colour[alpha >= 0.5], 0.5)
    else:
        painted = float((colour * alpha).sum()) / weight
        background = 1.0 if painted < 0.5 else 0.0
    out: F32 = (colour * alpha + np.float32(background) * (1 - alpha)).astype(np.float32)
    return out


def _scale_values(path: Path | str, arr: np.ndarray) -> F32:
    """Integers 0..255 → /255, 0..65535 → /65535; floats 0..1 as they are, 0..255 → /255."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.size == 0:
        raise ImageError(f"{path} holds no pixels; {HINT}.")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError(f"{path} holds NaN or infinite values; expected pixels in 0..1 or 0..255.")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ImageError(f"{path} holds {arr.dtype} values; expected integer or float pixels.")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0:
        raise ImageError(f"{path} holds negative values (min {lo:g}); expected pixels in 0..1, 0..255 or 0..65535.")
    if np.issubdtype(arr.dtype, np.floating) and hi <= 1.0:
        return arr.astype(np.float32)
    if hi <= 255:
        return arr.astype(np.float32) / np.float32(255)
    if np.issubdtype(arr.dtype, np.integer) and hi <= 65535:
        return arr.astype(np.float32) / np.float32(65535)
    raise ImageError(f"{path} holds values up to {hi:g}; expected pixels in 0..1, 0..255 or 0..65535 (16-bit).")


def _read_npy(path: Path) -> list[tuple[str, F32]]:
    """A .npy image or batch of images, never unpickling and checking the header before loading."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as fh:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(fh)
            else:
                shape, _, dtype = fmt.read_array_header_2_0(fh)
            if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
                raise ImageError(
                    f"{path} holds {dtype} data (edgekit never loads pickled objects); expected a numeric image array."
                )
            _check_npy_shape(path, shape)
            fh.seek(0)
            arr = fmt.read_array(fh, allow_pickle=False)
    except ImageError:
        raise
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}; check the path and permissions.") from exc
    except (ValueError, EOFError, SyntaxError, tokenize.TokenError) as exc:  # numpy parses the header as Python
        raise ImageError(f"{path} is not a valid .npy array ({_one_line(exc)}); save it with numpy.save.") from exc
    batch = arr.ndim == 4 or (arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4))
    images = arr if batch else arr[np.newaxis]
    if images.ndim == 3:
        images = images[..., np.newaxis]
    scaled = _scale_values(path, images)
    channels = scaled.shape[-1]
    if channels == 1:
        grey = scaled[..., 0]
        out = [grey[i] for i in range(len(grey))]
    elif channels == 3:
        out = [(im[..., 0] * 0.299 + im[..., 1] * 0.587 + im[..., 2] * 0.114).astype(np.float32) for im in scaled]
    else:
        out = [
            _composite((im[..., 0] * 0.299 + im[..., 1] * 0.587 + im[..., 2] * 0.114).astype(np.float32), im[..., 3])
            for im in scaled
        ]
    if not batch:
        return [(str(path), np.ascontiguousarray(out[0], dtype=np.float32))]
    return [(f"{path}[{i}]", np.ascontiguousarray(im, dtype=np.float32)) for i, im in enumerate(out)]


def _check_npy_shape(path: Path, shape: tuple[int, ...]) -> None:
    ok = len(shape) == 2 or (len(shape) == 3) or (len(shape) == 4 and shape[-1] in (1, 3, 4))
    if not ok:
        raise ImageError(
            f"{path} has shape {shape}; expected (H, W), (H, W, C), (N, H, W) or (N, H, W, C) with C = 1, 3 or 4."
        )
    if math.prod(shape) == 0:
        raise ImageError(f"{path} has shape {shape}, which holds no pixels; {HINT}.")
    batch = len(shape) == 4 or (len(shape) == 3 and shape[-1] not in (1, 3, 4))
    h, w = (shape[1], shape[2]) if batch else (shape[0], shape[1])
    _check_size(path, w, h)
    if math.prod(shape) > 4 * MAX_PIXELS:
        raise ImageError(f"{path} has shape {shape}, too many pixels for edgekit to load; split it.")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


# -- preprocessing -----------------------------------------------------------------------------------
def resize(pixels: F32, width: int, height: int) -> F32:
    """Resize float pixels with Lanczos (anti-aliased when shrinking); values clipped to 0..1."""
    from PIL import Image

    if pixels.shape == (height, width):
        return pixels.astype(np.float32, copy=True)
    im = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32), mode="F")
    out = np.asarray(im.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def to_mnist(grey: F32) -> tuple[F32, bool, tuple[int, int, int, int]]:
    """Make one grey image look like an MNIST digit (see the module docstring for the steps).

    Args:
        grey: float32 [H, W] in 0..1, either polarity, any size.

    Returns:
        (pixels [28, 28] float32 in 0..1, whether it was inverted, the digit's box (top, left,
        height, width) in `grey`).

    Raises:
        ImageError: the image is (nearly) uniform, so there is no digit to find. The caller adds
            the file name.
    """
    g = np.asarray(grey, dtype=np.float32)
    h, w = g.shape
    band = max(1, round(0.04 * min(h, w)))
    border = np.concatenate([g[:band].ravel(), g[-band:].ravel(), g[:, :band].ravel(), g[:, -band:].ravel()])
    background = _quantile(border, 0.5)
    darkest, brightest = float(g.min()), float(g.max())
    # The ink is the extreme farther from the background; ties go by the background's brightness.
    dark_ink = background - darkest > brightest - background or (
        background - darkest == brightest - background and background > 0.5
    )
    if dark_ink:
        g = 1.0 - g
        background = 1.0 - background
    peak = float(g.max())
    if peak - background < MIN_CONTRAST:
        raise ImageError(
            f"no digit found (the image is almost uniform: contrast {100 * max(peak - background, 0):.0f} %)"
        )
    brighter = g[g > background + (peak - background) / 2]
    ink = _quantile(brighter, 0.98) if brighter.size else peak
    s = np.clip((g - background) / max(ink - background, 1e-6), 0.0, 1.0)
    s[s < NOISE_FLOOR] = 0.0
    top, left, bh, bw = _digit_box(s)
    crop = s[top : top + bh, left : left + bw]
    scale = BOX / max(bh, bw)
    nh, nw = max(1, round(bh * scale)), max(1, round(bw * scale))
    small = resize(crop, nw, nh)
    return _centre_of_mass_paste(small), dark_ink, (top, left, bh, bw)


def _quantile(values: np.ndarray, q: float) -> float:
    """The q-quantile (nearest rank) of a non-empty array.

    np.median and np.percentile would do, but their first call imports numpy.ma (~25 ms of the
    ~0.3 s that a whole `edgekit predict` process takes).
    """
    flat = values.ravel()
    k = min(len(flat) - 1, max(0, round(q * (len(flat) - 1))))
    return float(np.partition(flat, k)[k])


def _digit_box(s: F32) -> tuple[int, int, int, int]:
    """Bounding box (top, left, height, width) of the ink, ignoring isolated pixels (specks of noise)."""
    mask = s > 0
    padded = np.pad(mask, 1).astype(np.uint8)
    neighbours = sum(
        padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if dy or dx
    )
    solid = mask & (neighbours > 0)
    if not solid.any():  # a digit a single pixel wide somewhere: keep what there is
        solid = mask
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _centre_of_mass_paste(small: F32) -> F32:
    """Paste `small` (at most 20×20) into 28×28 so that its centre of mass is at (`CENTRE`, `CENTRE`)."""
    h, w = small.shape
    total = float(small.sum())
    if total > 0:
        cy = float((small.sum(axis=1) * np.arange(h)).sum()) / total
        cx = float((small.sum(axis=0) * np.arange(w)).sum()) / total
    else:
        cy, cx = (h - 1) / 2, (w - 1) / 2
    top, left = round(CENTRE - cy), round(CENTRE - cx)
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    # Clip the paste to the field (a very lopsided digit may lose its outermost pixels, as in MNIST).
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, SIDE), min(left + w, SIDE)
    out[y0:y1, x0:x1] = small[y0 - top : y1 - top, x0 - left : x1 - left]
    return out


def prepare(path: Path, *, preprocess: bool = True) -> list[Prepared]:
    """Read one file (an image, or a .npy holding one or several) and make the model inputs.

    Raises:
        ImageError: see `read_grey`; also when preprocessing finds no digit (names the file).
    """
    out = []
    for name, grey in read_grey(path):
        size = (int(grey.shape[1]), int(grey.shape[0]))
        if not preprocess:
            out.append(Prepared(name, resize(grey, SIDE, SIDE), size))
            continue
        try:
            pixels, inverted, box = to_mnist(grey)
        except ImageError as exc:
            raise ImageError(f"{name}: {exc}; pass --no-preprocess to classify it as it is.") from exc
        out.append(Prepared(name, pixels, size, inverted, box))
    return out


def save_png(pixels: F32, path: Path) -> None:
    """Write a [28, 28] model input as an 8-bit greyscale PNG (atomically), e.g. to see what the model saw."""
    from PIL import Image

    from exporters.files import atomic_path

    im = Image.fromarray(np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8), mode="L")
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")
