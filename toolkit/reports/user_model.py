"""The "Model and data" view of a run made from the user's own model: model.json and dataset.json."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from toolkit.reports.model import ModelView

if TYPE_CHECKING:
    from toolkit.run.documents import DatasetDocument, ModelDocument


def _shape(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


def _range(lo_hi: Sequence[float]) -> str:
    return " – ".join(f"{v:g}" for v in lo_hi)


def model_info(model: ModelDocument, dataset: DatasetDocument | None) -> ModelView:
    """The "Model and data" view of a user run's model.json and dataset.json."""
    spec = model.model_spec
    names = spec.class_names or (dataset.class_names if dataset else None) or ()
    task = "regression" if spec.output_kind == "values" else "classification"
    return ModelView(
        name=model.name or "?",
        source=model.source,
        format=model.format or "?",
        params=model.params,
        layers=tuple((x.get("name", "?"), x.get("class", "?")) for x in model.layers),
        unknown_layers=tuple(f"{x.get('name', '?')} ({x.get('class', '?')})" for x in model.unknown_layers),
        input_shape=_shape(spec.input.shape),
        input_dtype=spec.input.dtype or "float32",
        input_range=_range(spec.value_range),
        layout=spec.layout,
        output_shape=_shape(spec.output.shape),
        output_dtype=spec.output.dtype or "float32",
        output_kind=spec.output_kind or model.output_kind or "probabilities",
        num_classes=spec.num_classes,
        class_names=tuple(names),
        data_name=dataset.name if dataset and dataset.name else None,
        data_kind=dataset.kind if dataset else "",
        data_source=(dataset.source or dataset.path or "") if dataset else "",
        train=dataset.train if dataset else None,
        test=dataset.test if dataset else None,
        split=dataset.split if dataset else "",
        scale=dataset.scale if dataset else None,
        task=(dataset.task if dataset and dataset.task else task),
        sample_shape=_shape(dataset.sample_shape) if dataset else "–",
        data_dtype=dataset.dtype if dataset else "",
    )
