"""Benchmark: the epoch-end checkpoint's time as a share of an epoch's training time, small_cnn and ResNet50.

For each model (+ MLP head, random initialisation, Adam, group-weighted MSE as in a run) in one process: the median
time of `--steps` training steps of batch 32 after two untimed ones, times the steps of one epoch of the kit-sized
training split (4,065 images: 128 steps) = the epoch's training time; then the median time of `--writes` checkpoints
as a run writes them (facebias.training.loop.LoopContext.save_checkpoint: every model and optimizer variable and
early stopping's best weights, into one .npz replaced atomically and synced) into a temporary folder. Prints both,
the checkpoint's size and the share (target ≤ 3 %).

    python benchmarks/checkpoint_cost.py [--steps 5] [--writes 3] [--resnet50-size 224] [--n-train 4065]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from facebias.config import BackboneConfig, HeadConfig
from facebias.models.assemble import build_model
from facebias.training.checkpoint import EarlyStoppingState, checkpoint_path
from facebias.training.loop import LoopContext

BATCH = 32
MODELS = {"small_cnn": ("unit", 64), "resnet50": ("vggface2", 224)}


def _median_s(call, repeats: int, warmup: int = 0) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(name: str, input_size: int, args: argparse.Namespace) -> dict[str, float]:
    keras.utils.set_random_seed(0)
    preprocessing, _ = MODELS[name]
    backbone = BackboneConfig(name=name, input_size=input_size, preprocessing=preprocessing,
                              widths=[16, 32, 64, 128] if name == "small_cnn" else [])
    model = build_model(backbone, HeadConfig(name="mlp", dropout=0.5, hidden_units=[128, 32]), (input_size,) * 2,
                        input_size)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (BATCH, input_size, input_size, 3), dtype=np.uint8)
    targets, weights = rng.uniform(0.1, 0.9, BATCH), rng.uniform(0.5, 2.0, BATCH)
    step_s = _median_s(lambda: model.train_on_batch(images, targets, sample_weight=weights), args.steps, warmup=2)
    epoch_s = step_s * math.ceil(args.n_train / BATCH)
    with tempfile.TemporaryDirectory(prefix="facebias-checkpoint-") as folder:
        context = LoopContext(lambda metrics, step: None, checkpoint_file=checkpoint_path(Path(folder)), model=model)
        stopping = EarlyStoppingState(best=0.1, best_epoch=1, wait=0, best_weights=model.get_weights())
        write = lambda: context.save_checkpoint(1, 1, model.optimizer, stopping, [({"epoch/loss": 0.1}, 0)])  # noqa: E731
        write_s = _median_s(write, args.writes)
        size_mb = context.checkpoint_file.stat().st_size / 1e6
    return {"step_s": step_s, "epoch_s": epoch_s, "checkpoint_s": write_s, "size_mb": size_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per model")
    parser.add_argument("--writes", type=int, default=3, help="timed checkpoints per model")
    parser.add_argument("--resnet50-size", type=int, default=224)
    parser.add_argument("--n-train", type=int, default=4065, help="training images per epoch")
    args = parser.parse_args()
    print(f"epoch = {math.ceil(args.n_train / BATCH)} steps of batch {BATCH} ({args.n_train} images)\n")
    print("| model | step s | epoch s (steps × median step) | checkpoint s | checkpoint MB | checkpoint / epoch |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, size in (("small_cnn", MODELS["small_cnn"][1]), ("resnet50", args.resnet50_size)):
        r = measure(name, size, args)
        print(f"| {name} at {size} px | {r['step_s']:.3f} | {r['epoch_s']:.1f} | {r['checkpoint_s']:.2f} | "
              f"{r['size_mb']:.0f} | {100 * r['checkpoint_s'] / r['epoch_s']:.2f} % |", flush=True)


if __name__ == "__main__":
    main()
