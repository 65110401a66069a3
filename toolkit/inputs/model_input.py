"""How `edgekit predict` turns images into a model's input, and its output into results, for any model.

The reference CNN (input (N, 28, 28, 1), ten digit probabilities, pixels 0..1) keeps the MNIST photo
preprocessing of `photo.py`. Any other image model gets the generic pipeline: grey (C = 1) or RGB
(C = 3), resized to the model's H×W with Pillow's bilinear filter, pixels 0..255 mapped linearly onto
the input's value range. The range comes from `--value-range`, else the model's spec in a run's
manifest or a bundle, else the file's int8/uint8 input quantization, else 0..255 (the convention of
Keras `image_dataset_from_directory`: the model holds its own Rescaling). The runner then casts to
the input dtype and quantizes integer inputs with the file's scale and zero point.

Imports numpy at module level (loaded only by `predict`); Pillow inside the functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from toolkit.errors import ToolkitError
from toolkit.inputs.images import F32, read_pixels
from toolkit.inputs.photo import SIDE, Prepared, prepare

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec, TensorSpec

# Keras `image_dataset_from_directory` yields pixels 0..255; models trained on it hold their own Rescaling.
DEFAULT_RANGE: Final = (0.0, 255.0)
PROBABILITY_SLACK: Final = 0.05  # how far rows may be from summing to 1 and still read as probabilities


class PredictInputError(ToolkitError):
    """The model cannot take images the way they were asked for (vector input, channels, options)."""


@dataclass(frozen=True)
class InputPlan:
    """What predict does to each image before the model sees it.

    Attributes:
        mode: "mnist" (the digit pipeline), "grey-resize" (reference model, --no-preprocess: grey,
            Lanczos to 28×28) or "resize" (generic: grey or RGB, bilinear to H×W).
        height, width, channels: the model input's size.
        value_range: what pixels 0..1 (0..255 in the file) are mapped onto.
        range_source: where `value_range` came from, for the caption and --json.
        reference: the model is the reference digit CNN (results speak of digits).
    """

    mode: str
    height: int
    width: int
    channels: int
    value_range: tuple[float, float]
    range_source: str
    reference: bool
    channels_first: bool = False  # an NCHW model (an ONNX or TFLite file from PyTorch): batches are transposed

    def prepare(self, path: Path) -> list[Prepared]:
        """The model inputs from one file (an image, or a .npy of one or several), pixels in 0..1."""
        if self.mode == "mnist":
            return prepare(path, preprocess=True)
        if self.mode == "grey-resize":
            return prepare(path, preprocess=False)
        return prepare_resized(path, self.height, self.width, self.channels)

    def batch(self, prepared: list[Prepared]) -> F32:
        """Stack prepared images as float32 [N, H, W, C] (or [N, C, H, W] when `channels_first`) in `value_range`."""
        pixels = np.stack([p.pixels for p in prepared]).astype(np.float32)
        if pixels.ndim == 3:
            pixels = pixels[..., np.newaxis]
        if self.channels_first:
            pixels = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))
        lo, hi = self.value_range
        if (lo, hi) == (0.0, 1.0):
            return pixels
        out: F32 = (pixels * np.float32(hi - lo) + np.float32(lo)).astype(np.float32)
        return out

    def describe(self) -> str:
        """How the images were prepared, e.g. `resized to 16×16 RGB (bilinear), pixels 0..255 → 0..255 (default)`."""
        lo, hi = self.value_range
        mapped = f"pixels 0..255 → {lo:g}..{hi:g} ({self.range_source})"
        if self.mode == "mnist":
            return "on" if self.reference else f"MNIST digit (--mnist-preprocess), {mapped}"
        if self.mode == "grey-resize":
            return "off (--no-preprocess)"
        colour = "grey" if self.channels == 1 else "RGB"
        return f"resized to {self.height}×{self.width} {colour} (bilinear), {mapped}"


def parse_value_range(text: str) -> tuple[float, float]:
    """`--value-range LO,HI` as two floats.

    Raises:
        PredictInputError: not two finite numbers with LO < HI.
    """
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        lo, hi = math.nan, math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise PredictInputError(
            f"--value-range {text!r} is not LO,HI with two numbers and LO < HI; e.g. --value-range 0,1 or -1,1."
        )
    return lo, hi


def is_reference(spec: ModelSpec) -> bool:
    """True for the reference digit CNN: its shapes, and nothing in the spec saying otherwise."""
    from toolkit.model.spec import reference_spec

    ref = reference_spec()
    return (
        spec.mismatch(ref) is None
        and spec.class_names in (None, ref.class_names)
        and spec.value_range == ref.value_range
        and spec.output_kind == ref.output_kind
    )


def plan_input(
    spec: ModelSpec,
    model: Path,
    *,
    declared: bool,
    preprocess: bool = True,
    mnist: bool = False,
    value_range: tuple[float, float] | None = None,
) -> InputPlan:
    """Choose the preprocessing for a model with this spec.

    Args:
        spec: the model's spec (from the file, with a manifest's or bundle's range, kind and names).
        model: the model file (named in errors).
        declared: the spec's range, kind and names come from a manifest or bundle, not defaults.
        preprocess: the MNIST preprocessing for the reference model (False: grey and resize only).
        mnist: the MNIST preprocessing on request, for any (N, 28, 28, 1) model.
        value_range: `--value-range`, overriding the spec's.

    Raises:
        PredictInputError: a vector input, a channel count other than 1 or 3, a dynamic H or W,
            `mnist` for a model that does not take 28×28 grey images, or `mnist` with `preprocess` off.
    """
    if spec.layout not in ("NHWC", "NCHW"):
        raise PredictInputError(
            f"{model.name} takes vectors {spec.input_text()}, not images; edgekit predict needs a model "
            "with an (N, H, W, C) or (N, C, H, W) image input."
        )
    channels_first = spec.layout == "NCHW"
    if channels_first:
        channels, height, width = spec.input_tail
    else:
        height, width, channels = spec.input_tail
    reference = is_reference(spec)
    if mnist:
        if not preprocess:
            raise PredictInputError("--mnist-preprocess and --no-preprocess contradict each other; pass one of them.")
        if spec.input_tail != (SIDE, SIDE, 1):
            raise PredictInputError(
                f"--mnist-preprocess makes 28×28 grey digits (N, 28, 28, 1), but {model.name} takes "
                f"{spec.input_text()}; drop --mnist-preprocess."
            )
    if channels not in (1, 3):
        raise PredictInputError(
            f"{model.name} takes {channels} channels {spec.input_text()}; edgekit predict feeds grey (C = 1) "
            "or RGB (C = 3) images."
        )
    if height is None or width is None:
        raise PredictInputError(
            f"{model.name} takes images of any size {spec.input_text()}; edgekit predict needs a fixed height "
            "and width to resize to."
        )
    if value_range is not None:
        rng, source = value_range, "--value-range"
    elif declared or reference:
        rng, source = spec.value_range, "model spec"
    else:
        quantized = _quantized_range(spec)
        rng, source = quantized or DEFAULT_RANGE, "input quantization"
        if quantized is None:
            source = "default, as Keras image_dataset_from_directory; set --value-range"
    mode = "mnist" if mnist or (reference and preprocess) else "grey-resize" if reference else "resize"
    return InputPlan(mode, height, width, channels, rng, source, reference, channels_first)


def _quantized_range(spec: ModelSpec) -> tuple[float, float] | None:
    """The float range an int8/uint8 input with a scale can hold: without a manifest, the best guess of
    what the model was calibrated on (the converters take the input's range from the calibration data)."""
    return quantized_range(spec.input)


def quantized_range(inp: TensorSpec) -> tuple[float, float] | None:
    """The float range an int8/uint8 input tensor with a scale can hold (None for a float input)."""
    if inp.dtype not in ("int8", "uint8") or not inp.scale:
        return None
    info = np.iinfo(np.dtype(inp.dtype))
    zero = inp.zero_point or 0
    lo, hi = (info.min - zero) * inp.scale, (info.max - zero) * inp.scale
    # 4 significant digits: a scale of 1/255 reads as 0..1, not 0..0.999996.
    return (float(f"{lo:.4g}"), float(f"{hi:.4g}")) if lo < hi else None


def prepare_resized(path: Path, height: int, width: int, channels: int) -> list[Prepared]:
    """Read one file as grey or RGB pixels in 0..1 and resize them to height×width (Pillow, bilinear).

    Raises:
        ImageError: see `images.read_pixels`.
    """
    out = []
    for name, pixels in read_pixels(path, channels):
        size = (int(pixels.shape[1]), int(pixels.shape[0]))
        out.append(Prepared(name, resize_bilinear(pixels, height, width), size))
    return out


def resize_bilinear(pixels: F32, height: int, width: int) -> F32:
    """[H, W, C] float pixels → [height, width, C] with Pillow's bilinear filter, each channel alone."""
    from PIL import Image

    if pixels.shape[:2] == (height, width):
        return np.ascontiguousarray(pixels, dtype=np.float32)
    planes = []
    for c in range(pixels.shape[-1]):
        im = Image.fromarray(np.ascontiguousarray(pixels[..., c], dtype=np.float32), mode="F")
        planes.append(np.asarray(im.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32))
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0)


def output_kind(spec: ModelSpec, declared: bool, outputs: F32) -> tuple[str, str | None]:
    """What the model's outputs are, and a note when that was inferred from the outputs themselves.

    A manifest or bundle says it; a bare file does not, so a one-wide output reads as a value and
    rows that are not probabilities (outside 0..1, or not summing to 1) as logits.
    """
    if declared or is_reference(spec):
        return spec.output_kind, None
    if outputs.shape[1] == 1:
        return "values", "one output and no manifest: read as a value (regression)"
    sums = outputs.sum(axis=1)
    if (
        float(outputs.min()) >= -0.01
        and float(outputs.max()) <= 1.01
        and bool(np.all(np.abs(sums - 1) <= PROBABILITY_SLACK))
    ):
        return "probabilities", None
    return "logits", "outputs do not sum to 1: read as logits and reported as their softmax"


def softmax(logits: F32) -> F32:
    """Row-wise softmax, stable for large logits."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    out: F32 = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out
