"""`tf.data` input pipelines over uint8 image arrays held in memory or memory-mapped (`np.load(mmap_mode="r")`).

The image array never enters the TensorFlow graph (`Dataset.from_tensor_slices(images)` would copy all of it into
a constant). The pipeline shuffles and batches *indices*; a `tf.numpy_function` then gathers each batch from the
array in one copy. Only the batches in flight are held in anonymous memory (the pages of a memory map that were
read stay in the page cache: file-backed, reclaimable, though counted in the process's RSS). Targets and weights
are small and are gathered in the graph.

Training batches form an endless stream, epoch after epoch: epoch e is a stateless permutation keyed by
(seed, e), so a seed gives the same epochs whatever TensorFlow's global seed, and every epoch is reshuffled.
With group codes (sampling=balanced), an epoch is instead as many draws as there are samples, each picking a group
uniformly and then one of its samples uniformly (with replacement), keyed by (seed, e) in the same way.
The indices of a batch are sorted (rows read in file order; the order within a batch does not change a mean loss).
Augmentation (training batches only) is keyed by (seed, epoch, batch). Images stay uint8 throughout — the model
resizes and preprocesses them in its own graph; augmentation computes in float and rounds back to uint8.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from facebias.config import AugmentationConfig

EVAL_BATCH_SIZE = 64
"""Batch size for validation and prediction (inference only: no effect on training, fewer steps)."""
RANDOM_ALG = "philox"
"""Stateless RNG algorithm, pinned so that shuffles and augmentations do not depend on the device."""

Augment = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
"""(uint8 image batch, stateless key) → augmented uint8 image batch."""


def batches_per_epoch(n_samples: int, batch_size: int, max_batches: int | None = None) -> int:
    """Batches in one training epoch: all the samples (the last batch may be short), capped by max_batches."""
    batches = math.ceil(n_samples / batch_size)
    return batches if max_batches is None else min(batches, max_batches)


def training_dataset(
    images: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray | None,
    batch_size: int,
    seed: int,
    augmentation: AugmentationConfig | None = None,
    max_batches: int | None = None,
    first_epoch: int = 0,
    groups: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Endless shuffled training batches (x, y) or (x, y, w), `batches_per_epoch(...)` of them per epoch.

    Give `model.fit` `steps_per_epoch=batches_per_epoch(len(images), batch_size, max_batches)`. Epochs are numbered
    from `first_epoch` (a later stage continues the run's sequence of shuffles); each is cut to its first
    `max_batches` batches when given. Batches are augmented when `augmentation.enabled`. With `groups` (each
    sample's group code), epochs are group-balanced draws (`balanced_order`) instead of permutations.
    """
    if len(images) == 0:
        raise ValueError("no training images: an endless stream of empty epochs would never yield a batch")
    augment = _augmenter(augmentation) if augmentation is not None and augmentation.enabled else None
    load = _loader(images, targets, weights, augment)
    batches = tf.data.Dataset.counter(start=first_epoch).flat_map(
        _epoch_index_batches(len(images), batch_size, seed, max_batches, groups))
    return batches.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def inference_dataset(images: np.ndarray, targets: np.ndarray | None, batch_size: int) -> tf.data.Dataset:
    """Batches in stored order, never augmented: x, or (x, y) when targets are given."""
    load = _loader(images, targets, None, None)
    batches = tf.data.Dataset.range(len(images)).batch(batch_size)
    return batches.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def balanced_order(groups: np.ndarray, key: tf.Tensor) -> tf.Tensor:
    """len(groups) sample indices: each draw a group chosen uniformly, then one of its samples uniformly."""
    codes = np.asarray(groups, dtype=np.int64)
    by_group = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    present = np.flatnonzero(sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    group_key, member_key = tf.unstack(tf.random.experimental.stateless_split(key, 2, alg=RANDOM_ALG))
    chosen = tf.random.stateless_uniform([len(codes)], group_key, 0, len(present), dtype=tf.int64, alg=RANDOM_ALG)
    chosen = tf.gather(tf.constant(present), chosen)
    member = tf.random.stateless_uniform([len(codes)], member_key, 0.0, 1.0, dtype=tf.float64, alg=RANDOM_ALG)
    size = tf.gather(tf.constant(sizes.astype(np.float64)), chosen)
    offset = tf.minimum(tf.cast(tf.floor(member * size), tf.int64), tf.cast(size, tf.int64) - 1)
    return tf.gather(tf.constant(by_group), tf.gather(tf.constant(starts), chosen) + offset)


def _epoch_index_batches(n_samples: int, batch_size: int, seed: int, max_batches: int | None,
                         groups: np.ndarray | None = None):
    """epoch → its (sorted indices, key) batches: a permutation (or, with `groups`, a group-balanced draw) keyed by
    (seed, epoch); keys seed augmentation."""
    take = -1 if max_batches is None else max_batches

    def index_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        epoch_key = tf.stack([tf.constant(seed, tf.int64), epoch])
        if groups is not None:
            order = balanced_order(groups, epoch_key)
        else:
            order = tf.random.experimental.stateless_shuffle(tf.range(n_samples, dtype=tf.int64), epoch_key,
                                                             alg=RANDOM_ALG)
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).take(take).enumerate()
        return batches.map(lambda number, indices: (tf.sort(indices), _fold_in(epoch_key, number)))

    return index_batches


