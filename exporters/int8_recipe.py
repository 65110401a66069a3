"""Which int8 recipe an export uses, by the CPU class it targets, and what the manifest records of it.

ONNX Runtime's int8 kernels differ by instruction set. On x86-64 it runs int8 activations as uint8 and, on a
CPU without VNNI (AVX2-only, or AVX-512 without VNNI), multiplies u8×s8 pairs with VPMADDUBSW, whose 16-bit
sums saturate when both weights of a pair are large: a full-range int8 file then answers differently there
than on a VNNI CPU or an Arm board. Measured on the reference CNN (10,000 MNIST test images, agreement with
Keras; examples/measure_int8_recipes.py, benchmarks/results/int8-recipes-2026-12-05-x86_64-xeon-2cpu.md):
full-range S8S8 and U8S8 0.9997 on an AMX Xeon, emulated Nehalem (SSE4.2) and emulated Cortex-A72/A76, but
0.9964 with max |Δp| 0.74 on emulated Haswell (AVX2). ORT's quantization guide names the fixes: 7-bit weights
(`reduce_range`: no pair sum can exceed int16) or U8U8. Both gave the same outputs on all five CPU classes;
U8S8 with 7-bit weights keeps the VPMADDUBSW/VNNI kernels and was the fastest recipe on the Xeon (batch 1:
0.057 ms against 0.080 ms for the S8S8 recipe edgekit used before, 0.068 ms U8U8; batch 32: 1.04 ms, 1.68 ms,
1.46 ms), at a cost of 1 answer in 10,000 (agreement 0.9996): it is the default, `portable`.

A user who ships to one known CPU class can keep full 8-bit weights (`--target`): U8S8 on x86-64 with VNNI,
the same kernels as `portable` there; or S8S8 on arm64, ONNX Runtime's default for Arm (whose kernels do not
saturate; not timed here: QEMU gives no timing). Neither is portable to x86-64 without VNNI, and the manifest
says so.

TFLite int8 files are the same for every target: LiteRT's int8 kernels gave byte-identical outputs on every
x86-64 class tried, and on Arm XNNPACK and the built-in kernels round within a few output steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from exporters.base import ExportFormat, Precision


class Int8Target(str, Enum):
    """The CPU class an int8 export is made for."""

    PORTABLE = "portable"  # the same answers on every x86-64 and Arm CPU
    X86_VNNI = "x86-vnni"  # x86-64 with AVX-512 VNNI, AVX-VNNI or AMX only: full 8-bit weights
    ARM64 = "arm64"  # 64-bit Arm only: ONNX Runtime's S8S8 default, full 8-bit weights


@dataclass(frozen=True)
class OnnxInt8Recipe:
    """Static QDQ quantization settings for `onnxruntime.quantization.quantize_static` (per-channel weights)."""

    name: str
    activations: str  # "uint8" or "int8"
    weights: str  # "int8"
    reduce_range: bool  # 7-bit weights
    portable: bool
    why: str

    def description(self) -> str:
        bits = "7-bit (reduce_range)" if self.reduce_range else "8-bit"
        return f"static QDQ: {self.activations} activations, per-channel {self.weights} weights, {bits}"

    def quantize_options(self) -> dict[str, Any]:
        """The keyword arguments `quantize_static` takes for this recipe (besides model paths and data)."""
        from onnxruntime.quantization import QuantFormat, QuantType

        types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
        return {
            "quant_format": QuantFormat.QDQ,
            "per_channel": True,
            "activation_type": types[self.activations],
            "weight_type": types[self.weights],
            "reduce_range": self.reduce_range,
        }


ONNX_RECIPES: dict[Int8Target, OnnxInt8Recipe] = {
    Int8Target.PORTABLE: OnnxInt8Recipe(
        "qdq-u8s8-7bit",
        "uint8",
        "int8",
        reduce_range=True,
        portable=True,
        why="7-bit weights: no int16 saturation on x86-64 without VNNI, so the same outputs on every CPU class; "
        "the fastest recipe measured on a VNNI/AMX Xeon",
    ),
    Int8Target.X86_VNNI: OnnxInt8Recipe(
        "qdq-u8s8",
        "uint8",
        "int8",
        reduce_range=False,
        portable=False,
        why="full 8-bit weights (1 answer in 10,000 closer to Keras on the reference CNN), the same kernels as "
        "portable on VNNI; saturates (other answers) on x86-64 without VNNI",
    ),
    Int8Target.ARM64: OnnxInt8Recipe(
        "qdq-s8s8",
        "int8",
        "int8",
        reduce_range=False,
        portable=False,
        why="ONNX Runtime's default for Arm, full 8-bit weights; on x86-64 slower (int8 activations converted to "
        "uint8) and it saturates (other answers) without VNNI",
    ),
}

_TFLITE = {
    Precision.INT8: "full integer: per-channel int8 weights, int8 activations and int8 I/O (TFLite converter)",
    Precision.INT8_DYNAMIC: "int8 weights, float activations quantized at run time (TFLite converter)",
    Precision.INT16X8: "int16 activations, int8 weights (TFLite converter)",
    Precision.INT4_WEIGHTS: "channelwise int4 weights, float activations (AI Edge Quantizer)",
    Precision.INT8_MIXED: "full integer with chosen layers in float (TFLite quantization debugger)",
}
_TFLITE_WHY = "the same file for every target: LiteRT's int8 outputs match across x86-64 classes, and Arm within steps"


def parse_target(value: str | Int8Target | None) -> Int8Target:
    """The target named by `value` (None: portable).

    Raises:
        ValueError: an unknown name; the message lists the targets.
    """
    if value is None:
        return Int8Target.PORTABLE
    try:
        return Int8Target(value)
    except ValueError:
        names = ", ".join(t.value for t in Int8Target)
        raise ValueError(f"unknown int8 target {value!r}; choose one of {names}.") from None


def quantization_record(
    fmt: ExportFormat, precision: Precision, target: Int8Target = Int8Target.PORTABLE
) -> dict[str, Any] | None:
    """What manifest.json records of an artifact's quantization recipe; None for float artifacts.

    A TFLite file is made the same way for every target, so its record always says `portable`.
    """
    if precision in (Precision.FP32, Precision.FP16):
        return None
    if fmt is ExportFormat.ONNX:
        recipe = ONNX_RECIPES[target]
        return {
            "target": target.value,
            "recipe": recipe.name,
            "description": recipe.description(),
            "portable": recipe.portable,
            "note": recipe.why,
        }
    return {
        "target": Int8Target.PORTABLE.value,
        "recipe": f"tflite-{precision.value}",
        "description": _TFLITE[precision],
        "portable": True,
        "note": _TFLITE_WHY,
    }
