"""Gallery: the test images where an artifact's top-1 differs from the Keras reference, as a PNG grid.

Images of any height and width, grey (1 channel) or RGB (3); their value range is unknown (0..1, 0..255,
standardised...), so each image is stretched from its own min to its max for display. Vector inputs get
no gallery (`gallery_skip_reason`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtimes.files import atomic_path

TILE = 112  # each image is upscaled (nearest) to about this many pixels a side
COLUMNS = 8
MAX_IMAGES = 64
CAPTION_H = 30
PAD = 6


def gallery_skip_reason(images: np.ndarray) -> str | None:
    """Why these model inputs cannot be drawn as images (None: they can)."""
    if images.ndim != 4:
        return f"the model input is not an image (shape {list(images.shape[1:])})"
    if images.shape[-1] not in (1, 3):
        return f"the model input has {images.shape[-1]} channels (a gallery draws 1 or 3)"
    return None


def _display(image: np.ndarray) -> np.ndarray:
    """One HxWxC image as uint8, stretched from its own min to its max (a flat image becomes mid-grey)."""
    x = image.astype(np.float64)
    lo, hi = float(x.min()), float(x.max())
    scaled = (x - lo) / (hi - lo) * 255.0 if hi > lo else np.full_like(x, 128.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def as_probabilities(out: np.ndarray) -> np.ndarray:
    """`out` if its rows are already probabilities, else their softmax (logits)."""
    if out.size and out.min() >= 0 and out.max() <= 1 and np.allclose(out.sum(1), 1.0, atol=1e-3):
        return out
    z = out - out.max(1, keepdims=True)
    e = np.exp(z)
    probs: np.ndarray = e / e.sum(1, keepdims=True)
    return probs


def disagreements(probs: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Indices of the images whose top-1 class differs from the reference's."""
    return np.flatnonzero(probs.argmax(1) != reference.argmax(1))


def write_gallery(
    path: Path,
    images: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray,
    probs: np.ndarray,
    artifact: str,
) -> dict[str, Any]:
    """Write a grid of the disagreeing images (at most MAX_IMAGES); return what was written.

    `images` are NHWC (grey when C is 1, RGB when 3), any value range (each is stretched min..max). Each cell
    is the image upscaled to about TILE pixels, captioned with the test-set index, the true label, the
    reference's prediction and the artifact's prediction (with its probability; softmax of logits).
    """
    from PIL import Image, ImageDraw, ImageFont

    idx = disagreements(probs, reference)
    info: dict[str, Any] = {"count": len(idx), "shown": 0, "file": None, "indices": [int(i) for i in idx[:200]]}
    if len(idx) == 0:
        path.unlink(missing_ok=True)  # a gallery from an earlier diagnose would no longer be true
        return info
    shown = idx[:MAX_IMAGES]
    height, width = images.shape[1], images.shape[2]
    scale = max(1, TILE // max(height, width))
    side_w, side = width * scale, height * scale
    cols = min(COLUMNS, len(shown))
    rows = (len(shown) + cols - 1) // cols
    header = 22
    cell_w, cell_h = max(side_w, 100) + PAD, side + CAPTION_H + PAD
    canvas = Image.new("RGB", (cols * cell_w + PAD, header + rows * cell_h + PAD), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    title = f"{artifact}: {len(idx)} of {len(probs)} images disagree with keras-fp32" + (
        f" (first {len(shown)} shown)" if len(shown) < len(idx) else ""
    )
    draw.text((PAD, 5), title, fill="black", font=font)
    colour = images.ndim == 4 and images.shape[-1] == 3
    pixels = images if colour else images.reshape(len(images), height, width, -1)[..., 0]
    shown_probs = as_probabilities(probs)
    for k, i in enumerate(shown):
        r, c = divmod(k, cols)
        x0, y0 = PAD + c * cell_w, header + r * cell_h
        gray = _display(pixels[i])
        tile = Image.fromarray(gray, mode="RGB" if colour else "L").resize((side_w, side), Image.Resampling.NEAREST)
        canvas.paste(tile.convert("RGB"), (x0, y0))
        ref_p, art_p = int(reference[i].argmax()), int(probs[i].argmax())
        draw.text((x0, y0 + side + 2), f"#{i} true {int(labels[i])}", fill="black", font=font)
        draw.text(
            (x0, y0 + side + 15),
            f"ref {ref_p} art {art_p} ({shown_probs[i, art_p]:.2f})",
            fill="firebrick" if art_p != int(labels[i]) else "darkgreen",
            font=font,
        )
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    info.update({"shown": len(shown), "file": path.name})
    return info
