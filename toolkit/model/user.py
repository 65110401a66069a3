"""A user's own Keras model: load it (`.keras` with safe_mode, legacy `.h5`, SavedModel folder), check that
edgekit can take it, and import it into a run directory as `model.keras` plus `model.json`.

What edgekit takes: inputs that are images `[N, H, W, C]` (C 1 or 3, fixed H and W) or vectors `[N, F]`,
float or uint8; outputs that are class probabilities, logits or plain values `[N, K]`, boxes `[N, 4]` or
`[N, K, 4]` (xyxy), or class indices `[N]`. A model may have several inputs and outputs (their Keras names are
kept). Everything else is refused in one line before anything is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from runtimes.keras_runner import CUSTOM_OBJECTS, SAVEDMODEL_DIR  # light: TensorFlow loads lazily
from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec
    from toolkit.run.documents import ModelDocument

OUTPUT_KINDS: Final = ("probabilities", "logits", "values")

# Layers the converters and edgekit's diagnosis are known to handle (tested); others are tried, and a
# failed conversion names the first of them.
KNOWN_LAYERS: Final = frozenset(
    {
        "InputLayer",
        "Conv2D",
        "DepthwiseConv2D",
        "SeparableConv2D",
        "Conv1D",
        "Dense",
        "Flatten",
        "Reshape",
        "MaxPooling2D",
        "AveragePooling2D",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling2D",
        "BatchNormalization",
        "Dropout",
        "SpatialDropout2D",
        "GaussianNoise",
        "Add",
        "Concatenate",
        "Multiply",
        "Subtract",
        "Average",
        "Rescaling",
        "Normalization",
        "ReLU",
        "Activation",
        "Softmax",
        "LeakyReLU",
        "ZeroPadding2D",
        "Cropping2D",
        "TFSMLayer",
        "Identity",
    }
)


class ModelImportError(ToolkitError):
    """The user's model cannot be loaded or is not a model edgekit can take."""


def load_user_model(path: Path) -> Any:
    """Load a `.keras` file (safe_mode), a legacy `.h5`, or a TensorFlow SavedModel folder as a Keras model."""
    from runtimes.tf_import import import_keras

    path = Path(path).expanduser()
    if not path.exists():
        raise ModelImportError(f"model {path} not found; give a .keras or .h5 file or a SavedModel folder.")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ModelImportError(
                f"{path} is a folder without saved_model.pb; give a SavedModel folder or a .keras file."
            )
        return _wrap_savedmodel(path)
    suffix = path.suffix.lower()
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelImportError(f"{path} is not a Keras model; give a .keras or .h5 file or a SavedModel folder.")
    keras = import_keras()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError/TypeError/OSError/KeyError for what it cannot load
        raise ModelImportError(_load_failure(path, exc)) from None


def import_custom_objects(path: Path) -> None:
    """Import the user's Python file that registers custom layers (`@keras.saving.register_keras_serializable`)."""
    from runtimes.errors import ModelLoadError
    from runtimes.keras_runner import import_python_file

    path = Path(path).expanduser()
    if not path.is_file() or path.suffix != ".py":
        raise ModelImportError(f"--custom-objects {path} is not a Python file; give the .py that defines your layers.")
    try:
        import_python_file(path)
    except ModelLoadError as exc:
        raise ModelImportError(str(exc)) from None


def as_functional(model: Any) -> Any:
    """A subclassed model (no symbolic inputs) wrapped in a functional model over its build shape.

    Every step then sees one input tensor, its shape and dtype, as for Sequential and functional models;
    the subclassed model is one layer inside (its own layers are not listed separately).
    """
    if getattr(model, "inputs", None):
        return model
    from runtimes.tf_import import import_keras

    keras = import_keras()
    shape = (model.get_build_config() or {}).get("input_shape") if hasattr(model, "get_build_config") else None
    if not shape:
        raise ModelImportError(
            f"the subclassed model {type(model).__name__} was saved unbuilt (no input shape); call it on a batch "
            "(or build it) before saving."
        )
    if isinstance(shape[0], (list, tuple)):
        raise ModelImportError(
            f"the subclassed model {type(model).__name__} has {len(shape)} inputs; edgekit takes one input."
        )
    inp = keras.Input(tuple(shape[1:]), name="input")
    return keras.Model(inp, model(inp), name=model.name)


