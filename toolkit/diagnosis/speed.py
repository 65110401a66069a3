"""Slowdown explainer: why a quantized artifact is slower than its fp32 sibling on the same runtime.

Timing comes from the run's bench.json when it measured both artifacts (then re-checked here with a
quick in-process timing), else from that quick timing alone. The evidence and the paragraph per
runtime are built in `evidence.py` (OpenVINO's in `ov_evidence.py`).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.diagnosis.evidence import (
    explain_onnx,
    explain_tflite,
    fmt_ms,
    onnx_reason,
    ort_time,
    tflite_reason,
    tflite_time,
)

QUANTIZED = ("int8", "int8-dynamic", "int16x8")
SLOWER_RATIO = 1.10  # "slower" means at least 10 % slower (p50) than the fp32 sibling
_RUNTIME_NAMES = {"tflite": "LiteRT", "onnx": "ONNX Runtime", "openvino": "OpenVINO"}


def bench_ratios(bench: dict[str, Any] | None, name: str, sibling: str) -> list[dict[str, Any]]:
    """p50 of both artifacts in every (batch, threads) both were measured at, from bench.json."""
    if not bench:
        return []
    rows: dict[tuple[str, int, int], float] = {}
    for r in bench.get("results", []):
        options = r.get("options") or {}
        # Only the default runner variant: a sweep's no-XNNPACK / low-ORT-opt rows would overwrite it.
        if options.get("xnnpack") is False or options.get("graph_optimization") not in (None, "all"):
            continue
        if r.get("artifact") in (name, sibling) and r.get("p50_ms"):
            rows[(r["artifact"], int(r["batch_size"]), int(r["threads"]))] = float(r["p50_ms"])
    out = []
    for (art, b, t), p50 in sorted(rows.items()):
        if art != name or (sibling, b, t) not in rows:
            continue
        base = rows[(sibling, b, t)]
        out.append({"batch_size": b, "threads": t, "p50_ms": p50, "sibling_p50_ms": base, "ratio": p50 / base})
    return out


# -- orchestration -----------------------------------------------------------------------------------
QUICK_TIMING = "quick in-process timing, median of ≥ 200 runs"


def _quick_config(entry: dict[str, Any], path: Path, sib_path: Path, image: np.ndarray) -> dict[str, Any]:
    if entry["format"] == "tflite":
        mine, theirs = tflite_time(path, image, xnnpack=True), tflite_time(sib_path, image, xnnpack=True)
    elif entry["format"] == "openvino":
        from toolkit.diagnosis.ov_evidence import ov_time

        mine, theirs = ov_time(path, image), ov_time(sib_path, image)
    else:
        mine, theirs = ort_time(path, image), ort_time(sib_path, image)
    return {"batch_size": 1, "threads": 1, "p50_ms": mine, "sibling_p50_ms": theirs, "ratio": mine / theirs}


def explain(
    entries: list[tuple[dict[str, Any], Path]],
    siblings: dict[str, tuple[dict[str, Any], Path]],
    bench: dict[str, Any] | None,
    image: np.ndarray,
) -> list[dict[str, Any]]:
    """One record per quantized artifact: timing, whether it is slower, evidence and a reason."""
    out: list[dict[str, Any]] = []
    for entry, path in entries:
        if entry["precision"] not in QUANTIZED:
            continue
        record: dict[str, Any] = {
            "artifact": entry["name"],
            "runtime": entry["runtime"],
            "precision": entry["precision"],
        }
        sib = siblings.get(entry["format"])
        if sib is None:
            record.update({"slower": None, "reason": f"no fp32 {entry['format']} artifact in this run to compare with"})
        else:
            _explain_one(record, entry, path, sib, bench, image)
        out.append(record)
    return out


def _explain_one(
    record: dict[str, Any],
    entry: dict[str, Any],
    path: Path,
    sib: tuple[dict[str, Any], Path],
    bench: dict[str, Any] | None,
    image: np.ndarray,
) -> None:
    """Fill one quantized artifact's record against its fp32 sibling: timing, verdict, evidence and reason."""
    name = entry["name"]
    sib_entry, sib_path = sib
    record["sibling"] = sib_entry["name"]
    timing = _timing(entry, path, sib, bench, image)
    ratio = timing["median_ratio"]
    record["timing"] = timing
    record["slower"] = ratio >= SLOWER_RATIO
    where = _RUNTIME_NAMES.get(entry["format"], "ONNX Runtime")
    detail = _timing_detail(timing)
    if record["slower"]:
        headline = f"{name} is {ratio:.2f}x slower than {sib_entry['name']} on {where} ({detail})."
    else:
        headline = (
            f"Not slower: {name} takes {ratio:.2f}x the time of {sib_entry['name']} on {where} ({detail}); "
            "the evidence, for reference:"
        )
    if entry["format"] == "tflite":
        ev = explain_tflite(entry, path, sib_path, image)
        record["evidence"] = ev
        if "int16" in ev["ops"]["activation_dtypes"] and entry["precision"] != "int16x8":
            record["anomaly"] = (
                f"{name} is labelled {entry['precision']} but its CONV_2D/FULLY_CONNECTED outputs are int16: "
                "it is a 16x8 model. Check the exporter (int8-dynamic should keep float activations)."
            )
        reason = tflite_reason(sib_entry["name"], ev, headline)
    elif entry["format"] == "openvino":
        from toolkit.diagnosis.ov_evidence import explain_openvino, openvino_reason

        ev = explain_openvino(path, sib_path, image)
        record["evidence"] = ev
        reason = openvino_reason(sib_entry["name"], ev, headline)
    else:
        ev = explain_onnx(entry, path, sib_path, image)
        record["evidence"] = ev
        reason = onnx_reason(sib_entry["name"], ev, headline)
    if timing["source"] == "bench.json":
        reason += _cross_check(record, entry, path, sib, image)
    if record.get("anomaly"):
        reason += " " + record["anomaly"]
    record["reason"] = reason


