"""The generic stage loop: for each planned stage, freeze/unfreeze parts, compile, fit with early stopping.

Metrics leave this module only through a `sink(metrics, step)` callable, so tracking stays elsewhere.
With `LoopContext.checkpoint_file`, every epoch end leaves a checkpoint (facebias.training.checkpoint) before its
metrics are sent; a stage's last epoch's is the stage-end checkpoint. With `LoopContext.resume`, the schedule
continues from one: finished stages are skipped and the current one goes on at its next epoch, with the optimizer
and early-stopping state it had.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from facebias.config import AugmentationConfig
from facebias.data.pipeline import EVAL_BATCH_SIZE, batches_per_epoch, inference_dataset, training_dataset
from facebias.training.callbacks import EpochRecords, MetricSink, ResumableEarlyStopping, StageCurveLogger
from facebias.training.checkpoint import Checkpoint, EarlyStoppingState, capture_rng, restore_rng, save_checkpoint
from facebias.training.feature_cache import (
    FeaturePass,
    FeatureStore,
    backbone_fingerprint,
    cache_blocker,
    payoff_blocker,
    stage_backbone_reads,
)
from facebias.training.hooks import TrainingHooks
from facebias.training.schedule import StagePlan
from facebias.vocab import AGE_NORMALISATION

TrainData = tuple[np.ndarray, np.ndarray, np.ndarray | None]
"""The training split as the loop takes it: images, targets (age / 100, or packed by a mitigation), weights."""
ValidData = tuple[np.ndarray, np.ndarray]
"""The validation split: images, age / 100."""


def _flat_pair(y_true, y_pred):
    """Targets and predictions as matching 1-D tensors: a (batch,) target against a (batch, 1) prediction must not
    broadcast to (batch, batch). Packed targets (target, extra columns…: a mitigation's loss reads the extras) give
    their first column."""
    y_pred = ops.reshape(y_pred, (-1,))
    if len(y_true.shape) == 2:
        y_true = y_true[:, 0]
    return ops.reshape(ops.cast(y_true, y_pred.dtype), (-1,)), y_pred


def mae_years(y_true, y_pred):
    """Per-sample absolute error in years (targets and predictions are age / 100); Keras averages it."""
    y_true, y_pred = _flat_pair(y_true, y_pred)
    return ops.abs(y_pred - y_true) * AGE_NORMALISATION


def squared_error(y_true, y_pred):
    """Per-sample squared error on the normalised targets (the unweighted counterpart of the loss)."""
    y_true, y_pred = _flat_pair(y_true, y_pred)
    return ops.square(y_pred - y_true)


mae_years.__name__ = "mae"
squared_error.__name__ = "mse"


def set_trainable_parts(model: keras.Model, parts: dict[str, bool]) -> None:
    """Freeze or unfreeze the `backbone` and `head` sub-models; a frozen BatchNorm runs in inference mode."""
    model.trainable = True
    for part, trainable in parts.items():
        model.get_layer(part).trainable = trainable


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
    """One note per stage: whether it trained on cached backbone features, and why not."""
    cache_counts: list[tuple[int, int]] = field(default_factory=list)
    """Feature-cache (hits, misses) per stage."""
    checkpoint_file: Path | None = None
    """Where each epoch end leaves a checkpoint; None: no checkpoints."""
    resume: Checkpoint | None = None
    """The checkpoint to continue from; None: start afresh."""
    stage_epochs: list[int] = field(default_factory=list)
    """Epochs run by each finished stage (run_schedule fills it)."""
    model: keras.Model | None = None
    """The whole model (run_schedule sets it): what checkpoints save, even when a stage fits only the head."""
    hooks: TrainingHooks = field(default_factory=TrainingHooks)
    """The mitigations' loss, curves and checkpointed state (facebias.training.hooks)."""
    sampling_groups: np.ndarray | None = None
    """Each training sample's group code when sampling=balanced; None: shuffled epochs."""
    unsent: EpochRecords = field(default_factory=list)
    """A stage's last epoch's curves: sent after the stage-end checkpoint, which holds them."""

    def save_checkpoint(self, stage: int, epoch: int, optimizer: Any = None,
                        early_stopping: EarlyStoppingState | None = None, records: EpochRecords | None = None) -> None:
        """Leave a checkpoint of the run's state (nothing without `checkpoint_file`)."""
        if self.checkpoint_file is None or self.model is None:
            return
        python_rng, numpy_rng = capture_rng()
        save_checkpoint(self.checkpoint_file, Checkpoint(
            stage=stage, epoch=epoch, stage_epochs=list(self.stage_epochs), seed=self.seed,
            model_variables=[np.asarray(v) for v in self.model.variables],
            optimizer_variables=None if optimizer is None else [np.asarray(v) for v in optimizer.variables],
            early_stopping=early_stopping, python_rng=python_rng, numpy_rng=numpy_rng,
            last_metrics={"records": [[metrics, step] for metrics, step in records or []]},
            notes=list(self.notes), cache_counts=[list(counts) for counts in self.cache_counts],
            mitigation_state=self.hooks.state()))

    def summary(self) -> dict[str, float]:
        """The loop's metrics, sent once when the last stage is over: epochs per stage, feature-cache hits/misses."""
        return {**{f"stage{i}/epochs": n for i, n in enumerate(self.stage_epochs, start=1)},
                "feature_cache/hits": sum(hits for hits, _ in self.cache_counts),
                "feature_cache/misses": sum(misses for _, misses in self.cache_counts)}

    @property
    def replicas(self) -> int:
        return 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)

    def scope(self):
        """The distribution strategy's scope (variables and compile must be created inside it), or a no-op."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def _compile(model: keras.Model, stage: StagePlan, context: LoopContext, steps_per_execution: int = 1) -> None:
    """Compile for the stage; `steps_per_execution` training steps run per call of the training function (the same
    batches and updates as one step per call, with less per-step overhead)."""
    with context.scope():
        loss = context.hooks.loss() or "mse"
        model.compile(optimizer=keras.optimizers.Adam(stage.lr), loss=loss, metrics=[squared_error, mae_years],
                      run_eagerly=stage.run_eagerly, jit_compile="auto" if context.jit_compile is None
                      else context.jit_compile, steps_per_execution=1 if stage.run_eagerly else steps_per_execution)


def _restore_optimizer(model: keras.Model, values: list[np.ndarray], context: LoopContext) -> None:
    """Build the freshly compiled optimizer and put back the variables a checkpoint saved."""
    with context.scope():
        model.optimizer.build(model.trainable_variables)
    variables = model.optimizer.variables
    if len(variables) != len(values):
        raise RuntimeError(f"the checkpoint holds {len(values)} optimizer variables, the optimizer has "
                           f"{len(variables)}: it was written by a different model or schedule")
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def _fit(model: keras.Model, stage: StagePlan, train: TrainData, valid: ValidData, first_global_epoch: int,
         context: LoopContext, augmentation: AugmentationConfig | None, resume: Checkpoint | None = None) -> int:
    """model.fit on the pipelines, with early stopping (best weights restored) and the curve logger.

    With `resume` (a checkpoint inside this stage), training goes on at the epoch after the checkpoint's.
    """
    done = 0 if resume is None else resume.epoch
    stopping_state = None if resume is None else resume.early_stopping
    if resume is not None and (resume.stage_over or done >= stage.max_epochs):
        if stopping_state is not None and stopping_state.best_weights is not None:
            model.set_weights(stopping_state.best_weights)  # what EarlyStopping does when its fit ends
        return done
    if resume is not None and resume.optimizer_variables is not None:
        _restore_optimizer(model, resume.optimizer_variables, context)
    batch_size = stage.batch_size * context.replicas
    batches = training_dataset(*train, batch_size, context.seed, augmentation, stage.max_train_batches,
                               first_epoch=first_global_epoch + done, groups=context.sampling_groups)
    stopping = ResumableEarlyStopping(monitor="val_loss", patience=stage.patience, restore_best_weights=True,
                                      initial_state=stopping_state)

    def checkpoint(epochs_done: int, records: EpochRecords) -> EpochRecords:
        over = bool(model.stop_training) or epochs_done >= stage.max_epochs
        if over and context.checkpoint_file is not None:  # run_schedule's stage-end checkpoint follows at once
            context.unsent = records
            return []
        context.save_checkpoint(stage.index, epochs_done, model.optimizer, stopping.state(), records)
        return records

    logger = StageCurveLogger(stage, first_global_epoch, context.sink, done, checkpoint, context.hooks.curves)
    model.fit(
        batches,
        initial_epoch=done,
        epochs=stage.max_epochs,
        steps_per_epoch=batches_per_epoch(len(train[0]), batch_size, stage.max_train_batches),
        validation_data=inference_dataset(*valid, max(batch_size, EVAL_BATCH_SIZE)),
        shuffle=False,  # the pipeline shuffles
        verbose=context.verbose,
        callbacks=[stopping, logger],  # in this order: the checkpoint holds the epoch's early-stopping state
    )
    return logger.epochs_run


def _cached_features(model: keras.Model, splits: dict[str, tuple[str, np.ndarray]], store: FeatureStore,
                     jit_compile: bool | None) -> list[np.ndarray]:
    """Each split's (key, images) stored features, or computed by one feature pass shared by the splits (built only
    when one is missing)."""
    passes: list[FeaturePass] = []

    def compute(images: np.ndarray, split: str) -> np.ndarray:
        if not passes:
            passes.append(FeaturePass(model, jit_compile))
        return passes[0](images, f"{split} features")

    return [store.features(key, partial(compute, images, split)) for split, (key, images) in splits.items()]


def _feature_keys(model: keras.Model, train: np.ndarray, valid: np.ndarray, cache: FeatureCacheContext) -> list[str]:
    fingerprint = backbone_fingerprint(model)
    return [cache.store.key(fingerprint, cache.dataset_digest, split, len(images))
            for split, images in (("train", train), ("valid", valid))]


def run_stage(
    model: keras.Model,
    stage: StagePlan,
    train: TrainData,
    valid: ValidData,
    first_global_epoch: int,
    context: LoopContext,
    resume: Checkpoint | None = None,
) -> int:
    """Train one stage; early stopping on val_loss restores the stage's best weights. Returns epochs run.

    Training batches come from `training_dataset` (shuffled with the context's seed, epochs numbered from
    `first_global_epoch`, augmented when enabled), validation batches from `inference_dataset`. A head-only stage
    trains the head on cached backbone features when the feature cache applies, a whole epoch per call of the
    training function; the context's notes say why not.
    """
    set_trainable_parts(model, stage.parts)
    cache = context.feature_cache
    augmenting = context.augmentation is not None and context.augmentation.enabled
    blocker = cache_blocker(stage.trainable, augmenting, cache is not None and cache.enabled)
    if blocker is None and context.strategy is not None:
        blocker = "training is distributed (trainer.distribute) and the cache path runs on one device"
    (images, targets, weights), n_valid = train, len(valid[0])
    keys: list[str] = []
    if blocker is None and cache is not None:
        keys = _feature_keys(model, images, valid[0], cache)
        reads = stage_backbone_reads(stage.max_epochs, len(images), stage.batch_size, stage.max_train_batches, n_valid)
        blocker = payoff_blocker(reads, len(images) + n_valid, all(cache.store.has(key) for key in keys))
    if blocker is not None or cache is None:
        context.notes.append(f"stage {stage.index}: backbone recomputed every epoch because {blocker}")
        context.cache_counts.append((0, 0))
        _compile(model, stage, context)
        return _fit(model, stage, train, valid, first_global_epoch, context, context.augmentation, resume)
    hits, misses = cache.store.hits, cache.store.misses
    train_features, valid_features = _cached_features(model, {"train": (keys[0], images),
                                                                      "valid": (keys[1], valid[0])}, cache.store,
                                                        context.jit_compile)
    counts = cache.store.hits - hits, cache.store.misses - misses
    context.notes.append(f"stage {stage.index}: head trained on cached backbone features "
                         f"({counts[0]} hit(s), {counts[1]} miss(es))")
    context.cache_counts.append(counts)
    head = model.get_layer("head")
    _compile(head, stage, context, batches_per_epoch(len(images), stage.batch_size, stage.max_train_batches))
    return _fit(head, stage, (train_features, targets, weights), (valid_features, valid[1]), first_global_epoch,
                context, None, resume)


def run_schedule(
    model: keras.Model,
    stages: list[StagePlan],
    train: TrainData,
    valid: ValidData,
    context: LoopContext,
) -> list[int]:
    """Run every stage in order, curves (and shuffles) continuing across stages; returns the epochs each stage ran.

    With `context.resume`, the model's variables, the RNG states and the notes of finished stages come back from the
    checkpoint, finished stages are skipped and the checkpoint's stage continues where it stopped. When the last
    stage is over, its checkpoint holds the loop summary (`LoopContext.summary`), then the summary goes to the sink:
    a run resumed from that checkpoint trains nothing and sends nothing again.
    """
    context.model = model
    resume = context.resume
    context.stage_epochs = [] if resume is None else list(resume.stage_epochs)
    if resume is not None:
        done = len(resume.stage_epochs)
        context.notes = list(resume.notes[:done])
        context.cache_counts = [(hits, misses) for hits, misses in resume.cache_counts[:done]]
        variables = model.variables
        if len(variables) != len(resume.model_variables):
            raise RuntimeError(f"the checkpoint holds {len(resume.model_variables)} model variables, the model has "
                               f"{len(variables)}: it was written by a different model")
        for variable, value in zip(variables, resume.model_variables, strict=True):
            variable.assign(value)
        restore_rng(resume.python_rng, resume.numpy_rng)
        if resume.mitigation_state is not None:
            context.hooks.restore(resume.mitigation_state)
    for stage in stages[len(context.stage_epochs):]:
        in_stage = resume if resume is not None and resume.stage == stage.index else None
        epochs = run_stage(model, stage, train, valid, sum(context.stage_epochs), context, in_stage)
        context.stage_epochs.append(epochs)
        records = context.unsent + ([(context.summary(), 0)] if stage is stages[-1] else [])
        context.unsent = []
        context.save_checkpoint(stage.index + 1, 0, records=records)
        for metrics, step in records:
            context.sink(metrics, step)
    return list(context.stage_epochs)
