"""The frozen-stage feature cache: backbone features computed once, stored on disk, reused across runs.

A stage that trains only the head, with the backbone frozen (batch norm in inference mode) and no training
augmentation, sees the same backbone output for an image in every epoch. Such a stage trains the head on
features computed once; the head's layers are the full model's, so the trained head is already in place.
Features are stored under `$FACEBIAS_CACHE/features/` keyed by everything that determines them: the backbone's
weights and name, the input size and preprocessing, the dataset digest, the split and the number of images.
Each file carries a SHA-256 digest; a file that does not match it is rebuilt, never trusted.

The feature pass runs the extractor in inference mode (no gradient tape, batch norm in inference mode) as one
`tf.function` traced once for both splits, in batches sized for throughput (`feature_batch_size`: inference only,
so the batch size does not change what is computed), straight from the image array into one float32 array.

Computing features pays only when the stage would send more images through the backbone than one feature pass:
a stage capped to a few batches per epoch (quick mode) reads fewer, so it recomputes the backbone instead
(`payoff_blocker`). Features already stored cost nothing and are always used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from facebias.data.pipeline import batches_per_epoch
from facebias.io import atomic_file, cache_root, write_json
from facebias.models.assemble import AS_FLOAT
from facebias.progress import bar

log = logging.getLogger(__name__)


def cache_blocker(trainable: str, augmentation_enabled: bool, enabled: bool) -> str | None:
    """Why a stage cannot train on cached features, or None when it can."""
    if not enabled:
        return "the feature cache is off (trainer.feature_cache=false)"
    if trainable != "head":
        return f"the stage trains backbone layers (trainable={trainable})"
    if augmentation_enabled:
        return "training augmentation is on, so the backbone sees different images every epoch"
    return None


def stage_backbone_reads(epochs: int, train_images: int, batch_size: int, max_batches: int | None,
                         valid_images: int) -> int:
    """Images an uncached head-only stage sends through the backbone at most: per epoch, its training batches
    (`batches_per_epoch`, so at most every training image) and one pass over the validation images."""
    return epochs * (min(train_images, batches_per_epoch(train_images, batch_size, max_batches) * batch_size)
                     + valid_images)


def payoff_blocker(reads: int, feature_pass: int, stored: bool) -> str | None:
    """Why computing the features does not pay for a stage that reads `reads` images through the backbone (one
    feature pass reads `feature_pass`), or None when it pays or the features are `stored` already."""
    if stored or reads > feature_pass:
        return None
    return (f"it reads at most {reads} images through the backbone, not more than one feature pass "
            f"({feature_pass} images)")


def feature_extractor(model: keras.Model) -> keras.Model:
    """The full model up to the head's input: cast → resize → preprocess → backbone, sharing the model's layers."""
    images = keras.Input(shape=model.input_shape[1:], dtype="uint8")
    x = model.get_layer(AS_FLOAT)(images)
    x = model.get_layer("resize")(x)
    x = model.get_layer("preprocess")(x)
    return keras.Model(images, model.get_layer("backbone")(x, training=False), name="feature_extractor")


FEATURE_PASS_PIXELS = 1 << 21
"""Input pixels per feature-pass batch (128 images of 128 px, 41 of 224 px): batches larger than training's where
images are small (fewer steps), their activations bounded in memory where they are large."""


def feature_batch_size(image_shape: tuple[int, ...]) -> int:
    """Images per feature-pass batch for images of `image_shape` (height, width, channels): 32 to 256."""
    return int(np.clip(FEATURE_PASS_PIXELS // (image_shape[0] * image_shape[1]), 32, 256))


class FeaturePass:
    """The model's backbone features of image arrays: one inference-mode function for every split of the model."""

    def __init__(self, model: keras.Model, jit_compile: bool | None = None) -> None:
        """`jit_compile` (`trainer.jit_compile`): XLA on or off; None: on where a GPU is visible, as Keras decides."""
        extractor = feature_extractor(model)
        self.shape = tuple(model.input_shape[1:])
        self.dim = int(extractor.output_shape[-1])
        self.batch_size = feature_batch_size(self.shape)
        xla = bool(tf.config.list_logical_devices("GPU")) if jit_compile is None else jit_compile
        self._run = tf.function(partial(extractor, training=False), jit_compile=xla, autograph=False,
                                input_signature=[tf.TensorSpec((None, *self.shape), tf.uint8)])

    def __call__(self, images: np.ndarray, description: str = "features") -> np.ndarray:
        """Features of `images` (uint8, in memory or memory-mapped), in order, as one float32 array; a progress bar
        of `description` on a terminal."""
        features = np.empty((len(images), self.dim), dtype=np.float32)
        with bar(len(images), description) as progress:
            for start in range(0, len(images), self.batch_size):
                batch = np.asarray(images[start:start + self.batch_size])
                features[start:start + len(batch)] = self._run(batch).numpy()
                progress.update(len(batch))
        return features


