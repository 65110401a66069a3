"""The "Model and data" view of a run made from the user's own model: model.json and dataset.json."""

from __future__ import annotations

from typing import Any

from toolkit.reports.fmt import as_dict, as_list, num
from toolkit.reports.model import ModelInfo

Doc = dict[str, Any]


def _shape(shape: object) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in as_list(shape)) + "]"


def _range(lo_hi: object) -> str:
    values = [num(v) for v in as_list(lo_hi)]
    if len(values) != 2 or None in values:
        return "–"
    return " – ".join(f"{v:g}" for v in values if v is not None)


def model_info(model: Doc, dataset: Doc | None) -> ModelInfo:
    """The "Model and data" view of a user run's model.json and dataset.json."""
    spec = as_dict(model.get("model_spec"))
    inp, outp = as_dict(spec.get("input")), as_dict(spec.get("output"))
    data = as_dict(dataset)
    names = as_list(spec.get("class_names")) or as_list(data.get("class_names"))
    classes = num(spec.get("num_classes"))
    return ModelInfo(
        name=str(model.get("name") or "?"),
        source=str(model.get("source") or ""),
        format=str(model.get("format") or "?"),
        params=num(model.get("params")),
        layers=tuple(
            (str(x.get("name", "?")), str(x.get("class", "?"))) for x in map(as_dict, as_list(model.get("layers")))
        ),
        unknown_layers=tuple(
            f"{x.get('name', '?')} ({x.get('class', '?')})" for x in map(as_dict, as_list(model.get("unknown_layers")))
        ),
        input_shape=_shape(inp.get("shape")),
        input_dtype=str(inp.get("dtype") or "float32"),
        input_range=_range(spec.get("value_range")),
        layout=str(spec.get("layout") or ""),
        output_shape=_shape(outp.get("shape")),
        output_dtype=str(outp.get("dtype") or "float32"),
        output_kind=str(spec.get("output_kind") or model.get("output_kind") or "probabilities"),
        num_classes=None if classes is None else int(classes),
        class_names=tuple(map(str, names)),
        data_name=str(data["name"]) if data.get("name") else None,
        data_kind=str(data.get("kind") or ""),
        data_source=str(data.get("source") or data.get("path") or ""),
        train=num(data.get("train")),
        test=num(data.get("test")),
        split=str(data.get("split") or ""),
        scale=num(data.get("scale")),
        task=str(data.get("task") or ("regression" if spec.get("output_kind") == "values" else "classification")),
        sample_shape=_shape(data.get("sample_shape")) if data.get("sample_shape") is not None else "–",
        data_dtype=str(data.get("dtype") or ""),
    )
