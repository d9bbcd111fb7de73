"""The generic stage loop: for each planned stage, freeze/unfreeze parts, compile, fit with early stopping.

Metrics leave this module only through a `sink(metrics, step)` callable, so tracking stays elsewhere.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from facebias.config import AugmentationConfig
from facebias.data.pipeline import batches_per_epoch, inference_dataset, training_dataset
from facebias.training.feature_cache import FeatureStore, backbone_fingerprint, cache_blocker, feature_extractor
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


@dataclass
class FeatureCacheContext:
    """What the frozen-stage feature cache needs beyond the stage: where features live, which data they are of."""

    store: FeatureStore
    dataset_digest: str
    enabled: bool = True


@dataclass
class LoopContext:
    """Everything the stages share: where curves go, shuffling, augmentation, caching, devices, XLA."""

    sink: MetricSink
    verbose: str | int = "auto"
    seed: int = 0
    augmentation: AugmentationConfig | None = None
    feature_cache: FeatureCacheContext | None = None
    strategy: Any = None
    jit_compile: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def replicas(self) -> int:
        return 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)

    def scope(self):
        """The distribution strategy's scope (variables and compile must be created inside it), or a no-op."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def _compile(model: keras.Model, stage: StagePlan, context: LoopContext) -> None:
    with context.scope():
        model.compile(optimizer=keras.optimizers.Adam(stage.lr), loss="mse", metrics=[mae_years],
                      run_eagerly=stage.run_eagerly, jit_compile="auto" if context.jit_compile is None
                      else context.jit_compile)


def _fit(model: keras.Model, stage: StagePlan, train: tuple, valid: tuple, first_global_epoch: int,
         context: LoopContext, augmentation: AugmentationConfig | None) -> int:
    """model.fit on the pipelines, with early stopping (best weights restored) and the curve logger."""
    images, targets, weights = train
    batch_size = stage.batch_size * context.replicas
    batches = training_dataset(images, targets, weights, batch_size, context.seed, augmentation,
                               stage.max_train_batches, first_epoch=first_global_epoch)
    logger = StageCurveLogger(stage, first_global_epoch, context.sink)
    model.fit(
        batches,
        epochs=stage.max_epochs,
        steps_per_epoch=batches_per_epoch(len(images), batch_size, stage.max_train_batches),
        validation_data=inference_dataset(*valid, max(batch_size, EVAL_BATCH_SIZE)),
        shuffle=False,  # the pipeline shuffles
        verbose=context.verbose,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=stage.patience, restore_best_weights=True),
            logger,
        ],
    )
    return logger.epochs_run


def _cached_features(model: keras.Model, images: np.ndarray, split: str, cache: FeatureCacheContext) -> np.ndarray:
    store = cache.store
    key = store.key(backbone_fingerprint(model), cache.dataset_digest, split, len(images))
    extractor = feature_extractor(model)
    return store.features(key, lambda: extractor.predict(inference_dataset(images, None, EVAL_BATCH_SIZE), verbose=0))


def run_stage(
    model: keras.Model,
    stage: StagePlan,
    train: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    valid: tuple[np.ndarray, np.ndarray],
    first_global_epoch: int,
    context: LoopContext,
) -> int:
    """Train one stage; early stopping on val_loss restores the stage's best weights. Returns epochs run.

    Training batches come from `training_dataset` (shuffled with the context's seed, epochs numbered from
    `first_global_epoch`, augmented when enabled), validation batches from `inference_dataset`. A head-only stage
    trains the head on cached backbone features when the feature cache applies; the context's notes say why not.
    """
    set_trainable_parts(model, stage.parts)
    cache = context.feature_cache
    augmenting = context.augmentation is not None and context.augmentation.enabled
    blocker = cache_blocker(stage.trainable, augmenting, cache is not None and cache.enabled)
    if blocker is None and context.strategy is not None:
        blocker = "training is distributed (trainer.distribute) and the cache path runs on one device"
    if blocker is not None:
        context.notes.append(f"stage {stage.index}: backbone recomputed every epoch because {blocker}")
        _compile(model, stage, context)
        return _fit(model, stage, train, valid, first_global_epoch, context, context.augmentation)
    images, targets, weights = train
    hits, misses = cache.store.hits, cache.store.misses
    train_features = _cached_features(model, images, "train", cache)
    valid_features = _cached_features(model, valid[0], "valid", cache)
    context.notes.append(f"stage {stage.index}: head trained on cached backbone features "
                         f"({cache.store.hits - hits} hit(s), {cache.store.misses - misses} miss(es))")
    head = model.get_layer("head")
    _compile(head, stage, context)
    return _fit(head, stage, (train_features, targets, weights), (valid_features, valid[1]), first_global_epoch,
                context, None)


def run_schedule(
    model: keras.Model,
    stages: list[StagePlan],
    train: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    valid: tuple[np.ndarray, np.ndarray],
    context: LoopContext,
) -> list[int]:
    """Run every stage in order, curves (and shuffles) continuing across stages; returns the epochs each stage ran."""
    epochs_per_stage = []
    global_epoch = 0
    for stage in stages:
        epochs = run_stage(model, stage, train, valid, global_epoch, context)
        epochs_per_stage.append(epochs)
        global_epoch += epochs
    return epochs_per_stage