def _loader(images: np.ndarray, targets: np.ndarray | None, weights: np.ndarray | None, augment: Augment | None):
    """(indices[, key]) → x, or (x, y[, w]), of those samples; images read from numpy, the rest in the graph."""
    if images.dtype not in (np.uint8, np.float32):
        raise ValueError(f"images must be uint8 (or float32 backbone features), got {images.dtype}")
    columns = [tf.constant(np.asarray(c, dtype=np.float32)) for c in (targets, weights) if c is not None]
    image_shape = (None, *images.shape[1:])

    def read(indices: np.ndarray) -> np.ndarray:
        return np.asarray(images[indices])

    def load(indices: tf.Tensor, key: tf.Tensor | None = None):
        x = tf.ensure_shape(tf.numpy_function(read, [indices], tf.as_dtype(images.dtype), stateful=False),
                            image_shape)
        if augment is not None:
            x = augment(x, key)
        return (x, *(tf.gather(column, indices) for column in columns)) if columns else x

    return load


def _augmenter(config: AugmentationConfig) -> Augment:
    """Per image: random horizontal flip, random crop resized back, brightness shift; computed in float."""

    def augment(images: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
        flip_key, crop_key, brightness_key = tf.unstack(tf.random.experimental.stateless_split(key, 3,
                                                                                                alg=RANDOM_ALG))
        pixels = tf.cast(images, tf.float32)
        count = tf.shape(pixels)[:1]
        if config.horizontal_flip:
            flipped = _uniform(count, flip_key, 0.0, 1.0) < 0.5
            pixels = tf.where(flipped[:, None, None, None], tf.reverse(pixels, axis=[2]), pixels)
        if config.crop_fraction > 0:
            pixels = _random_crop_resize(pixels, crop_key, config.crop_fraction)
        if config.brightness > 0:
            shift = _uniform(count, brightness_key, -config.brightness, config.brightness)
            pixels = pixels + 255.0 * shift[:, None, None, None]
        return tf.cast(tf.round(tf.clip_by_value(pixels, 0.0, 255.0)), tf.uint8)

    return augment


def _random_crop_resize(pixels: tf.Tensor, key: tf.Tensor, fraction: float) -> tf.Tensor:
    """Per image, a square crop losing up to `fraction` of the side, at a random position, resized back."""
    size_key, position_key = tf.unstack(tf.random.experimental.stateless_split(key, 2, alg=RANDOM_ALG))
    count = tf.shape(pixels)[:1]
    side = 1.0 - _uniform(count, size_key, 0.0, fraction)[:, None]
    start = _uniform(tf.concat([count, [2]], axis=0), position_key, 0.0, 1.0) * (1.0 - side)
    boxes = tf.concat([start, start + side], axis=1)
    return tf.image.crop_and_resize(pixels, boxes, tf.range(count[0]), tuple(pixels.shape[1:3]))


def _uniform(shape: tf.Tensor, key: tf.Tensor, low: float, high: float) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, key, minval=low, maxval=high, alg=RANDOM_ALG)


def _fold_in(key: tf.Tensor, number: tf.Tensor) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(key, number, alg=RANDOM_ALG)