def backbone_fingerprint(model: keras.Model) -> str:
    """A digest of what determines the features: backbone name, its weights, input size and preprocessing."""
    hasher = hashlib.sha256()
    backbone = model.get_layer("backbone")
    description = {
        "backbone": model.name,
        "input_shape": list(model.input_shape[1:]),
        "resize": model.get_layer("resize").get_config().get("height"),
        "preprocess": model.get_layer("preprocess").get_config().get("mode"),
    }
    hasher.update(json.dumps(description, sort_keys=True).encode())
    for weight in backbone.weights:
        hasher.update(weight.path.encode())
        hasher.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return hasher.hexdigest()[:20]


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@dataclass
class FeatureStore:
    """Feature files `<key>.npy` with a `<key>.json` sidecar holding the digest; counts hits and misses."""

    root: Path = field(default_factory=partial(cache_root, "features"))
    hits: int = 0
    misses: int = 0

    def key(self, fingerprint: str, dataset_digest: str, split: str, count: int) -> str:
        text = json.dumps([fingerprint, dataset_digest, split, count])
        return f"{split}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"

    def has(self, key: str) -> bool:
        """Whether features of `key` are stored (their digest is checked when they are loaded)."""
        return (self.root / f"{key}.npy").exists() and (self.root / f"{key}.json").exists()

    def load(self, key: str) -> np.ndarray | None:
        """The stored features of `key`, or None when absent or corrupt (a corrupt file is removed)."""
        data, meta = self.root / f"{key}.npy", self.root / f"{key}.json"
        if not (data.exists() and meta.exists()):
            return None
        try:
            features = np.load(data, allow_pickle=False)
            expected = json.loads(meta.read_text())["sha256"]
        except (OSError, ValueError, KeyError) as error:
            log.warning("feature cache file %s is unreadable (%s): rebuilding it", data, error)
            features, expected = None, None
        if features is None or _digest(features) != expected:
            log.warning("feature cache file %s does not match its digest: rebuilding it", data)
            data.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            return None
        return features

    def save(self, key: str, features: np.ndarray) -> None:
        """Store features atomically, the digest sidecar last."""
        with atomic_file(self.root / f"{key}.npy") as stream:
            np.save(stream, features)
        write_json(self.root / f"{key}.json", {"sha256": _digest(features), "shape": features.shape})

    def features(self, key: str, compute) -> np.ndarray:
        """Stored features of `key`, or `compute()` them, store them and count a miss."""
        cached = self.load(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        computed = np.asarray(compute(), dtype=np.float32)
        self.save(key, computed)
        return computed

    def clear(self) -> int:
        """Delete every stored feature file; returns how many feature sets were removed."""
        if not self.root.exists():
            return 0
        removed = 0
        for path in self.root.glob("*.npy"):
            path.unlink()
            (self.root / f"{path.stem}.json").unlink(missing_ok=True)
            removed += 1
        return removed
