"""Per-layer int8 sensitivity (TFLite and ONNX Runtime) and the greedy float-layer search under a budget.

How to call it (e.g. from toolkit/diagnosis)::

    from exporters.sensitivity import rank_layers
    rankings = rank_layers(
        keras_model,                       # the loaded Keras model
        calibration_data=calibration,      # float32 images, as for the int8 export (Dataset.calibration)
        images=test_images,                # float32 evaluation images (e.g. Dataset.test_split, 500-2,000)
        labels=test_labels,                # int labels, or None (then only agreement is measured)
        formats=("tflite", "onnx"),        # either or both
        only_quantized=True,               # also measure (b); False halves the time
    )
    r = rankings["tflite"]                 # a SensitivityRanking
    r.int8_accuracy, r.int8_agreement      # full int8, for comparison
    for s in r.layers:                     # LayerSensitivity, most sensitive first
        s.layer, s.float_accuracy, s.float_agreement, s.only_accuracy, s.only_agreement
    r.order()                              # layer names, most sensitive first

Each row is measured on a real exported file run through `runtimes.registry.make_runner`:
(a) `float_*`: full int8 except this layer and its output tensor kept in float (exporters/mixed.py);
(b) `only_*`: every op in float except this layer's (so its weights and output are int8).
Agreement is top-1 agreement with the Keras model; accuracies are None without labels. A layer is more
sensitive the more (a) recovers over full int8, then the more (b) loses against float. Costs one re-quantize
and one evaluation per layer and measure (TFLite re-uses one calibration; ONNX re-calibrates each time).
Raises `ExportError` as the exporters do.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from exporters.errors import ExportError
from exporters.int8_recipe import Int8Target
from exporters.mixed import OnnxMixed, TFLiteMixed
from runtimes.errors import one_line
from runtimes.registry import make_runner

if TYPE_CHECKING:
    from exporters.openvino_export import OpenVinoMixed

FORMATS = ("tflite", "onnx")


@dataclass(frozen=True)
class Score:
    """One exported variant measured against Keras."""

    accuracy: float | None
    agreement: float
    rel_error: float  # max |Δ output| / max |Keras output|


@dataclass(frozen=True)
class LayerSensitivity:
    layer: str
    float_accuracy: float | None  # (a) only this layer kept in float
    float_agreement: float
    only_accuracy: float | None  # (b) only this layer quantized (None, None if not measured)
    only_agreement: float | None
    float_ops: int  # ops the toolchain kept in float for (a): the layer's own and those reading its output


@dataclass(frozen=True)
class SensitivityRanking:
    format: str
    images: int
    keras_accuracy: float | None
    int8_accuracy: float | None
    int8_agreement: float
    layers: tuple[LayerSensitivity, ...]  # most sensitive first

    def order(self) -> list[str]:
        return [s.layer for s in self.layers]


def score(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> Score:
    top = outputs.argmax(axis=1)
    acc = None if labels is None else float((top == labels).mean())
    scale = float(np.abs(reference).max()) or 1.0
    return Score(acc, float((top == reference.argmax(axis=1)).mean()), float(np.abs(outputs - reference).max() / scale))


def run_file(path: Path, images: np.ndarray, batch: int = 250) -> np.ndarray:
    """Outputs of the exported file at `path` on `images` (float32), through its runtime's runner."""
    with make_runner(path, num_threads=1) as runner:
        return np.concatenate([runner.infer(images[i : i + batch]) for i in range(0, len(images), batch)])


def p50_batch1_ms(path: Path, image: np.ndarray, runs: int = 50) -> float:
    """Median batch-1 latency (ms) of `path`: 1 thread, 5 warm-up calls, then `runs` timed `infer` calls."""
    with make_runner(path, num_threads=1) as runner:
        x = np.ascontiguousarray(image[None], dtype=np.float32)
        for _ in range(5):
            runner.infer(x)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            runner.infer(x)
            times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


class Units(Protocol):
    """What a search keeps in float, one unit at a time: Keras layers (TFLite, ONNX), an ONNX source's weighted
    nodes, or an OpenVINO model's weighted operations."""

    layers: list[str]

    def float_ops(self, layers: list[str]) -> list[str]: ...

    def all_but(self, layer: str) -> list[str]: ...

    def check(self, layers: list[str], what: str) -> None: ...


