"""TensorFlow-side run helpers: seeding, the effective input size, and predicting a split in years."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pandas as pd

from facebias.config import BackboneConfig, StatisticsConfig, TrainConfig, TrainerConfig
from facebias.data.dataset import Dataset
from facebias.data.pipeline import EVAL_BATCH_SIZE, inference_dataset
from facebias.evaluation import SplitEvaluation, evaluate_split
from facebias.mitigations.base import Correction
from facebias.models.assemble import build_model
from facebias.models.calibration import GROUP_INPUT
from facebias.models.registry import min_input_size
from facebias.models.serving import serving_model
from facebias.progress import keras_verbose
from facebias.vocab import AGE_NORMALISATION

EVALUATED_SPLITS: dict[str, str] = {"val": "valid", "test": "test"}
"""Metric prefix → dataset split."""


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow; optionally make TensorFlow ops deterministic."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def effective_input_size(backbone: BackboneConfig, trainer: TrainerConfig) -> int:
    """The backbone's input size, capped by trainer.max_input_size but never below the backbone's minimum."""
    size = backbone.input_size
    if trainer.max_input_size is not None:
        size = max(min(size, trainer.max_input_size), min_input_size(backbone.name))
    return size


def predict_ages(model: keras.Model, images: np.ndarray, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """Predicted apparent ages in years (images in memory or memory-mapped, read batch by batch)."""
    batches = inference_dataset(images, None, batch_size)
    return model.predict(batches, verbose=keras_verbose()).reshape(-1) * AGE_NORMALISATION


def serving(model: keras.Model, strategy: Any = None, hook: tuple[Any, ...] = ()) -> keras.Model:
    """The trained `model` as users get it (uint8 images → years, `facebias.models.serving`), built in the scope
    of the strategy that holds its variables; `hook`: a correction's post-processing (`Correction.serving_hook`,
    e.g. group offsets subtracted, with the image's group key as a second input `group`)."""
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        return serving_model(model, *hook)


def predict_years(model: keras.Model, images: np.ndarray, batch_size: int = EVAL_BATCH_SIZE,
                  groups: np.ndarray | None = None) -> np.ndarray:
    """Predictions of a serving model (years out), batch by batch; a calibrated one also takes each image's group
    key (`groups`, strings)."""
    if groups is not None:
        inputs = {"image": np.asarray(images), GROUP_INPUT: np.asarray(groups, dtype=object)}
        return model.predict(inputs, batch_size=batch_size, verbose=keras_verbose()).reshape(-1)
    return model.predict(inference_dataset(images, None, batch_size), verbose=keras_verbose()).reshape(-1)


def set_execution(model: keras.Model, trainer: TrainerConfig) -> None:
    """Make the model predict the way `trainer` says (eagerly or as a graph, with or without XLA), whatever it was
    last compiled for: a resumed process that trained nothing (its model never compiled) and the process that
    trained then predict alike, and the same predictions give the same metrics."""
    model.run_eagerly = trainer.run_eagerly
    model.jit_compile = False if trainer.run_eagerly else trainer.jit_compile  # None: Keras decides, as in compile
    model.predict_function = None  # built on the next predict, in that mode


def evaluate_model(model: keras.Model, dataset: Dataset, limit: int | None = None,
                   statistics: StatisticsConfig | None = None, trainer: TrainerConfig | None = None,
                   calibrate: Callable[[np.ndarray, np.ndarray, pd.DataFrame], Correction | None] | None = None,
                   ) -> tuple[list[SplitEvaluation], Correction | None]:
    """Evaluate the validation and test splits (the first `limit` samples of each in quick mode), with the
    uncertainty of every score when `statistics` is given, predicting as `trainer` says (`set_execution`).

    `calibrate` (a mitigation's hook) may fit a post-hoc correction on the validation ages, predictions (years) and
    attributes: then `val_raw` is the validation split before it, `val` the correction's own validation predictions
    (cross-fitted, for group offsets) and `test` after it; the correction is returned with the evaluations.
    A split without labels (the starting kit's test split) is not evaluated: a warning says so.
    """
    if trainer is not None:
        set_execution(model, trainer)
    predictions = {}
    for prefix, name in EVALUATED_SPLITS.items():
        split = dataset.splits[name]
        if np.isnan(split.ages).all():
            warnings.warn(f"the {name} split of {dataset.name} has no labels: it is not evaluated (no {prefix}/… "
                          "metrics)", stacklevel=2)
            continue
        predicted = predict_ages(model, split.images[:limit])
        predictions[prefix] = split.ages[:limit], predicted, split.attributes.iloc[:limit]
    evaluations = []
    correction = calibrate(*predictions["val"]) if calibrate is not None and "val" in predictions else None
    if correction is not None:
        evaluations.append(evaluate_split("val_raw", *predictions["val"], statistics))
        ages, _, attributes = predictions["val"]
        predictions["val"] = ages, correction.validation, attributes
        if "test" in predictions:
            ages, predicted, attributes = predictions["test"]
            predictions["test"] = ages, correction.apply(predicted, attributes), attributes
    for prefix, (ages, predicted, attributes) in predictions.items():
        evaluations.append(evaluate_split(prefix, ages, predicted, attributes, statistics))
    return evaluations, correction


def build_run_model(config: TrainConfig, image_size: tuple[int, int]) -> tuple[keras.Model, Any]:
    """Set the precision policy, pick the distribution strategy and build the model inside its scope."""
    set_precision(config.trainer)
    strategy = distribution_strategy(config.trainer)
    input_size = effective_input_size(config.backbone, config.trainer)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build_model(config.backbone, config.head, image_size, input_size,
                            truncate_backbone=config.trainer.truncate_backbone)
    return model, strategy


def configure_devices(trainer: TrainerConfig) -> None:
    """Split the CPU into `trainer.cpu_devices` logical devices (before TensorFlow uses any device)."""
    if trainer.cpu_devices is None:
        return
    import tensorflow as tf

    (cpu,) = tf.config.list_physical_devices("CPU")[:1]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(trainer.cpu_devices)]
    )


def set_precision(trainer: TrainerConfig) -> None:
    """Keras' global dtype policy: float32, mixed_float16 or mixed_bfloat16 (the head's output stays float32)."""
    keras.mixed_precision.set_global_policy(trainer.precision)


def distribution_strategy(trainer: TrainerConfig):
    """tf.distribute.MirroredStrategy over every GPU (or logical CPU device) for `mirrored`, else None."""
    if trainer.distribute == "none":
        return None
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
        d.name for d in tf.config.list_logical_devices("CPU")
    ]
    return tf.distribute.MirroredStrategy(devices=devices)
