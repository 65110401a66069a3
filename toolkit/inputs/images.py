"""Read images (PNG, JPEG, BMP, … or .npy arrays) as grey or RGB float32 pixels in 0..1.

Any Pillow mode becomes grey (colour → luma) or RGB (grey repeated), alpha composited onto a
contrasting background, 16-bit scaled by 65535; large images are reduced to about `WORK_SIDE` pixels a side first. Files
over `MAX_PIXELS`, pickled or non-numeric .npy files, and damaged images are refused with one line
naming the file (`ImageError`). What the pixels are then made into is `photo.py`'s concern.

numpy is imported at module level (this module is loaded only by commands that need it); Pillow is
imported inside the functions that read images.
"""

from __future__ import annotations

import math
import tokenize
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from runtimes.errors import one_line
from toolkit.inputs.errors import ImageError

F32 = npt.NDArray[np.float32]

MAX_PIXELS: Final = 64_000_000  # refuse larger images (decompression bombs, accidental huge scans)
MAX_SIDE: Final = 30_000
WORK_SIDE: Final = 1024  # larger images are reduced to about this before preprocessing (speed, memory)
# Pillow formats edgekit opens (others are refused rather than handed to rarely used decoders). The
# common ones are tried first: Pillow registers them at start, while naming any other format makes
# Pillow import all of its ~40 plugins (~20 ms of a predict process).
COMMON_FORMATS: Final = ("PNG", "JPEG", "BMP", "GIF", "PPM")
OTHER_FORMATS: Final = ("TIFF", "WEBP")
FORMATS: Final = COMMON_FORMATS + OTHER_FORMATS
NPY_MAGIC: Final = b"\x93NUMPY"
HINT: Final = "pass a PNG, JPEG or BMP image or a .npy array of one"
LUMA: Final = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B


def read_grey(path: Path) -> list[tuple[str, F32]]:
    """Read an image file or a .npy array as grey float32 pixels [H, W] in 0..1 (see `read_pixels`)."""
    return [(name, pixels[..., 0]) for name, pixels in read_pixels(path, 1)]


