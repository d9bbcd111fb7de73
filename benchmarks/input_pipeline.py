"""Benchmark: is the input pipeline the bottleneck, and how much memory does memory-mapping the data save?

On kit-sized synthetic data at 224 px (4,065 / 1,482 / 1,978 images, made by facebias.data.synthetic and cached in
$FACEBIAS_CACHE after the first run, which takes about a minute and 1.1 GB), in one run:

1. Training steps/s of one model fed two ways, interleaved (alternating which goes first): by the default pipeline
   (`training_dataset` over a memory-mapped uint8 .npy copy of the train images, group weights, batch 32, no
   augmentation) and by the same batches already in memory (the pipeline's first batches materialised once with
   `.cache()`, so feeding costs nothing). Models: the default small_cnn + MLP (input 64: the model resizes 224 → 64
   in its graph; `--repeats` pairs) and, unless `--resnet50-steps 0`, ResNet50 + MLP with random initialisation at
   224 px (`--resnet50-repeats` pairs). Steps/s is 1 / the median step time; the ratio reported is the median of the
   per-pair ratios; the process's CPU time per step is printed too (other processes do not add to it). Each fit
   starts the pipeline afresh, so it reads the very images that were cached: the page cache is warm (the first epoch
   of a cold cache reads from disk, which this does not measure).
2. Peak RSS (VmHWM) of a fresh subprocess that imports TensorFlow, loads all three splits and reads one epoch of
   each in batches of 32: the facebias way (memory-mapped uint8 .npy, through the pipelines) vs. the starting kit's
   way (float32 .npy files loaded fully into memory, batches sliced from them), and with no data at all (the cost
   of TensorFlow alone). The memory map's touched pages count in RSS but are file-backed and reclaimable, so the
   anonymous part is printed too: now and at its peak (sampled every 5 ms), beside USS and PSS (which count the
   map's pages as this process's own clean pages). `--memory-repeats` fresh subprocesses per way; `--memory-only`
   skips part 1.

    python benchmarks/input_pipeline.py [--steps 50] [--warmup 5] [--repeats 6] [--resnet50-steps 4]
        [--resnet50-repeats 2] [--memory-repeats 2] [--memory-only] [--workdir DIR]

The working folder (default: a temporary one, deleted at the end) holds 5.6 GB of .npy copies.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from facebias.data.dataset import SPLIT_NAMES
from facebias.data.synthetic import load_synthetic

KIT_SIZES = {"n_train": 4065, "n_valid": 1482, "n_test": 1978}
IMAGE_SIZE = 224
BATCH = 32
CHUNK = 256
RESNET50_WARMUP = 3
"""Untimed ResNet50 steps (about 20 s each on 2 CPU cores): tracing happens in the first."""


# ---------------------------------------------------------------- data


def write_arrays(workdir: Path) -> None:
    """Per split: uint8 images (facebias), float32 images (the kit's storage) and targets; group weights of train."""
    from facebias.training.weighting import group_sample_weights

    dataset = load_synthetic(**KIT_SIZES, image_size=IMAGE_SIZE)
    for name in SPLIT_NAMES:
        split = dataset.splits[name]
        np.save(workdir / f"{name}_images.npy", split.images)
        np.save(workdir / f"{name}_targets.npy", split.ages / 100.0)
        kit = np.lib.format.open_memmap(workdir / f"{name}_images_f32.npy", "w+", np.float32, split.images.shape)
        for start in range(0, len(split), CHUNK):
            kit[start:start + CHUNK] = split.images[start:start + CHUNK]
        kit.flush()
        del kit
    np.save(workdir / "train_weights.npy", group_sample_weights(dataset.train.attributes))


# ---------------------------------------------------------------- throughput


def measure(model, batches, warmup: int, steps: int) -> tuple[float, float]:
    """(steps/s, process CPU ms per step) over `steps` training steps after `warmup` untimed ones.

    Steps/s is 1 / the median step time, which other processes' bursts on a shared machine move less than a mean.
    """
    import keras

    clocks: list[tuple[float, float]] = []
    clock = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: clocks.append((time.perf_counter(), time.process_time())))
    model.fit(batches, epochs=1, steps_per_epoch=warmup + steps, shuffle=False, verbose=0, callbacks=[clock])
    walls, cpus = np.asarray(clocks[warmup - 1:]).T
    return 1.0 / float(np.median(np.diff(walls))), 1000 * (cpus[-1] - cpus[0]) / steps


