"""Taking the user's own model and data into a run (`--model`, `--data`): check everything, then write.

`prepare_user_model` loads and checks the model and the data against each other and writes nothing, so a
refusal leaves no run directory behind; `import_into_run` then writes model.keras, model.json and
dataset.json. Later steps find the model and data through `toolkit.model.run_source`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.data.dataset import Dataset
from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec
    from toolkit.run.documents import ModelDocument


@dataclass(frozen=True)
class UserModel:
    """A loaded and checked user model with the data it will be exported, checked and timed on."""

    model: Any
    source: Path
    spec: ModelSpec
    dataset: Dataset
    seed: int
    custom_objects: Path | None = None
    wrapped: bool = False  # a subclassed model, wrapped in a functional one over its build shape
    layout_from: str | None = None  # an ONNX source: how its image layout was decided (model.json says)

    @property
    def is_onnx(self) -> bool:
        """True for an ONNX file as the source (`model` is its checked `OnnxSource`; no Keras model)."""
        from toolkit.model.onnx_source import OnnxSource

        return isinstance(self.model, OnnxSource)

    @property
    def is_tflite(self) -> bool:
        """True for a TFLite file as the source (`model` is its checked `TfliteSource`; no Keras model)."""
        from toolkit.model.tflite_source import TfliteSource

        return isinstance(self.model, TfliteSource)


def prepare_user_model(
    model_path: Path | str,
    data: Any = None,
    *,
    seed: int = 7,
    output_kind: str | None = None,
    custom_objects: Path | str | None = None,
    input_scale: float | None = None,
    allow_unverified: bool = False,
) -> UserModel:
    """Load and check the model and data; raise a one-line `ToolkitError` for anything edgekit cannot take.

    Args:
        model_path: a `.keras` file (loaded with safe_mode), a legacy `.h5`, a SavedModel folder, or an `.onnx`
            file (`toolkit.model.onnx_source`: the file itself is the reference, on ONNX Runtime in fp32), or a
            `.tflite` file (`toolkit.model.tflite_source`: the file itself is the reference, on LiteRT).
        data: an `.npz`, a folder of images per class, "mnist" (default), or a loaded `Dataset`.
        seed: the seed of a train/test split the data needs and of the calibration draw.
        output_kind: "probabilities", "logits" or "values" (None: softmax → probabilities, one linear
            unit → values, else logits).
        custom_objects: a Python file registering the model's custom layers.
        input_scale: multiply the stored data by this before feeding the model (e.g. 1/255).
    """
    from toolkit.model.onnx_source import is_onnx_source
    from toolkit.model.user import (
        as_functional,
        check_custom_code,
        check_model,
        import_custom_objects,
        load_user_model,
    )

    source = Path(model_path).expanduser()
    from toolkit.model.tflite_source import is_tflite_source

    if is_onnx_source(source) or is_tflite_source(source):
        return _prepare_file(source, data, seed, output_kind, custom_objects, input_scale, allow_unverified)
    custom = None if custom_objects is None else Path(custom_objects).expanduser()
    if custom is not None:
        import_custom_objects(custom)
    model = load_user_model(source)
    check_custom_code(model, custom)
    functional = as_functional(model)  # a subclassed model: wrapped over its build shape
    wrapped, model = functional is not model, functional
    spec = check_model(model, output_kind=output_kind)
    if not spec.is_single:
        dataset = _several_dataset(data, spec, seed=seed, allow_unverified=allow_unverified, input_scale=input_scale)
        return UserModel(
            model=model, source=source, spec=spec, dataset=dataset, seed=seed, custom_objects=custom, wrapped=wrapped
        )
    dataset = _dataset(data, spec, seed=seed, allow_unverified=allow_unverified, input_scale=input_scale)
    if spec.output_kind != "values" and _non_integer(dataset.y_train) and output_kind is None:
        spec = spec.with_options(output_kind="values")  # float targets and no softmax: a regression
    dataset.check(spec)
    names = dataset.class_names if dataset.class_names and len(dataset.class_names) == spec.num_classes else None
    spec = spec.with_options(value_range=dataset.value_range(spec), class_names=names)
    return UserModel(
        model=model, source=source, spec=spec, dataset=dataset, seed=seed, custom_objects=custom, wrapped=wrapped
    )


def _dataset(data: Any, spec: ModelSpec, *, seed: int, allow_unverified: bool, input_scale: float | None) -> Dataset:
    """The user's data for `spec`: a `Dataset` or `Mnist` as given, else loaded from its source; then scaled."""
    from toolkit.data.mnist import Mnist
    from toolkit.data.sources import load_dataset

    if isinstance(data, Dataset):
        dataset = data
    elif isinstance(data, Mnist):
        dataset = Dataset.from_mnist(data)
    else:
        dataset = load_dataset(data, spec=spec, seed=seed, allow_unverified=allow_unverified)
    return dataset.with_scale(input_scale)


