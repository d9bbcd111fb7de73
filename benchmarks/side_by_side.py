"""Two ways of running a facebias command, timed side by side: alternated pairs, each process's CPU seconds (user +
system) and wall time, and each way's medians. Used by the benchmarks that compare two settings of one run."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ONE_THREAD_PER_POOL = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
"""One TensorFlow thread per pool, as the tests run their processes."""
QUICK_RUN = ["trainer=smoke", "data.n_train=240", "data.n_valid=96", "data.n_test=96", "trainer.verbose=0"]
"""A quick-mode run on the tests' 240 / 96 / 96 synthetic images, without progress bars."""


def timed_process(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of `command` run to its end in `cwd` (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(list(command), cwd=cwd, env=dict(env), check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def timed_train(arguments: Sequence[str], folder: Path, cache: Path,
                environment: Mapping[str, str | None] | None = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of `python -m facebias.train ARGUMENTS` as a user runs it in the new folder
    `folder` (so with its own SQLite store), one TensorFlow thread per pool, the synthetic data cached in `cache`;
    `environment` sets variables (None: removes one)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update({**ONE_THREAD_PER_POOL, "FACEBIAS_CACHE": str(cache)})
    for key, value in (environment or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    folder.mkdir()
    return timed_process([sys.executable, "-m", "facebias.train", *arguments], folder, env)


def alternate(pairs: int, ways: Sequence[str], run: Callable[[str, int], tuple[float, float]]
              ) -> dict[str, tuple[float, float]]:
    """`run(way, pair)` for every way in order, `pairs` times, each result printed; each way's median (CPU, wall)."""
    results: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    width = max(map(len, ways))
    for pair in range(pairs):
        for way in ways:
            cpu, wall = run(way, pair)
            results[way].append((cpu, wall))
            print(f"pair {pair}: {way:{width}} {cpu:6.2f} s CPU {wall:6.2f} s wall", flush=True)
    return {way: (statistics.median(cpu for cpu, _ in runs), statistics.median(wall for _, wall in runs))
            for way, runs in results.items()}
