"""Benchmark: a head-only (frozen backbone) stage trained on cached features vs. recomputing the backbone.

Stage 1 of `two_stage` (backbone frozen, lr 1e-4) for a fixed number of epochs with early stopping off, ResNet50
(random init) on synthetic images of `--image-size` px fed to the backbone at that size (64 px, or the study's
224 px), run side by side in one process: uncached, cached from a cold cache (features computed once, then
stored), cached from the warm cache. Prints wall times, the speed-up ratios, where the time goes (the uncached
epochs; the cold run's feature pass and head training) and the largest difference of the validation losses per
epoch. The limit of the cold ratio is about the number of epochs: one backbone pass per image instead of one per
epoch.

    python benchmarks/frozen_stage.py [--epochs 10] [--n-train 4065] [--n-valid 1482] [--image-size 64]
    python benchmarks/frozen_stage.py --image-size 224 --n-train 300 --n-valid 100
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from facebias.config import BackboneConfig, HeadConfig, StageConfig, TrainerConfig
from facebias.data.synthetic import load_synthetic
from facebias.models.assemble import build_model
from facebias.training.feature_cache import FeatureStore
from facebias.training.loop import FeatureCacheContext, LoopContext, run_stage
from facebias.training.schedule import plan_stages
from facebias.training.weighting import group_sample_weights


@dataclass
class TimedStore(FeatureStore):
    """A feature store that adds up the time spent computing features (the feature pass)."""

    compute_s: float = 0.0

    def features(self, key: str, compute) -> np.ndarray:
        def timed() -> np.ndarray:
            started = time.perf_counter()
            try:
                return compute()
            finally:
                self.compute_s += time.perf_counter() - started

        return super().features(key, timed)


@dataclass
class StageTiming:
    """A stage's wall time, the times at which its epochs ended (from its start) and its validation losses."""

    total_s: float = 0.0
    epoch_ends: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def epochs(self) -> list[float]:
        """Each epoch's duration (the first one from the stage's start, so with its setup)."""
        return list(np.diff([0.0, *self.epoch_ends]))


def timed_stage(dataset, args, store: FeatureStore, cached: bool) -> StageTiming:
    """The stage's timing and validation losses, for a model built from seed 0."""
    keras.utils.set_random_seed(0)
    backbone = BackboneConfig(name="resnet50", input_size=args.image_size, preprocessing="vggface2")
    model = build_model(backbone, HeadConfig(name="mlp", dropout=0.5, hidden_units=[128, 32]), dataset.image_size,
                        args.image_size)
    stage = plan_stages([StageConfig(trainable="head", lr=1e-4, max_epochs=args.epochs, patience=args.epochs,
                                     batch_size=32)], TrainerConfig())[0]
    timing = StageTiming()

    def sink(metrics: dict[str, float], step: int) -> None:
        if "stage1/val_loss" in metrics:
            timing.epoch_ends.append(time.perf_counter() - started)
            timing.losses.append(metrics["stage1/val_loss"])

    context = LoopContext(sink, verbose=0, feature_cache=FeatureCacheContext(store, dataset.digest(), enabled=cached))
    train = (dataset.train.images, dataset.train.ages / 100.0, group_sample_weights(dataset.train.attributes))
    started = time.perf_counter()
    run_stage(model, stage, train, (dataset.valid.images, dataset.valid.ages / 100.0), 0, context)
    timing.total_s = time.perf_counter() - started
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-train", type=int, default=4065)
    parser.add_argument("--n-valid", type=int, default=1482)
    parser.add_argument("--image-size", type=int, default=64, help="stored and backbone input size, px")
    args = parser.parse_args()
    dataset = load_synthetic(n_train=args.n_train, n_valid=args.n_valid, n_test=16, image_size=args.image_size,
                             progress=False)
    with tempfile.TemporaryDirectory(prefix="facebias-features-") as scratch:
        store = TimedStore(Path(scratch))
        uncached = timed_stage(dataset, args, store, cached=False)
        cold = timed_stage(dataset, args, store, cached=True)
        feature_pass_s = store.compute_s
        warm = timed_stage(dataset, args, store, cached=True)
    epochs = uncached.epochs()
    later_epoch_s = float(np.median(epochs[1:] or epochs))
    print(f"ResNet50 (random init) at {args.image_size} px, head-only stage, {args.epochs} epochs, "
          f"{args.n_train} train / {args.n_valid} valid images")
    print(f"  uncached            {uncached.total_s:8.1f} s   epoch 1 (with tracing) {epochs[0]:.1f} s, "
          f"later epochs median {later_epoch_s:.1f} s")
    print(f"  cached, cold cache  {cold.total_s:8.1f} s   speed-up {uncached.total_s / cold.total_s:5.1f}x   "
          f"feature pass {feature_pass_s:.1f} s ({args.n_train + args.n_valid} images), "
          f"the rest {cold.total_s - feature_pass_s:.1f} s")
    print(f"  cached, warm cache  {warm.total_s:8.1f} s   speed-up {uncached.total_s / warm.total_s:5.1f}x")
    steady = later_epoch_s * args.epochs
    print(f"  without the uncached side's first-epoch setup ({args.epochs} x its later-epoch median = {steady:.1f} s): "
          f"cold speed-up {steady / cold.total_s:.1f}x; one uncached epoch / feature pass: "
          f"{later_epoch_s / feature_pass_s:.2f}")
    difference = float(np.max(np.abs(np.array(cold.losses) - np.array(uncached.losses))))
    print(f"  max |val_loss cached - uncached| over the epochs: {difference:.3g} "
          f"(val_loss ~{np.mean(uncached.losses):.4f}); warm vs cold: "
          f"{np.max(np.abs(np.array(warm.losses) - np.array(cold.losses))):.3g}")


if __name__ == "__main__":
    main()