def check_model(model: Any, *, output_kind: str | None = None) -> ModelSpec:
    """The model's ModelSpec, or a one-line refusal of what edgekit cannot take."""
    from runtimes.spec import SpecError, spec_from_keras

    inputs, outputs = list(getattr(model, "inputs", None) or []), list(getattr(model, "outputs", None) or [])
    if not inputs or not outputs:
        raise ModelImportError("the model has no inputs or no outputs; give a built Keras model.")
    if len(inputs) != 1 or len(outputs) != 1:
        return _check_several(model, inputs, outputs, output_kind)
    _check_input(inputs[0], tuple(model.input_shape))
    _check_layers(model)
    if output_kind is not None and output_kind not in OUTPUT_KINDS:
        raise ModelImportError(f"--output-kind {output_kind!r} is unknown; choose one of {', '.join(OUTPUT_KINDS)}.")
    out_tail = tuple(model.output_shape[1:])
    if len(out_tail) != 1 or out_tail[0] is None:
        raise ModelImportError(
            f"the model's output has shape {tuple(model.output_shape)}; edgekit takes [N, K] outputs."
        )
    if output_kind is None and out_tail[0] == 1:
        output_kind = "values"  # one linear unit: a regression (declare --output-kind otherwise)
    try:
        spec = spec_from_keras(model, output_kind=output_kind, value_range=(0.0, 1.0))
    except SpecError as exc:
        raise ModelImportError(str(exc)) from None
    return spec


def _check_several(model: Any, inputs: list[Any], outputs: list[Any], output_kind: str | None) -> ModelSpec:
    """A model with several inputs or outputs: every input checked as a single one is; every output must fit
    its kind (`runtimes.spec.spec_from_keras` guesses it: softmax -> probabilities, (N, K, 4) or a "box" name
    -> boxes, integer -> class_indices, one unit -> values, else logits)."""
    from runtimes.spec import SpecError, spec_from_keras

    if output_kind is not None:
        raise ModelImportError(
            f"--output-kind names the kind of one output; this model has {len(outputs)} outputs "
            f"({', '.join(_tensor_name(t) for t in outputs)}), whose kinds edgekit reads from the model: leave it out."
        )
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    for tensor, shape in zip(inputs, shapes, strict=True):
        _check_input(tensor, tuple(shape))
    _check_layers(model)
    try:
        spec = spec_from_keras(model)
    except SpecError as exc:
        raise ModelImportError(str(exc).removeprefix("model spec: ")) from None
    for tensor in spec.outputs:
        if any(d is None for d in tensor.shape[1:]):
            raise ModelImportError(
                f"output {tensor.name!r} has a dynamic size {tensor.shape_text()}; exports need fixed sizes."
            )
    return spec


def _check_layers(model: Any) -> None:
    for layer in _all_layers(model):
        if type(layer).__name__ == "Lambda":
            raise ModelImportError(
                f"layer {layer.name!r} is a Lambda (class Lambda), which cannot be saved or loaded safely; "
                "replace it with a built-in layer or a registered custom layer with get_config."
            )


def _check_input(tensor: Any, shape: tuple[Any, ...]) -> None:
    """One input: dense, float or uint8, an image [N, H, W, C] (C 1 or 3) or a vector [N, F] of fixed size."""
    dtype = str(getattr(tensor, "dtype", "float32"))
    if getattr(tensor, "ragged", False) or getattr(tensor, "sparse", False):
        kind = "ragged" if getattr(tensor, "ragged", False) else "sparse"
        raise ModelImportError(
            f"input {_tensor_name(tensor)!r} is {kind}; edgekit takes a dense image or vector input."
        )
    if dtype not in ("float32", "float16", "float64", "uint8"):
        raise ModelImportError(
            f"input {_tensor_name(tensor)!r} has dtype {dtype}; edgekit takes float32 or uint8 images or vectors."
        )
    tail = shape[1:]
    if len(tail) == 3:
        if tail[0] is None or tail[1] is None:
            raise ModelImportError(
                f"input {_tensor_name(tensor)!r} has dynamic height/width {shape}; exports need fixed sizes: "
                "build the model with keras.Input(shape=(H, W, C))."
            )
        if tail[2] not in (1, 3):
            raise ModelImportError(
                f"input {_tensor_name(tensor)!r} has {tail[2]} channels {shape}; edgekit takes 1 (grey) or 3 (RGB)."
            )
    elif len(tail) == 1:
        if tail[0] is None:
            raise ModelImportError(
                f"input {_tensor_name(tensor)!r} has a dynamic length {shape}; give it a fixed size."
            )
    else:
        raise ModelImportError(
            f"input {_tensor_name(tensor)!r} has shape {shape}; edgekit takes an image [N, H, W, C] or a vector [N, F]."
        )


