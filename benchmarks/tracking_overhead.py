"""Benchmark: wall time of a training run with MLflow tracking (SQLite store) vs. tracking disabled.

Runs `python -m facebias.train` alternately with `tracking=mlflow` and `tracking=none`, in fresh folders, and
prints each wall time and the mean added time in percent. Extra arguments are Hydra overrides for every run.

    python benchmarks/tracking_overhead.py [--repeats 2] [overrides ...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def timed_run(tracking: str, overrides: list[str]) -> float:
    """Wall time of one training command in a fresh working folder."""
    command = [sys.executable, "-m", "facebias.train", f"tracking={tracking}", "trainer.verbose=0", *overrides]
    with tempfile.TemporaryDirectory(prefix=f"facebias-{tracking}-") as workdir:
        started = time.perf_counter()
        subprocess.run(command, cwd=workdir, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"mlflow": [], "none": []}
    for _ in range(args.repeats):
        for tracking in ("mlflow", "none"):
            times[tracking].append(timed_run(tracking, args.overrides))
            print(f"tracking={tracking:<6} {times[tracking][-1]:7.1f} s", flush=True)
    tracked, untracked = statistics.mean(times["mlflow"]), statistics.mean(times["none"])
    print(f"mean: tracked {tracked:.1f} s, untracked {untracked:.1f} s, ratio {tracked / untracked:.3f} "
          f"({100 * (tracked - untracked) / untracked:+.1f} % added by tracking)")


if __name__ == "__main__":
    main()
