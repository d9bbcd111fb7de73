"""TensorFlow-side run helpers: seeding, the effective input size, and predicting a split in years."""

from __future__ import annotations

import warnings

import keras
import numpy as np

from facebias.config import BackboneConfig, TrainerConfig
from facebias.data.dataset import Dataset
from facebias.evaluation import SplitEvaluation, evaluate_split
from facebias.models.registry import min_input_size
from facebias.training.loop import EVAL_BATCH_SIZE
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
    """Predicted apparent ages in years."""
    return model.predict(images, batch_size=batch_size, verbose=0).reshape(-1) * AGE_NORMALISATION


def evaluate_model(model: keras.Model, dataset: Dataset, limit: int | None = None) -> list[SplitEvaluation]:
    """Evaluate the validation and test splits (the first `limit` samples of each in quick mode).

    A split without labels (the starting kit's test split) is not evaluated: a warning says so.
    """
    evaluations = []
    for prefix, name in EVALUATED_SPLITS.items():
        split = dataset.splits[name]
        if np.isnan(split.ages).all():
            warnings.warn(f"the {name} split of {dataset.name} has no labels: it is not evaluated (no {prefix}/… "
                          "metrics)", stacklevel=2)
            continue
        predicted = predict_ages(model, split.images[:limit])
        evaluations.append(evaluate_split(prefix, split.ages[:limit], predicted, split.attributes.iloc[:limit]))
    return evaluations