def read_pixels(path: Path, channels: int) -> list[tuple[str, F32]]:
    """Read an image file or a .npy array as grey (`channels` 1) or RGB (3) float32 pixels [H, W, C] in 0..1.

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
        return _read_npy(path, channels)
    if path.suffix.lower() == ".npy":
        raise ImageError(f"{path} is not a .npy array (no NUMPY header); save it with numpy.save.")
    return [(str(path), _read_picture(path, channels))]


def _read_picture(path: Path, channels: int) -> F32:
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
                        f"{path} is corrupt or truncated ({one_line(exc, 200)}); re-save or re-export it."
                    ) from exc
                return _pil_to_pixels(path, upright, channels)
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
        raise ImageError(f"{path} is corrupt or truncated ({one_line(exc, 200)}); re-save or re-export it.") from exc


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


def _pil_to_pixels(path: Path, im: Any, channels: int) -> F32:
    """Any Pillow mode → float32 [H, W, channels] in 0..1 (alpha composited; 16/32-bit and float scaled)."""
    mode = im.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    colour = channels == 3 and mode not in ("1", "L", "I", "F") and not mode.startswith("I;16")
    try:
        if has_alpha:
            im = im.convert("RGBA")
        elif colour:
            im = im.convert("RGB")
        elif mode.startswith("I;16"):
            im = im.convert("I")  # Pillow's reduce does not take I;16; values stay 0..65535
        elif mode == "1" or mode not in ("L", "I", "F"):
            im = im.convert("L")
    except ValueError as exc:
        raise ImageError(
            f"{path} has pixel mode {mode}, which edgekit cannot convert to grey or RGB; save it as RGB or greyscale."
        ) from exc
    factor = math.ceil(max(im.size) / WORK_SIDE)
    if factor > 1:
        im = im.reduce(factor)  # box average: anti-aliased, fast
    if has_alpha:
        rgba = np.asarray(im, dtype=np.float32) / np.float32(255)
        return _with_channels(_composite_rgba(rgba, channels), channels)
    arr = np.asarray(im)
    if colour:
        return arr.astype(np.float32) / np.float32(255)
    if mode.startswith("I;16"):
        grey = (arr.astype(np.float32) / np.float32(65535)).clip(0, 1)
    elif im.mode == "L":
        grey = arr.astype(np.float32) / np.float32(255)
    else:
        grey = _scale_values(path, arr)
    return _with_channels(grey, channels)


def _with_channels(pixels: F32, channels: int) -> F32:
    """[H, W] grey or [H, W, C] → [H, W, channels] (grey repeated for RGB)."""
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    if pixels.shape[-1] == channels:
        return np.ascontiguousarray(pixels, dtype=np.float32)
    return np.ascontiguousarray(np.repeat(pixels[..., :1], channels, axis=-1), dtype=np.float32)


def _composite_rgba(rgba: F32, channels: int) -> F32:
    """Flatten RGBA (0..1) onto `_background`: grey [H, W] (`channels` 1) or RGB [H, W, 3]."""
    if channels == 1:
        return _composite(luma(rgba), rgba[..., 3])
    alpha = rgba[..., 3:4]
    background = np.float32(_background(luma(rgba), rgba[..., 3]))
    out: F32 = (rgba[..., :3] * alpha + background * (1 - alpha)).astype(np.float32)
    return out


def _background(colour: F32, alpha: F32) -> float:
    """The level to flatten a transparent image onto: one that contrasts with what is painted.

    A drawing with a transparent background (dark strokes, or light strokes) goes onto white (or
    black) paper; a mostly opaque picture continues its own background into the transparent parts.
    """
    weight = float(alpha.sum())
    if weight == 0.0:
        return 0.0
    if weight / alpha.size >= 0.5:
        return quantile(colour[alpha >= 0.5], 0.5)
    painted = float((colour * alpha).sum()) / weight
    return 1.0 if painted < 0.5 else 0.0


def _composite(colour: F32, alpha: F32) -> F32:
    """Flatten a transparent grey image onto `_background`."""
    background = _background(colour, alpha)
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


def _read_npy(path: Path, channels: int) -> list[tuple[str, F32]]:
    """A .npy image or batch of images, never unpickling and checking the header before loading."""
    import warnings

    fmt = np.lib.format
    try:
        # numpy parses the header with ast.literal_eval: a damaged header ("\\d") would print a warning about
        # the escape (DeprecationWarning on 3.11, SyntaxWarning later) besides edgekit's one line (tests/test_fuzz.py).
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
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
        raise ImageError(f"{path} is not a valid .npy array ({one_line(exc, 200)}); save it with numpy.save.") from exc
    batch = arr.ndim == 4 or (arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4))
    images = arr if batch else arr[np.newaxis]
    if images.ndim == 3:
        images = images[..., np.newaxis]
    scaled = _scale_values(path, images)
    given = scaled.shape[-1]
    if given == 1:
        out = [_with_channels(im, channels) for im in scaled]
    elif given == 3:
        out = [im if channels == 3 else luma(im)[..., np.newaxis] for im in scaled]
    else:
        out = [_with_channels(_composite_rgba(im, channels), channels) for im in scaled]
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


def luma(rgb: np.ndarray) -> F32:
    """Grey from the first three channels of [..., C] float pixels (BT.601 weights)."""
    grey: F32 = (rgb[..., 0] * LUMA[0] + rgb[..., 1] * LUMA[1] + rgb[..., 2] * LUMA[2]).astype(np.float32)
    return grey


def quantile(values: np.ndarray, q: float) -> float:
    """The q-quantile (nearest rank) of a non-empty array.

    np.median and np.percentile would do, but their first call imports numpy.ma (~25 ms of the
    ~0.3 s that a whole `edgekit predict` process takes).
    """
    flat = values.ravel()
    k = min(len(flat) - 1, max(0, round(q * (len(flat) - 1))))
    return float(np.partition(flat, k)[k])
