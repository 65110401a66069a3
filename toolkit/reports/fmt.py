"""Number and text formatting shared by report.md and report.html (one place, so both round alike)."""

from __future__ import annotations

import math

DASH = "–"
RUNTIME_NAMES = {
    "tflite": "LiteRT",
    "onnxruntime": "ONNX Runtime",
    "openvino": "OpenVINO",
    "keras": "Keras",
    "tflm": "TFLite Micro",
}


def num(value: object) -> float | None:
    """A finite number, or None (bools, strings, NaN and missing values are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def ms(x: float | None) -> str:
    """Milliseconds as report.md has always shown them (3 decimals below 10 ms)."""
    if x is None:
        return DASH
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def ms_fine(x: float | None) -> str:
    """Milliseconds for the HTML tables: 4 decimals below 0.1 ms, where int8 rows live."""
    if x is None:
        return DASH
    if x < 0.1:
        return f"{x:.4f}"
    return f"{x:.3f}" if x < 10 else f"{x:,.1f}"


def ms_sig(x: float | None) -> str:
    """Milliseconds to 4 significant digits: the ends of a p50 interval, which differ in the 4th digit."""
    return DASH if x is None else f"{x:.4g}"


def interval(center: float | None, ci: tuple[float, float] | None, unit: str = "") -> str:
    """A 95 % interval as `low–high (±h %)`, h the larger distance from `center` as a percentage of it; `unit`
    follows `high` (" ms")."""
    if ci is None or center is None or center <= 0:
        return DASH
    low, high = ci
    half = 100 * max(center - low, high - center) / center
    return (
        f"{ms_sig(low)}–{ms_sig(high)}{unit} (±{half:.1f} %)"
        if half >= 0.05
        else (f"{ms_sig(low)}–{ms_sig(high)}{unit} (±<0.1 %)")
    )


def dur(x: float) -> str:
    """A duration in words' units: µs below 1 ms, s above 1,000 ms."""
    if x < 1:
        return f"{x * 1000:.3g} µs"
    return f"{x:.3g} ms" if x < 1000 else f"{x / 1000:.3g} s"


def size(n: float | None) -> str:
    if n is None:
        return DASH
    return f"{n / 1024:,.0f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:,.2f} MiB"


def fixed(x: float | None, digits: int, suffix: str = "") -> str:
    return DASH if x is None else f"{x:,.{digits}f}{suffix}"


def pct(x: float | None, digits: int = 2) -> str:
    """A 0..1 fraction as a percentage."""
    return DASH if x is None else f"{100 * x:.{digits}f} %"


def integer(x: float | None) -> str:
    return DASH if x is None else f"{x:,.0f}"


def plain(value: object) -> str:
    """Any JSON value as short plain text (not escaped)."""
    if value is None or value == "" or value == [] or value == {}:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(plain(v) for v in value)
    return str(value)


def threads_text(t: int | None) -> str:
    if t is None:
        return "default threads"
    return f"{t} thread" + ("" if t == 1 else "s")


def runtime_name(runtime: object) -> str:
    return RUNTIME_NAMES.get(str(runtime), str(runtime))
