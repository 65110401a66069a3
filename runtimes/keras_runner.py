"""Keras runner: the float reference. Needs TensorFlow (desktop only); imported lazily."""

from __future__ import annotations

import zipfile
from typing import Any, ClassVar

import numpy as np

from runtimes.base import Runner
from runtimes.errors import ModelLoadError, RuntimeUnavailableError, one_line
from runtimes.spec import ModelSpec, TensorSpec
from runtimes.tf_import import import_keras, import_tensorflow


def set_tf_threads(num_threads: int) -> None:
    """Set TF's intra-op threads; only possible before TensorFlow runs its first op."""
    tf = import_tensorflow()
    if tf.config.threading.get_intra_op_parallelism_threads() == num_threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(num_threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as exc:
        raise RuntimeUnavailableError(
            f"TensorFlow is already initialised in this process, so it cannot switch to {num_threads} "
            "thread(s); measure Keras thread counts in a fresh process (edgekit bench does)."
        ) from exc


def check_keras_archive(path: Any) -> None:
    """Refuse a file that is not a zip archive before paying seconds for the TensorFlow import."""
    try:
        ok = zipfile.is_zipfile(path)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}; check the path and permissions.") from exc
    if not ok:
        raise ModelLoadError(f"{path} is not a Keras model (.keras files are zip archives); re-train or re-save it.")


SAVEDMODEL_DIR = "savedmodel"  # a run made from a SavedModel keeps a copy here, beside model.keras
CUSTOM_OBJECTS = "custom_objects.py"  # a run's custom layers (`--custom-objects`), imported before loading


def wrap_savedmodel(path: Any) -> Any:
    """A TensorFlow SavedModel folder as a one-input Keras model (a `TFSMLayer` on its serving signature)."""
    from pathlib import Path

    keras, tf = import_keras(), import_tensorflow()
    path = Path(path)
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # TF raises many kinds for a damaged SavedModel
        raise ModelLoadError(f"{path} could not be loaded as a SavedModel: {one_line(exc)}") from None
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    endpoint = next((e for e in ("serving_default", "serve") if e in signatures or hasattr(loaded, e)), None)
    if endpoint is None:
        raise ModelLoadError(f"{path} has no serving_default or serve signature; export it with model.export().")
    fn = signatures[endpoint] if endpoint in signatures else getattr(loaded, endpoint)
    args, kwargs = fn.structured_input_signature
    specs = [*args, *kwargs.values()]
    if len(specs) != 1:
        raise ModelLoadError(f"the SavedModel {path} has {len(specs)} inputs; edgekit takes one input.")
    shape, dtype = tuple(specs[0].shape.as_list()), specs[0].dtype.name
    inp = keras.Input(shape=shape[1:], dtype=dtype, name="input")
    out = keras.layers.TFSMLayer(str(path), call_endpoint=endpoint)(inp)
    if isinstance(out, dict):
        if len(out) != 1:
            raise ModelLoadError(f"the SavedModel {path} has {len(out)} outputs ({', '.join(out)}); edgekit takes one.")
        out = next(iter(out.values()))
    return keras.Model(inp, out, name=path.name)


def _savedmodel_beside(path: Any) -> Any:
    """The run's SavedModel copy, when `path` is the model.keras that wraps it (InputLayer + TFSMLayer only).

    Keras's safe_mode refuses to deserialize a TFSMLayer; the wrapper is rebuilt from the copy instead,
    which also keeps the run relocatable (the saved wrapper holds an absolute path).
    """
    import json
    from pathlib import Path

    folder = Path(path).parent / SAVEDMODEL_DIR
    if not (folder / "saved_model.pb").is_file():
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        kinds = {layer["class_name"] for layer in config["config"]["layers"]}
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
        return None
    return folder if kinds <= {"InputLayer", "TFSMLayer"} else None


def import_python_file(code: Any) -> None:
    """Import a Python file once per process (the user's custom layers register themselves with Keras)."""
    import importlib.util
    import sys
    from pathlib import Path

    code = Path(code)
    name = f"edgekit_custom_objects_{abs(hash(str(code.resolve())))}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, code)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{code} is not a Python file edgekit can import; give the .py that defines your layers.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's own code
        del sys.modules[name]
        raise ModelLoadError(f"importing {code} failed: {type(exc).__name__}: {one_line(exc)}") from None


def _import_custom_objects(path: Any) -> None:
    from pathlib import Path

    code = Path(path).parent / CUSTOM_OBJECTS
    if code.is_file():
        import_python_file(code)


