"""Benchmark: training and inference images/s of the study's backbones, float32 vs mixed_float16 vs XLA.

For ResNet50 and InceptionResNetV2 (random initialisation) + the MLP head at 224 px, uint8 images in (resized and
preprocessed in the model's graph, as in a run), in one process and one table:

- train: `train_on_batch` steps of the whole model (Adam, MSE), images/s from the median step time;
- inference: `predict_on_batch` of the whole model, images/s from the median call time;
- feature pass: the frozen-stage feature cache's pass (facebias.training.feature_cache.FeaturePass, batch norm in
  inference mode) over `--steps` batches of `--batch`, images/s over the whole pass (tracing included).

Modes: float32; mixed_float16 (Keras' global policy, as `trainer.precision=mixed_float16`); float32 with XLA
(`jit_compile=True`, as `trainer.jit_compile=true`). Every mode builds its model afresh; the first `--warmup`
steps (tracing, XLA compilation) are not timed.

Written for a GPU (it has not been run on one here). It runs on a CPU too, slowly; a check in minutes:

    python benchmarks/gpu_throughput.py                                     # GPU: 224 px, batch 64
    python benchmarks/gpu_throughput.py --input-size 75 --batch 4 --steps 2 --warmup 1 --modes float32 xla   # CPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from facebias.config import BackboneConfig, HeadConfig
from facebias.models.assemble import build_model
from facebias.training.feature_cache import FeaturePass

BACKBONES = {"resnet50": "vggface2", "inception_resnet_v2": "inception"}
"""Backbone → its preprocessing (conf/backbone/)."""
MODES = ("float32", "mixed_float16", "xla")


def _build(backbone: str, mode: str, input_size: int) -> keras.Model:
    keras.mixed_precision.set_global_policy("mixed_float16" if mode == "mixed_float16" else "float32")
    keras.utils.set_random_seed(0)
    config = BackboneConfig(name=backbone, input_size=input_size, preprocessing=BACKBONES[backbone])
    return build_model(config, HeadConfig(name="mlp", dropout=0.5, hidden_units=[128, 32]), (input_size, input_size),
                       input_size)


def _median_rate(call, batch: int, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return batch / statistics.median(times)


def measure(backbone: str, mode: str, args: argparse.Namespace) -> dict[str, float]:
    """Images/s of training, inference and the feature pass for one backbone in one mode."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch * args.steps, args.input_size, args.input_size, 3), dtype=np.uint8)
    batch_images = tf.constant(images[: args.batch])
    targets = tf.constant(rng.uniform(0.1, 0.9, args.batch).astype("float32"))
    model = _build(backbone, mode, args.input_size)
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="mse", jit_compile=mode == "xla")
    train = _median_rate(lambda: model.train_on_batch(batch_images, targets), args.batch, args.warmup, args.steps)
    infer = _median_rate(lambda: model.predict_on_batch(batch_images), args.batch, args.warmup, args.steps)
    features = FeaturePass(model, jit_compile=mode == "xla")
    features.batch_size = args.batch
    started = time.perf_counter()
    features(images)
    feature_pass = len(images) / (time.perf_counter() - started)
    keras.backend.clear_session()
    return {"train": train, "inference": infer, "feature pass": feature_pass}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", choices=tuple(BACKBONES), default=list(BACKBONES))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (and batches of the feature pass)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (tracing, XLA compilation)")
    args = parser.parse_args()
    devices = [device.name for device in tf.config.list_logical_devices("GPU")] or ["CPU only"]
    print(f"devices: {', '.join(devices)}; {args.input_size} px, batch {args.batch}, {args.steps} timed steps "
          f"after {args.warmup}", flush=True)
    rows = []
    for backbone in args.backbones:
        for mode in args.modes:
            rates = measure(backbone, mode, args)
            rows.append((backbone, mode, rates))
            print(f"  {backbone} {mode}: " + ", ".join(f"{k} {v:.1f}/s" for k, v in rates.items()), flush=True)
    print("\n| backbone | mode | train images/s | inference images/s | feature pass images/s | train vs float32 |")
    print("|---|---|---:|---:|---:|---:|")
    for backbone, mode, rates in rows:
        base = next((r for b, m, r in rows if b == backbone and m == "float32"), None)
        ratio = f"{rates['train'] / base['train']:.2f}x" if base else "n/a"
        print(f"| {backbone} | {mode} | {rates['train']:.1f} | {rates['inference']:.1f} | "
              f"{rates['feature pass']:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