class Variants:
    """Writes int8 variants of one model with chosen ops in float, for one format; calibrated once."""

    graph: Units

    def __init__(
        self, model: Any, fmt: str, calibration: np.ndarray, work: Path, target: Int8Target = Int8Target.PORTABLE
    ) -> None:
        try:
            self._setup(model, fmt, calibration, work, target)
        except (ExportError, ValueError):
            raise
        except Exception as exc:  # converter/quantizer failures: one line, as the exporters report them
            raise ExportError(f"{fmt} int8 variants failed: {one_line(exc)}") from exc

    @classmethod
    def of_onnx(cls, quantizer: OnnxMixed, work: Path) -> Variants:
        """Variants made by an already prepared ONNX quantizer (`OnnxFileMixed`: an ONNX file as the source)."""
        v = cls.__new__(cls)
        v.format, v.work, v._n = "onnx", work, 0
        v.tflite, v.onnx, v.graph = None, quantizer, quantizer.graph
        v.openvino = None
        return v

    @classmethod
    def of_openvino(cls, quantizer: OpenVinoMixed, work: Path) -> Variants:
        """OpenVINO IR variants (`exporters.openvino_export.OpenVinoMixed`): its units are weighted operations."""
        v = cls.__new__(cls)
        v.format, v.work, v._n = "openvino", work, 0
        v.tflite, v.onnx, v.openvino, v.graph = None, None, quantizer, quantizer.graph
        return v

    def _setup(self, model: Any, fmt: str, calibration: np.ndarray, work: Path, target: Int8Target) -> None:
        self.format = fmt
        self.work = work
        self._n = 0
        self.openvino: OpenVinoMixed | None = None
        if fmt == "tflite":
            self.tflite: TFLiteMixed | None = TFLiteMixed(model, calibration)
            self.onnx: OnnxMixed | None = None
            self.graph = self.tflite.graph
        elif fmt == "onnx":
            self.tflite, self.onnx = None, OnnxMixed(model, calibration, work, target)
            self.graph = self.onnx.graph
        else:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")

    def write(self, exclude: list[str]) -> Path:
        self._n += 1
        path = self.work / f"variant_{self._n}.{'xml' if self.openvino is not None else self.format}"
        try:
            if self.tflite is not None:
                path.write_bytes(self.tflite.quantize(exclude))
            elif self.openvino is not None:
                self.openvino.write(exclude, path)
            else:
                assert self.onnx is not None
                self.onnx.quantize(exclude, path)
        except Exception as exc:
            raise ExportError(f"{self.format} int8 with {len(exclude)} op(s) in float failed: {one_line(exc)}") from exc
        return path

    def measure(self, exclude: list[str], images: np.ndarray, ref: np.ndarray, labels: np.ndarray | None) -> Score:
        path = self.write(exclude)
        try:
            return score(run_file(path, images), ref, labels)
        finally:
            path.unlink(missing_ok=True)
            path.with_suffix(".bin").unlink(missing_ok=True)  # an IR's weights


def keras_outputs(model: Any, images: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(images, batch_size=250, verbose=0), dtype=np.float32)


def _sort_key(s: LayerSensitivity) -> tuple[float, float]:
    only = 1.0 if s.only_agreement is None else s.only_agreement
    return (-s.float_agreement - (s.float_accuracy or 0.0), only + (s.only_accuracy or 0.0))


def rank_layers(
    model: Any,
    *,
    calibration_data: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    formats: tuple[str, ...] = FORMATS,
    only_quantized: bool = True,
    reference: np.ndarray | None = None,
    progress: Callable[[str], None] | None = None,
    target: Int8Target = Int8Target.PORTABLE,
) -> dict[str, SensitivityRanking]:
    """Rank the model's quantizable layers by int8 sensitivity, per format (see the module docstring).

    Args:
        model: the Keras model.
        calibration_data: float32 calibration images.
        images: float32 evaluation images.
        labels: their labels (None: agreement only).
        formats: "tflite" and/or "onnx".
        only_quantized: also measure (b), each layer quantized alone.
        reference: Keras outputs on `images` if already computed.
        progress: called with a short text before each measurement.
        target: the int8 recipe's CPU class (ONNX; see `exporters.int8_recipe`), as the exports use.
    """
    images = np.asarray(images, dtype=np.float32)
    ref = keras_outputs(model, images) if reference is None else reference
    out: dict[str, SensitivityRanking] = {}
    for fmt in formats:
        with tempfile.TemporaryDirectory(prefix="edgekit-sensitivity-") as work:
            v = Variants(model, fmt, calibration_data, Path(work), target)
            out[fmt] = rank_variants(v, images, ref, labels, only_quantized=only_quantized, progress=progress)
    return out


def rank_variants(
    v: Variants,
    images: np.ndarray,
    reference: np.ndarray,
    labels: np.ndarray | None,
    *,
    only_quantized: bool = True,
    progress: Callable[[str], None] | None = None,
) -> SensitivityRanking:
    """Rank the units of `v`'s graph (Keras layers, or an ONNX source's weighted nodes) by int8 sensitivity
    against `reference` (the float model's outputs on `images`), as `rank_layers` does for one format."""
    keras_acc = None if labels is None else float((reference.argmax(axis=1) == labels).mean())
    full = v.measure([], images, reference, labels)
    rows = []
    for layer in v.graph.layers:
        if progress:
            progress(f"{v.format}: {layer}")
        exclude = v.graph.float_ops([layer])
        a = v.measure(exclude, images, reference, labels)
        b = v.measure(v.graph.all_but(layer), images, reference, labels) if only_quantized else None
        rows.append(
            LayerSensitivity(
                layer,
                a.accuracy,
                a.agreement,
                None if b is None else b.accuracy,
                None if b is None else b.agreement,
                len(exclude),
            )
        )
    return SensitivityRanking(
        v.format, len(images), keras_acc, full.accuracy, full.agreement, tuple(sorted(rows, key=_sort_key))
    )