def check_custom_code(model: Any, custom_objects: Path | None) -> None:
    """Refuse custom classes without `--custom-objects`: each step's fresh process (bench) must load them too."""
    if custom_objects is not None:
        return
    for obj in [model, *_all_layers(model)]:
        module = type(obj).__module__
        if not module.startswith(("keras", "tensorflow", "tf_keras")):
            name = getattr(obj, "name", type(obj).__name__)
            raise ModelImportError(
                f"layer {name!r} is custom class {type(obj).__name__!r} (from {module}); pass --custom-objects "
                "FILE.py, the code that defines it, so every step (and each benchmark process) can load it."
            )


def layer_list(model: Any) -> list[dict[str, str]]:
    """Every layer of the model as {name, class} (nested models flattened), for model.json and reports."""
    return [{"name": str(layer.name), "class": type(layer).__name__} for layer in _all_layers(model)]


def unknown_layers(model: Any) -> list[dict[str, str]]:
    return [row for row in layer_list(model) if row["class"] not in KNOWN_LAYERS and not row["class"].endswith("Model")]


def save_into_run(
    model: Any,
    source: Path,
    run_dir: Path,
    spec: ModelSpec,
    *,
    custom_objects: Path | None = None,
    copy_source: bool = True,
) -> ModelDocument:
    """Write the checked model into `run_dir` as model.keras; return what model.json records (not written here).

    A `.keras` file is copied byte for byte (unless `copy_source` is False: a subclassed model wrapped by
    `as_functional` is saved as that wrapper); an `.h5` is re-saved as `.keras`; a SavedModel folder is
    copied into the run and model.keras wraps it (a `TFSMLayer`), so every step loads one kind of file.
    """
    from runtimes.files import atomic_path, sha256_file
    from toolkit.run import layout as A
    from toolkit.run.documents import ModelDocument

    source = Path(source).expanduser()
    run_dir.mkdir(parents=True, exist_ok=True)
    dest = run_dir / A.MODEL_FILE
    fmt = "savedmodel" if source.is_dir() else ("keras" if source.suffix.lower() == ".keras" else "h5")
    if custom_objects is not None:
        shutil.copyfile(custom_objects, run_dir / CUSTOM_OBJECTS)
    if fmt == "savedmodel":
        copy = run_dir / SAVEDMODEL_DIR
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(source, copy)
        model = _wrap_savedmodel(copy.resolve())
    with atomic_path(dest) as tmp:
        if fmt == "keras" and copy_source:
            shutil.copyfile(source, tmp)
        else:
            model.save(tmp)
    return ModelDocument(
        schema_version=A.SCHEMA_VERSION,
        name=source.name if fmt != "savedmodel" else f"{source.name}/",
        source=str(source.resolve()),
        format=fmt,
        model_sha256=sha256_file(dest),
        params=int(model.count_params()),
        layers=layer_list(model),
        unknown_layers=unknown_layers(model),
        output_kind=spec.output_kind,
        model_spec=spec,
        created_utc=A.utc_now(),
    )


def _wrap_savedmodel(path: Path) -> Any:
    from runtimes.errors import ModelLoadError
    from runtimes.keras_runner import wrap_savedmodel

    try:
        return wrap_savedmodel(path)
    except ModelLoadError as exc:
        raise ModelImportError(str(exc)) from None


def _all_layers(model: Any) -> list[Any]:
    out: list[Any] = []
    for layer in getattr(model, "layers", []) or []:
        if hasattr(layer, "layers") and type(layer).__name__ in ("Sequential", "Functional", "Model"):
            out.extend(_all_layers(layer))
        else:
            out.append(layer)
    return out


def _tensor_name(tensor: Any) -> str:
    # A Keras tensor's own name is e.g. "keras_tensor_3"; the layer that made it is what users know.
    history = getattr(tensor, "_keras_history", None)
    layer = getattr(history, "operation", None)
    if layer is not None and type(layer).__name__ != "InputLayer":
        return str(layer.name)
    return str(getattr(tensor, "name", "?"))


def _first_line(exc: BaseException) -> str:
    from runtimes.errors import one_line

    return one_line(exc)


def _load_failure(path: Path, exc: BaseException) -> str:
    text = str(exc)
    if "Lambda" in text and "safe_mode" in text:
        return (
            f"{path} has a Lambda layer, whose Python code edgekit never loads (safe_mode); replace it with a "
            "built-in layer or a registered custom layer with get_config."
        )
    if "Could not locate class" in text:
        import re

        found = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
        name = found.group(1) if found else "?"
        return (
            f"{path} uses custom class {name!r}, which is not registered here; pass --custom-objects FILE.py "
            "(the code that defines it, decorated with @keras.saving.register_keras_serializable)."
        )
    return f"{path} could not be loaded as a Keras model: {_first_line(exc)}"
