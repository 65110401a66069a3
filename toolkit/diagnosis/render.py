"""Tables and Markdown for `edgekit diagnose` (shared by diagnose.md and the console).

The module renders diagnose.json's JSON form (what `toolkit.diagnosis.step` builds); the console's functions
at the end take the typed `DiagnoseDocument` and its parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolkit.diagnosis.channels import SETS_SCALE_RATIO, fmt_num
from toolkit.diagnosis.layers import IDENTITY_LAYERS, SNR_CAP_DB, is_input_row

if TYPE_CHECKING:
    from toolkit.run.documents import DiagnosedArtifact, DiagnoseDocument

Table = tuple[list[str], list[list[str]]]


def fmt_snr(v: float | None) -> str:
    if v is None:
        return "–"
    return "exact" if v >= SNR_CAP_DB else f"{v:.1f}"


def _fmt_e(v: float | None) -> str:
    return "–" if v is None else ("0" if v == 0 else f"{v:.2e}")


def _fmt_pct(v: float) -> str:
    if abs(v) >= 1:
        return f"{v:+.1f} %"
    return "0 %" if v == 0 else f"{v:+.2g} %"


def short_tensor(name: str | None, width: int = 48) -> str:
    """The first of a fused tensor's names, without the model's own scope (`reference_cnn_1/`)."""
    if not name:
        return "–"
    parts = name.split(";")[0].split("/")
    short = "/".join(parts[-2:]) if len(parts) > 2 else "/".join(parts)
    return short if len(short) <= width else "…" + short[-(width - 1) :]


def _status(r: dict[str, Any], first: str | None) -> str:
    if r.get("departs") is None:
        return "fused" if r.get("fused_into") else "not found"
    if r["layer"] == first:
        return "departs (1st)"
    if r.get("departs_channels"):
        return "departs (channels)"
    return "departs" if r["departs"] else "ok"


def _layer_table(result: dict[str, Any], *, compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """Per-layer metrics of one artifact; `compact` (console) drops the type and shortens names."""
    first = (result.get("first_departure") or {}).get("layer")
    header = ["layer", "type", "export tensor", "max |err|", "mean |err|", "cosine", "SNR dB", "Δ SNR dB"]
    header += ["added err", "clipped", "status"]
    rows = []
    for r in result["layers"]:
        if r.get("tensor") is None:
            # Say where the layer went (folded into the BN after it, fused into an activation) or that no
            # tensor matched: never a blank that could pass for a match.
            where = r.get("note") or "no matching tensor"
            where = where if not compact or len(where) <= 40 else where[:39] + "…"
            line = [r["layer"], r["type"], where, "–", "–", "–", "–", "–", "–", "–", _status(r, first)]
        else:
            clipped = r.get("clipped_pct")
            layout = {"NCHW": " [NCHW]"}.get(r.get("layout", ""), "")
            line = [
                r["layer"],
                r["type"],
                (short_tensor(r["tensor"], 22) if compact else short_tensor(r["tensor"])) + layout,
                _fmt_e(r["max_abs_err"]),
                _fmt_e(r["mean_abs_err"]),
                f"{r['cosine']:.5f}",
                fmt_snr(r["snr_db"]),
                "–" if r.get("snr_drop_db") is None else f"{r['snr_drop_db']:+.1f}",
                _fmt_pct(r["added_error_pct"]),
                "–" if clipped is None else f"{clipped:.1f} %",
                _status(r, first),
            ]
        rows.append(line)
    if compact:  # the console: no type or Δ SNR column (both are in diagnose.md)
        drop = {1, 7}
        header = [h.replace(" |err|", "|err|") for i, h in enumerate(header) if i not in drop]
        rows = [[c for i, c in enumerate(line) if i not in drop] for line in rows]
    return header, rows


def _summary_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Every Keras layer (rows) against every artifact (columns): SNR dB / cosine."""
    results = report["artifacts"]
    header = ["layer", *[r["artifact"] for r in results]]
    names = [row["layer"] for row in results[0]["layers"]] if results else []
    rows = []
    for i, name in enumerate(names):
        line = [name]
        for res in results:
            r = res["layers"][i]
            if r.get("tensor") is None:
                line.append(f"in {r['fused_into']}" if r.get("fused_into") else "not found")
                continue
            mark = " ✗" if r.get("departs") else ""
            snr = fmt_snr(r["snr_db"])
            line.append(f"{snr}{'' if snr == 'exact' else ' dB'} / {r['cosine']:.4f}{mark}")
        rows.append(line)
    return header, rows


