"""Benchmark: a head-only (frozen backbone) stage trained on cached features vs. recomputing the backbone.

Stage 1 of `two_stage` (backbone frozen, lr 1e-4) for a fixed number of epochs with early stopping off, ResNet50
(random init) at 64 px on the synthetic data, run side by side in one process: uncached, cached from a cold cache
(features computed once, then stored), cached from the warm cache. Prints wall times, the speed-up ratios and the
largest difference of the validation losses per epoch.

    python benchmarks/frozen_stage.py [--epochs 10] [--n-train 4065] [--n-valid 1482] [--input-size 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from facebias.config import BackboneConfig, HeadConfig, StageConfig, TrainerConfig
from facebias.data.synthetic import load_synthetic
from facebias.models.assemble import build_model
from facebias.training.feature_cache import FeatureStore
from facebias.training.loop import FeatureCacheContext, LoopContext, run_stage
from facebias.training.schedule import plan_stages
from facebias.training.weighting import sample_weights


def timed_stage(dataset, args, store: FeatureStore, cached: bool) -> tuple[float, list[float]]:
    """Wall time of the stage and its validation losses, for a model built from seed 0."""
    keras.utils.set_random_seed(0)
    backbone = BackboneConfig(name="resnet50", input_size=args.input_size, preprocessing="vggface2")
    model = build_model(backbone, HeadConfig(name="mlp", dropout=0.5, hidden_units=[128, 32]), dataset.image_size,
                        args.input_size)
    stage = plan_stages([StageConfig(trainable="head", lr=1e-4, max_epochs=args.epochs, patience=args.epochs,
                                     batch_size=32)], TrainerConfig())[0]
    losses: list[float] = []
    context = LoopContext(lambda m, s: losses.extend(v for k, v in m.items() if k == "stage1/val_loss"), verbose=0,
                          feature_cache=FeatureCacheContext(store, dataset.digest(), enabled=cached))
    train = (dataset.train.images, dataset.train.ages / 100.0, sample_weights("group", dataset.train.attributes))
    started = time.perf_counter()
    run_stage(model, stage, train, (dataset.valid.images, dataset.valid.ages / 100.0), 0, context)
    return time.perf_counter() - started, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-train", type=int, default=4065)
    parser.add_argument("--n-valid", type=int, default=1482)
    parser.add_argument("--input-size", type=int, default=64)
    args = parser.parse_args()
    dataset = load_synthetic(n_train=args.n_train, n_valid=args.n_valid, n_test=16, image_size=64, progress=False)
    store = FeatureStore(Path(tempfile.mkdtemp(prefix="facebias-features-")))
    uncached_s, uncached = timed_stage(dataset, args, store, cached=False)
    cold_s, cold = timed_stage(dataset, args, store, cached=True)
    warm_s, warm = timed_stage(dataset, args, store, cached=True)
    print(f"ResNet50 (random init) at {args.input_size} px, head-only stage, {args.epochs} epochs, "
          f"{args.n_train} train / {args.n_valid} valid images")
    print(f"  uncached            {uncached_s:8.1f} s")
    print(f"  cached, cold cache  {cold_s:8.1f} s   speed-up {uncached_s / cold_s:5.1f}x")
    print(f"  cached, warm cache  {warm_s:8.1f} s   speed-up {uncached_s / warm_s:5.1f}x")
    difference = float(np.max(np.abs(np.array(cold) - np.array(uncached))))
    print(f"  max |val_loss cached - uncached| over the epochs: {difference:.3g} "
          f"(val_loss ~{np.mean(uncached):.4f}); warm vs cold: {np.max(np.abs(np.array(warm) - np.array(cold))):.3g}")


if __name__ == "__main__":
    main()