def load_keras_model(path: Any) -> Any:
    """Load a `.keras` file with safe_mode (no arbitrary code) and turn failures into one line.

    A run's `custom_objects.py` beside the file is imported first (it registers the user's custom layers);
    a wrapper of the run's SavedModel copy is rebuilt from that copy.
    """
    check_keras_archive(path)
    saved = _savedmodel_beside(path)
    if saved is not None:
        return wrap_savedmodel(saved)
    _import_custom_objects(path)
    keras = import_keras()
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError/TypeError/KeyError/OSError for bad archives
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path} could not be loaded as a Keras model: {first[:300]}") from exc


def _input_shape(model: Any, path: Any) -> tuple[Any, ...]:
    """The model's input shape; a subclassed model has none of its own, only the shape it was built with."""
    shape = getattr(model, "input_shape", None)
    if shape is None and hasattr(model, "get_build_config"):
        shape = (model.get_build_config() or {}).get("input_shape")
    if not shape or isinstance(shape[0], (list, tuple)):
        raise ModelLoadError(
            f"{path} holds a model without one fixed input shape; import it with `edgekit export --model` instead."
        )
    return tuple(shape)


def _tensor_count(model: Any) -> int:
    """Inputs + outputs of a built Keras model (2 for a single-input, single-output one)."""
    inputs = getattr(model, "inputs", None) or [None]
    outputs = getattr(model, "outputs", None) or [None]
    return len(inputs) + len(outputs)


class KerasRunner(Runner):
    """Runs a `.keras` model through a `tf.function` with a fixed input signature.

    `model.predict` costs ~40 ms per call whatever the batch; a traced function costs ~0.5 ms.
    """

    name: ClassVar[str] = "keras"
    suffixes: ClassVar[tuple[str, ...]] = (".keras",)

    def __init__(self, model_path: Any, *, num_threads: int | None = None, spec: ModelSpec | None = None) -> None:
        super().__init__(model_path, num_threads=num_threads, spec=spec)
        self._model: Any = None
        self._fn: Any = None
        self._several_in: tuple[TensorSpec, ...] = ()
        self._several_out: tuple[TensorSpec, ...] = ()

    @classmethod
    def runtime_version(cls) -> str | None:
        from importlib import metadata

        versions = []
        for dist in ("tensorflow-cpu", "tensorflow", "keras"):
            try:
                versions.append(f"{dist} {metadata.version(dist)}")
            except metadata.PackageNotFoundError:
                continue
        return ", ".join(versions) or None

    def _activate(self) -> None:
        check_keras_archive(self.model_path)
        tf = import_tensorflow()
        if self.num_threads is not None:
            set_tf_threads(self.num_threads)
        self._model = load_keras_model(self.model_path)
        if _tensor_count(self._model) > 2:
            self._trace_several(tf)
            return
        shape = _input_shape(self._model, self.model_path)
        dtype = (
            tf.uint8
            if str(getattr((getattr(self._model, "inputs", None) or [None])[0], "dtype", "")) == "uint8"
            else tf.float32
        )
        signature = [tf.TensorSpec([None, *shape[1:]], dtype)]
        model = self._model
        self._fn = tf.function(lambda x: model(x, training=False), input_signature=signature)

    def _trace_several(self, tf: Any) -> None:
        """A model with several inputs or outputs: a traced function from a dict of named inputs to a
        dict of named outputs (names as `runtimes.spec.spec_from_keras` gives them)."""
        from runtimes.spec import spec_from_keras

        spec = spec_from_keras(self._model)
        self._several_in, self._several_out = spec.inputs, spec.outputs
        signature = [
            {
                t.name: tf.TensorSpec([None, *t.shape[1:]], tf.uint8 if t.dtype == "uint8" else tf.float32)
                for t in spec.inputs
            }
        ]
        model, names = self._model, spec.output_names

        single_input = len(spec.inputs) == 1  # a dict for one input makes Keras warn about its structure

        def call(feeds: Any) -> Any:
            out = model(next(iter(feeds.values())) if single_input else feeds, training=False)
            if isinstance(out, dict):
                return {name: out[name] for name in names}
            return dict(zip(names, out if isinstance(out, (list, tuple)) else [out]))

        self._fn = tf.function(call, input_signature=signature)

    def _input_specs(self) -> tuple[TensorSpec, ...]:
        return self._several_in or (self._input_spec(),)

    def _output_specs(self) -> tuple[TensorSpec, ...]:
        return self._several_out or (self._output_spec(),)

    def _run_all(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: np.asarray(value.numpy()) for name, value in self._fn(feeds).items()}

    def _deactivate(self) -> None:
        self._model = None
        self._fn = None
        self._several_in = self._several_out = ()

    def _input_spec(self) -> TensorSpec:
        shape = tuple(None if d is None else int(d) for d in self._model.input_shape)
        return TensorSpec("input", shape, "float32")

    def _output_spec(self) -> TensorSpec:
        shape = tuple(None if d is None else int(d) for d in self._model.output_shape)
        return TensorSpec("output", shape, "float32")

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(x).numpy(), dtype=np.float32)