def training_model(backbone: str):
    """The model and first stage of the default run with `backbone` (composed from conf/ as facebias.train does)."""
    import keras
    from hydra import compose, initialize_config_dir

    from facebias.config import register_configs, to_train_config
    from facebias.models.assemble import build_model
    from facebias.training.loop import mae_years

    register_configs()
    conf_dir = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        config = to_train_config(compose(config_name="train", overrides=[f"backbone={backbone}"]))
    keras.utils.set_random_seed(0)
    model = build_model(config.backbone, config.head, (IMAGE_SIZE, IMAGE_SIZE), config.backbone.input_size)
    stage = config.schedule.stages[0]
    model.compile(optimizer=keras.optimizers.Adam(stage.lr), loss="mse", metrics=[mae_years])
    return model, config.backbone.input_size


def compare_feeds(workdir: Path, backbone: str, warmup: int, steps: int, repeats: int) -> list[dict[str, float]]:
    """Steps/s of the memory-mapped pipeline and of in-memory batches, interleaved (order alternating), per repeat."""
    from facebias.data.pipeline import training_dataset

    images = np.load(workdir / "train_images.npy", mmap_mode="r")
    targets, weights = np.load(workdir / "train_targets.npy"), np.load(workdir / "train_weights.npy")
    model, input_size = training_model(backbone)
    pipeline = training_dataset(images, targets, weights, BATCH, seed=0)
    in_memory = pipeline.take(warmup + steps).cache()
    for _ in in_memory:
        pass
    feeds = {"pipeline": pipeline, "in_memory": in_memory.repeat()}
    measure(model, feeds["in_memory"], warmup, steps)  # discarded: the first fit warms tracing, oneDNN, allocators
    results = []
    for repeat in range(repeats):
        order = list(feeds) if repeat % 2 == 0 else list(reversed(feeds))
        measured = {name: measure(model, feeds[name], warmup, steps) for name in order}
        pair = {name: rate for name, (rate, _) in measured.items()}
        pair.update({f"{name}_cpu_ms": cpu for name, (_, cpu) in measured.items()})
        pair["ratio"] = pair["pipeline"] / pair["in_memory"]
        print(f"  {backbone} (input {input_size} px), pair {repeat + 1}: pipeline {pair['pipeline']:.2f} steps/s "
              f"({pair['pipeline_cpu_ms']:.0f} CPU ms/step), in memory {pair['in_memory']:.2f} steps/s "
              f"({pair['in_memory_cpu_ms']:.0f} CPU ms/step), ratio {pair['ratio']:.3f}", flush=True)
        results.append(pair)
    return results


# ---------------------------------------------------------------- memory


def read_epoch(way: str, workdir: Path) -> dict[str, float]:
    """In this process: load all splits the given way, read one epoch of each in batches; the memory status then,
    with the peak of anonymous memory (`AnonPeak`, sampled while it ran)."""
    import tensorflow as tf

    sampler = AnonymousPeak()

    from facebias.data.pipeline import batches_per_epoch, inference_dataset, training_dataset

    if way == "facebias":
        splits = {name: np.load(workdir / f"{name}_images.npy", mmap_mode="r") for name in SPLIT_NAMES}
        targets = np.load(workdir / "train_targets.npy")
        train = training_dataset(splits["train"], targets, None, BATCH, seed=0)
        batches = [train.take(batches_per_epoch(len(targets), BATCH))]
        batches += [inference_dataset(splits[name], None, BATCH) for name in SPLIT_NAMES[1:]]
        for dataset in batches:
            for _ in dataset:
                pass
    elif way == "kit":
        splits = {name: np.load(workdir / f"{name}_images_f32.npy") for name in SPLIT_NAMES}
        for name, images in splits.items():
            order = np.random.default_rng(0).permutation(len(images)) if name == "train" else np.arange(len(images))
            for start in range(0, len(images), BATCH):
                tf.convert_to_tensor(images[np.sort(order[start:start + BATCH])])
    return {**memory_status(), "AnonPeak": sampler.stop()}


