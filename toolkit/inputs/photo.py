"""MNIST-style preprocessing for `edgekit predict`: make a photo of a digit look like an MNIST digit.

MNIST digits are light strokes on a black background, scaled to fit a 20×20 box (aspect ratio kept,
anti-aliased) and placed in a 28×28 field so that their centre of mass is at the centre. A photo of
a digit is usually the opposite: dark ink on light paper, any size, the digit anywhere. `to_mnist`
makes the one look like the other:

1. grey float pixels in 0..1 (`images.read_grey`: colour → luma; alpha composited; 16-bit scaled);
2. polarity: the background level is the median of a thin border band; the ink is whichever
   extreme lies farther from it. Dark ink on light paper is inverted;
3. contrast: background → 0, ink level (98th percentile of the brighter half) → 1; pixels below
   `NOISE_FLOOR` of that range (paper texture, JPEG noise, shadows) become 0;
4. threshold-aware crop: the bounding box of what is left, ignoring isolated pixels;
5. scale the crop to fit 20×20, aspect ratio kept (Lanczos, so anti-aliased when shrinking);
6. paste it into 28×28 so its centre of mass sits at (14, 14), MNIST's mean centre of mass.

With `preprocess=False` the image is only converted to grey and resized to 28×28. This module and
the MNIST data module are the only input code that knows the reference model's 28×28 grey input;
`edgekit predict` uses it for the reference model, or for any 28×28 grey model on request
(`--mnist-preprocess`). Other models get `model_input.py`'s generic resize.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from toolkit.inputs.errors import ImageError
from toolkit.inputs.images import F32, quantile, read_grey

SIDE: Final = 28  # model input side
BOX: Final = 20  # MNIST digits fit a 20×20 box inside the 28×28 field
CENTRE: Final = 14.0  # mean centre of mass of MNIST test digits, in pixel-index coordinates (13.99, 14.00)
MIN_CONTRAST: Final = 0.08  # ink vs background, as a fraction of full scale; below it the image is blank
NOISE_FLOOR: Final = 0.15  # fraction of the ink contrast below which a pixel counts as background


@dataclass(frozen=True)
class Prepared:
    """One image as the model sees it, and what preprocessing did to it.

    `pixels` is float32 in 0..1: [28, 28], light digit on dark, from this module; [H, W, C] from the
    generic resize (`model_input.prepare_resized`). `box` is the digit's bounding box (top, left,
    height, width) in the (possibly reduced) source image, None without the MNIST preprocessing.
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
    background = quantile(border, 0.5)
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
    ink = quantile(brighter, 0.98) if brighter.size else peak
    s = np.clip((g - background) / max(ink - background, 1e-6), 0.0, 1.0)
    s[s < NOISE_FLOOR] = 0.0
    top, left, bh, bw = _digit_box(s)
    crop = s[top : top + bh, left : left + bw]
    scale = BOX / max(bh, bw)
    nh, nw = max(1, round(bh * scale)), max(1, round(bw * scale))
    small = resize(crop, nw, nh)
    return _centre_of_mass_paste(small), dark_ink, (top, left, bh, bw)


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
    """Write model input pixels in 0..1 ([H, W] or [H, W, 1] grey, [H, W, 3] RGB) as an 8-bit PNG (atomically),
    e.g. to see what the model saw."""
    from PIL import Image

    from runtimes.files import atomic_path

    data = np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
    if data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0]
    im = Image.fromarray(data, mode="L" if data.ndim == 2 else "RGB")
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")
