"""Benchmark: a quick-mode job with its backbone cut after the first block (`trainer.truncate_backbone`, on in
`trainer=smoke`) against the same job with the whole backbone, side by side in one run.

Runs the quick grid's slowest job — study experiment 8 (InceptionResNetV2, MLP head, three stages), random
initialisation, the tests' 240 / 96 / 96 synthetic images, one epoch of one batch per stage, 32 images evaluated per
split — as a user would (`python -m facebias.train …`, each in a fresh folder, one TensorFlow thread per pool as
the tests run it), alternating whole and truncated, `--pairs` times. Prints each job's CPU seconds (user + system of
the process) and wall time, the medians and the ratio whole / truncated.

    python benchmarks/quick_backbone.py [--pairs 3] [--experiment exp8_irv2_mlp_three_stage]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUICK_JOB = ["trainer=smoke", "trainer.max_epochs_cap=1", "trainer.max_train_batches=1", "trainer.max_eval_samples=32",
             "data.n_train=240", "data.n_valid=96", "data.n_test=96", "pretrained.inception_resnet_v2=null",
             "pretrained.resnet50=null", "trainer.verbose=0"]
ONE_THREAD_PER_POOL = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def timed_job(experiment: str, truncate: bool, folder: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one quick job in `folder`."""
    command = [sys.executable, "-m", "facebias.train", f"experiment={experiment}", *QUICK_JOB,
               f"trainer.truncate_backbone={str(truncate).lower()}"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update({**ONE_THREAD_PER_POOL, "FACEBIAS_CACHE": str(folder / "cache")})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--experiment", default="exp8_irv2_mlp_three_stage")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="facebias-quick-backbone-"))
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for pair in range(args.pairs):
        for truncate in (False, True):
            folder = root / f"{pair}-{'truncated' if truncate else 'whole'}"
            folder.mkdir()
            cpu, wall = timed_job(args.experiment, truncate, folder)
            results[truncate].append((cpu, wall))
            print(f"pair {pair}: {'truncated' if truncate else 'whole    '} {cpu:6.1f} s CPU {wall:6.1f} s wall",
                  flush=True)
    median = {truncate: [statistics.median(values) for values in zip(*runs, strict=True)]
              for truncate, runs in results.items()}
    print(f"{args.experiment}, quick mode, medians of {args.pairs}: whole backbone {median[False][0]:.1f} s CPU "
          f"({median[False][1]:.1f} s wall), truncated {median[True][0]:.1f} s CPU ({median[True][1]:.1f} s wall): "
          f"{median[False][0] / median[True][0]:.2f}x less CPU")


if __name__ == "__main__":
    main()