def _several_dataset(
    data: Any, spec: ModelSpec, *, seed: int, allow_unverified: bool, input_scale: float | None, check: bool = True
) -> Dataset:
    """The data of a model with several inputs or outputs: an .npz with one array per input and per target,
    keyed by the model's tensor names (MNIST's one image and one label cannot feed it). `check`: against
    `spec` (an ONNX file's output sizes are known, and checked, once it has run on the data)."""
    from toolkit.data.mnist import Mnist
    from toolkit.data.sources import MNIST_NAMES
    from toolkit.errors import DataError

    if data is None or isinstance(data, Mnist) or (isinstance(data, str) and data in MNIST_NAMES):
        raise DataError(
            f"the model has {spec.tensors_text()}; give --data an .npz with one array per input and target, keyed "
            "by those names, optionally as <name>_train and <name>_test."
        )
    if not isinstance(data, Dataset):
        _check_named_npz(Path(str(data)).expanduser(), spec)
    dataset = _dataset(data, spec, seed=seed, allow_unverified=allow_unverified, input_scale=input_scale)
    if check:
        dataset.check(spec)
    return dataset


def _check_named_npz(path: Path, spec: ModelSpec) -> None:
    """Refuse data that is not an .npz naming every tensor (as `name` or `name_train`/`name_test`), in one line,
    before the arrays are read."""
    import zipfile

    from toolkit.errors import DataError

    tensors = spec.tensors_text()
    if path.suffix.lower() != ".npz" or not path.is_file():
        raise DataError(
            f"data {path} is not an .npz file; a model with {tensors} takes an .npz with one array per input "
            "and target, keyed by those names."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            keys = {name.removesuffix(".npy") for name in archive.namelist()}
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"data {path} could not be read as an .npz: {exc}") from None
    missing = [
        n for n in spec.input_names + spec.output_names if n not in keys and not {f"{n}_train", f"{n}_test"} <= keys
    ]
    if missing:
        raise DataError(
            f"data {path.name} holds {', '.join(sorted(keys))}; the model has {tensors}: give one array per input "
            f"and target under those names (or <name>_train and <name>_test); missing {', '.join(missing)}."
        )


