"""The train step: train the reference CNN and write model.keras and train.json into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runtimes.files import sha256_file
from toolkit.data.mnist import Mnist
from toolkit.model.reference import TrainConfig
from toolkit.progress import ProgressCallback, as_progress
from toolkit.run import layout as A

if TYPE_CHECKING:
    from toolkit.run.documents import TrainDocument


def forget_user_model(run_dir: Path) -> None:
    """Remove what `--model` imported (model.json, dataset.json, its custom code and SavedModel copy)."""
    import shutil

    from runtimes.keras_runner import CUSTOM_OBJECTS, SAVEDMODEL_DIR
    from toolkit.model.run_source import DATASET_JSON, MODEL_JSON

    for name in (MODEL_JSON, DATASET_JSON, CUSTOM_OBJECTS):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / SAVEDMODEL_DIR, ignore_errors=True)


def train_step(
    run_dir: Path,
    data: Mnist,
    config: TrainConfig,
    progress: ProgressCallback | None = None,
) -> TrainDocument:
    """Train the reference model; write model.keras and train.json. Returns train.json."""
    from toolkit.model.reference import save_model, train_reference_model
    from toolkit.run.documents import TrainData, TrainDocument

    config.check()
    p = as_progress(progress)
    epochs_task = p.add_task("train: epochs", total=config.epochs)
    batch_task = p.add_task("  epoch 1 batches", total=None)

    def on_batch(batch: int, batches: int) -> None:
        p.update(batch_task, completed=batch, total=batches)

    def on_epoch(epoch: int, epochs: int, logs: dict[str, float]) -> None:
        p.update(
            epochs_task,
            completed=epoch,
            description=(
                f"train: epoch {epoch}/{epochs} loss {logs.get('loss', float('nan')):.4f} "
                f"acc {logs.get('accuracy', float('nan')):.4f} val_acc {logs.get('val_accuracy', float('nan')):.4f}"
            ),
        )
        p.update(batch_task, completed=0, description=f"  epoch {min(epoch + 1, epochs)} batches")

    result = train_reference_model(data, config, on_epoch_end=on_epoch, on_batch_end=on_batch)
    forget_user_model(run_dir)  # the run now holds the reference CNN, trained on MNIST
    p.remove_task(batch_task)
    save_model(result.model, run_dir / A.MODEL_FILE)
    summary = TrainDocument.model_validate(
        {
            "model_sha256": sha256_file(run_dir / A.MODEL_FILE),
            "schema_version": A.SCHEMA_VERSION,
            "created_utc": A.utc_now(),
            "cpu": A.this_cpu(),
            **result.summary(),
            "train_images": int(config.train_limit or len(data.x_train)),
            "test_images": len(data.x_test),
            "data": TrainData(source=data.source, verified=data.verified, warnings=list(data.warnings)),
            "libraries": A.library_versions(),
        }
    )
    return A.Run(run_dir).save(summary)
