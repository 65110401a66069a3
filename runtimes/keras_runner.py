"""Keras runner: the float reference. Needs TensorFlow (desktop only); imported lazily."""

from __future__ import annotations

import zipfile
from typing import Any, ClassVar

import numpy as np

from runtimes.base import Runner
from runtimes.errors import ModelLoadError, RuntimeUnavailableError
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


def load_keras_model(path: Any) -> Any:
    """Load a `.keras` file with safe_mode (no arbitrary code) and turn failures into one line."""
    check_keras_archive(path)
    keras = import_keras()
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError/TypeError/KeyError/OSError for bad archives
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path} could not be loaded as a Keras model: {first[:300]}") from exc


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
        shape = tuple(self._model.input_shape)
        signature = [tf.TensorSpec([None, *shape[1:]], tf.float32)]
        model = self._model
        self._fn = tf.function(lambda x: model(x, training=False), input_signature=signature)

    def _deactivate(self) -> None:
        self._model = None
        self._fn = None

    def _input_spec(self) -> TensorSpec:
        shape = tuple(None if d is None else int(d) for d in self._model.input_shape)
        return TensorSpec("input", shape, "float32")

    def _output_spec(self) -> TensorSpec:
        shape = tuple(None if d is None else int(d) for d in self._model.output_shape)
        return TensorSpec("output", shape, "float32")

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(x).numpy(), dtype=np.float32)
