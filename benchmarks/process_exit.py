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
import sys
import tempfile
from pathlib import Path

from side_by_side import ONE_THREAD_PER_POOL, alternate, timed_process

QUICK_RUN = ["trainer=smoke", "data.n_train=240", "data.n_valid=96", "data.n_test=96", "trainer.verbose=0"]
FULL_EXIT_ENV = "FACEBIAS_FULL_EXIT"
FULL, FAST = "full exit", "fast exit"


def timed_run(way: str, folder: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one quick run in `folder`, ending the `way` way."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", FULL_EXIT_ENV)}
    env.update({**ONE_THREAD_PER_POOL, "FACEBIAS_CACHE": str(folder.parent / "cache")})
    if way == FULL:
        env[FULL_EXIT_ENV] = "1"
    folder.mkdir()
    return timed_process([sys.executable, "-m", "facebias.train", *QUICK_RUN], folder, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="facebias-process-exit-"))
    timed_run(FAST, root / "warm-up")  # generates the synthetic data into the shared cache, outside the pairs
    median = alternate(args.pairs, [FULL, FAST], lambda way, pair: timed_run(way, root / f"{pair}-{way[:4]}"))
    print(f"quick run, medians of {args.pairs} pairs: full exit {median[FULL][0]:.2f} s CPU ({median[FULL][1]:.2f} s "
          f"wall), fast exit {median[FAST][0]:.2f} s CPU ({median[FAST][1]:.2f} s wall): "
          f"{median[FULL][0] / median[FAST][0]:.2f}x the CPU, {median[FULL][0] - median[FAST][0]:.2f} s more")


if __name__ == "__main__":
    main()
