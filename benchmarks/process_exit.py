"""Benchmark: a quick-mode run whose process ends without the interpreter's finalization (facebias.shutdown, the
default) against the same run with `FACEBIAS_FULL_EXIT=1`, side by side in one run.

Runs `python -m facebias.train trainer=smoke` on the tests' 240 / 96 / 96 synthetic images as a user would, each in
a fresh folder (so each creates its SQLite store), one TensorFlow thread per pool as the tests run it, alternating
full and fast exit, `--pairs` times. Prints each run's CPU seconds (user + system of the process) and wall time,
the medians and the ratio full / fast.

    python benchmarks/process_exit.py [--pairs 5]
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

QUICK_RUN = ["trainer=smoke", "data.n_train=240", "data.n_valid=96", "data.n_test=96", "trainer.verbose=0"]
ONE_THREAD_PER_POOL = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
FULL_EXIT_ENV = "FACEBIAS_FULL_EXIT"


def timed_run(full_exit: bool, folder: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one quick run in `folder`."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", FULL_EXIT_ENV)}
    env.update({**ONE_THREAD_PER_POOL, "FACEBIAS_CACHE": str(folder.parent / "cache")})
    if full_exit:
        env[FULL_EXIT_ENV] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "facebias.train", *QUICK_RUN], cwd=folder, env=env, check=True,
                   capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="facebias-process-exit-"))
    timed_run(False, root)  # generates the synthetic data into the shared cache first, outside the pairs
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for pair in range(args.pairs):
        for full_exit in (True, False):
            folder = root / f"{pair}-{'full' if full_exit else 'fast'}"
            folder.mkdir()
            cpu, wall = timed_run(full_exit, folder)
            results[full_exit].append((cpu, wall))
            print(f"pair {pair}: {'full exit' if full_exit else 'fast exit'} {cpu:5.2f} s CPU {wall:5.2f} s wall",
                  flush=True)
    median = {full: [statistics.median(values) for values in zip(*runs, strict=True)]
              for full, runs in results.items()}
    print(f"quick run, medians of {args.pairs} pairs: full exit {median[True][0]:.2f} s CPU ({median[True][1]:.2f} s "
          f"wall), fast exit {median[False][0]:.2f} s CPU ({median[False][1]:.2f} s wall): "
          f"{median[True][0] / median[False][0]:.2f}x the CPU, {median[True][0] - median[False][0]:.2f} s more")


if __name__ == "__main__":
    main()
