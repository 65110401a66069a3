"""The reference CNN (the classic Keras MNIST tutorial, seed 7) and its training loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtimes.tf_import import import_keras
from toolkit.data.mnist import Mnist, one_hot, to_model_input
from toolkit.model.spec import NUM_CLASSES
from toolkit.run.documents.common import TrainOptions

REFERENCE_PARAMS = 592_074  # Conv2D 832 + Dense 589,952 + Dense 1,290
# The training settings are the run document's (train.json's `config`, run.json's `train`): one class.
TrainConfig = TrainOptions
TUTORIAL = TrainConfig()  # the Keras tutorial's settings


@dataclass
class TrainResult:
    model: Any
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    wall_seconds: float
    test_loss: float
    test_accuracy: float
    config: TrainConfig
    num_params: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "num_params": self.num_params,
            "wall_seconds": round(self.wall_seconds, 2),
            "epoch_seconds": [round(s, 2) for s in self.epoch_seconds],
            "test_loss": self.test_loss,
            "test_accuracy": self.test_accuracy,
            "history": self.history,
        }


def build_reference_model(seed: int = 7) -> Any:
    """Conv2D(32, 5x5, relu) → MaxPool 2x2 → Dropout 0.2 → Flatten → Dense 128 relu → Dense 10 softmax.

    Seeds Python, numpy and TensorFlow first (`keras.utils.set_random_seed`), so the same seed gives
    the same initial weights. Compiled with Adam and categorical cross-entropy, as in the tutorial.
    """
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    model = keras.Sequential(
        [
            # keras.Input instead of the tutorial's input_shape= argument: same model, no Keras 3 warning.
            keras.Input(shape=(28, 28, 1), name="image"),
            # Named as Keras names them in a fresh process: without names they depend on what else the
            # process built before (conv2d_1, dense_2, ...), and reports and diagnoses name layers.
            layers.Conv2D(32, (5, 5), activation="relu", name="conv2d"),
            layers.MaxPooling2D(pool_size=(2, 2), name="max_pooling2d"),
            layers.Dropout(0.2, name="dropout"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense"),
            layers.Dense(NUM_CLASSES, activation="softmax", name="dense_1"),
        ],
        name="reference_cnn",
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


VALIDATION_BATCH = 1000  # images per call of the per-epoch validation pass (see `train_reference_model`)
EpochCallback = Callable[[int, int, dict[str, float]], None]  # (epoch, epochs, logs)
BatchCallback = Callable[[int, int], None]  # (batch, batches per epoch)


def train_reference_model(
    data: Mnist,
    config: TrainConfig = TUTORIAL,
    *,
    on_epoch_end: EpochCallback | None = None,
    on_batch_end: BatchCallback | None = None,
) -> TrainResult:
    """Train the reference model as the tutorial does (test set as validation data) and evaluate it.

    Args:
        data: MNIST arrays from `toolkit.data.mnist.load_mnist`.
        config: epochs, batch size, seed and an optional training-set limit.
        on_epoch_end: called after each epoch with (epoch, epochs, logs), for progress displays.
        on_batch_end: called after each batch with (batch, batches per epoch).

    Returns:
        The trained model with its history, timings and test accuracy.
    """
    config.check()
    keras = import_keras()
    x_train = data.x_train if config.train_limit is None else data.x_train[: config.train_limit]
    y_train = data.y_train if config.train_limit is None else data.y_train[: config.train_limit]
    x_train_f, y_train_1h = to_model_input(x_train), one_hot(y_train, NUM_CLASSES)
    x_test_f, y_test_1h = to_model_input(data.x_test), one_hot(data.y_test, NUM_CLASSES)
    model = build_reference_model(config.seed)
    batches = int(np.ceil(len(x_train_f) / config.batch_size))
    epoch_seconds: list[float] = []

    class Progress(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._t0 = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if on_batch_end:
                on_batch_end(batch + 1, batches)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            epoch_seconds.append(time.perf_counter() - self._t0)
            if on_epoch_end:
                on_epoch_end(epoch + 1, config.epochs, {k: float(v) for k, v in (logs or {}).items()})

    start = time.perf_counter()
    fit = model.fit(
        x_train_f,
        y_train_1h,
        validation_data=(x_test_f, y_test_1h),
        epochs=config.epochs,
        batch_size=config.batch_size,
        # The per-epoch look at the test set runs in inference mode and changes no weight or random state, so its
        # batch size only sets its speed: 1,000 images per call take about half the time of 200 on 2 cores
        # (0.37 s against 0.66 s for the 10,000 test images), about 3 s of the 10 epochs.
        validation_batch_size=VALIDATION_BATCH,
        verbose=0,
        callbacks=[Progress()],
    )
    wall = time.perf_counter() - start
    test_loss, test_acc = model.evaluate(x_test_f, y_test_1h, verbose=0, batch_size=VALIDATION_BATCH)
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    return TrainResult(
        model=model,
        history=history,
        epoch_seconds=epoch_seconds,
        wall_seconds=wall,
        test_loss=float(test_loss),
        test_accuracy=float(test_acc),
        config=config,
        num_params=int(model.count_params()),
    )


def save_model(model: Any, path: Any) -> None:
    """Save as `.keras`, atomically (a partial file never carries the final name)."""
    from runtimes.files import atomic_path

    with atomic_path(path) as tmp:
        model.save(tmp)