def _timing(
    entry: dict[str, Any],
    path: Path,
    sib: tuple[dict[str, Any], Path],
    bench: dict[str, Any] | None,
    image: np.ndarray,
) -> dict[str, Any]:
    """The artifact's time against its sibling's: bench.json's configurations, else a quick timing here."""
    configs = bench_ratios(bench, entry["name"], sib[0]["name"])
    if configs:
        method = (bench or {}).get("method", {})
        timing: dict[str, Any] = {
            "source": "bench.json",
            "settings": {k: method.get(k) for k in ("min_runs", "min_seconds", "warmup_runs")},
            "configs": configs,
        }
    else:
        timing = {"source": QUICK_TIMING, "configs": [_quick_config(entry, path, sib[1], image)]}
    timing["median_ratio"] = statistics.median(c["ratio"] for c in timing["configs"])
    return timing


def _timing_detail(timing: dict[str, Any]) -> str:
    if len(timing["configs"]) == 1:
        c = timing["configs"][0]
        return (
            f"{timing['source']}, b{c['batch_size']} × {c['threads']}t: p50 {fmt_ms(c['p50_ms'])} vs "
            f"{fmt_ms(c['sibling_p50_ms'])}"
        )
    c = max(timing["configs"], key=lambda c: c["ratio"])
    return (
        f"median over {len(timing['configs'])} configurations in {timing['source']}; worst "
        f"b{c['batch_size']} × {c['threads']}t: p50 {fmt_ms(c['p50_ms'])} vs {fmt_ms(c['sibling_p50_ms'])}"
    )


def _cross_check(
    record: dict[str, Any], entry: dict[str, Any], path: Path, sib: tuple[dict[str, Any], Path], image: np.ndarray
) -> str:
    """Re-time here to cross-check the bench.json verdict (bench.json may be a --quick look); what the reason
    adds when the verdict is not reproduced."""
    sib_entry, sib_path = sib
    check = _quick_config(entry, path, sib_path, image)
    record["timing"]["checked_here"] = check
    if (check["ratio"] >= SLOWER_RATIO) == record["slower"]:
        record["reproduced"] = True
        return ""
    settings = record["timing"]["settings"]
    record["reproduced"] = False
    return (
        f" Re-timed here ({QUICK_TIMING}, b1 × 1t) it takes {check['ratio']:.2f}x the time of "
        f"{sib_entry['name']} ({fmt_ms(check['p50_ms'])} vs {fmt_ms(check['sibling_p50_ms'])}), so the "
        f"bench.json verdict is not reproduced (bench.json used {settings.get('min_runs')} runs / "
        f"{settings.get('min_seconds')} s per configuration); treat the difference as noise."
    )