class AnonymousPeak:
    """Samples RssAnon every few milliseconds on a thread: the kernel keeps the peak of RSS (VmHWM) only."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.peak = 0.0
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, _status_mb(("RssAnon",))["RssAnon"])
            time.sleep(self.interval_s)

    def stop(self) -> float:
        self.running = False
        self.thread.join()
        return max(self.peak, _status_mb(("RssAnon",))["RssAnon"])


def _status_mb(keys: tuple[str, ...]) -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in keys:
            fields[key] = int(value.split()[0]) / 1024
    return fields


def memory_status() -> dict[str, float]:
    """VmHWM (peak RSS), RssAnon and RssFile (now), USS and PSS (now, from /proc/self/smaps_rollup), in MB.

    USS = Private_Clean + Private_Dirty: it counts the touched pages of a file mapped by this process only (clean,
    reclaimable page cache) as well as anonymous memory; PSS shares pages mapped by several processes among them.
    """
    fields = _status_mb(("VmHWM", "RssAnon", "RssFile"))
    rollup = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        rollup[key] = int(value.split()[0]) / 1024
    fields["USS"] = rollup["Private_Clean"] + rollup["Private_Dirty"]
    fields["PSS"] = rollup["Pss"]
    return fields


def measure_memory(way: str, workdir: Path) -> dict[str, float]:
    """Run `read_epoch(way)` in a fresh Python process and return its memory status."""
    command = [sys.executable, __file__, "--memory-child", way, "--workdir", str(workdir)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report


MEMORY_WAYS = {
    "none": "import TensorFlow only (no data)",
    "facebias": "np.load(mmap_mode='r') uint8 .npy → training_dataset / inference_dataset",
    "kit": "np.load float32 .npy (all in RAM) → batches sliced from it",
}


def print_tables(throughput: dict[str, list[dict[str, float]]], memory: dict[str, list[dict[str, float]]]) -> None:
    print(f"\ncommand: {' '.join(sys.argv)}")
    if throughput:
        print("\n| model, timed steps (batch 32, group weights) | pipeline steps/s | in-memory steps/s |"
              " ratio per pair | median ratio (target ≥ 0.95) | median CPU ms/step: pipeline, in memory |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, runs in throughput.items():
            cells = [", ".join(f"{r[key]:.{digits}f}" for r in runs)
                     for key, digits in (("pipeline", 2), ("in_memory", 2), ("ratio", 3))]
            cpu = ", ".join(f"{statistics.median(r[f'{name}_cpu_ms'] for r in runs):.0f}" for name in ("pipeline",
                                                                                                      "in_memory"))
            print(f"| {label} | {' | '.join(cells)} | {statistics.median(r['ratio'] for r in runs):.3f} | {cpu} |")
    columns = ("VmHWM", "AnonPeak", "RssAnon", "RssFile", "USS", "PSS")
    print("\n| fresh process: load all splits, read one epoch of each | peak RSS (VmHWM) MB | peak anonymous MB |"
          " RssAnon MB | RssFile MB | USS MB | PSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for way, runs in memory.items():
        cells = [", ".join(f"{r[key]:.0f}" for r in runs) for key in columns]
        print(f"| {way}: {MEMORY_WAYS[way]} | {' | '.join(cells)} |")
    median = {key: {way: statistics.median(r[key] for r in runs) for way, runs in memory.items()} for key in columns}
    print("\nfacebias / kit (medians; above TensorFlow alone in brackets), target ≤ 0.333 on the peak of anonymous "
          "memory, the memory a user must have (file-backed pages of the memory map are reclaimable page cache):")
    for key in ("VmHWM", "AnonPeak", "USS", "PSS"):
        way = median[key]
        print(f"  {key:<9} {way['facebias'] / way['kit']:.3f} "
              f"({(way['facebias'] - way['none']) / (way['kit'] - way['none']):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="timed small_cnn steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed small_cnn steps before each measurement")
    parser.add_argument("--repeats", type=int, default=6, help="small_cnn measurement pairs")
    parser.add_argument("--resnet50-steps", type=int, default=4, help="timed ResNet50 steps (0: skip ResNet50)")
    parser.add_argument("--resnet50-repeats", type=int, default=2, help="ResNet50 measurement pairs")
    parser.add_argument("--memory-repeats", type=int, default=2, help="memory measurements per way")
    parser.add_argument("--workdir", type=Path, default=None, help="where the .npy copies go (default: temp)")
    parser.add_argument("--memory-only", action="store_true", help="skip the throughput part")
    parser.add_argument("--memory-child", choices=("none", "facebias", "kit"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(read_epoch(args.memory_child, args.workdir)))
        return
    with tempfile.TemporaryDirectory(prefix="facebias-pipeline-", dir=args.workdir) as folder:
        workdir = Path(folder)
        print(f"writing .npy copies to {workdir}", flush=True)
        write_arrays(workdir)
        print("memory (fresh subprocess per measurement):", flush=True)
        memory = {way: [measure_memory(way, workdir) for _ in range(args.memory_repeats)]
                  for way in ("none", "facebias", "kit")}
        for way, runs in memory.items():
            print(f"  {way}: {runs}", flush=True)
        throughput = {}
        if args.memory_only:
            print_tables(throughput, memory)
            return
        print("training throughput:", flush=True)
        label = f"small_cnn + MLP, input 64 px (224 → 64 in the graph), {args.steps} after {args.warmup}"
        throughput[label] = compare_feeds(workdir, "small_cnn", args.warmup, args.steps, args.repeats)
        if args.resnet50_steps:
            label = f"ResNet50 (random init) + MLP, input 224 px, {args.resnet50_steps} after {RESNET50_WARMUP}"
            throughput[label] = compare_feeds(workdir, "resnet50", RESNET50_WARMUP, args.resnet50_steps,
                                              args.resnet50_repeats)
    print_tables(throughput, memory)


if __name__ == "__main__":
    main()
