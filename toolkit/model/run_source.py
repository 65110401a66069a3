"""Which data and which model meaning a run uses: dataset.json and model.json, or the reference defaults.

A run made from the user's own model (`--model`) records the model in model.json and its data in
dataset.json; every later step (parity, bench, diagnose, bundle) finds both there, so `edgekit parity RUN`
needs no `--data`. A run without them is a reference run: MNIST, the reference CNN's spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.data.dataset import MNIST, Dataset
from toolkit.errors import DataError
from toolkit.run import layout as A

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec
    from toolkit.run.documents import DatasetDocument, ModelDocument, ParityData

DATASET_JSON = "dataset.json"
MODEL_JSON = "model.json"


def is_user_run(run_dir: Path) -> bool:
    """True when the run's model.keras came from `--model` (model.json is there)."""
    return (run_dir / MODEL_JSON).is_file()


def has_own_data(run_dir: Path) -> bool:
    """True when the run resolves its own data (made with --model, or dataset.json recorded): callers pass
    `--data` through instead of loading MNIST."""
    return is_user_run(run_dir) or (run_dir / DATASET_JSON).is_file()


def recorded_dataset(run_dir: Path) -> DatasetDocument | None:
    """dataset.json, or None for a run that records no data of its own (shipped MNIST)."""
    from toolkit.run.documents import DatasetDocument

    return A.Run(run_dir).find(DatasetDocument)


def recorded_model(run_dir: Path) -> ModelDocument | None:
    """model.json, or None for a run of the reference CNN."""
    from toolkit.run.documents import ModelDocument

    return A.Run(run_dir).find(ModelDocument)


def run_dataset(
    run_dir: Path,
    data: Any = None,
    *,
    spec: ModelSpec | None = None,
    allow_unverified: bool = False,
) -> Dataset:
    """The data for a step on `run_dir`: `data` if given, else the run's dataset.json, else shipped MNIST.

    Raises:
        DataError: the recorded data is gone or changed since the run recorded it (one line, with the fix).
    """
    from toolkit.data.mnist import Mnist, load_mnist
    from toolkit.data.sources import load_dataset

    if isinstance(data, Dataset):
        return data
    if isinstance(data, Mnist):
        return Dataset.from_mnist(data)
    recorded = recorded_dataset(run_dir)
    seed = 7 if recorded is None else recorded.seed
    scale = None if recorded is None else recorded.scale
    if data is not None:
        if not is_user_run(run_dir) and recorded is None:
            return Dataset.from_mnist(load_mnist(data, allow_unverified=allow_unverified))
        return load_dataset(data, spec=spec, seed=seed, scale=scale, allow_unverified=allow_unverified)
    if recorded is None or recorded.kind == MNIST:
        return Dataset.from_mnist(load_mnist(None if recorded is None else recorded.path or None))
    path = recorded.path
    if not path or not Path(path).exists():
        raise DataError(f"the run's data {path} (dataset.json) is gone; pass --data with the dataset to use.")
    dataset = load_dataset(path, spec=spec, seed=seed, scale=scale)
    if recorded.sha256 and dataset.sha256 != recorded.sha256:
        raise DataError(
            f"the run's data {path} changed since the run recorded it (sha256 differs); pass --data {path} "
            "to use it as it is now."
        )
    return dataset


def record_dataset(run_dir: Path, dataset: Dataset, spec: ModelSpec, *, seed: int) -> DatasetDocument:
    """Write dataset.json for `dataset` as `spec`'s model takes it."""
    return A.Run(run_dir).save(dataset.record(spec, seed=seed))


def is_onnx_source(run_dir: Path) -> bool:
    """True when the run was made from an ONNX file (`--model model.onnx`): its reference is model.onnx."""
    return (run_dir / A.ONNX_MODEL_FILE).is_file() and not (run_dir / A.MODEL_FILE).is_file()


def is_tflite_source(run_dir: Path) -> bool:
    """True when the run was made from a TFLite file (`--model model.tflite`): its reference is model.tflite."""
    other = (A.MODEL_FILE, A.ONNX_MODEL_FILE)
    return (run_dir / A.TFLITE_MODEL_FILE).is_file() and not any((run_dir / f).is_file() for f in other)


def refuse_onnx_source(run_dir: Path, step: str, why: str) -> None:
    """A one-line ToolkitError when `step` cannot run on a run made from an ONNX file (`why`: what it needs)."""
    from toolkit.errors import ToolkitError

    if is_onnx_source(run_dir):
        raise ToolkitError(
            f"{step} {why}; {run_dir} was made from an ONNX file (no Keras model): not offered for it yet."
        )


def refuse_several(run_dir: Path, step: str, spec: ModelSpec | None = None) -> None:
    """A one-line ToolkitError when `step` (not yet taught several tensors) meets a model with several inputs or
    outputs: the run's (model.json), or `spec` when given."""
    from toolkit.errors import ToolkitError

    spec = spec if spec is not None else run_spec(run_dir)
    if not spec.is_single:
        raise ToolkitError(
            f"{step} runs single-input, single-output models for now; this model has {spec.tensors_text()}."
        )


def run_spec(run_dir: Path) -> ModelSpec:
    """The run's reference ModelSpec: model.json's for a user model, else the reference CNN's."""
    from toolkit.model.spec import reference_spec

    model = recorded_model(run_dir)
    if model is not None:
        return model.model_spec
    return reference_spec()


def data_summary(dataset: Dataset, n: int) -> ParityData:
    """The `data` block of parity.json and mcu.json."""
    from toolkit.run.documents import ParityData

    return ParityData(source=dataset.source, verified=dataset.verified, images=n, name=dataset.name)