def _prepare_file(
    source: Path,
    data: Any,
    seed: int,
    output_kind: str | None,
    custom_objects: Path | str | None,
    input_scale: float | None,
    allow_unverified: bool,
) -> UserModel:
    """`prepare_user_model` for an ONNX or TFLite file: checked with its data, nothing written."""
    from toolkit.model import onnx_source, tflite_source

    tflite = tflite_source.is_tflite_source(source)
    if custom_objects is not None:
        what = "a TFLite" if tflite else "an ONNX"
        raise ToolkitError(f"--custom-objects registers Keras layers; {what} model needs none: leave it out.")

    def dataset_for(spec: ModelSpec) -> Dataset:
        if not spec.is_single:
            return _several_dataset(
                data, spec, seed=seed, allow_unverified=allow_unverified, input_scale=input_scale, check=False
            )
        return _dataset(data, spec, seed=seed, allow_unverified=allow_unverified, input_scale=input_scale)

    checked: Any
    if tflite:
        checked, spec, dataset = tflite_source.prepare_tflite(source, dataset_for, output_kind=output_kind)
        layout_from = tflite_source.layout_reason(checked, tuple(dataset.x_test.shape[1:]))
    else:
        checked, spec, dataset = onnx_source.prepare_onnx(source, dataset_for, output_kind=output_kind)
        layout_from = onnx_source.layout_reason(checked, tuple(dataset.x_test.shape[1:]))
    if not spec.is_single:
        return _several_file_model(checked, source, spec, dataset, seed, layout_from)
    if spec.output_kind != "values" and _non_integer(dataset.y_train) and output_kind is None:
        spec = spec.with_options(output_kind="values")  # float targets and no softmax: a regression
    dataset.check(spec)
    names = dataset.class_names if dataset.class_names and len(dataset.class_names) == spec.num_classes else None
    spec = spec.with_options(value_range=dataset.value_range(spec), class_names=names)
    return UserModel(model=checked, source=source, spec=spec, dataset=dataset, seed=seed, layout_from=layout_from)


def _several_file_model(
    checked: Any, source: Path, spec: ModelSpec, dataset: Dataset, seed: int, layout_from: str
) -> UserModel:
    """A file with several inputs or outputs, with its named data: checked against every tensor, each input's
    value range from its training rows."""
    from dataclasses import replace

    from toolkit.steps.parity import named_dataset

    named = named_dataset(dataset, spec)
    # As for one output: float targets for an output no Softmax makes are a regression's (values, not logits).
    outputs = [
        replace(t, kind="values") if t.kind == "logits" and _non_integer(named.train_arrays[t.name]) else t
        for t in spec.outputs
    ]
    ranges = named.value_ranges(spec)
    inputs = [replace(t, value_range=ranges[t.name]) for t in spec.inputs]
    spec = spec.with_tensors(inputs=inputs, outputs=outputs)
    dataset.check(spec)
    return UserModel(model=checked, source=source, spec=spec, dataset=dataset, seed=seed, layout_from=layout_from)


def import_into_run(run_dir: Path, user: UserModel) -> ModelDocument:
    """Write model.keras (model.onnx / model.tflite for an ONNX / TFLite source), model.json and dataset.json into
    `run_dir`; return model.json."""
    from toolkit.model.onnx_source import save_onnx_into_run
    from toolkit.model.run_source import record_dataset
    from toolkit.model.tflite_source import save_tflite_into_run
    from toolkit.model.user import save_into_run
    from toolkit.run import layout as A

    if user.is_onnx:
        info = save_onnx_into_run(user.model, run_dir, user.spec, user.layout_from or "input shape")
    elif user.is_tflite:
        info = save_tflite_into_run(user.model, run_dir, user.spec, user.layout_from or "input shape")
    else:
        info = save_into_run(
            user.model,
            user.source,
            run_dir,
            user.spec,
            custom_objects=user.custom_objects,
            copy_source=not user.wrapped,
        )
    A.Run(run_dir).save(info)
    record_dataset(run_dir, user.dataset, user.spec, seed=user.seed)
    return info


def _non_integer(y: Any) -> bool:
    import numpy as np

    arr = np.asarray(y)
    if not np.issubdtype(arr.dtype, np.floating) or not arr.size:
        return False
    if arr.ndim == 2 and arr.shape[1] > 1:  # one-hot rows are labels; anything else is targets
        return not bool(np.all((arr == 0) | (arr == 1)) and np.all(arr.sum(1) == 1))
    return not bool(np.all(np.mod(arr, 1) == 0))
