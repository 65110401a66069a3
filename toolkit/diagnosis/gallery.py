"""Gallery: the test images where an artifact's top-1 differs from the Keras reference, as a PNG grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from exporters.files import atomic_path

SCALE = 4  # 28 px → 112 px
COLUMNS = 8
MAX_IMAGES = 64
CAPTION_H = 30
PAD = 6


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

    Each cell is the image upscaled SCALE times, captioned with the test-set index, the true label,
    the reference's prediction and the artifact's prediction (with its probability).
    """
    from PIL import Image, ImageDraw, ImageFont

    idx = disagreements(probs, reference)
    info: dict[str, Any] = {"count": len(idx), "shown": 0, "file": None, "indices": [int(i) for i in idx[:200]]}
    if len(idx) == 0:
        path.unlink(missing_ok=True)  # a gallery from an earlier diagnose would no longer be true
        return info
    shown = idx[:MAX_IMAGES]
    side = 28 * SCALE
    cols = min(COLUMNS, len(shown))
    rows = (len(shown) + cols - 1) // cols
    header = 22
    cell_w, cell_h = side + PAD, side + CAPTION_H + PAD
    canvas = Image.new("RGB", (cols * cell_w + PAD, header + rows * cell_h + PAD), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    title = f"{artifact}: {len(idx)} of {len(probs)} images disagree with keras-fp32" + (
        f" (first {len(shown)} shown)" if len(shown) < len(idx) else ""
    )
    draw.text((PAD, 5), title, fill="black", font=font)
    pixels = images.reshape(len(images), 28, 28)
    for k, i in enumerate(shown):
        r, c = divmod(k, cols)
        x0, y0 = PAD + c * cell_w, header + r * cell_h
        gray = np.clip(pixels[i] * 255.0 if pixels.dtype.kind == "f" else pixels[i], 0, 255).astype(np.uint8)
        tile = Image.fromarray(gray, mode="L").resize((side, side), Image.Resampling.NEAREST)
        canvas.paste(tile.convert("RGB"), (x0, y0))
        ref_p, art_p = int(reference[i].argmax()), int(probs[i].argmax())
        draw.text((x0, y0 + side + 2), f"#{i} true {int(labels[i])}", fill="black", font=font)
        draw.text(
            (x0, y0 + side + 15),
            f"ref {ref_p} art {art_p} ({probs[i, art_p]:.2f})",
            fill="firebrick" if art_p != int(labels[i]) else "darkgreen",
            font=font,
        )
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    info.update({"shown": len(shown), "file": path.name})
    return info