def _departure_text(result: dict[str, Any]) -> str:
    dep = result.get("first_departure")
    if not dep:
        rows = [r for r in result["layers"] if r.get("snr_db") is not None]
        worst = min(rows, key=lambda r: r["snr_db"])
        return (
            f"none: every layer stays within the thresholds (lowest SNR {fmt_snr(worst['snr_db'])} dB at "
            f"{worst['layer']}, lowest cosine {min(r['cosine'] for r in rows):.5f})"
        )
    source = "the model input" if dep["layer"] == "(input)" else f"the input {dep['layer'][len('(input ') : -1]}"
    where = (
        f"{source}'s quantization ({short_tensor(dep['tensor'])}, feeding {dep['first_keras_layer']})"
        if is_input_row(dep["layer"])
        else f"{dep['layer']} ({short_tensor(dep['tensor'])})"
    )
    return f"the error starts at **{where}**: {dep['reason']}"


def _cause_lines(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs: the cause of the departure and what to do about it (none when nothing departs)."""
    from toolkit.diagnosis.cause import cause_text

    cause = result.get("cause")
    if not cause:
        return []
    out = [("cause", cause_text(cause))]
    if cause.get("advice"):
        out.append(("what to do", str(cause["advice"])))
    return out


def channel_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per layer: the per-channel figures (range use under the tensor's scale, scale setters, channel SNR)."""
    header = ["layer", "channels", "int8 scale", "levels used (median / p90)", "range use", "sets the scale"]
    header += ["channel SNR dB (median / min)", "clipped channels"]
    rows = []
    for r in result["layers"]:
        ch = r.get("channels")
        if not ch or r["type"] in IDENTITY_LAYERS:
            continue
        lv, use = ch.get("levels"), ch.get("range_use_pct")
        setters = ", ".join(f"{s['channel']} ({_span(s['range'])})" for s in ch["sets_scale"][:3])
        if ch.get("scale_setters", 0) > 3:
            setters += f" +{ch['scale_setters'] - 3}"
        clipped = ", ".join(f"{c['channel']} ({c['clipped_pct']:.1f} %)" for c in ch["clipped_channels"][:3])
        snr = ch["channel_snr_db"]
        rows.append(
            [
                r["layer"],
                f"{ch['live_channels']} of {ch['channels']}"
                if ch["live_channels"] != ch["channels"]
                else str(ch["channels"]),
                "–" if ch.get("scale") is None else fmt_num(ch["scale"]),
                "–" if lv is None else f"{lv['median']:.0f} / {lv['p90']:.0f}",
                "–" if not use else f"{use['median']:.1f} % / {use['p90']:.1f} %",
                setters or "none",
                f"{fmt_snr(snr['median'])} / {fmt_snr(snr['min'])}",
                clipped or "none",
            ]
        )
    return header, rows


def _span(rng: list[float]) -> str:
    return f"= {fmt_num(rng[0])}" if rng[0] == rng[1] else f"{fmt_num(rng[0])}–{fmt_num(rng[1])}"


def sensitivity_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """The sensitivity ranking (from `exporters.sensitivity`), when the diagnosis was given one."""
    ranking = result.get("sensitivity")
    if not ranking:
        return None
    header = ["layer", "only this layer in float", "only this layer quantized"]

    def score(v: Any) -> str:
        return "–" if v is None else (f"{100 * v:.2f} %" if v <= 1 else f"{v:.3g}")

    return header, [[str(x.get("layer")), score(x.get("only_float")), score(x.get("only_quantized"))] for x in ranking]


def _ranking_text(result: dict[str, Any], top: int = 3) -> str:
    ranked = [r for r in result["added_error_ranking"] if r["added_error_pct"] > 1e-4][:top]
    return (
        ", ".join(
            f"{r['layer']} ({_fmt_pct(r['added_error_pct'])} error power, SNR {fmt_snr(r['snr_db'])} dB)"
            for r in ranked
        )
        or "no layer adds measurable error (all below 1e-4 % of the signal power)"
    )


def _output_view(result: dict[str, Any], section: dict[str, Any]) -> dict[str, Any]:
    """The artifact as one output sees it: the rows it depends on, its departure, cause and ranking."""
    keep = set(section["layers"])
    return {
        **result,
        "layers": [r for r in result["layers"] if r["layer"] in keep],
        "first_departure": section.get("first_departure"),
        "cause": section.get("cause"),
        "added_error_ranking": section.get("added_error_ranking") or [],
    }


def _output_title(section: dict[str, Any]) -> str:
    hurt = "; hurt most" if section.get("hurt") else ""
    return f"output {section['output']} ({section['kind']}, layer {section['layer']}{hurt})"


def _output_error_text(section: dict[str, Any], images: int) -> str:
    """One line: the output's error against the reference as its kind is measured."""
    e = section["error"]
    if e["measure"] == "top-1 agreement":
        text = f"top-1 agreement {e['value']:.4f} ({e['disagreements']} of {images} differ)"
        if e.get("accuracy") is not None:
            text += f"; accuracy {100 * e['accuracy']:.2f} % vs {100 * e['reference_accuracy']:.2f} % for the reference"
        return text + f"; max |Δ| {e['max_abs_err']:.3g}"
    text = f"{e['measure']} {100 * e['value']:.3g} % (max |Δ| {e['max_abs_err']:.3g}, mean {e['mean_abs_err']:.3g}"
    text += f", relative to {e['relative_to']})"
    if e.get("iou_with_reference") is not None:
        text += f"; mean IoU with the reference's boxes {e['iou_with_reference']:.4f}"
    return text


def _output_lines(res: dict[str, Any], images: int, reference: str) -> list[str]:
    """diagnose.md: one subsection per output of a model with several outputs."""
    lines: list[str] = []
    for section in res.get("outputs") or []:
        view = _output_view(res, section)
        snr = "–" if section.get("snr_db") is None else f"{fmt_snr(section['snr_db'])} dB"
        lines += [
            f"#### {res['artifact']}: {_output_title(section)}",
            "",
            f"- Error against {reference}: {_output_error_text(section, images)}; SNR at its layer {snr}.",
            *([f"- Note: {section['note']}."] if section.get("note") else []),
            f"- First departure on its path: {_departure_text(view)}.",
            *(f"- {label.capitalize()}: {text}" for label, text in _cause_lines(view)),
            f"- Most error added by: {_ranking_text(view)}.",
            "",
            *_md_table(*_layer_table(view), left=3),
            "",
        ]
    return lines


def _md_table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    def cell(c: str) -> str:
        return c.replace("|", "\\|")

    align = ["---" if i < left else "---:" for i in range(len(header))]
    return [
        "| " + " | ".join(cell(h) for h in header) + " |",
        "| " + " | ".join(align) + " |",
        *["| " + " | ".join(cell(c) for c in r) + " |" for r in rows],
    ]


def _speed_evidence(rec: dict[str, Any]) -> list[str]:
    ev = rec.get("evidence")
    if not ev:
        return []
    if "ops" in ev:
        ops = ev["ops"]
        lines = [
            f"LiteRT ops ({ops['delegate_nodes']} DELEGATE node(s); activation dtypes "
            f"{', '.join(ops['activation_dtypes'])}):",
            "",
        ]
        lines += _md_table(
            ["op", "runs on", "output dtype"],
            [[o["op"], "XNNPACK" if o["delegated"] else "built-in kernel", ", ".join(o["types"])] for o in ops["ops"]],
            left=3,
        )
        tm = ev["timings"]
        lines += [
            "",
            *_md_table(
                ["timed here (b1, 1 thread, median)", "XNNPACK on", "XNNPACK off"],
                [
                    [rec["artifact"], f"{tm['xnnpack_on_ms']:.3f} ms", f"{tm['xnnpack_off_ms']:.3f} ms"],
                    [rec["sibling"], f"{tm['sibling_xnnpack_on_ms']:.3f} ms", f"{tm['sibling_xnnpack_off_ms']:.3f} ms"],
                ],
            ),
        ]
        return lines
    prof, base = ev["profile"], ev["sibling_profile"]
    if "nodes" in prof:
        return _openvino_evidence(rec, ev)
    ops = list(dict.fromkeys([*prof["kernel_us_per_inference"], *base["kernel_us_per_inference"]]))
    rows = [
        [
            op,
            f"{prof['kernel_us_per_inference'].get(op, 0):.2f}",
            f"{base['kernel_us_per_inference'].get(op, 0):.2f}",
        ]
        for op in ops
    ]
    rows.append(["**total**", f"{prof['kernel_total_us']:.2f}", f"{base['kernel_total_us']:.2f}"])
    return [
        f"ORT profiler, kernel µs per inference ({prof['runs']} batch-1 runs, 1 thread); CPU: "
        f"{ev['cpu'].get('isa_class', '?')}, {' '.join(ev['cpu'].get('features') or []) or 'no checked features'} "
        f"({ev['cpu']['model']}):",
        "",
        *_md_table(["op type", rec["artifact"], rec["sibling"]], rows),
    ]


def _openvino_evidence(rec: dict[str, Any], ev: dict[str, Any]) -> list[str]:
    """OpenVINO's performance counters per layer scope, both artifacts side by side, with the kernels they ran."""
    from toolkit.diagnosis.ov_evidence import by_layer

    prof, base = ev["profile"], ev["sibling_profile"]
    mine, theirs = by_layer(prof["nodes"]), by_layer(base["nodes"])
    none = (0.0, "")
    rows = [
        [
            layer,
            mine.get(layer, none)[1] or "-",
            theirs.get(layer, none)[1] or "-",
            f"{mine.get(layer, none)[0]:.1f}",
            f"{theirs.get(layer, none)[0]:.1f}",
        ]
        for layer in dict.fromkeys([*mine, *theirs])
    ]
    rows.append(["**total**", "", "", f"{prof['total_us']:.1f}", f"{base['total_us']:.1f}"])
    art, sib = rec["artifact"], rec["sibling"]
    return [
        f"OpenVINO performance counters, µs per inference by layer ({prof['runs']} batch-1 runs, 1 thread, f32 "
        f"inference precision, medians); CPU: {ev['cpu'].get('isa_class', '?')}, "
        f"{' '.join(ev['cpu'].get('features') or []) or 'no checked features'} ({ev['cpu']['model']}):",
        "",
        *_md_table(["layer", f"{art} kernels", f"{sib} kernels", f"{art} µs", f"{sib} µs"], rows, left=3),
    ]


def render_markdown(report: dict[str, Any]) -> str:
    th = report["thresholds"]
    lines = [
        f"# Diagnose: {report['run']}",
        "",
        f"Each export against the reference ({report['reference']['artifact']}), layer by layer, on "
        f"{report['images']:,} test images "
        f"({report['data']['subset']}; data: {report['data']['source']}).",
        "",
        f"A layer **departs** when its SNR is below {th['departs_below_snr_db']:g} dB (error power above 1 % of the "
        f"signal) or its cosine similarity below {th['departs_below_cosine']:g}. Metrics: {th['metrics']}. "
        "`added err` is the error power a layer adds, as a percentage of its signal power, over the rows of its "
        "Keras inputs (the worst of them after a branch merge; the float image counts as exact); layers are "
        "ranked by it. `clipped` is the share of Keras values "
        "outside the range the export's quantized tensor can hold. `(input)` is the input as the first layer "
        "receives it (after the export's own input quantization). A layer the converter folded or fused into "
        "another (BatchNormalization into its conv, an activation into its op) has no tensor of its own: its "
        "row names the layer that holds its value.",
        "",
        "## Per-layer error",
        "",
        "SNR dB / cosine against Keras (✗: departs):",
        "",
        *_md_table(*_summary_table(report)),
        "",
    ]
    for res in report["artifacts"]:
        lines += _artifact_section(res, report)
    lines += _speed_section(report["speed"])
    return "\n".join(lines).rstrip() + "\n"


def _artifact_section(res: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """One artifact's section: departure, cause, ranking, agreement, gallery, then its layer and channel tables."""
    inst = res["instrumentation"]
    gal = res["gallery"]
    if gal["file"]:
        link = f"[{gal['file']}]({gal['file']})" + (
            f" (first {gal['shown']} shown)" if gal["shown"] < gal["count"] else ""
        )
    elif gal.get("skipped"):
        link = f"none: {gal['skipped']}"
    else:
        link = "none: every image agrees with the reference"
    reference = report["reference"]["artifact"]
    lines = [f"### {res['artifact']}", "", f"- First departure: {_departure_text(res)}."]
    lines += [f"- {label.capitalize()}: {text}" for label, text in _cause_lines(res)]
    lines.append(f"- Most error added by: {_ranking_text(res)}.")
    if res.get("top1_agreement") is not None:
        lines.append(
            f"- Top-1 agreement with {reference}: {res['top1_agreement']:.4f} ({res['disagreements']} of "
            f"{report['images']} differ); accuracy {100 * res['accuracy']:.2f} % vs "
            f"{100 * res['reference_accuracy']:.2f} % for the reference."
        )
    err = res.get("output_error")
    if err:
        lines.append(
            f"- Output against {reference}: max |error| {err['max_abs_err']:.3g} (mean {err['mean_abs_err']:.3g}), "
            f"{100 * err['max_rel_err']:.3g} % of the largest |Keras output| value."
        )
    lines += [
        f"- Gallery of disagreements: {link}.",
        f"- Instrumented run: {inst['how']}; its output differs from the plain run's by at most "
        f"{inst['max_abs_diff_vs_plain_output']:.2e} ({inst['top1_changes_vs_plain']} top-1 changes).",
    ]
    if res.get("flatten_order"):
        lines.append(
            f"- Flatten order: {res['flatten_order']}"
            + (" (same as Keras)." if res["flatten_order"] == "NHWC" else " (reordered to NHWC before comparing).")
        )
    if res.get("outputs"):
        lines.append(
            "- Several outputs: the departure, cause and ranking above are those of the output hurt most (the one "
            "whose layer ends with the lowest SNR); each output's own map follows the artifact's table."
        )
    lines += ["", *_md_table(*_layer_table(res), left=3), ""]
    lines += _output_lines(res, report["images"], reference)
    lines += [
        "Per channel (the last axis of each layer's output), against the same tensor's scale: how many int8 "
        "levels the channels' ranges span, the share of the levels that is (range use), the channels whose "
        f"range is over {SETS_SCALE_RATIO:g}× the median channel's (they set the scale), and the channels' SNR:",
        "",
        *_md_table(*channel_table(res), left=1),
        "",
    ]
    sens = sensitivity_table(res)
    if sens:
        src = f" ({report['sensitivity_source']})" if report.get("sensitivity_source") else ""
        lines += [
            f"Sensitivity (accuracy with only that layer left in float / only that layer quantized){src}:",
            "",
        ]
        lines += [*_md_table(*sens), ""]
    return lines


def _speed_section(speed: list[dict[str, Any]]) -> list[str]:
    """The slowdown explainer: each quantized artifact's verdict, reason and evidence."""
    lines = ["## Slowdown explainer", ""]
    if not speed:
        lines += ["No quantized artifact was diagnosed.", ""]
    for rec in speed:
        title = f"### {rec['artifact']}" + (f" vs {rec['sibling']}" if rec.get("sibling") else "")
        verdict = {True: "slower", False: "not slower", None: "not compared"}[rec.get("slower")]
        lines += [title, "", f"**{verdict}.** {rec['reason']}", "", *_speed_evidence(rec), ""]
    return lines


# -- the console (`edgekit diagnose`): the same tables and lines, from the typed document -----------------
def layer_table(result: DiagnosedArtifact, *, compact: bool = False) -> Table:
    """Per-layer metrics of one artifact; `compact` (console) drops the type and shortens names."""
    from toolkit.run.documents import dump_document

    return _layer_table(dump_document(result), compact=compact)


def summary_table(report: DiagnoseDocument) -> Table:
    """Every Keras layer (rows) against every artifact (columns): SNR dB / cosine."""
    from toolkit.run.documents import dump_document

    return _summary_table(dump_document(report))


def departure_text(result: DiagnosedArtifact) -> str:
    """Where the error starts, in one line (Markdown bold around the layer)."""
    from toolkit.run.documents import dump_document

    return _departure_text(dump_document(result))


def cause_lines(result: DiagnosedArtifact) -> list[tuple[str, str]]:
    """(label, text) pairs: the cause of the departure and what to do about it (none when nothing departs)."""
    from toolkit.run.documents import dump_document

    return _cause_lines(dump_document(result))


def ranking_text(result: DiagnosedArtifact, top: int = 3) -> str:
    """The layers that add the most error, in one line."""
    from toolkit.run.documents import dump_document

    return _ranking_text(dump_document(result), top)


@dataclass(frozen=True)
class OutputView:
    """One output of a model with several outputs, as the console prints it."""

    title: str
    error: str
    table: Table
    departure: str
    causes: list[tuple[str, str]]
    ranking: str
    note: str = ""  # an output with no row of its own (a file source's ArgMax label): whose map it takes


def output_views(result: DiagnosedArtifact, images: int) -> list[OutputView]:
    """Each output's map, error, departure, cause and ranking (none for a model with one output)."""
    from toolkit.run.documents import dump_document

    res = dump_document(result)
    views = []
    for section in res.get("outputs") or []:
        view = _output_view(res, section)
        views.append(
            OutputView(
                title=_output_title(section),
                error=_output_error_text(section, images),
                table=_layer_table(view, compact=True),
                departure=_departure_text(view),
                causes=_cause_lines(view),
                ranking=_ranking_text(view),
                note=str(section.get("note") or ""),
            )
        )
    return views
