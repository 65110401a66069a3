"""The per-layer sensitivity ranking the diagnosis shows beside its verdict (optional input).

Two sources, both optional:
- the run's mixed.json (written by `edgekit export --max-accuracy-drop/--min-agreement`), which holds each
  format's ranking as measured there;
- `exporters.sensitivity.rank_layers`, measured now, when asked for (`diagnose --sensitivity`) and when
  this edgekit has that module.
Rows are `{"layer", "only_float", "only_quantized", "only_float_agreement", "only_quantized_agreement"}`:
accuracy (agreement with Keras when there are no labels) of full int8 with only that layer in float, and of
float with only that layer quantized; most sensitive first. The diagnosis works the same without them.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolkit.errors import ToolkitError

MIXED_JSON = "mixed.json"  # toolkit/steps/mixed.py's document, read as plain JSON (no import of the step)


def available() -> bool:
    """Whether `exporters.sensitivity` (the ranking's measurement) is installed with this edgekit."""
    try:
        return importlib.util.find_spec("exporters.sensitivity") is not None
    except (ImportError, ValueError):
        return False


def _row(layer: str, f_acc: Any, f_agr: Any, o_acc: Any, o_agr: Any) -> dict[str, Any]:
    return {
        "layer": layer,
        "only_float": f_acc if f_acc is not None else f_agr,
        "only_quantized": o_acc if o_acc is not None else o_agr,
        "only_float_agreement": f_agr,
        "only_quantized_agreement": o_agr,
    }


def mixed_json_images(run_dir: Path) -> int | None:
    """How many images the run's mixed.json ranking was measured on (None: no mixed.json)."""
    try:
        return int(json.loads((run_dir / MIXED_JSON).read_text(encoding="utf-8")).get("images"))
    except (OSError, ValueError, TypeError):
        return None


def from_mixed_json(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Format (tflite/onnx) → ranking rows, from the run's mixed.json; empty if it has none (or is unreadable)."""
    path = run_dir / MIXED_JSON
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for fmt in doc.get("formats") or []:
        rows = [
            _row(
                str(r.get("layer")),
                r.get("float_accuracy"),
                r.get("float_agreement"),
                r.get("only_accuracy"),
                r.get("only_agreement"),
            )
            for r in fmt.get("ranking") or []
        ]
        if rows and fmt.get("format"):
            out[str(fmt["format"])] = rows
    return out


def measure(
    model: Any, calibration: Any, images: Any, labels: Any, formats: tuple[str, ...], target: str = "portable"
) -> dict[str, list[dict[str, Any]]]:
    """Format → ranking rows, measured now with `exporters.sensitivity.rank_layers` (one-line error if absent)."""
    if not available():
        raise ToolkitError("--sensitivity needs exporters.sensitivity, which this edgekit does not have.")
    from exporters.int8_recipe import parse_target
    from exporters.sensitivity import rank_layers  # type: ignore[import-not-found,unused-ignore]

    rankings = rank_layers(
        model,
        calibration_data=calibration,
        images=images,
        labels=labels,
        formats=formats,
        target=parse_target(target),
    )
    return {
        fmt: [_row(s.layer, s.float_accuracy, s.float_agreement, s.only_accuracy, s.only_agreement) for s in r.layers]
        for fmt, r in rankings.items()
    }


def by_artifact(entries: list[dict[str, Any]], by_format: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Artifact name → its format's ranking (only int8 artifacts: the ranking is about int8 quantization)."""
    return {
        e["name"]: by_format[e["format"]]
        for e in entries
        if e.get("format") in by_format and e.get("precision") == "int8"
    }


Measure = Callable[[Any], dict[str, list[dict[str, Any]]]]


def measurer(entries: list[dict[str, Any]], calibration: Any, images: Any, labels: Any) -> Measure:
    """A function of the Keras model measuring the int8 artifacts' formats' ranking (refuses now if absent)."""
    if not available():  # refuse before the long work
        raise ToolkitError("--sensitivity needs exporters.sensitivity, which this edgekit does not have.")
    int8 = [e for e in entries if e.get("precision") == "int8"]
    formats = tuple(dict.fromkeys(e["format"] for e in int8))
    # The ranking quantizes as the exports did: the ONNX int8 file's recipe target (see exporters.int8_recipe).
    target = next(
        (str(e["quantization"]["target"]) for e in int8 if e["format"] == "onnx" and e.get("quantization")), "portable"
    )
    return lambda model: measure(model, calibration, images, labels, formats, target) if formats else {}


def for_run(
    run_dir: Path, entries: list[dict[str, Any]], model: Any, measure_now: Measure | None, images: int
) -> tuple[dict[str, Any], str | None]:
    """Artifact → ranking rows, and where they come from: measured now if asked, else the run's mixed.json."""
    by_format = measure_now(model) if measure_now is not None else from_mixed_json(run_dir)
    ranking = by_artifact(entries, by_format)
    if not ranking:
        return {}, None
    n = images if measure_now is not None else mixed_json_images(run_dir)
    from_export = f"from {MIXED_JSON} (`export --max-accuracy-drop`)"
    where = "measured by this diagnose" if measure_now is not None else from_export
    return ranking, where + (f", on {n:,} test examples" if n else "")
