"""The generic stage loop: for each planned stage, freeze/unfreeze parts, compile, fit with early stopping.

Metrics leave this module only through a `sink(metrics, step)` callable, so tracking stays elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from facebias.training.schedule import StagePlan
from facebias.vocab import AGE_NORMALISATION

MetricSink = Callable[[dict[str, float], int], None]
CURVE_KEYS: tuple[str, ...] = ("loss", "val_loss", "mae", "val_mae")
EVAL_BATCH_SIZE = 64
"""Batch size for validation (inference only: no effect on training, fewer steps)."""


def mae_years(y_true, y_pred):
    """Mean absolute error in years (targets and predictions are age / 100)."""
    return ops.mean(ops.abs(y_true - y_pred), axis=-1) * AGE_NORMALISATION


mae_years.__name__ = "mae"


def set_trainable_parts(model: keras.Model, parts: dict[str, bool]) -> None:
    """Freeze or unfreeze the `backbone` and `head` sub-models; a frozen BatchNorm runs in inference mode."""
    model.trainable = True
    for part, trainable in parts.items():
        model.get_layer(part).trainable = trainable


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class StageCurveLogger(keras.callbacks.Callback):
    """Forward each epoch's loss/MAE to the sink under stage{k}/… (stage epoch) and epoch/… (global epoch)."""

    def __init__(self, stage: StagePlan, first_global_epoch: int, sink: MetricSink) -> None:
        super().__init__()
        self.stage = stage
        self.first_global_epoch = first_global_epoch
        self.sink = sink
        self.epochs_run = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        values = {key: float(logs[key]) for key in CURVE_KEYS if key in logs}
        if not all(math.isfinite(v) for v in values.values()):
            self.model.stop_training = True
            raise NonFiniteLossError(
                f"stage {self.stage.index}, epoch {epoch + 1}: the loss is not finite ({values}); "
                f"try a lower learning rate than schedule.stages[{self.stage.index - 1}].lr={self.stage.lr}"
            )
        self.epochs_run = epoch + 1
        self.sink({f"{self.stage.prefix}/{k}": v for k, v in values.items()}, epoch)
        self.sink({f"epoch/{k}": v for k, v in values.items()}, self.first_global_epoch + epoch)


def run_stage(
    model: keras.Model,
    stage: StagePlan,
    train: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    valid: tuple[np.ndarray, np.ndarray],
    first_global_epoch: int,
    sink: MetricSink,
    verbose: str | int = "auto",
) -> int:
    """Train one stage; early stopping on val_loss restores the stage's best weights. Returns epochs run."""
    set_trainable_parts(model, stage.parts)
    model.compile(optimizer=keras.optimizers.Adam(stage.lr), loss="mse", metrics=[mae_years],
                  run_eagerly=stage.run_eagerly)
    images, targets, weights = train
    steps = None
    if stage.max_train_batches is not None:
        steps = min(stage.max_train_batches, math.ceil(len(images) / stage.batch_size))
    logger = StageCurveLogger(stage, first_global_epoch, sink)
    model.fit(
        images,
        targets,
        sample_weight=weights,
        batch_size=stage.batch_size,
        epochs=stage.max_epochs,
        steps_per_epoch=steps,
        validation_data=valid,
        validation_batch_size=max(stage.batch_size, EVAL_BATCH_SIZE),
        shuffle=True,
        verbose=verbose,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=stage.patience, restore_best_weights=True),
            logger,
        ],
    )
    return logger.epochs_run


def run_schedule(
    model: keras.Model,
    stages: list[StagePlan],
    train: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    valid: tuple[np.ndarray, np.ndarray],
    sink: MetricSink,
    verbose: str | int = "auto",
    on_stage_start: Callable[[StagePlan], None] | None = None,
) -> list[int]:
    """Run every stage in order, curves continuing across stages; returns the epochs each stage ran."""
    epochs_per_stage = []
    global_epoch = 0
    for stage in stages:
        if on_stage_start is not None:
            on_stage_start(stage)
        epochs = run_stage(model, stage, train, valid, global_epoch, sink, verbose)
        epochs_per_stage.append(epochs)
        global_epoch += epochs
    return epochs_per_stage

