"""The reference model is built exactly as the tutorial's, and the same seed gives bit-identical weights."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.errors import ToolkitError
from toolkit.model.reference import REFERENCE_PARAMS, TrainConfig, build_reference_model, train_reference_model

pytest.importorskip("tensorflow")


def test_architecture_is_the_tutorials() -> None:
    model = build_reference_model()
    layers = [(type(layer).__name__, layer.get_config()) for layer in model.layers]
    names = [name for name, _ in layers]
    assert names == ["Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dense"]
    conv, pool, drop, _, dense, out = (cfg for _, cfg in layers)
    assert (conv["filters"], tuple(conv["kernel_size"]), conv["activation"]) == (32, (5, 5), "relu")
    assert tuple(pool["pool_size"]) == (2, 2)
    assert drop["rate"] == 0.2
    assert (dense["units"], dense["activation"]) == (128, "relu")
    assert (out["units"], out["activation"]) == (10, "softmax")
    assert model.input_shape == (None, 28, 28, 1)
    assert model.count_params() == REFERENCE_PARAMS
    assert type(model.optimizer).__name__ == "Adam"
    assert model.loss == "categorical_crossentropy"


def _weights(mnist, seed: int) -> list[np.ndarray]:
    result = train_reference_model(mnist, TrainConfig(epochs=1, train_limit=1000, batch_size=200, seed=seed))
    return [w.copy() for w in result.model.get_weights()]


def test_same_seed_gives_bit_identical_weights(mnist) -> None:
    a, b = _weights(mnist, 7), _weights(mnist, 7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    c = _weights(mnist, 8)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_training_reports_progress_and_history(mnist) -> None:
    epochs, batches = [], []
    result = train_reference_model(
        mnist,
        TrainConfig(epochs=2, train_limit=600, batch_size=200),
        on_epoch_end=lambda e, n, logs: epochs.append((e, n, sorted(logs))),
        on_batch_end=lambda b, n: batches.append((b, n)),
    )
    assert [e[:2] for e in epochs] == [(1, 2), (2, 2)]
    assert {"accuracy", "loss", "val_accuracy", "val_loss"} <= set(epochs[0][2])
    assert batches[-1] == (3, 3)
    assert len(result.history["loss"]) == 2 and len(result.epoch_seconds) == 2
    assert 0.0 <= result.test_accuracy <= 1.0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (TrainConfig(epochs=0), "--epochs"),
        (TrainConfig(batch_size=0), "--batch-size"),
        (TrainConfig(train_limit=0), "--train-limit"),
    ],
)
def test_bad_training_options(config: TrainConfig, message: str) -> None:
    with pytest.raises(ToolkitError, match=message):
        config.check()


def test_layer_names_do_not_depend_on_what_the_process_built_before() -> None:
    import keras

    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(), keras.layers.Dense(2)])
    names = [layer.name for layer in build_reference_model().layers]
    assert names == ["conv2d", "max_pooling2d", "dropout", "flatten", "dense", "dense_1"]
